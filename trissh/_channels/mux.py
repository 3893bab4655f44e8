"""The connection protocol's dispatcher (RFC 4254): the channel table, global requests, server opens.

Theory of operation
-------------------
:class:`ChannelMux` is the connection layer's packet handler: the transport's
reader task calls :meth:`ChannelMux.handle_packet` synchronously for every
packet after authentication, and it hands each channel message to its
:class:`~trissh._channels.channel.Channel`. Global requests of ours get their
replies in request order (RFC 4254 §4); the server's are refused.

The server may open channels too (RFC 4254 §5.1), of the kinds in
:data:`~trissh._channels.incoming.ROUTES` and only when the caller asked for
them (a remote forwarding, agent forwarding). Such a channel is a
:class:`ServerOpenedChannel`: the reader task creates it and starts its task
in the nursery of whoever asked for it, which confirms or refuses the open.
Every other open is refused with ADMINISTRATIVELY_PROHIBITED, and opens beyond
the limits of :mod:`~trissh._channels.incoming` with RESOURCE_SHORTAGE.

Our own global requests that want a reply (``tcpip-forward``) wait in
:meth:`ChannelMux.global_request`; if the connection ends first, they raise
its error rather than waiting for a reply that will never come.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable
from typing import Final

import trio

from .. import _messages as msg
from .._algorithms.hostkeys import PublicKey
from .._auth.agent_forward import relay_agent_channel
from .._driver import SSHClientTransport
from .._errors import AgentError, ChannelOpenFailureReason, ProtocolError, SSHError
from .._wire import Reader, boolean, byte, string, uint32
from .channel import DATA_HEADER, EXTENDED_DATA_STDERR, Channel, ChannelState, ServerOpenedChannel
from .global_requests import server_global_request
from .incoming import (
    LIMITS,
    MAX_AGENT_CHANNELS,
    MAX_SERVER_OPENED_CHANNELS,
    ROUTES,
    IncomingChannels,
    Listening,
    Origin,
    Refusal,
)

__all__ = ["MAX_AGENT_CHANNELS", "ChannelMux", "GlobalReplyHandler"]

log = logging.getLogger("trissh.channel")

#: Called with (success, the reply's data) when a global request's reply arrives.
GlobalReplyHandler = Callable[[bool, bytes], None]


_PROHIBITED: Final = ChannelOpenFailureReason.ADMINISTRATIVELY_PROHIBITED
_SHORTAGE: Final = ChannelOpenFailureReason.RESOURCE_SHORTAGE
_SERVE_TASK: Final = "trissh.channel.serve_incoming"


class ChannelMux:
    """The connection protocol: channel table, dispatch, global requests."""

    def __init__(self, transport: SSHClientTransport) -> None:
        self.transport = transport
        self.channels: dict[int, Channel] = {}
        self._next_id = 0
        # What to do with each awaited global request reply, in request order
        # (RFC 4254 §4: replies come in the order of the requests); made on first use.
        self._global_replies: deque[GlobalReplyHandler] | None = None
        #: The forwardings that accept channels from the server (incoming.py).
        self.incoming = IncomingChannels()
        #: The host keys the server announced (hostkeys-00@openssh.com), unverified; see global_requests.py.
        self.server_host_keys: tuple[PublicKey, ...] = ()
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
        path = os.fspath(agent_path)

        async def serve(channel: ServerOpenedChannel, origin: Origin) -> None:
            await relay_agent_channel(channel, path)

        self.incoming.agent = Listening(nursery, serve, f"the agent at {path}")

    @property
    def agent_forwarding(self) -> bool:
        """Whether :meth:`enable_agent_forwarding` was called."""
        return self.incoming.agent is not None

    def refuse_open(self, sender: int, reason: ChannelOpenFailureReason, description: str) -> None:
        self.transport.send_packet_nowait(
            byte(msg.CHANNEL_OPEN_FAILURE)
            + uint32(sender)
            + uint32(reason)
            + string(description)
            + string("")
        )

    def _handle_open(self, reader: Reader) -> None:
        """CHANNEL_OPEN from the server (RFC 4254 §5.1): to whoever asked for its kind, else refused."""
        kind = reader.ascii()
        sender = reader.uint32()
        window = reader.uint32()
        max_packet = reader.uint32()
        route = ROUTES.get(kind)
        routed: tuple[Listening, Origin] | Refusal
        if route is None:
            routed = Refusal(_PROHIBITED, f"trissh accepts no {kind[:64]!r} channels from the server")
        else:
            routed = route(self.incoming, reader)
        if not isinstance(routed, Refusal):
            if max_packet < 1:
                raise ProtocolError(f"CHANNEL_OPEN {kind!r}: the server's maximum packet size is 0")
            routed = self._check_limits(kind) or routed
        if isinstance(routed, Refusal):
            log.debug("refusing channel open %r from the server: %s", kind[:64], routed.text)
            self.refuse_open(sender, routed.reason, routed.text)
            return
        listening, origin = routed
        channel = self.add(ServerOpenedChannel, kind)
        assert isinstance(channel, ServerOpenedChannel)
        channel.set_remote(sender, window, max_packet)
        listening.nursery.start_soon(listening.serve, channel, origin, name=_SERVE_TASK)

    def _check_limits(self, kind: str) -> Refusal | None:
        """RESOURCE_SHORTAGE when the server has opened too many channels (of this kind, or in all)."""
        opened = [c.kind for c in self.channels.values() if isinstance(c, ServerOpenedChannel)]
        limit = LIMITS.get(kind)
        if limit is not None and opened.count(kind) >= limit:
            log.warning("refusing %s channel: %d are open already", kind, limit)
            return Refusal(_SHORTAGE, f"too many {kind} channels open")
        if len(opened) >= MAX_SERVER_OPENED_CHANNELS:
            log.warning("refusing %s channel: the server has %d channels open to us", kind, len(opened))
            return Refusal(_SHORTAGE, "too many channels opened by the server")
        return None

    async def global_request(self, name: str, data: bytes = b"") -> bytes | None:
        """Send a GLOBAL_REQUEST that wants a reply and wait for it: the reply's data on success,
        None on failure.

        Raises:
            ConnectionLost, ProtocolError, DisconnectError: the connection ended first.
        """
        transport = self.transport
        if transport.error is not None:
            raise transport.error
        replied = trio.Event()
        reply: list[bytes | None] = []

        def on_reply(success: bool, reply_data: bytes) -> None:
            reply.append(reply_data if success else None)
            replied.set()

        self.send_global_request_nowait(name, data, on_reply)
        await replied.wait()
        if reply[0] is None and transport.error is not None:
            raise transport.error  # woken by the connection's end (or refused just before it)
        return reply[0]

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
        # No reply will come: wake whoever waits for one (global_request raises the error).
        waiting, self._global_replies = self._global_replies, None
        for handler in waiting or ():
            handler(False, b"")

    @staticmethod
    def _check_awaiting_open(channel: Channel, what: str) -> None:
        """An open reply must answer an open of ours that is still unanswered."""
        if isinstance(channel, ServerOpenedChannel):
            raise ProtocolError(f"{what} for channel {channel.local_id}, which the server opened itself")
        if channel.state is not ChannelState.OPENING:
            raise ProtocolError(f"{what} for channel {channel.local_id}, which is already open")

    def _channel(self, reader: Reader, what: str, *, unconfirmed_ok: bool = False) -> Channel:
        """The channel a message names. Until an open is confirmed only its answer (and, for a channel
        the server opened, its CLOSE) may name it: the channel has no other end to speak yet."""
        local_id = reader.uint32()
        channel = self.channels.get(local_id)
        if channel is None:
            raise ProtocolError(f"{what} for unknown channel {local_id}")
        if channel.state is ChannelState.OPENING and not unconfirmed_ok:
            raise ProtocolError(f"{what} for channel {local_id}, which is not open yet")
        return channel

    def handle_packet(self, seq: int, payload: bytes | memoryview) -> None:
        kind = payload[0]
        if kind == msg.CHANNEL_DATA:
            # The hot path: decode the fixed header directly.
            if len(payload) < 9:
                raise ProtocolError(f"CHANNEL_DATA of {len(payload)} bytes is truncated")
            local_id, size = DATA_HEADER.unpack_from(payload)[1:]
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
            local_id, increment = DATA_HEADER.unpack_from(payload)[1:]
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
            channel = self._channel(reader, name, unconfirmed_ok=True)
            reader.check_end()
            if channel.state is ChannelState.OPENING and not isinstance(channel, ServerOpenedChannel):
                raise ProtocolError(f"{name} for channel {channel.local_id}, never confirmed")
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
            channel = self._channel(reader, name, unconfirmed_ok=True)
            self._check_awaiting_open(channel, name)
            channel.handle_open_confirmation(reader)
            # Trailing channel-type-specific data is allowed (RFC 4254 §5.1).
        elif kind == msg.CHANNEL_OPEN_FAILURE:
            channel = self._channel(reader, name, unconfirmed_ok=True)
            self._check_awaiting_open(channel, name)
            channel.handle_open_failure(reader)
            del self.channels[channel.local_id]
        elif kind == msg.GLOBAL_REQUEST:
            request = reader.ascii()
            want_reply = reader.boolean()
            keys = server_global_request(request, reader)  # global_requests.py: recorded, always refused
            if keys is not None:
                self.server_host_keys = keys
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
