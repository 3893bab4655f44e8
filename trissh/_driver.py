"""The Trio side of the transport: a reader task and a writer task around TransportState.

Theory of operation
-------------------
One :class:`SSHClientTransport` per connection. It owns the socket stream and
the sans-IO :class:`~trissh._transport.state.TransportState`, and runs its
tasks in the connection's nursery:

* the **reader**, for the connection's whole life, reads from the socket only
  when the state needs bytes, and handles each event: it awaits the host-key
  hook, marks the connection secure, and hands service packets up, to
  :meth:`receive_packet` callers until a service installs a packet handler
  (the connection layer does, after auth);
* the **writer** is the one task that writes to the socket, started when
  there is something to send and ending when all of it is sent: an idle
  connection costs one task, not two. A service packet is sealed into the
  state's output at once, in the sender's task, when nothing is queued ahead
  of it and no key exchange holds packets back (``state.can_send``);
  otherwise it waits in a queue (a deque), in order, and the writer seals it
  after NEWKEYS. Either way the order is the same. Key-exchange packets that
  the reader produces are sealed at once too, so a rekey never waits behind
  queued data. Channel data takes the same path, sealed straight from the
  sender's buffer.

Both read and write the socket directly (:mod:`trissh._socket_io`), and are
stopped by closing it, which wakes them wherever they wait: no cancel scope
per task. What a closing socket cannot wake (a user's host-key hook, the
``connection_secure`` task, tasks over a stream that is not a socket) runs in
a cancel scope that shutting down cancels.

Senders are back-pressured by the bytes queued or sealed and not yet written
(:data:`QUEUE_HIGH_WATER`). Packets the reader itself must send in reply
(window adjusts, request failures) never wait: a task that waits on the queue
while a rekey holds it would stop the very reads that finish the rekey.

Failure: any error in either task (a protocol violation, a broken socket, the
server's DISCONNECT) is recorded once as :attr:`error`, a DISCONNECT is sent
when we are the one ending the connection, the socket is closed and every
waiter is woken to raise it. The tasks themselves never raise into the nursery
(but for Trio's own Cancelled), so no ExceptionGroup of ours reaches the user.
A cancel scope around the connection cancels our tasks with the rest: they send
what the socket takes at once and a DISCONNECT, and leave the error to
:meth:`aclose`, so that every task in that scope sees its own Cancelled.
"""

from __future__ import annotations

import logging
import math
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Final, Protocol

import trio

from . import _messages as msg
from . import _socket_io
from ._algorithms.certificates import Certificate
from ._algorithms.hostkeys import PublicKey
from ._algorithms.kex import GexBits
from ._errors import (
    ConnectionLost,
    DisconnectError,
    DisconnectReason,
    HostKeyNotVerifiable,
    ProtocolError,
    SSHError,
)
from ._options import algorithm_preferences
from ._socket_io import receive_into, receive_some, send_all, send_now
from ._sync import Latch, PacketInbox
from ._transport.events import NEED_DATA, HostKeyReceived, KexComplete, PacketReceived
from ._transport.negotiate import Negotiated
from ._transport.state import DEFAULT_REKEY_BYTES, TransportState
from ._wire import Reader, byte, string

__all__ = ["QUEUE_HIGH_WATER", "HostKeyVerifier", "SSHClientTransport"]


class HostKeyVerifier(Protocol):
    """``await verifier(key)`` or ``await verifier(key, certificate)``: is this the right server?

    ``certificate`` is passed only when the server presented a host
    certificate (its CA signature already checked); ``key`` is then the key it certifies.
    """

    def __call__(self, key: PublicKey, certificate: Certificate | None = None, /) -> Awaitable[bool]: ...


log = logging.getLogger("trissh.driver")

