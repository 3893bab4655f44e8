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

Where each job lives
--------------------
:class:`SSHClientTransport` is the façade, and the one owner of the state;
each job is a module of its own that works on it:

* :mod:`trissh._life_cycle`: the one life-cycle state (:class:`TransportStatus`);
* :mod:`trissh._supervision`: starting the tasks, failure, shutdown and :meth:`aclose`;
* :mod:`trissh._send_queue`: the send queue, back-pressure and the writer task;
* :mod:`trissh._reader`: the reader task, and the host-key hook it awaits;
* :mod:`trissh._pre_auth_inbox`: packets for :meth:`receive_packet` before a handler takes over.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Final, Protocol

import trio

from . import _messages as msg
from . import _socket_io
from ._algorithms.hostkeys import PublicKey
from ._algorithms.kex import GexBits
from ._errors import DisconnectReason, ProtocolError, SSHError
from ._life_cycle import ENDED, NEW, RUNNING, SHUT_DOWN, WRITABLE, TransportStatus
from ._options import algorithm_preferences
from ._pre_auth_inbox import PacketHandler, PreAuthInbox, dispatch
from ._public import public
from ._reader import run_reader
from ._send_queue import QUEUE_HIGH_WATER, SendQueue, run_writer
from ._supervision import CLOSE_FLUSH_TIMEOUT, close, fail, start_task
from ._sync import Latch
from ._transport.events import PacketReceived
from ._transport.negotiate import Negotiated
from ._transport.state import DEFAULT_REKEY_BYTES, TransportState
from ._wire import Reader, byte, string

if TYPE_CHECKING:
    from ._algorithms.certificates import Certificate

__all__ = [
    "CLOSE_FLUSH_TIMEOUT",
    "QUEUE_HIGH_WATER",
    "HostKeyVerifier",
    "SSHClientTransport",
    "TransportStatus",
]


class HostKeyVerifier(Protocol):
    """``await verifier(key)`` or ``await verifier(key, certificate)``: is this the right server?

    ``certificate`` is passed only when the server presented a host
    certificate (its CA signature already checked); ``key`` is then the key it certifies.
    """

    def __call__(self, key: PublicKey, certificate: Certificate | None = None, /) -> Awaitable[bool]: ...


# Task names, given so that Trio does not build a new name string per task.
_READER_NAME: Final = "trissh transport reader"
_WRITER_NAME: Final = "trissh transport writer"
_HOOK_NAME: Final = "trissh connection_secure hook"

CloseCallback = Callable[[SSHError], None]


