"""The binary packet layer (RFC 4253 §6): framing, sequence numbers, byte counts.

One :class:`PacketReader` and one :class:`PacketWriter` per connection. Each
holds the current :class:`Opener`/:class:`Sealer` and its 32-bit sequence number;
the key exchange swaps in new ones at NEWKEYS (and, under strict KEX, resets the
sequence number). Both count bytes and packets since the last key change, which
is what the rekey limits are measured against.

The reader's buffer holds at most one packet plus one network read: the driver
only reads from the socket when :meth:`PacketReader.next_packet` says it needs
more, and the opener refuses oversized lengths before they are waited for.
"""

from __future__ import annotations

from .._algorithms.ciphers import Opener, Sealer, plain_opener, plain_sealer

__all__ = ["PacketReader", "PacketWriter"]

_SEQ_MASK = 0xFFFFFFFF


class PacketWriter:
    """Seals outgoing payloads into an output buffer."""

    __slots__ = ("_sealer", "bytes_since_rekey", "outgoing", "packets_since_rekey", "seq", "wrapped")

    def __init__(self) -> None:
        self._sealer: Sealer = plain_sealer()
        self.seq = 0
        self.wrapped = False  # the sequence number went past 2**32 - 1 since the last reset
        self.outgoing = bytearray()
        self.bytes_since_rekey = 0
        self.packets_since_rekey = 0

    def write(self, payload: bytes | bytearray | memoryview) -> None:
        before = len(self.outgoing)
        self._sealer.seal_into(self.seq, payload, self.outgoing)
        self.bytes_since_rekey += len(self.outgoing) - before
        self.packets_since_rekey += 1
        self.seq = (self.seq + 1) & _SEQ_MASK
        if self.seq == 0:
            self.wrapped = True

    def set_sealer(self, sealer: Sealer, *, reset_seq: bool) -> None:
        self._sealer = sealer
        self.bytes_since_rekey = 0
        self.packets_since_rekey = 0
        if reset_seq:
            self.seq = 0
            self.wrapped = False

    def take(self) -> bytearray:
        """Everything sealed so far; the writer starts a new buffer (no copy)."""
        data = self.outgoing
        self.outgoing = bytearray()
        return data


class PacketReader:
    """Buffers received bytes and opens complete packets, one at a time."""

    __slots__ = (
        "_opener",
        "_pending_size",
        "buffer",
        "bytes_since_rekey",
        "packets_since_rekey",
        "seq",
        "wrapped",
    )

    def __init__(self) -> None:
        self._opener: Opener = plain_opener()
        self._pending_size = 0  # wire size of the packet being waited for, 0 if unknown
        self.buffer = bytearray()
        self.seq = 0
        self.wrapped = False
        self.bytes_since_rekey = 0
        self.packets_since_rekey = 0

    def next_packet(self) -> tuple[int, bytes | memoryview] | None:
        """``(seq, payload)`` of the next complete packet, or None if more bytes are needed."""
        buffer = self.buffer
        size = self._pending_size
        if not size:
            header_size = self._opener.header_size
            if len(buffer) < header_size:
                return None
            with memoryview(buffer) as view:
                size = self._opener.packet_size(self.seq, view[:header_size])
            self._pending_size = size
        if len(buffer) < size:
            return None
        with memoryview(buffer) as view:
            payload = self._opener.open(self.seq, view[:size])
        del buffer[:size]
        self._pending_size = 0
        seq = self.seq
        self.seq = (seq + 1) & _SEQ_MASK
        if self.seq == 0:
            self.wrapped = True
        self.bytes_since_rekey += size
        self.packets_since_rekey += 1
        return seq, payload

    @property
    def wanted(self) -> int:
        """Bytes still missing for the packet in progress (at least 1 when none is known)."""
        if self._pending_size:
            return max(self._pending_size - len(self.buffer), 1)
        return max(self._opener.header_size - len(self.buffer), 1)

    def set_opener(self, opener: Opener, *, reset_seq: bool) -> None:
        self._opener = opener
        self.bytes_since_rekey = 0
        self.packets_since_rekey = 0
        if reset_seq:
            self.seq = 0
            self.wrapped = False
