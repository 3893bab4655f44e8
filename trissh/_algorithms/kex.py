"""Key exchange methods: the client side of each, as small sans-IO objects.

A method is created once per key exchange with the exchange-hash prefix
(``string V_C || string V_S || string I_C || string I_S``, RFC 4253 §8), gives
the first message to send from :meth:`KexMethod.start`, and turns each server
message into either another message to send or a finished :class:`KexResult`.
The transport state machine checks the host key signature over the result's
exchange hash and derives the keys; a method knows nothing of packets, keys or
host keys beyond carrying the server's blob and signature.

Adding a method is one class and one row in ``KEX_METHODS``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519

from .. import _messages as msg
from .._errors import DisconnectReason, ProtocolError
from .._wire import Reader, byte, mpint_from_unsigned, string

__all__ = [
    "DEFAULT_KEX_ALGORITHMS",
    "KEX_METHODS",
    "Curve25519Kex",
    "KexMethod",
    "KexResult",
]


@dataclass(frozen=True)
class KexResult:
    """What a finished key exchange hands to the transport.

    Fields: host_key_blob (K_S), signature (the server's signature blob over H),
    shared_secret (K, already encoded as an mpint), exchange_hash (H).
    """

    host_key_blob: bytes
    signature: bytes
    shared_secret: bytes
    exchange_hash: bytes


class KexMethod(ABC):
    """One client-side key exchange."""

    name: str
    hash_algorithm: type[hashes.HashAlgorithm]

    def __init__(self, name: str, hash_prefix: bytes, random: Callable[[int], bytes]) -> None:
        self.name = name
        self._prefix = hash_prefix
        self._random = random

    def hash(self, data: bytes) -> bytes:
        digest = hashes.Hash(self.hash_algorithm())
        digest.update(data)
        return digest.finalize()

    @abstractmethod
    def start(self) -> bytes:
        """The payload of the client's first key exchange message."""

    @abstractmethod
    def receive(self, payload: bytes | memoryview) -> bytes | KexResult:
        """Handle one server message: the next payload to send, or the result."""


class Curve25519Kex(KexMethod):
    """curve25519-sha256 (RFC 8731), also named curve25519-sha256@libssh.org."""

    hash_algorithm = hashes.SHA256

    def __init__(self, name: str, hash_prefix: bytes, random: Callable[[int], bytes]) -> None:
        super().__init__(name, hash_prefix, random)
        self._private = x25519.X25519PrivateKey.from_private_bytes(random(32))
        self._public = self._private.public_key().public_bytes_raw()

    def start(self) -> bytes:
        return byte(msg.KEX_ECDH_INIT) + string(self._public)

    def receive(self, payload: bytes | memoryview) -> KexResult:
        if payload[0] != msg.KEX_ECDH_REPLY:
            raise ProtocolError(
                f"{self.name}: expected KEX_ECDH_REPLY, got {msg.message_name(payload[0])}",
                DisconnectReason.KEY_EXCHANGE_FAILED,
            )
        reader = Reader(payload, "KEX_ECDH_REPLY")
        reader.byte()
        host_key = reader.string()
        server_public = reader.string()
        signature = reader.string()
        reader.check_end()
        if len(server_public) != 32:
            raise ProtocolError(
                f"{self.name}: server public key is {len(server_public)} bytes, expected 32",
                DisconnectReason.KEY_EXCHANGE_FAILED,
            )
        try:
            secret = self._private.exchange(x25519.X25519PublicKey.from_public_bytes(server_public))
        except ValueError:
            # cryptography refuses an all-zero result (a low-order point), as RFC 7748 §6.1 asks.
            raise ProtocolError(
                f"{self.name}: server public key gives an all-zero shared secret",
                DisconnectReason.KEY_EXCHANGE_FAILED,
            ) from None
        shared = mpint_from_unsigned(secret)
        exchange_hash = self.hash(
            self._prefix + string(host_key) + string(self._public) + string(server_public) + shared
        )
        return KexResult(host_key, signature, shared, exchange_hash)


KEX_METHODS: Final[dict[str, type[KexMethod]]] = {
    "curve25519-sha256": Curve25519Kex,
    "curve25519-sha256@libssh.org": Curve25519Kex,
}

DEFAULT_KEX_ALGORITHMS: Final = ["curve25519-sha256", "curve25519-sha256@libssh.org"]
