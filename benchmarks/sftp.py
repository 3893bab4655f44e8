"""The SFTP cases for one client, in a process of its own: ``sftp-get``, ``sftp-put``, their small-file forms.

Usage: as :mod:`benchmarks.worker` (the orchestrator builds the same command line), plus the tmpfs folder
it prepared with :func:`prepare`::

    python -m benchmarks.sftp --sftp-dir /dev/shm/trissh-bench-x --client trissh --case sftp-get ...

Theory of operation
-------------------
sshd runs as this user, so its ``internal-sftp`` sees this machine's files: the "remote" side is a folder
on tmpfs too, and neither side measures a disk. The orchestrator prepares, once per run, ``src/big`` (one
file of ``transfer_bytes``) and ``src/small/`` (``sftp_files`` files of ``sftp_file_bytes``), and
``manifest.json`` with their sizes and sha256. Every worker copies into a folder of its own beside them
(``work-<pid>``, removed when it ends), to a destination that does not exist yet:

* ``sftp-get`` / ``sftp-small-get``: ``src/big`` or ``src/small`` downloaded to ``work-<pid>/big`` or
  ``work-<pid>/small``; ``sftp-put`` / ``sftp-small-put``: the same, uploaded.
* trissh ``SFTPClient.get/put`` (``recursive=True`` for the tree), AsyncSSH ``SFTPClient.get/put``
  (``recurse=True``), Paramiko ``SFTPClient.get/put`` (no recursive API: a loop over ``listdir``, one file
  at a time, as a user writes it), OpenSSH ``sftp -b`` (``get``/``put``, ``-R`` for the tree).

The meter runs around the transfer only, once connected and the SFTP session open (for ``sftp``, the
whole ``sftp`` process and its ``ssh``, connect included, as the ``ssh`` transfer cases do). Afterwards
the destination is checked against the manifest (size and sha256 of the file; count and combined sha256
of the tree) and removed; that check's wall and CPU seconds are reported (``check_seconds``,
``check_cpu_seconds``) so the orchestrator leaves them out of the whole-process figures.

Every client uses the cipher :data:`benchmarks.FORWARD_CIPHERS` names for these cases, and the negotiated
one is checked. This module owns only SFTP; connecting, measuring and reporting are
:mod:`benchmarks.worker`'s.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from benchmarks import ETM_MAC, SFTP_CASES, worker
from benchmarks.worker import (
    DataError,
    Job,
    Meter,
    Result,
    _asyncssh_connect,
    _paramiko_client,
    _ssh_failed,
    _trissh_connect,
)

__all__ = ["MANIFEST", "main", "prepare", "tree_digest"]

#: The file, in the prepared folder, that records what the sources hold.
MANIFEST: Final = "manifest.json"
# The big source file and the small files' folder, under <folder>/src.
_BIG: Final = "big"
_SMALL: Final = "small"
#: What a client's transfer returns: wall seconds, CPU seconds, the negotiated ciphers (out, in).
Transfer = tuple[float, float, Sequence[Any]]
# Reading for a hash, and writing the sources, this much at a time.
_BLOCK: Final = 1 << 20


# --- the sources (prepared by the orchestrator) and the check -----------------------------------------------


def _file_digest(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while block := file.read(_BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def tree_digest(root: Path) -> tuple[int, int, str]:
    """(file count, total bytes, combined sha256) of the regular files under ``root``.

    The combined hash covers every file's path relative to ``root`` and its content's sha256, in sorted
    order, so a missing, extra, renamed or changed file changes it.
    """
    combined, count, total = hashlib.sha256(), 0, 0
    names = sorted(
        os.path.relpath(os.path.join(folder, name), root)
        for folder, _, files in os.walk(root)
        for name in files
    )
    for name in names:
        size, digest = _file_digest(root / name)
        combined.update(name.encode() + b"\0" + bytes.fromhex(digest))
        count += 1
        total += size
    return count, total, combined.hexdigest()


def prepare(folder: Path, big_bytes: int, files: int, file_bytes: int) -> None:
    """Write the sources and their manifest into ``folder`` (an empty folder, on tmpfs if there is one)."""
    source = folder / "src"
    (source / _SMALL).mkdir(parents=True)
    with (source / _BIG).open("wb") as file:
        left = big_bytes
        while left:
            left -= file.write(os.urandom(min(left, _BLOCK)))
    for index in range(files):
        (source / _SMALL / f"f{index:05d}").write_bytes(os.urandom(file_bytes))
    size, digest = _file_digest(source / _BIG)
    count, total, combined = tree_digest(source / _SMALL)
    manifest = {
        _BIG: {"files": 1, "bytes": size, "sha256": digest},
        _SMALL: {"files": count, "bytes": total, "sha256": combined},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest))


@contextlib.contextmanager
def prepared(big_bytes: int, files: int, file_bytes: int) -> Iterator[Path]:
    """A new folder on tmpfs (``/dev/shm`` if there is one) with the sources in it; removed at the end."""
    shm = "/dev/shm"
    parent = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix="trissh-bench-sftp-", dir=parent))
    try:
        prepare(folder, big_bytes, files, file_bytes)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class _Paths:
    """Where one job's source and destination are, and what the source holds."""

    def __init__(self, job: Job, folder: Path) -> None:
        self.small = job.case.startswith("sftp-small-")
        name = _SMALL if self.small else _BIG
        self.expected: dict[str, Any] = json.loads((folder / MANIFEST).read_text())[name]
        wanted = (job.count, job.count * job.size) if self.small else (1, job.size)
        if (self.expected["files"], self.expected["bytes"]) != wanted:
            raise DataError(f"the prepared {name} holds {self.expected}, not {wanted} (files, bytes)")
        self.work = folder / f"work-{os.getpid()}"
        self.source = folder / "src" / name
        self.destination = self.work / name
        if job.case.endswith("-get"):
            self.remote, self.local = self.source, self.destination
        else:
            self.remote, self.local = self.destination, self.source

    def check(self) -> None:
        if self.small:
            if not self.destination.is_dir():
                raise DataError(f"no folder at {self.destination}")
            count, total, digest = tree_digest(self.destination)
        else:
            if not self.destination.is_file():
                raise DataError(f"no file at {self.destination}")
            (total, digest), count = _file_digest(self.destination), 1
        got = {"files": count, "bytes": total, "sha256": digest}
        if got != self.expected:
            raise DataError(f"the copy holds {got}, the source {self.expected}")


