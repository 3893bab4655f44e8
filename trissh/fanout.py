"""One command on many hosts, concurrently: :func:`run_on_hosts`.

Theory of operation
-------------------
:func:`for_each_host` is the machinery, :func:`run_on_hosts` its common case (``conn.run(command)``).
Every host string is parsed (:func:`parse_host`) and every host's ``connect()`` built before anything
connects, so a bad host string or a bad connect option raises ``ValueError``/``TypeError`` at once. Then
one nursery runs a task per host, each of which first waits for one of ``limit`` slots (a
``trio.Semaphore``) and holds it from the moment it starts connecting until its connection is closed, so
``limit`` bounds the hosts connecting or running at once. (All tasks are started at once, waiting, rather
than by a feeder that starts one per freed slot: measured, the feeder cost about a millisecond of CPU
more per host. Hosts therefore get their slots roughly, not exactly, in the order given: Trio does not
promise the order in which new tasks first run.)

Per host, Trio cancel scopes nest, so bounds compose and never add up::

    move_on_after(timeout)                 the host's whole time: connect + command + close
        connect(..., connect_timeout=)     connect()'s own fail_after: TCP, key exchange, authentication
            job(conn)                      the command

Either bound running out becomes a :class:`HostTimeout` result for that host (``phase`` says whether it
was connecting or running the command), as does any :class:`~trissh.SSHError` of that host: one host's
failure never cancels another. Both clocks start when the host gets its slot, not when the run starts.

Finished hosts put a :class:`HostResult` into an unbounded memory channel (one item per host: the results
must be kept anyway), which :class:`HostResults` reads: results come out in completion order. Leaving the
``async with`` block, normally, by ``break``, by an exception or by cancellation, cancels the hosts still
running and waits for their connections to close; a cancel scope around the whole block is therefore the
overall deadline. Errors that are not a host's (a bug, a ``FileNotFoundError`` for a known_hosts file
named but missing) end the whole run and come out as themselves, never as an ``ExceptionGroup``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypedDict, Unpack

import trio

from ._auth.host_key_check import load_known_hosts
from ._channels.launch import unwrap_group
from ._channels.session import CompletedProcess
from ._configured import load_config
from ._connect import ConnectTimeout, connect
from ._connect_options import DEFAULT
from ._errors import SSHError, exception_leaves
from ._public import public
from .connection import SSHConnection

if TYPE_CHECKING:
    from ._algorithms.kex import GexBits
    from ._auth.exchange import BannerHandler
    from ._auth.host_key_check import HostKeyPolicy, KnownHostsArg
    from ._auth.key_sources import ClientKeysArg, Default
    from ._auth.methods import KbdintHandler, PasswordChangeHandler, PasswordSource
    from ._configured import ConfigArg
    from ._connect_options import PassphraseSource

__all__ = [
    "DEFAULT_LIMIT",
    "FanoutConnectOptions",
    "HostResult",
    "HostResults",
    "HostSpec",
    "HostTimeout",
    "Job",
    "OptionsFor",
    "for_each_host",
    "parse_host",
    "run_on_hosts",
]

#: Hosts connecting or running at once when no ``limit`` is given: enough to hide network latency,
#: few enough that 50 key exchanges at once do not starve one CPU (each costs a few ms of it).
DEFAULT_LIMIT: Final = 50

#: What a host's job returns, or the host's error in its place.
Outcome = CompletedProcess | SSHError

#: A host's work once it is connected, given the connection and the host string as given: for
#: :func:`run_on_hosts`, ``conn.run(command)``.
Job = Callable[[SSHConnection, str], Awaitable[CompletedProcess]]

#: Extra :func:`trissh.connect` keywords for one host (``host``, ``port`` and ``username`` included),
#: over the shared ones: what an ssh_config lookup gives, say.
OptionsFor = Callable[["HostSpec"], Mapping[str, object]]


@public
class FanoutConnectOptions(TypedDict, total=False):
    """The :func:`trissh.connect` keywords :func:`run_on_hosts` and :func:`for_each_host` pass on to
    every host: all of them but ``host`` and ``connect_timeout`` (which they take themselves). Each
    has connect()'s type; a test keeps the two lists the same."""

    port: int | None
    username: str | None
    password: PasswordSource
    client_keys: ClientKeysArg
    passphrase: PassphraseSource
    agent_path: str | os.PathLike[str] | Default | None
    forward_agent: bool | None
    known_hosts: KnownHostsArg
    host_key_policy: HostKeyPolicy | None
    preferred_auth: Sequence[str] | str | None
    kbdint_handler: KbdintHandler | None
    password_change_handler: PasswordChangeHandler | None
    banner_handler: BannerHandler | None
    kex_algs: Sequence[str] | None
    host_key_algs: Sequence[str] | None
    ciphers: Sequence[str] | None
    macs: Sequence[str] | None
    compression: bool | Sequence[str] | None
    gex_bits: GexBits | tuple[int, int, int] | None
    rekey_bytes: int | None
    rekey_seconds: float | Default | None
    keepalive_interval: float | None
    keepalive_count_max: int | None
    tunnel: SSHConnection | None
    proxy_jump: str | None
    config: ConfigArg


