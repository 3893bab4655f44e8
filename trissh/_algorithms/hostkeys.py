"""SSH public keys and the signature algorithms that verify with them.

Theory of operation
-------------------
Two names must not be confused (RFC 8332 §3):

* the **key type** is the name inside a public key blob (``ssh-rsa``,
  ``ssh-ed25519``, ``ecdsa-sha2-nistp256``...): what the key *is*;
* the **signature algorithm** is the name negotiated in KEXINIT and written in
  front of each signature (``rsa-sha2-512``, ``ssh-ed25519``...): how a
  signature was *made*. One RSA key serves three of them.

:data:`HOST_KEY_ALGORITHMS` is the one table joining the two: each row names a
signature algorithm, the key type it needs and the hash it uses. Adding an
algorithm for an existing key family is one row; a new family is one row in
``_KEY_FAMILIES`` plus its decode and verify functions.

This module owns decoding public key blobs (RFC 4253 §6.6, RFC 5656 §3.1,
RFC 8709) and verifying signatures. It knows nothing of private keys, key
files or known_hosts; those live in :mod:`trissh._auth`.

``verify`` never raises on bad input: a server controls the signature bytes, so
every malformed or mismatched signature is simply "not valid" (False).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, TypeAlias, final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .._errors import KeyImportError
from .._public import public
from .._wire import DecodeError, Reader, mpint, string

__all__ = [
    "DEFAULT_HOST_KEY_ALGORITHMS",
    "HOST_KEY_ALGORITHMS",
    "LEGACY_HOST_KEY_ALGORITHMS",
    "SUPPORTED_KEY_TYPES",
    "CryptoPublicKey",
    "PublicKey",
    "SignatureAlgorithm",
    "decode_public_key",
    "parse_openssh_public_key",
    "public_key_from_crypto",
]

#: The `cryptography` public key classes trissh can use.
CryptoPublicKey: TypeAlias = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey

# OpenSSH refuses RSA keys under 1024 bits (SSH_RSA_MINIMUM_MODULUS_SIZE); so do we.
RSA_MIN_BITS: Final = 1024
# Reader.mpint already caps a field at 2048 bytes (16384 bits), OpenSSH's own maximum.


@dataclass(frozen=True, slots=True)
class SignatureAlgorithm:
    """One row of :data:`HOST_KEY_ALGORITHMS`.

    Fields:
        name: the signature algorithm name, as negotiated and as written in signature blobs.
        key_type: the public key blob type it needs.
        hash: the hash signed over, or None for Ed25519 (which hashes internally).
        legacy: negotiated only when a caller names it, never by default.
    """

    name: str
    key_type: str
    hash: type[hashes.HashAlgorithm] | None
    legacy: bool = False


HOST_KEY_ALGORITHMS: Final[Mapping[str, SignatureAlgorithm]] = {
    row.name: row
    for row in (
        SignatureAlgorithm("ssh-ed25519", "ssh-ed25519", None),  # RFC 8709
        SignatureAlgorithm("ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256", hashes.SHA256),  # RFC 5656 §6.2.1
        SignatureAlgorithm("ecdsa-sha2-nistp384", "ecdsa-sha2-nistp384", hashes.SHA384),
        SignatureAlgorithm("ecdsa-sha2-nistp521", "ecdsa-sha2-nistp521", hashes.SHA512),
        SignatureAlgorithm("rsa-sha2-512", "ssh-rsa", hashes.SHA512),  # RFC 8332 §3
        SignatureAlgorithm("rsa-sha2-256", "ssh-rsa", hashes.SHA256),
        SignatureAlgorithm("ssh-rsa", "ssh-rsa", hashes.SHA1, legacy=True),  # RFC 4253 §6.6; SHA-1
    )
}

#: Signature algorithms usable only when a caller asks for them by name.
LEGACY_HOST_KEY_ALGORITHMS: Final[frozenset[str]] = frozenset(
    name for name, row in HOST_KEY_ALGORITHMS.items() if row.legacy
)

#: Preference order offered in KEXINIT when the caller names none; no legacy
#: row (``ssh-rsa``, SHA-1) is in it.
DEFAULT_HOST_KEY_ALGORITHMS: Final[list[str]] = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
]

# SSH curve identifier (RFC 5656 §6.1) -> (cryptography curve, field size in bytes).
_CURVES: Final[Mapping[str, tuple[type[ec.EllipticCurve], int]]] = {
    "nistp256": (ec.SECP256R1, 32),
    "nistp384": (ec.SECP384R1, 48),
    "nistp521": (ec.SECP521R1, 66),
}
_CURVE_BY_CRYPTO_NAME: Final[Mapping[str, str]] = {
    cls().name: ssh_name for ssh_name, (cls, _size) in _CURVES.items()
}


@public
@final
class PublicKey:
    """An SSH public key: its wire blob plus the `cryptography` object to verify with.

    Build one with :func:`decode_public_key`, :func:`public_key_from_crypto` or
    :func:`parse_openssh_public_key`. Two keys are equal when their blobs are.

    Attributes:
        key_type: the type name inside the blob, e.g. ``"ssh-ed25519"``.
        blob: the SSH wire encoding of the key (RFC 4253 §6.6).
        crypto_key: the `cryptography` public key object.
    """

    __slots__ = ("_blob", "_crypto_key", "_key_type")

    def __init__(self, key_type: str, blob: bytes, crypto_key: CryptoPublicKey) -> None:
        # Private constructor: use decode_public_key(), which validates the blob.
        self._key_type = key_type
        self._blob = blob
        self._crypto_key = crypto_key

    @property
    def key_type(self) -> str:
        return self._key_type

    @property
    def blob(self) -> bytes:
        return self._blob

    @property
    def crypto_key(self) -> CryptoPublicKey:
        return self._crypto_key

    @property
    def bits(self) -> int:
        """The key size in bits, as ``ssh-keygen -l`` shows it (256 for Ed25519)."""
        key = self._crypto_key
        if isinstance(key, ed25519.Ed25519PublicKey):
            return 256
        return key.key_size

    @property
    def fingerprint(self) -> str:
        """``SHA256:`` and the unpadded base64 SHA-256 of the blob, as ``ssh-keygen -l`` prints it."""
        digest = hashlib.sha256(self._blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")

    def openssh_line(self, comment: str = "") -> str:
        """The key as one OpenSSH public key line: ``"<type> <base64 blob>[ <comment>]"``."""
        line = f"{self._key_type} {base64.b64encode(self._blob).decode('ascii')}"
        return f"{line} {comment}" if comment else line

    def verify(self, signature_blob: bytes, data: bytes, algorithm: str) -> bool:
        """Check an SSH signature over ``data``.

        Args:
            signature_blob: ``string algorithm-name || string signature`` (RFC 4253 §6.6).
            data: the signed bytes (for a host key, the exchange hash H).
            algorithm: the negotiated signature algorithm; the blob must carry the same name.

        Returns:
            True only for a well-formed, valid signature made with ``algorithm``
            by this key; False for anything else. Never raises for bad input.
        """
        row = HOST_KEY_ALGORITHMS.get(algorithm)
        if row is None or row.key_type != self._key_type:
            return False
        try:
            reader = Reader(signature_blob, "signature")
            if reader.string() != algorithm.encode("ascii"):
                return False
            signature = reader.string()
            reader.check_end()
            verifier = _KEY_FAMILIES[_family(self._key_type)][1]
            verifier(self._crypto_key, signature, data, row.hash)
        except (DecodeError, InvalidSignature, ValueError, TypeError, OverflowError):
            return False
        return True

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PublicKey):
            return NotImplemented
        return self._blob == other._blob

    def __hash__(self) -> int:
        return hash(self._blob)

    def __repr__(self) -> str:
        return f"<PublicKey {self._key_type} {self.fingerprint}>"


# --- decoding, one function per key family -----------------------------------------------------


def _decode_ed25519(key_type: str, reader: Reader) -> CryptoPublicKey:
    # RFC 8709 §4: string "ssh-ed25519" || string key (32 bytes)
    raw = reader.string()
    if len(raw) != 32:
        raise KeyImportError(f"ssh-ed25519 public key must be 32 bytes, got {len(raw)}")
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def _decode_ecdsa(key_type: str, reader: Reader) -> CryptoPublicKey:
    # RFC 5656 §3.1: string "ecdsa-sha2-<id>" || string <id> || string Q
    expected = key_type.removeprefix("ecdsa-sha2-")
    curve_name = reader.ascii()
    if curve_name != expected:
        raise KeyImportError(f"{key_type} public key names curve {curve_name!r}, expected {expected!r}")
    curve_cls, size = _CURVES[expected]
    point = reader.string()
    # OpenSSH accepts only uncompressed points (0x04 || x || y); so do we, so that
    # one key has one blob and one fingerprint.
    if len(point) != 1 + 2 * size or point[0] != 0x04:
        raise KeyImportError(
            f"{key_type} public key point must be uncompressed ({1 + 2 * size} bytes starting 0x04), "
            f"got {len(point)} bytes"
        )
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(curve_cls(), point)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyImportError(f"{key_type} public key point is not on curve {curve_name}") from None


def _decode_rsa(key_type: str, reader: Reader) -> CryptoPublicKey:
    # RFC 4253 §6.6: string "ssh-rsa" || mpint e || mpint n
    e = reader.mpint()
    n = reader.mpint()
    if e <= 0 or n <= 0:
        raise KeyImportError("ssh-rsa public key has a non-positive exponent or modulus")
    if n.bit_length() < RSA_MIN_BITS:
        raise KeyImportError(f"ssh-rsa key of {n.bit_length()} bits is too small (minimum {RSA_MIN_BITS})")
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as exc:
        raise KeyImportError(f"ssh-rsa public key is invalid: {exc}") from None


# --- verification, one function per key family ------------------------------------------------
# Each raises (InvalidSignature, ValueError, DecodeError...) on a bad signature;
# PublicKey.verify turns every such failure into False.


def _verify_ed25519(
    key: CryptoPublicKey, signature: bytes, data: bytes, hash_cls: type[hashes.HashAlgorithm] | None
) -> None:
    assert isinstance(key, ed25519.Ed25519PublicKey)
    if len(signature) != 64:  # RFC 8709 §6
        raise InvalidSignature
    key.verify(signature, data)


def _verify_ecdsa(
    key: CryptoPublicKey, signature: bytes, data: bytes, hash_cls: type[hashes.HashAlgorithm] | None
) -> None:
    assert isinstance(key, ec.EllipticCurvePublicKey) and hash_cls is not None
    # RFC 5656 §3.1.2: the signature string holds mpint r || mpint s.
    reader = Reader(signature, "ecdsa signature")
    r = reader.mpint()
    s = reader.mpint()
    reader.check_end()
    if r <= 0 or s <= 0:
        raise InvalidSignature
    key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hash_cls()))


def _verify_rsa(
    key: CryptoPublicKey, signature: bytes, data: bytes, hash_cls: type[hashes.HashAlgorithm] | None
) -> None:
    assert isinstance(key, rsa.RSAPublicKey) and hash_cls is not None
    modulus_len = (key.key_size + 7) // 8
    if len(signature) > modulus_len:
        raise InvalidSignature
    # Some implementations drop leading zero bytes of the signature; OpenSSH pads
    # them back, and OpenSSL insists on the full length, so pad here too.
    signature = signature.rjust(modulus_len, b"\x00")
    key.verify(signature, data, padding.PKCS1v15(), hash_cls())


_Decoder: TypeAlias = Callable[[str, Reader], CryptoPublicKey]
_Verifier: TypeAlias = Callable[[CryptoPublicKey, bytes, bytes, type[hashes.HashAlgorithm] | None], None]

# Key family -> (decode blob body, verify signature).
_KEY_FAMILIES: Final[Mapping[str, tuple[_Decoder, _Verifier]]] = {
    "ssh-ed25519": (_decode_ed25519, _verify_ed25519),
    "ecdsa": (_decode_ecdsa, _verify_ecdsa),
    "ssh-rsa": (_decode_rsa, _verify_rsa),
}

#: Every public key blob type this module decodes.
SUPPORTED_KEY_TYPES: Final[frozenset[str]] = frozenset(row.key_type for row in HOST_KEY_ALGORITHMS.values())


def _family(key_type: str) -> str:
    return "ecdsa" if key_type.startswith("ecdsa-sha2-") else key_type


def decode_public_key(blob: bytes) -> PublicKey:
    """Parse and fully validate an SSH public key blob (RFC 4253 §6.6, RFC 5656 §3.1, RFC 8709).

    Raises:
        KeyImportError: for an unknown key type, a truncated blob or trailing bytes,
            an EC point not on its curve or a curve name that does not match the
            type, or an RSA key under 1024 bits. The message says which.
    """
    blob = bytes(blob)
    try:
        reader = Reader(blob, "public key blob")
        key_type = reader.ascii()
        if key_type not in SUPPORTED_KEY_TYPES:
            raise KeyImportError(f"unsupported public key type {key_type[:64]!r}")
        decoder = _KEY_FAMILIES[_family(key_type)][0]
        crypto_key = decoder(key_type, reader)
        reader.check_end()
    except DecodeError as exc:
        raise KeyImportError(f"malformed public key: {exc}") from None
    return PublicKey(key_type, blob, crypto_key)


def public_key_from_crypto(key: CryptoPublicKey) -> PublicKey:
    """Wrap a `cryptography` Ed25519, ECDSA (P-256/384/521) or RSA public key.

    Raises:
        KeyImportError: for another key type or curve, or an RSA key under 1024 bits.
    """
    if isinstance(key, ed25519.Ed25519PublicKey):
        blob = string("ssh-ed25519") + string(key.public_bytes_raw())
    elif isinstance(key, ec.EllipticCurvePublicKey):
        curve = _CURVE_BY_CRYPTO_NAME.get(key.curve.name)
        if curve is None:
            raise KeyImportError(f"unsupported elliptic curve {key.curve.name}")
        # Imported here, not at the top: cryptography's serialization package loads its SSH key file
        # parser (and bcrypt), which a connection that reads no key file never needs.
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        blob = string(f"ecdsa-sha2-{curve}") + string(curve) + string(point)
    elif isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        blob = string("ssh-rsa") + mpint(numbers.e) + mpint(numbers.n)
    else:
        raise KeyImportError(f"unsupported key type {type(key).__name__}")
    # Decoding our own encoding applies every validation rule in one place.
    return decode_public_key(blob)


def parse_openssh_public_key(line: str | bytes) -> PublicKey:
    """Parse one OpenSSH public key line, ``"<type> <base64 blob> [comment]"``.

    Raises:
        KeyImportError: if the line is not of that form, the base64 is bad, the
            blob is invalid, or the type word differs from the type in the blob.
    """
    # The comment may be any UTF-8; only the first two words must be ASCII.
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    fields = text.split(maxsplit=2)
    if len(fields) < 2:
        raise KeyImportError("not an OpenSSH public key line (expected '<type> <base64>')")
    type_word, b64 = fields[0], fields[1]
    try:
        blob = base64.b64decode(b64.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise KeyImportError(f"{type_word[:64]} public key: invalid base64") from None
    key = decode_public_key(blob)
    if key.key_type != type_word:
        raise KeyImportError(f"public key line says {type_word[:64]!r} but the key is {key.key_type!r}")
    return key
