"""One command on many hosts: trissh's run_on_hosts against AsyncSSH and parallel-ssh.

    python -m benchmarks.fanout_hosts [--hosts 500] [--limit 100] [--rounds 3]

One throwaway sshd (:func:`trissh.testing.start_sshd`, ``MaxStartups``/``MaxSessions`` raised) plays every
"host": each client makes ``--hosts`` connections to it, each running ``echo``, at most ``--limit`` at
once, and checks every host's output and exit status. Each measurement is a fresh worker process (this
module with ``--worker``); rounds are interleaved (trissh, asyncssh, pssh, trissh, ...) so that a busy
moment of the machine is shared out; the table shows the median of the rounds.

* trissh: ``trissh.fanout.run_on_hosts(hosts, "echo ...", limit=N)``;
* AsyncSSH: ``asyncio.gather`` over the hosts, each under an ``asyncio.Semaphore(N)`` (the idiomatic way);
* parallel-ssh: ``ParallelSSHClient(hosts, pool_size=N)``, ``run_command`` + ``join`` (skipped when not
  installed: ``pip install parallel-ssh``). It does not check host keys (libssh2 has no known_hosts
  check by default); the others do, against the server's known_hosts.

Client CPU is the worker's user + system time over the same span (the sshd's is not counted: on a
2-core machine the server's per-connection fork, key exchange and login dominate the wall time).
Wall time is the worker's own, from before the first connection to after the last result (imports and
interpreter start-up excluded). Peak RSS is the worker's high-water mark (``VmHWM``; on Linux
``ru_maxrss`` would start at the parent's peak after ``fork`` + ``exec``, see benchmarks/worker.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

COMMAND: Final = "echo fanout"
EXPECTED: Final = b"fanout\n"
CLIENTS: Final = ("trissh", "asyncssh", "pssh")
SSHD_CONFIG: Final = ["MaxStartups 2000:30:4000", "MaxSessions 1000"]
# A worker that takes longer than this has hung (500 echo commands take seconds).
WORKER_TIMEOUT: Final = 600


def _peak_rss_kib() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _check(outcomes: list[tuple[int | None, bytes]], count: int, client: str) -> None:
    """Every host answered, exited 0 and printed what ``echo`` prints."""
    bad = [(status, out) for status, out in outcomes if status != 0 or out != EXPECTED]
    if len(outcomes) != count or bad:
        raise SystemExit(f"{client}: {len(outcomes)} results for {count} hosts, {len(bad)} wrong: {bad[:3]}")


# --- workers: each runs in a fresh process and prints one JSON line ----------------------------------------


def _trissh(spec: dict[str, Any]) -> float:
    import trio

    import trissh
    from trissh.fanout import run_on_hosts  # trissh.run_on_hosts once trissh/__init__.py exports it

    async def main() -> float:
        hosts = [f"{spec['host']}:{spec['port']}"] * spec["count"]
        outcomes: list[tuple[int | None, bytes]] = []
        start = time.perf_counter()
        async with run_on_hosts(
            hosts,
            COMMAND,
            limit=spec["limit"],
            username=spec["user"],
            client_keys=[spec["key"]],
            known_hosts=spec["known_hosts"],
            agent_path=None,
        ) as results:
            async for _, result in results:
                if isinstance(result, trissh.SSHError):
                    raise SystemExit(f"trissh: {result}")
                outcomes.append((result.returncode, result.stdout))
        seconds = time.perf_counter() - start
        _check(outcomes, spec["count"], "trissh")
        return seconds

    return trio.run(main)


def _asyncssh(spec: dict[str, Any]) -> float:
    import asyncio

    import asyncssh

    async def main() -> float:
        gate = asyncio.Semaphore(spec["limit"])

        async def one() -> tuple[int | None, bytes]:
            async with gate:
                async with asyncssh.connect(
                    spec["host"],
                    spec["port"],
                    username=spec["user"],
                    client_keys=[spec["key"]],
                    known_hosts=spec["known_hosts"],
                    agent_path=None,
                    config=None,
                ) as conn:
                    result = await conn.run(COMMAND, encoding=None)
                    stdout = result.stdout
                    return result.exit_status, stdout if isinstance(stdout, bytes) else b""

        start = time.perf_counter()
        outcomes = await asyncio.gather(*(one() for _ in range(spec["count"])))
        seconds = time.perf_counter() - start
        _check(list(outcomes), spec["count"], "asyncssh")
        return seconds

    return asyncio.run(main())


def _pssh(spec: dict[str, Any]) -> float:
    import importlib

    # Untyped (no py.typed): as Any, so that mypy --strict passes whether or not it is installed.
    ParallelSSHClient: Any = importlib.import_module("pssh.clients").ParallelSSHClient

    start = time.perf_counter()
    client = ParallelSSHClient(
        [spec["host"]] * spec["count"],
        port=spec["port"],
        user=spec["user"],
        pkey=spec["key"],
        pool_size=spec["limit"],
        num_retries=1,
    )
    output = client.run_command(COMMAND, stop_on_errors=True)
    client.join(output)
    outcomes = []
    for host_output in output:
        # Output first: pssh sets exit_code once the channel is drained (it may read None before).
        stdout = "".join(f"{line}\n" for line in host_output.stdout or ()).encode()
        outcomes.append((host_output.exit_code, stdout))
    seconds = time.perf_counter() - start
    _check(outcomes, spec["count"], "pssh")
    return seconds


WORKERS: Final[dict[str, Callable[[dict[str, Any]], float]]] = {
    "trissh": _trissh,
    "asyncssh": _asyncssh,
    "pssh": _pssh,
}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _worker(client: str, spec_json: str) -> int:
    cpu = _cpu_seconds()
    seconds = WORKERS[client](json.loads(spec_json))
    figures = {"seconds": seconds, "cpu_seconds": _cpu_seconds() - cpu, "peak_rss_kib": _peak_rss_kib()}
    print(json.dumps(figures))
    return 0


# --- the orchestrator ------------------------------------------------------------------------------------


def _available(client: str) -> bool:
    module = {"trissh": "trissh", "asyncssh": "asyncssh", "pssh": "pssh.clients"}[client]
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, check=False)
    return done.returncode == 0


def _measure(client: str, spec: dict[str, Any]) -> dict[str, float]:
    argv = [sys.executable, "-m", "benchmarks.fanout_hosts", "--worker", client, json.dumps(spec)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=WORKER_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{client} worker failed ({done.returncode}):\n{done.stderr[-3000:]}{done.stdout}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fanout_hosts", description=__doc__)
    parser.add_argument("--hosts", type=int, default=500, help="connections (hosts) per client")
    parser.add_argument("--limit", type=int, default=100, help="connections at once, the same for all")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help="comma-separated, of " + ",".join(CLIENTS)
    )
    parser.add_argument("--worker", nargs=2, metavar=("CLIENT", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(*args.worker)

    from trissh.testing import start_sshd

    clients = [name for name in args.clients.split(",") if name]
    missing = [name for name in clients if not _available(name)]
    for name in missing:
        print(f"skipping {name}: not installed", file=sys.stderr)
    clients = [name for name in clients if name not in missing]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in clients}
    with start_sshd(extra_config=SSHD_CONFIG) as server:
        spec = {
            "host": server.host,
            "port": server.port,
            "user": server.username,
            "key": str(server.client_key),
            "known_hosts": str(server.known_hosts),
            "count": args.hosts,
            "limit": args.limit,
        }
        for round_no in range(1, args.rounds + 1):
            for name in clients:  # interleaved: one of each per round
                figures = _measure(name, spec)
                results[name].append(figures)
                print(
                    f"round {round_no} {name}: {figures['seconds']:.2f} s, "
                    f"client CPU {figures['cpu_seconds']:.2f} s, {figures['peak_rss_kib'] / 1024:.1f} MiB",
                    file=sys.stderr,
                )
    rows = [
        ("client", "wall s (median)", "client CPU s (median)", "peak RSS MiB (median)", "rounds (wall s)")
    ]
    for name in clients:
        runs = results[name]
        rows.append(
            (
                name,
                f"{statistics.median(r['seconds'] for r in runs):.2f}",
                f"{statistics.median(r['cpu_seconds'] for r in runs):.2f}",
                f"{statistics.median(r['peak_rss_kib'] for r in runs) / 1024:.1f}",
                " ".join(f"{r['seconds']:.2f}" for r in runs),
            )
        )
    print(f"{args.hosts} hosts (connections to one local sshd), `{COMMAND}` on each, limit {args.limit}:")
    print(_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
