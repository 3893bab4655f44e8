"""One benchmark case for one client, in a process of its own.

Usage (the orchestrator, :mod:`benchmarks.run`, builds this command line)::

    python -m benchmarks.worker --client trissh --case download --variant aes128-gcm@openssh.com \\
        --host 127.0.0.1 --port 40123 --user me --key KEY --known-hosts FILE --ssh-argv JSON \\
        --size 268435456 --count 1 --timeout 600 --spawned-at 1700000000.0

It prints exactly one JSON line on stdout and nothing else:

* ``{"status": "ok", "result": {...}}`` — the case completed and its data checked out;
* ``{"status": "unsupported", "reason": "..."}`` — the client cannot do this (say, a cipher it lacks);
* ``{"status": "failed", "error": "..."}`` — anything else (the traceback goes to stderr); exit status 1.

Theory of operation
-------------------
Every client does the same work through its own streaming API, so the comparison is fair: a download reads the
output of ``head -c N /dev/zero`` chunk by chunk and counts it (never holding it all); an upload sends one
preallocated 1 MiB buffer over and over to ``wc -c`` and checks the count it prints; the channels case hashes
each session's output as it arrives and compares it with the ``sha256sum`` the server computed. A wrong
length, hash, exit status or negotiated cipher is an error, so a fast wrong answer never counts.

The figures measured here are the *in-process* ones: wall time and CPU time (``getrusage``: ``RUSAGE_SELF``
for the Python clients, ``RUSAGE_CHILDREN`` for the ``ssh`` subprocess) around the transfer only, once
connected.
The orchestrator measures the whole process (start-up, imports and connect included) from outside. Client
libraries, and asyncio (AsyncSSH's event loop), are imported inside the functions that use them, so a worker
imports only its own client and event loop: a trissh worker's peak memory holds Trio, not asyncio too.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Final

from benchmarks import CASES, CLIENTS, ETM_MAC, FORWARD_CIPHERS, TRANSFER_CASES

__all__ = ["Job", "main"]

Result = dict[str, Any]

# Uploads send this many bytes per call, always the same buffer: allocation is not what we measure.
_CHUNK: Final = 1 << 20
# The most the asyncssh and paramiko loops ask for per read (trissh's receive_some() takes what is buffered).
_READ_SIZE: Final = 4 << 20
# Linux's default cap on a pipe's size (/proc/sys/fs/pipe-max-size): fewer wake-ups reading ssh's output.
_PIPE_SIZE: Final = 1 << 20
_F_SETPIPE_SZ: Final = 1031
# Fan-out: at most this many connections in their TCP connect + handshake at once (all stay open until every
# one has run its command). sshd listens with a fixed backlog of 128 (SSH_LISTEN_BACKLOG); a storm of 1000
# connects overflows it, and the kernel's SYN-cookie fallback then resets a few connections at random, which
# would measure the server's listen queue, not the client.
_CONNECTS_IN_FLIGHT: Final = 100


class Unsupported(Exception):
    """The client cannot run this case or variant: reported, not counted as a failure."""


class DataError(Exception):
    """The case completed but its data, exit status or negotiated algorithm was wrong."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One case for one client, as given on the command line.

    Fields: client, case, variant (the cipher for transfer cases), host, port, user, key (private key path),
    known_hosts (path), ssh_argv (``SSHServer.ssh_command()`` with no remote command), size (bytes per
    transfer, or per channel), count (handshakes, connections or channels), timeout (seconds), spawned_at
    (``time.time()`` just before the orchestrator started this process).
    """

    client: str
    case: str
    variant: str
    host: str
    port: int
    user: str
    key: Path
    known_hosts: Path
    ssh_argv: list[str]
    size: int
    count: int
    timeout: float
    spawned_at: float

    @property
    def cipher(self) -> str | None:
        """The cipher to force (the variant of a transfer case); None: the client's defaults."""
        return self.variant if self.case in TRANSFER_CASES else FORWARD_CIPHERS.get(self.case)


# --- measuring and checking ---------------------------------------------------------------------------------


