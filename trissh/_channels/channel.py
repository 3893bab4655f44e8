"""Channels and the connection protocol dispatcher (RFC 4254 §5, §4).

Theory of operation
-------------------
:class:`ChannelMux` is the connection layer's packet handler: the transport's
reader task calls :meth:`ChannelMux.handle_packet` synchronously for every
packet after authentication. It never awaits, so a slow consumer can never
stall the reader (and with it a key exchange); what bounds memory instead is
flow control:

* **Receiving.** We grant the server a window (:data:`INITIAL_WINDOW` bytes).
  Data beyond the window, or in packets larger than we allowed, is a protocol
  violation. Received data waits in the channel's buffers until a consumer
  takes it; only then do we grant more window (in batches of half the window,
  so adjusts stay rare). So a channel never buffers more than its window.
* **Sending.** We may send only while the server's window is open, in packets
  no larger than its maximum; :meth:`Channel.send_data` waits for
  WINDOW_ADJUST when it is exhausted.

A channel is alive until both sides have sent CLOSE (RFC 4254 §5.3); only then
is its number freed.

The server may open channels too (RFC 4254 §5.1). We accept one kind, and only
when the caller asked for it: ``auth-agent@openssh.com`` (OpenSSH PROTOCOL
§2.2) once :meth:`ChannelMux.enable_agent_forwarding` was called. Such a
channel is a :class:`ServerOpenedChannel`: the reader task creates it and
starts its relay task in the connection's nursery, which confirms or refuses
the open once it knows whether the local agent answers. Every other open is
refused with ADMINISTRATIVELY_PROHIBITED, and agent channels beyond
:data:`MAX_AGENT_CHANNELS` with RESOURCE_SHORTAGE.

If the connection dies, every channel is failed with the connection's error:
reads raise it after the buffered data is consumed, never an end-of-file.
"""

from __future__ import annotations

import logging
import os
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import trio

from .. import _messages as msg
from .._auth.agent_forward import AGENT_CHANNEL_TYPE, relay_agent_channel
from .._driver import SSHClientTransport
from .._errors import AgentError, ChannelOpenError, ChannelOpenFailureReason, ProtocolError, SSHError
from .._wire import Reader, boolean, byte, string, uint32

#: Called with (success, the reply's data) when a global request's reply arrives.
GlobalReplyHandler = Callable[[bool, bytes], None]

__all__ = [
    "INITIAL_WINDOW",
    "MAX_AGENT_CHANNELS",
    "MAX_PACKET",
    "Channel",
    "ChannelMux",
    "ServerOpenedChannel",
]

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
#: The most forwarded agent connections open at once. Each holds a local
#: socket and up to a window of data; real use needs one or two at a time, so
#: a server opening more is refused rather than allowed to pile them up.
MAX_AGENT_CHANNELS: Final = 64

_U32: Final = struct.Struct(">I")
_DATA_HEADER: Final = struct.Struct(">BII")
_EXT_DATA_HEADER: Final = struct.Struct(">BIII")

