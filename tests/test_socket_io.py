"""The transport's direct socket reads and writes (trissh._socket_io), over a real socket pair."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from trissh._socket_io import close, receive_into, receive_some, send_all, send_now


@pytest.fixture
async def pair() -> AsyncIterator[tuple[trio.socket.SocketType, trio.socket.SocketType]]:
    a, b = trio.socket.socketpair()
    with a, b:
        yield a, b


async def test_receive_waits_for_data_then_returns_what_arrived(pair) -> None:
    a, b = pair

    async def later() -> None:
        await trio.sleep(0.05)
        await b.send(b"hello")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(later)
        assert await receive_some(a, 100) == b"hello"


async def test_receive_into_fills_the_buffer_from_its_start(pair) -> None:
    a, b = pair
    await b.send(b"abc")
    buffer = bytearray(b"xxxxxx")
    assert await receive_into(a, buffer) == 3
    assert buffer == b"abcxxx"


async def test_end_of_stream(pair) -> None:
    a, b = pair
    b.close()
    assert await receive_some(a, 10) == b""
    assert await receive_into(a, bytearray(10)) == 0


async def test_send_all_waits_while_the_peer_does_not_read(pair) -> None:
    a, b = pair
    data = os.urandom(8 << 20)  # far more than the socket buffers hold
    received = bytearray()

    async def drain() -> None:
        while len(received) < len(data):
            await trio.sleep(0.001)
            received.extend(await b.recv(1 << 20))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        await send_all(a, memoryview(data))
    assert received == data


async def test_an_interrupted_send_all_hands_back_exactly_what_it_did_not_write(pair) -> None:
    """Cancelled while the peer does not read: what went plus what comes back is the data, in order."""
    a, b = pair
    data = os.urandom(8 << 20)
    kept: list[bytes] = []
    with trio.move_on_after(0.05) as scope:
        await send_all(a, memoryview(data), lambda rest: kept.append(bytes(rest)))
    assert scope.cancelled_caught and len(kept) == 1
    written = len(data) - len(kept[0])
    assert 0 < written < len(data)
    received = bytearray()
    while len(received) < written:
        received.extend(await b.recv(1 << 20))
    assert bytes(received) + kept[0] == data


async def test_cancelled_before_sending_hands_back_everything(pair) -> None:
    a, _b = pair
    kept: list[bytes] = []
    with trio.CancelScope() as scope:
        scope.cancel()
        await send_all(a, memoryview(b"all of it"), lambda rest: kept.append(bytes(rest)))
    assert kept == [b"all of it"]


async def test_each_call_is_a_checkpoint_even_when_it_need_not_wait(pair) -> None:
    a, b = pair
    await b.send(b"x" * 10)
    with trio.testing.assert_checkpoints():
        await receive_some(a, 1)
    with trio.testing.assert_checkpoints():
        await receive_into(a, bytearray(1))
    with trio.testing.assert_checkpoints():
        await send_all(a, memoryview(b"y"))


async def test_cancelled_before_reading_reads_nothing(pair) -> None:
    a, b = pair
    await b.send(b"kept")
    with trio.CancelScope() as scope:
        scope.cancel()
        await receive_some(a, 10)
    assert await receive_some(a, 10) == b"kept"


async def test_closing_the_socket_wakes_a_waiting_reader_and_fails_later_calls(pair) -> None:
    a, _ = pair

    async def close_soon() -> None:
        await trio.sleep(0.05)
        a.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(close_soon)
        with pytest.raises(trio.ClosedResourceError):
            await receive_some(a, 10)
    # The descriptor number may already belong to another file: never used again.
    with pytest.raises(trio.ClosedResourceError):
        await receive_into(a, bytearray(10))
    with pytest.raises(trio.ClosedResourceError):
        await send_all(a, memoryview(b"x"))


async def test_a_reset_connection_is_an_os_error(pair) -> None:
    a, b = pair
    b.close()
    with pytest.raises(OSError):
        for _ in range(100):  # the first writes may still be buffered
            await send_all(a, memoryview(b"x" * 65536))


async def test_send_now_writes_what_fits_and_never_waits(pair) -> None:
    a, b = pair
    assert send_now(a, memoryview(b"now")) == 3
    assert await b.recv(10) == b"now"
    total = 0
    while (sent := send_now(a, memoryview(bytes(1 << 20)))) > 0:  # until the socket's buffers are full
        total += sent
    assert total > 0
    assert send_now(a, memoryview(b"x")) == 0


async def _tcp_pair() -> tuple[trio.socket.SocketType, trio.socket.SocketType]:
    listener = trio.socket.socket()
    with listener:
        await listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = trio.socket.socket()
        await client.connect(listener.getsockname())
        server, _ = await listener.accept()
    return client, server


@pytest.mark.parametrize("drain", [True, False])
async def test_close_reads_what_arrived_first_so_the_peer_gets_a_fin_not_a_reset(drain: bool) -> None:
    a, b = await _tcp_pair()
    with a, b:
        await b.send(b"unread")
        await trio.sleep(0.05)  # arrived
        if drain:
            close(a)
            assert a.fileno() == -1
            assert await b.recv(10) == b""  # an orderly end of stream
        else:  # what a plain close does with unread data: the peer is reset
            a.close()
            with pytest.raises(ConnectionResetError):
                await b.recv(10)
