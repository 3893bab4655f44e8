"""Carrying one forwarded connection: bytes both ways between a local stream and a channel.

Each direction is a loop of its own: read up to :data:`RELAY_CHUNK`, write it
out, and pass an end-of-file on as a half-close (``send_eof``), so a protocol
that shuts down its writing side (``curl`` uploading, ``ssh -W``'s peers) keeps
reading the answer. The relay ends when both directions have ended, or at the
first error in either (a reset socket, a channel the server closed, the
connection gone): then both ends are closed at once. An error ends this
connection only; it is logged, never raised, so one vanished peer does not
disturb the forwarding's other connections.
"""

from __future__ import annotations

import logging
from typing import Final

import trio

from .._channels.streams import ChannelStream
from .._errors import SSHError
from .._socket_io import send_all_parts

__all__ = ["RELAY_CHUNK", "relay"]

log = logging.getLogger("trissh.forwarding")

#: The most one read takes from either side. Large reads mean fewer trips
#: through the event loop; a channel splits what it sends into packets anyway.
RELAY_CHUNK: Final = 256 * 1024

#: What ends one forwarded connection without concerning anybody else.
_ENDED: Final = (trio.BrokenResourceError, trio.ClosedResourceError, OSError, SSHError)


async def relay(local: trio.abc.Stream, remote: trio.abc.Stream, what: str = "forwarded connection") -> None:
    """Copy ``local`` to ``remote`` and back until both are done; close both.

    ``what`` names the connection in log lines.
    """
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump, local, remote, nursery.cancel_scope, what)
            if isinstance(remote, ChannelStream) and isinstance(local, trio.SocketStream):
                await _channel_to_socket(remote, local, nursery.cancel_scope, what)
            else:
                await _pump(remote, local, nursery.cancel_scope, what)
    finally:
        try:
            await trio.aclose_forcefully(local)
        finally:  # a cancel raised by the first close must not leave the channel open
            await trio.aclose_forcefully(remote)


async def _channel_to_socket(
    source: ChannelStream, sink: trio.SocketStream, both: trio.CancelScope, what: str
) -> None:
    """The download direction without a copy of ours: the received packets go to the socket as they are,
    gathered by one ``writev``."""
    receive = source.receive_parts
    sock = sink.socket
    try:
        while parts := await receive(RELAY_CHUNK):
            await send_all_parts(sock, parts)
        await sink.send_eof()
    except _ENDED as exc:
        log.debug("%s ended: %s", what, exc or type(exc).__name__)
        both.cancel()


async def _pump(
    source: trio.abc.ReceiveStream, sink: trio.abc.SendStream, both: trio.CancelScope, what: str
) -> None:
    """One direction; an error cancels ``both``, ending the other direction too."""
    receive = source.receive_some
    send = sink.send_all
    try:
        while data := await receive(RELAY_CHUNK):
            await send(data)
        if isinstance(sink, trio.abc.HalfCloseableStream):
            await sink.send_eof()
    except _ENDED as exc:
        log.debug("%s ended: %s", what, exc or type(exc).__name__)
        both.cancel()
