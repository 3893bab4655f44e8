"""Cancellation at every step (issue 12): each operation is run to count its steps (tests/checkpoints.py),
then again, cancelled just before step 1, 2, ... N in turn.

After each attempt: nothing but the scope's own Cancelled came out (or, with the cancellation past the
operation's end, it finished with the right result); no trissh task is left beyond the open connection's
own; no file descriptor is left open; no channel is left in the connection's table; and the connection is
closed (a cancelled ``connect()``) or still runs a command (an operation cancelled on an open connection).
The default run tries every step of each operation; ``--run-slow`` repeats every sweep, since a step count
varies a little from run to run and each run lands the cancellations a little differently.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from checkpoints import Order, cancel_at_step, sweep_points
from test_forwarding import echo_server, pattern, wait_refused
from test_integration import connect, trissh_tasks, trissh_tasks_once_idle

import trissh
from trissh.testing import SSHServer

#: Points per operation in the default run (every step, for the operations here: they take 20-200).
BUDGET = 250
#: Bytes carried each way by the forwarding and the direct-tcpip stream: a few packets, so a few steps.
PAYLOAD = 20_000
#: The file an SFTP sweep transfers: a few pipelined requests of 32 KiB or more.
SFTP_BYTES = 300_000
#: A sweep stops after this many points with problems (each costs the checks' waits): enough to see a pattern.
MAX_FAILING_POINTS = 3
#: How long a check waits for what an attempt left behind to go (a close waits for the server's answer).
SETTLE = 3.0


def open_fds() -> int:
    """File descriptors open in this process."""
    return len(os.listdir("/proc/self/fd"))


async def fds_back_to(baseline: int) -> int:
    """The open descriptor count, once it is back to ``baseline`` or after SETTLE seconds of waiting.

    (A socket the server closes its end of is closed here when the task holding it notices, which may come
    a moment after the operation.)
    """
    with trio.move_on_after(SETTLE):
        while open_fds() > baseline:
            await trio.sleep(0.005)
    return open_fds()


async def channels_left(conn: trissh.SSHConnection, known: set[int]) -> list[str]:
    """The channels not in ``known`` still in the connection's table after SETTLE seconds (a close waits for
    the server's CLOSE), as "id kind state"."""
    with trio.move_on_after(SETTLE):
        while set(conn._mux.channels) - known:
            await trio.sleep(0.005)
    return [
        f"{number} {channel.kind} {channel.state.name}{' closed locally' if channel.closed_locally else ''}"
        for number, channel in conn._mux.channels.items()
        if number not in known
    ]


@dataclass
class Tally:
    """What one sweep did: points tried, how many were cancelled or ran to the end, and what went wrong."""

    name: str
    steps: list[int] = field(default_factory=list)  # the counting runs' step counts
    tried: int = 0
    cancelled: int = 0
    completed: int = 0
    failing_points: int = 0
    problems: list[str] = field(default_factory=list)

    def check(self) -> None:
        print(
            f"\n{self.name}: {self.tried} points (steps counted: {self.steps}), {self.cancelled} cancelled,"
            f" {self.completed} ran to the end, {len(self.problems)} problems"
        )
        assert not self.problems, f"{self.name}:\n" + "\n".join(self.problems)


Operation = Callable[[], Awaitable[None]]
Check = Callable[[], Awaitable[list[str]]]


async def attempt(operation: Operation, step: int | None, order: Order, tally: Tally) -> int:
    """Run ``operation`` cancelled before ``step`` (None: only count), its tasks run in ``order``; returns
    the steps counted.

    Anything but the scope's own Cancelled coming out is a problem, recorded with the step, the order and
    the task whose step the cancellation came before.
    """
    where = f"step {step} ({order.value})"
    try:
        with cancel_at_step(step, order) as (scope, counter):
            await operation()
    except (trio.Cancelled, KeyboardInterrupt):
        raise  # an outer scope's (the test's fail_after) or the user's: not ours to judge
    except BaseException as exc:
        tally.problems.append(f"{where} (before a step of {counter.fired_before}): {exc!r}")
        return counter.steps
    if step is None:
        return counter.steps
    if scope.cancelled_caught:
        tally.cancelled += 1
    else:
        # Cancelled too late for any checkpoint of the operation, or not at all: it finished, and its own
        # assertions checked the result.
        tally.completed += 1
    return counter.steps