_PORT_RE: Final = re.compile(r"[0-9]{1,5}")
# ConnectTimeout messages end with the step that was under way: "... (key exchange)".
_STAGE_RE: Final = re.compile(r"\(([^()]*)\)$")


@public
class HostTimeout(SSHError):
    """A host of :func:`run_on_hosts` ran out of time: ``"connect timed out after 5 s (key exchange)"``.

    Attributes:
        phase: ``"connect"`` (TCP, key exchange, authentication) or ``"command"``.
        seconds: the bound that ran out: ``connect_timeout`` or the host's ``timeout``.
        bound: which of the two it was, ``"connect_timeout"`` or ``"timeout"``.
    """

    _repr_fields = ("phase", "seconds", "bound")

    def __init__(
        self,
        phase: Literal["connect", "command"],
        seconds: float,
        bound: Literal["connect_timeout", "timeout"],
        detail: str = "",
    ) -> None:
        self.phase = phase
        self.seconds = seconds
        self.bound = bound
        super().__init__(f"{phase} timed out after {seconds:g} s" + (f" ({detail})" if detail else ""))


@public
@dataclass(frozen=True)
class HostSpec:
    """A parsed host string: ``hostname``, ``port`` (None: not given) and ``username`` (None: not given)."""

    hostname: str
    port: int | None = None
    username: str | None = None


def parse_host(text: str) -> HostSpec:
    """Parse ``[user@]host[:port]``, or ``[user@][host]:port`` / ``[host]`` for IPv6 addresses.

    A bare IPv6 address (more than one colon, no brackets) is a host without a port.

    Raises:
        ValueError: an empty host or user name, a port that is not 1..65535, an unclosed ``[``.
    """
    if not isinstance(text, str):
        raise TypeError(f"a host must be a string, got {type(text).__name__}")
    rest = text.strip()
    username: str | None = None
    if "@" in rest:
        username, rest = rest.rsplit("@", 1)
        if not username:
            raise ValueError(f"host {text!r}: empty user name before '@'")
    port_text: str | None = None
    if rest.startswith("["):
        hostname, closed, after = rest[1:].partition("]")
        if not closed:
            raise ValueError(f"host {text!r}: '[' without ']'")
        if after:
            if not after.startswith(":"):
                raise ValueError(f"host {text!r}: only ':port' may follow ']'")
            port_text = after[1:]
    elif rest.count(":") == 1:
        hostname, port_text = rest.split(":")
    else:
        hostname = rest
    if not hostname or any(c.isspace() for c in hostname):
        raise ValueError(f"host {text!r}: no host name" if not hostname else f"host {text!r}: space in name")
    port: int | None = None
    if port_text is not None:
        if not _PORT_RE.fullmatch(port_text) or not 0 < int(port_text) < 65536:
            raise ValueError(f"host {text!r}: port must be a number 1..65535, got {port_text!r}")
        port = int(port_text)
    return HostSpec(hostname, port, username)


@public
class HostResult(tuple[str, Outcome]):
    """One host's outcome; unpacks as ``(host, result)``.

    ``host`` is the host string as given; ``result`` a :class:`~trissh.CompletedProcess` (whatever its
    exit status) or the host's :class:`~trissh.SSHError` (:class:`HostTimeout` for a timeout).

    Attributes:
        position: the host's position in the ``hosts`` given (host strings may repeat).
        elapsed: seconds from the host's start (when it got its slot) to its end, closing included.
    """

    position: int
    elapsed: float

    def __new__(cls, host: str, result: Outcome, *, position: int, elapsed: float) -> HostResult:
        self = super().__new__(cls, (host, result))
        self.position = position
        self.elapsed = elapsed
        return self

    @property
    def host(self) -> str:
        return self[0]

    @property
    def result(self) -> Outcome:
        return self[1]

    def __repr__(self) -> str:
        return f"HostResult({self[0]!r}, {self[1]!r}, position={self.position}, elapsed={self.elapsed:.3f})"