def _cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _maxrss_kib() -> int:
    """Peak resident set size of this process, in KiB.

    Linux keeps ``getrusage(RUSAGE_SELF).ru_maxrss`` across ``fork`` + ``exec``, so in a worker it starts at
    the *orchestrator's* peak. ``VmHWM`` in ``/proc/self/status`` belongs to the address space, which ``exec``
    replaces, so it is this process's own peak; ``ru_maxrss`` is the fallback elsewhere.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


class Meter:
    """Wall-clock and CPU seconds since construction (CPU of this process, or of its waited-for children)."""

    def __init__(self, who: int = resource.RUSAGE_SELF) -> None:
        self._who = who
        self._wall = time.perf_counter()
        self._cpu = _cpu_seconds(who)

    def stop(self) -> tuple[float, float]:
        """Return (wall seconds, CPU seconds) so far."""
        return time.perf_counter() - self._wall, _cpu_seconds(self._who) - self._cpu


_buffer: bytes | None = None


def _pieces(size: int) -> Iterator[bytes]:
    """Yield ``size`` bytes as the same 1 MiB random buffer repeated (and a shorter tail)."""
    global _buffer
    if _buffer is None:
        _buffer = os.urandom(_CHUNK)
    full, rest = divmod(size, _CHUNK)
    for _ in range(full):
        yield _buffer
    if rest:
        yield _buffer[:rest]


def _download_command(job: Job) -> str:
    return f"head -c {job.size} /dev/zero"


_UPLOAD_COMMAND: Final = "wc -c"


def _channel_command(size: int) -> str:
    # bash for the process substitution: the data goes to stdout, its sha256 (computed remotely) to stderr.
    return "bash -c " + shlex.quote(f"head -c {size} /dev/urandom | tee >(sha256sum >&2)")


def _check_status(what: str, status: int | None) -> None:
    if status != 0:
        raise DataError(f"{what} exited with status {status}")


def _check_count(output: bytes, expected: int) -> int:
    """Parse ``wc -c`` output and check it against ``expected``."""
    try:
        count = int(output.split()[0])
    except (IndexError, ValueError):
        raise DataError(f"`wc -c` printed {output[:100]!r}, not a byte count") from None
    if count != expected:
        raise DataError(f"the server received {count} bytes, not {expected}")
    return count


def _check_hash(index: int, size: int, digest: hashlib._Hash, received: int, stderr: bytes) -> None:
    if received != size:
        raise DataError(f"session {index}: received {received} bytes, not {size}")
    remote = stderr.split()[0].decode(errors="replace") if stderr.split() else "(none)"
    if digest.hexdigest() != remote:
        raise DataError(f"session {index}: sha256 {digest.hexdigest()} differs from the server's {remote}")


def _transfer_result(
    job: Job, count: int, status: int | None, seconds: float, cpu: float, connect: float | None, ciphers: Any
) -> Result:
    """Check a finished transfer and return its figures."""
    _check_status(f"`{_download_command(job) if job.case == 'download' else _UPLOAD_COMMAND}`", status)
    if count != job.size:
        raise DataError(f"transferred {count} bytes, not {job.size}")
    if list(ciphers) != [job.cipher, job.cipher]:
        raise DataError(f"asked for cipher {job.cipher} but negotiated {list(ciphers)} (out, in)")
    return {"bytes": count, "seconds": seconds, "cpu_seconds": cpu, "connect_seconds": connect}


class _Handshakes:
    """Times a series of handshakes: the first is the cold one (process start to its end), then ``count``."""

    def __init__(self, job: Job, who: int = resource.RUSAGE_SELF) -> None:
        self._job = job
        self._who = who
        self.cold: float | None = None
        self.times: list[float] = []
        self.kex: set[str] = set()
        self._meter: Meter | None = None

    def rounds(self) -> range:
        return range(self._job.count + 1)

    def record(self, started: float, kex: str | None) -> None:
        """Record a handshake that began at ``perf_counter()`` value ``started`` and has just ended."""
        elapsed = time.perf_counter() - started
        if kex:
            self.kex.add(kex)
        if self.cold is None:
            # The client process started when the orchestrator spawned us, except for ssh (its own process).
            self.cold = elapsed if self._job.client == "ssh" else time.time() - self._job.spawned_at
            self._meter = Meter(self._who)
        else:
            self.times.append(elapsed)

    def result(self) -> Result:
        assert self._meter is not None and self.cold is not None
        _, cpu = self._meter.stop()
        times = sorted(self.times)
        p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
        return {
            "times": self.times,
            "median": statistics.median(times),
            "p90": p90,
            "cpu_per_handshake": cpu / len(times),
            "cold": self.cold,
            "kex": ", ".join(sorted(self.kex)) or "?",
        }


class _Failures:
    """Collects failures of concurrent connections or sessions, to report them all at once."""

    def __init__(self, what: str, total: int) -> None:
        self._what = what
        self._total = total
        self._lock = threading.Lock()
        self.errors: list[str] = []

    def add(self, index: int, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(f"{self._what} {index}: {_describe(exc)}")

    def check(self) -> None:
        if self.errors:
            failed = f"{len(self.errors)} of {self._total} {self._what}s failed"
            raise DataError(f"{failed}; first: {self.errors[0]}")


class _Arrivals:
    """Counts connections that are done (or failed); the last one sets ``everyone`` (has a ``set()``).

    The fan-out holds every connection open until all have run their command, so all ``count`` connections
    are open at once, and the peak RSS is that of ``count`` concurrent connections.
    """

    def __init__(self, total: int, everyone: Any) -> None:
        self._left = total
        self._lock = threading.Lock()
        self.everyone = everyone

    def arrive(self) -> None:
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self.everyone.set()


def _check_echo(index: int, status: int | None, output: bytes) -> None:
    if (status, output) != (0, f"{index}\n".encode()):
        raise DataError(f"`echo {index}` gave status {status}, output {output[:100]!r}")


async def _all_on_trio(count: int, one: Callable[[int], Awaitable[None]]) -> tuple[float, float, int]:
    """Run ``one(0)`` .. ``one(count - 1)`` at once in a Trio nursery: (seconds, CPU seconds, RSS before)."""
    import trio

    baseline = _maxrss_kib()
    meter = Meter()
    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, index)
    return (*meter.stop(), baseline)


async def _all_on_asyncio(count: int, one: Callable[[int], Awaitable[None]]) -> tuple[float, float, int]:
    """The same on asyncio, with ``gather``."""
    import asyncio

    baseline = _maxrss_kib()
    meter = Meter()
    await asyncio.gather(*(one(index) for index in range(count)))
    return (*meter.stop(), baseline)


def _all_in_threads(count: int, one: Callable[[int], object]) -> tuple[float, float, int]:
    """The same with a thread each (Paramiko is thread-based: one thread per connection, plus its own)."""
    baseline = _maxrss_kib()
    meter = Meter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        list(pool.map(one, range(count)))
    return (*meter.stop(), baseline)


def _concurrent_result(job: Job, seconds: float, cpu: float, baseline_kib: int) -> Result:
    return {
        "count": job.count,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "maxrss_kib": _maxrss_kib(),
        "baseline_rss_kib": baseline_kib,
    }


# --- trissh -------------------------------------------------------------------------------------------------


def _trissh_connect(job: Job) -> Any:
    import trissh

    return trissh.connect(
        job.host,
        job.port,
        username=job.user,
        client_keys=[job.key],
        known_hosts=job.known_hosts,
        ciphers=[job.cipher] if job.cipher else None,  # None: trissh's defaults
        macs=[ETM_MAC] if job.cipher else None,
        connect_timeout=job.timeout,
    )


async def _trissh_transfer(job: Job) -> Result:
    started = time.perf_counter()
    async with _trissh_connect(job) as conn:
        connect = time.perf_counter() - started
        meter = Meter()
        if job.case == "download":
            async with conn.open_process(_download_command(job)) as proc:
                count = 0
                while chunk := await proc.stdout.receive_some():
                    count += len(chunk)
                status = await proc.wait()
        else:
            async with conn.open_process(_UPLOAD_COMMAND) as proc:
                for piece in _pieces(job.size):
                    await proc.stdin.send_all(piece)
                await proc.stdin.send_eof()
                output = b""
                while chunk := await proc.stdout.receive_some():
                    output += chunk
                status = await proc.wait()
            count = _check_count(output, job.size)
        seconds, cpu = meter.stop()
        negotiated = conn.negotiated
        ciphers = (negotiated.client_to_server.cipher, negotiated.server_to_client.cipher)
    return _transfer_result(job, count, status, seconds, cpu, connect, ciphers)


async def _trissh_handshake(job: Job) -> Result:
    timer = _Handshakes(job)
    for _ in timer.rounds():
        started = time.perf_counter()
        async with _trissh_connect(job) as conn:
            result = await conn.run("true")
            kex = conn.negotiated.kex
        _check_status("`true`", result.returncode)
        timer.record(started, kex)
    return timer.result()


async def _trissh_fanout(job: Job) -> Result:
    import trio

    failures = _Failures("connection", job.count)
    arrivals = _Arrivals(job.count, trio.Event())
    gate = trio.Semaphore(_CONNECTS_IN_FLIGHT)

    async def one(index: int) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    async with gate:
                        conn = await stack.enter_async_context(_trissh_connect(job))
                    result = await conn.run(f"echo {index}")
                    _check_echo(index, result.returncode, result.stdout)
                finally:
                    arrivals.arrive()
                await arrivals.everyone.wait()
        except Exception as exc:
            failures.add(index, exc)

    seconds, cpu, baseline = await _all_on_trio(job.count, one)
    failures.check()
    return _concurrent_result(job, seconds, cpu, baseline)


async def _trissh_channels(job: Job) -> Result:

    failures = _Failures("session", job.count)
    command = _channel_command(job.size)
    async with _trissh_connect(job) as conn:

        async def one(index: int) -> None:
            try:
                digest, count, stderr = hashlib.sha256(), 0, b""
                async with conn.open_process(command) as proc:
                    while chunk := await proc.stdout.receive_some():
                        digest.update(chunk)
                        count += len(chunk)
                    while chunk := await proc.stderr.receive_some():
                        stderr += chunk
                    _check_status(f"session {index}", await proc.wait())
                _check_hash(index, job.size, digest, count, stderr)
            except Exception as exc:
                failures.add(index, exc)

        seconds, cpu, baseline = await _all_on_trio(job.count, one)
    failures.check()
    return _concurrent_result(job, seconds, cpu, baseline)


# --- AsyncSSH -----------------------------------------------------------------------------------------------


def _asyncssh_connect(job: Job) -> Any:
    import asyncssh

    algorithms: dict[str, Any] = {}
    if job.cipher:
        algorithms = {"encryption_algs": [job.cipher], "mac_algs": [ETM_MAC]}
    return asyncssh.connect(
        job.host,
        job.port,
        username=job.user,
        client_keys=[str(job.key)],
        known_hosts=str(job.known_hosts),
        compression_algs=None,
        config=None,  # not the user's ~/.ssh/config
        agent_path=None,
        connect_timeout=job.timeout,
        login_timeout=job.timeout,
        **algorithms,
    )


async def _asyncssh_transfer(job: Job) -> Result:
    started = time.perf_counter()
    async with _asyncssh_connect(job) as conn:
        connect = time.perf_counter() - started
        meter = Meter()
        if job.case == "download":
            proc = await conn.create_process(_download_command(job), encoding=None)
            count = 0
            while chunk := await proc.stdout.read(_READ_SIZE):
                count += len(chunk)
        else:
            proc = await conn.create_process(_UPLOAD_COMMAND, encoding=None)
            for piece in _pieces(job.size):
                proc.stdin.write(piece)
                await proc.stdin.drain()
            proc.stdin.write_eof()
            count = _check_count(await proc.stdout.read(), job.size)
        status = (await proc.wait()).exit_status
        seconds, cpu = meter.stop()
        ciphers = (conn.get_extra_info("send_cipher"), conn.get_extra_info("recv_cipher"))
    return _transfer_result(job, count, status, seconds, cpu, connect, ciphers)


async def _asyncssh_handshake(job: Job) -> Result:
    import asyncssh.connection

    # AsyncSSH does not expose the negotiated key exchange; note the name it looks up instead.
    chosen: list[str] = []
    module: Any = asyncssh.connection
    get_kex = module.get_kex

    def recording_get_kex(conn: Any, alg: bytes) -> Any:
        chosen.append(alg.decode())
        return get_kex(conn, alg)

    module.get_kex = recording_get_kex
    timer = _Handshakes(job)
    for _ in timer.rounds():
        started = time.perf_counter()
        async with _asyncssh_connect(job) as conn:
            result = await conn.run("true")
        _check_status("`true`", result.exit_status)
        timer.record(started, chosen[-1] if chosen else None)
    return timer.result()


async def _asyncssh_fanout(job: Job) -> Result:
    import asyncio

    failures = _Failures("connection", job.count)
    arrivals = _Arrivals(job.count, asyncio.Event())
    gate = asyncio.Semaphore(_CONNECTS_IN_FLIGHT)

    async def one(index: int) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    async with gate:
                        conn = await stack.enter_async_context(_asyncssh_connect(job))
                    result = await conn.run(f"echo {index}", encoding=None)
                    _check_echo(index, result.exit_status, result.stdout)
                finally:
                    arrivals.arrive()
                await arrivals.everyone.wait()
        except Exception as exc:
            failures.add(index, exc)

    seconds, cpu, baseline = await _all_on_asyncio(job.count, one)
    failures.check()
    return _concurrent_result(job, seconds, cpu, baseline)


async def _asyncssh_channels(job: Job) -> Result:

    failures = _Failures("session", job.count)
    command = _channel_command(job.size)
    async with _asyncssh_connect(job) as conn:

        async def one(index: int) -> None:
            try:
                digest, count = hashlib.sha256(), 0
                proc = await conn.create_process(command, encoding=None)
                while chunk := await proc.stdout.read(_READ_SIZE):
                    digest.update(chunk)
                    count += len(chunk)
                stderr = await proc.stderr.read()
                _check_status(f"session {index}", (await proc.wait()).exit_status)
                _check_hash(index, job.size, digest, count, stderr)
            except Exception as exc:
                failures.add(index, exc)

        seconds, cpu, baseline = await _all_on_asyncio(job.count, one)
    failures.check()
    return _concurrent_result(job, seconds, cpu, baseline)


# --- Paramiko -----------------------------------------------------------------------------------------------


def _paramiko_client(job: Job) -> Any:
    """Return a connected ``paramiko.SSHClient`` (close it when done)."""
    import paramiko  # type: ignore[import-untyped,unused-ignore]

    disabled: dict[str, list[str]] = {}
    if job.cipher:
        if job.cipher not in paramiko.Transport._preferred_ciphers:
            raise Unsupported(f"paramiko {paramiko.__version__} does not implement {job.cipher}")
        disabled = {
            "ciphers": [name for name in paramiko.Transport._preferred_ciphers if name != job.cipher],
            "macs": [name for name in paramiko.Transport._preferred_macs if name != ETM_MAC],
        }
    client = paramiko.SSHClient()
    client.load_host_keys(str(job.known_hosts))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            job.host,
            job.port,
            username=job.user,
            key_filename=str(job.key),
            look_for_keys=False,
            allow_agent=False,
            timeout=job.timeout,
            banner_timeout=job.timeout,
            auth_timeout=job.timeout,
            disabled_algorithms=disabled,
        )
    except BaseException:
        client.close()
        raise
    return client


def _paramiko_exec(client: Any, job: Job, command: str) -> Any:
    channel = client.get_transport().open_session(timeout=job.timeout)
    channel.exec_command(command)
    return channel


def _paramiko_read_all(receive: Callable[[int], bytes]) -> bytes:
    output = b""
    while chunk := receive(_READ_SIZE):
        output += chunk
    return output


def _paramiko_transfer(job: Job) -> Result:
    started = time.perf_counter()
    client = _paramiko_client(job)
    try:
        connect = time.perf_counter() - started
        meter = Meter()
        if job.case == "download":
            channel = _paramiko_exec(client, job, _download_command(job))
            count = 0
            while chunk := channel.recv(_READ_SIZE):
                count += len(chunk)
        else:
            channel = _paramiko_exec(client, job, _UPLOAD_COMMAND)
            for piece in _pieces(job.size):
                channel.sendall(piece)
            channel.shutdown_write()
            count = _check_count(_paramiko_read_all(channel.recv), job.size)
        status = channel.recv_exit_status()
        seconds, cpu = meter.stop()
        transport = client.get_transport()
        ciphers = (transport.local_cipher, transport.remote_cipher)
    finally:
        client.close()
    return _transfer_result(job, count, status, seconds, cpu, connect, ciphers)


class _KexLogHandler(logging.Handler):
    """Picks the negotiated key exchange out of paramiko's debug log ("Kex: <name>")."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.kex: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if match := re.match(r"Kex: (\S+)", record.getMessage()):
            self.kex = match[1]