#: The orders each point is tried in (see tests/checkpoints.py).
BOTH_ORDERS = (Order.OURS_FIRST, Order.VICTIM_FIRST)
#: connect() tries ours-first twice. Whether a point can show a bug of the 278d53f kind depends on the
#: network as well as on the order: the victim must be woken while the reader is parked, not while it still
#: has the server's next packet to read. One ours-first sweep lands on such a point in about 85% of runs,
#: two in about 98%, and the two connect() sweeps together (plain and with keepalive) in nearly all.
CONNECT_ORDERS = (Order.OURS_FIRST, Order.VICTIM_FIRST, Order.OURS_FIRST)


async def sweep(
    tally: Tally,
    operation: Operation,
    check: Check,
    *,
    rounds: int = 1,
    orders: tuple[Order, ...] = BOTH_ORDERS,
    counting_runs: int = 3,
    steps: Sequence[int] | None = None,
) -> None:
    """Count ``operation``'s steps (the largest of a few runs), then cancel it at each point in turn, once
    per entry of ``orders``, ``check()`` after each attempt; repeated ``rounds`` times with a fresh count.
    ``steps``: try only these (0: cancelled before it starts)."""
    for _ in range(rounds):
        counts = []
        for run in range(counting_runs if steps is None else 1):
            counts.append(await attempt(operation, None, orders[run % len(orders)], tally))
            tally.problems.extend(f"counting run: {p}" for p in await check())
        tally.steps.extend(counts)
        assert tally.problems == [], tally.problems  # the operation must work when nothing cancels it
        for step in steps if steps is not None else sweep_points(max(counts), BUDGET):
            for order in orders:
                known = len(tally.problems)
                await attempt(operation, step, order, tally)
                tally.tried += 1
                tally.problems.extend(f"step {step} ({order.value}): {p}" for p in await check())
                if len(tally.problems) > known:
                    tally.failing_points += 1
                    if tally.failing_points == MAX_FAILING_POINTS:
                        tally.problems.append(f"(stopped after {MAX_FAILING_POINTS} points with problems)")
                        return


# --- connect() -----------------------------------------------------------------------------------------


async def sweep_connect(
    sshd: SSHServer, rounds: int, *, steps: Sequence[int] | None = None, **options: Any
) -> Tally:
    """connect(), a command, and the close: cancelled anywhere, it leaves nothing, not even a descriptor."""
    tally = Tally("connect()" + "".join(f" {key}={value}" for key, value in options.items()))
    baseline = open_fds()
    opened: list[trissh.SSHConnection] = []

    async def operation() -> None:
        async with connect(sshd, **options) as conn:
            opened.append(conn)
            assert (await conn.run("echo x")).stdout == b"x\n"

    async def check() -> list[str]:
        nonlocal baseline
        problems = []
        if tasks := trissh_tasks():  # every task of ours has ended before the block exits
            problems.append(f"trissh tasks left: {tasks}")
        if opened and not opened.pop().is_closed:
            problems.append("the connection is not closed")
        if (fds := await fds_back_to(baseline)) > baseline:
            problems.append(f"{fds - baseline} file descriptors left open")
            baseline = fds  # reported once, by the attempt that left them
        return problems

    await sweep(tally, operation, check, rounds=rounds, orders=CONNECT_ORDERS, steps=steps)
    return tally


@pytest.mark.parametrize("options", [{}, {"keepalive_interval": 30}], ids=["plain", "keepalive"])
async def test_cancel_connect_at_every_step(sshd: SSHServer, options: dict[str, Any]) -> None:
    """connect(), a command and the close, cancelled before each step: only Cancelled comes out, and
    nothing is left (with keepalive: its task too).

    The bug fixed in 278d53f (our reader, cancelled, marked the connection failed, and the caller, woken
    with USERAUTH_SUCCESS just before, raised that ConnectionLost from the open of the command's channel
    instead of its Cancelled) fails here: ours first, at the caller's step after that wake-up.
    """
    with trio.fail_after(120):
        (await sweep_connect(sshd, 1, **options)).check()


# --- operations on an open connection ---------------------------------------------------------------


