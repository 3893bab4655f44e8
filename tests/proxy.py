"""A loopback TCP proxy that breaks connections on purpose, for fault-injection tests.

Theory of operation
-------------------
:func:`open_proxy` listens on 127.0.0.1 and, for each accepted connection, either forwards it to a target
(optionally with a *fault* in each direction) or hands it to a scripted fake server. Faults are frozen
dataclasses describing *what* goes wrong at *which byte offset* of one direction's stream:

* :class:`CutAfter` — close the connection once N bytes have passed (FIN, or RST with ``reset=True``);
* :class:`FlipBit` — flip one bit of the byte at offset N;
* :class:`ReplaceAfter` — after N bytes, send given bytes instead of the rest of the stream;
* :class:`Delay` — once N bytes have passed, hold the stream for some seconds (``math.inf``: a black hole).

Offsets count bytes of that direction's stream since the connection was accepted; each connection gets
fresh counters. ``fault`` applies to the server→client direction (what an SSH client receives),
``upstream_fault`` to client→server. The byte arithmetic lives in :class:`_FaultRunner`, which does no I/O;
the pumps only carry out its plan.

Everything runs in a nursery owned by the ``async with`` block (or by the task that called
:func:`serve_proxy`), so leaving it closes the listener and every proxied connection: no task outlives the
test.
A peer hanging up (``BrokenResourceError``) ends that connection quietly; any other error propagates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias, final

import trio

if TYPE_CHECKING:
    # trio-typing's stubs shadow trio's own annotations and spell TaskStatus this way.
    from trio_typing import TaskStatus

__all__ = [
    "CutAfter",
    "Delay",
    "Fault",
    "FlipBit",
    "Handler",
    "Proxy",
    "ProxyFactory",
    "ReplaceAfter",
    "open_proxy",
    "serve_proxy",
]

# Read size per receive; small enough that faults at an offset split chunks in interesting ways.
_CHUNK: Final = 65536


@dataclasses.dataclass(frozen=True)
class CutAfter:
    """Close both sides once ``nbytes`` bytes have passed (``nbytes=0``: as soon as the connection opens).

    Attributes:
        nbytes: How many bytes get through before the cut.
        reset: Send a TCP RST to the client (it sees ``ECONNRESET``) instead of a FIN (it sees EOF).
    """

    nbytes: int
    reset: bool = False

    def __post_init__(self) -> None:
        _check_offset(self.nbytes)


@dataclasses.dataclass(frozen=True)
class FlipBit:
    """Flip bit ``bit`` (0 = least significant) of the byte at ``offset``; all else passes unchanged."""

    offset: int
    bit: int = 0

    def __post_init__(self) -> None:
        _check_offset(self.offset)
        if not 0 <= self.bit <= 7:
            raise ValueError(f"bit must be in 0..7, not {self.bit}")


@dataclasses.dataclass(frozen=True)
class ReplaceAfter:
    """Let ``nbytes`` bytes through, then send ``data`` once and drop everything the sender sends after that.

    The connection stays open: the receiver decides what to do with the garbage.
    """

    nbytes: int
    data: bytes

    def __post_init__(self) -> None:
        _check_offset(self.nbytes)


@dataclasses.dataclass(frozen=True)
class Delay:
    """Once ``after`` bytes have passed, hold the rest of the stream for ``seconds`` (once per connection).

    ``Delay(math.inf, after=n)`` lets ``n`` bytes through and then nothing, without closing: for timeouts.
    """

    seconds: float
    after: int = 0

    def __post_init__(self) -> None:
        _check_offset(self.after)
        if not self.seconds >= 0:
            raise ValueError(f"seconds must be >= 0, not {self.seconds}")


Fault: TypeAlias = CutAfter | FlipBit | ReplaceAfter | Delay
#: A fake server: called with each accepted client stream; the proxy closes the stream when it returns.
Handler: TypeAlias = Callable[[trio.SocketStream], Awaitable[None]]


def _check_offset(value: int) -> None:
    if value < 0:
        raise ValueError(f"byte offsets must be >= 0, not {value}")


# --- the plan: which bytes to send, when to pause, when to cut -------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Sleep:
    seconds: float


@dataclasses.dataclass(frozen=True)
class _Cut:
    reset: bool


_Step: TypeAlias = bytes | _Sleep | _Cut


class _FaultRunner:
    """Turns one direction's incoming chunks into steps, applying a fault at its byte offset. No I/O."""

    def __init__(self, fault: Fault | None) -> None:
        self._fault = fault
        self._passed = 0  # bytes received from the sender so far
        self._fired = False  # one-shot faults (ReplaceAfter, Delay) have happened

    def start(self) -> list[_Step]:
        """Steps due before any data: faults at offset 0 fire when the connection opens."""
        return self.feed(b"")

    def feed(self, data: bytes) -> list[_Step]:
        """Return the steps to carry out for ``data``, the next chunk received from the sender."""
        start, end = self._passed, self._passed + len(data)
        self._passed = end
        fault = self._fault
        steps: list[_Step]
        match fault:
            case None:
                steps = [data]
            case CutAfter(nbytes=n, reset=reset):
                steps = [data[: n - start], _Cut(reset)] if end >= n else [data]
            case FlipBit(offset=offset, bit=bit) if start <= offset < end:
                flipped = bytearray(data)
                flipped[offset - start] ^= 1 << bit
                steps = [bytes(flipped)]
            case FlipBit():
                steps = [data]
            case ReplaceAfter(nbytes=n, data=replacement):
                if self._fired:
                    steps = []
                elif end >= n:
                    self._fired = True
                    steps = [data[: n - start], replacement]
                else:
                    steps = [data]
            case Delay(seconds=seconds, after=n):
                if not self._fired and end >= n:
                    self._fired = True
                    steps = [data[: n - start], _Sleep(seconds), data[n - start :]]
                else:
                    steps = [data]
        return [step for step in steps if step != b""]


