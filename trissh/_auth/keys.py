"""Private keys for public key authentication, and reading key files.

Theory of operation
-------------------
Decryption and key parsing are `cryptography`'s job
(``load_ssh_private_key`` for the OpenSSH format with its bcrypt KDF,
``load_pem_private_key`` for PKCS#1, SEC1 and PKCS#8). This module adds what a
user needs around them:

* recognising the file format up front, so that errors are precise: a DSA key,
  a public key or a PuTTY file is named as such, and an encrypted key without a
  passphrase says "a passphrase is needed" rather than a library's TypeError;
* reading the unencrypted parts of an OpenSSH key file (cipher name, key type,
  the public key, and the comment when the key is not encrypted), which
  `cryptography` drops: :func:`inspect_private_key` tells a caller whether a
  passphrase is needed and, for the OpenSSH format, which public key the file
  holds, without decrypting anything (legacy PEM and PKCS#8 files hide it);
* refusing FIDO security keys (``sk-*@openssh.com``, PROTOCOL.u2f) by name:
  they sign on a hardware token, which trissh does not drive;
* public key files in the three formats ``ssh-keygen`` writes: an OpenSSH
  ``.pub`` line, an RFC 4716 ``---- BEGIN SSH2 PUBLIC KEY ----`` block
  (``ssh-keygen -e``) and PEM (``-e -m PKCS8`` / ``-e -m PEM``);
* signing in the SSH formats (RFC 4253 §6.6, RFC 5656 §3.1.2, RFC 8332, RFC 8709).

Verification and the table of signature algorithms live in
:mod:`trissh._algorithms.hostkeys`; this module must agree with that table.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias, final

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from .._algorithms.hostkeys import (
    HOST_KEY_ALGORITHMS,
    PublicKey,
    decode_public_key,
    parse_openssh_public_key,
    public_key_from_crypto,
)
from .._errors import KeyImportError
from .._wire import DecodeError, Reader, mpint, string

__all__ = [
    "CryptoPrivateKey",
    "KeyFileInfo",
    "PassphraseRequired",
    "PrivateKey",
    "import_private_key",
    "inspect_private_key",
    "is_encrypted",
    "load_private_key",
    "load_public_key_file",
    "read_key_file",
    "read_private_key",
    "read_public_key",
]

#: The `cryptography` private key classes trissh can sign with.
CryptoPrivateKey: TypeAlias = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# Key files are a few kilobytes; refusing anything over this keeps a mistaken
# path (a disk image, /dev/zero) from being read into memory.
MAX_KEY_FILE_SIZE: Final = 1024 * 1024
_READ_CHUNK: Final = 16 * 1024

_OPENSSH_MAGIC: Final = b"openssh-key-v1\x00"
_PEM_BEGIN: Final = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_PEM_PRIVATE_LABELS: Final = frozenset(
    {b"RSA PRIVATE KEY", b"EC PRIVATE KEY", b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY"}
)
_RSA_SHA2: Final = ("rsa-sha2-512", "rsa-sha2-256")
_RFC4716_BEGIN: Final = b"---- BEGIN SSH2 PUBLIC KEY ----"
_RFC4716_END: Final = b"---- END SSH2 PUBLIC KEY ----"
_SECURITY_KEY_HINT: Final = (
    "is a FIDO security key (it signs on a hardware token); security keys are not supported by trissh"
)


class PassphraseRequired(KeyImportError):
    """The key file is encrypted and no passphrase was given (or the passphrase callback declined).

    A :class:`KeyImportError`, so callers that catch that see it too; the
    authentication loop catches it to skip a locked key with a log note.
    """


@final
class PrivateKey:
    """A private key that can sign SSH authentication requests.

    Wraps a `cryptography` Ed25519, ECDSA (P-256/384/521) or RSA (>= 1024 bits)
    private key. Build one with :func:`load_private_key`,
    :func:`import_private_key` or :meth:`from_crypto`.

    Attributes:
        public_key: the matching :class:`PublicKey`.
        key_type: the public key blob type, e.g. ``"ssh-ed25519"``.
        comment: the key's comment ("" when the file had none or it was encrypted).
        crypto_key: the wrapped `cryptography` private key.
    """

    __slots__ = ("_comment", "_key", "_public_key")

    def __init__(self, key: CryptoPrivateKey, comment: str = "") -> None:
        if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise KeyImportError(f"unsupported key type {_type_label(key)}")
        self._key = key
        # Raises KeyImportError for an unsupported curve or a too-small RSA key.
        self._public_key = public_key_from_crypto(key.public_key())
        self._comment = comment

    @classmethod
    def from_crypto(cls, key: CryptoPrivateKey, comment: str = "") -> PrivateKey:
        """Wrap a `cryptography` private key object.

        Raises:
            KeyImportError: for a key type, curve or size that SSH (or trissh) does not support.
        """
        return cls(key, comment)

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    @property
    def key_type(self) -> str:
        return self._public_key.key_type

    @property
    def comment(self) -> str:
        return self._comment

    @property
    def fingerprint(self) -> str:
        """The public key's ``SHA256:`` fingerprint, as ``ssh-keygen -l -E sha256`` prints it."""
        return self._public_key.fingerprint

    @property
    def crypto_key(self) -> CryptoPrivateKey:
        return self._key

    def signature_algorithms(
        self, server_sig_algs: Sequence[str] | None = None, *, allow_sha1: bool = False
    ) -> list[str]:
        """The signature algorithms to try with this key, best first.

        Args:
            server_sig_algs: the server's ``server-sig-algs`` extension (RFC 8308
                §3.1), or None if it sent none. Only RSA keys have a choice to filter.
            allow_sha1: also offer ``ssh-rsa`` (RSA with SHA-1) for RSA keys, last.

        Returns:
            Ed25519 and ECDSA keys: their one algorithm. RSA keys: ``rsa-sha2-512``
            and ``rsa-sha2-256`` (RFC 8332) in that order, keeping those the server
            lists; if it lists neither the list is advisory only, so both are
            still offered.
        """
        if self.key_type != "ssh-rsa":
            return [self.key_type]
        if server_sig_algs is None:
            algorithms = list(_RSA_SHA2)
        else:
            algorithms = [alg for alg in _RSA_SHA2 if alg in server_sig_algs] or list(_RSA_SHA2)
        if allow_sha1:
            algorithms.append("ssh-rsa")
        return algorithms

    def sign(self, data: bytes, algorithm: str) -> bytes:
        """Sign ``data``; returns the SSH signature blob ``string algorithm || string signature``.

        Raises:
            ValueError: if ``algorithm`` is unknown or does not fit this key's type.
        """
        row = HOST_KEY_ALGORITHMS.get(algorithm)
        if row is None or row.key_type != self.key_type:
            raise ValueError(f"signature algorithm {algorithm!r} cannot be used with a {self.key_type} key")
        key = self._key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            signature = key.sign(data)
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            assert row.hash is not None
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(row.hash())))
            # RFC 5656 §3.1.2: SSH carries (r, s) as two mpints, not DER.
            signature = mpint(r) + mpint(s)
        else:
            assert row.hash is not None
            signature = key.sign(data, padding.PKCS1v15(), row.hash())
        return string(algorithm) + string(signature)

    def __repr__(self) -> str:
        # Never show key material; the fingerprint identifies the key.
        comment = f" {self._comment!r}" if self._comment else ""
        return f"<PrivateKey {self.key_type} {self._public_key.fingerprint}{comment}>"


