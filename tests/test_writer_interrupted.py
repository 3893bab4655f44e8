"""A write interrupted part way through a batch must not leave a hole in the byte stream (issue 12).

The writer sends what the state has sealed in batches; when it is cancelled while
the socket is full, part of a packet may be in the kernel and the rest in its
hands. If that rest were dropped, whatever is written next (the DISCONNECT and the
rest of the queue that ``aclose()`` flushes) would follow half a packet, and the
server would see a corrupted stream instead of our goodbye. The scripted server
here decrypts every byte it gets, so a hole fails the test as a bad packet.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from hostile_server import accept_exec, accept_none_auth, connected, scripted
from scripted_auth import ScriptedLink

import trissh
from trissh import _messages as msg
from trissh._driver import SSHClientTransport
from trissh._life_cycle import TransportStatus
from trissh._transport.negotiate import AlgorithmPreferences
from trissh._transport.state import TransportState
from trissh._wire import Reader

#: What the client writes: a pattern the server can check, far more than the
#: kernel's buffers on both ends and the send queue's high-water mark hold.
PATTERN = bytes(range(256)) * (64 * 1024 * 4)  # 64 MiB
CHUNK = 256 * 1024


async def _wait_for(condition: Any) -> None:
    """Wait, a scheduler round at a time, until ``condition()`` holds (the test's timeout bounds it)."""
    while not condition():
        await trio.sleep(0.001)


@pytest.mark.timeout(120)
async def test_cancel_while_close_waits_for_a_stuck_writer_keeps_the_stream_whole() -> None:
    resume_reading = trio.Event()
    server_done = trio.Event()
    seen: dict[str, Any] = {"data": bytearray(), "disconnect": None}

    async def script(link: ScriptedLink) -> None:
        try:
            await serve(link)
        finally:
            server_done.set()

    async def serve(link: ScriptedLink) -> None:
        await accept_none_auth(link)
        await accept_exec(link, window=len(PATTERN))
        await resume_reading.wait()  # until then the client's socket fills up
        while True:
            payload = await link.receive()  # raises on a bad packet (a hole in the stream)
            if not payload:
                return
            reader = Reader(payload, msg.message_name(payload[0]))
            kind = reader.byte()
            if kind == msg.CHANNEL_DATA:
                reader.uint32()
                seen["data"] += reader.string()
            elif kind == msg.DISCONNECT:
                seen["disconnect"] = reader.uint32()
                return

    with trio.fail_after(100):
        async with scripted(script) as where, trio.open_nursery() as nursery:
            outer = trio.CancelScope()
            transports: list[Any] = []

            async def user() -> None:
                with outer:
                    async with connected(where) as conn:
                        transport = conn._transport
                        transports.append(transport)
                        async with conn.open_process("cat") as process, trio.open_nursery() as senders:

                            async def send() -> None:
                                view = memoryview(PATTERN)
                                for start in range(0, len(view), CHUNK):
                                    await process.stdin.send_all(view[start : start + CHUNK])

                            senders.start_soon(send)
                            # Full: the kernel takes no more, so the writer is stuck part way through a batch.
                            await _wait_for(lambda: transport._send_queue.full and transport._writing)
                            senders.cancel_scope.cancel()
                    # aclose() is flushing the queue when the outer scope is cancelled (below).

            nursery.start_soon(user)
            await _wait_for(lambda: bool(transports))
            transport = transports[0]
            # close() has sealed its DISCONNECT and waits, shielded, for the stuck writer.
            await _wait_for(lambda: transport.status is TransportStatus.CLOSING and transport._writer_idle)
            outer.cancel()  # the writer task, in the connection's nursery, is cancelled mid-write
            await _wait_for(lambda: transport.status is TransportStatus.CANCELLED)
            resume_reading.set()
            await server_done.wait()

    assert transport.status is TransportStatus.CLOSED
    data = bytes(seen["data"])
    assert data, "no channel data reached the server"
    assert data == PATTERN[: len(data)], "the channel data arrived with a hole or out of order"
    assert seen["disconnect"] == trissh.DisconnectReason.BY_APPLICATION


class _StallingStream(trio.abc.Stream):
    """A stream that takes part of the first write and then never finishes it (a stalled tunnel)."""

    def __init__(self) -> None:
        self.writes = 0
        self.stalled = trio.Event()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes += 1
        self.stalled.set()
        await trio.sleep_forever()  # part of ``data`` went, nobody can say how much

    async def wait_send_all_might_not_block(self) -> None:
        await trio.sleep_forever()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@pytest.mark.timeout(30)
async def test_nothing_follows_an_interrupted_write_to_a_stream_that_cannot_say_how_much_it_took() -> None:
    """Over a stream that is not a socket (a tunnel's channel) the unsent rest is unknown: after an
    interrupted write, nothing more may be written, and aclose() must not wait for it."""
    stream = _StallingStream()
    prefs = AlgorithmPreferences(
        kex=["curve25519-sha256"], host_key=["ssh-ed25519"], ciphers=["aes128-gcm@openssh.com"], macs=[]
    )
    transport = SSHClientTransport(stream, TransportState(prefs))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            tasks = trio.CancelScope()

            async def run_transport() -> None:
                with tasks:
                    async with trio.open_nursery() as transport_nursery:
                        transport.start(transport_nursery)
                        await trio.sleep_forever()

            nursery.start_soon(run_transport)
            await stream.stalled.wait()  # the writer is inside send_all with our version and KEXINIT
            nursery.start_soon(transport.aclose)
            await _wait_for(lambda: transport.status is TransportStatus.CLOSING and transport._writer_idle)
            tasks.cancel()  # the writer is cancelled in the middle of its write
    assert transport.status is TransportStatus.CLOSED
    assert stream.writes == 1, "bytes were written after a write that was cut short at an unknown point"
