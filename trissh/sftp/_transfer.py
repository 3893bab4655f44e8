"""Whole-file and whole-tree transfers: ``get``, ``put`` and the server-side ``copy``.

Theory of operation
-------------------
One file is one open handle with its reads or writes pipelined (:mod:`~trissh.sftp._pipeline`).
A tree is walked on the source side and its files are transferred ``max_files`` at a time in a
nursery; the first failure cancels the rest and is raised on its own (never an ExceptionGroup).

Local disk I/O runs in Trio's worker threads, in blocks of :data:`DISK_BLOCK` so a thread hop is
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

import contextlib
import functools
import os
import posixpath
import secrets
import stat as stat_module
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, TypeAlias

import trio

from .._errors import SSHError
from ._attributes import SFTPAttributes
from ._constants import StatusCode
from ._errors import SFTPError, SFTPTransferError
from ._file import FileState, SFTPFile
from ._pipeline import ReadAhead, WritePipeline
from ._session import _Waiter, check_status

if TYPE_CHECKING:
    from ._client import SFTPClient

__all__ = ["DISK_BLOCK", "Progress", "download", "remote_copy", "temporary_name", "upload"]

#: ``progress(path, bytes_done, bytes_total)``, called as a file's data moves (``path``: its source).
Progress: TypeAlias = Callable[[str, int, int], None]

#: Local reads and writes are gathered into blocks of this size (one worker-thread hop each).
DISK_BLOCK: Final = 1024 * 1024
#: The longest file name most file systems take (ext4, xfs, btrfs, tmpfs: NAME_MAX).
NAME_MAX: Final = 255


def temporary_name(destination: str) -> str:
    """A fresh name beside ``destination`` for a download in progress, within :data:`NAME_MAX` bytes."""
    directory, name = os.path.split(destination)
    suffix = f".{secrets.token_hex(4)}.part"
    room = NAME_MAX - 1 - len(suffix)
    encoded = os.fsencode(name)
    if len(encoded) > room:
        encoded = encoded[:room]
        while encoded:  # do not cut a UTF-8 character in half
            try:
                encoded.decode("utf-8")
                break
            except UnicodeDecodeError:
                encoded = encoded[:-1]
    return os.path.join(directory, "." + os.fsdecode(encoded) + suffix)


Job: TypeAlias = Callable[[], Awaitable[None]]


class _Plan:
    """A tree transfer's work: a job per file, run ``max_files`` at once, then each directory's mode and
    times (``preserve``), deepest first, once nothing more is written into them."""

    def __init__(self) -> None:
        self.files: list[Job] = []
        self.directories: list[Job] = []

    async def run(self, max_files: int) -> None:
        await _run_all(self.files, max_files)
        for finish in self.directories:
            await finish()


async def _run_all(jobs: list[Job], max_files: int) -> None:
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


# --- local files, in worker threads -----------------------------------------------------------------


class _LocalWriter:
    """Writes a download in order, a block at a time; the file is created at the first block."""

    def __init__(self, path: str, start: int, *, append: bool) -> None:
        self.path = path
        self._append = append
        self._fd: int | None = None
        # The pieces as received, written with one gathering write: no copy into a buffer of our own.
        self._pieces: list[bytes] = []
        self._buffered = 0
        self._offset = start

    def _open(self) -> int:
        if self._fd is None:
            flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            flags |= 0 if self._append else os.O_EXCL
            self._fd = os.open(self.path, flags, 0o600)
        return self._fd

    def _flush_sync(self) -> None:
        fd = self._open()
        pieces, self._pieces, self._buffered = self._pieces, [], 0
        while pieces:
            written = os.pwritev(fd, pieces, self._offset)
            self._offset += written
            while pieces and written >= len(pieces[0]):  # a short write: go on from where it stopped
                written -= len(pieces.pop(0))
            if written:
                pieces[0] = pieces[0][written:]

    async def add(self, data: bytes) -> None:
        self._pieces.append(data)
        self._buffered += len(data)
        if self._buffered >= DISK_BLOCK:
            await trio.to_thread.run_sync(self._flush_sync)

    def finish_sync(self, attrs: SFTPAttributes | None, rename_to: str | None) -> None:
        """The rest of the data, then (``attrs``) mode and times, then the rename; one thread hop."""
        self._flush_sync()
        assert self._fd is not None
        if attrs is not None:
            if attrs.st_mode is not None:
                os.fchmod(self._fd, stat_module.S_IMODE(attrs.st_mode))
            if attrs.st_atime is not None and attrs.st_mtime is not None:
                os.utime(self._fd, (attrs.st_atime, attrs.st_mtime))
        elif not self._append:
            os.fchmod(self._fd, 0o666 & ~_umask())
        os.close(self._fd)
        self._fd = None
        if rename_to is not None:
            os.replace(self.path, rename_to)

    def abort_sync(self, *, remove: bool) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)


@functools.cache
def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (a set-and-restore would
    race with other threads creating files), else read the classic way once."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _local_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


# --- get ---------------------------------------------------------------------------------------------


async def download(
    client: SFTPClient,
    remote: str,
    local: str | None,
    *,
    recursive: bool,
    preserve: bool,
    follow_symlinks: bool,
    resume: bool,
    progress: Progress | None,
    max_files: int,
) -> None:
    attrs = await client.stat(remote)
    name = posixpath.basename(remote.rstrip("/")) or "download"
    if local is None:
        local = name
    elif await trio.to_thread.run_sync(os.path.isdir, local):
        local = os.path.join(local, name)
    if attrs.is_dir():
        if not recursive:
            raise SFTPError(StatusCode.FAILURE, "is a directory (pass recursive=True)", remote)
        plan = _Plan()
        await _plan_download_tree(client, remote, local, plan, preserve, follow_symlinks, resume, progress)
        await plan.run(max_files)
        return
    await _download_file(client, remote, local, attrs, preserve=preserve, resume=resume, progress=progress)


async def _plan_download_tree(
    client: SFTPClient,
    remote: str,
    local: str,
    plan: _Plan,
    preserve: bool,
    follow_symlinks: bool,
    resume: bool,
    progress: Progress | None,
) -> None:
    """Create ``local`` and its subdirectories now, and queue a job for every file."""
    await trio.to_thread.run_sync(lambda: os.makedirs(local, exist_ok=True))
    async for entry in client.scandir(remote):
        source = posixpath.join(remote, entry.filename)
        target = os.path.join(local, entry.filename)
        attrs = entry.attrs
        if attrs.is_symlink():
            if not follow_symlinks:
                link = await client.readlink(source)
                await trio.to_thread.run_sync(os.symlink, link, target)
                continue
            attrs = await client.stat(source)
        if attrs.is_dir():
            await _plan_download_tree(
                client, source, target, plan, preserve, follow_symlinks, resume, progress
            )
        elif attrs.is_file():

            async def job(source: str = source, target: str = target, attrs: SFTPAttributes = attrs) -> None:
                await _download_file(
                    client, source, target, attrs, preserve=preserve, resume=resume, progress=progress
                )

            plan.files.append(job)
    if preserve:
        directory_attrs = await client.stat(remote)
        plan.directories.append(lambda: _set_local_attrs_later(local, directory_attrs))


async def _set_local_attrs_later(path: str, attrs: SFTPAttributes) -> None:
    def apply() -> None:
        if attrs.st_mode is not None:
            os.chmod(path, stat_module.S_IMODE(attrs.st_mode))
        if attrs.st_atime is not None and attrs.st_mtime is not None:
            os.utime(path, (attrs.st_atime, attrs.st_mtime))

    await trio.to_thread.run_sync(apply)


async def _download_file(
    client: SFTPClient,
    remote: str,
    local: str,
    attrs: SFTPAttributes,
    *,
    preserve: bool,
    resume: bool,
    progress: Progress | None,
) -> None:
    size = attrs.st_size
    start = await trio.to_thread.run_sync(_local_size, local) if resume else 0
    if size is not None and start > size:
        raise SFTPError(
            StatusCode.FAILURE,
            f"cannot resume: the local file has {start} bytes, the remote only {size}",
            local,
        )
    writer = _LocalWriter(local if resume else temporary_name(local), start, append=resume)
    file = await client.open(remote, "rb")
    try:
        try:
            await _receive_into(client, file, writer, start, size, remote, progress)
            await trio.to_thread.run_sync(
                writer.finish_sync, attrs if preserve else None, None if resume else local
            )
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(lambda: writer.abort_sync(remove=not resume))
            raise
    finally:
        # Read-only: the CLOSE's answer tells nothing, so it is not waited for.
        if client._session.error is None and file.state is FileState.OPEN:
            file.state = FileState.CLOSED
            client._session.send(lambda: client._session.codec.close(file.handle))


async def _receive_into(
    client: SFTPClient,
    file: SFTPFile,
    writer: _LocalWriter,
    start: int,
    size: int | None,
    remote: str,
    progress: Progress | None,
) -> None:
    total = size if size is not None else 0
    if size is not None:
        # Enough requests for the file plus one past its end (the EOF that proves it did not grow).
        needed = -(-(size - start) // client.read_chunk) + 1
        depth = max(1, min(client.depth, needed))
    else:
        depth = client.depth
    reads = ReadAhead(
        client._session,
        file.handle,
        start,
        None,
        chunk=client.read_chunk,
        depth=depth,
        path=remote,
        size_hint=size,
    )
    done = start
    try:
        while (piece := await reads.next()) is not None:
            data = piece[1]
            done += len(data)
            if size is not None and done > size:
                raise SFTPTransferError(
                    StatusCode.FAILURE,
                    f"the file grew while it was copied ({size} bytes when it started)",
                    remote,
                    bytes_confirmed=size,
                )
            await writer.add(data)
            if progress is not None:
                progress(remote, done, max(total, done))
    finally:
        reads.abandon()
    if size is not None and done != size:
        raise SFTPTransferError(
            StatusCode.FAILURE,
            f"the file shrank while it was copied ({size} bytes when it started, {done} at the end)",
            remote,
            bytes_confirmed=done,
        )


# --- put ---------------------------------------------------------------------------------------------


async def upload(
    client: SFTPClient,
    local: str,
    remote: str | None,
    *,
    recursive: bool,
    preserve: bool,
    follow_symlinks: bool,
    resume: bool,
    progress: Progress | None,
    max_files: int,
) -> None:
    st = await trio.to_thread.run_sync(os.stat if follow_symlinks else os.lstat, local)
    name = os.path.basename(local.rstrip(os.sep)) or "upload"
    if remote is None:
        remote = name
    elif await client.isdir(remote):
        remote = posixpath.join(remote, name)
    if stat_module.S_ISDIR(st.st_mode):
        if not recursive:
            raise IsADirectoryError(f"{local}: is a directory (pass recursive=True)")
        plan = _Plan()
        await _plan_upload_tree(client, local, remote, plan, preserve, follow_symlinks, resume, progress)
        await plan.run(max_files)
        return
    await _upload_file(client, local, remote, st, preserve=preserve, resume=resume, progress=progress)


async def _plan_upload_tree(
    client: SFTPClient,
    local: str,
    remote: str,
    plan: _Plan,
    preserve: bool,
    follow_symlinks: bool,
    resume: bool,
    progress: Progress | None,
) -> None:
    try:
        await client.mkdir(remote)
    except FileExistsError:
        if not await client.isdir(remote):
            raise
    entries = await trio.to_thread.run_sync(_local_entries, local, follow_symlinks)
    for name, link, st in entries:
        source = os.path.join(local, name)
        target = posixpath.join(remote, name)
        if link is not None:
            await client.symlink(link, target)
        elif st is None:
            continue  # a dangling symlink, followed: nothing to send
        elif stat_module.S_ISDIR(st.st_mode):
            await _plan_upload_tree(client, source, target, plan, preserve, follow_symlinks, resume, progress)
        elif stat_module.S_ISREG(st.st_mode):

            async def job(source: str = source, target: str = target, st: os.stat_result = st) -> None:
                await _upload_file(
                    client, source, target, st, preserve=preserve, resume=resume, progress=progress
                )

            plan.files.append(job)
    if preserve:
        st = await trio.to_thread.run_sync(os.stat, local)
        attrs = SFTPAttributes.from_stat(st)
        mode_times = SFTPAttributes(st_mode=attrs.st_mode, st_atime=attrs.st_atime, st_mtime=attrs.st_mtime)
        plan.directories.append(lambda: client.setstat(remote, mode_times))


def _local_entries(
    directory: str, follow_symlinks: bool
) -> list[tuple[str, str | None, os.stat_result | None]]:
    """``(name, link target when a symlink is to be recreated, stat)`` for each entry, sorted: one
    thread hop for a whole directory."""
    found: list[tuple[str, str | None, os.stat_result | None]] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_symlink() and not follow_symlinks:
                found.append((entry.name, os.readlink(entry.path), None))
                continue
            try:
                found.append((entry.name, None, entry.stat()))
            except FileNotFoundError:
                found.append((entry.name, None, None))
    return sorted(found, key=lambda item: item[0])


async def _upload_file(
    client: SFTPClient,
    local: str,
    remote: str,
    st: os.stat_result,
    *,
    preserve: bool,
    resume: bool,
    progress: Progress | None,
) -> None:
    size = st.st_size
    start = 0
    if resume:
        try:
            start = (await client.stat(remote)).st_size or 0
        except FileNotFoundError:
            start = 0
        if start > size:
            raise SFTPError(
                StatusCode.FAILURE,
                f"cannot resume: the remote file has {start} bytes, the local only {size}",
                remote,
            )
    # Shielded, so a descriptor opened is always one this function owns and closes; closing a file
    # opened read-only does not block, so it is done here, where a cancellation cannot skip it. The
    # first block is read in the same thread hop (for a small file: all of it).
    with trio.CancelScope(shield=True):
        fd, first = await trio.to_thread.run_sync(_open_and_read, local, start)
    try:
        await trio.lowlevel.checkpoint_if_cancelled()
        file = await client.open(
            remote, "r+" if resume and start else "w", permissions=stat_module.S_IMODE(st.st_mode)
        )
        try:
            await _send_and_close(client, file, fd, first, start, size, st, remote, preserve, progress)
        finally:
            await file.aclose()  # a no-op when closed above
    finally:
        os.close(fd)


def _open_and_read(path: str, offset: int) -> tuple[int, bytes]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return fd, os.pread(fd, DISK_BLOCK, offset)
    except BaseException:
        os.close(fd)
        raise


async def _send_and_close(
    client: SFTPClient,
    file: SFTPFile,
    fd: int,
    first: bytes,
    start: int,
    size: int,
    st: os.stat_result,
    remote: str,
    preserve: bool,
    progress: Progress | None,
) -> None:
    """The upload's WRITEs, then (``preserve``) its FSETSTAT and its CLOSE queued right behind them, so a
    small file costs one round trip after its OPEN; the server handles requests on one handle in order."""
    session, codec, handle = client._session, client._session.codec, file.handle
    pipeline = WritePipeline(session, handle, depth=client.depth, path=remote)
    finishing: list[_Waiter] = []
    try:
        offset = await _queue_writes(client, pipeline, fd, first, start, size, remote, progress)
        if preserve:
            attrs = SFTPAttributes.from_stat(st)
            kept = SFTPAttributes(st_mode=attrs.st_mode, st_atime=attrs.st_atime, st_mtime=attrs.st_mtime)
            finishing.append(session.send(lambda: codec.fsetstat(handle, kept)))
        file.state = FileState.CLOSED
        finishing.append(session.send(lambda: codec.close(handle)))
        await pipeline.flush()
        if progress is not None:
            progress(remote, start + pipeline.confirmed, max(size, offset))
        while finishing:
            check_status(await session.wait(finishing[0]), remote)
            finishing.pop(0)
    except SSHError as exc:
        for waiter in finishing:
            waiter.abandoned = True
        if isinstance(exc, SFTPTransferError):
            raise
        pipeline.abandon()
        code = exc.code if isinstance(exc, SFTPError) else StatusCode.CONNECTION_LOST
        raise SFTPTransferError(
            code, f"upload failed: {exc}", remote, bytes_confirmed=start + pipeline.confirmed
        ) from exc
    if offset != size:
        raise SFTPTransferError(
            StatusCode.FAILURE,
            f"the local file changed size while it was sent ({size} bytes when it started, {offset} read)",
            remote,
            bytes_confirmed=offset,
        )


async def _queue_writes(
    client: SFTPClient,
    pipeline: WritePipeline,
    fd: int,
    block: bytes,
    start: int,
    size: int,
    remote: str,
    progress: Progress | None,
) -> int:
    """Queue WRITEs for the local file from ``start`` (``block``: its first block, already read) to its
    end; returns the end offset. A block shorter than DISK_BLOCK is the end (pread of a regular file
    returns less only at the end), so a small file needs no second read."""
    chunk = client.write_chunk
    offset = start
    while block:
        view = memoryview(block)
        for at in range(0, len(view), chunk):
            await pipeline.write(offset + at, view[at : at + chunk])
        offset += len(block)
        if progress is not None:
            progress(remote, start + pipeline.confirmed, max(size, offset))
        if len(block) < DISK_BLOCK or offset > size:
            break
        block = await trio.to_thread.run_sync(os.pread, fd, DISK_BLOCK, offset)
    return offset


# --- copy on the server -------------------------------------------------------------------------------


async def remote_copy(
    client: SFTPClient,
    source: str,
    destination: str,
    *,
    recursive: bool,
    preserve: bool,
    follow_symlinks: bool,
    progress: Progress | None,
    max_files: int,
) -> None:
    attrs = await (client.stat(source) if follow_symlinks else client.lstat(source))
    if await client.isdir(destination):
        destination = posixpath.join(destination, posixpath.basename(source.rstrip("/")))
    if attrs.is_dir():
        if not recursive:
            raise SFTPError(StatusCode.FAILURE, "is a directory (pass recursive=True)", source)
        plan = _Plan()
        await _plan_copy_tree(client, source, destination, plan, preserve, follow_symlinks, progress)
        await plan.run(max_files)
        return
    await _copy_file(client, source, destination, attrs, preserve=preserve, progress=progress)


async def _plan_copy_tree(
    client: SFTPClient,
    source: str,
    destination: str,
    plan: _Plan,
    preserve: bool,
    follow_symlinks: bool,
    progress: Progress | None,
) -> None:
    try:
        await client.mkdir(destination)
    except FileExistsError:
        if not await client.isdir(destination):
            raise
    async for entry in client.scandir(source):
        from_path = posixpath.join(source, entry.filename)
        to_path = posixpath.join(destination, entry.filename)
        attrs = entry.attrs
        if attrs.is_symlink():
            if not follow_symlinks:
                await client.symlink(await client.readlink(from_path), to_path)
                continue
            attrs = await client.stat(from_path)
        if attrs.is_dir():
            await _plan_copy_tree(client, from_path, to_path, plan, preserve, follow_symlinks, progress)
        elif attrs.is_file():

            async def job(
                from_path: str = from_path, to_path: str = to_path, attrs: SFTPAttributes = attrs
            ) -> None:
                await _copy_file(client, from_path, to_path, attrs, preserve=preserve, progress=progress)

            plan.files.append(job)
    if preserve:
        directory = await client.stat(source)
        kept = SFTPAttributes(
            st_mode=directory.st_mode, st_atime=directory.st_atime, st_mtime=directory.st_mtime
        )
        plan.directories.append(lambda: client.setstat(destination, kept))


async def _copy_file(
    client: SFTPClient,
    source: str,
    destination: str,
    attrs: SFTPAttributes,
    *,
    preserve: bool,
    progress: Progress | None,
) -> None:
    mode = stat_module.S_IMODE(attrs.st_mode) if attrs.st_mode is not None else None
    size = attrs.st_size or 0
    async with (
        await client.open(source, "rb") as reading,
        await client.open(destination, "w", permissions=mode) as writing,
    ):
        if "copy-data" in client.extensions:
            await client.copy_data(reading, writing)
        else:
            pipeline = WritePipeline(client._session, writing.handle, depth=client.depth, path=destination)
            reads = client._read_ahead(reading.handle, 0, None, source)
            try:
                while (piece := await reads.next()) is not None:
                    offset, data = piece
                    for at in range(0, len(data), client.write_chunk):
                        await pipeline.write(offset + at, memoryview(data)[at : at + client.write_chunk])
                    if progress is not None:
                        progress(source, offset + len(data), max(size, offset + len(data)))
                await pipeline.flush()
            finally:
                reads.abandon()
                pipeline.abandon()
        if progress is not None and "copy-data" in client.extensions:
            progress(source, size, size)
        if preserve:
            await writing.setstat(
                SFTPAttributes(st_mode=attrs.st_mode, st_atime=attrs.st_atime, st_mtime=attrs.st_mtime)
            )
