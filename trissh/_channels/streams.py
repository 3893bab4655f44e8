"""Channels as Trio streams: a send half, a receive half, and the two as one half-closeable stream.

Theory of operation
-------------------
:class:`ChannelSendStream` sends a channel's data (a process's stdin),
:class:`ChannelReceiveStream` reads one of its data streams (stdout, or
stderr as extended data), and :class:`ChannelStream` is both at once, the
:class:`trio.abc.HalfCloseableStream` a direct-tcpip or streamlocal channel
is (``send_eof()`` is SSH's CHANNEL_EOF). They follow Trio's stream rules,
checked by ``trio.testing.check_half_closeable_stream``:

* every method is a checkpoint, on every path;
* a second task in ``send_all`` (or ``receive_some``) gets
  :class:`trio.BusyResourceError`;
* after our own ``aclose()`` every method raises
  :class:`trio.ClosedResourceError`, including in the tasks it wakes; when
  the server closed the channel, sending raises
  :class:`trio.BrokenResourceError` and reading returns what arrived, then
  ``b""``;
* when the connection dies, both raise the connection's error (a trissh
  :class:`~trissh.SSHError`) once the data that did arrive is consumed, so a
  cut-off stream never looks like one that ended.

The halves hold no buffers of their own: data waits in the
:class:`~trissh._channels.channel.Channel`, bounded by its window.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TypeVar, final

import trio

from .._public import public
from .channel import Channel

_Taken = TypeVar("_Taken", bytes, list[bytes | memoryview])

__all__ = ["ChannelReceiveStream", "ChannelSendStream", "ChannelStream"]


async def _checked(channel: Channel) -> None:
    """Raise what sending on ``channel`` would raise now, after a checkpoint (as Trio's streams do)."""
    try:
        channel.check_sendable()
    except BaseException:
        await trio.lowlevel.checkpoint()
        raise


@public
@final
class ChannelSendStream(trio.abc.SendStream):
    """The sending direction of a channel (a process's standard input)."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._sending = False

    @property
    def channel(self) -> Channel:
        return self._channel

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            await _checked(self._channel)
            if not data:
                await trio.lowlevel.checkpoint()  # an empty write is a checkpoint too
                return
            await self._channel.send_data(data)
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            await _checked(self._channel)
            await self._channel.wait_send_window()
            await trio.lowlevel.checkpoint()
        finally:
            self._sending = False

    async def send_eof(self) -> None:
        """End the sending direction: the other end reads end-of-file (CHANNEL_EOF)."""
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        channel = self._channel
        if channel.error is not None:
            raise channel.error
        if channel.closed_locally:
            raise trio.ClosedResourceError("the stream is closed")
        await channel.send_eof()

    async def aclose(self) -> None:
        """Send EOF (the process's stdin ends); the channel itself stays open."""
        if self._channel.error is None and not self._channel.closed_locally:
            await self._channel.send_eof()
        else:
            await trio.lowlevel.checkpoint()


@public
@final
class ChannelReceiveStream(trio.abc.ReceiveStream):
    """One data stream of a channel: 0 for the data, 1 for stderr (extended data)."""

    def __init__(self, channel: Channel, stream: int = 0) -> None:
        self._channel = channel
        self._stream = stream
        self._closed = False
        self._receiving = False

    @property
    def channel(self) -> Channel:
        return self._channel

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        chunk = await self._receive(self._channel.take, max_bytes)
        return b"" if chunk is None else chunk

    async def receive_parts(self, max_bytes: int | None = None) -> list[bytes | memoryview]:
        """As :meth:`receive_some`, but the received packets unjoined (``[]`` at end of stream), for a
        gathering write; views stay valid as long as they are held."""
        parts = await self._receive(self._channel.take_parts, max_bytes)
        return [] if parts is None else parts

    async def _receive(
        self, take: Callable[[int, int | None], _Taken | None], max_bytes: int | None
    ) -> _Taken | None:
        """Wait for ``take(stream, max_bytes)`` to give something; None at end of stream."""
        if self._closed or self._channel.closed_locally:
            await trio.lowlevel.checkpoint()
            raise trio.ClosedResourceError("the stream is closed")
        if max_bytes is not None:
            max_bytes = operator.index(max_bytes)  # TypeError for 1.5, as Trio's streams do
            if max_bytes < 1:
                raise ValueError("max_bytes must be at least 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this stream")
        self._receiving = True
        try:
            channel = self._channel
            while True:
                chunk = take(self._stream, max_bytes)
                if chunk is not None:
                    await trio.lowlevel.checkpoint()
                    return chunk
                if channel.closed_locally or self._closed:
                    raise trio.ClosedResourceError("the stream was closed while receiving")
                if channel.error is not None:
                    raise channel.error
                if channel.eof_received:
                    await trio.lowlevel.checkpoint()
                    return None
                await channel.wait_data()
        finally:
            self._receiving = False

    async def aclose(self) -> None:
        """Stop reading: what is buffered, and what arrives later, is discarded."""
        if not self._closed:
            self._closed = True
            self._channel.discard(self._stream)
        await trio.lowlevel.checkpoint()


@public
@final
class ChannelStream(trio.abc.HalfCloseableStream):
    """A bidirectional channel (direct-tcpip, streamlocal, forwarded) as one Trio stream.

    ``aclose()`` closes the channel (CHANNEL_CLOSE, without waiting for the
    server's): both directions end at once, as closing a socket does.
    """

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._send = ChannelSendStream(channel)
        self._receive = ChannelReceiveStream(channel, 0)

    @property
    def channel(self) -> Channel:
        return self._channel

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._send.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._send.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self._send.send_eof()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self._receive.receive_some(max_bytes)

    async def receive_parts(self, max_bytes: int | None = None) -> list[bytes | memoryview]:
        """:meth:`ChannelReceiveStream.receive_parts`."""
        return await self._receive.receive_parts(max_bytes)

    async def aclose(self) -> None:
        self._channel.close_locally()
        await trio.lowlevel.checkpoint()
