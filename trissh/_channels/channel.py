"""One channel (RFC 4254 §5): flow control both ways, received data, requests, close state.

Theory of operation
-------------------
A :class:`Channel` is fed by the connection layer's dispatcher
(:class:`~trissh._channels.mux.ChannelMux`), in the transport's reader task,
synchronously: it never awaits, so a slow consumer can never stall the reader
(and with it a key exchange). What bounds memory instead is flow control:

* **Receiving.** We grant the server a window (:data:`INITIAL_WINDOW` bytes).
  Data beyond the window, or in packets larger than we allowed, is a protocol
  violation. Received data waits in the channel's buffers until a consumer
  takes it; only then do we grant more window (in batches of half the window,
  so adjusts stay rare). So a channel never buffers more than its window.
* **Sending.** We may send only while the server's window is open, in packets
  no larger than its maximum; :meth:`Channel.send_data` waits for
  WINDOW_ADJUST when it is exhausted.

**Life.** A channel's life is one :class:`ChannelState`, changed only by
:meth:`Channel._set_state`, which asserts that the change is legal::

    OPENING --confirmation--> OPEN --our CLOSE--> CLOSING --their CLOSE--> CLOSED
       |                        |                                            ^
       |                        +--their CLOSE (answered at once)------------+
       +--OPEN_FAILURE (or we refuse the server's open)--> REFUSED
    OPENING, OPEN, CLOSING --the connection died--> FAILED

A channel is alive until both sides have sent CLOSE (RFC 4254 §5.3); only then
(CLOSED) is its number freed. When the server sends CLOSE first we answer with
ours in the same call, so that goes straight from OPEN to CLOSED; CLOSING is
only "we sent CLOSE, theirs has not come". A caller that gives up while the
open is unanswered (:meth:`Channel.close_locally` in OPENING) gets its CLOSE
sent as soon as the confirmation arrives (OPENING, OPEN, CLOSING at once).
If the connection dies, every live channel is FAILED with the connection's
error: reads raise it after the buffered data is consumed, never an
end-of-file. CLOSED, REFUSED and FAILED are final.

Two things are deliberately not in the state, because they vary independently
of it: each direction's EOF (``eof_sent``, ``eof_received``: one side may end
its data long before, or without, the close handshake), and whether *our*
handle was closed (``closed_locally``: Trio's "after ``aclose()``, everything
raises :class:`trio.ClosedResourceError`", which holds whatever the protocol
state, even after the server closed first or the connection died).
"""

from __future__ import annotations

import enum
import logging
import struct
from collections import deque
from typing import TYPE_CHECKING, Final

import trio

from .. import _messages as msg
from .._errors import ChannelOpenError, ChannelOpenFailureReason, ProtocolError, SSHError
from .._wire import Reader, boolean, byte, string, uint32

__all__ = [
    "EXTENDED_DATA_STDERR",
    "INITIAL_WINDOW",
    "MAX_PACKET",
    "Channel",
    "ChannelState",
    "ServerOpenedChannel",
]

if TYPE_CHECKING:
    from .mux import ChannelMux

log = logging.getLogger("trissh.channel")

#: The window we grant per channel: enough to keep a fast link full without
#: waiting for adjusts, and the most one channel will buffer for a slow reader.
INITIAL_WINDOW: Final = 2 * 1024 * 1024
#: The largest data packet we accept; 32 KiB is what OpenSSH uses and allows.
MAX_PACKET: Final = 32 * 1024
#: The most one read of a channel stream returns when the caller sets no limit.
MAX_READ: Final = 256 * 1024
#: The largest data packet we send, whatever the server allows.
MAX_SEND_PACKET: Final = 32 * 1024

DATA_HEADER: Final = struct.Struct(">BII")
_EXT_DATA_HEADER: Final = struct.Struct(">BIII")

EXTENDED_DATA_STDERR: Final = 1


class ChannelState(enum.Enum):
    """Where a channel is in its life (see the module docstring for the transitions)."""

    #: CHANNEL_OPEN sent (or, for a server-opened channel, received); no answer yet.
    OPENING = "opening"
    #: Confirmed: data and requests flow.
    OPEN = "open"
    #: We sent CLOSE; the server's has not come yet (it may still send data).
    CLOSING = "closing"
    #: Both sides sent CLOSE: the channel number is free (final).
    CLOSED = "closed"
    #: The open failed: the server's OPEN_FAILURE, or our refusal of its open (final).
    REFUSED = "refused"
    #: The connection died while the channel was live (final).
    FAILED = "failed"