# --- format detection ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _OpenSSHInfo:
    """What an OpenSSH private key file says before decryption (PROTOCOL.key)."""

    cipher: str
    key_type: str
    public_blob: bytes
    private_section: bytes


def _pem_label(data: bytes) -> bytes | None:
    match = _PEM_BEGIN.search(data)
    return match.group(1) if match else None


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
        reader.ascii()  # kdf name
        reader.string()  # kdf options
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
        raise KeyImportError(f"{where}: {info.key_type[:64]} {_SECURITY_KEY_HINT}")
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
    label = _pem_label(data)
    if label == b"OPENSSH PRIVATE KEY":
        try:
            return _openssh_info(data, "key").cipher != "none"
        except KeyImportError:
            return False
    if label == b"ENCRYPTED PRIVATE KEY":
        return True
    return label in _PEM_PRIVATE_LABELS and b"Proc-Type: 4,ENCRYPTED" in data


def _type_label(key: object) -> str:
    if isinstance(key, dsa.DSAPrivateKey):
        return "dsa"
    return type(key).__name__


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
        _pem_label(data) or b""
    ).endswith(b"PUBLIC KEY"):
        hint = "it is a public key, not a private key file"
    else:
        hint = "not a private key file"
    return KeyImportError(f"{where}: {hint}")


