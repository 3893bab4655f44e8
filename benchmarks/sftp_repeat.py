"""SFTP transfers repeated on one connection, for comparing two versions of the code when the machine is
too noisy for ``scripts/bench``'s fresh-process rounds: the best CPU seconds per GiB over the repetitions
(the least disturbed run) and the median throughput.

Usage::

    python -m benchmarks.sftp_repeat trissh|asyncssh get|put [--repeat N] [--mib M]

A throwaway sshd, aes128-gcm, a file of M MiB (default 256) on /dev/shm. To compare code versions, run
it alternately with ``PYTHONPATH`` pointing at each checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable

import trio

import trissh
from trissh.testing import SSHServer, start_sshd

__all__ = ["main"]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _timed(transfer: Callable[[], Awaitable[None]], size: int) -> tuple[float, float]:
    cpu, wall = _cpu(), time.perf_counter()
    await transfer()
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    return size / wall / 1e6, cpu * (1 << 30) / size


async def _trissh(
    server: SSHServer, mode: str, source: str, target: str, repeat: int, size: int
) -> list[tuple[float, float]]:
    async with (
        trissh.connect(
            server.host,
            server.port,
            username=server.username,
            client_keys=[server.client_key],
            known_hosts=server.known_hosts,
            agent_path=None,
            ciphers=["aes128-gcm@openssh.com"],
            config=None,
        ) as conn,
        conn.open_sftp() as sftp,
    ):
        return await _repeat(sftp, mode, source, target, repeat, size)


async def _asyncssh(
    server: SSHServer, mode: str, source: str, target: str, repeat: int, size: int
) -> list[tuple[float, float]]:
    import asyncssh

    async with (
        asyncssh.connect(
            server.host,
            port=server.port,
            username=server.username,
            client_keys=[str(server.client_key)],
            known_hosts=str(server.known_hosts),
            agent_path=None,
            encryption_algs=["aes128-gcm@openssh.com"],
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        return await _repeat(sftp, mode, source, target, repeat, size)


async def _repeat(
    sftp: object, mode: str, source: str, target: str, repeat: int, size: int
) -> list[tuple[float, float]]:
    """``repeat`` timed transfers, a fresh target each time; ``sftp.get`` or ``.put`` in either client."""
    results = []
    for _ in range(repeat):
        if os.path.exists(target):
            os.remove(target)
        results.append(await _timed(lambda: getattr(sftp, mode)(source, target), size))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("client", choices=["trissh", "asyncssh"])
    parser.add_argument("mode", choices=["get", "put"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mib", type=int, default=256)
    args = parser.parse_args()
    size = args.mib << 20
    with (
        tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp,
        start_sshd() as server,
    ):
        source, target = os.path.join(tmp, "source"), os.path.join(tmp, "target")
        with open(source, "wb") as f:
            f.write(os.urandom(size))
        if args.client == "trissh":
            results = trio.run(_trissh, server, args.mode, source, target, args.repeat, size)
        else:
            results = asyncio.run(_asyncssh(server, args.mode, source, target, args.repeat, size))
    rates, cpus = zip(*results, strict=True)
    rate, cpu = statistics.median(rates), min(cpus)
    print(f"{args.client} {args.mode}: median {rate:.0f} MB/s, best {cpu:.2f} CPU s/GiB")


if __name__ == "__main__":
    main()