# Module constants, so that the per-packet paths compare identities without attribute lookups.
_OPENING: Final = ChannelState.OPENING
_OPEN: Final = ChannelState.OPEN
_CLOSING: Final = ChannelState.CLOSING
_CLOSED: Final = ChannelState.CLOSED
_REFUSED: Final = ChannelState.REFUSED
_FAILED: Final = ChannelState.FAILED

#: The legal transitions; anything else is a bug in this module (asserted).
_TRANSITIONS: Final[dict[ChannelState, frozenset[ChannelState]]] = {
    # CLOSED from OPENING: the server closed a channel it opened before we confirmed it (we answer).
    _OPENING: frozenset({_OPEN, _REFUSED, _CLOSED, _FAILED}),
    _OPEN: frozenset({_CLOSING, _CLOSED, _FAILED}),
    _CLOSING: frozenset({_CLOSED, _FAILED}),
    _CLOSED: frozenset(),
    _REFUSED: frozenset(),
    _FAILED: frozenset(),
}
_FINAL: Final = frozenset({_CLOSED, _REFUSED, _FAILED})


class Channel:
    """One channel: flow control both ways, received data, requests and close state.

    Subclasses (sessions) interpret requests from the server; this class keeps
    the protocol's bookkeeping.
    """

    def __init__(self, mux: ChannelMux, local_id: int, kind: str) -> None:
        self.mux = mux
        self.transport = mux.transport
        self.local_id = local_id
        self.kind = kind
        self.remote_id = -1
        # Sending side: what the server lets us send.
        self.send_window = 0
        self.send_max_packet = 0
        self._window_waiters = trio.lowlevel.ParkingLot()
        # Receiving side: what we let the server send.
        self.receive_window = INITIAL_WINDOW
        self._consumed = 0  # bytes taken by consumers since the last adjust
        #: Received data per stream (0 = normal data, 1 = stderr); bounded by the window.
        self.buffers: dict[int, deque[bytes | memoryview]] = {0: deque(), EXTENDED_DATA_STDERR: deque()}
        self.buffered: dict[int, int] = {0: 0, EXTENDED_DATA_STDERR: 0}
        #: True: count data as consumed on arrival (the caller collects everything).
        self.collect = False
        self._data_arrived = trio.lowlevel.ParkingLot()
        # The one source of truth for the channel's life; changed only by _set_state.
        self._state = _OPENING
        #: Why the channel ended badly: the ChannelOpenError (REFUSED) or the connection's error (FAILED).
        self._error: SSHError | None = None
        #: Set when the state leaves OPENING; it exists so that tasks can wait (the state is the truth).
        self.opened = trio.Event()
        #: Set when the state becomes final (CLOSED, REFUSED, FAILED); likewise only for waiting.
        self.finished = trio.Event()
        # Each direction's EOF is independent of the close handshake (and of each other), so these
        # stay booleans beside the state. eof_received is also set by the server's CLOSE.
        self.eof_received = False
        self.eof_sent = False
        # Our handle was closed (close_locally): independent of the state too (see the module docstring).
        self._closed_locally = False
        self._pending_replies: deque[list[bool | None]] = deque()
        self._reply_arrived = trio.lowlevel.ParkingLot()
        self._send_lock = trio.Lock()

    # --- life ------------------------------------------------------------------------

    @property
    def state(self) -> ChannelState:
        return self._state

    def _set_state(self, new: ChannelState) -> None:
        """The one place the state changes: check the transition, then set the events and wake waiters."""
        old = self._state
        assert new in _TRANSITIONS[old], f"channel {self.local_id}: illegal move {old.name} -> {new.name}"
        self._state = new
        if old is _OPENING:
            self.opened.set()
        if new in _FINAL:
            self.finished.set()
            self._data_arrived.unpark_all()
            self._window_waiters.unpark_all()
            self._reply_arrived.unpark_all()

    @property
    def is_closed(self) -> bool:
        """Whether the channel has ended: both CLOSEs, refused, or the connection died."""
        return self._state in _FINAL

    @property
    def close_sent(self) -> bool:
        """Whether we have sent CLOSE (first, or answering the server's)."""
        state = self._state
        return state is _CLOSING or state is _CLOSED

    @property
    def error(self) -> SSHError | None:
        """The connection's error once it died under the channel (FAILED), else None."""
        return self._error if self._state is _FAILED else None

    @property
    def open_error(self) -> SSHError | None:
        """What :meth:`wait_opened` raises: the refusal (REFUSED) or the connection's error (FAILED)."""
        state = self._state
        return self._error if state is _REFUSED or state is _FAILED else None

    def open_payload(self, extra: bytes = b"") -> bytes:
        return (
            byte(msg.CHANNEL_OPEN)
            + string(self.kind)
            + uint32(self.local_id)
            + uint32(self.receive_window)
            + uint32(MAX_PACKET)
            + extra
        )

    async def wait_opened(self) -> None:
        await self.opened.wait()
        error = self.open_error
        if error is not None:
            raise error

    def fail(self, error: SSHError) -> None:
        """The connection died: wake everyone; reads raise ``error`` once buffers are empty."""
        if self._state in _FINAL:
            return  # already ended (only live channels are in the table; the first error wins)
        self._error = error
        self._set_state(_FAILED)

    # --- handling packets from the server (called in the reader task) -----------------

    def handle_open_confirmation(self, reader: Reader) -> None:
        self.remote_id = reader.uint32()
        self.send_window = reader.uint32()
        self.send_max_packet = reader.uint32()
        if self.send_max_packet < 1:
            raise ProtocolError(f"channel {self.local_id}: server's maximum packet size is 0")
        self._set_state(_OPEN)
        if self._closed_locally:  # the caller gave up before the confirmation came: close now
            self.send_close_nowait()

    def handle_open_failure(self, reader: Reader) -> None:
        code = reader.uint32()
        description = reader.text()
        self._error = ChannelOpenError(code, description)
        self._set_state(_REFUSED)

    def handle_window_adjust(self, reader: Reader) -> None:
        self.grow_send_window(reader.uint32())

    def grow_send_window(self, increment: int) -> None:
        self.send_window += increment
        if self.send_window > 0xFFFFFFFF:
            # RFC 4254 §5.2: the window may not exceed 2^32 - 1 bytes.
            raise ProtocolError(f"channel {self.local_id}: server grew our send window past 2^32 - 1")
        if self._window_waiters:
            self._window_waiters.unpark_all()

    def handle_data(self, stream: int, data: bytes | memoryview) -> None:
        size = len(data)
        state = self._state
        if self.eof_received or (state is not _OPEN and state is not _CLOSING):
            if state is _OPENING:
                raise ProtocolError(f"channel {self.local_id}: data received before the channel was open")
            raise ProtocolError(f"channel {self.local_id}: data received after EOF or CLOSE")
        if size > self.receive_window:
            raise ProtocolError(
                f"channel {self.local_id}: server sent {size} bytes with only {self.receive_window} "
                "bytes of window left"
            )
        if size > MAX_PACKET:
            raise ProtocolError(
                f"channel {self.local_id}: data packet of {size} bytes exceeds our maximum {MAX_PACKET}"
            )
        self.receive_window -= size
        buffer = self.buffers.get(stream)
        if buffer is None:
            log.debug("channel %d: discarding extended data of type %d", self.local_id, stream)
            self.consumed(size)
            return
        if size:
            buffer.append(data)
            self.buffered[stream] += size
        if self.collect:
            self.consumed(size)
        if self._data_arrived:  # a reader is waiting (cheaper to ask than to unpark nobody)
            self._data_arrived.unpark_all()

    def handle_eof(self) -> None:
        self.eof_received = True
        self._data_arrived.unpark_all()

    def handle_close(self) -> None:
        self.eof_received = True
        state = self._state
        if state is _FAILED:
            return  # the connection died first: it stays failed, and nothing can be sent
        if state is not _CLOSING:  # the server closed first: answer with our CLOSE at once
            self.transport.send_packet_nowait(byte(msg.CHANNEL_CLOSE) + uint32(self.remote_id))
        self._set_state(_CLOSED)

    def handle_reply(self, success: bool) -> None:
        if not self._pending_replies:
            raise ProtocolError(f"channel {self.local_id}: request reply received with no request pending")
        self._pending_replies.popleft()[0] = success
        self._reply_arrived.unpark_all()

    def handle_request(self, request: str, want_reply: bool, reader: Reader) -> bool:
        """A request from the server; return True to answer SUCCESS. Subclasses extend this."""
        log.debug("channel %d: refusing request %r", self.local_id, request)
        return False

    # --- consuming received data (called by consumer tasks) -----------------------------

    def consumed(self, size: int) -> None:
        """``size`` bytes left our buffers: grant the window back in batches."""
        self._consumed += size
        if (
            self._consumed >= INITIAL_WINDOW // 2
            and not self.eof_received
            and (self._state is _OPEN or self._state is _OPENING)
        ):
            increment, self._consumed = self._consumed, 0
            self.receive_window += increment
            self.transport.send_packet_nowait(
                byte(msg.CHANNEL_WINDOW_ADJUST) + uint32(self.remote_id) + uint32(increment)
            )

    def take(self, stream: int, max_bytes: int | None) -> bytes | None:
        """Up to ``max_bytes`` (default :data:`MAX_READ`) buffered bytes of ``stream``, or None if none.

        Several received packets are joined into one chunk: a consumer pays
        one trip through the event loop per read, not per packet.
        """
        buffer = self.buffers.get(stream)
        if not buffer:
            return None
        limit = MAX_READ if max_bytes is None else max_bytes
        chunk = buffer.popleft()
        if len(chunk) < limit and buffer:
            parts = [chunk]
            size = len(chunk)
            while buffer and size + len(buffer[0]) <= limit:
                part = buffer.popleft()
                parts.append(part)
                size += len(part)
            chunk = b"".join(parts)
        if len(chunk) > limit:
            buffer.appendleft(chunk[limit:])
            chunk = chunk[:limit]
        chunk = bytes(chunk)  # the one copy of received data: out of the decrypted packet
        self.buffered[stream] -= len(chunk)
        if not self.collect:
            self.consumed(len(chunk))
        return chunk

    def take_parts(self, stream: int, max_bytes: int | None) -> list[bytes | memoryview] | None:
        """:meth:`take`, but the received packets as they are, not joined: for a consumer that writes
        them out at once with a gathering write (the relay of a forwarding), saving the copy."""
        buffer = self.buffers.get(stream)
        if not buffer:
            return None
        limit = MAX_READ if max_bytes is None else max_bytes
        parts: list[bytes | memoryview] = []
        size = 0
        while buffer and size < limit:
            part = buffer.popleft()
            if size + len(part) > limit:
                keep = limit - size
                buffer.appendleft(memoryview(part)[keep:])
                part = memoryview(part)[:keep]
            parts.append(part)
            size += len(part)
        self.buffered[stream] -= size
        if not self.collect:
            self.consumed(size)
        return parts

    def take_all(self, stream: int) -> bytes:
        data = b"".join(self.buffers[stream])
        self.buffers[stream].clear()
        self.buffered[stream] = 0
        return data

    async def wait_data(self) -> None:
        """Wait until data or EOF arrives, or the channel dies."""
        await self._data_arrived.park()

    # --- sending ---------------------------------------------------------------------

    def check_sendable(self) -> None:
        """Raise what a send must raise now: the connection's error, or a stream error if closed."""
        state = self._state
        if state is _FAILED:
            assert self._error is not None
            raise self._error
        if self._closed_locally:
            raise trio.ClosedResourceError(f"channel {self.local_id} is closed")
        if state is not _OPEN and state is not _OPENING:  # the server closed it (we only answered)
            raise trio.BrokenResourceError(f"channel {self.local_id} was closed by the server")
        if self.eof_sent:
            raise trio.ClosedResourceError(f"channel {self.local_id}: EOF already sent")

    async def send_data(self, data: bytes | bytearray | memoryview, stream: int = 0) -> None:
        """Send ``data``, waiting for window as needed.

        Packets are queued in a batch without yielding in between (the writer
        then seals and sends them in one write); the lock is the checkpoint.

        .. warning:: If cancelled while waiting for window, part of ``data``
           may have been sent; as with any Trio stream, the stream should then
           be considered broken.
        """
        view = memoryview(data).cast("B")
        transport = self.transport
        async with self._send_lock:
            while view:
                self.check_sendable()
                if self.send_window <= 0:
                    await self._window_waiters.park()
                    continue
                space = transport.queue_space
                if not space:
                    await transport.wait_queue_space()
                    continue
                # As much as the window and the queue allow, in full-size packets.
                packet_size = min(self.send_max_packet, MAX_SEND_PACKET)
                batch = min(len(view), self.send_window, max(space, packet_size))
                headers = self._data_headers(batch, packet_size, stream)
                self.send_window -= batch
                transport.send_channel_data(headers, view[:batch], packet_size)
                view = view[batch:]

    def _data_headers(self, size: int, packet_size: int, stream: int) -> list[bytes]:
        """CHANNEL_DATA (or EXTENDED_DATA) headers for ``size`` bytes cut into ``packet_size`` pieces."""
        full, last = divmod(size, packet_size)
        sizes = [packet_size] * full + ([last] if last else [])
        if stream:
            pack_ext = _EXT_DATA_HEADER.pack
            return [pack_ext(msg.CHANNEL_EXTENDED_DATA, self.remote_id, stream, n) for n in sizes]
        pack = DATA_HEADER.pack
        return [pack(msg.CHANNEL_DATA, self.remote_id, n) for n in sizes]

    async def wait_send_window(self) -> None:
        while self.send_window <= 0:
            self.check_sendable()
            await self._window_waiters.park()

    async def send_eof(self) -> None:
        async with self._send_lock:
            if self.eof_sent or (self._state is not _OPEN and self._state is not _OPENING):
                await trio.lowlevel.checkpoint()
                return
            self.eof_sent = True
            await self.transport.send_packet(byte(msg.CHANNEL_EOF) + uint32(self.remote_id))

    async def request(self, request: str, *fields: bytes, want_reply: bool = True) -> bool:
        """Send a channel request; with ``want_reply``, wait for and return the answer."""
        error = self.error
        if error is not None:
            raise error
        slot: list[bool | None] = [None]
        payload = byte(msg.CHANNEL_REQUEST) + uint32(self.remote_id) + string(request) + boolean(want_reply)
        if want_reply:
            self._pending_replies.append(slot)
        await self.transport.send_packet(payload + b"".join(fields))
        if not want_reply:
            return True
        while slot[0] is None:
            error = self.error
            if error is not None:
                raise error
            if self.is_closed:
                return False
            await self._reply_arrived.park()
        return slot[0]

    @property
    def closed_locally(self) -> bool:
        """Whether our side closed the channel (:meth:`close_locally`), rather than the server."""
        return self._closed_locally

    def close_locally(self) -> None:
        """Close the channel from our side without waiting, waking every task blocked on it.

        Safe in cleanup and under cancellation: an unconfirmed channel is closed
        as soon as its confirmation comes; nothing is sent on a dead connection.
        """
        self._closed_locally = True  # in OPENING, this makes the confirmation send CLOSE
        if self._state is _OPEN and self.transport.error is None:
            self.send_close_nowait()
        # Received data is no longer anybody's: drop it, and what arrives until the server's CLOSE.
        for stream in list(self.buffers):
            self.discard(stream)
        self._window_waiters.unpark_all()
        self._data_arrived.unpark_all()

    def discard(self, stream: int) -> None:
        """Stop keeping ``stream``'s data: what is buffered goes (its window is granted back), and so
        does what arrives later."""
        buffer = self.buffers.pop(stream, None)
        if buffer is not None:
            self.consumed(self.buffered[stream])
            self.buffered[stream] = 0
            buffer.clear()

    def send_close_nowait(self) -> None:
        """Send CLOSE without waiting (safe in cleanup, even under cancellation); a no-op unless OPEN."""
        if self._state is _OPEN:
            self._set_state(_CLOSING)
            self.transport.send_packet_nowait(byte(msg.CHANNEL_CLOSE) + uint32(self.remote_id))


