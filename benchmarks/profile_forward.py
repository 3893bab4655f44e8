"""Where trissh's time goes in a forwarded transfer: one ``forward_local_port`` transfer, profiled.

Usage::

    python -m benchmarks.profile_forward [download|upload] [--mib N] [--profile]

A throwaway sshd, the benchmark's sink (:mod:`benchmarks.endpoints`, a process of its own) and app (another)
at either end of one local forward forced to aes128-gcm; prints the transfer's MB/s and trissh's own CPU
seconds per GiB (the app's and the sink's are theirs), and with ``--profile`` the top of a cProfile of the
transfer. Figures from one run are noisy on a shared machine: compare runs interleaved.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import time

import trio

import trissh
from benchmarks.endpoints import BLOCK
from trissh.testing import start_sshd

__all__ = ["main"]


async def _transfer(direction: str, size: int, profile: bool) -> None:
    sink = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.endpoints", "sink"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert sink.stdout is not None
        sink_port = int(sink.stdout.readline())
        with start_sshd() as server:
            async with (
                trissh.connect(
                    server.host,
                    server.port,
                    username=server.username,
                    client_keys=[server.client_key],
                    known_hosts=server.known_hosts,
                    agent_path=None,
                    ciphers=["aes128-gcm@openssh.com"],
                ) as conn,
                conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", sink_port) as forward,
            ):
                app = await trio.lowlevel.open_process(
                    [sys.executable, "-m", "benchmarks.endpoints", "app", direction, str(size)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
                assert app.stdin is not None and app.stdout is not None
                assert (await app.stdout.receive_some()).strip() == b"ready"
                profiler = cProfile.Profile()
                cpu, wall = time.process_time(), time.perf_counter()
                if profile:
                    profiler.enable()
                await app.stdin.send_all(f"go {forward.port}\n".encode())
                reply = b""
                while chunk := await app.stdout.receive_some():
                    reply += chunk
                profiler.disable()
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                await app.wait()
        print(reply.decode().strip())
        print(f"{direction} {size / 1e6 / wall:.0f} MB/s, trissh {cpu / (size / (1 << 30)):.2f} CPU s/GiB")
        if profile:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    finally:
        sink.kill()
        sink.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_forward", description=__doc__)
    parser.add_argument("direction", nargs="?", default="download", choices=("download", "upload"))
    parser.add_argument("--mib", type=int, default=512, help="MiB to move (default 512)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the transfer")
    args = parser.parse_args(argv)
    size = args.mib << 20
    if size % BLOCK:
        parser.error("--mib must be a whole number of MiB")
    trio.run(_transfer, args.direction, size, args.profile)


if __name__ == "__main__":
    main()