# --- the I/O side ------------------------------------------------------------------------------------------


class _Aborted(Exception):
    """A pump reached a :class:`CutAfter`; carries whether the client should get a RST."""

    def __init__(self, reset: bool) -> None:
        super().__init__(reset)
        self.reset = reset


@final
class Proxy(tuple[str, int]):
    """A running proxy: the ``(host, port)`` it listens on, plus counters for assertions.

    Being a tuple, it unpacks as ``host, port = proxy``.

    Attributes:
        host: Always ``"127.0.0.1"``.
        port: The listening port.
        connections: Connections accepted so far.
        bytes_down: Bytes delivered to clients (after faults).
        bytes_up: Bytes delivered to the target (after faults).
    """

    connections: int
    bytes_down: int
    bytes_up: int

    def __new__(cls, host: str, port: int) -> Proxy:
        self = super().__new__(cls, (host, port))
        self.connections = self.bytes_down = self.bytes_up = 0
        return self

    @property
    def host(self) -> str:
        """The listening address."""
        return self[0]

    @property
    def port(self) -> int:
        """The listening port."""
        return self[1]

    def __repr__(self) -> str:
        return (
            f"Proxy({self.host}:{self.port}, connections={self.connections}, "
            f"bytes_down={self.bytes_down}, bytes_up={self.bytes_up})"
        )


async def _pump(
    source: trio.SocketStream,
    sink: trio.SocketStream,
    runner: _FaultRunner,
    count: Callable[[int], None],
) -> None:
    """Copy ``source`` to ``sink`` following ``runner``'s plan; pass EOF on as a half-close."""

    async def carry_out(steps: list[_Step]) -> None:
        for step in steps:
            if isinstance(step, bytes):
                await sink.send_all(step)
                count(len(step))
            elif isinstance(step, _Sleep):
                await trio.sleep(step.seconds)
            else:
                raise _Aborted(step.reset)

    await carry_out(runner.start())
    while data := await source.receive_some(_CHUNK):
        await carry_out(runner.feed(data))
    await sink.send_eof()


async def _cut(client: trio.SocketStream, server: trio.SocketStream, reset: bool) -> None:
    """Cut the connection: RST, or FIN while still swallowing what the client sends.

    Closing a socket with unread input makes the kernel send RST whatever we ask, so a clean FIN needs the
    client's input drained until it hangs up.
    """
    await server.aclose()
    if reset:
        # Linger on with a zero timeout: close() then discards unsent data and sends RST instead of FIN.
        client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await client.aclose()
        return
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await client.send_eof()
        while await client.receive_some(_CHUNK):
            pass


