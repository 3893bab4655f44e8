"""The relay's copy-free download path: a channel's packets taken unjoined (``take_parts``) and written out
with one gathering write (``send_all_parts``), partial writes included."""

from __future__ import annotations

import hashlib
import socket

import trio
from test_channel_state import open_channel

from trissh import _messages as msg
from trissh._channels.streams import ChannelStream
from trissh._socket_io import send_all_parts
from trissh._wire import byte, string, uint32


def data_packet(local_id: int, data: bytes) -> bytes:
    return byte(msg.CHANNEL_DATA) + uint32(local_id) + string(data)


async def test_take_parts_splits_at_the_limit_and_grants_window() -> None:
    with trio.fail_after(10):
        mux, channel, _ = open_channel()
        for piece in (b"a" * 10, b"b" * 10, b"c" * 10):
            mux.handle_packet(1, data_packet(channel.local_id, piece))
        stream = ChannelStream(channel)
        first = await stream.receive_parts(15)
        assert [bytes(p) for p in first] == [b"a" * 10, b"b" * 5]
        rest = await stream.receive_parts()
        assert [bytes(p) for p in rest] == [b"b" * 5, b"c" * 10]
        assert channel.buffered[0] == 0 and channel._consumed == 30  # counted towards the next adjust
        mux.handle_packet(2, byte(msg.CHANNEL_EOF) + uint32(channel.local_id))
        assert await stream.receive_parts() == []
        assert await stream.receive_some() == b""


async def test_send_all_parts_survives_partial_writes() -> None:
    """A small send buffer and a slow reader: every write is partial somewhere, and the bytes arrive in
    order, whole."""
    parts_in = [bytes([i % 251]) * (1000 + 37 * i) for i in range(300)]
    expected = hashlib.sha256(b"".join(parts_in)).hexdigest()
    a, b = trio.socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    with a, b, trio.fail_after(20):
        received = hashlib.sha256()
        total = sum(map(len, parts_in))

        async def read_slowly() -> None:
            got = 0
            while got < total:
                chunk = await b.recv(3000)
                assert chunk
                received.update(chunk)
                got += len(chunk)
                await trio.sleep(0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_slowly)
            parts: list[bytes | memoryview] = list(parts_in)
            await send_all_parts(a, parts)
            assert parts == []  # consumed as written
    assert received.hexdigest() == expected
