"""The copies ``trissh cp`` makes (see :mod:`trissh._cli.cp` for the command line): one SFTP session per
remote, local to remote with ``put``, remote to local with ``get``, remote to remote through here."""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
from typing import TYPE_CHECKING

import trio

from .common import SSHSetup
from .cp import CopyArgs, Endpoint
from .progress import TransferDisplay
from .ssh_args import UsageError

if TYPE_CHECKING:
    from ..sftp import SFTPAttributes, SFTPClient

__all__ = ["copy_all"]


def copy_all(args: CopyArgs) -> int:
    return trio.run(_copy_all, args)


class _Connections:
    """One SFTP session per distinct remote, opened on first use, closed at the end."""

    def __init__(self, args: CopyArgs, stack: contextlib.AsyncExitStack) -> None:
        self._args = args
        self._stack = stack
        self._open: dict[tuple[str, str | None, int | None], SFTPClient] = {}

    async def sftp(self, endpoint: Endpoint) -> SFTPClient:
        assert endpoint.host is not None
        key = (endpoint.host, endpoint.user, endpoint.port)
        if key not in self._open:
            lines = list(self._args.lines or [])
            if endpoint.user:
                lines.insert(0, f"User {endpoint.user}")
            if endpoint.port:
                lines.insert(0, f"Port {endpoint.port}")
            setup = SSHSetup.create(endpoint.host, self._args.config_file, lines)
            conn = await self._stack.enter_async_context(setup.connect())
            self._open[key] = await self._stack.enter_async_context(conn.open_sftp())
        return self._open[key]


async def _copy_all(args: CopyArgs) -> int:
    async with contextlib.AsyncExitStack() as stack:
        connections = _Connections(args, stack)
        target = args.target
        if len(args.sources) > 1:
            await _check_directory(connections, target)
        total = 0
        for source in args.sources:
            total += await _size_of(connections, source, args.recursive)
        with TransferDisplay(total, quiet=args.quiet) as display:
            for source in args.sources:
                await _copy_one(connections, source, target, args, display)
    return 0


async def _check_directory(connections: _Connections, target: Endpoint) -> None:
    if target.host is None:
        is_dir = await trio.Path(target.path).is_dir()
    else:
        is_dir = await (await connections.sftp(target)).isdir(target.path)
    if not is_dir:
        raise UsageError(f"{target}: not a directory (several sources need a directory target)")


async def _size_of(connections: _Connections, source: Endpoint, recursive: bool) -> int:
    """The bytes a source holds: the progress display's total."""
    if source.host is None:
        return await trio.to_thread.run_sync(_local_size, source.path, recursive)
    sftp = await connections.sftp(source)
    attrs = await sftp.stat(source.path)
    if not attrs.is_dir():
        return attrs.st_size or 0
    if not recursive:
        raise UsageError(f"{source}: is a directory (use -r)")
    return await _remote_tree_size(sftp, source.path)


async def _remote_tree_size(sftp: SFTPClient, path: str) -> int:
    total = 0
    async for entry in sftp.scandir(path):
        if entry.attrs.is_dir():
            total += await _remote_tree_size(sftp, posixpath.join(path, entry.filename))
        elif entry.attrs.is_file():
            total += entry.attrs.st_size or 0
    return total


def _local_size(path: str, recursive: bool) -> int:
    if not os.path.isdir(path):
        return os.stat(path).st_size
    if not recursive:
        raise UsageError(f"{path}: is a directory (use -r)")
    return sum(
        os.stat(os.path.join(top, name)).st_size
        for top, _, names in os.walk(path)
        for name in names
        if os.path.isfile(os.path.join(top, name))
    )


async def _copy_one(
    connections: _Connections, source: Endpoint, target: Endpoint, args: CopyArgs, display: TransferDisplay
) -> None:
    options = {"recursive": args.recursive, "preserve": args.preserve, "progress": display}
    if source.host is None and target.host is None:
        await trio.to_thread.run_sync(_local_copy, source.path, target.path, args.recursive, args.preserve)
    elif source.host is None:
        await (await connections.sftp(target)).put(source.path, target.path, **options)  # type: ignore[arg-type]
    elif target.host is None:
        await (await connections.sftp(source)).get(source.path, target.path, **options)  # type: ignore[arg-type]
    else:
        reading, writing = await connections.sftp(source), await connections.sftp(target)
        await _remote_to_remote(reading, source.path, writing, target.path, args, display)


def _local_copy(source: str, target: str, recursive: bool, preserve: bool) -> None:
    if os.path.isdir(target):
        target = os.path.join(target, os.path.basename(source.rstrip("/")))
    copy = shutil.copy2 if preserve else shutil.copy
    if os.path.isdir(source):
        if not recursive:
            raise UsageError(f"{source}: is a directory (use -r)")
        shutil.copytree(source, target, copy_function=copy, dirs_exist_ok=True)
    else:
        copy(source, target)


async def _remote_to_remote(
    source: SFTPClient,
    source_path: str,
    target: SFTPClient,
    target_path: str,
    args: CopyArgs,
    display: TransferDisplay,
) -> None:
    """Through this machine: each file read with its reads pipelined, written with its writes pipelined."""
    attrs = await source.stat(source_path)
    if await target.isdir(target_path):
        target_path = posixpath.join(target_path, posixpath.basename(source_path.rstrip("/")) or "copy")
    if not attrs.is_dir():
        await _remote_file(source, source_path, attrs, target, target_path, args, display)
    elif not args.recursive:
        raise UsageError(f"{source_path}: is a directory (use -r)")
    else:
        await _remote_tree(source, source_path, attrs, target, target_path, args, display)


async def _remote_tree(
    source: SFTPClient,
    source_path: str,
    attrs: SFTPAttributes,
    target: SFTPClient,
    target_path: str,
    args: CopyArgs,
    display: TransferDisplay,
) -> None:
    with contextlib.suppress(FileExistsError):
        await target.mkdir(target_path)
    async for entry in source.scandir(source_path):
        child, destination = (
            posixpath.join(source_path, entry.filename),
            posixpath.join(target_path, entry.filename),
        )
        found = await source.stat(child) if entry.attrs.is_symlink() else entry.attrs
        if found.is_dir():
            await _remote_tree(source, child, found, target, destination, args, display)
        elif found.is_file():
            await _remote_file(source, child, found, target, destination, args, display)
    if args.preserve:
        await target.setstat(target_path, _mode_and_times(attrs))


async def _remote_file(
    source: SFTPClient,
    source_path: str,
    attrs: SFTPAttributes,
    target: SFTPClient,
    target_path: str,
    args: CopyArgs,
    display: TransferDisplay,
) -> None:
    size = attrs.st_size or 0
    done = 0
    async with (
        await source.open(source_path, "rb") as reading,
        await target.open(target_path, "wb") as writing,
    ):
        async for chunk in reading:
            await writing.write(chunk)
            done += len(chunk)
            display(source_path, done, max(size, done))
    if done == 0:
        display(source_path, 0, 0)
    if args.preserve:
        await target.setstat(target_path, _mode_and_times(attrs))


def _mode_and_times(attrs: SFTPAttributes) -> SFTPAttributes:
    from ..sftp import SFTPAttributes

    return SFTPAttributes(st_mode=attrs.st_mode, st_atime=attrs.st_atime, st_mtime=attrs.st_mtime)