async def _forward(
    client: trio.SocketStream,
    *,
    proxy: Proxy,
    target: tuple[str, int],
    fault: Fault | None,
    upstream_fault: Fault | None,
) -> None:
    async with client:
        try:
            server = await trio.open_tcp_stream(*target)
        except OSError:
            return  # the client sees the proxy close: as close as we get to "connection refused"
        async with server:
            aborted: BaseException | None = None

            def down(n: int) -> None:
                proxy.bytes_down += n

            def up(n: int) -> None:
                proxy.bytes_up += n

            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_pump, server, client, _FaultRunner(fault), down)
                    nursery.start_soon(_pump, client, server, _FaultRunner(upstream_fault), up)
            except* _Aborted as group:
                aborted = group.exceptions[0]
            except* (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # a peer hung up: the connection is over, which is all a proxy needs to know
            if isinstance(aborted, _Aborted):
                await _cut(client, server, aborted.reset)


async def _serve_fake(client: trio.SocketStream, *, handler: Handler) -> None:
    async with client:
        try:
            await handler(client)
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client hung up on the fake server, which is what such tests usually provoke


def _check_arguments(
    target: tuple[str, int] | None, fault: Fault | None, upstream_fault: Fault | None, handler: Handler | None
) -> None:
    if (target is None) == (handler is None):
        raise ValueError("give exactly one of target (to forward) and handler (to fake a server)")
    if handler is not None and (fault is not None or upstream_fault is not None):
        raise ValueError("faults apply to forwarded connections, not to a fake server")


async def serve_proxy(
    target: tuple[str, int] | None = None,
    *,
    fault: Fault | None = None,
    upstream_fault: Fault | None = None,
    handler: Handler | None = None,
    task_status: TaskStatus[Proxy] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run a proxy until cancelled; for ``await nursery.start(serve_proxy, ...)``, which returns the Proxy.

    Takes the same arguments as :func:`open_proxy`.
    """
    _check_arguments(target, fault, upstream_fault, handler)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    host, port = listeners[0].socket.getsockname()[:2]
    proxy = Proxy(host, port)
    serve_one: Callable[[trio.SocketStream], Awaitable[None]]
    if handler is not None:
        serve_one = functools.partial(_serve_fake, handler=handler)
    else:
        assert target is not None
        serve_one = functools.partial(
            _forward, proxy=proxy, target=target, fault=fault, upstream_fault=upstream_fault
        )

    async def accepted(client: trio.SocketStream) -> None:
        proxy.connections += 1
        await serve_one(client)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, accepted, listeners)
        task_status.started(proxy)


@contextlib.asynccontextmanager
async def open_proxy(
    target: tuple[str, int] | None = None,
    *,
    fault: Fault | None = None,
    upstream_fault: Fault | None = None,
    handler: Handler | None = None,
) -> AsyncIterator[Proxy]:
    """Run a loopback proxy for the duration of an ``async with`` block.

    Example::

        async with open_proxy((server.host, server.port), fault=CutAfter(65536)) as (host, port):
            async with trissh.connect(host, port, ...) as conn: ...

    Args:
        target: ``(host, port)`` to forward each connection to.
        fault: What goes wrong on the target→client direction (None: nothing).
        upstream_fault: What goes wrong on the client→target direction (None: nothing).
        handler: Instead of forwarding, run this fake server on each accepted connection.

    Yields:
        The running :class:`Proxy`. On exit the listener and all its connections are closed.

    Raises:
        ValueError: both or neither of ``target`` and ``handler``; or faults given with ``handler``.
    """
    _check_arguments(target, fault, upstream_fault, handler)  # here, so errors are not wrapped in a group
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            proxy: Proxy = await nursery.start(
                functools.partial(
                    serve_proxy, target, fault=fault, upstream_fault=upstream_fault, handler=handler
                )
            )
            try:
                yield proxy
            except BaseException as exc:
                body_error = exc
                raise
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The nursery wraps the with-body's own exception in a group; hand it back bare, so that
        # `with pytest.raises(SomeError):` around the block works as it reads.
        if body_error is None or len(group.exceptions) != 1 or group.exceptions[0] is not body_error:
            raise
        context = body_error.__context__
        try:
            raise body_error
        finally:
            body_error.__context__ = context  # not "during handling of the group"


class ProxyFactory(Protocol):
    """The ``make_proxy`` fixture: starts a proxy that lives until the end of the test."""

    async def __call__(
        self,
        target: tuple[str, int] | None = None,
        *,
        fault: Fault | None = None,
        upstream_fault: Fault | None = None,
        handler: Handler | None = None,
    ) -> Proxy: ...