async def sweep_on_open_connection(
    conn: trissh.SSHConnection,
    name: str,
    operation: Operation,
    rounds: int,
    *,
    listener: list[int] | None = None,
    steps: Sequence[int] | None = None,
    leftovers: Check | None = None,
) -> Tally:
    """Sweep ``operation`` on ``conn``: after each attempt, the connection's own tasks only, no channel, no
    descriptor, and (``listener``: the ports it listened on) nothing listening; then it still runs a
    command. ``leftovers`` adds the operation's own checks (files an SFTP transfer left, say)."""
    tally = Tally(name)
    before = await trissh_tasks_once_idle()
    # What an attempt leaves is reported once, by the attempt that left it: the checks compare with what
    # was there before it.
    baseline = open_fds()
    channels = set(conn._mux.channels)

    async def check() -> list[str]:
        nonlocal baseline, channels
        problems = []
        for port in listener or ():
            with trio.move_on_after(SETTLE) as scope:
                await wait_refused("127.0.0.1", port)
            if scope.cancelled_caught:
                problems.append(f"still listening on port {port}")
        if listener:
            listener.clear()
        if leftovers is not None:
            problems.extend(await leftovers())
        if left := await channels_left(conn, channels):
            problems.append(f"channels left open: {left}")
            channels = set(conn._mux.channels)
        try:
            with trio.fail_after(10):
                result = await conn.run("echo ok")
        except trissh.SSHError as exc:
            problems.append(f"the connection is not usable: {exc!r}")
        else:
            if result.stdout != b"ok\n":
                problems.append(f"the connection answered {result.stdout!r}")
        if (tasks := await trissh_tasks_once_idle()) != before:
            problems.append(f"trissh tasks {tasks}, not {before}")
        if (fds := await fds_back_to(baseline)) > baseline:
            problems.append(f"{fds - baseline} file descriptors left open")
            baseline = fds
        return problems

    await sweep(tally, operation, check, rounds=rounds, steps=steps)
    return tally


async def run_echo(conn: trissh.SSHConnection) -> None:
    assert (await conn.run("echo x")).stdout == b"x\n"


async def streamed_process(conn: trissh.SSHConnection) -> None:
    """open_process, its stdout read to the end, its exit status awaited."""
    async with conn.open_process("echo one; echo two >&2; echo three") as process:
        output = b""
        while chunk := await process.stdout.receive_some():
            output += chunk
        assert await process.wait() == 0
    assert output == b"one\nthree\n"


async def echo_exchange(stream: trio.abc.HalfCloseableStream) -> None:
    """Send PAYLOAD and EOF, read the echo to its end: it must be what was sent."""
    data = pattern(PAYLOAD, seed=12)
    await stream.send_all(data)
    await stream.send_eof()
    received = bytearray()
    while chunk := await stream.receive_some():
        received += chunk
    assert bytes(received) == data


async def local_forward(conn: trissh.SSHConnection, echo_port: int, listened: list[int]) -> None:
    """forward_local_port and one client carrying PAYLOAD each way through it, then the forward closed."""
    async with conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", echo_port) as forward:
        listened.append(forward.port)
        async with await trio.open_tcp_stream("127.0.0.1", forward.port) as stream:
            await echo_exchange(stream)


async def direct_tcpip(conn: trissh.SSHConnection, echo_port: int) -> None:
    """open_tcp_stream (direct-tcpip) carrying PAYLOAD each way, then closed."""
    async with await conn.open_tcp_stream("127.0.0.1", echo_port) as stream:
        await echo_exchange(stream)


