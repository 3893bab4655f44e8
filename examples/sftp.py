"""Mirror a directory to a server and back over SFTP, with a progress line per file.

Usage::

    python examples/sftp.py LOCAL_DIR                         # against a throwaway local sshd
    python examples/sftp.py LOCAL_DIR user@host[:port] REMOTE_DIR

The first form starts OpenSSH's sshd on 127.0.0.1 (it must be installed) and uses a temporary
directory as the "remote" side. Either way the directory goes up with ``put(recursive=True,
preserve=True)``, comes back with ``get`` into ``LOCAL_DIR.mirrored``, and the two local trees are
compared file by file. Progress goes to stderr: one line per file, rewritten as its bytes move.
"""

from __future__ import annotations

import filecmp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

import trissh
import trissh.testing


class ProgressLine:
    """``progress(path, done, total)`` for SFTP transfers: one line on stderr per file, with its rate."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}
        self.files = 0
        self.bytes = 0

    def __call__(self, path: str, done: int, total: int) -> None:
        started = self._started.setdefault(path, time.perf_counter())
        elapsed = max(time.perf_counter() - started, 1e-6)
        percent = 100 * done // total if total else 100
        name = path if len(path) <= 48 else "..." + path[-45:]
        sys.stderr.write(f"\r{name:<48} {percent:3d}% {done:>12,d} B {done / elapsed / 1e6:8.1f} MB/s")
        if done >= total:
            sys.stderr.write("\n")
            self.files += 1
            self.bytes += total


async def mirror(local: Path, remote: str, host: str, port: int, **connect_args: Any) -> bool:
    """Put ``local`` to ``remote``, get it back beside ``local``; True when the copies match."""
    back = local.with_name(local.name + ".mirrored")
    progress = ProgressLine()
    async with trissh.connect(host, port, **connect_args) as conn, conn.open_sftp() as sftp:
        start = time.perf_counter()
        await sftp.put(str(local), remote, recursive=True, preserve=True, progress=progress)
        await sftp.get(remote, str(back), recursive=True, preserve=True, progress=progress)
        seconds = time.perf_counter() - start
    print(f"{progress.files} file transfers, {progress.bytes:,d} bytes in {seconds:.2f} s")
    comparison = filecmp.dircmp(local, back)
    same = not _differences(comparison)
    print("the mirror matches" if same else f"differences: {_differences(comparison)}")
    return same


def _differences(comparison: filecmp.dircmp[str]) -> list[str]:
    found = comparison.left_only + comparison.right_only + comparison.diff_files + comparison.funny_files
    for sub in comparison.subdirs.values():
        found += [os.path.join(sub.left, name) for name in _differences(sub)]
    return found


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 3):
        print(__doc__, file=sys.stderr)
        return 2
    local = Path(argv[0]).resolve()
    if len(argv) == 3:
        destination, remote = argv[1], argv[2]
        user, _, host = destination.rpartition("@")
        host, _, port = host.partition(":")
        same = trio.run(mirror, local, remote, host, int(port or 22), **({"username": user} if user else {}))
        return 0 if same else 1
    with trissh.testing.start_sshd() as server, tempfile.TemporaryDirectory() as remote_root:
        same = trio.run(
            lambda: mirror(
                local,
                os.path.join(remote_root, local.name),
                server.host,
                server.port,
                username=server.username,
                client_keys=[server.client_key],
                known_hosts=server.known_hosts,
                agent_path=None,
            )
        )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
