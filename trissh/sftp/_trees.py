"""Walking a remote tree: ``walk``, ``glob`` and ``rmtree``, built on the client's single requests."""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import AsyncIterator
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from ._errors import SFTPError, SFTPNoSuchFile
from ._types import StrPath, shown_path

if TYPE_CHECKING:
    from ._client import SFTPClient

__all__ = ["glob", "rmtree", "walk"]


async def walk(
    client: SFTPClient, top: StrPath, *, topdown: bool = True, follow_symlinks: bool = False
) -> AsyncIterator[tuple[str, list[str], list[str]]]:
    """``(dirpath, dirnames, filenames)`` for ``top`` and every directory below, as :func:`os.walk`
    (a symlink to a directory is listed among the files unless ``follow_symlinks``)."""
    top = shown_path(top)
    dirs: list[str] = []
    files: list[str] = []
    async for entry in client.scandir(top):
        attrs = entry.attrs
        if attrs.is_symlink() and follow_symlinks:
            with contextlib.suppress(SFTPError):  # a dangling link stays among the files
                attrs = await client.stat(posixpath.join(top, entry.filename))
        (dirs if attrs.is_dir() else files).append(entry.filename)
    dirs.sort()
    files.sort()
    if topdown:
        yield top, dirs, files
    for name in dirs:
        async for item in client.walk(
            posixpath.join(top, name), topdown=topdown, follow_symlinks=follow_symlinks
        ):
            yield item
    if not topdown:
        yield top, dirs, files


async def glob(client: SFTPClient, pattern: str) -> list[str]:
    """Paths matching ``pattern`` (``*``, ``?``, ``[...]`` within one path component), sorted."""
    absolute = pattern.startswith("/")
    parts = [part for part in pattern.split("/") if part]
    found = ["/" if absolute else ""]
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        following: list[str] = []
        for base in found:
            if not any(c in part for c in "*?["):
                candidate = posixpath.join(base, part) if base else part
                if await client._exists_quietly(candidate):
                    following.append(candidate)
                continue
            try:
                async for entry in client.scandir(base or "."):
                    if part[0] != "." and entry.filename.startswith("."):
                        continue  # as the shell: a wildcard does not match a leading dot
                    if fnmatchcase(entry.filename, part) and (last or entry.attrs.is_dir()):
                        following.append(posixpath.join(base, entry.filename) if base else entry.filename)
            except (SFTPNoSuchFile, NotADirectoryError, PermissionError):
                continue
        found = following
    return sorted(found) if parts else []


async def rmtree(client: SFTPClient, path: StrPath) -> None:
    """Remove a directory and everything in it (symlinks are removed, not followed)."""
    shown = shown_path(path)
    if (await client.lstat(shown)).is_symlink():
        raise OSError(f"{shown}: rmtree on a symbolic link")
    entries = [entry async for entry in client.scandir(shown)]
    for entry in entries:
        full = posixpath.join(shown, entry.filename)
        if entry.attrs.is_dir():
            await rmtree(client, full)
        else:
            await client.remove(full)
    await client.rmdir(shown)
