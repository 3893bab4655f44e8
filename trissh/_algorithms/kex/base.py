"""What every key exchange method shares: its inputs, its result, and its shape.

A method is created once per key exchange from a :class:`KexSetup`, gives the
first message to send from :meth:`KexMethod.start`, and turns each server
message into either another message to send or a finished :class:`KexResult`.
The transport state machine checks the host key signature over the result's
exchange hash and derives the keys; a method knows nothing of packets, keys or
host keys beyond carrying the server's blob and signature.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes

from ... import _messages as msg
from ..._errors import DisconnectReason, ProtocolError
from ..._public import public
from ..._wire import Reader

__all__ = ["GexBits", "KexMethod", "KexResult", "KexSetup", "kex_failed"]


@public
@dataclass(frozen=True)
class GexBits:
    """Group sizes asked for in a Diffie-Hellman group exchange (RFC 4419, RFC 8270).

    ``minimum`` is also the smallest group accepted: a server that offers less
    is refused. The defaults are OpenSSH's: at least 2048 bits, 8192 at most,
    and a preferred size that OpenSSH derives from the cipher's strength; 3072
    matches 128-bit ciphers.
    """

    minimum: int = 2048
    preferred: int = 3072
    maximum: int = 8192

    @classmethod
    def of(cls, value: GexBits | tuple[int, int, int] | None) -> GexBits:
        """``value`` as GexBits: a ``(minimum, preferred, maximum)`` tuple, or None for the defaults."""
        if value is None:
            return cls()
        return value if isinstance(value, GexBits) else cls(*value)

    def __post_init__(self) -> None:
        if not 1024 <= self.minimum <= self.preferred <= self.maximum <= 16384:
            raise ValueError(
                f"group exchange sizes must satisfy 1024 <= minimum <= preferred <= maximum <= 16384, "
                f"got {self.minimum}/{self.preferred}/{self.maximum}"
            )


@dataclass(frozen=True)
class KexSetup:
    """What a method is built with.

    Fields: name (as negotiated), hash_prefix (``string V_C || string V_S ||
    string I_C || string I_S``, RFC 4253 §8: the start of every exchange hash),
    random (the randomness source, replaceable in tests), gex_bits.
    """

    name: str
    hash_prefix: bytes
    random: Callable[[int], bytes]
    gex_bits: GexBits = field(default_factory=GexBits)


@dataclass(frozen=True)
class KexResult:
    """What a finished key exchange hands to the transport.

    Fields: host_key_blob (K_S), signature (the server's signature blob over H),
    shared_secret (K, already encoded as the method requires: an mpint for the
    classic methods, a string for the hybrid ones), exchange_hash (H).
    """

    host_key_blob: bytes
    signature: bytes
    shared_secret: bytes
    exchange_hash: bytes


def kex_failed(name: str, problem: str) -> ProtocolError:
    """The error for a server's key exchange message we cannot accept."""
    return ProtocolError(f"{name}: {problem}", DisconnectReason.KEY_EXCHANGE_FAILED)


class KexMethod(ABC):
    """One client-side key exchange."""

    hash_algorithm: type[hashes.HashAlgorithm]

    def __init__(self, setup: KexSetup) -> None:
        self.name = setup.name
        self._prefix = setup.hash_prefix
        self._random = setup.random

    def hash(self, data: bytes) -> bytes:
        digest = hashes.Hash(self.hash_algorithm())
        digest.update(data)
        return digest.finalize()

    def _reader(self, payload: bytes | memoryview, expected: int, what: str) -> Reader:
        """A reader past the message number, which must be ``expected`` (named ``what``)."""
        if payload[0] != expected:
            raise kex_failed(self.name, f"expected {what}, got {msg.message_name(payload[0])}")
        reader = Reader(payload, what)
        reader.byte()
        return reader

    @abstractmethod
    def start(self) -> bytes:
        """The payload of the client's first key exchange message."""

    @abstractmethod
    def receive(self, payload: bytes | memoryview) -> bytes | KexResult:
        """Handle one server message: the next payload to send, or the result."""