EXTENDED_DATA_STDERR: Final = 1


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
        self.opened = trio.Event()
        self.open_error: SSHError | None = None
        self.eof_received = False
        self.eof_sent = False
        self.close_sent = False
        self.close_received = trio.Event()
        self.error: SSHError | None = None
        self._pending_replies: deque[list[bool | None]] = deque()
        self._reply_arrived = trio.lowlevel.ParkingLot()
        self._send_lock = trio.Lock()
        #: The caller gave up before the server confirmed the open: close on confirmation.
        self.close_on_open = False

    # --- life ------------------------------------------------------------------------

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
        if self.open_error is not None:
            raise self.open_error

    @property
    def is_closed(self) -> bool:
        return self.close_received.is_set()

    def fail(self, error: SSHError) -> None:
        """The connection died: wake everyone; reads raise ``error`` once buffers are empty."""
        if self.error is None:
            self.error = error
        if not self.opened.is_set():
            self.open_error = error
            self.opened.set()
        self._window_waiters.unpark_all()
        self._data_arrived.unpark_all()
        self._reply_arrived.unpark_all()
        self.close_received.set()

    # --- handling packets from the server (called in the reader task) -----------------

    def handle_open_confirmation(self, reader: Reader) -> None:
        self.remote_id = reader.uint32()
        self.send_window = reader.uint32()
        self.send_max_packet = reader.uint32()
        if self.send_max_packet < 1:
            raise ProtocolError(f"channel {self.local_id}: server's maximum packet size is 0")
        self.opened.set()
        if self.close_on_open:
            self.send_close_nowait()

    def handle_open_failure(self, reader: Reader) -> None:
        code = reader.uint32()
        description = reader.text()
        self.open_error = ChannelOpenError(code, description)
        self.opened.set()
        self.close_received.set()

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
        if self.eof_received or self.close_received.is_set():
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
        if not self.close_sent:
            self.close_sent = True
            self.transport.send_packet_nowait(byte(msg.CHANNEL_CLOSE) + uint32(self.remote_id))
        self.close_received.set()
        self._data_arrived.unpark_all()
        self._window_waiters.unpark_all()
        self._reply_arrived.unpark_all()

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
            and not self.close_received.is_set()
            and not self.eof_received
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
        buffer = self.buffers[stream]
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

    def take_all(self, stream: int) -> bytes:
        data = b"".join(self.buffers[stream])
        self.buffers[stream].clear()
        self.buffered[stream] = 0
        return data

    async def wait_data(self) -> None:
        """Wait until data or EOF arrives, or the channel dies."""
        await self._data_arrived.park()

    # --- sending ---------------------------------------------------------------------

    def _check_sendable(self) -> None:
        if self.error is not None:
            raise self.error
        if self.close_received.is_set() or self.close_sent:
            raise trio.ClosedResourceError(f"channel {self.local_id} is closed")
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
                self._check_sendable()
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
        pack = _DATA_HEADER.pack
        return [pack(msg.CHANNEL_DATA, self.remote_id, n) for n in sizes]

    async def wait_send_window(self) -> None:
        while self.send_window <= 0:
            self._check_sendable()
            await self._window_waiters.park()

    async def send_eof(self) -> None:
        async with self._send_lock:
            if self.eof_sent or self.close_sent or self.close_received.is_set():
                await trio.lowlevel.checkpoint()
                return
            self.eof_sent = True
            await self.transport.send_packet(byte(msg.CHANNEL_EOF) + uint32(self.remote_id))

    async def request(self, request: str, *fields: bytes, want_reply: bool = True) -> bool:
        """Send a channel request; with ``want_reply``, wait for and return the answer."""
        if self.error is not None:
            raise self.error
        slot: list[bool | None] = [None]
        payload = byte(msg.CHANNEL_REQUEST) + uint32(self.remote_id) + string(request) + boolean(want_reply)
        if want_reply:
            self._pending_replies.append(slot)
        await self.transport.send_packet(payload + b"".join(fields))
        if not want_reply:
            return True
        while slot[0] is None:
            if self.error is not None:
                raise self.error
            if self.close_received.is_set():
                return False
            await self._reply_arrived.park()
        return slot[0]

    def send_close_nowait(self) -> None:
        """Send CLOSE without waiting (safe in cleanup, even under cancellation)."""
        if not self.close_sent and not self.close_received.is_set() and self.error is None:
            self.close_sent = True
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
        if self.error is not None or self.close_received.is_set() or self.transport.error is not None:
            return False
        self.transport.send_packet_nowait(
            byte(msg.CHANNEL_OPEN_CONFIRMATION)
            + uint32(self.remote_id)
            + uint32(self.local_id)
            + uint32(self.receive_window)
            + uint32(MAX_PACKET)
        )
        self.opened.set()
        return True

    def refuse(self, reason: ChannelOpenFailureReason, description: str) -> None:
        """Send OPEN_FAILURE and free the channel number."""
        self.mux.channels.pop(self.local_id, None)
        self.open_error = ChannelOpenError(reason, description)
        self.opened.set()
        self.close_received.set()
        self.mux.refuse_open(self.remote_id, reason, description)


@dataclass(frozen=True, slots=True)
class _AgentForwarding:
    """Where forwarded agent channels go, and the nursery their relay tasks run in."""

    nursery: trio.Nursery
    path: str