# --- import ------------------------------------------------------------------------------------


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
    label = _pem_label(data)
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
    try:
        key = serialization.load_ssh_private_key(data, password if encrypted else None)
    except UnsupportedAlgorithm as exc:
        raise KeyImportError(f"{where}: {exc} (cipher {info.cipher})") from None
    except InvalidTag:  # aes256-gcm: a wrong passphrase fails authentication
        raise KeyImportError(f"wrong passphrase for {where}") from None
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
        raise KeyImportError(f"{where}: unsupported key type {_type_label(key)}")
    try:
        return PrivateKey(key, comment)
    except KeyImportError as exc:
        raise KeyImportError(f"{where}: {exc}") from None


# --- files -------------------------------------------------------------------------------------


def read_key_file(path: str | os.PathLike[str], what: str = "key file") -> bytes:
    """A key file's bytes, refusing one over :data:`MAX_KEY_FILE_SIZE` without reading it all."""
    chunks: list[bytes] = []
    total = 0
    try:
        with open(path, "rb") as file:
            # In small reads: one read of the whole limit would allocate it
            # (1 MiB) for every key loaded, and keys are loaded per connection.
            while total <= MAX_KEY_FILE_SIZE:
                chunk = file.read(_READ_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
    except FileNotFoundError as exc:
        raise KeyImportError(f"{what} {os.fspath(path)} not found") from exc
    except OSError as exc:
        raise KeyImportError(f"cannot read {what} {os.fspath(path)}: {exc.strerror or exc}") from exc
    if total > MAX_KEY_FILE_SIZE:
        raise KeyImportError(f"{what} {os.fspath(path)} is larger than {MAX_KEY_FILE_SIZE} bytes")
    return b"".join(chunks)


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
    if not key.comment:
        comment = _pub_file_comment(Path(os.fspath(path) + ".pub"), key.public_key)
        if comment:
            key = PrivateKey(key.crypto_key, comment)
    return key


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
    """

    encrypted: bool
    public_key: PublicKey | None


def inspect_private_key(data: bytes, *, name: str | None = None) -> KeyFileInfo:
    """Check that ``data`` is a private key trissh can use, without decrypting it.

    Cheap (no KDF): suitable for the event loop. For an unencrypted key it
    imports the key fully, so every problem is found here.

    Raises:
        KeyImportError: not a private key, or a type trissh cannot use (DSA,
            a FIDO security key, an unsupported curve); the message says which.
    """
    where = name or "key"
    label = _pem_label(data)
    if label == b"OPENSSH PRIVATE KEY":
        info = _openssh_info(data, where)
        public_key = _openssh_public_key(info, where)
        if info.cipher == "none":
            return KeyFileInfo(False, import_private_key(data, name=where).public_key)
        return KeyFileInfo(True, public_key)
    if label == b"DSA PRIVATE KEY":
        raise KeyImportError(f"{where}: unsupported key type dsa")
    if label not in _PEM_PRIVATE_LABELS:
        raise _not_private_key(data, where)
    if is_encrypted(data):
        return KeyFileInfo(True, None)
    return KeyFileInfo(False, import_private_key(data, name=where).public_key)


def _pub_file_comment(pub_path: Path, public_key: PublicKey) -> str:
    try:
        line = read_key_file(pub_path, "public key file").decode("utf-8", "replace").strip()
        fields = line.split(maxsplit=2)
        if len(fields) == 3 and parse_openssh_public_key(line) == public_key:
            return fields[2]
    except (OSError, KeyImportError):
        pass  # the .pub file is optional and only decorative here
    return ""


_PEM_PUBLIC_LABELS: Final = frozenset({b"PUBLIC KEY", b"RSA PUBLIC KEY"})


def read_public_key(path: str | os.PathLike[str]) -> PublicKey:
    """Read a public key file in any format ``ssh-keygen`` writes.

    * an OpenSSH ``.pub`` line ``<type> <base64> [comment]`` (blank lines and
      ``#`` comments before it are skipped);
    * an RFC 4716 block, ``---- BEGIN SSH2 PUBLIC KEY ----`` (``ssh-keygen -e``);
    * PEM: ``PUBLIC KEY`` (SubjectPublicKeyInfo, ``ssh-keygen -e -m PKCS8``) or
      ``RSA PUBLIC KEY`` (PKCS#1, ``ssh-keygen -e -m PEM``).

    Raises:
        KeyImportError: the file cannot be read or holds no valid public key;
            the message names the path and says what was wrong.
    """
    data = read_key_file(path, "public key file")
    where = f"public key file {os.fspath(path)}"
    label = _pem_label(data)
    if label in _PEM_PUBLIC_LABELS:
        return _pem_public_key(data, where)
    if data.lstrip().startswith(_RFC4716_BEGIN):
        return _rfc4716_public_key(data, where)
    for line in data.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        if (stripped.startswith(b"-----BEGIN") and b"PRIVATE" in stripped) or stripped.startswith(
            b"PuTTY-User-Key-File-"
        ):
            raise KeyImportError(f"{where}: not a public key file (it looks like a private key)")
        return _public_key_line(stripped, where)
    raise KeyImportError(f"{where}: no public key found")


#: The earlier name of :func:`read_public_key`, kept for existing callers.
load_public_key_file = read_public_key


def _public_key_line(line: bytes, where: str) -> PublicKey:
    type_word = line.split(maxsplit=1)[0]
    if type_word.startswith(b"sk-"):
        raise KeyImportError(f"{where}: {type_word[:64].decode('ascii', 'replace')} {_SECURITY_KEY_HINT}")
    if type_word.endswith(b"-cert-v01@openssh.com"):
        raise KeyImportError(f"{where}: it is a certificate, not a plain public key")
    try:
        return parse_openssh_public_key(line)
    except KeyImportError as exc:
        raise KeyImportError(f"{where}: {exc}") from None


def _pem_public_key(data: bytes, where: str) -> PublicKey:
    try:
        crypto_key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyImportError(f"{where}: malformed PEM public key: {exc}") from None
    if not isinstance(crypto_key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise KeyImportError(f"{where}: unsupported key type {type(crypto_key).__name__}")
    try:
        return public_key_from_crypto(crypto_key)
    except KeyImportError as exc:
        raise KeyImportError(f"{where}: {exc}") from None


def _rfc4716_public_key(data: bytes, where: str) -> PublicKey:
    """RFC 4716 §3: BEGIN line, headers ``Tag: value`` (a trailing backslash continues one), base64, END."""
    lines = data.strip().splitlines()
    try:
        end = next(i for i, line in enumerate(lines) if line.strip() == _RFC4716_END)
    except StopIteration:
        raise KeyImportError(f"{where}: SSH2 public key block has no END line") from None
    body: list[bytes] = []
    continued = False
    for raw in lines[1:end]:
        line = raw.strip()
        if continued or (not body and b":" in line):
            # A header (base64 has no ':'); its value is decoration only.
            continued = line.endswith(b"\\")
            continue
        body.append(line)
    try:
        blob = base64.b64decode(b"".join(body), validate=True)
    except binascii.Error:
        raise KeyImportError(f"{where}: SSH2 public key block has invalid base64") from None
    if not blob:
        raise KeyImportError(f"{where}: SSH2 public key block holds no key")
    try:
        key_type = Reader(blob, "public key").ascii()
    except DecodeError as exc:
        raise KeyImportError(f"{where}: malformed public key: {exc}") from None
    if key_type.startswith("sk-"):
        raise KeyImportError(f"{where}: {key_type[:64]} {_SECURITY_KEY_HINT}")
    try:
        return decode_public_key(blob)
    except KeyImportError as exc:
        raise KeyImportError(f"{where}: {exc}") from None