#: Service packets waiting for the writer, in bytes, beyond which senders wait.
#: A few channel windows' worth: enough to keep the socket busy, small enough
#: that a stalled server cannot make us buffer without bound.
QUEUE_HIGH_WATER: Final = 4 * 1024 * 1024
#: The writer sends once it has sealed this much, so sealing and sending overlap.
SEND_BATCH: Final = 256 * 1024
#: The largest read: large reads mean fewer trips through the event loop on bulk data.
RECEIVE_SIZE: Final = 256 * 1024
#: The smallest read: enough for a handshake's packets.
MIN_RECEIVE_SIZE: Final = 16 * 1024
#: Packets the reader may queue in reply (window adjusts, request failures)
#: before we decide the server is flooding us with requests it never reads.
MAX_REPLY_BACKLOG: Final = 16384
#: How long a closing connection waits to flush queued packets and its DISCONNECT.
CLOSE_FLUSH_TIMEOUT: Final = 5.0

# Linux only: acknowledge received segments at once. sshd leaves Nagle on for
# sessions without a terminal, so a small reply written while its previous
# segment is unacknowledged waits for our delayed ACK: 40 ms, on the first
# command of most connections, without this.
_TCP_QUICKACK: Final = getattr(socket, "TCP_QUICKACK", None)

# Task names, given so that Trio does not build a new name string per task.
_READER_NAME: Final = "trissh transport reader"
_WRITER_NAME: Final = "trissh transport writer"
_HOOK_NAME: Final = "trissh connection_secure hook"

PacketHandler = Callable[[int, bytes | memoryview], None]
CloseCallback = Callable[[SSHError], None]


