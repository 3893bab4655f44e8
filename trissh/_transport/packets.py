"""The binary packet layer (RFC 4253 §6): framing, sequence numbers, byte counts.

One :class:`PacketReader` and one :class:`PacketWriter` per connection. Each
holds the current :class:`Opener`/:class:`Sealer` and its 32-bit sequence number;
the key exchange swaps in new ones at NEWKEYS (and, under strict KEX, resets the
sequence number). Both count bytes and packets since the last key change, which
is what the rekey limits are measured against.

The reader holds at most one packet plus one network read: the driver only
reads from the socket when :meth:`PacketReader.next_packet` says it needs more,
and the opener refuses oversized lengths before they are waited for.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from .. import _messages as msg
from .._algorithms.ciphers import (
    MAX_OVERHEAD,
    MAX_PACKET_LENGTH,
    Opener,
    PacketError,
    Sealer,
    plain_opener,
    plain_sealer,
)

if TYPE_CHECKING:  # the streams' module (zlib) is imported when a connection first compresses
    from .._algorithms.zlib_streams import Compressor, Decompressor

__all__ = ["PACKET_LOG", "PacketReader", "PacketWriter", "packet_debug_enabled"]

_SEQ_MASK = 0xFFFFFFFF

#: One DEBUG line per packet each way: its message type, length and channel, never its contents.
PACKET_LOG: Final = logging.getLogger("trissh.packets")


def packet_debug_enabled() -> bool:
    """Whether packets are logged: asked once per connection, so that the packet loop pays one
    boolean test per packet when they are not (DEBUG turned on later shows a later connection's)."""
    return PACKET_LOG.isEnabledFor(logging.DEBUG)


def _log_packet(
    label: str, direction: str, seq: int, payload: bytes | bytearray | memoryview, size: int
) -> None:
    """Log one packet's type, sequence number and payload length; for a channel message, its channel."""
    kind = payload[0] if payload else -1
    extra = ""
    if msg.CHANNEL_OPEN_CONFIRMATION <= kind <= msg.CHANNEL_FAILURE and len(payload) >= 5:
        # The recipient channel: the server's number for what we send, ours for what we receive.
        whose = "their" if direction == "sent" else "our"
        extra = f", {whose} channel {int.from_bytes(payload[1:5], 'big')}"
        if kind == msg.CHANNEL_WINDOW_ADJUST and len(payload) >= 9:
            extra += f", +{int.from_bytes(payload[5:9], 'big')} window"
        elif kind == msg.CHANNEL_REQUEST:
            extra += f", {_name_at(payload, 5)}"
    elif kind in (msg.CHANNEL_OPEN, msg.GLOBAL_REQUEST):
        extra = f", {_name_at(payload, 1)}"
    PACKET_LOG.debug("%s%s #%d %s, %d bytes%s", label, direction, seq, msg.message_name(kind), size, extra)


def _name_at(payload: bytes | bytearray | memoryview, offset: int) -> str:
    """The request or channel type name (an SSH string) at ``offset``: a name, never data."""
    length = int.from_bytes(payload[offset : offset + 4], "big")
    name = bytes(payload[offset + 4 : offset + 4 + min(length, 64)])
    return repr(name.decode("ascii", "replace"))


# Buffers start empty and small, since most connections only ever send small
# packets (a thousand idle connections must stay cheap); a buffer doubles when
# a packet does not fit and keeps its size, so a bulk transfer grows it a few
# times only.
_MIN_CAPACITY = 256
# A buffer no longer in use is released while recent batches stay below this.
_TRIM_WHEN_QUIET_BELOW = 16 * 1024


class PacketWriter:
    """Seals outgoing payloads into an output buffer.

    Packets are sealed in place into a preallocated buffer. :meth:`take` hands
    out a view of what was sealed and switches to a second buffer, so packets
    sealed while the first is being sent never touch it: a view from
    :meth:`take` stays valid until the next call but one.
    """

    __slots__ = (
        "_buffer",
        "_fill",
        "_recent_peak",
        "_sealer",
        "_spare",
        "bytes_since_rekey",
        "compressor",
        "debug",
        "log_label",
        "packets_since_rekey",
        "seq",
        "wrapped",
    )

    def __init__(self) -> None:
        #: Log each packet at DEBUG (see :func:`packet_debug_enabled`), after ``log_label`` ("host:port: ").
        self.debug = False
        self.log_label = ""
        self._sealer: Sealer = plain_sealer()
        self.seq = 0
        self.wrapped = False  # the sequence number went past 2**32 - 1 since the last reset
        self._buffer = bytearray()
        self._spare = bytearray()
        self._fill = 0
        self._recent_peak = 0
        self.bytes_since_rekey = 0
        self.packets_since_rekey = 0
        #: Compresses each payload before it is sealed, once compression has started.
        self.compressor: Compressor | None = None

    def _reserve(self, size: int) -> memoryview:
        needed = self._fill + size
        if needed > len(self._buffer):
            grown = bytearray(max(needed, 2 * len(self._buffer), _MIN_CAPACITY))
            grown[: self._fill] = memoryview(self._buffer)[: self._fill]
            self._buffer = grown
        return memoryview(self._buffer)[self._fill :]

    def write(
        self, payload: bytes | bytearray | memoryview, tail: bytes | bytearray | memoryview = b""
    ) -> None:
        """Seal one packet whose payload is ``payload + tail`` (see ``Sealer.seal_into``)."""
        if self.debug:
            _log_packet(self.log_label, "sent", self.seq, payload, len(payload) + len(tail))
        if self.compressor is not None:
            payload, tail = self.compressor.compress(payload, tail), b""
        out = self._reserve(len(payload) + len(tail) + MAX_OVERHEAD)
        size = self._sealer.seal_into(self.seq, payload, out, tail)
        self._fill += size
        self.bytes_since_rekey += size
        self.packets_since_rekey += 1
        self.seq = (self.seq + 1) & _SEQ_MASK
        if self.seq == 0:
            self.wrapped = True

    def write_raw(self, data: bytes) -> None:
        """Queue bytes outside any packet (our version line)."""
        self._reserve(len(data))[: len(data)] = data
        self._fill += len(data)

    def set_sealer(self, sealer: Sealer, *, reset_seq: bool) -> None:
        self._sealer = sealer
        self.bytes_since_rekey = 0
        self.packets_since_rekey = 0
        if reset_seq:
            self.seq = 0
            self.wrapped = False

    @property
    def pending(self) -> int:
        """Bytes sealed and not yet taken."""
        return self._fill

    def put_back(self, rest: memoryview) -> None:
        """Put the unsent end of what :meth:`take` returned back in front of the output."""
        if rest:
            self._buffer = bytearray(rest) + memoryview(self._buffer)[: self._fill]
            self._fill = len(self._buffer)

    def take(self) -> memoryview:
        """Everything sealed so far, without a copy: valid until the next call but one."""
        taken = self._fill
        data = memoryview(self._buffer)[:taken]
        self._buffer, self._spare = self._spare, self._buffer
        self._fill = 0
        # A slowly decaying peak of recent batches: while traffic is small, let
        # the buffer that is no longer in use go (a process may hold thousands
        # of mostly idle connections; a small one is quickly made again). A
        # bulk stream never qualifies, so it never regrows its buffers.
        self._recent_peak = max(taken, int(self._recent_peak * 0.85))
        if self._recent_peak < _TRIM_WHEN_QUIET_BELOW:
            self._buffer = bytearray()
        return data


class PacketReader:
    """Opens complete packets from received chunks, one at a time.

    Received chunks are not copied into one growing buffer: a packet that lies
    wholly inside a chunk is opened in place (through a memoryview), and only
    a packet that straddles two chunks is assembled, from exactly its own
    bytes. With large socket reads most packets never move before decryption.
    """

    __slots__ = (
        "_chunk",
        "_discard_error",
        "_discard_left",
        "_opener",
        "_partial",
        "_pending_size",
        "_pos",
        "bytes_since_rekey",
        "debug",
        "decompressor",
        "log_label",
        "packets_since_rekey",
        "seq",
        "wrapped",
    )

    def __init__(self) -> None:
        #: As :attr:`PacketWriter.debug` and ``log_label``, for received packets.
        self.debug = False
        self.log_label = ""
        self._opener: Opener = plain_opener()
        self._pending_size = 0  # wire size of the packet being waited for, 0 if unknown
        self._chunk: bytes | bytearray | memoryview = b""  # the newest received chunk
        self._pos = 0  # how much of it is consumed
        self._partial = bytearray()  # the start of a packet that began in an earlier chunk
        #: Inflates each opened payload, once compression has started.
        self.decompressor: Decompressor | None = None
        # A failed packet whose error waits until _discard_left more bytes are read.
        self._discard_error: PacketError | None = None
        self._discard_left = 0
        self.seq = 0
        self.wrapped = False
        self.bytes_since_rekey = 0
        self.packets_since_rekey = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes. The caller must not modify ``data`` afterwards."""
        if self._pos < len(self._chunk):
            # What is left of the previous chunk is less than one packet: keep it.
            self._partial += self._chunk[self._pos :]
        self._chunk = data
        self._pos = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed by an opened packet."""
        return len(self._partial) + len(self._chunk) - self._pos

    def unconsumed(self) -> bytes:
        """A copy of the bytes received but not yet consumed."""
        return bytes(self._partial) + bytes(self._chunk[self._pos :])

    def _take(self, size: int) -> bytes | bytearray | memoryview:
        """The next ``size`` bytes (the caller checked they are there), consumed."""
        if self._partial:
            need = size - len(self._partial)
            packet = self._partial
            if need > 0:
                packet += self._chunk[self._pos : self._pos + need]
                self._pos += need
                self._partial = bytearray()
            else:  # only when the partial bytes alone hold the packet (tiny chunks)
                packet = self._partial[:size]
                del self._partial[:size]
            return packet
        start = self._pos
        self._pos += size
        return memoryview(self._chunk)[start : self._pos]

    def _peek(self, size: int) -> bytes:
        """A copy of the next ``size`` bytes without consuming them."""
        head = bytes(self._partial[:size])
        if len(head) < size:
            head += bytes(self._chunk[self._pos : self._pos + size - len(head)])
        return head

    def next_packet(self) -> tuple[int, bytes | memoryview] | None:
        """``(seq, payload)`` of the next complete packet, or None if more bytes are needed."""
        if self._discard_error is not None:
            self._discard()
            return None
        size = self._pending_size
        available = self.buffered
        if not size:
            header_size = self._opener.header_size
            if available < header_size:
                return None
            try:
                size = self._opener.packet_size(self.seq, memoryview(self._peek(header_size)))
            except PacketError as exc:
                self._start_discard(exc, 0)
                return None
            self._pending_size = size
        if available < size:
            return None
        packet = self._take(size)
        try:
            payload = self._opener.open(self.seq, memoryview(packet))
        except PacketError as exc:
            self._start_discard(exc, size)
            return None
        self._pending_size = 0
        if self._pos == len(self._chunk):
            self._chunk, self._pos = b"", 0  # hold no finished network read
        seq = self.seq
        self.seq = (seq + 1) & _SEQ_MASK
        if self.seq == 0:
            self.wrapped = True
        self.bytes_since_rekey += size
        self.packets_since_rekey += 1
        if self.decompressor is not None:
            payload = self.decompressor.decompress(seq, payload)
        if self.debug:
            _log_packet(self.log_label, "received", seq, payload, len(payload))
        return seq, payload

    def _start_discard(self, error: PacketError, consumed: int) -> None:
        """Fail at once, or (CBC without EtM) only after reading a fixed amount: see ciphers.py."""
        if not self._opener.discard_on_error:
            raise error
        self._discard_error = error
        self._discard_left = MAX_PACKET_LENGTH - consumed
        self._discard()

    def _discard(self) -> None:
        """Consume what is buffered toward the amount; raise the error once it is all read."""
        skipped = min(self._discard_left, self.buffered)
        self._discard_left -= skipped
        while skipped:  # consume it: from the partial packet first, then the newest chunk
            if self._partial:
                step = min(skipped, len(self._partial))
                del self._partial[:step]
            else:
                step = skipped
                self._pos += step
            skipped -= step
        if not self._discard_left:
            assert self._discard_error is not None
            raise self._discard_error

    @property
    def wanted(self) -> int:
        """Bytes still missing for the packet in progress (at least 1 when none is known)."""
        if self._discard_error is not None:
            return max(self._discard_left, 1)
        if self._pending_size:
            return max(self._pending_size - self.buffered, 1)
        return max(self._opener.header_size - self.buffered, 1)

    def set_opener(self, opener: Opener, *, reset_seq: bool) -> None:
        self._opener = opener
        self.bytes_since_rekey = 0
        self.packets_since_rekey = 0
        if reset_seq:
            self.seq = 0
            self.wrapped = False