class SFTPFiles:
    """The files of the SFTP sweeps in a fresh directory: a source of SFTP_BYTES (a few pipelined requests)
    and the destinations an attempt writes."""

    def __init__(self) -> None:
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="trissh-sweep-"))
        self.data = pattern(SFTP_BYTES, seed=13)
        (self.root / "source").write_bytes(self.data)
        (self.root / "got").mkdir()
        (self.root / "put").mkdir()

    async def get(self, conn: trissh.SSHConnection) -> None:
        """open_sftp, get into got/ (removed first, so each attempt starts alike), the data checked."""
        (self.root / "got" / "source").unlink(missing_ok=True)
        async with conn.open_sftp() as sftp:
            await sftp.get(str(self.root / "source"), str(self.root / "got"))
        assert (self.root / "got" / "source").read_bytes() == self.data

    async def put(self, conn: trissh.SSHConnection) -> None:
        (self.root / "put" / "source").unlink(missing_ok=True)
        async with conn.open_sftp() as sftp:
            await sftp.put(str(self.root / "source"), str(self.root / "put"))
        assert (self.root / "put" / "source").read_bytes() == self.data

    async def leftovers(self) -> list[str]:
        """A cancelled get leaves no file at all (not even its temporary); a finished one, the whole file."""
        await trio.lowlevel.checkpoint()
        problems = []
        names = os.listdir(self.root / "got")
        if names not in ([], ["source"]):
            problems.append(f"get left {names}")
        elif names and (self.root / "got" / "source").read_bytes() != self.data:
            problems.append("get left an incomplete destination")
        return problems

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.root, ignore_errors=True)


async def sweep_operations(
    sshd: SSHServer, kind: str, rounds: int, *, steps: Sequence[int] | None = None
) -> Tally:
    """Sweep the operation named ``kind`` on one open connection (with an echo server for the tunnels)."""
    files = SFTPFiles()
    try:
        async with echo_server() as echo_port, connect(sshd) as conn:
            listened: list[int] = []
            operations: dict[str, Operation] = {
                "run": lambda: run_echo(conn),
                "process": lambda: streamed_process(conn),
                "local forward": lambda: local_forward(conn, echo_port, listened),
                "direct-tcpip": lambda: direct_tcpip(conn, echo_port),
                "sftp get": lambda: files.get(conn),
                "sftp put": lambda: files.put(conn),
            }
            return await sweep_on_open_connection(
                conn,
                kind,
                operations[kind],
                rounds,
                listener=listened if kind == "local forward" else None,
                steps=steps,
                leftovers=files.leftovers if kind == "sftp get" else None,
            )
    finally:
        files.remove()


OPERATIONS = [
    "run",
    "process",
    "local forward",
    "direct-tcpip",
    "sftp get",
    "sftp put",
]


@pytest.mark.parametrize(
    "kind",
    [
        "connect",
        "run",
        "process",
        "direct-tcpip",
        "local forward",  # it opens its channels later, in tasks of its own
        "sftp get",
        "sftp put",
    ],
)
async def test_cancelled_before_it_starts(sshd: SSHServer, kind: str) -> None:
    """Each operation started in a scope already cancelled ("step 0", which the sweeps leave out: their
    first point comes after the operation's first checkpoint): Cancelled, and nothing left."""
    with trio.fail_after(60):
        if kind == "connect":
            tally = await sweep_connect(sshd, 1, steps=[0])
        else:
            tally = await sweep_operations(sshd, kind, 1, steps=[0])
        assert tally.cancelled == tally.tried == len(CONNECT_ORDERS if kind == "connect" else BOTH_ORDERS)
        tally.check()


@pytest.mark.parametrize("kind", OPERATIONS)
async def test_cancel_operation_at_every_step(sshd: SSHServer, kind: str) -> None:
    """A command, a streamed process, a local forward and a direct-tcpip stream, each cancelled before
    each of its steps on an open connection: it stays usable and nothing of the operation is left."""
    with trio.fail_after(120):
        (await sweep_operations(sshd, kind, 1)).check()


# --- the long form ------------------------------------------------------------------------------------

ROUNDS = 10


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("options", [{}, {"keepalive_interval": 30}], ids=["plain", "keepalive"])
async def test_cancel_connect_at_every_step_repeated(sshd: SSHServer, options: dict[str, Any]) -> None:
    """The connect() sweep, ROUNDS times over: the step counts and the network's timing vary, so each
    round lands its cancellations a little differently."""
    with trio.fail_after(1100):
        (await sweep_connect(sshd, ROUNDS, **options)).check()


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("kind", OPERATIONS)
async def test_cancel_operation_at_every_step_repeated(sshd: SSHServer, kind: str) -> None:
    """Each operation's sweep, ROUNDS times over."""
    with trio.fail_after(1100):
        (await sweep_operations(sshd, kind, ROUNDS)).check()