def _paramiko_handshake(job: Job) -> Result:
    # Paramiko does not keep the negotiated key exchange; it logs it at DEBUG level. Listen only during the
    # cold (untimed for the median) connection, so the logging costs nothing afterwards.
    logger = logging.getLogger("paramiko.transport")
    handler = _KexLogHandler()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    timer = _Handshakes(job)
    for index in timer.rounds():
        started = time.perf_counter()
        client = _paramiko_client(job)
        try:
            channel = _paramiko_exec(client, job, "true")
            status = channel.recv_exit_status()
        finally:
            client.close()
        _check_status("`true`", status)
        timer.record(started, handler.kex)
        if index == 0:
            logger.removeHandler(handler)
            logger.setLevel(level)
    return timer.result()


def _paramiko_fanout(job: Job) -> Result:
    failures = _Failures("connection", job.count)
    arrivals = _Arrivals(job.count, threading.Event())
    gate = threading.Semaphore(_CONNECTS_IN_FLIGHT)

    def one(index: int) -> None:
        client = None
        try:
            try:
                with gate:
                    client = _paramiko_client(job)
                channel = _paramiko_exec(client, job, f"echo {index}")
                output = _paramiko_read_all(channel.recv)
                _check_echo(index, channel.recv_exit_status(), output)
            finally:
                arrivals.arrive()
            arrivals.everyone.wait()
        except Exception as exc:
            failures.add(index, exc)
        finally:
            if client is not None:
                client.close()

    seconds, cpu, baseline = _all_in_threads(job.count, one)
    failures.check()
    return _concurrent_result(job, seconds, cpu, baseline)