class SSHClientTransport:
    """The client transport over one Trio stream, with Conch-style awaitable hooks.

    Subclass and override :meth:`verify_host_key` and :meth:`connection_secure`,
    or pass ``host_key_verifier``. Start it with :meth:`start` in a nursery that
    lives as long as the connection. Without a ``state``, one is made from the
    algorithm lists given (each checked; None: OpenSSH's defaults), as
    :func:`trissh.connect` takes them.
    """

    # One per connection, kept for its life: slots, not a dictionary per instance
    # (subclasses that add attributes of their own get one as usual).
    __slots__ = (
        "_cancelled",
        "_close_callbacks",
        "_closed",
        "_host_key_verifier",
        "_incoming",
        "_kex_done",
        "_nursery",
        "_packet_handler",
        "_queue",
        "_queue_space",
        "_queued_bytes",
        "_rekey_deadline",
        "_rekey_seconds",
        "_reply_backlog",
        "_running",
        "_secure",
        "_socket",
        "_stopping",
        "_task_scopes",
        "_tasks_done",
        "_writer_idle",
        "_writer_running",
        "_writing",
        "authenticated",
        "bytes_received",
        "bytes_sent",
        "error",
        "host",
        "port",
        "state",
        "stream",
    )

    def __init__(
        self,
        stream: trio.abc.Stream,
        state: TransportState | None = None,
        *,
        host: str = "",
        port: int = 22,
        host_key_verifier: HostKeyVerifier | None = None,
        rekey_seconds: float | None = None,
        rekey_bytes: int | None = None,
        kex_algs: Sequence[str] | str | None = None,
        host_key_algs: Sequence[str] | str | None = None,
        ciphers: Sequence[str] | str | None = None,
        macs: Sequence[str] | str | None = None,
        compression: bool | Sequence[str] | str | None = None,
        gex_bits: GexBits | tuple[int, int, int] | None = None,
    ) -> None:
        if state is None:
            prefs = algorithm_preferences(
                kex_algs=kex_algs,
                host_key_algs=host_key_algs,
                ciphers=ciphers,
                macs=macs,
                compression=compression,
            )
            state = TransportState(
                prefs,
                rekey_bytes=rekey_bytes or DEFAULT_REKEY_BYTES,
                gex_bits=GexBits.of(gex_bits),
            )
        elif rekey_bytes is not None or gex_bits is not None:
            raise ValueError("rekey_bytes and gex_bits go to the TransportState when one is given")
        self.stream = stream
        # A socket stream is read and written through its socket (see _socket_io).
        self._socket = (
            stream.socket if isinstance(stream, trio.SocketStream) and _socket_io.AVAILABLE else None
        )
        self._writing = False  # the writer is part way through sending a batch
        self._cancelled = False  # our tasks were cancelled from outside (see _guard)
        self.state = state
        self.host = host
        self.port = port
        self._host_key_verifier = host_key_verifier
        self.error: SSHError | None = None
        # Service packets for the writer, in order; None while empty (a deque
        # allocates a 64-slot block, and most connections are idle most of the time).
        self._queue: deque[bytes] | None = None
        self._queued_bytes = 0
        self._queue_space: trio.lowlevel.ParkingLot | None = None  # made when a sender first waits
        self._reply_backlog = 0
        self._writer_running = False  # a writer task is started when there is something to send
        self._secure = Latch()
        self._closed = False
        self._kex_done = Latch()
        # Service packets for receive_packet() callers, until a handler takes over.
        self._incoming: PacketInbox[tuple[int, bytes]] | None = PacketInbox(64)
        self._nursery: trio.Nursery | None = None
        self._packet_handler: PacketHandler | None = None
        self._close_callbacks: list[CloseCallback] = []
        # Cancel scopes of whatever a socket's closing cannot wake: user hooks, and
        # the tasks of a transport over a stream that is not a socket.
        self._task_scopes: list[trio.CancelScope] = []
        self._stopping = False
        self._running = 0
        self._tasks_done = Latch()
        self._rekey_seconds = rekey_seconds
        self._rekey_deadline = math.inf
        self._writer_idle: Latch | None = None  # set when the writer has nothing left; for aclose()
        self.authenticated = False
        #: Bytes read from the server so far (keepalive watches it for signs of life), and written to it.
        self.bytes_received = 0
        self.bytes_sent = 0

    # --- hooks (override, or pass host_key_verifier) ------------------------------

    async def verify_host_key(self, host_key: PublicKey, fingerprint: str) -> bool:
        """Decide whether ``host_key`` is the right key for this server.

        The default asks the ``host_key_verifier`` given at construction, and
        refuses every key when there is none: trust is never implicit. For a
        host certificate, ``host_key`` is the key it certifies and
        ``self.state.pending_host_certificate`` the certificate (its CA
        signature already checked, its CA not yet judged); the verifier is
        then called as ``verifier(host_key, certificate)``.
        """
        if self._host_key_verifier is None:
            return False
        certificate = self.state.pending_host_certificate
        if certificate is None:  # so that a one-argument verifier keeps working for plain keys
            return await self._host_key_verifier(host_key)
        return await self._host_key_verifier(host_key, certificate)

    async def connection_secure(self) -> None:
        """Called once the first key exchange is complete; the default does nothing.

        Like Conch's ``connectionSecure``, the place to start a service: it
        runs in a task of its own, so it may ``await self.request_service(...)``
        and exchange packets. If it raises, the connection ends with that
        error (an :class:`SSHError` as it is, anything else wrapped in one).
        """

    async def _run_connection_secure(self) -> None:
        """The hook, with an error of the caller's own told apart from one of ours."""
        try:
            await self.connection_secure()
        except SSHError:
            raise
        except Exception as exc:
            error = SSHError(f"connection_secure() raised {exc!r}")
            error.__cause__ = exc
            raise error from exc

    # --- what was agreed ---------------------------------------------------------------

    @property
    def negotiated(self) -> Negotiated | None:
        return self.state.negotiated

    @property
    def session_id(self) -> bytes | None:
        return self.state.session_id

    @property
    def server_version(self) -> str | None:
        return self.state.server_version

    @property
    def host_key(self) -> PublicKey | None:
        """The server's host key; for a host certificate, the key it certifies."""
        return self.state.server_host_key

    @property
    def host_certificate(self) -> Certificate | None:
        """The server's host certificate, when it authenticated with one."""
        return self.state.server_host_certificate

    # --- life cycle ------------------------------------------------------------------------

    def start(self, nursery: trio.Nursery) -> None:
        """Send our version and KEXINIT and start the reader task (and a writer) in ``nursery``."""
        self.state.start()
        self._nursery = nursery
        self._start_task(self._reader_loop, _READER_NAME)
        self._kick_writer()

    def _start_task(self, loop: Callable[[], Awaitable[None]], name: str) -> None:
        assert self._nursery is not None
        if self._socket is not None:
            # Closing the socket wakes it wherever it waits: no cancel scope needed.
            self._nursery.start_soon(self._guard, loop, name=name)
        else:
            self._nursery.start_soon(self._guard_cancellable, loop, name=name)

    def _kick_writer(self) -> None:
        """Start a writer task if there is something to send and none is running.

        The writer runs only while there is something to send, and ends when
        it has sent it: an idle connection costs no task (nor its frames).
        """
        if self._writer_running or self.error is not None or self._nursery is None or self._cancelled:
            return
        if self.state.has_data_to_send or (self._queue is not None and self.state.can_send):
            self._writer_running = True
            self._start_task(self._writer_loop, _WRITER_NAME)

    def _cancel_tasks(self) -> None:
        self._stopping = True
        for scope in self._task_scopes:
            scope.cancel()

    @contextmanager
    def _stoppable(self) -> Iterator[trio.CancelScope]:
        """A cancel scope that :meth:`_cancel_tasks` cancels (at once, if it already has)."""
        with trio.CancelScope() as scope:
            self._task_scopes.append(scope)
            try:
                if self._stopping:
                    scope.cancel()
                yield scope
            finally:
                self._task_scopes.remove(scope)

    async def _guard_cancellable(self, loop: Callable[[], Awaitable[None]]) -> None:
        """:meth:`_guard` in a scope that :meth:`_cancel_tasks` cancels."""
        with self._stoppable():
            await self._guard(loop)

    async def _guard(self, loop: Callable[[], Awaitable[None]]) -> None:
        """Run one task loop, turning anything it raises into the connection's error."""
        self._running += 1
        try:
            await loop()
        except SSHError as exc:
            await self._fail(exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            if self.error is None:
                await self._fail(ConnectionLost(f"connection to {self._where} lost: {exc}"))
        except Exception as exc:  # a bug of ours must still end the connection cleanly
            log.exception("internal error in the SSH transport")
            error = SSHError(f"internal error in the SSH transport: {exc!r}")
            error.__cause__ = exc
            await self._fail(error)
        except trio.Cancelled:
            # Cancelled from outside (a cancel scope around the connection): nobody
            # reads or writes any more. What the socket takes at once still goes,
            # with a DISCONNECT after it, and aclose() will not wait for more. The
            # connection is not marked failed here: the tasks in that scope get
            # their own Cancelled, and must not meet an error of ours instead.
            if self.error is None and not self._cancelled:
                self._cancelled = True
                try:
                    self._disconnect_now(DisconnectReason.BY_APPLICATION, "")
                except Exception:  # a courtesy: it must not hide the cancellation
                    log.debug("could not send DISCONNECT on cancellation", exc_info=True)
            raise
        finally:
            self._running -= 1
            if not self._running:
                self._tasks_done.set()

    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}" if self.host else "the server"

    async def wait_secure(self) -> None:
        """Wait until the first key exchange is done and the host key accepted."""
        if not self._secure.is_set():
            await self._secure.wait()  # _shut_down sets it too
        else:
            await trio.lowlevel.checkpoint()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    @property
    def is_closed(self) -> bool:
        return self._closed

    def add_close_callback(self, callback: CloseCallback) -> None:
        """Call ``callback(error)`` once when the connection ends, whatever ends it."""
        self._close_callbacks.append(callback)

    async def fail(self, error: SSHError) -> None:
        """End the connection with ``error``: every waiter raises it. A DISCONNECT
        goes to the server when the error is one we decide on (a protocol
        violation, say), not when the connection is already lost."""
        await self._fail(error)

    async def _fail(self, error: SSHError) -> None:
        """End the connection with ``error``: tell the server when it is our decision."""
        if self.error is not None:
            return
        self.error = error
        reason: int | None = None
        if isinstance(error, ProtocolError):
            reason = error.reason
        elif isinstance(error, HostKeyNotVerifiable):
            reason = DisconnectReason.HOST_KEY_NOT_VERIFIABLE
        elif isinstance(error, DisconnectError) and error.local:
            reason = error.code
        # Not while the writer is part way through a batch: the DISCONNECT would
        # land inside one of its packets.
        if reason is not None and not isinstance(error, ConnectionLost) and not self._writing:
            log.debug("disconnecting: %s", error)
            self.state.send_disconnect(reason, str(error)[:200])
            with trio.move_on_after(1.0) as scope:
                scope.shield = True
                try:
                    data = self.state.data_to_send()
                    if data:
                        await self._send(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError, OSError):
                    pass
        self._shut_down()

    def _shut_down(self) -> None:
        self._closed = True
        # Wake whoever waits for progress that will now never come.
        self._secure.set()
        self._kex_done.set()
        if self._writer_idle is not None:
            self._writer_idle.set()
        if self._queue_space is not None:
            self._queue_space.unpark_all()
        if self._incoming is not None:
            self._incoming.close()
        callbacks, self._close_callbacks = self._close_callbacks, []
        assert self.error is not None
        for callback in callbacks:
            try:
                callback(self.error)
            except Exception:
                log.exception("error in a close callback")
        if self._socket is not None:
            _socket_io.close(self._socket)  # wakes the reader and the writer wherever they wait
        self._cancel_tasks()

    async def aclose(self, *, reason: int = DisconnectReason.BY_APPLICATION, description: str = "") -> None:
        """Flush queued packets, send DISCONNECT, close the socket and stop the tasks."""
        if self.error is None and self._nursery is not None and not self._cancelled:
            # The DISCONNECT goes behind everything already queued, so data
            # written before close is delivered; give up after a timeout.
            self._disconnect_now(reason, description)
            if self._queue is not None or self.state.has_data_to_send:
                with trio.move_on_after(CLOSE_FLUSH_TIMEOUT) as scope:
                    scope.shield = True
                    while self.error is None and (self._queue is not None or self.state.has_data_to_send):
                        if self._writer_running:
                            self._writer_idle = idle = Latch()
                            await idle.wait()  # _shut_down sets it too
                        elif self.state.has_data_to_send or self.state.can_send:
                            # This task writes the rest itself (never at the same time as
                            # a writer task: _writer_running keeps them apart).
                            self._writer_running = True
                            await self._guard(self._writer_loop)
                        else:  # a key exchange holds the rest back; the reader kicks the writer after it
                            await self._kex_done.wait()  # _shut_down sets it too
        if self.error is None:
            self.error = ConnectionLost("the connection was closed")
            self._shut_down()
        self._cancel_tasks()
        if self._socket is not None:
            # _shut_down closed it; our tasks wake to find it closed, and end.
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        with trio.CancelScope(shield=True):
            await self.stream.aclose()
            if self._nursery is not None:  # the tasks were started
                await self._tasks_done.wait()

    def _disconnect_now(self, reason: int, description: str) -> None:
        """Seal a DISCONNECT behind what is queued, and write what the socket takes at once.

        The usual close: a DISCONNECT to a socket with room for it, sent
        without starting a task or waiting (a thousand connections closing at
        once then hold nothing more than they did while open).
        """
        payload = byte(msg.DISCONNECT) + _u32(int(reason)) + string(description) + string(b"")
        if self._queue is None:
            # Nothing waits ahead of it, so it need not wait for a key exchange
            # in progress either (DISCONNECT is allowed during one).
            self.state.send(payload)
        else:
            self._enqueue(payload)
        self._send_at_once()

    def _send_at_once(self) -> None:
        """Write what is sealed now, without waiting, unless the writer is part way through a batch."""
        if self._socket is None or self._writing or not self.state.has_data_to_send:
            return
        data = self.state.data_to_send()
        try:
            sent = send_now(self._socket, data)
        except (trio.ClosedResourceError, OSError):
            sent = 0  # the writer's next attempt meets the same error and reports it
        self.bytes_sent += sent
        self.state.put_back_unsent(data[sent:])

    # --- sending -----------------------------------------------------------------------------

    async def send_packet(self, payload: bytes) -> None:
        """Queue one packet for sending, waiting while too much is queued.

        Order is kept across all senders. While a key exchange is in progress
        the packet waits in the queue and goes out after NEWKEYS.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        await self.wait_queue_space()
        self.queue_packet(payload)
        await trio.lowlevel.cancel_shielded_checkpoint()

    @property
    def queue_full(self) -> bool:
        """Whether senders should wait (see :meth:`wait_queue_space`) before sending more."""
        return self._queued_bytes + self.state.pending_output_size >= QUEUE_HIGH_WATER

    async def wait_queue_space(self) -> None:
        """Wait until queued and sealed-but-unsent bytes are below the high-water mark.

        No checkpoint when they already are: callers batch several packets and
        checkpoint once.
        """
        while self.queue_full and self.error is None:
            if self._queue_space is None:
                self._queue_space = trio.lowlevel.ParkingLot()
            await self._queue_space.park()
        self._raise_if_failed()

    def queue_packet(self, payload: bytes) -> None:
        """Queue one packet without waiting. For senders that batch several packets
        between checkpoints; they must respect :attr:`queue_full` themselves."""
        self._raise_if_failed()
        self._submit(payload)

    @property
    def queue_space(self) -> int:
        """Bytes that may be queued or sealed before senders must wait (0 when full)."""
        return max(QUEUE_HIGH_WATER - self._queued_bytes - self.state.pending_output_size, 0)

    def send_channel_data(self, headers: list[bytes], data: memoryview, packet_size: int) -> None:
        """Send channel data packets ``headers[i] + data[i * packet_size:][:packet_size]`` without waiting.

        When nothing is queued ahead of them and no key exchange holds packets
        back, they are sealed at once, in the caller's task, straight from the
        caller's buffer: no queue round trip and one copy less. Otherwise they
        join the queue (as copies: the caller may reuse its buffer). Order is
        kept either way.
        """
        self._raise_if_failed()
        sealed = 0
        if self._queue is None and self.state.can_send:
            sealed = self.state.send_channel_data(headers, data, packet_size)
        for i in range(sealed, len(headers)):  # what a starting rekey holds back
            self._enqueue(headers[i] + data[i * packet_size : (i + 1) * packet_size])
        self._kick_writer()

    def send_packet_nowait(self, payload: bytes) -> None:
        """Queue a packet without waiting: for replies sent from the reader task.

        Raises:
            ProtocolError: the server has made us queue too many replies.
        """
        if self.error is not None:
            return
        self._reply_backlog += 1
        if self._reply_backlog > MAX_REPLY_BACKLOG:
            raise ProtocolError(f"the server provoked over {MAX_REPLY_BACKLOG} replies it does not read")
        self._submit(payload)

    def _submit(self, payload: bytes) -> None:
        """Seal ``payload`` at once when nothing waits ahead of it and no key
        exchange holds packets back, else queue it (the order is the same either
        way), and wake the writer. Sealing at once spares an idle connection a
        queue, and the writer a round trip through it."""
        if self._queue is None and self.state.can_send:
            self.state.send(payload)
        else:
            self._enqueue(payload)
        self._kick_writer()

    def _enqueue(self, payload: bytes) -> None:
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        queue.append(payload)
        self._queued_bytes += len(payload)

    async def _send(self, data: memoryview) -> None:
        if self._socket is not None:
            await send_all(self._socket, data)
        else:
            await self.stream.send_all(data)

    async def _writer_loop(self) -> None:
        """Send what is sealed and what the queue may release, until there is nothing left."""
        state = self.state
        try:
            while self.error is None:
                if trio.current_time() >= self._rekey_deadline:
                    # Checked when there is something to send, as OpenSSH does: an
                    # idle connection is rekeyed when it is next used.
                    self._rekey_deadline = math.inf
                    state.start_rekey()
                queue = self._queue
                if queue is not None:
                    while queue and state.can_send:
                        payload = queue.popleft()
                        self._queued_bytes -= len(payload)
                        state.send(payload)
                        if state.pending_output_size >= SEND_BATCH:
                            break
                    if not queue:
                        self._queue = None
                self._reply_backlog = 0
                data = state.data_to_send()
                if self._queue_space and not self.queue_full:  # (an empty ParkingLot is false)
                    self._queue_space.unpark_all()
                if not data:
                    return  # anything still queued waits for a key exchange, which kicks us again
                self._writing = True
                await self._send(data)
                self._writing = False
                self.bytes_sent += len(data)
        finally:
            self._writer_running = False
            if self._writer_idle is not None:
                self._writer_idle.set()

    # --- receiving ----------------------------------------------------------------------------

    async def _reader_loop(self) -> None:
        state = self.state
        stream = self.stream
        sock = self._socket
        quickack = sock is not None and _TCP_QUICKACK is not None
        read_size = MIN_RECEIVE_SIZE
        # Once a connection moves bulk data, it reads into two reused buffers in
        # turn instead of a fresh 256 KiB allocation per read. Two, because the
        # packet reader may still hold the previous read (it never keeps views
        # into one beyond the next read).
        bulk_buffers: list[bytearray] = []
        turn = 0
        data: bytes | memoryview
        while True:
            event = state.next_event()
            if state.has_data_to_send:
                self._kick_writer()
            if event is NEED_DATA:
                if bulk_buffers:
                    assert sock is not None
                    buffer = bulk_buffers[turn]
                    turn ^= 1
                    size = await receive_into(sock, buffer)
                    data = memoryview(buffer)[:size]
                else:
                    if sock is not None:
                        data = await receive_some(sock, read_size)
                    else:
                        data = await stream.receive_some(read_size)
                    # Adapt the read size: big reads for bulk data (fewer trips
                    # through the event loop), small ones for chatty connections
                    # (each read allocates its full size first).
                    if len(data) == read_size:
                        read_size = min(read_size * 2, RECEIVE_SIZE)
                        if read_size == RECEIVE_SIZE and sock is not None:
                            bulk_buffers = [bytearray(RECEIVE_SIZE), bytearray(RECEIVE_SIZE)]
                    elif len(data) < read_size // 4:
                        read_size = max(read_size // 2, MIN_RECEIVE_SIZE)
                if not data:
                    raise ConnectionLost(f"{self._where} closed the connection")
                self.bytes_received += len(data)
                if quickack:
                    assert sock is not None and _TCP_QUICKACK is not None
                    sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
                state.receive_data(data)
                del data  # the packet reader drops it once read: an idle connection holds no read
            elif type(event) is PacketReceived:
                handler = self._packet_handler
                if handler is not None:
                    handler(event.seq, event.payload)  # the hot path: no await per packet
                else:
                    await self._dispatch(event)
            elif isinstance(event, HostKeyReceived):
                await self._check_host_key(event.key)
            elif isinstance(event, KexComplete):
                if self._rekey_seconds:
                    self._rekey_deadline = trio.current_time() + self._rekey_seconds
                self._kick_writer()
                if event.initial:
                    self._secure.set()
                    # In a task of its own, so that the hook may use the connection
                    # (request a service, as Conch's connectionSecure does) while
                    # this task goes on reading.
                    if type(self).connection_secure is not SSHClientTransport.connection_secure:
                        assert self._nursery is not None
                        self._nursery.start_soon(
                            self._guard_cancellable, self._run_connection_secure, name=_HOOK_NAME
                        )
                self._kex_done.set()
                self._kex_done = Latch()

    async def _check_host_key(self, key: PublicKey) -> None:
        # The hook may wait on anything (a prompt, say): closing the socket would
        # not wake it, so it runs in a scope that _cancel_tasks() cancels.
        with self._stoppable() as scope:
            trusted = await self.verify_host_key(key, key.fingerprint)
        if scope.cancelled_caught:
            raise ConnectionLost(f"the connection to {self._where} was closed while its host key was checked")
        if not trusted:
            raise HostKeyNotVerifiable(
                f"host key for {self._where} is not trusted: {key.key_type} {key.fingerprint}"
            )
        self.state.accept_host_key()
        self._kick_writer()
        self._host_key_verifier = None  # only the first exchange asks; later ones must match it

    async def _dispatch(self, event: PacketReceived) -> None:
        """Hand a packet to :meth:`receive_packet` callers (before a handler is installed)."""
        kind = event.payload[0]
        if kind >= 80 and not self.authenticated:
            # CVE-2023-46446: connection messages before authentication has succeeded.
            raise ProtocolError(f"{msg.message_name(kind)} received before authentication succeeded")
        if kind == msg.USERAUTH_SUCCESS:
            # Decided here, in packet order: the server may follow its success with
            # connection messages (sshd's hostkeys-00 request) before the task that
            # waits for the success has even run.
            self.authenticated = True
        if self._incoming is not None:
            try:
                await self._incoming.put((event.seq, bytes(event.payload)))
                return
            except trio.ClosedResourceError:  # a handler took over while we waited, or we are closing
                pass
        if self._packet_handler is not None:
            self._packet_handler(event.seq, event.payload)

    def set_packet_handler(self, handler: PacketHandler) -> None:
        """Deliver service packets to ``handler`` (called in the reader task) from now on.

        Packets that arrived before, and that no :meth:`receive_packet` took, go
        to the handler first, in order. The handler then gets every packet:
        :meth:`receive_packet` is for services that come before it (auth).
        """
        self._packet_handler = handler
        if self._incoming is None:
            return
        # The handler takes everything from now on: hand it what was waiting,
        # and let the inbox go (a connection keeps it no longer than auth).
        incoming, self._incoming = self._incoming, None
        incoming.close()
        while True:
            try:
                seq, payload = incoming.get_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            try:
                handler(seq, payload)
            except SSHError as exc:
                if self._nursery is not None:
                    self._nursery.start_soon(self._fail, exc)
                return

    async def receive_packet(self) -> bytes:
        """The next service packet, for services that read packets themselves (auth)."""
        if self._incoming is None:
            self._raise_if_failed()
            raise RuntimeError("receive_packet() after set_packet_handler(): the handler gets every packet")
        try:
            return (await self._incoming.get())[1]
        except trio.EndOfChannel:
            assert self.error is not None
            raise self.error from None

    async def request_service(self, name: str) -> None:
        """Ask for a service (RFC 4253 §10) and wait for SERVICE_ACCEPT."""
        await self.send_packet(byte(msg.SERVICE_REQUEST) + string(name))
        payload = await self.receive_packet()
        if payload[0] != msg.SERVICE_ACCEPT:
            raise ProtocolError(f"expected SERVICE_ACCEPT for {name!r}, got {msg.message_name(payload[0])}")
        reader = Reader(payload, "SERVICE_ACCEPT")
        reader.byte()
        accepted = reader.ascii()
        if accepted != name:
            raise ProtocolError(f"server accepted service {accepted!r}, we asked for {name!r}")

    async def rekey(self) -> None:
        """Start a key exchange now and wait until it completes."""
        self._raise_if_failed()
        done = self._kex_done
        self.state.start_rekey()
        self._kick_writer()
        await done.wait()  # _shut_down sets it too
        self._raise_if_failed()


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")