@public
class HostResults:
    """The results of a run, as an async iterator of :class:`HostResult` in completion order.

    Iterate it once (``async for host, result in results``), or ``await results.collect()``; both end when
    every host is done. Usable only inside the ``async with`` block that yielded it.
    """

    def __init__(self, receive: trio.MemoryReceiveChannel[HostResult], count: int) -> None:
        self._receive = receive
        self._count = count

    def __len__(self) -> int:
        """The number of hosts in the run."""
        return self._count

    def __aiter__(self) -> HostResults:
        return self

    async def __anext__(self) -> HostResult:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def collect(self) -> list[HostResult]:
        """Wait for the remaining hosts; their results in the order the hosts were given.

        ``dict(await results.collect())`` maps each host string to its result when none repeats.
        """
        items = [item async for item in self]
        return sorted(items, key=lambda item: item.position)


def _check_timeout(name: str, value: float | None) -> None:
    if value is not None and not (isinstance(value, (int, float)) and value > 0):
        raise ValueError(f"{name} must be a positive number of seconds or None, got {value!r}")


def _connect_timeout_error(exc: ConnectTimeout, seconds: float | None) -> HostTimeout:
    stage = _STAGE_RE.search(str(exc))
    error = HostTimeout(
        "connect", seconds if seconds is not None else math.inf, "connect_timeout", stage[1] if stage else ""
    )
    error.__cause__ = exc
    return error


async def _run_host(
    manager: AbstractAsyncContextManager[SSHConnection],
    job: Job,
    host: str,
    connect_timeout: float | None,
    timeout: float | None,
) -> CompletedProcess | SSHError:
    """Connect, run ``job``, close: the outcome, whatever happened (cancellation of the run aside)."""
    phase: Literal["connect", "command"] = "connect"
    result: CompletedProcess | None = None
    try:
        with trio.move_on_after(timeout if timeout is not None else math.inf) as whole:
            async with manager as conn:
                phase = "command"
                result = await job(conn, host)
    except ConnectTimeout as exc:
        if phase == "connect":
            return _connect_timeout_error(exc, connect_timeout)
        return result if result is not None else exc
    except SSHError as exc:
        # An error while closing after the command finished (a dropped connection, say) does not undo it.
        return result if result is not None else exc
    if result is not None:
        return result  # finished; only the close was cut short by the deadline
    assert whole.cancelled_caught and timeout is not None
    return HostTimeout(phase, timeout, "timeout")


def _single_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """One exception for the caller: the real error (the first, if several), else a cancellation."""
    error = unwrap_group(group)
    if not isinstance(error, BaseExceptionGroup):
        return error
    leaves = exception_leaves(error)
    real = [exc for exc in leaves if not isinstance(exc, trio.Cancelled)]
    first = real[0] if real else leaves[0]
    if len(real) > 1:
        first.add_note(f"(and {len(real) - 1} more errors in other hosts' tasks: {real[1:]!r})")
    return first


