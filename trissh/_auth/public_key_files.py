"""Public key files, in the three formats ``ssh-keygen`` writes.

Theory of operation
-------------------
:func:`read_public_key` reads an OpenSSH ``.pub`` line, an RFC 4716
``---- BEGIN SSH2 PUBLIC KEY ----`` block (``ssh-keygen -e``) and PEM
(``-e -m PKCS8`` / ``-e -m PEM``), telling from the contents which one it is.
A private key, a certificate or a FIDO security key in place of a public key
is named as such.

What it must not know: private key files (:mod:`trissh._auth.key_files`), or
what the key is for (known hosts, identities).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .._algorithms.hostkeys import (
    PublicKey,
    decode_public_key,
    parse_openssh_public_key,
    public_key_from_crypto,
)
from .._errors import KeyImportError
from .._public import public
from .._wire import DecodeError, Reader
from .key_file_reading import SECURITY_KEY_HINT, pem_label, read_key_file

__all__ = ["load_public_key_file", "read_public_key"]

_RFC4716_BEGIN: Final = b"---- BEGIN SSH2 PUBLIC KEY ----"
_RFC4716_END: Final = b"---- END SSH2 PUBLIC KEY ----"
_PEM_PUBLIC_LABELS: Final = frozenset({b"PUBLIC KEY", b"RSA PUBLIC KEY"})


@public
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
    label = pem_label(data)
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
        raise KeyImportError(f"{where}: {type_word[:64].decode('ascii', 'replace')} {SECURITY_KEY_HINT}")
    if type_word.endswith(b"-cert-v01@openssh.com"):
        raise KeyImportError(f"{where}: it is a certificate, not a plain public key")
    try:
        return parse_openssh_public_key(line)
    except KeyImportError as exc:
        raise KeyImportError(f"{where}: {exc}") from None


def _pem_public_key(data: bytes, where: str) -> PublicKey:
    # Imported when a key file is first read: cryptography's serialization loads its SSH parser and bcrypt.
    from cryptography.hazmat.primitives import serialization

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
        raise KeyImportError(f"{where}: {key_type[:64]} {SECURITY_KEY_HINT}")
    try:
        return decode_public_key(blob)
    except KeyImportError as exc:
        raise KeyImportError(f"{where}: {exc}") from None
