"""Remote forwarding (``ssh -R``): the server listens, and each connection to it comes back as a channel.

Theory of operation
-------------------
:func:`forward_remote` asks the server to listen (``tcpip-forward``, RFC 4254
§7.1, or ``streamlocal-forward@openssh.com``, OpenSSH PROTOCOL §2.4) and waits
for its answer: a refusal is a :class:`ForwardingError` and nothing is left
listening; for port 0 the reply says which port the server chose. While the
block runs, the forwarding is registered in the dispatcher's table of
incoming channels (:mod:`trissh._channels.incoming`), so each
``forwarded-tcpip`` (or ``forwarded-streamlocal``) channel for it is served
by a task in this forwarding's nursery:

* to a local ``(host, port)`` or unix socket path: connect first, then
  confirm the channel and relay; a destination that refuses gets the channel
  refused (CONNECT_FAILED), as ssh does;
* to an async handler: confirm, then ``await handler(stream)`` with a
  :class:`~trissh._channels.streams.ChannelStream`, closed when the handler
  returns. A handler's exception ends the forwarding and comes out of the
  block, as with :func:`trio.serve_tcp`.

Leaving the block unregisters the forwarding first (later opens for it are
refused), sends ``cancel-tcpip-forward`` without waiting for the answer (so
leaving never blocks, even when cancelled), and closes the channels still open.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from .._channels.channel import ServerOpenedChannel
from .._channels.incoming import Listening, Origin
from .._channels.launch import open_nursery_unwrapped
from .._channels.mux import ChannelMux
from .._channels.streams import ChannelStream
from .._errors import ChannelOpenFailureReason, ForwardingError
from .._public import public
from .._wire import Reader, string, uint32
from .relay import relay

__all__ = ["ChannelHandler", "RemoteForward", "forward_remote_port", "forward_remote_unix"]

log = logging.getLogger("trissh.forwarding")

#: An async function that takes over one forwarded connection.
ChannelHandler = Callable[[ChannelStream], Awaitable[object]]


@public
@dataclass(frozen=True, repr=False)
class RemoteForward:
    """A running remote forwarding, as yielded by ``conn.forward_remote_port``/``forward_remote_unix``.

    Attributes:
        listen_host: the address the server listens on, as asked for; None for a unix socket.
        port: the port it listens on (the one it chose when 0 was asked); 0 for a unix socket.
        path: the unix socket path on the server, or None.
        destination: where each connection is carried, here: ``"127.0.0.1:8080"``,
            ``"unix:/run/app.sock"``, or ``"handler <its name>"``.
    """

    listen_host: str | None
    port: int
    path: str | None
    destination: str = ""

    def __repr__(self) -> str:
        there = self.path if self.path is not None else f"{self.listen_host or '*'}:{self.port}"
        return f"<trissh.RemoteForward {there} (on the server) -> {self.destination or '?'}>"


#: Where each forwarded connection goes: a handler, a local (host, port), or a local unix socket path.
Destination = ChannelHandler | tuple[str, int] | str | os.PathLike[str]


@asynccontextmanager
async def forward_remote_port(
    mux: ChannelMux, listen_host: str, listen_port: int, destination: Destination
) -> AsyncIterator[RemoteForward]:
    """``ssh -R [listen_host:]listen_port:destination``: see the module docstring."""
    if not 0 <= listen_port < 65536:
        raise ValueError(f"port must be 0..65535, got {listen_port}")
    serve = _server_for(destination)
    where = f"{listen_host or '*'}:{listen_port}"
    reply = await mux.global_request("tcpip-forward", string(listen_host) + uint32(listen_port))
    if reply is None:
        raise ForwardingError(f"the server refused to listen on {where} for us (tcpip-forward)")
    port = listen_port
    if listen_port == 0:
        reader = Reader(reply, "tcpip-forward reply")
        port = reader.uint32()
        if not 0 < port < 65536:
            raise ForwardingError(f"the server says it listens on port {port} for us, which is not a port")
    key = (listen_host, port)
    async with open_nursery_unwrapped() as nursery:
        mux.incoming.tcp[key] = Listening(nursery, serve, f"remote port {listen_host or '*'}:{port}")
        try:
            yield RemoteForward(listen_host, port, None, _describe(destination))
        finally:
            del mux.incoming.tcp[key]
            if mux.transport.error is None:
                mux.send_global_request_nowait("cancel-tcpip-forward", string(listen_host) + uint32(port))
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def forward_remote_unix(
    mux: ChannelMux, listen_path: str, destination: Destination
) -> AsyncIterator[RemoteForward]:
    """``ssh -R /remote/socket:destination``: see the module docstring."""
    serve = _server_for(destination)
    reply = await mux.global_request("streamlocal-forward@openssh.com", string(listen_path))
    if reply is None:
        raise ForwardingError(
            f"the server refused to listen on unix socket {listen_path} for us (streamlocal-forward)"
        )
    async with open_nursery_unwrapped() as nursery:
        mux.incoming.unix[listen_path] = Listening(nursery, serve, f"remote unix socket {listen_path}")
        try:
            yield RemoteForward(None, 0, listen_path, _describe(destination))
        finally:
            del mux.incoming.unix[listen_path]
            if mux.transport.error is None:
                mux.send_global_request_nowait("cancel-streamlocal-forward@openssh.com", string(listen_path))
            nursery.cancel_scope.cancel()


def _describe(destination: Destination) -> str:
    """``destination`` for a repr or a log line (checked already by :func:`_server_for`)."""
    if callable(destination):
        return f"handler {getattr(destination, '__qualname__', type(destination).__name__)}"
    if isinstance(destination, tuple):
        return f"{destination[0]}:{destination[1]}"
    return f"unix:{os.fspath(destination)}"


def _server_for(destination: Destination) -> Callable[[ServerOpenedChannel, Origin], Awaitable[None]]:
    """The task that serves each channel for ``destination``; TypeError for a destination that is none."""
    if callable(destination):
        handler = destination

        async def to_handler(channel: ServerOpenedChannel, origin: Origin) -> None:
            if not channel.confirm():
                return
            stream = ChannelStream(channel)
            try:
                await handler(stream)
            finally:
                await stream.aclose()

        return to_handler
    if isinstance(destination, tuple):
        host, port = destination
        if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
            raise TypeError(f"a destination is (host, port), got {destination!r}")
        if not 0 < port < 65536:
            raise ValueError(f"destination port must be 1..65535, got {port}")
        what = f"{host}:{port}"

        async def open_tcp() -> trio.abc.HalfCloseableStream:
            return await trio.open_tcp_stream(host, port)

        return _relay_to(open_tcp, what)
    if isinstance(destination, str | os.PathLike):
        path = os.fspath(destination)

        async def open_unix() -> trio.abc.HalfCloseableStream:
            return await trio.open_unix_socket(path)

        return _relay_to(open_unix, f"unix socket {path}")
    raise TypeError(
        "a remote forwarding goes to an async handler, a (host, port) or a unix socket path, "
        f"not {type(destination).__name__}"
    )


def _relay_to(
    connect: Callable[[], Awaitable[trio.abc.HalfCloseableStream]], what: str
) -> Callable[[ServerOpenedChannel, Origin], Awaitable[None]]:
    async def serve(channel: ServerOpenedChannel, origin: Origin) -> None:
        try:
            local = await connect()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            log.info("forwarded connection from %s:%d: cannot connect to %s: %s", *origin, what, reason)
            channel.refuse(ChannelOpenFailureReason.CONNECT_FAILED, f"cannot connect to {what}: {reason}")
            return
        if not channel.confirm():
            await trio.aclose_forcefully(local)
            return
        await relay(local, ChannelStream(channel), f"forwarded connection to {what}")

    return serve
