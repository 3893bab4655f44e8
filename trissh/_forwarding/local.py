"""Local forwarding (``ssh -L``, ``ssh -D``): a local listener whose connections go through the server.

Theory of operation
-------------------
:func:`serve_local` is the part every local forwarding shares: it runs
``trio.serve_listeners`` over the given listeners in a nursery of its own and
calls ``carry(stream, peer)`` for each accepted connection, in a task of its
own, while the caller's block runs. What ``carry`` does is the forwarding's
kind: open a ``direct-tcpip`` or ``direct-streamlocal`` channel and relay
(:func:`forward_to`), or speak SOCKS first (:mod:`.socks`).

A connection whose channel cannot be opened is closed and logged; the others
and the listener carry on. When the SSH connection ends, the listeners close
(new connections are refused by the kernel, not accepted and dropped) and the
relays end as their channels fail. Leaving the block closes the listeners and
every connection still being carried, and removes a unix socket we created.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import trio

from .._channels.direct import open_tcp_stream, open_unix_stream
from .._channels.launch import open_nursery_unwrapped
from .._channels.mux import ChannelMux
from .._errors import SSHError
from .._public import public
from .listen import tcp_listeners, unix_listener
from .relay import relay
from .socks import serve_socks_client

__all__ = [
    "LocalForward",
    "forward_local_port",
    "forward_local_unix",
    "forward_socks",
    "forward_to",
    "serve_local",
]

log = logging.getLogger("trissh.forwarding")

#: Opens the far end for one accepted connection, given the peer's (host, port) (("", 0) for unix peers).
OpenDestination = Callable[[tuple[str, int]], Awaitable[trio.abc.HalfCloseableStream]]
#: Carries one accepted connection to its end; ``(stream, peer)``.
Carry = Callable[[trio.SocketStream, tuple[str, int]], Awaitable[None]]


#: A local socket address listened on: a unix socket path, or an IPv4 or IPv6 address tuple.
SocketAddress: TypeAlias = str | tuple[str, int] | tuple[str, int, int, int]


@public
@dataclass(frozen=True, repr=False)
class LocalForward:
    """A running local forwarding, as yielded by ``conn.forward_local_port`` and its kin.

    Attributes:
        listen_host: the host name or address asked for (``""``: all interfaces); None for a unix socket.
        port: the TCP port listened on (the one the system chose when 0 was asked); 0 for a unix socket.
        path: the unix socket listened on, or None.
        addresses: every local socket address listened on (``localhost`` has two): a
            path for a unix socket, ``(host, port)`` for IPv4, ``(host, port, flowinfo, scope_id)``
            for IPv6.
        destination: where each connection is carried, as the server reaches it
            (``"db.internal:5432"``, ``"unix:/run/app.sock"``), or ``"SOCKS"`` for ``forward_socks``.
    """

    listen_host: str | None
    port: int
    path: Path | None
    addresses: tuple[SocketAddress, ...]
    destination: str = ""

    def __repr__(self) -> str:
        here = os.fspath(self.path) if self.path is not None else f"{self.listen_host or '*'}:{self.port}"
        return f"<trissh.LocalForward {here} -> {self.destination or '?'}>"


def peer_name(stream: trio.SocketStream) -> tuple[str, int]:
    """The connecting peer as (address, port); ("", 0) for a unix socket peer (it has no address)."""
    try:
        peer = stream.socket.getpeername()
    except OSError:
        return ("", 0)
    if isinstance(peer, tuple):
        return (str(peer[0]), int(peer[1]))
    return ("", 0)


@asynccontextmanager
async def serve_local(
    mux: ChannelMux, listeners: list[trio.SocketListener], carry: Carry, *, path: Path | None = None
) -> AsyncIterator[None]:
    """Accept on ``listeners`` while the block runs, each connection carried by ``carry`` in its own task.

    The listeners belong to this function from the call on: they are closed when it returns, and
    ``path`` (a unix socket it listens on) is removed.
    """

    async def handle(stream: trio.SocketStream) -> None:
        await carry(stream, peer_name(stream))

    try:
        async with open_nursery_unwrapped() as nursery:
            accepting = trio.CancelScope()

            async def accept_until_stopped() -> None:
                with accepting:
                    await trio.serve_listeners(handle, listeners, handler_nursery=nursery)

            # The SSH connection's end stops the accepting (a cancelled scope that has
            # exited ignores the call, so the callback may outlive this forwarding).
            mux.transport.add_close_callback(lambda error: accepting.cancel())
            if mux.transport.error is not None:
                accepting.cancel()
            nursery.start_soon(accept_until_stopped, name="trissh.forwarding.accept")
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
    finally:
        for listener in listeners:
            listener.socket.close()
        if path is not None:
            with suppress(OSError):
                os.unlink(path)


async def forward_to(
    stream: trio.SocketStream, peer: tuple[str, int], open_destination: OpenDestination, what: str
) -> None:
    """Open the destination for one accepted connection and relay; a refusal closes it, logged."""
    try:
        destination = await open_destination(peer)
    except SSHError as exc:
        log.info("%s from %s:%d: %s", what, peer[0] or "unix socket", peer[1], exc)
        await trio.aclose_forcefully(stream)
        return
    await relay(stream, destination, what)


@asynccontextmanager
async def forward_local_port(
    mux: ChannelMux, listen_host: str, listen_port: int, dest_host: str, dest_port: int
) -> AsyncIterator[LocalForward]:
    """``ssh -L listen_host:listen_port:dest_host:dest_port``: see the module docstring."""
    if not 0 < dest_port < 65536:
        raise ValueError(f"destination port must be 1..65535, got {dest_port}")
    what = f"forwarding to {dest_host}:{dest_port}"

    async def open_destination(peer: tuple[str, int]) -> trio.abc.HalfCloseableStream:
        return await open_tcp_stream(mux, dest_host, dest_port, originator=peer)

    async def carry(stream: trio.SocketStream, peer: tuple[str, int]) -> None:
        await forward_to(stream, peer, open_destination, what)

    listeners = await tcp_listeners(listen_host, listen_port)
    async with serve_local(mux, listeners, carry):
        yield _tcp_forward(listen_host, listeners, f"{dest_host}:{dest_port}")


@asynccontextmanager
async def forward_local_unix(
    mux: ChannelMux, listen_path: str | os.PathLike[str], dest_path: str | os.PathLike[str]
) -> AsyncIterator[LocalForward]:
    """``ssh -L /local/socket:/remote/socket``: see the module docstring."""
    what = f"forwarding to unix socket {os.fspath(dest_path)} on the server"

    async def open_destination(peer: tuple[str, int]) -> trio.abc.HalfCloseableStream:
        return await open_unix_stream(mux, dest_path)

    async def carry(stream: trio.SocketStream, peer: tuple[str, int]) -> None:
        await forward_to(stream, peer, open_destination, what)

    path = Path(listen_path)
    listener = await unix_listener(path)
    async with serve_local(mux, [listener], carry, path=path):
        yield LocalForward(None, 0, path, (os.fspath(path),), f"unix:{os.fspath(dest_path)}")


@asynccontextmanager
async def forward_socks(mux: ChannelMux, listen_host: str, listen_port: int) -> AsyncIterator[LocalForward]:
    """``ssh -D listen_host:listen_port``: each SOCKS client names its destination; see :mod:`.socks`."""

    async def carry(stream: trio.SocketStream, peer: tuple[str, int]) -> None:
        async def open_destination(host: str, port: int) -> trio.abc.HalfCloseableStream:
            return await open_tcp_stream(mux, host, port, originator=peer)

        try:
            await serve_socks_client(stream, open_destination, relay)
        except SSHError as exc:  # the connection ended under it: this client only
            log.info("SOCKS client %s:%d: %s", *peer, exc)

    listeners = await tcp_listeners(listen_host, listen_port)
    async with serve_local(mux, listeners, carry):
        yield _tcp_forward(listen_host, listeners, "SOCKS")


def _tcp_forward(listen_host: str, listeners: list[trio.SocketListener], destination: str) -> LocalForward:
    addresses = tuple(tuple(listener.socket.getsockname()) for listener in listeners)
    return LocalForward(listen_host, int(addresses[0][1]), None, addresses, destination)
