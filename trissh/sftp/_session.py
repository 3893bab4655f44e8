"""One SFTP session: requests out, responses matched back to the tasks that wait for them.

Theory of operation
-------------------
The session runs two tasks beside the caller's block, on the ``sftp`` subsystem's channel:

* the **writer** takes whole request packets from an in-memory queue and sends them on the channel
  (joining what has queued up into one write, so many small requests share a CHANNEL_DATA). A caller
  never writes to the channel itself: a cancellation between two halves of a packet would leave the
  server reading garbage, so a request is queued whole or not at all;
* the **reader** feeds what arrives to the sans-IO :class:`~trissh.sftp._codec.SFTPCodec` and hands
  each response to the :class:`_Waiter` of its request id.

A caller cancelled while waiting abandons its waiter: the response is dropped when it arrives,
except a HANDLE (an OPEN or OPENDIR that went through after all), whose handle is closed at once so
nothing stays open on the server. SFTP has no way to cancel a request already sent.

When the channel ends, the server breaks the protocol, or the connection dies, the session is
*broken*: every waiter, and every later request, raises the one error that broke it.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Callable
from typing import Final

import trio

from .._channels.session import Process
from .._errors import SSHError
from ._codec import Handle, Response, SFTPCodec, Status, Version
from ._constants import SFTP_VERSION, StatusCode
from ._errors import SFTPError, SFTPProtocolError, error_from_status

__all__ = ["SFTPSession", "SessionState"]

log = logging.getLogger("trissh.sftp")

# The writer joins queued packets into one channel write up to this size (a few CHANNEL_DATA packets).
_BATCH_BYTES: Final = 256 * 1024
# A packet this long is written as it is, not copied into a batch (a WRITE's data, built in place).
_LARGE_PACKET: Final = 16 * 1024


class SessionState(enum.Enum):
    STARTING = "starting"  # INIT sent, VERSION awaited
    OPEN = "open"
    CLOSED = "closed"  # closed by us
    BROKEN = "broken"  # ended by the server, the protocol or the connection


class _Waiter:
    __slots__ = ("abandoned", "event", "response")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.response: Response | None = None
        self.abandoned = False


class SFTPSession:
    """Request/response plumbing of one SFTP channel; :class:`~trissh.sftp.SFTPClient` is the API.

    Attributes:
        extensions: the server's extensions from its VERSION packet (name -> data).
        error: what broke the session, once it is broken.
    """

    def __init__(self, process: Process, codec: SFTPCodec | None = None) -> None:
        self.process = process
        self.codec = codec or SFTPCodec()
        self.state = SessionState.STARTING
        self.extensions: dict[str, bytes] = {}
        self.error: SSHError | None = None
        self._waiting: dict[int, _Waiter] = {}
        # Unbounded, but what waits here is bounded by the requests callers have in flight.
        self._outgoing, self._to_write = trio.open_memory_channel[bytes | memoryview](math.inf)
        self._version = trio.Event()

    # --- running -------------------------------------------------------------------------------------

    async def start(self, nursery: trio.Nursery) -> None:
        """Start the reader and writer in ``nursery``, send INIT and wait for the server's VERSION."""
        nursery.start_soon(self._read, name="trissh.sftp.reader")
        nursery.start_soon(self._write, name="trissh.sftp.writer")
        self._outgoing.send_nowait(self.codec.init())
        await self._version.wait()
        if self.error is not None:
            raise self.error
        if self.state is SessionState.STARTING:
            self.state = SessionState.OPEN

    def close(self) -> None:
        """End the session from our side (the channel is closed by whoever opened it)."""
        if self.state in (SessionState.STARTING, SessionState.OPEN):
            self.state = SessionState.CLOSED
            self._break(SFTPError(StatusCode.NO_CONNECTION, "the SFTP session is closed"))
        self._outgoing.close()

    def _break(self, error: SSHError) -> None:
        if self.error is None:
            self.error = error
            if self.state is not SessionState.CLOSED:
                self.state = SessionState.BROKEN
                log.debug("SFTP session ended: %s", error)
        for waiter in self._waiting.values():
            waiter.event.set()
        self._waiting.clear()
        self._version.set()

    async def _read(self) -> None:
        stdout = self.process.stdout
        codec = self.codec
        try:
            while True:
                parts = await stdout.receive_parts()
                if not parts:
                    raise SFTPError(StatusCode.CONNECTION_LOST, "the server ended the SFTP session")
                for part in parts:  # one at a time, so that a DATA's payload is kept, not copied
                    codec.receive_data(part)
                    while (response := codec.next_response()) is not None:
                        self._deliver(response)
        except SSHError as exc:
            self._break(exc)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self._break(SFTPError(StatusCode.NO_CONNECTION, "the SFTP session is closed"))

    def _deliver(self, response: Response) -> None:
        if isinstance(response, Version):
            if response.version != SFTP_VERSION:  # the codec checks it too; this is the session's rule
                raise SFTPProtocolError(f"the server speaks SFTP version {response.version}, not 3")
            self.extensions = dict(response.extensions)
            self._version.set()
            return
        waiter = self._waiting.pop(response.request_id, None)
        if waiter is None:
            return  # the session broke meanwhile
        if waiter.abandoned:
            if isinstance(response, Handle):
                self.close_nowait(response.handle)  # an OPEN whose caller was cancelled went through
            return
        waiter.response = response
        waiter.event.set()

    async def _write(self) -> None:
        stdin = self.process.stdin
        try:
            async for packet in self._to_write:
                # Let the other tasks woken with us queue their requests first: one write then
                # carries them all (many files at once: an OPEN, READs and a CLOSE for each).
                await trio.lowlevel.cancel_shielded_checkpoint()
                if len(packet) >= _LARGE_PACKET:
                    await stdin.send_all(packet)
                    continue
                batch = [packet]
                size = len(packet)
                large = None  # a large packet met while batching: sent after the batch, not copied
                while size < _BATCH_BYTES:
                    try:
                        more = self._to_write.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    if len(more) >= _LARGE_PACKET:
                        large = more
                        break
                    batch.append(more)
                    size += len(more)
                await stdin.send_all(batch[0] if len(batch) == 1 else b"".join(batch))
                if large is not None:
                    await stdin.send_all(large)
        except SSHError as exc:
            self._break(exc)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self._break(SFTPError(StatusCode.NO_CONNECTION, "the SFTP session is closed"))

    # --- requests --------------------------------------------------------------------------------------

    def check_open(self) -> None:
        if self.error is not None:
            raise self.error

    def send(self, build: Callable[[], tuple[int, bytes | memoryview]]) -> _Waiter:
        """Queue the request ``build`` makes; returns its waiter (see :meth:`wait`)."""
        self.check_open()
        request_id, packet = build()
        waiter = _Waiter()
        self._waiting[request_id] = waiter
        self._outgoing.send_nowait(packet)
        return waiter

    def close_nowait(self, handle: bytes) -> None:
        """Queue a CLOSE for ``handle`` whose answer is dropped (nothing waits for it): for handles
        opened for reading or listing, and late ones, where the answer tells nothing."""
        if self.error is None:
            request_id, packet = self.codec.close(handle)
            self._waiting[request_id] = _abandoned()
            self._outgoing.send_nowait(packet)

    async def wait(self, waiter: _Waiter) -> Response:
        """The response for ``waiter``; a cancellation abandons it (see the module docstring)."""
        try:
            await waiter.event.wait()
        except trio.Cancelled:
            waiter.abandoned = True
            raise
        if waiter.response is None:
            assert self.error is not None
            raise self.error
        return waiter.response

    async def request(self, build: Callable[[], tuple[int, bytes]]) -> Response:
        """Send one request and wait for its response."""
        try:
            waiter = self.send(build)
        except BaseException:
            await trio.lowlevel.checkpoint()
            raise
        return await self.wait(waiter)

    async def request_status(self, build: Callable[[], tuple[int, bytes]], path: str | None = None) -> None:
        """A request answered by STATUS: return on OK, raise the matching :class:`SFTPError` otherwise."""
        response = await self.request(build)
        check_status(response, path)


def _abandoned() -> _Waiter:
    waiter = _Waiter()
    waiter.abandoned = True
    return waiter


def check_status(response: Response, path: str | None = None) -> None:
    """Raise for a STATUS that is not OK (or a response that is not a STATUS at all)."""
    if not isinstance(response, Status):
        raise SFTPProtocolError(f"expected a STATUS reply, got {type(response).__name__}")
    if response.code != StatusCode.OK:
        raise error_from_status(response.code, response.message, path)
