"""Task supervision and shutdown: starting the transport's tasks, and ending the connection.

The reader and the writer read and write the socket directly
(:mod:`trissh._socket_io`), and are stopped by closing it, which wakes them
wherever they wait: no cancel scope per task. What a closing socket cannot
wake (a user's host-key hook, the ``connection_secure`` task, tasks over a
stream that is not a socket) runs in a cancel scope (:func:`stoppable`) that
shutting down cancels.

Failure: any error in a task (a protocol violation, a broken socket, the
server's DISCONNECT) is recorded once as the transport's ``error``
(:func:`fail`), a DISCONNECT is sent when we are the one ending the
connection, the socket is closed and every waiter is woken to raise it
(:func:`shut_down`). The tasks themselves never raise into the nursery (but
for Trio's own Cancelled), so no ExceptionGroup of ours reaches the user. A
cancel scope around the connection cancels our tasks with the rest: they send
what the socket takes at once and a DISCONNECT, and leave the error to
:func:`close`, so that every task in that scope sees its own Cancelled.

The life cycle these move the transport through is
:class:`~trissh._life_cycle.TransportStatus`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

import trio

from . import _socket_io
from ._errors import (
    ConnectionLost,
    DisconnectError,
    DisconnectReason,
    HostKeyNotVerifiable,
    ProtocolError,
    SSHError,
)
from ._life_cycle import CANCELLED, CLOSED, CLOSING, ENDED, FAILED, FAILING, LIVE, WRITABLE, TransportStatus
from ._send_queue import disconnect_now, run_writer, send_at_once, write
from ._sync import Latch

if TYPE_CHECKING:
    from ._driver import SSHClientTransport

__all__ = ["CLOSE_FLUSH_TIMEOUT", "close", "fail", "guard", "start_task", "stoppable"]

log = logging.getLogger("trissh.driver")
#: The connection's life events at INFO (connecting, connected: in trissh._connect; closed: here).
connection_log = logging.getLogger("trissh.connection")

#: How long a closing connection waits to flush queued packets and its DISCONNECT.
CLOSE_FLUSH_TIMEOUT: Final = 5.0

TaskLoop = Callable[["SSHClientTransport"], Awaitable[None]]


def start_task(
    transport: SSHClientTransport, loop: TaskLoop, name: str, *, cancellable: bool = False
) -> None:
    """Start ``loop(transport)`` in the transport's nursery, under :func:`guard`.

    Over a socket, closing it wakes the task wherever it waits: no cancel
    scope needed, unless ``cancellable`` (a hook that waits on other things).
    """
    nursery = transport._nursery
    assert nursery is not None
    if transport._socket is not None and not cancellable:
        nursery.start_soon(guard, transport, loop, name=name)
    else:
        nursery.start_soon(_guard_cancellable, transport, loop, name=name)


@contextmanager
def stoppable(transport: SSHClientTransport) -> Iterator[trio.CancelScope]:
    """A cancel scope that shutting down cancels (at once, if it already has)."""
    with trio.CancelScope() as scope:
        transport._task_scopes.append(scope)
        try:
            if transport._stopping:
                scope.cancel()
            yield scope
        finally:
            transport._task_scopes.remove(scope)


def _cancel_tasks(transport: SSHClientTransport) -> None:
    transport._stopping = True
    for scope in transport._task_scopes:
        scope.cancel()


async def _guard_cancellable(transport: SSHClientTransport, loop: TaskLoop) -> None:
    """:func:`guard` in a scope that shutting down cancels."""
    with stoppable(transport):
        await guard(transport, loop)


async def guard(transport: SSHClientTransport, loop: TaskLoop) -> None:
    """Run one task loop, turning anything it raises into the connection's error."""
    transport._running += 1
    try:
        await loop(transport)
    except SSHError as exc:
        await fail(transport, exc)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        if transport._status in LIVE:
            await fail(transport, ConnectionLost(f"connection to {transport._where} lost: {exc}"))
    except Exception as exc:  # a bug of ours must still end the connection cleanly
        log.exception("internal error in the SSH transport")
        error = SSHError(f"internal error in the SSH transport: {exc!r}")
        error.__cause__ = exc
        await fail(transport, error)
    except trio.Cancelled:
        # Cancelled from outside (a cancel scope around the connection): nobody
        # reads or writes any more. What the socket takes at once still goes,
        # with a DISCONNECT after it, and aclose() will not wait for more. The
        # connection is not marked failed here: the tasks in that scope get
        # their own Cancelled, and must not meet an error of ours instead.
        if transport._status in WRITABLE:
            closing = transport._status is CLOSING  # close() has already sealed its DISCONNECT
            transport._status = CANCELLED
            try:
                if closing:
                    send_at_once(transport)
                else:
                    disconnect_now(transport, DisconnectReason.BY_APPLICATION, "")
            except Exception:  # a courtesy: it must not hide the cancellation
                log.debug("could not send DISCONNECT on cancellation", exc_info=True)
        raise
    finally:
        transport._running -= 1
        if not transport._running:
            transport._tasks_done.set()