def _paramiko_channels(job: Job) -> Result:
    failures = _Failures("session", job.count)
    command = _channel_command(job.size)
    client = _paramiko_client(job)
    try:

        def one(index: int) -> None:
            try:
                channel = _paramiko_exec(client, job, command)
                digest, count = hashlib.sha256(), 0
                while chunk := channel.recv(_READ_SIZE):
                    digest.update(chunk)
                    count += len(chunk)
                stderr = _paramiko_read_all(channel.recv_stderr)
                _check_status(f"session {index}", channel.recv_exit_status())
                channel.close()
                _check_hash(index, job.size, digest, count, stderr)
            except Exception as exc:
                failures.add(index, exc)

        seconds, cpu, baseline = _all_in_threads(job.count, one)
    finally:
        client.close()
    failures.check()
    return _concurrent_result(job, seconds, cpu, baseline)


# --- OpenSSH's ssh ------------------------------------------------------------------------------------------


def _ssh_argv(job: Job, *options: str, command: str) -> list[str]:
    """``SSHServer.ssh_command()`` with ``options`` before the destination and ``command`` after it."""
    *base, destination = job.ssh_argv
    return [*base, *options, destination, command]


def _ssh_log(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")


def _ssh_failed(what: str, status: int, log: str) -> DataError:
    tail = [line for line in log.splitlines() if not line.startswith("debug")][-5:]
    return DataError(f"{what}: ssh exited with status {status}: {' | '.join(tail) or '(no message)'}")


def _ssh_transfer(job: Job) -> Result:
    assert job.cipher is not None
    options = ("-v", "-c", job.cipher, "-m", ETM_MAC, "-o", "Compression=no")
    download = job.case == "download"
    command = _download_command(job) if download else _UPLOAD_COMMAND
    argv = _ssh_argv(job, *options, command=command)
    with tempfile.TemporaryFile() as log:
        # ssh's own CPU time only: the reading/writing loop here is the harness, in RUSAGE_SELF.
        meter = Meter(resource.RUSAGE_CHILDREN)
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL if download else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            bufsize=0,
        )
        assert proc.stdout is not None
        if download:
            fd = proc.stdout.fileno()
            try:
                import fcntl

                fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)
            except OSError:
                pass  # an older kernel or a lower limit: the default size works, a little slower
            buffer = bytearray(_CHUNK)
            count = 0
            while received := os.readv(fd, [buffer]):
                count += received
        else:
            assert proc.stdin is not None
            fd = proc.stdin.fileno()
            for piece in _pieces(job.size):
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view) :]
            proc.stdin.close()
            count = _check_count(proc.stdout.read(), job.size)
        status = proc.wait()
        seconds, cpu = meter.stop()
        text = _ssh_log(log)
    if status != 0:
        raise _ssh_failed(command, status, text)
    ciphers = [re.search(rf"kex: {way} cipher: (\S+)", text) for way in ("client->server", "server->client")]
    names = [match[1] if match else "?" for match in ciphers]
    return _transfer_result(job, count, status, seconds, cpu, None, names)


