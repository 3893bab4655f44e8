"""Opening a channel of any kind (RFC 4254 §5.1), and giving it up safely.

:func:`open_channel` sends CHANNEL_OPEN and waits for the server's answer:
the open channel, or :class:`~trissh.ChannelOpenError` with the server's
reason code and text. :func:`channel_opened` is the same as an async context
manager whose exit closes the channel. Either way a cancellation at any point
leaves nothing half-open: a channel the server has not confirmed yet is closed
as soon as its confirmation arrives (:meth:`Channel.close_locally`).
Sessions, direct-tcpip and streamlocal streams, and SFTP are short front-ends
over these two functions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeVar

import trio

from .channel import Channel
from .mux import ChannelMux

__all__ = ["channel_opened", "open_channel"]

ChannelT = TypeVar("ChannelT", bound=Channel)


async def open_channel(
    mux: ChannelMux,
    kind: str,
    extra: bytes = b"",
    factory: type[ChannelT] = Channel,  # type: ignore[assignment]
) -> ChannelT:
    """Open a channel of ``kind`` with the type-specific ``extra`` fields; return it once confirmed.

    Raises:
        ChannelOpenError: the server refused (its reason code and description).
        ConnectionLost, ProtocolError, DisconnectError: the connection is gone.
    """
    transport = mux.transport
    if transport.error is not None:
        raise transport.error
    # Wait (cancellably) for queue space before the channel exists: a cancel here leaves nothing behind.
    # From mux.add to queueing the open there is no checkpoint, so a channel in the table is one the
    # server has been asked to open, and close_locally() can finish it when the answer comes.
    await trio.lowlevel.checkpoint_if_cancelled()
    await transport.wait_queue_space()
    channel = mux.add(factory, kind)
    assert isinstance(channel, factory)
    try:
        transport.queue_packet(channel.open_payload(extra))
        await channel.wait_opened()
    except BaseException:
        channel.close_locally()
        raise
    return channel


@asynccontextmanager
async def channel_opened(
    mux: ChannelMux,
    kind: str,
    extra: bytes = b"",
    factory: type[ChannelT] = Channel,  # type: ignore[assignment]
) -> AsyncIterator[ChannelT]:
    """:func:`open_channel` as an async context manager: leaving the block closes the channel."""
    channel = await open_channel(mux, kind, extra, factory)
    try:
        yield channel
    finally:
        channel.close_locally()