class ChannelMux:
    """The connection protocol: channel table, dispatch, global requests."""

    def __init__(self, transport: SSHClientTransport) -> None:
        self.transport = transport
        self.channels: dict[int, Channel] = {}
        self._next_id = 0
        # What to do with each awaited global request reply, in request order
        # (RFC 4254 §4: replies come in the order of the requests); made on first use.
        self._global_replies: deque[GlobalReplyHandler] | None = None
        self._agent_forwarding: _AgentForwarding | None = None
        transport.set_packet_handler(self.handle_packet)
        transport.add_close_callback(self._connection_lost)

    def _allocate_id(self) -> int:
        while self._next_id in self.channels:
            self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        local_id = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        return local_id

    def add(self, factory: type[Channel], kind: str) -> Channel:
        channel = factory(self, self._allocate_id(), kind)
        self.channels[channel.local_id] = channel
        return channel

    def enable_agent_forwarding(
        self, nursery: trio.Nursery, agent_path: str | os.PathLike[str] | None
    ) -> None:
        """Accept the server's ``auth-agent@openssh.com`` channels from now on (OpenSSH PROTOCOL §2.2).

        Each is connected to the agent socket ``agent_path`` and relayed by a
        task in ``nursery``, which must be the connection's: relays end when
        it does. The server opens such channels only for sessions that sent
        ``auth-agent-req`` (:meth:`Process.start` with ``forward_agent=True``).

        Args:
            agent_path: the local agent's socket, already resolved
                (:func:`trissh._auth.agent.default_agent_path` gives ``$SSH_AUTH_SOCK``);
                None means there is no agent.

        Raises:
            AgentError: ``agent_path`` is None.
        """
        if agent_path is None:
            raise AgentError(
                "agent forwarding needs an ssh-agent, and there is none: $SSH_AUTH_SOCK is not set "
                "(or agent_path=None was given)"
            )
        self._agent_forwarding = _AgentForwarding(nursery, os.fspath(agent_path))

    @property
    def agent_forwarding(self) -> bool:
        """Whether :meth:`enable_agent_forwarding` was called."""
        return self._agent_forwarding is not None

    def refuse_open(self, sender: int, reason: ChannelOpenFailureReason, description: str) -> None:
        self.transport.send_packet_nowait(
            byte(msg.CHANNEL_OPEN_FAILURE)
            + uint32(sender)
            + uint32(reason)
            + string(description)
            + string("")
        )

    def _handle_open(self, reader: Reader) -> None:
        """CHANNEL_OPEN from the server (RFC 4254 §5.1): an agent channel if asked for, else refused."""
        kind_name = reader.ascii()
        sender = reader.uint32()
        window = reader.uint32()
        max_packet = reader.uint32()
        forwarding = self._agent_forwarding
        if kind_name == AGENT_CHANNEL_TYPE and forwarding is not None:
            reader.check_end()
            if max_packet < 1:
                raise ProtocolError(f"CHANNEL_OPEN {kind_name!r}: the server's maximum packet size is 0")
            if sum(isinstance(c, ServerOpenedChannel) for c in self.channels.values()) >= MAX_AGENT_CHANNELS:
                log.warning(
                    "refusing agent channel: %d forwarded agent connections are open", MAX_AGENT_CHANNELS
                )
                reason = ChannelOpenFailureReason.RESOURCE_SHORTAGE
                self.refuse_open(sender, reason, "too many forwarded agent connections")
                return
            channel = self.add(ServerOpenedChannel, kind_name)
            assert isinstance(channel, ServerOpenedChannel)
            channel.set_remote(sender, window, max_packet)
            forwarding.nursery.start_soon(relay_agent_channel, channel, forwarding.path)
            return
        if kind_name == AGENT_CHANNEL_TYPE:
            description = "agent forwarding was not requested"
        else:
            description = f"trissh accepts no {kind_name[:64]!r} channels from the server"
        log.debug("refusing channel open %r from the server", kind_name)
        self.refuse_open(sender, ChannelOpenFailureReason.ADMINISTRATIVELY_PROHIBITED, description)

    def send_global_request_nowait(
        self, name: str, data: bytes = b"", on_reply: GlobalReplyHandler | None = None
    ) -> None:
        """Send a GLOBAL_REQUEST; with ``on_reply``, ask for a reply and call it with
        ``(success, reply data)`` when it comes (in the reader task)."""
        want_reply = on_reply is not None
        if on_reply is not None:
            if self._global_replies is None:
                self._global_replies = deque()
            self._global_replies.append(on_reply)
        self.transport.send_packet_nowait(
            byte(msg.GLOBAL_REQUEST) + string(name) + boolean(want_reply) + data
        )

    def _connection_lost(self, error: SSHError) -> None:
        for channel in list(self.channels.values()):
            channel.fail(error)

    @staticmethod
    def _check_awaiting_open(channel: Channel, what: str) -> None:
        """An open reply must answer an open of ours that is still unanswered."""
        if isinstance(channel, ServerOpenedChannel):
            raise ProtocolError(f"{what} for channel {channel.local_id}, which the server opened itself")
        if channel.opened.is_set():
            raise ProtocolError(f"{what} for channel {channel.local_id}, which is already open")

    def _channel(self, reader: Reader, what: str) -> Channel:
        local_id = reader.uint32()
        channel = self.channels.get(local_id)
        if channel is None:
            raise ProtocolError(f"{what} for unknown channel {local_id}")
        return channel

    def handle_packet(self, seq: int, payload: bytes | memoryview) -> None:
        kind = payload[0]
        if kind == msg.CHANNEL_DATA:
            # The hot path: decode the fixed header directly.
            if len(payload) < 9:
                raise ProtocolError(f"CHANNEL_DATA of {len(payload)} bytes is truncated")
            local_id, size = _DATA_HEADER.unpack_from(payload)[1:]
            if 9 + size != len(payload):
                raise ProtocolError(
                    f"CHANNEL_DATA: data length {size} does not match the packet ({len(payload) - 9} bytes)"
                )
            channel = self.channels.get(local_id)
            if channel is None:
                raise ProtocolError(f"CHANNEL_DATA for unknown channel {local_id}")
            channel.handle_data(0, payload[9:])
            return
        if kind == msg.CHANNEL_WINDOW_ADJUST and len(payload) == 9:
            # The other hot message: sshd grants window in 64 KiB steps during an upload.
            local_id, increment = _DATA_HEADER.unpack_from(payload)[1:]
            channel = self.channels.get(local_id)
            if channel is None:
                raise ProtocolError(f"CHANNEL_WINDOW_ADJUST for unknown channel {local_id}")
            channel.grow_send_window(increment)
            return
        name = msg.message_name(kind)
        reader = Reader(payload, name)
        reader.byte()
        if kind == msg.CHANNEL_EXTENDED_DATA:
            channel = self._channel(reader, name)
            stream = reader.uint32()
            data = reader.string()
            reader.check_end()
            # Only stderr is defined (RFC 4254 §5.2); other types are counted and dropped.
            channel.handle_data(stream if stream == EXTENDED_DATA_STDERR else -1, data)
        elif kind == msg.CHANNEL_WINDOW_ADJUST:
            self._channel(reader, name).handle_window_adjust(reader)
            reader.check_end()
        elif kind == msg.CHANNEL_EOF:
            channel = self._channel(reader, name)
            reader.check_end()
            channel.handle_eof()
        elif kind == msg.CHANNEL_CLOSE:
            channel = self._channel(reader, name)
            reader.check_end()
            channel.handle_close()  # answers with our CLOSE if we had not sent it
            del self.channels[channel.local_id]
        elif kind == msg.CHANNEL_REQUEST:
            channel = self._channel(reader, name)
            request = reader.ascii()
            want_reply = reader.boolean()
            ok = channel.handle_request(request, want_reply, reader)
            if want_reply and not channel.close_sent:
                reply = msg.CHANNEL_SUCCESS if ok else msg.CHANNEL_FAILURE
                self.transport.send_packet_nowait(byte(reply) + uint32(channel.remote_id))
        elif kind in (msg.CHANNEL_SUCCESS, msg.CHANNEL_FAILURE):
            channel = self._channel(reader, name)
            reader.check_end()
            channel.handle_reply(kind == msg.CHANNEL_SUCCESS)
        elif kind == msg.CHANNEL_OPEN_CONFIRMATION:
            channel = self._channel(reader, name)
            self._check_awaiting_open(channel, name)
            channel.handle_open_confirmation(reader)
            # Trailing channel-type-specific data is allowed (RFC 4254 §5.1).
        elif kind == msg.CHANNEL_OPEN_FAILURE:
            channel = self._channel(reader, name)
            self._check_awaiting_open(channel, name)
            channel.handle_open_failure(reader)
            del self.channels[channel.local_id]
        elif kind == msg.GLOBAL_REQUEST:
            request = reader.ascii()
            want_reply = reader.boolean()
            log.debug("refusing global request %r", request)
            if want_reply:
                self.transport.send_packet_nowait(byte(msg.REQUEST_FAILURE))
        elif kind == msg.CHANNEL_OPEN:
            self._handle_open(reader)
        elif kind in (msg.REQUEST_SUCCESS, msg.REQUEST_FAILURE):
            if not self._global_replies:
                raise ProtocolError(f"{name} received, but no global request of ours awaits a reply")
            self._global_replies.popleft()(kind == msg.REQUEST_SUCCESS, bytes(payload[1:]))
        elif kind in range(50, 80):
            raise ProtocolError(f"{name} received after authentication succeeded")
        else:
            log.debug("unknown %s; replying UNIMPLEMENTED", name)
            self.transport.send_packet_nowait(byte(msg.UNIMPLEMENTED) + uint32(seq))