def _ssh_handshake(job: Job) -> Result:
    timer = _Handshakes(job, resource.RUSAGE_CHILDREN)
    for index in timer.rounds():
        # The cold run also asks for ssh's debug log, for the negotiated key exchange.
        argv = _ssh_argv(job, *(["-v"] if index == 0 else []), command="true")
        started = time.perf_counter()
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
        log = proc.stderr.decode(errors="replace")
        if proc.returncode != 0:
            raise _ssh_failed("`true`", proc.returncode, log)
        match = re.search(r"kex: algorithm: (\S+)", log)
        timer.record(started, match[1] if match else None)
    return timer.result()


def _ssh_not_comparable(job: Job) -> Result:
    raise Unsupported(f"the {job.case} case is not run for the ssh client")


# --- command: each client's command line, a whole process ---------------------------------------------------

# A minimal AsyncSSH client for `host true`, as a user would write it, run with `python -c`. Its options are
# the handshake case's (no ~/.ssh/config, no agent), as `ssh -F none -o IdentitiesOnly=yes` has them too.
_ASYNCSSH_COMMAND: Final = """\
import asyncio, sys
import asyncssh

async def main(host, port, user, key, known_hosts, command):
    async with asyncssh.connect(
        host, int(port), username=user, client_keys=[key], known_hosts=known_hosts,
        config=None, agent_path=None,
    ) as conn:
        return (await conn.run(command)).exit_status

sys.exit(asyncio.run(main(*sys.argv[1:])))
"""