async def fail(transport: SSHClientTransport, error: SSHError) -> None:
    """End the connection with ``error``: tell the server when it is our decision."""
    if transport._status in ENDED:
        return
    if (
        transport._status is CLOSING
        and isinstance(error, ConnectionLost)
        and transport._send_queue.packets is None
        and not transport.state.has_data_to_send
    ):
        # The server hung up on our DISCONNECT with everything sent: that is the close we asked for.
        transport.error = ConnectionLost("the connection was closed")
        shut_down(transport, CLOSED)
        return
    transport.error = error
    transport._status = FAILING
    reason: int | None = None
    if isinstance(error, ProtocolError):
        reason = error.reason
    elif isinstance(error, HostKeyNotVerifiable):
        reason = DisconnectReason.HOST_KEY_NOT_VERIFIABLE
    elif isinstance(error, DisconnectError) and error.local:
        reason = error.code
    # Not while the writer is part way through a batch: the DISCONNECT would
    # land inside one of its packets.
    if reason is not None and not isinstance(error, ConnectionLost) and not transport._writing:
        log.debug("disconnecting: %s", error)
        state = transport.state
        state.send_disconnect(reason, str(error)[:200])
        with trio.move_on_after(1.0) as scope:
            scope.shield = True
            try:
                data = state.data_to_send()
                if data:
                    await write(transport, data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError, OSError):
                pass
    shut_down(transport, FAILED)


def shut_down(transport: SSHClientTransport, status: TransportStatus) -> None:
    """Enter ``status`` (FAILED or CLOSED; ``error`` is set): wake every waiter, close the socket."""
    transport._status = status
    connection_log.info(
        "connection to %s %s (%d bytes sent, %d received)",
        transport._where,
        "closed" if status is CLOSED else f"ended: {transport.error}",
        transport.bytes_sent,
        transport.bytes_received,
    )
    # Wake whoever waits for progress that will now never come.
    transport._secure.set()
    transport._kex_done.set()
    if transport._writer_idle is not None:
        transport._writer_idle.set()
    transport._send_queue.wake_senders()
    if transport._inbox is not None:
        transport._inbox.close()
    callbacks, transport._close_callbacks = transport._close_callbacks, []
    error = transport.error
    assert error is not None
    for callback in callbacks:
        try:
            callback(error)
        except Exception:
            log.exception("error in a close callback")
    if transport._socket is not None:
        _socket_io.close(transport._socket)  # wakes the reader and the writer wherever they wait
    _cancel_tasks(transport)


async def close(transport: SSHClientTransport, reason: int, description: str) -> None:
    """Flush queued packets, send DISCONNECT, close the socket and stop the tasks."""
    state = transport.state
    queue = transport._send_queue
    if transport._status in WRITABLE:
        transport._status = CLOSING
        # The DISCONNECT goes behind everything already queued, so data
        # written before close is delivered; give up after a timeout.
        disconnect_now(transport, reason, description)
        if queue.packets is not None or state.has_data_to_send:
            with trio.move_on_after(CLOSE_FLUSH_TIMEOUT) as scope:
                scope.shield = True
                while transport._status in LIVE and (queue.packets is not None or state.has_data_to_send):
                    if transport._writer_running:
                        transport._writer_idle = idle = Latch()
                        await idle.wait()  # shut_down sets it too
                    elif transport._writing:
                        break  # a write to the stream was cut short at an unknown point: nothing may follow
                    elif state.has_data_to_send or state.can_send:
                        # This task writes the rest itself (never at the same time as
                        # a writer task: _writer_running keeps them apart).
                        transport._writer_running = True
                        await guard(transport, run_writer)
                    else:  # a key exchange holds the rest back; the reader kicks the writer after it
                        await transport._kex_done.wait()  # shut_down sets it too
    if transport._status in LIVE:
        transport.error = ConnectionLost("the connection was closed")
        shut_down(transport, CLOSED)
    _cancel_tasks(transport)
    if transport._socket is not None:
        # shut_down closed it; our tasks wake to find it closed, and end.
        await trio.lowlevel.cancel_shielded_checkpoint()
        return
    with trio.CancelScope(shield=True):
        await transport.stream.aclose()
        if transport._nursery is not None:  # the tasks were started
            await transport._tasks_done.wait()