def _run(job: Job, folder: Path, transfer: Callable[[_Paths], Transfer]) -> Result:
    """Set up the job's folder, run ``transfer`` (-> seconds, CPU seconds, ciphers), check it, clean up."""
    paths = _Paths(job, folder)
    paths.work.mkdir()
    try:
        seconds, cpu, ciphers = transfer(paths)
        meter = Meter()
        if list(ciphers) != [job.cipher, job.cipher]:
            raise DataError(f"asked for cipher {job.cipher} but negotiated {list(ciphers)} (out, in)")
        paths.check()
    finally:
        shutil.rmtree(paths.work, ignore_errors=True)
    check_seconds, check_cpu = meter.stop()
    return {
        "files": paths.expected["files"],
        "bytes": paths.expected["bytes"],
        "sha256": paths.expected["sha256"],
        "seconds": seconds,
        "cpu_seconds": cpu,
        "check_seconds": check_seconds,
        "check_cpu_seconds": check_cpu,
    }


def _on_trio_with(function: Callable[[Job, _Paths], Awaitable[Transfer]]) -> Callable[[Job, Path], Result]:
    def run(job: Job, folder: Path) -> Result:
        import trio

        return _run(job, folder, lambda paths: trio.run(function, job, paths))

    return run


def _on_asyncio_with(function: Callable[[Job, _Paths], Awaitable[Transfer]]) -> Callable[[Job, Path], Result]:
    def run(job: Job, folder: Path) -> Result:
        import asyncio

        async def go(paths: _Paths) -> Transfer:
            return await function(job, paths)

        return _run(job, folder, lambda paths: asyncio.run(go(paths)))

    return run


# --- the clients --------------------------------------------------------------------------------------------


async def _trissh_sftp(job: Job, paths: _Paths) -> Transfer:
    async with _trissh_connect(job) as conn:
        negotiated = conn.negotiated
        ciphers = (negotiated.client_to_server.cipher, negotiated.server_to_client.cipher)
        async with conn.open_sftp() as sftp:
            meter = Meter()
            if job.case.endswith("-get"):
                await sftp.get(str(paths.remote), str(paths.local), recursive=paths.small)
            else:
                await sftp.put(str(paths.local), str(paths.remote), recursive=paths.small)
            seconds, cpu = meter.stop()
    return seconds, cpu, ciphers