def _trissh_command_line() -> list[str]:
    """trissh's command line: the ``trissh`` entry point beside this interpreter, else ``python -m``."""
    script = Path(sys.executable).with_name("trissh")
    return [str(script)] if script.exists() else [sys.executable, "-m", "trissh.cli"]


def _command_argv(job: Job, command: str) -> list[str]:
    if job.client == "trissh":
        return [
            *_trissh_command_line(),
            "-p", str(job.port), "-i", str(job.key), "--known-hosts", str(job.known_hosts), "--batch", "-n",
            f"{job.user}@{job.host}", command,
        ]  # fmt: skip
    if job.client == "asyncssh":
        return [
            sys.executable, "-c", _ASYNCSSH_COMMAND,
            job.host, str(job.port), job.user, str(job.key), str(job.known_hosts), command,
        ]  # fmt: skip
    return _ssh_argv(job, command=command)


def _command(job: Job) -> Result:
    """Run the client's command line ``count`` times, each a fresh process; wall and CPU of each."""
    argv = _command_argv(job, "true")
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(job.count):
        meter = Meter(resource.RUSAGE_CHILDREN)
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, check=False, timeout=job.timeout
        )
        wall, cpu = meter.stop()
        if proc.returncode != 0:
            lines = proc.stderr.decode(errors="replace").strip().splitlines()[-3:]
            tail = " | ".join(lines) or "(no message)"
            raise DataError(f"{job.client}'s `true` exited with status {proc.returncode}: {tail}")
        walls.append(wall)
        cpus.append(cpu)
    return {
        "times": walls,
        "cpu_times": cpus,
        "median": statistics.median(walls),
        "cpu_median": statistics.median(cpus),
        "count": len(walls),
    }


