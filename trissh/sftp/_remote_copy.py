"""``copy``: a file or tree copied on the server, by ``copy-data`` where offered, otherwise read and
written back through the client."""

from __future__ import annotations

import posixpath
import stat as stat_module
from typing import TYPE_CHECKING

from ._attributes import SFTPAttributes
from ._constants import StatusCode
from ._errors import SFTPError
from ._pipeline import WritePipeline
from ._transfer import Plan, TransferOptions

if TYPE_CHECKING:
    from ._client import SFTPClient

__all__ = ["remote_copy"]


async def remote_copy(
    client: SFTPClient,
    source: str,
    destination: str,
    options: TransferOptions,
) -> None:
    attrs = await (client.stat(source) if options.follow_symlinks else client.lstat(source))
    if await client.isdir(destination):
        destination = posixpath.join(destination, posixpath.basename(source.rstrip("/")))
    if attrs.is_dir():
        if not options.recursive:
            raise SFTPError(StatusCode.FAILURE, "is a directory (pass recursive=True)", source)
        plan = Plan()
        await _plan_copy_tree(client, source, destination, plan, options)
        await plan.run(options.max_files)
        return
    await _copy_file(client, source, destination, attrs, options)


async def _plan_copy_tree(
    client: SFTPClient,
    source: str,
    destination: str,
    plan: Plan,
    options: TransferOptions,
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
            if not options.follow_symlinks:
                await client.symlink(await client.readlink(from_path), to_path)
                continue
            attrs = await client.stat(from_path)
        if attrs.is_dir():
            await _plan_copy_tree(client, from_path, to_path, plan, options)
        elif attrs.is_file():

            async def job(
                from_path: str = from_path, to_path: str = to_path, attrs: SFTPAttributes = attrs
            ) -> None:
                await _copy_file(client, from_path, to_path, attrs, options)

            plan.files.append(job)
    if options.preserve:
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
    options: TransferOptions,
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
                    offset, data = piece[0], piece[1].data
                    for at in range(0, len(data), client.write_chunk):
                        await pipeline.write(offset + at, memoryview(data)[at : at + client.write_chunk])
                    options.report(source, offset + len(data), max(size, offset + len(data)))
                await pipeline.flush()
            finally:
                reads.abandon()
                pipeline.abandon()
        if "copy-data" in client.extensions:
            options.report(source, size, size)
        if options.preserve:
            await writing.setstat(
                SFTPAttributes(st_mode=attrs.st_mode, st_atime=attrs.st_atime, st_mtime=attrs.st_mtime)
            )
