"""Local listening sockets for forwardings: TCP on every address of a name, or a unix socket.

``localhost`` has two addresses (127.0.0.1 and ::1), and OpenSSH's ``-L``
listens on both. With port 0 each bind would get its own port, so, as
OpenSSH does, the first bind picks the port and the others reuse it.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from pathlib import Path

import trio

from .._errors import ForwardingError

__all__ = ["tcp_listeners", "unix_listener"]

_BACKLOG = 128


async def tcp_listeners(host: str, port: int) -> list[trio.SocketListener]:
    """Listen on every address of ``host`` (``""``: all interfaces), on ``port`` (0: one free port for all).

    Raises:
        ForwardingError: the name does not resolve, or no address could be bound.
    """
    if not 0 <= port < 65536:
        raise ValueError(f"port must be 0..65535, got {port}")
    try:
        infos = await trio.socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise ForwardingError(f"cannot listen on {host}:{port}: {exc}") from exc
    listeners: list[trio.SocketListener] = []
    errors: list[str] = []
    try:
        for family, type_, proto, _, address in dict.fromkeys(infos):  # (getaddrinfo repeats some)
            sock = trio.socket.socket(family, type_, proto)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if listeners:
                    address = (address[0], listeners[0].socket.getsockname()[1], *address[2:])
                await sock.bind(address)
                sock.listen(_BACKLOG)
            except OSError as exc:
                sock.close()
                errors.append(f"{address[0]}: {exc.strerror or exc}")
                continue
            listeners.append(trio.SocketListener(sock))
    except BaseException:
        for listener in listeners:
            listener.socket.close()
        raise
    if not listeners:
        raise ForwardingError(f"cannot listen on {host}:{port}: " + "; ".join(errors))
    return listeners


async def unix_listener(path: str | os.PathLike[str]) -> trio.SocketListener:
    """Listen on a new unix socket at ``path``; a stale socket file there is replaced, nothing else is.

    Raises:
        ForwardingError: ``path`` is taken by something that is not a socket, or cannot be bound.
    """
    target = Path(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            if stat.S_ISSOCK(target.lstat().st_mode):
                target.unlink()  # left by a process that ended without removing it
        except FileNotFoundError:
            pass
        try:
            await sock.bind(os.fspath(target))
            sock.listen(_BACKLOG)
        except OSError as exc:
            reason = "the path exists" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
            raise ForwardingError(f"cannot listen on unix socket {target}: {reason}") from exc
    except BaseException:
        sock.close()
        raise
    return trio.SocketListener(sock)