def _no_command_line(job: Job) -> Result:
    raise Unsupported(f"{job.client} has no command-line client")


# --- dispatch -----------------------------------------------------------------------------------------------


def _on_trio(function: Callable[[Job], Awaitable[Result]]) -> Callable[[Job], Result]:
    def run(job: Job) -> Result:
        import trio

        return trio.run(function, job)

    return run


def _on_asyncio(function: Callable[[Job], Awaitable[Result]]) -> Callable[[Job], Result]:
    def run(job: Job) -> Result:
        import asyncio

        async def main() -> Result:
            return await function(job)

        return asyncio.run(main())

    return run


_RUNNERS: Final[dict[tuple[str, str], Callable[[Job], Result]]] = {
    ("trissh", "download"): _on_trio(_trissh_transfer),
    ("trissh", "upload"): _on_trio(_trissh_transfer),
    ("trissh", "handshake"): _on_trio(_trissh_handshake),
    ("trissh", "fanout"): _on_trio(_trissh_fanout),
    ("trissh", "channels"): _on_trio(_trissh_channels),
    ("asyncssh", "download"): _on_asyncio(_asyncssh_transfer),
    ("asyncssh", "upload"): _on_asyncio(_asyncssh_transfer),
    ("asyncssh", "handshake"): _on_asyncio(_asyncssh_handshake),
    ("asyncssh", "fanout"): _on_asyncio(_asyncssh_fanout),
    ("asyncssh", "channels"): _on_asyncio(_asyncssh_channels),
    ("paramiko", "download"): _paramiko_transfer,
    ("paramiko", "upload"): _paramiko_transfer,
    ("paramiko", "handshake"): _paramiko_handshake,
    ("paramiko", "fanout"): _paramiko_fanout,
    ("paramiko", "channels"): _paramiko_channels,
    ("ssh", "download"): _ssh_transfer,
    ("ssh", "upload"): _ssh_transfer,
    ("ssh", "handshake"): _ssh_handshake,
    ("ssh", "fanout"): _ssh_not_comparable,
    ("ssh", "channels"): _ssh_not_comparable,
    ("trissh", "command"): _command,
    ("asyncssh", "command"): _command,
    ("paramiko", "command"): _no_command_line,
    ("ssh", "command"): _command,
}


