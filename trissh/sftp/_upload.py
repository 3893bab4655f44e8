"""``put``: a local file or tree to the server, saying how much the server confirmed when it fails
(see :mod:`trissh.sftp._transfer`)."""

from __future__ import annotations

import os
import posixpath
import stat as stat_module
from typing import TYPE_CHECKING

import trio

from .._errors import SSHError
from ._attributes import SFTPAttributes
from ._constants import StatusCode
from ._errors import SFTPError, SFTPTransferError
from ._file import FileState, SFTPFile
from ._local import DISK_BLOCK, WriteBuffers, local_entries, open_and_read
from ._pipeline import WritePipeline
from ._session import _Waiter, check_status
from ._transfer import Plan, TransferOptions

if TYPE_CHECKING:
    from ._client import SFTPClient

__all__ = ["upload"]


async def upload(
    client: SFTPClient,
    local: str,
    remote: str | None,
    options: TransferOptions,
) -> None:
    st = await trio.to_thread.run_sync(os.stat if options.follow_symlinks else os.lstat, local)
    name = os.path.basename(local.rstrip(os.sep)) or "upload"
    if remote is None:
        remote = name
    elif await client.isdir(remote):
        remote = posixpath.join(remote, name)
    if stat_module.S_ISDIR(st.st_mode):
        if not options.recursive:
            raise IsADirectoryError(f"{local}: is a directory (pass recursive=True)")
        plan = Plan()
        await _plan_upload_tree(client, local, remote, plan, options)
        await plan.run(options.max_files)
        return
    await _upload_file(client, local, remote, st, options)


async def _plan_upload_tree(
    client: SFTPClient,
    local: str,
    remote: str,
    plan: Plan,
    options: TransferOptions,
) -> None:
    try:
        await client.mkdir(remote)
    except FileExistsError:
        if not await client.isdir(remote):
            raise
    entries = await trio.to_thread.run_sync(local_entries, local, options.follow_symlinks)
    for name, link, st in entries:
        source = os.path.join(local, name)
        target = posixpath.join(remote, name)
        if link is not None:
            await client.symlink(link, target)
        elif st is None:
            continue  # a dangling symlink, followed: nothing to send
        elif stat_module.S_ISDIR(st.st_mode):
            await _plan_upload_tree(client, source, target, plan, options)
        elif stat_module.S_ISREG(st.st_mode):

            async def job(source: str = source, target: str = target, st: os.stat_result = st) -> None:
                await _upload_file(client, source, target, st, options)

            plan.files.append(job)
    if options.preserve:
        st = await trio.to_thread.run_sync(os.stat, local)
        attrs = SFTPAttributes.from_stat(st)
        mode_times = SFTPAttributes(st_mode=attrs.st_mode, st_atime=attrs.st_atime, st_mtime=attrs.st_mtime)
        plan.directories.append(lambda: client.setstat(remote, mode_times))


async def _upload_file(
    client: SFTPClient,
    local: str,
    remote: str,
    st: os.stat_result,
    options: TransferOptions,
) -> None:
    size = st.st_size
    start = 0
    if options.resume:
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
        fd, first = await trio.to_thread.run_sync(
            open_and_read, local, start, _want(client, start, size), client.write_chunk
        )
    try:
        await trio.lowlevel.checkpoint_if_cancelled()
        file = await client.open(
            remote, "r+" if options.resume and start else "w", permissions=stat_module.S_IMODE(st.st_mode)
        )
        try:
            await _send_and_close(client, file, fd, first, start, size, st, remote, options)
        finally:
            await file.aclose()  # a no-op when closed above
    finally:
        os.close(fd)


async def _send_and_close(
    client: SFTPClient,
    file: SFTPFile,
    fd: int,
    first: WriteBuffers,
    start: int,
    size: int,
    st: os.stat_result,
    remote: str,
    options: TransferOptions,
) -> None:
    """The upload's WRITEs, then (``preserve``) its FSETSTAT and its CLOSE queued right behind them, so a
    small file costs one round trip after its OPEN; the server handles requests on one handle in order."""
    session, codec, handle = client._session, client._session.codec, file.handle
    pipeline = WritePipeline(session, handle, depth=client.depth, path=remote)
    finishing: list[_Waiter] = []
    try:
        offset = await _queue_writes(client, pipeline, fd, first, start, size, remote, options)
        if options.preserve:
            attrs = SFTPAttributes.from_stat(st)
            kept = SFTPAttributes(st_mode=attrs.st_mode, st_atime=attrs.st_atime, st_mtime=attrs.st_mtime)
            finishing.append(session.send(lambda: codec.fsetstat(handle, kept)))
        file.state = FileState.CLOSED
        finishing.append(session.send(lambda: codec.close(handle)))
        await pipeline.flush()
        options.report(remote, start + pipeline.confirmed, max(size, offset))
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


def _want(client: SFTPClient, offset: int, size: int) -> int:
    """How much to read at ``offset``: a block of whole WRITEs, or the rest of the file plus one byte
    (which shows whether it grew)."""
    block = client.write_chunk * max(1, DISK_BLOCK // client.write_chunk)
    return min(block, max(size - offset, 0) + 1)


async def _queue_writes(
    client: SFTPClient,
    pipeline: WritePipeline,
    fd: int,
    block: WriteBuffers,
    start: int,
    size: int,
    remote: str,
    options: TransferOptions,
) -> int:
    """Queue WRITEs for the local file from ``start`` (``block``: its first block, already read) to its
    end; returns the end offset. A block shorter than asked for is the end (pread of a regular file
    returns less only there), so a small file needs no second read."""
    offset = start
    want = _want(client, start, size)
    while block.size:
        for packet, length in block.packets:
            await pipeline.write_in_place(offset, packet, length)
            offset += length
        options.report(remote, start + pipeline.confirmed, max(size, offset))
        if block.size < want or offset > size:
            break
        want = _want(client, offset, size)
        block = await trio.to_thread.run_sync(WriteBuffers, fd, offset, want, client.write_chunk)
    return offset
