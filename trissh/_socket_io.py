"""Reading and writing a connected Trio socket with the fewest frames in between.

Why not ``SocketStream.receive_some`` / ``send_all``: a task parked in them holds
about a dozen suspended frames and context managers (the stream's conflict
detector and error translation, the socket's non-blocking helper, the I/O
manager's wait): some 3.5 KiB per connection, held for the connection's whole
life by the reader, and by the writer while it sends. A process with thousands
of mostly idle connections pays that many times over, so the transport's two
tasks call the operating system directly on the socket's descriptor and park
in Trio's ``wait_readable`` / ``wait_writable`` only when it would block.

The descriptor is looked up again before every call, never kept across an
await: once Trio closes the socket, ``fileno()`` is -1 and we raise
``ClosedResourceError`` instead of touching a number the system may already
have given to another file. A task parked in a wait when the socket is closed
gets ``ClosedResourceError`` from Trio. Each async function is a checkpoint,
as Trio's own socket calls are: it yields to the scheduler once even when the
call did not have to wait.

POSIX only (:data:`AVAILABLE`): on Windows a socket is not a file descriptor,
and the transport uses the stream's own methods.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine
from typing import Any, Final, TypeVar

import trio

__all__ = ["AVAILABLE", "close", "receive_into", "receive_some", "send_all", "send_now"]

#: Whether sockets can be read and written as descriptors here.
AVAILABLE: Final = os.name == "posix"

_Arg = TypeVar("_Arg")
_Result = TypeVar("_Result")


def _descriptor(sock: trio.socket.SocketType) -> int:
    fd = sock.fileno()
    if fd < 0:
        raise trio.ClosedResourceError("the socket was closed")
    return fd


async def _read(sock: trio.socket.SocketType, syscall: Callable[[int, _Arg], _Result], arg: _Arg) -> _Result:
    """``syscall(fd, arg)``, waiting until ``sock`` is readable if it would block."""
    await trio.lowlevel.checkpoint_if_cancelled()
    waited = False
    while True:
        try:
            result = syscall(_descriptor(sock), arg)
            break
        except BlockingIOError:
            pass
        # Wait outside the except clause: the handled exception would otherwise
        # stay alive, with its traceback, for as long as the wait lasts.
        await trio.lowlevel.wait_readable(_descriptor(sock))
        waited = True
    if not waited:
        await trio.lowlevel.cancel_shielded_checkpoint()
    return result


# Plain functions that return _read's coroutine: a parked reader holds no frame of theirs.


def receive_some(sock: trio.socket.SocketType, max_bytes: int) -> Coroutine[Any, Any, bytes]:
    """Up to ``max_bytes`` from ``sock``, waiting for at least one; b"" at end of stream."""
    return _read(sock, os.read, max_bytes)


def receive_into(sock: trio.socket.SocketType, buffer: bytearray) -> Coroutine[Any, Any, int]:
    """Read into ``buffer`` from its start, waiting for at least one byte; 0 at end of stream."""
    return _read(sock, os.readv, (buffer,))


def send_now(sock: trio.socket.SocketType, data: memoryview) -> int:
    """Write what ``sock`` takes of ``data`` at once, without waiting: how much (0 when it is full)."""
    try:
        return os.write(_descriptor(sock), data)
    except BlockingIOError:
        return 0


async def send_all(
    sock: trio.socket.SocketType, data: memoryview, keep_unsent: Callable[[memoryview], None] | None = None
) -> None:
    """Write all of ``data`` to ``sock``, waiting while its send buffer is full.

    When it is interrupted (cancelled, or the socket fails) it hands what it
    did not write to ``keep_unsent`` before raising, so that the caller can
    send it first next time: a packet cut in two by a cancellation would
    otherwise be followed by the start of another.
    """
    waited = False
    try:
        await trio.lowlevel.checkpoint_if_cancelled()
        while data:
            sent = send_now(sock, data)
            if sent:
                data = data[sent:]
            else:
                await trio.lowlevel.wait_writable(_descriptor(sock))
                waited = True
    except BaseException:
        if keep_unsent is not None:
            keep_unsent(data)
        raise
    if not waited:
        await trio.lowlevel.cancel_shielded_checkpoint()


async def send_all_parts(sock: trio.socket.SocketType, parts: list[bytes | memoryview]) -> None:
    """Write ``parts`` to ``sock`` in order, with ``writev``: the gathering is the kernel's copy, not ours.

    ``parts`` is consumed (emptied) as it is written.
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    fd = _descriptor(sock)
    waited = False
    while parts:
        try:
            sent = os.writev(fd, parts[:_IOV_MAX])
        except BlockingIOError:
            await trio.lowlevel.wait_writable(fd)
            waited = True
            continue
        while sent:  # drop what went, keep the rest of a part written in part
            size = len(parts[0])
            if sent >= size:
                sent -= size
                del parts[0]
            else:
                parts[0] = memoryview(parts[0])[sent:]
                sent = 0
    if not waited:
        await trio.lowlevel.cancel_shielded_checkpoint()


#: The most parts one writev takes (POSIX guarantees at least 16; Linux allows 1024).
_IOV_MAX: Final = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16


def close(sock: trio.socket.SocketType, discard_limit: int = 256 * 1024) -> None:
    """Close ``sock``, first reading and dropping what has already arrived (up to ``discard_limit``).

    A TCP socket closed with unread data sends RST instead of FIN, and a peer
    that is told so while it writes (sshd, answering what we sent last) may
    die on the broken pipe before it reads our final packets, DISCONNECT
    included. Draining what is there makes that much less likely.
    """
    fd = sock.fileno()
    left = discard_limit
    while fd >= 0 and left > 0:
        try:
            chunk = os.read(fd, min(left, 65536))
        except OSError:  # nothing more now (BlockingIOError), or the connection is already gone
            break
        if not chunk:
            break
        left -= len(chunk)
    sock.close()
