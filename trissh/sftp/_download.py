"""``get``: a remote file or tree to the local disk, never leaving a destination that looks complete
when it is not (see :mod:`trissh.sftp._transfer`)."""

from __future__ import annotations

import os
import posixpath
import stat as stat_module
from typing import TYPE_CHECKING

import trio

from ._attributes import SFTPAttributes
from ._constants import StatusCode
from ._errors import SFTPError, SFTPTransferError
from ._file import FileState, SFTPFile
from ._local import LocalWriter, local_size, temporary_name
from ._pipeline import ReadAhead
from ._transfer import Plan, TransferOptions

if TYPE_CHECKING:
    from ._client import SFTPClient

__all__ = ["download"]


async def download(
    client: SFTPClient,
    remote: str,
    local: str | None,
    options: TransferOptions,
) -> None:
    attrs = await client.stat(remote)
    name = posixpath.basename(remote.rstrip("/")) or "download"
    if local is None:
        local = name
    elif await trio.to_thread.run_sync(os.path.isdir, local):
        local = os.path.join(local, name)
    if attrs.is_dir():
        if not options.recursive:
            raise SFTPError(StatusCode.FAILURE, "is a directory (pass recursive=True)", remote)
        plan = Plan()
        await _plan_download_tree(client, remote, local, plan, options)
        await plan.run(options.max_files)
        return
    await _download_file(client, remote, local, attrs, options)


async def _plan_download_tree(
    client: SFTPClient,
    remote: str,
    local: str,
    plan: Plan,
    options: TransferOptions,
) -> None:
    """Create ``local`` and its subdirectories now, and queue a job for every file."""
    await trio.to_thread.run_sync(lambda: os.makedirs(local, exist_ok=True))
    async for entry in client.scandir(remote):
        source = posixpath.join(remote, entry.filename)
        target = os.path.join(local, entry.filename)
        attrs = entry.attrs
        if attrs.is_symlink():
            if not options.follow_symlinks:
                link = await client.readlink(source)
                await trio.to_thread.run_sync(os.symlink, link, target)
                continue
            attrs = await client.stat(source)
        if attrs.is_dir():
            await _plan_download_tree(client, source, target, plan, options)
        elif attrs.is_file():

            async def job(source: str = source, target: str = target, attrs: SFTPAttributes = attrs) -> None:
                await _download_file(client, source, target, attrs, options)

            plan.files.append(job)
    if options.preserve:
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
    options: TransferOptions,
) -> None:
    size = attrs.st_size
    start = await trio.to_thread.run_sync(local_size, local) if options.resume else 0
    if size is not None and start > size:
        raise SFTPError(
            StatusCode.FAILURE,
            f"cannot resume: the local file has {start} bytes, the remote only {size}",
            local,
        )
    writer = LocalWriter(local if options.resume else temporary_name(local), start, append=options.resume)
    file = await client.open(remote, "rb")
    try:
        try:
            await _receive_into(client, file, writer, start, size, remote, options)
            await trio.to_thread.run_sync(
                writer.finish_sync, attrs if options.preserve else None, None if options.resume else local
            )
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(lambda: writer.abort_sync(remove=not options.resume))
            raise
    finally:
        if file.state is FileState.OPEN:
            file.state = FileState.CLOSED
            client._session.close_nowait(file.handle)


async def _receive_into(
    client: SFTPClient,
    file: SFTPFile,
    writer: LocalWriter,
    start: int,
    size: int | None,
    remote: str,
    options: TransferOptions,
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
            done += data.size
            if size is not None and done > size:
                raise SFTPTransferError(
                    StatusCode.FAILURE,
                    f"the file grew while it was copied ({size} bytes when it started)",
                    remote,
                    bytes_confirmed=size,
                )
            await writer.add(data.chunks, data.size)
            options.report(remote, done, max(total, done))
    finally:
        reads.abandon()
    if done == start:  # nothing to copy: one report all the same, so every file has its last one
        options.report(remote, done, max(total, done))
    if size is not None and done != size:
        raise SFTPTransferError(
            StatusCode.FAILURE,
            f"the file shrank while it was copied ({size} bytes when it started, {done} at the end)",
            remote,
            bytes_confirmed=done,
        )