@public
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
        "_close_callbacks",
        "_host_key_verifier",
        "_inbox",
        "_kex_done",
        "_nursery",
        "_packet_handler",
        "_rekey_deadline",
        "_rekey_seconds",
        "_running",
        "_secure",
        "_send_queue",
        "_socket",
        "_status",
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
        self.state = state
        self.host = host
        self.port = port
        if host:
            state.set_log_label(self._where)
        self._host_key_verifier = host_key_verifier
        #: The life cycle, one state for it all (see trissh._life_cycle).
        self._status: TransportStatus = NEW
        #: Why the connection ended; set on entering FAILING or CLOSED, and only then.
        self.error: SSHError | None = None
        self._send_queue = SendQueue(state)
        # Flags of the writer task, apart from the life cycle: a writer comes and
        # goes many times while the connection is RUNNING (or CLOSING).
        self._writer_running = False  # a writer task is started when there is something to send
        self._writing = False  # the writer is part way through sending a batch
        self._writer_idle: Latch | None = None  # set when the writer has nothing left; for aclose()
        self._secure = Latch()
        self._kex_done = Latch()
        # Service packets for receive_packet() callers, until a handler takes over.
        self._inbox: PreAuthInbox | None = PreAuthInbox()
        self._nursery: trio.Nursery | None = None
        self._packet_handler: PacketHandler | None = None
        self._close_callbacks: list[CloseCallback] = []
        # Cancel scopes of whatever a socket's closing cannot wake: user hooks, and
        # the tasks of a transport over a stream that is not a socket.
        self._task_scopes: list[trio.CancelScope] = []
        # Whether those scopes were cancelled, so that new ones start cancelled. Not
        # a function of the status: aclose() cancels them while a failure is still
        # FAILING (sending its DISCONNECT), before the connection is shut down.
        self._stopping = False
        self._running = 0  # tasks under _supervision.guard, and a latch set when none is left
        self._tasks_done = Latch()
        self._rekey_seconds = rekey_seconds
        self._rekey_deadline = math.inf
        self.authenticated = False
        #: Bytes read from the server so far (keepalive watches it for signs of life), and written to it.
        self.bytes_received = 0
        self.bytes_sent = 0

    def __repr__(self) -> str:
        # Where, the life-cycle state, the server and what the last key exchange agreed; no keys.
        parts = [self._where, self._status.name.lower()]
        if self.state.server_version is not None:
            parts.append(repr(self.state.server_version))
        if self.state.negotiated is not None:
            parts.append(str(self.state.negotiated))
        return f"<{type(self).__module__}.{type(self).__qualname__} {', '.join(parts)}>"

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

    def _start_connection_secure(self) -> None:
        """Run :meth:`connection_secure` in a task of its own, when a subclass has one."""
        if type(self).connection_secure is not SSHClientTransport.connection_secure:
            start_task(self, SSHClientTransport._run_connection_secure, _HOOK_NAME, cancellable=True)

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

    # --- life cycle (the work is in trissh._supervision) ----------------------------------

    @property
    def status(self) -> TransportStatus:
        """Where the connection is in its life (see :class:`TransportStatus`)."""
        return self._status

    def start(self, nursery: trio.Nursery) -> None:
        """Send our version and KEXINIT and start the reader task (and a writer) in ``nursery``."""
        self.state.start()
        self._nursery = nursery
        if self._status is NEW:  # (one that failed before it started stays so)
            self._status = RUNNING
        start_task(self, run_reader, _READER_NAME)
        self._kick_writer()

    def _kick_writer(self) -> None:
        """Start a writer task if there is something to send and none is running.

        The writer runs only while there is something to send, and ends when
        it has sent it: an idle connection costs no task (nor its frames).
        """
        if self._writer_running or self._status not in WRITABLE:
            return
        if self.state.has_data_to_send or (self._send_queue.packets is not None and self.state.can_send):
            self._writer_running = True
            start_task(self, run_writer, _WRITER_NAME)

    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}" if self.host else "the server"

    async def wait_secure(self) -> None:
        """Wait until the first key exchange is done and the host key accepted."""
        if not self._secure.is_set():
            await self._secure.wait()  # shutting down sets it too
        else:
            await trio.lowlevel.checkpoint()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        # The error is set exactly when the status is one of ENDED: testing it
        # is testing the status, in one load, and it is what we raise.
        if self.error is not None:
            raise self.error

    @property
    def is_closed(self) -> bool:
        return self._status in SHUT_DOWN

    def add_close_callback(self, callback: CloseCallback) -> None:
        """Call ``callback(error)`` once when the connection ends, whatever ends it."""
        self._close_callbacks.append(callback)

    async def fail(self, error: SSHError) -> None:
        """End the connection with ``error``: every waiter raises it. A DISCONNECT
        goes to the server when the error is one we decide on (a protocol
        violation, say), not when the connection is already lost."""
        await fail(self, error)

    async def aclose(self, *, reason: int = DisconnectReason.BY_APPLICATION, description: str = "") -> None:
        """Flush queued packets, send DISCONNECT, close the socket and stop the tasks."""
        await close(self, reason, description)

    # --- sending (the work is in trissh._send_queue) ---------------------------------------------

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
        return self._send_queue.queued_bytes + self.state.pending_output_size >= QUEUE_HIGH_WATER

    async def wait_queue_space(self) -> None:
        """Wait until queued and sealed-but-unsent bytes are below the high-water mark.

        No checkpoint when they already are: callers batch several packets and
        checkpoint once.
        """
        queue = self._send_queue
        while queue.full and self._status not in ENDED:
            await queue.park()  # shutting down wakes it too
        self._raise_if_failed()

    def queue_packet(self, payload: bytes) -> None:
        """Queue one packet without waiting. For senders that batch several packets
        between checkpoints; they must respect :attr:`queue_full` themselves."""
        self._raise_if_failed()
        self._send_queue.submit(payload)
        self._kick_writer()

    @property
    def queue_space(self) -> int:
        """Bytes that may be queued or sealed before senders must wait (0 when full)."""
        return self._send_queue.space

    def send_channel_data(self, headers: list[bytes], data: memoryview, packet_size: int) -> None:
        """Send channel data packets ``headers[i] + data[i * packet_size:][:packet_size]`` without waiting.

        When nothing is queued ahead of them and no key exchange holds packets
        back, they are sealed at once, in the caller's task, straight from the
        caller's buffer: no queue round trip and one copy less. Otherwise they
        join the queue (as copies: the caller may reuse its buffer). Order is
        kept either way.
        """
        self._raise_if_failed()
        self._send_queue.submit_channel_data(headers, data, packet_size)
        self._kick_writer()

    def send_packet_nowait(self, payload: bytes) -> None:
        """Queue a packet without waiting: for replies sent from the reader task.

        Raises:
            ProtocolError: the server has made us queue too many replies.
        """
        if self.error is not None:  # ended (see _raise_if_failed): the reply has nowhere to go
            return
        self._send_queue.submit_reply(payload)
        self._kick_writer()

    # --- receiving (the reader is trissh._reader, the inbox trissh._pre_auth_inbox) ---------------

    async def _dispatch(self, event: PacketReceived) -> None:
        """Hand a packet to :meth:`receive_packet` callers (before a handler is installed)."""
        await dispatch(self, event)

    def set_packet_handler(self, handler: PacketHandler) -> None:
        """Deliver service packets to ``handler`` (called in the reader task) from now on.

        Packets that arrived before, and that no :meth:`receive_packet` took, go
        to the handler first, in order. The handler then gets every packet:
        :meth:`receive_packet` is for services that come before it (auth).
        """
        self._packet_handler = handler
        inbox = self._inbox
        if inbox is None:
            return
        # The handler takes everything from now on: hand it what was waiting,
        # and let the inbox go (a connection keeps it no longer than auth).
        self._inbox = None
        try:
            inbox.hand_over(handler)
        except SSHError as exc:
            if self._nursery is not None:
                self._nursery.start_soon(fail, self, exc)

    async def receive_packet(self) -> bytes:
        """The next service packet, for services that read packets themselves (auth)."""
        inbox = self._inbox
        if inbox is None:
            self._raise_if_failed()
            raise RuntimeError("receive_packet() after set_packet_handler(): the handler gets every packet")
        try:
            return await inbox.get()
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
        await done.wait()  # shutting down sets it too
        self._raise_if_failed()
