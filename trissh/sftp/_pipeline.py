"""Pipelined READs and WRITEs on one open handle: many requests in flight, results in order.

SFTP answers each request separately, so a transfer that waited for every reply before sending
the next request would run at one request per round trip. These two classes keep up to ``depth``
requests outstanding instead:

* :class:`ReadAhead` hands out a file's data in offset order. A reply shorter than asked for (the
  server may cut a read anywhere, not only at the end) is followed at once by a READ for the rest,
  waited for before anything later, so order is kept. An EOF status ends the stream; replies still
  in flight after it are abandoned (the session drops them).
* :class:`WritePipeline` sends WRITEs and collects their STATUS replies, counting the bytes the
  server confirmed, which is what a failed upload reports.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import trio

from ._codec import Data, Status
from ._constants import StatusCode
from ._errors import SFTPProtocolError, error_from_status
from ._session import SFTPSession, check_status

if TYPE_CHECKING:
    from ._session import _Waiter

__all__ = ["ReadAhead", "WritePipeline"]


class ReadAhead:
    """Data of ``handle`` from ``offset`` to ``end`` (None: to end of file), in order; ``size_hint``:
    the size the file is expected to have.

    Use :meth:`next` until it returns None, and :meth:`abandon` when stopping early.
    """

    def __init__(
        self,
        session: SFTPSession,
        handle: bytes,
        offset: int,
        end: int | None,
        *,
        chunk: int,
        depth: int,
        path: str | None = None,
        size_hint: int | None = None,
    ) -> None:
        self._session = session
        self._handle = handle
        self._next_offset = offset
        self._end = end
        # Where the file is expected to end (its size when the transfer started): requests stop exactly
        # there, so a whole file needs no short-read follow-up, and the next one finds its EOF.
        self._size_hint = size_hint
        self._chunk = chunk
        self._depth = depth
        # Requests are sent a few at a time, not one per reply: one channel write (and one wake-up of
        # the server) carries several.
        self._refill = max(1, depth // 4)
        self._path = path
        self._pending: deque[tuple[int, int, _Waiter]] = deque()
        self._done = False

    def _request(self, offset: int, length: int) -> _Waiter:
        codec = self._session.codec
        return self._session.send(lambda: codec.read(self._handle, offset, length))

    def _fill(self) -> None:
        end = self._end
        if self._pending and len(self._pending) > self._depth - self._refill:
            return
        while len(self._pending) < self._depth and (end is None or self._next_offset < end):
            offset = self._next_offset
            length = self._chunk if end is None else min(self._chunk, end - offset)
            if self._size_hint is not None and offset < self._size_hint:
                length = min(length, self._size_hint - offset)
            self._pending.append((offset, length, self._request(offset, length)))
            self._next_offset = offset + length

    async def next(self) -> tuple[int, Data] | None:
        """The next ``(offset, data)``, or None at end of file (or at ``end``)."""
        if self._done:
            return None
        self._fill()
        if not self._pending:
            self._done = True
            return None
        offset, length, waiter = self._pending.popleft()
        try:
            response = await self._session.wait(waiter)
        except BaseException:
            self.abandon()
            raise
        if isinstance(response, Data):
            size = response.size
            if not size:
                self.abandon()
                raise SFTPProtocolError(f"{self._path or 'SFTP'}: the server sent an empty DATA reply")
            if size < length:  # a short read: the rest comes next, before anything later
                rest = offset + size
                self._pending.appendleft((rest, length - size, self._request(rest, length - size)))
            return offset, response
        assert isinstance(response, Status)
        if response.code == StatusCode.EOF:
            self.abandon()
            return None
        self.abandon()
        raise error_from_status(response.code, response.message, self._path)

    def abandon(self) -> None:
        """Stop: what is still in flight is dropped when it arrives."""
        self._done = True
        while self._pending:
            self._pending.popleft()[2].abandoned = True

    async def read_all(self) -> bytearray:
        """Everything up to the end, joined."""
        out = bytearray()
        while (piece := await self.next()) is not None:
            for chunk in piece[1].chunks:
                out += chunk
        return out


class WritePipeline:
    """WRITEs on ``handle`` with up to ``depth`` in flight.

    Attributes:
        confirmed: bytes the server has acknowledged (contiguous from the first write only when
            writes are in order, as every transfer here makes them).
    """

    def __init__(self, session: SFTPSession, handle: bytes, *, depth: int, path: str | None = None) -> None:
        self._session = session
        self._handle = handle
        self._depth = depth
        self._path = path
        self._pending: deque[tuple[int, _Waiter]] = deque()
        self.confirmed = 0

    async def write(self, offset: int, data: bytes | memoryview) -> None:
        """Queue one WRITE (at most the server's write length); waits while ``depth`` are in flight."""
        await self._wait_for_room()
        codec = self._session.codec
        handle = self._handle
        waiter = self._session.send(lambda: codec.write(handle, offset, data))
        self._pending.append((len(data), waiter))

    async def write_in_place(self, offset: int, packet: bytearray, length: int) -> None:
        """:meth:`write` for data already in a packet buffer (see ``SFTPCodec.write_in_place``)."""
        await self._wait_for_room()
        codec = self._session.codec
        handle = self._handle
        waiter = self._session.send(lambda: codec.write_in_place(handle, offset, packet, length))
        self._pending.append((length, waiter))

    async def _wait_for_room(self) -> None:
        if len(self._pending) < self._depth:
            await trio.lowlevel.checkpoint()
        while len(self._pending) >= self._depth:
            await self._collect_one()

    async def _collect_one(self) -> None:
        size, waiter = self._pending.popleft()
        try:
            response = await self._session.wait(waiter)
            check_status(response, self._path)
        except BaseException:
            self.abandon()
            raise
        self.confirmed += size

    async def flush(self) -> None:
        """Wait for every WRITE in flight to be confirmed."""
        while self._pending:
            await self._collect_one()

    def abandon(self) -> None:
        while self._pending:
            self._pending.popleft()[1].abandoned = True
