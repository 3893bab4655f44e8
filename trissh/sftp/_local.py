"""The local side of a transfer: files written and read in Trio's worker threads.

Every function here that touches the disk is plain blocking code, called through
``trio.to_thread.run_sync``, a :data:`DISK_BLOCK` at a time, so the event loop never waits on the disk
and a thread hop is paid per MiB rather than per SFTP request.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import stat as stat_module
from collections.abc import Sequence
from typing import Final

import trio

from ._attributes import SFTPAttributes
from ._codec import WRITE_HEADER_ROOM

__all__ = [
    "DISK_BLOCK",
    "NAME_MAX",
    "LocalWriter",
    "WriteBuffers",
    "local_entries",
    "local_size",
    "open_and_read",
    "temporary_name",
]

#: Local reads and writes are gathered into blocks of this size (one worker-thread hop each).
DISK_BLOCK: Final = 1024 * 1024
#: The longest file name most file systems take (ext4, xfs, btrfs, tmpfs: NAME_MAX).
NAME_MAX: Final = 255
# The most buffers one pwritev takes (Linux: 1024).
_IOV_MAX: Final = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16


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


class LocalWriter:
    """Writes a download in order, a block at a time; the file is created at the first block."""

    def __init__(self, path: str, start: int, *, append: bool) -> None:
        self.path = path
        self._append = append
        self._fd: int | None = None
        # The pieces as received, written with one gathering write: no copy into a buffer of our own.
        self._pieces: list[bytes | memoryview] = []
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
        done = 0  # pieces written
        while done < len(pieces):
            written = os.pwritev(fd, pieces[done : done + _IOV_MAX], self._offset)
            self._offset += written
            while done < len(pieces) and written >= len(pieces[done]):
                written -= len(pieces[done])
                done += 1
            if written:  # a short write: go on from where it stopped
                pieces[done] = memoryview(pieces[done])[written:]

    async def add(self, chunks: Sequence[bytes | memoryview], size: int) -> None:
        """Queue ``chunks`` (``size`` bytes in all); written a block at a time."""
        self._pieces.extend(chunks)
        self._buffered += size
        if self._buffered >= DISK_BLOCK or len(self._pieces) >= _IOV_MAX:
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


def local_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def local_entries(
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


class WriteBuffers:
    """Up to ``want`` bytes of a file read at ``offset`` into WRITE packets of ``chunk`` bytes each,
    behind room for their headers (:meth:`SFTPCodec.write_in_place`): the data is read where it is
    sent from, never copied.

    Attributes:
        packets: ``(buffer, data length)`` in file order; only the last may be short.
        size: the bytes read (less than asked for only at end of file).
    """

    def __init__(self, fd: int, offset: int, want: int, chunk: int) -> None:
        buffers = [bytearray(WRITE_HEADER_ROOM + min(chunk, want - at)) for at in range(0, want, chunk)]
        views = [memoryview(buffer)[WRITE_HEADER_ROOM:] for buffer in buffers]
        self.size = _read_into(fd, list(views), offset)  # it consumes the list it is given
        self.packets: list[tuple[bytearray, int]] = []
        left = self.size
        for buffer, view in zip(buffers, views, strict=True):
            if not left:
                break
            self.packets.append((buffer, min(left, len(view))))
            left -= min(left, len(view))


def _read_into(fd: int, views: list[memoryview], offset: int) -> int:
    """Fill ``views`` from ``fd`` at ``offset`` until they are full or the file ends."""
    total = 0
    while views:
        if hasattr(os, "preadv"):
            got = os.preadv(fd, views[:_IOV_MAX], offset + total)
        else:  # one buffer at a time, through a copy
            data = os.pread(fd, len(views[0]), offset + total)
            views[0][: len(data)] = data
            got = len(data)
        if not got:
            break
        total += got
        while views and got >= len(views[0]):
            got -= len(views.pop(0))
        if got:
            views[0] = views[0][got:]
    return total


def open_and_read(path: str, offset: int, want: int, chunk: int) -> tuple[int, WriteBuffers]:
    """Open ``path`` for reading and read its first :class:`WriteBuffers`, in one thread hop."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        return fd, WriteBuffers(fd, offset, want, chunk)
    except BaseException:
        os.close(fd)
        raise
