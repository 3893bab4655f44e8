"""A remote file opened over SFTP, as an async file object.

:class:`SFTPFile` keeps its own position, as a local file does (SFTP itself has none: every READ
and WRITE names its offset). Large reads and writes are split into requests of the server's size
and pipelined (:mod:`~trissh.sftp._pipeline`), so ``await f.read()`` of a big file runs at the
speed of a transfer, not of one round trip per 32 KiB. A file opened for appending starts its
position at the end; the server appends whatever offset a WRITE names.
"""

from __future__ import annotations

import enum
import os
from collections.abc import AsyncIterator
from types import TracebackType
from typing import TYPE_CHECKING

import trio

from .._public import public
from .._wire import string
from ._attributes import SFTPAttributes
from ._codec import Attrs
from ._errors import SFTPProtocolError
from ._pipeline import WritePipeline
from ._session import check_status

if TYPE_CHECKING:
    from ._client import SFTPClient

__all__ = ["FileState", "SFTPFile"]


class FileState(enum.Enum):
    OPEN = "open"
    CLOSED = "closed"


@public
class SFTPFile:
    """An open remote file: ``read``, ``write``, ``seek``, ``tell``, ``stat``, ``truncate``, ``fsync``.

    Use it as an async context manager (``async with await sftp.open(path) as f``, as with
    ``trio.open_file``), or call :meth:`aclose`. ``async for chunk in f`` reads from the current
    position to the end, chunk by chunk.
    """

    def __init__(
        self, client: SFTPClient, handle: bytes, path: str, *, readable: bool, writable: bool
    ) -> None:
        self._client = client
        self._handle = handle
        self.path = path
        self.readable = readable
        self.writable = writable
        self._position = 0
        self.state = FileState.OPEN

    def __repr__(self) -> str:
        return f"<SFTPFile {self.path!r} {self.state.value} at {self._position}>"

    @property
    def handle(self) -> bytes:
        return self._handle

    def _check(self, *, reading: bool = False, writing: bool = False) -> None:
        if self.state is FileState.CLOSED:
            raise ValueError(f"I/O on a closed SFTP file ({self.path})")
        if reading and not self.readable:
            raise OSError(f"{self.path}: not open for reading")
        if writing and not self.writable:
            raise OSError(f"{self.path}: not open for writing")

    # --- position -------------------------------------------------------------------------------------

    def tell(self) -> int:
        return self._position

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position, as :meth:`io.IOBase.seek`; ``SEEK_END`` asks the server for the size."""
        self._check()
        if whence == os.SEEK_SET:
            await trio.lowlevel.checkpoint()
            position = offset
        elif whence == os.SEEK_CUR:
            await trio.lowlevel.checkpoint()
            position = self._position + offset
        elif whence == os.SEEK_END:
            size = (await self.stat()).st_size
            if size is None:
                raise SFTPProtocolError(f"{self.path}: the server did not say the file's size")
            position = size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    # --- data -----------------------------------------------------------------------------------------

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the position (``-1``: to the end); ``b""`` at end of file."""
        self._check(reading=True)
        if size == 0:
            await trio.lowlevel.checkpoint()
            return b""
        end = None if size < 0 else self._position + size
        reads = self._client._read_ahead(self._handle, self._position, end, self.path)
        data = await reads.read_all()
        self._position += len(data)
        return bytes(data)

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write all of ``data`` at the position; returns its length once the server confirmed it."""
        self._check(writing=True)
        view = memoryview(data).cast("B")
        chunk = self._client.write_chunk
        pipeline = WritePipeline(
            self._client._session, self._handle, depth=self._client.depth, path=self.path
        )
        position = self._position
        try:
            for start in range(0, len(view), chunk):
                await pipeline.write(position + start, view[start : start + chunk])
            await pipeline.flush()
        finally:
            self._position = position + pipeline.confirmed
        if not view:
            await trio.lowlevel.checkpoint()
        return len(view)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """Chunks from the position to the end of file."""
        self._check(reading=True)
        reads = self._client._read_ahead(self._handle, self._position, None, self.path)
        try:
            while (piece := await reads.next()) is not None:
                self._position = piece[0] + piece[1].size
                yield piece[1].data
        finally:
            reads.abandon()

    # --- attributes -----------------------------------------------------------------------------------

    async def stat(self) -> SFTPAttributes:
        """The open file's attributes (FSTAT)."""
        self._check()
        session = self._client._session
        response = await session.request(lambda: session.codec.fstat(self._handle))
        if isinstance(response, Attrs):
            return response.attrs
        check_status(response, self.path)
        raise SFTPProtocolError(f"{self.path}: FSTAT answered with an OK status and no attributes")

    async def setstat(self, attrs: SFTPAttributes) -> None:
        self._check()
        session = self._client._session
        await session.request_status(lambda: session.codec.fsetstat(self._handle, attrs), self.path)

    async def truncate(self, size: int | None = None) -> int:
        """Cut (or extend) the file to ``size`` bytes (default: the position); the position stays."""
        size = self._position if size is None else size
        await self.setstat(SFTPAttributes(st_size=size))
        return size

    async def chmod(self, mode: int) -> None:
        await self.setstat(SFTPAttributes(st_mode=mode))

    async def utime(self, times: tuple[int, int]) -> None:
        atime, mtime = times
        await self.setstat(SFTPAttributes(st_atime=int(atime), st_mtime=int(mtime)))

    async def fsync(self) -> None:
        """Ask the server to flush the file to disk (``fsync@openssh.com``)."""
        self._check()
        await self._client._extension_status("fsync@openssh.com", string(self._handle), path=self.path)

    # --- closing --------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the handle; the server's error for it, if any, is raised. Closing twice is a no-op."""
        if self.state is FileState.CLOSED:
            await trio.lowlevel.checkpoint()
            return
        self.state = FileState.CLOSED
        session = self._client._session
        if session.error is not None:
            await trio.lowlevel.checkpoint()
            return  # the session is gone, and the server's handles with it
        # Once queued, the CLOSE reaches the server even if this wait is cancelled: nothing leaks.
        await session.request_status(lambda: session.codec.close(self._handle), self.path)

    async def __aenter__(self) -> SFTPFile:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
