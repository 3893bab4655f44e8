"""Agent forwarding: relaying a server-opened ``auth-agent@openssh.com`` channel to the local agent.

Theory of operation
-------------------
With agent forwarding (OpenSSH PROTOCOL §2.2, draft-miller-ssh-agent §5.1),
a session first sends ``auth-agent-req@openssh.com``; sshd then gives the
remote command an ``$SSH_AUTH_SOCK`` of its own, and for every client that
connects to it, opens an ``auth-agent@openssh.com`` channel back to us. Each
such channel carries one agent connection's byte stream, unchanged: the
local agent does all the parsing and checking, so the relay does neither.

:func:`relay_agent_channel` is one channel's whole life, run as a task in
the connection's nursery (so it ends when the connection does):

1. connect to the local agent socket; if that fails, refuse the open
   (CONNECT_FAILED), as ssh does;
2. confirm the open, then pump both ways: channel data to the socket (window
   granted back as it is written, so at most one window is ever buffered),
   socket data to the channel (waiting for the server's window);
3. end-of-file is half-closed both ways: EOF from the server shuts down the
   socket's write side, EOF from the agent sends CHANNEL_EOF; when both
   directions have ended, or either breaks, we send CLOSE;
4. the server's CLOSE (or the connection dying) ends everything at once:
   what remains is cancelled and the socket closed.

Errors here are never raised into the connection: a broken agent socket
closes its channel, and a dead connection has already failed every channel.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Final

import trio

from .._errors import ChannelOpenFailureReason, SSHError

if TYPE_CHECKING:
    from .._channels.channel import ServerOpenedChannel

__all__ = ["AGENT_CHANNEL_TYPE", "AGENT_REQUEST", "relay_agent_channel"]

log = logging.getLogger("trissh.agent")

#: The channel type sshd opens for each forwarded agent connection.
AGENT_CHANNEL_TYPE: Final = "auth-agent@openssh.com"
#: The session request that asks for agent forwarding.
AGENT_REQUEST: Final = "auth-agent-req@openssh.com"

#: The most read from the agent socket at once; agent messages are small, and
#: the channel splits what it sends into the server's packet size anyway.
RELAY_CHUNK: Final = 64 * 1024

# A socket that failed under us: reset, refused, or closed by the agent.
_SOCKET_ERRORS: Final = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


async def relay_agent_channel(channel: ServerOpenedChannel, agent_path: str) -> None:
    """Connect ``channel`` to the agent at ``agent_path`` and relay until either side ends it."""
    try:
        stream = await trio.open_unix_socket(agent_path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        log.warning("agent forwarding: cannot connect to the local agent at %s: %s", agent_path, reason)
        channel.refuse(
            ChannelOpenFailureReason.CONNECT_FAILED, f"cannot connect to the local agent: {reason}"
        )
        return
    async with stream:
        if not channel.confirm():
            return
        log.debug("channel %d: forwarding to the agent at %s", channel.local_id, agent_path)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump_both_ways, channel, stream)
            await channel.finished.wait()  # the server's CLOSE, or the connection died
            nursery.cancel_scope.cancel()


async def _pump_both_ways(channel: ServerOpenedChannel, stream: trio.SocketStream) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_to_agent, channel, stream)
        nursery.start_soon(_from_agent, channel, stream)
    channel.send_close_nowait()  # both directions ended (a no-op if one already closed it)


async def _to_agent(channel: ServerOpenedChannel, stream: trio.SocketStream) -> None:
    """Channel data to the agent socket, until the server's EOF."""
    while True:
        chunk = channel.take(0, None)
        if chunk is not None:
            try:
                await stream.send_all(chunk)
            except _SOCKET_ERRORS as exc:
                log.debug("channel %d: the local agent stopped reading: %s", channel.local_id, exc)
                channel.send_close_nowait()
                return
            continue
        if channel.is_closed:  # the server's CLOSE, or the connection died
            return
        if channel.eof_received:
            with contextlib.suppress(*_SOCKET_ERRORS):  # gone already: _from_agent sees the same
                await stream.send_eof()
            return
        await channel.wait_data()


async def _from_agent(channel: ServerOpenedChannel, stream: trio.SocketStream) -> None:
    """Agent socket data to the channel, until the agent's EOF."""
    while True:
        try:
            data = await stream.receive_some(RELAY_CHUNK)
        except _SOCKET_ERRORS as exc:
            log.debug("channel %d: the local agent connection broke: %s", channel.local_id, exc)
            channel.send_close_nowait()
            return
        try:
            if not data:
                await channel.send_eof()
                return
            await channel.send_data(data)
        except (SSHError, trio.ClosedResourceError, trio.BrokenResourceError):
            return  # the connection died or the channel closed (by us or the server): nothing to send to
