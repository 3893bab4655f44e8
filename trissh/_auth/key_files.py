"""Private key files: recognising the format, and importing the key.

Theory of operation
-------------------
Decryption and key parsing are `cryptography`'s job
(``load_ssh_private_key`` for the OpenSSH format with its bcrypt KDF,
``load_pem_private_key`` for PKCS#1, SEC1 and PKCS#8). This module adds what a
user needs around them:

* recognising the file format up front, so that errors are precise: a DSA key,
  a public key, a certificate or a PuTTY file is named as such, and an
  encrypted key without a passphrase raises :class:`PassphraseRequired`
  rather than a library's TypeError;
* reading the unencrypted parts of an OpenSSH key file (PROTOCOL.key: cipher
  name, key type, the public key, and the comment when the key is not
  encrypted), which `cryptography` drops: :func:`inspect_private_key` tells a
  caller whether a passphrase is needed and, for the OpenSSH format, which
  public key the file holds, without decrypting anything (legacy PEM and
  PKCS#8 files hide it);
* refusing FIDO security keys by name, before any passphrase is asked for;
* telling a wrong passphrase from a damaged file, as far as the format allows.

What it must not know: how a key signs (:mod:`trissh._auth.private_key`),
public key files beyond the comment of a ``<path>.pub``
(:mod:`trissh._auth.public_key_files`), or which keys get offered
(:mod:`trissh._auth.key_sources`).
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .._algorithms.hostkeys import PublicKey, decode_public_key, parse_openssh_public_key
from .._errors import KeyImportError
from .._public import public
from .._wire import DecodeError, Reader
from .key_file_reading import SECURITY_KEY_HINT, pem_label, read_key_file
from .private_key import PrivateKey, crypto_key_label

__all__ = [
    "KeyFileInfo",
    "PassphraseRequired",
    "import_private_key",
    "inspect_private_key",
    "is_encrypted",
    "load_private_key",
    "read_private_key",
]

_OPENSSH_MAGIC: Final = b"openssh-key-v1\x00"
_PEM_PRIVATE_LABELS: Final = frozenset(
    {b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY"}
)


@public
class PassphraseRequired(KeyImportError):
    """The key file is encrypted and no passphrase was given (or the passphrase callback declined).

    A :class:`KeyImportError`, so callers that catch that see it too; the
    authentication loop catches it to skip a locked key with a log note.
    """


# --- format detection ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _OpenSSHInfo:
    """What an OpenSSH private key file says before decryption (PROTOCOL.key)."""

    cipher: str
    key_type: str
    public_blob: bytes
    private_section: bytes


#: The most bcrypt KDF rounds a key file may ask for. Each costs some 20 ms, so this is minutes of CPU,
#: far above any key ssh-keygen makes (-a, default 16), and still a bound on what a file can demand.
MAX_KDF_ROUNDS: Final = 16384


def _openssh_info(data: bytes, where: str) -> _OpenSSHInfo:
    """Decode the armor and clear-text header of an OpenSSH private key file."""
    begin = data.find(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    end = data.find(b"-----END OPENSSH PRIVATE KEY-----", begin)
    if end < 0:
        raise KeyImportError(f"{where}: OpenSSH private key has no END line")
    body = data[begin + len(b"-----BEGIN OPENSSH PRIVATE KEY-----") : end]
    try:
        raw = base64.b64decode(b"".join(body.split()), validate=True)
    except binascii.Error:
        raise KeyImportError(f"{where}: OpenSSH private key has invalid base64") from None
    if not raw.startswith(_OPENSSH_MAGIC):
        raise KeyImportError(f"{where}: not an openssh-key-v1 private key")
    try:
        reader = Reader(raw[len(_OPENSSH_MAGIC) :], "OpenSSH private key")
        cipher = reader.ascii()
        kdf = reader.ascii()
        kdf_options = reader.string()
        if kdf == "bcrypt":
            options = Reader(kdf_options, "bcrypt KDF options")
            options.string()  # salt
            rounds = options.uint32()
            if rounds > MAX_KDF_ROUNDS:
                raise KeyImportError(
                    f"{where}: bcrypt KDF of {rounds} rounds (trissh allows up to MAX_KDF_ROUNDS = "
                    f"{MAX_KDF_ROUNDS}; ssh-keygen's default is 16)"
                )
        count = reader.uint32()
        if count != 1:
            raise KeyImportError(f"{where}: holds {count} keys; only files with one key are supported")
        public_blob = reader.string()
        private_section = reader.string()
        # No check_end(): AEAD ciphers (aes256-gcm, chacha20-poly1305) append
        # their tag after the private section; `cryptography` checks the rest.
        key_type = Reader(public_blob, "public key").ascii()
    except DecodeError as exc:
        raise KeyImportError(f"{where}: malformed OpenSSH private key: {exc}") from None
    return _OpenSSHInfo(cipher, key_type, public_blob, private_section)


def _openssh_public_key(info: _OpenSSHInfo, where: str) -> PublicKey:
    """The clear-text public key of an OpenSSH key file; unusable types are named here."""
    if info.key_type == "ssh-dss":
        raise KeyImportError(f"{where}: unsupported key type dsa (ssh-dss)")
    if info.key_type.startswith("sk-"):
        raise KeyImportError(f"{where}: {info.key_type[:64]} {SECURITY_KEY_HINT}")
    try:
        return decode_public_key(info.public_blob)
    except KeyImportError as exc:
        raise KeyImportError(f"{where}: {exc}") from None


def _openssh_comment(info: _OpenSSHInfo) -> str:
    """The comment of an unencrypted OpenSSH key, or "" if it cannot be found.

    `cryptography` validates the key itself; this only walks past the private
    fields to the comment, so any surprise just means "no comment".
    """
    if info.cipher != "none":
        return ""
    try:
        reader = Reader(info.private_section, "OpenSSH private section")
        reader.uint32()  # check integers
        reader.uint32()
        key_type = reader.ascii()
        field_kinds = {
            "ssh-ed25519": "ss",
            "ssh-rsa": "mmmmmm",
        }.get(key_type, "ssm" if key_type.startswith("ecdsa-sha2-") else None)
        if field_kinds is None:
            return ""
        for kind in field_kinds:
            if kind == "s":
                reader.string()
            else:
                reader.mpint()
        return reader.text()
    except DecodeError:
        return ""


def is_encrypted(data: bytes) -> bool:
    """Whether private key file contents are passphrase-protected.

    For callers that prompt for a passphrase only when one is needed. Returns
    False for unencrypted keys and for data that is not a recognised private key
    (which :func:`import_private_key` then reports precisely).
    """
    label = pem_label(data)
    if label == b"OPENSSH PRIVATE KEY":
        try:
            return _openssh_info(data, "key").cipher != "none"
        except KeyImportError:
            return False
    if label == b"ENCRYPTED PRIVATE KEY":
        return True
    return label in _PEM_PRIVATE_LABELS and b"Proc-Type: 4,ENCRYPTED" in data


def _not_private_key(data: bytes, where: str) -> KeyImportError:
    """The most helpful error for data that is not a private key we read."""
    head = data.lstrip()[:64]
    first_word = head.split(maxsplit=1)[0] if head.split() else b""
    if head.startswith(b"PuTTY-User-Key-File-"):
        hint = "PuTTY .ppk keys are not supported (convert with puttygen -O private-openssh)"
    elif first_word.endswith(b"-cert-v01@openssh.com"):
        hint = (
            "it is a certificate, not a private key file (pass it together with its key: (key, certificate))"
        )
    elif head.startswith((b"ssh-", b"ecdsa-", b"sk-", b"---- BEGIN SSH2 PUBLIC KEY")) or (
        pem_label(data) or b""
    ).endswith(b"PUBLIC KEY"):
        hint = "it is a public key, not a private key file"
    else:
        hint = "not a private key file"
    return KeyImportError(f"{where}: {hint}")


# --- import ------------------------------------------------------------------------------------


@public
def import_private_key(
    data: bytes, passphrase: str | bytes | None = None, *, name: str | None = None
) -> PrivateKey:
    """Read a private key from the contents of a key file.

    Accepts the OpenSSH format (``-----BEGIN OPENSSH PRIVATE KEY-----``, plain or
    encrypted with bcrypt-kdf and an AES cipher) and PEM: PKCS#1 RSA, SEC1 EC,
    PKCS#8, plain or encrypted. The key must be Ed25519, ECDSA P-256/384/521 or
    RSA of at least 1024 bits.

    Args:
        data: the file contents.
        passphrase: needed only for an encrypted key; ignored otherwise. ``str``
            is encoded as UTF-8.
        name: how errors should name the key, e.g. ``"key file ~/.ssh/id_rsa"``.

    Raises:
        KeyImportError: the key is encrypted and no passphrase was given, the
            passphrase is wrong, the key type or cipher is unsupported, or the
            data is not a private key; the message says which.
    """
    where = name or "key"
    password = passphrase.encode("utf-8") if isinstance(passphrase, str) else passphrase
    label = pem_label(data)
    if label == b"OPENSSH PRIVATE KEY":
        return _import_openssh(data, password, where)
    if label == b"DSA PRIVATE KEY":
        raise KeyImportError(f"{where}: unsupported key type dsa")
    if label in _PEM_PRIVATE_LABELS:
        return _import_pem(data, password, where)
    raise _not_private_key(data, where)


def _import_openssh(data: bytes, password: bytes | None, where: str) -> PrivateKey:
    info = _openssh_info(data, where)
    # Check the clear-text public key first: an unsupported type gets named
    # before any passphrase is asked for or any KDF time is spent.
    _openssh_public_key(info, where)
    encrypted = info.cipher != "none"
    if encrypted and password is None:
        raise PassphraseRequired(f"{where} is encrypted: a passphrase is needed")
    # Imported when a key file is first read: cryptography's serialization loads its SSH parser and bcrypt.
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_ssh_private_key(data, password if encrypted else None)
    except UnsupportedAlgorithm as exc:
        raise KeyImportError(f"{where}: {exc} (cipher {info.cipher})") from None
    except InvalidTag:  # aes256-gcm: a wrong passphrase fails authentication
        raise KeyImportError(f"wrong passphrase for {where}") from None
    except TypeError:  # `cryptography` takes an empty password for none at all
        raise KeyImportError(f"wrong passphrase for {where} (an empty one)") from None
    except NotImplementedError as exc:  # e.g. a compressed EC point in the private section
        raise KeyImportError(f"{where}: unsupported OpenSSH private key: {exc}") from None
    except ValueError as exc:
        # After decrypting, `cryptography` compares two check integers; a wrong
        # passphrase shows up there as "broken checksum".
        if encrypted and "checksum" in str(exc):
            raise KeyImportError(f"wrong passphrase for {where}") from None
        raise KeyImportError(f"{where}: malformed OpenSSH private key: {exc}") from None
    return _wrap(key, _openssh_comment(info), where)


def _import_pem(data: bytes, password: bytes | None, where: str) -> PrivateKey:
    encrypted = is_encrypted(data)
    if encrypted and password is None:
        raise PassphraseRequired(f"{where} is encrypted: a passphrase is needed")
    # Imported when a key file is first read: cryptography's serialization loads its SSH parser and bcrypt.
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(data, password if encrypted else None)
    except UnsupportedAlgorithm as exc:
        raise KeyImportError(f"{where}: unsupported key or encryption: {exc}") from None
    except (ValueError, TypeError) as exc:
        if encrypted and "password" in str(exc).lower():
            raise KeyImportError(f"wrong passphrase for {where}") from None
        if encrypted:
            # A wrong passphrase usually fails the CBC padding check ("bad decrypt"), but about
            # once in 256 tries the garbage it decrypts to has valid padding and fails to parse
            # instead: from outside, that cannot be told apart from a damaged file.
            raise KeyImportError(f"wrong passphrase for {where} (or the file is damaged: {exc})") from None
        raise KeyImportError(f"{where}: malformed PEM private key: {exc}") from None
    return _wrap(key, "", where)


def _wrap(key: object, comment: str, where: str) -> PrivateKey:
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise KeyImportError(f"{where}: unsupported key type {crypto_key_label(key)}")
    try:
        return PrivateKey(key, comment)
    except KeyImportError as exc:
        raise KeyImportError(f"{where}: {exc}") from None


# --- files -------------------------------------------------------------------------------------


@public
def read_private_key(path: str | os.PathLike[str], passphrase: str | bytes | None = None) -> PrivateKey:
    """Read a private key file (formats as :func:`import_private_key`).

    Decryption runs here, in the calling thread: an OpenSSH key's bcrypt KDF
    takes a noticeable time, so async code should call this through
    ``trio.to_thread.run_sync``.

    An encrypted OpenSSH key hides its comment; then the comment of a matching
    ``<path>.pub`` file is used, when there is one.

    Raises:
        PassphraseRequired: the key is encrypted and ``passphrase`` is None.
        KeyImportError: as :func:`import_private_key` (a wrong passphrase, an
            unsupported type, not a key), and when the file cannot be read; the
            message names the path.
    """
    data = read_key_file(path, "key file")
    key = import_private_key(data, passphrase, name=f"key file {os.fspath(path)}")
    return with_pub_file_comment(key, path)


def with_pub_file_comment(key: PrivateKey, path: str | os.PathLike[str]) -> PrivateKey:
    """``key``, given the comment of a matching ``<path>.pub`` when its own file had none."""
    if key.comment:
        return key
    comment = _pub_file_comment(Path(os.fspath(path) + ".pub"), key.public_key)
    return PrivateKey(key.crypto_key, comment) if comment else key


#: The earlier name of :func:`read_private_key`, kept for existing callers.
load_private_key = read_private_key


@dataclass(frozen=True, slots=True)
class KeyFileInfo:
    """What a private key file tells before any passphrase is used.

    Fields:
        encrypted: whether a passphrase is needed to use the key.
        public_key: the key's public half when the file shows it in clear text
            (the OpenSSH format does, encrypted or not); None for encrypted
            legacy PEM and PKCS#8 files, which hide it.
        key: the private key itself, when the file is not encrypted (it was
            imported to check it, so nobody needs to import it again).
    """

    encrypted: bool
    public_key: PublicKey | None
    key: PrivateKey | None = None


def inspect_private_key(data: bytes, *, name: str | None = None) -> KeyFileInfo:
    """Check that ``data`` is a private key trissh can use, without decrypting it.

    Cheap (no KDF): suitable for the event loop. For an unencrypted key it
    imports the key fully, so every problem is found here.

    Raises:
        KeyImportError: not a private key, or a type trissh cannot use (DSA,
            a FIDO security key, an unsupported curve); the message says which.
    """
    where = name or "key"
    label = pem_label(data)
    if label == b"OPENSSH PRIVATE KEY":
        info = _openssh_info(data, where)
        public_key = _openssh_public_key(info, where)
        if info.cipher == "none":
            key = import_private_key(data, name=where)
            return KeyFileInfo(False, key.public_key, key)
        return KeyFileInfo(True, public_key)
    if label == b"DSA PRIVATE KEY":
        raise KeyImportError(f"{where}: unsupported key type dsa")
    if label not in _PEM_PRIVATE_LABELS:
        raise _not_private_key(data, where)
    if is_encrypted(data):
        return KeyFileInfo(True, None)
    key = import_private_key(data, name=where)
    return KeyFileInfo(False, key.public_key, key)


def _pub_file_comment(pub_path: Path, public_key: PublicKey) -> str:
    try:
        line = read_key_file(pub_path, "public key file").decode("utf-8", "replace").strip()
        fields = line.split(maxsplit=2)
        if len(fields) == 3 and parse_openssh_public_key(line) == public_key:
            return fields[2]
    except (OSError, KeyImportError):
        pass  # the .pub file is optional and only decorative here
    return ""