@public
@asynccontextmanager
async def for_each_host(
    hosts: Iterable[str],
    job: Job,
    *,
    limit: int = DEFAULT_LIMIT,
    connect_timeout: float | None = 30.0,
    timeout: float | None = None,
    options_for: OptionsFor | None = None,
    **connect_options: Unpack[FanoutConnectOptions],
) -> AsyncIterator[HostResults]:
    """Connect to each host, run ``job(conn)``, close; yield results as they come (see :func:`run_on_hosts`).

    ``job(conn, host)`` is any async function of a connection (and the host string) returning a
    :class:`~trissh.CompletedProcess`, e.g. one that streams a process's output as it arrives; an
    :class:`~trissh.SSHError` it raises becomes that host's result, anything else ends the run.
    ``options_for(spec)``, if given, returns extra :func:`trissh.connect` keywords for each parsed
    host (``host``, ``port``, ``username`` included), which win over ``connect_options``.
    """
    specs = [(text, parse_host(text)) for text in hosts]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    _check_timeout("connect_timeout", connect_timeout)
    _check_timeout("timeout", timeout)
    # Files every host would read again: read once. (Default known_hosts stay per host: the config may
    # name other files for some hosts.)
    if connect_options.get("config", DEFAULT) is DEFAULT:
        connect_options["config"] = await trio.to_thread.run_sync(load_config, DEFAULT)
    known = connect_options.get("known_hosts")
    if isinstance(known, str | os.PathLike | list | tuple):
        policy = connect_options.get("host_key_policy") or "strict"
        connect_options["known_hosts"] = await trio.to_thread.run_sync(load_known_hosts, known, policy)
    default_port = connect_options.pop("port", None)  # None: the config's, else 22
    default_user = connect_options.pop("username", None)
    # connect() checks its settings when called, before anything is sent: a bad one raises here.
    managers: list[AbstractAsyncContextManager[SSHConnection]] = []
    for _, spec in specs:
        options: dict[str, Any] = {
            "host": spec.hostname,
            "port": spec.port if spec.port is not None else default_port,
            "username": spec.username or default_user,
            **connect_options,
            **(options_for(spec) if options_for is not None else {}),
        }
        managers.append(connect(connect_timeout=connect_timeout, **options))
    send, receive = trio.open_memory_channel[HostResult](math.inf)
    slots = trio.Semaphore(limit)

    async def host_task(
        index: int,
        host: str,
        manager: AbstractAsyncContextManager[SSHConnection],
        send: trio.MemorySendChannel[HostResult],
    ) -> None:
        async with send:
            async with slots:
                started = trio.current_time()
                outcome = await _run_host(manager, job, host, connect_timeout, timeout)
            # The caller may have left the block (and closed the receiving end) as this host finished.
            with suppress(trio.BrokenResourceError):
                send.send_nowait(
                    HostResult(host, outcome, position=index, elapsed=trio.current_time() - started)
                )

    try:
        async with trio.open_nursery() as nursery:
            async with send:
                for index, ((host, _), manager) in enumerate(zip(specs, managers, strict=True)):
                    nursery.start_soon(
                        host_task, index, host, manager, send.clone(), name=f"trissh.fanout {host}"
                    )
            try:
                yield HostResults(receive, len(specs))
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        error = _single_error(group)
        raise error from error.__cause__
    finally:
        receive.close()


@public
def run_on_hosts(
    hosts: Iterable[str],
    command: str | Sequence[str],
    *,
    limit: int = DEFAULT_LIMIT,
    connect_timeout: float | None = 30.0,
    timeout: float | None = None,
    **connect_options: Unpack[FanoutConnectOptions],
) -> AbstractAsyncContextManager[HostResults]:
    """Run ``command`` on every host, at most ``limit`` at once; yield the results as hosts finish.

    Example::

        async with trissh.run_on_hosts(["web1", "admin@web2:2222"], "uptime", limit=50, timeout=30,
                                       known_hosts="hosts.known") as results:
            async for host, result in results:
                if isinstance(result, trissh.SSHError):
                    print(host, "failed:", result)
                else:
                    print(host, result.returncode, result.stdout.decode())

    Args:
        hosts: ``[user@]host[:port]`` strings (``[user@][host]:port`` for IPv6); they may repeat.
        command: a command line, or arguments joined with :func:`shlex.join` (as ``conn.run``).
        limit: how many hosts may be connecting or running at once; the rest wait (roughly in order).
        connect_timeout: seconds for each host's connect (TCP, key exchange, authentication), passed to
            :func:`trissh.connect`; None: connect()'s own handshake bound only.
        timeout: seconds for each host's whole time (connect, command, close); None: unbounded. Both
            clocks start when the host gets its slot; they nest (the sooner one wins, never their sum).
        connect_options: keywords for :func:`trissh.connect`, the same for every host. ``username`` and
            ``port`` are defaults for hosts that do not give their own.

    Yields:
        :class:`HostResults`: an async iterator of ``(host, result)`` pairs (:class:`HostResult`) in
        completion order, where ``result`` is a :class:`~trissh.CompletedProcess` (any exit status) or the
        host's :class:`~trissh.SSHError`: :class:`HostTimeout` when it ran out of time. One host's failure
        never stops another. Leaving the block (``break`` included) cancels the hosts still running and
        closes their connections before it returns; a cancel scope around the block bounds the whole run.

    Raises:
        ValueError, TypeError: a bad host string, ``limit``, timeout or connect option, on entering the
            block, before anything connects.
        Anything that is not a host's own failure (e.g. ``FileNotFoundError`` for a missing
        ``known_hosts`` file) ends the run and propagates as itself, never as an ``ExceptionGroup``.
    """

    async def job(conn: SSHConnection, host: str) -> CompletedProcess:
        return await conn.run(command)

    return for_each_host(
        hosts, job, limit=limit, connect_timeout=connect_timeout, timeout=timeout, **connect_options
    )
