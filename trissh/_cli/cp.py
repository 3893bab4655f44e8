"""``trissh cp``: scp's command line over SFTP.

    trissh cp [-346BCpqrTv] [-c cipher] [-F config] [-i identity] [-J destination] [-o option]
              [-P port] source ... target

A remote file is ``[user@]host:path`` (a colon before any slash; ``[v6addr]:path``) or
``scp://[user@]host[:port][/path]``; anything else is local. Several sources go into the target
directory; remote to remote goes through this machine (scp's ``-3``, its default since OpenSSH 9).
Progress: see :mod:`trissh._cli.progress`.
"""

from __future__ import annotations

import contextlib
import getopt
import os
import posixpath
import shutil
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from .common import EXIT_SSH_ERROR, SSHSetup, run_main
from .progress import TransferDisplay
from .ssh_args import UsageError, parse_port

if TYPE_CHECKING:
    from ..sftp import SFTPAttributes, SFTPClient

__all__ = ["cp_main"]

CP_USAGE = """\
usage: trissh cp [-346BCpqrTv] [-c cipher] [-F config] [-i identity_file] [-J destination]
                 [-o ssh_option] [-P port] source ... target"""


@dataclass(frozen=True)
class Endpoint:
    """A source or the target: ``host`` None for a local path."""

    path: str
    host: str | None = None
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        if self.host is None:
            return self.path
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.path}"


def parse_endpoint(text: str) -> Endpoint:
    if text.startswith("scp://"):
        rest = text[len("scp://") :]
        authority, slash, path = rest.partition("/")
        user, _, hostport = authority.rpartition("@")
        host, port = hostport, None
        if hostport.startswith("["):
            host, _, tail = hostport[1:].partition("]")
            port = parse_port(tail[1:]) if tail.startswith(":") else None
        elif ":" in hostport:
            host, port_text = hostport.split(":", 1)
            port = parse_port(port_text)
        if not host:
            raise UsageError(f"invalid URI {text!r}")
        return Endpoint(path if slash else ".", host, user or None, port)
    if text.startswith(("/", "./", "../")) or ":" not in text:
        return Endpoint(text)
    if text.startswith("[") or (text.find("@") < text.find("[") and "[" in text):
        user, _, rest = text.rpartition("@") if "@" in text.split("]")[0] else ("", "", text)
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or not tail.startswith(":"):
            raise UsageError(f"invalid remote path {text!r}")
        return Endpoint(tail[1:] or ".", host, user or None)
    head, _, path = text.partition(":")
    if "/" in head:
        return Endpoint(text)  # a local path with a colon in it
    user, _, host = head.rpartition("@")
    if not host:
        raise UsageError(f"invalid remote path {text!r}: no host")
    return Endpoint(path or ".", host, user or None)


@dataclass
class CopyArgs:
    sources: list[Endpoint]
    target: Endpoint
    recursive: bool = False
    preserve: bool = False
    quiet: bool = False
    config_file: str | None = None
    lines: list[str] | None = None


def parse_cp_args(argv: list[str]) -> CopyArgs:
    try:
        found, rest = getopt.gnu_getopt(argv, "346BCpqrTvc:F:i:J:l:o:P:S:")
    except getopt.GetoptError as exc:
        raise UsageError(str(exc)) from None
    args = CopyArgs([], Endpoint("."), lines=[])
    lines: list[str] = []
    for option, value in found:
        if option == "-r":
            args.recursive = True
        elif option == "-p":
            args.preserve = True
        elif option == "-q":
            args.quiet = True
        elif option == "-B":
            lines.append("BatchMode yes")
        elif option == "-C":
            lines.append("Compression yes")
        elif option in ("-4", "-6"):
            lines.append(f"AddressFamily {'inet' if option == '-4' else 'inet6'}")
        elif option == "-c":
            lines.append(f"Ciphers {value}")
        elif option == "-F":
            args.config_file = value
        elif option == "-i":
            lines.append(f'IdentityFile "{value}"')
        elif option == "-J":
            lines.append(f"ProxyJump {value}")
        elif option == "-o":
            key, sep, rest_value = value.partition("=")
            lines.append(f"{key.strip()} {rest_value.strip()}" if sep and " " not in key.strip() else value)
        elif option == "-P":
            lines.append(f"Port {parse_port(value)}")
        elif option == "-S":
            raise UsageError("-S (another ssh program) is not supported: trissh is the ssh")
        # -3 (through this machine) is how remote to remote always goes; -T, -v, -l: accepted
    if len(rest) < 2:
        raise UsageError("a source and a target are needed")
    args.sources = [parse_endpoint(text) for text in rest[:-1]]
    args.target = parse_endpoint(rest[-1])
    args.lines = lines
    return args


def cp_main(argv: list[str]) -> int:
    try:
        args = parse_cp_args(argv)
    except UsageError as exc:
        print(f"trissh cp: {exc}\n{CP_USAGE}", file=sys.stderr)
        return EXIT_SSH_ERROR
    return run_main(lambda: trio.run(_copy_all, args))


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
