"""Payload compression: ``zlib`` (RFC 4253 §6.2) and ``zlib@openssh.com`` (OpenSSH PROTOCOL §2.2).

Both are one deflate stream per direction, flushed at the end of every packet
(a partial flush, as OpenSSH does) so that each packet can be inflated as soon
as it arrives, and started afresh after every key exchange that selects them
(RFC 4253 §6.2: the context is initialised after each key exchange). The MAC
and padding apply to the compressed payload. ``zlib`` starts with the new
keys; ``zlib@openssh.com`` waits until authentication has succeeded, so that
nothing an unauthenticated client sends reaches the server's zlib.

A small packet may inflate to far more than it was on the wire: inflation is
bounded by :data:`MAX_INFLATED_PAYLOAD` per packet (OpenSSH's own packet size
limit), and a packet that would inflate past it ends the connection.
"""

from __future__ import annotations

import zlib
from typing import Final

from .._errors import DisconnectReason, ProtocolError

__all__ = [
    "COMPRESSION_METHODS",
    "COMPRESSION_WHEN_ASKED",
    "DEFAULT_COMPRESSION",
    "DELAYED",
    "MAX_INFLATED_PAYLOAD",
    "Compressor",
    "Decompressor",
    "compressor_for",
    "decompressor_for",
]

#: Every method we speak; "none" first.
COMPRESSION_METHODS: Final = ("none", "zlib@openssh.com", "zlib")
#: What is offered when the caller does not ask for compression (as OpenSSH's ``Compression no``).
DEFAULT_COMPRESSION: Final = ("none",)
#: What ``compression=True`` offers: OpenSSH's ``Compression yes`` list.
COMPRESSION_WHEN_ASKED: Final = ("zlib@openssh.com", "zlib", "none")
#: Methods that start only after authentication succeeds.
DELAYED: Final = frozenset({"zlib@openssh.com"})
#: The most one packet's payload may inflate to.
MAX_INFLATED_PAYLOAD: Final = 256 * 1024

# OpenSSH's level: compression costs CPU on every packet; 6 is zlib's own default balance.
_LEVEL: Final = 6


class Compressor:
    """The sending direction's deflate stream."""

    __slots__ = ("_flush", "_stream")

    def __init__(self) -> None:
        self._stream = zlib.compressobj(_LEVEL)
        self._flush = zlib.Z_PARTIAL_FLUSH

    def compress(
        self, payload: bytes | bytearray | memoryview, tail: bytes | bytearray | memoryview = b""
    ) -> bytes:
        """``payload + tail`` compressed and flushed: a whole packet's payload."""
        stream = self._stream
        out = stream.compress(payload)
        if tail:
            out += stream.compress(tail)
        return out + stream.flush(self._flush)


class Decompressor:
    """The receiving direction's inflate stream, bounded per packet."""

    __slots__ = ("_stream",)

    def __init__(self) -> None:
        self._stream = zlib.decompressobj()

    def decompress(self, seq: int, data: bytes | bytearray | memoryview) -> bytes:
        """One packet's payload inflated.

        Raises:
            ProtocolError: the data is not valid deflate data, or inflates past
                :data:`MAX_INFLATED_PAYLOAD`.
        """
        stream = self._stream
        try:
            payload = stream.decompress(data, MAX_INFLATED_PAYLOAD)
        except zlib.error as exc:
            raise ProtocolError(
                f"packet {seq}: compressed payload is corrupt ({exc})", DisconnectReason.COMPRESSION_ERROR
            ) from None
        if stream.unconsumed_tail:
            raise ProtocolError(
                f"packet {seq}: compressed payload inflates past {MAX_INFLATED_PAYLOAD} bytes",
                DisconnectReason.COMPRESSION_ERROR,
            )
        if stream.eof:
            raise ProtocolError(
                f"packet {seq}: compressed stream ended (a partial flush never ends it)",
                DisconnectReason.COMPRESSION_ERROR,
            )
        if not payload:
            raise ProtocolError(
                f"packet {seq}: compressed payload inflates to nothing", DisconnectReason.COMPRESSION_ERROR
            )
        return payload


def _starts_now(method: str, authenticated: bool) -> bool:
    return method == "zlib" or (method in DELAYED and authenticated)


def compressor_for(method: str, authenticated: bool) -> Compressor | None:
    """The stream to start for ``method`` now (None: not compressing yet, or at all)."""
    return Compressor() if _starts_now(method, authenticated) else None


def decompressor_for(method: str, authenticated: bool) -> Decompressor | None:
    """As :func:`compressor_for`, for the receiving direction."""
    return Decompressor() if _starts_now(method, authenticated) else None
