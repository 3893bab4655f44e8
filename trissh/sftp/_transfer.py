"""What ``get``, ``put`` and the server-side ``copy`` share: the progress callback and the tree plan.

Theory of operation
-------------------
The transfers live in ``_download``, ``_upload`` and ``_remote_copy``, the local disk side in
``_local``. One file is one open handle with its reads or writes pipelined (:mod:`~trissh.sftp._pipeline`).
A tree is walked on the source side and its files are transferred ``max_files`` at a time in a
nursery; the first failure cancels the rest and is raised on its own (never an ExceptionGroup).

Local disk I/O runs in Trio's worker threads, in blocks of ``DISK_BLOCK`` (1 MiB) so a thread hop is
paid per MiB, not per request; a small file is created, written, closed and renamed in one hop.

What a failure leaves behind:

* ``get`` writes to a temporary name beside the destination (``.<name>.<random>.part``, cut to fit
  the 255-byte name limit) and renames it over the destination only when every byte arrived, so a
  destination is never a truncated file; with ``resume=True`` it appends to the destination
  instead, from the size it already has (as ``sftp reget -a``), and a partial file stays for the
  next try;
* ``put`` raises :class:`SFTPTransferError` whose ``bytes_confirmed`` counts the bytes the server
  acknowledged (``resume=True`` continues from the remote file's size);
* a source whose size changes while it is copied is reported (:class:`SFTPTransferError`), not
  silently cut or padded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeAlias

import trio

from .._errors import SSHError

__all__ = ["Job", "Plan", "Progress", "TransferOptions", "run_all"]

#: ``progress(remote_path, bytes_done, bytes_total)``, called as a file's data moves; its last call, once
#: the file is complete, has ``bytes_done == bytes_total``.
Progress: TypeAlias = Callable[[str, int, int], None]


@dataclass(frozen=True, slots=True)
class TransferOptions:
    """How ``get``, ``put`` and ``copy`` go (their keyword arguments; see docs/sftp.md)."""

    recursive: bool = False
    preserve: bool = False
    follow_symlinks: bool = True
    resume: bool = False
    progress: Progress | None = None
    max_files: int = 8

    def report(self, path: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(path, done, total)


#: One file's transfer, or one directory's finishing touch, as a tree transfer queues them.
Job: TypeAlias = Callable[[], Awaitable[None]]


class Plan:
    """A tree transfer's work: a job per file, run ``max_files`` at once, then each directory's mode and
    times (``preserve``), deepest first, once nothing more is written into them."""

    def __init__(self) -> None:
        self.files: list[Job] = []
        self.directories: list[Job] = []

    async def run(self, max_files: int) -> None:
        await run_all(self.files, max_files)
        for finish in self.directories:
            await finish()


async def run_all(jobs: list[Job], max_files: int) -> None:
    """Run ``jobs``, at most ``max_files`` at once; the first error cancels the others and is raised alone."""
    if not jobs:
        await trio.lowlevel.checkpoint()
        return
    limiter = trio.CapacityLimiter(max(1, max_files))
    errors: list[BaseException] = []

    async def one(job: Callable[[], Awaitable[None]], nursery: trio.Nursery) -> None:
        async with limiter:
            try:
                await job()
            except (SSHError, OSError) as exc:
                if not errors:
                    errors.append(exc)
                nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for job in jobs:
            nursery.start_soon(one, job, nursery)
    if errors:
        raise errors[0]