class ServerOpenedChannel(Channel):
    """A channel the server opened (RFC 4254 §5.1): its task confirms or refuses it.

    The reader task fills in the server's side from the CHANNEL_OPEN; until
    :meth:`confirm` the server may send nothing on it, and an OPEN_CONFIRMATION
    or OPEN_FAILURE from the server for it is a protocol error.
    """

    def set_remote(self, sender: int, window: int, max_packet: int) -> None:
        self.remote_id = sender
        self.send_window = window
        self.send_max_packet = max_packet

    def confirm(self) -> bool:
        """Send OPEN_CONFIRMATION; False when the connection (or the channel) is already gone."""
        if self._state is not _OPENING or self.transport.error is not None:
            return False
        self.transport.send_packet_nowait(
            byte(msg.CHANNEL_OPEN_CONFIRMATION)
            + uint32(self.remote_id)
            + uint32(self.local_id)
            + uint32(self.receive_window)
            + uint32(MAX_PACKET)
        )
        self._set_state(_OPEN)
        return True

    def refuse(self, reason: ChannelOpenFailureReason, description: str) -> None:
        """Send OPEN_FAILURE and free the channel number."""
        self.mux.channels.pop(self.local_id, None)
        if self._state is _OPENING:  # else the server closed it first, or the connection died: it stays so
            self._error = ChannelOpenError(reason, description)
            self._set_state(_REFUSED)
        self.mux.refuse_open(self.remote_id, reason, description)
