"""The deflate streams of SSH compression, one per direction (see :mod:`trissh._algorithms.compression`).

Imported only once a connection compresses: the method names and the rules of
when a stream starts stay in :mod:`~trissh._algorithms.compression`.
"""

from __future__ import annotations

import zlib
from typing import Final

from .._errors import DisconnectReason, ProtocolError
from .compression import MAX_INFLATED_PAYLOAD

__all__ = ["Compressor", "Decompressor"]

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
