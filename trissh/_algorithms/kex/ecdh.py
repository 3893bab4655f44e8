"""Elliptic-curve Diffie-Hellman: curve25519-sha256 (RFC 8731) and ecdh-sha2-nistp256/384/521 (RFC 5656).

Both send one ephemeral public key (``KEX_ECDH_INIT``) and get the server's
host key, its ephemeral public key and its signature back (``KEX_ECDH_REPLY``).
The exchange hash is ``H(prefix || string K_S || string Q_C || string Q_S ||
mpint K)`` and K is the shared x-coordinate (or X25519 output) as an mpint.
"""

from __future__ import annotations

from functools import partial
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from ... import _messages as msg
from ..._wire import mpint_from_unsigned, string
from .base import KexMethod, KexResult, KexSetup, kex_failed

__all__ = [
    "NISTP256_SHA256",
    "NISTP384_SHA384",
    "NISTP521_SHA512",
    "Curve25519Kex",
    "NistEcdhKex",
    "x25519_shared_secret",
]


def x25519_shared_secret(name: str, private: x25519.X25519PrivateKey, server_public: bytes) -> bytes:
    """The X25519 output with the server's 32-byte public key, refusing bad ones."""
    if len(server_public) != 32:
        raise kex_failed(name, f"server's X25519 public key is {len(server_public)} bytes, expected 32")
    try:
        return private.exchange(x25519.X25519PublicKey.from_public_bytes(server_public))
    except ValueError:
        # cryptography refuses an all-zero result (a low-order point), as RFC 7748 §6.1 asks.
        raise kex_failed(name, "server's X25519 public key gives an all-zero shared secret") from None


class _EcdhKex(KexMethod):
    """The message flow both ECDH flavours share; subclasses do the curve arithmetic."""

    _public: bytes

    def start(self) -> bytes:
        return bytes((msg.KEX_ECDH_INIT,)) + string(self._public)

    def receive(self, payload: bytes | memoryview) -> KexResult:
        reader = self._reader(payload, msg.KEX_ECDH_REPLY, "KEX_ECDH_REPLY")
        host_key = reader.string()
        server_public = reader.string()
        signature = reader.string()
        reader.check_end()
        shared = mpint_from_unsigned(self._shared_secret(server_public))
        exchange_hash = self.hash(
            self._prefix + string(host_key) + string(self._public) + string(server_public) + shared
        )
        return KexResult(host_key, signature, shared, exchange_hash)

    def _shared_secret(self, server_public: bytes) -> bytes:
        raise NotImplementedError


class Curve25519Kex(_EcdhKex):
    """curve25519-sha256 (RFC 8731), also named curve25519-sha256@libssh.org."""

    hash_algorithm = hashes.SHA256

    def __init__(self, setup: KexSetup) -> None:
        super().__init__(setup)
        self._private = x25519.X25519PrivateKey.from_private_bytes(self._random(32))
        self._public = self._private.public_key().public_bytes_raw()

    def _shared_secret(self, server_public: bytes) -> bytes:
        return x25519_shared_secret(self.name, self._private, server_public)


class NistEcdhKex(_EcdhKex):
    """ecdh-sha2-nistp256 / -nistp384 / -nistp521 (RFC 5656 §4), each with its curve's hash."""

    def __init__(
        self, setup: KexSetup, curve: ec.EllipticCurve, hash_algorithm: type[hashes.HashAlgorithm]
    ) -> None:
        super().__init__(setup)
        self.hash_algorithm = hash_algorithm
        self._curve = curve
        self._private = ec.generate_private_key(curve)
        # Imported here: cryptography's serialization package loads its SSH key parser (and bcrypt).
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        self._public = self._private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)

    def _shared_secret(self, server_public: bytes) -> bytes:
        try:
            # Decoding checks that the point is on the curve (RFC 5656 §4 asks for it).
            point = ec.EllipticCurvePublicKey.from_encoded_point(self._curve, server_public)
        except ValueError:
            raise kex_failed(
                self.name,
                f"server's public key is not a point on {self._curve.name} ({len(server_public)} bytes)",
            ) from None
        return self._private.exchange(ec.ECDH(), point)


# The registry's factories (trissh._algorithms.kex names each by "ecdh:NAME").
NISTP256_SHA256: Final = partial(NistEcdhKex, curve=ec.SECP256R1(), hash_algorithm=hashes.SHA256)
NISTP384_SHA384: Final = partial(NistEcdhKex, curve=ec.SECP384R1(), hash_algorithm=hashes.SHA384)
NISTP521_SHA512: Final = partial(NistEcdhKex, curve=ec.SECP521R1(), hash_algorithm=hashes.SHA512)
