"""mlkem768x25519-sha256: ML-KEM-768 (FIPS 203) and X25519 together, OpenSSH 10's default.

The client sends ``KEX_HYBRID_INIT`` with one string: its ML-KEM-768
encapsulation key (1184 bytes) followed by an X25519 public key (32). The
server encapsulates to the first and answers ``KEX_HYBRID_REPLY`` with its
host key, one string of ciphertext (1088 bytes) followed by its own X25519
public key, and its signature. The shared secret is
``K = SHA-256(ML-KEM secret || X25519 secret)``, encoded as a *string*
(not an mpint) both in the exchange hash and in key derivation; the hash is
``H(prefix || string K_S || string C_INIT || string S_REPLY || string K)``.
Either half alone keeps the session keys secret.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519

from ... import _messages as msg
from ..._wire import string
from .availability import mlkem_available
from .base import KexMethod, KexResult, KexSetup, kex_failed
from .ecdh import x25519_shared_secret

try:  # cryptography 47+ with an OpenSSL that has ML-KEM
    from cryptography.hazmat.primitives.asymmetric import mlkem
except ImportError:  # pragma: no cover - depends on the installed cryptography
    mlkem = None  # type: ignore[assignment]

__all__ = ["MLKEM_AVAILABLE", "MlKem768X25519Kex"]

_ENCAPSULATION_KEY_SIZE: Final = 1184
_CIPHERTEXT_SIZE: Final = 1088
_X25519_SIZE: Final = 32


MLKEM_AVAILABLE: Final = mlkem_available()


class MlKem768X25519Kex(KexMethod):
    """The client side of mlkem768x25519-sha256."""

    hash_algorithm = hashes.SHA256

    def __init__(self, setup: KexSetup) -> None:
        super().__init__(setup)
        assert mlkem is not None, "mlkem768x25519-sha256 needs cryptography with ML-KEM"
        self._kem = mlkem.MLKEM768PrivateKey.generate()
        self._x25519 = x25519.X25519PrivateKey.from_private_bytes(self._random(32))
        self._client_init = (
            self._kem.public_key().public_bytes_raw() + self._x25519.public_key().public_bytes_raw()
        )

    def start(self) -> bytes:
        return bytes((msg.KEX_HYBRID_INIT,)) + string(self._client_init)

    def receive(self, payload: bytes | memoryview) -> KexResult:
        reader = self._reader(payload, msg.KEX_HYBRID_REPLY, "KEX_HYBRID_REPLY")
        host_key = reader.string()
        server_reply = reader.string()
        signature = reader.string()
        reader.check_end()
        if len(server_reply) != _CIPHERTEXT_SIZE + _X25519_SIZE:
            raise kex_failed(
                self.name,
                f"server's reply is {len(server_reply)} bytes, expected {_CIPHERTEXT_SIZE + _X25519_SIZE} "
                f"(ML-KEM-768 ciphertext and X25519 public key)",
            )
        try:
            kem_secret = self._kem.decapsulate(server_reply[:_CIPHERTEXT_SIZE])
        except ValueError:
            raise kex_failed(self.name, "server's ML-KEM-768 ciphertext is malformed") from None
        classic_secret = x25519_shared_secret(self.name, self._x25519, server_reply[_CIPHERTEXT_SIZE:])
        shared = string(self.hash(kem_secret + classic_secret))
        exchange_hash = self.hash(
            self._prefix + string(host_key) + string(self._client_init) + string(server_reply) + shared
        )
        return KexResult(host_key, signature, shared, exchange_hash)