async def _asyncssh_sftp(job: Job, paths: _Paths) -> Transfer:
    async with _asyncssh_connect(job) as conn:
        ciphers = (conn.get_extra_info("send_cipher"), conn.get_extra_info("recv_cipher"))
        async with conn.start_sftp_client() as sftp:
            meter = Meter()
            if job.case.endswith("-get"):
                await sftp.get(str(paths.remote), str(paths.local), recurse=paths.small)
            else:
                await sftp.put(str(paths.local), str(paths.remote), recurse=paths.small)
            seconds, cpu = meter.stop()
    return seconds, cpu, ciphers


def _paramiko_sftp(job: Job, folder: Path) -> Result:
    def transfer(paths: _Paths) -> Transfer:
        client = _paramiko_client(job)
        try:
            transport = client.get_transport()
            sftp = client.open_sftp()
            try:
                meter = Meter()
                remote, local = str(paths.remote), str(paths.local)
                if job.case.endswith("-get"):
                    if paths.small:  # no recursive get in paramiko: the loop a user writes
                        os.mkdir(local)
                        for name in sftp.listdir(remote):
                            sftp.get(f"{remote}/{name}", os.path.join(local, name))
                    else:
                        sftp.get(remote, local)
                elif paths.small:
                    sftp.mkdir(remote)
                    for name in os.listdir(local):
                        sftp.put(os.path.join(local, name), f"{remote}/{name}")
                else:
                    sftp.put(local, remote)
                seconds, cpu = meter.stop()
            finally:
                sftp.close()
            ciphers = (transport.local_cipher, transport.remote_cipher)
        finally:
            client.close()
        return seconds, cpu, ciphers

    return _run(job, folder, transfer)


def _sftp_argv(job: Job, batch: str) -> list[str]:
    """``SSHServer.ssh_command()`` made an ``sftp -b`` command line: ``-p PORT`` is ``-P`` for sftp."""
    assert job.cipher is not None
    *base, destination = job.ssh_argv
    options: list[str] = []
    pairs = iter(base[1:])  # after "ssh": flags, each with its value
    for flag in pairs:
        options += ["-P" if flag == "-p" else flag, next(pairs)]
    return [
        "sftp", *options, "-v", "-c", job.cipher, "-o", f"MACs={ETM_MAC}", "-o", "Compression=no",
        "-b", batch, destination,
    ]  # fmt: skip


def _ssh_sftp(job: Job, folder: Path) -> Result:
    def transfer(paths: _Paths) -> Transfer:
        command = "get" if job.case.endswith("-get") else "put"
        source, target = (paths.remote, paths.local) if command == "get" else (paths.local, paths.remote)
        recursive = " -R" if paths.small else ""
        batch = paths.work.parent / f"batch-{os.getpid()}"
        batch.write_text(f'{command}{recursive} "{source}" "{target}"\n')
        try:
            with tempfile.TemporaryFile() as log:
                # sftp's own CPU and its ssh's (waited for by sftp, so in its children's).
                meter = Meter(resource.RUSAGE_CHILDREN)
                status = subprocess.run(
                    _sftp_argv(job, str(batch)),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    check=False,
                    timeout=job.timeout,
                ).returncode
                seconds, cpu = meter.stop()
                text = worker._ssh_log(log)
        finally:
            batch.unlink()
        if status != 0:
            raise _ssh_failed(f"sftp -b ({command}{recursive})", status, text)
        ways = ("client->server", "server->client")
        found = [re.search(rf"kex: {way} cipher: (\S+)", text) for way in ways]
        return seconds, cpu, [match[1] if match else "?" for match in found]

    return _run(job, folder, transfer)


# --- dispatch -----------------------------------------------------------------------------------------------


def _runners(folder: Path) -> dict[tuple[str, str], Callable[[Job], Result]]:
    by_client: dict[str, Callable[[Job, Path], Result]] = {
        "trissh": _on_trio_with(_trissh_sftp),
        "asyncssh": _on_asyncio_with(_asyncssh_sftp),
        "paramiko": _paramiko_sftp,
        "ssh": _ssh_sftp,
    }

    def bind(run: Callable[[Job, Path], Result]) -> Callable[[Job], Result]:
        return lambda job: run(job, folder)

    return {(client, case): bind(run) for client, run in by_client.items() for case in SFTP_CASES}


def main(argv: list[str] | None = None) -> int:
    """Run one SFTP job (:func:`benchmarks.worker.main` with these cases); return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sftp", add_help=False)
    parser.add_argument("--sftp-dir", type=Path, required=True)
    known, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return worker.main(rest, _runners(known.sftp_dir))


if __name__ == "__main__":
    sys.exit(main())