def _describe(exc: BaseException) -> str:
    """One line naming the error: the first leaf of an exception group, its type and message."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    message = str(exc).strip().replace("\n", " | ")
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _raise_file_limit() -> None:
    """Fan-out needs a descriptor per connection (and paramiko a few): lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _parse(argv: list[str] | None) -> Job:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--client", required=True, choices=CLIENTS)
    parser.add_argument("--case", required=True, choices=CASES)
    parser.add_argument("--variant", default="")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--user", required=True)
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--known-hosts", required=True, type=Path)
    parser.add_argument("--ssh-argv", required=True, type=json.loads, help="JSON list: ssh_command()")
    parser.add_argument("--size", type=int, default=0, help="bytes per transfer or per channel")
    parser.add_argument("--count", type=int, default=1, help="handshakes, connections or channels")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--spawned-at", type=float, default=None, help="time.time() at spawn")
    args = parser.parse_args(argv)
    return Job(
        client=args.client,
        case=args.case,
        variant=args.variant,
        host=args.host,
        port=args.port,
        user=args.user,
        key=args.key,
        known_hosts=args.known_hosts,
        ssh_argv=list(args.ssh_argv),
        size=args.size,
        count=args.count,
        timeout=args.timeout,
        spawned_at=args.spawned_at if args.spawned_at is not None else time.time(),
    )


def main(argv: list[str] | None = None, runners: Mapping[tuple[str, str], Any] = _RUNNERS) -> int:
    """Run one job (``runners`` by client and case: benchmarks.forward has its own); print its JSON line."""
    job = _parse(argv)
    _raise_file_limit()
    try:
        outcome: Result = {"status": "ok", "result": runners[job.client, job.case](job)}
    except Unsupported as exc:
        outcome = {"status": "unsupported", "reason": str(exc)}
    except Exception as exc:
        traceback.print_exc()
        outcome = {"status": "failed", "error": _describe(exc)}
    print(json.dumps(outcome), flush=True)
    return 1 if outcome["status"] == "failed" else 0


if __name__ == "__main__":
    sys.exit(main())
