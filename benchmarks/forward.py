"""The TCP forwarding cases for one client, in a process of its own: ``forward`` and ``streams``.

Usage: as :mod:`benchmarks.worker` (the orchestrator builds the same command line), plus the port of the
sink it started (:mod:`benchmarks.endpoints`)::

    python -m benchmarks.forward --sink-port 40124 --client trissh --case forward --variant download ...

Theory of operation
-------------------
``forward`` measures a local port forward, as users run one: app -> the client's forward listener on
127.0.0.1 -> SSH -> sshd -> the sink. The app is a process of its own (``benchmarks.endpoints app``), started
first so that it prepares its data while the client connects; once the forward listens, the meter starts,
the app is told the port, and the meter stops when the app reports its checked result (byte count and
sha256). The figures are the client's alone: its CPU while the transfer runs (``RUSAGE_SELF`` for a Python
client; for ``ssh -N -L``, the ssh process's own ``/proc/<pid>/schedstat``, so its connect is not counted),
and the app's CPU is reported for the orchestrator to take out of the whole-process figure.

``streams`` opens many direct-tcpip streams at once on one connection, as a library user does in-process
(trissh ``open_tcp_stream``, AsyncSSH ``open_connection``, Paramiko ``open_channel("direct-tcpip")``); each
sends its data to the sink, which replies with the count and sha256 it received.

Every client uses the cipher :data:`benchmarks.FORWARD_CIPHERS` names, and the negotiated one is checked.
This module owns only the forwarding; connecting, measuring and reporting are :mod:`benchmarks.worker`'s.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import IO, Any, Final

from benchmarks import ETM_MAC, worker
from benchmarks.endpoints import put_request, read_reply
from benchmarks.worker import (
    DataError,
    Job,
    Result,
    Unsupported,
    _all_in_threads,
    _all_on_asyncio,
    _all_on_trio,
    _asyncssh_connect,
    _concurrent_result,
    _cpu_seconds,
    _Failures,
    _on_asyncio,
    _on_trio,
    _paramiko_client,
    _paramiko_read_all,
    _ssh_failed,
    _ssh_log,
    _trissh_connect,
)

__all__ = ["main"]

#: Where the sink listens (the orchestrator starts it there); sshd connects to it.
SINK_HOST: Final = "127.0.0.1"
# ssh -v logs this once its forwards listen and it waits for connections.
_SSH_READY: Final = b"Entering interactive session"
# How often to look at ssh's log while it connects.
_POLL_SECONDS: Final = 0.005


def _check_cipher(job: Job, ciphers: Sequence[Any]) -> None:
    if list(ciphers) != [job.cipher, job.cipher]:
        raise DataError(f"asked for cipher {job.cipher} but negotiated {list(ciphers)} (out, in)")


def _self_cpu() -> float:
    return _cpu_seconds(resource.RUSAGE_SELF)


def _task_cpu(pid: int) -> float:
    """CPU seconds of the (single-threaded) process ``pid`` so far, from ``/proc`` (nanoseconds)."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as schedstat:
            return int(schedstat.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):  # no schedstat: clock ticks (10 ms) from /proc/<pid>/stat
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _App:
    """The app process at the far side of the forward listener (``benchmarks.endpoints app``)."""

    def __init__(self, job: Job) -> None:
        self._job = job
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.endpoints", "app", job.variant, str(job.size)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, port: int, cpu: Callable[[], float]) -> Result:
        """Wait until the app is ready, then time its transfer through ``port``; ``cpu`` is the client's."""
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        if (line := proc.stdout.readline().strip()) != "ready":
            raise DataError(f"the app did not start: {line!r}, status {proc.poll()}")
        started, cpu_before = time.perf_counter(), cpu()
        proc.stdin.write(f"go {port}\n")
        proc.stdin.flush()
        line = proc.stdout.readline()
        seconds, cpu_seconds = time.perf_counter() - started, cpu() - cpu_before
        proc.wait(self._job.timeout)
        try:
            outcome = json.loads(line)
        except json.JSONDecodeError:
            raise DataError(f"the app printed {line[:200]!r}, status {proc.returncode}") from None
        if "error" in outcome:
            raise DataError(f"the app: {outcome['error']}")
        if outcome["bytes"] != self._job.size:
            raise DataError(f"the app moved {outcome['bytes']} bytes, not {self._job.size}")
        return {
            "bytes": outcome["bytes"],
            "sha256": outcome["sha256"],
            "seconds": seconds,
            "cpu_seconds": cpu_seconds,
            "app_cpu_seconds": outcome["cpu_seconds"],
        }

    def close(self) -> None:
        """Stop the app if it is still running (the transfer failed)."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        for pipe in (self._proc.stdin, self._proc.stdout):
            if pipe is not None:
                pipe.close()


# --- forward: a local port forward --------------------------------------------------------------------------


async def _trissh_forward(job: Job, sink_port: int) -> Result:
    import trio

    app = _App(job)  # it prepares its data while we connect
    try:
        async with _trissh_connect(job) as conn:
            negotiated = conn.negotiated
            _check_cipher(job, (negotiated.client_to_server.cipher, negotiated.server_to_client.cipher))
            async with conn.forward_local_port("127.0.0.1", 0, SINK_HOST, sink_port) as listener:
                return await trio.to_thread.run_sync(app.run, listener.port, _self_cpu)
    finally:
        app.close()


async def _asyncssh_forward(job: Job, sink_port: int) -> Result:
    import asyncio

    app = _App(job)
    try:
        async with _asyncssh_connect(job) as conn:
            _check_cipher(job, (conn.get_extra_info("send_cipher"), conn.get_extra_info("recv_cipher")))
            listener = await conn.forward_local_port("127.0.0.1", 0, SINK_HOST, sink_port)
            try:
                return await asyncio.to_thread(app.run, listener.get_port(), _self_cpu)
            finally:
                listener.close()
                await listener.wait_closed()
    finally:
        app.close()


def _free_port() -> int:
    # ssh -L with port 0 does not say which port it bound; take a free one (ExitOnForwardFailure if it is
    # taken in between).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _wait_until_ready(proc: subprocess.Popen[bytes], log: IO[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _SSH_READY not in os.pread(log.fileno(), 1 << 20, 0):  # pread: ssh shares the file's offset
        if proc.poll() is not None:
            raise _ssh_failed("ssh -N -L", proc.returncode, _ssh_log(log))
        if time.monotonic() > deadline:
            raise DataError(f"ssh -N -L did not listen within {timeout:g} s")
        time.sleep(_POLL_SECONDS)


def _ssh_forward(job: Job, sink_port: int) -> Result:
    assert job.cipher is not None
    app = _App(job)
    port = _free_port()
    *base, destination = job.ssh_argv
    argv = [
        *base, "-v", "-N", "-c", job.cipher, "-m", ETM_MAC, "-o", "Compression=no",
        "-o", "ExitOnForwardFailure=yes", "-L", f"127.0.0.1:{port}:{SINK_HOST}:{sink_port}", destination,
    ]  # fmt: skip
    try:
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
            try:
                _wait_until_ready(proc, log, job.timeout)
                result = app.run(port, functools.partial(_task_cpu, proc.pid))
            finally:
                proc.terminate()
                proc.wait()
            text = _ssh_log(log)
    finally:
        app.close()
    names = []
    for way in ("client->server", "server->client"):
        line = next((line for line in text.splitlines() if f"kex: {way} cipher:" in line), "")
        names.append(line.split("cipher:")[1].split()[0] if line else "?")
    _check_cipher(job, names)
    return result


# --- streams: many direct-tcpip streams on one connection ---------------------------------------------------


def _stream_data(job: Job) -> tuple[bytes, str]:
    data = os.urandom(job.size)
    return data, hashlib.sha256(data).hexdigest()


def _check_reply(index: int, reply: bytes, size: int, expected: str) -> None:
    try:
        count, digest = read_reply(reply)
    except ValueError:
        raise DataError(f"stream {index}: the sink replied {reply[:100]!r}") from None
    if (count, digest) != (size, expected):
        raise DataError(f"stream {index}: the sink got {count} bytes with sha256 {digest}, not {size}")


async def _trissh_streams(job: Job, sink_port: int) -> Result:

    failures = _Failures("stream", job.count)
    data, expected = _stream_data(job)
    async with _trissh_connect(job) as conn:

        async def one(index: int) -> None:
            try:
                reply = b""
                async with await conn.open_tcp_stream(SINK_HOST, sink_port) as stream:
                    await stream.send_all(put_request(job.size))
                    await stream.send_all(data)
                    while chunk := await stream.receive_some():
                        reply += chunk
                _check_reply(index, reply, job.size, expected)
            except Exception as exc:
                failures.add(index, exc)

        seconds, cpu, baseline = await _all_on_trio(job.count, one)
    failures.check()
    return _concurrent_result(job, seconds, cpu, baseline)


async def _asyncssh_streams(job: Job, sink_port: int) -> Result:

    failures = _Failures("stream", job.count)
    data, expected = _stream_data(job)
    async with _asyncssh_connect(job) as conn:

        async def one(index: int) -> None:
            try:
                reader, writer = await conn.open_connection(SINK_HOST, sink_port)
                writer.write(put_request(job.size))
                writer.write(data)
                await writer.drain()
                reply = await reader.read()
                writer.close()
                _check_reply(index, reply, job.size, expected)
            except Exception as exc:
                failures.add(index, exc)

        seconds, cpu, baseline = await _all_on_asyncio(job.count, one)
    failures.check()
    return _concurrent_result(job, seconds, cpu, baseline)


def _paramiko_streams(job: Job, sink_port: int) -> Result:
    failures = _Failures("stream", job.count)
    data, expected = _stream_data(job)
    client = _paramiko_client(job)
    try:
        transport = client.get_transport()

        def one(index: int) -> None:
            try:
                channel = transport.open_channel(
                    "direct-tcpip", (SINK_HOST, sink_port), ("127.0.0.1", 0), timeout=job.timeout
                )
                with contextlib.closing(channel):
                    channel.sendall(put_request(job.size))
                    channel.sendall(data)
                    reply = _paramiko_read_all(channel.recv)
                _check_reply(index, reply, job.size, expected)
            except Exception as exc:
                failures.add(index, exc)

        seconds, cpu, baseline = _all_in_threads(job.count, one)
        _check_cipher(job, (transport.local_cipher, transport.remote_cipher))
    finally:
        client.close()
    failures.check()
    return _concurrent_result(job, seconds, cpu, baseline)


def _not_comparable(job: Job, sink_port: int) -> Result:
    raise Unsupported(f"the {job.case} case is not run for the {job.client} client")


# --- dispatch -----------------------------------------------------------------------------------------------


def _runners(sink_port: int) -> dict[tuple[str, str], Callable[[Job], Result]]:
    def bind(function: Callable[[Job, int], Any]) -> Callable[[Job], Any]:
        return functools.partial(function, sink_port=sink_port)

    return {
        ("trissh", "forward"): _on_trio(bind(_trissh_forward)),
        ("trissh", "streams"): _on_trio(bind(_trissh_streams)),
        ("asyncssh", "forward"): _on_asyncio(bind(_asyncssh_forward)),
        ("asyncssh", "streams"): _on_asyncio(bind(_asyncssh_streams)),
        ("paramiko", "forward"): bind(_not_comparable),
        ("paramiko", "streams"): bind(_paramiko_streams),
        ("ssh", "forward"): bind(_ssh_forward),
        ("ssh", "streams"): bind(_not_comparable),
    }


def main(argv: list[str] | None = None) -> int:
    """Run one forwarding job (:func:`benchmarks.worker.main` with these cases); return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.forward", add_help=False)
    parser.add_argument("--sink-port", type=int, required=True)
    known, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return worker.main(rest, _runners(known.sink_port))


if __name__ == "__main__":
    sys.exit(main())
