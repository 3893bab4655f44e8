"""Resource bounds against a hostile server after authentication (issue 12, item 6).

Each test plays a server over a real key exchange (``tests/scripted_auth.py``) that lets us in and then
misbehaves: floods of IGNORE, of global requests it never reads the answers to, of channel opens, or data
beyond the window. trissh must end with a clear error or carry on, with its memory bounded; the figures
each test sees are printed (``pytest -s``) for the notes.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from scripted_auth import Listening, ScriptedLink, serve_scripted

import trissh
from trissh import _messages as msg
from trissh._channels.channel import INITIAL_WINDOW
from trissh._send_queue import MAX_REPLY_BACKLOG
from trissh._wire import Reader, boolean, byte, string, uint32

MiB = 1024 * 1024
Script = Callable[[ScriptedLink], Awaitable[None]]


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@asynccontextmanager
async def hostile(script: Script, **options: Any) -> AsyncIterator[trissh.SSHConnection]:
    """A connection to a scripted server that accepts the ``none`` method and then runs ``script``
    (which cannot rekey: keep what it sends under ``rekey_bytes``)."""

    async def let_in_then(link: ScriptedLink) -> None:
        await link.receive()  # USERAUTH_REQUEST none
        await link.send(byte(msg.USERAUTH_SUCCESS))
        await script(link)

    failed: Exception | None = None
    async with trio.open_nursery() as nursery:
        where: Listening = await nursery.start(serve_scripted, let_in_then)
        try:
            async with trissh.connect(
                where.host,
                where.port,
                username="me",
                known_hosts=None,
                client_keys=[],
                agent_path=None,
                **options,
            ) as conn:
                yield conn
        except Exception as exc:  # raised as it is, not inside this nursery's ExceptionGroup
            failed = exc
        nursery.cancel_scope.cancel()
    if failed is not None:
        raise failed


def confirmation(client_id: int, window: int) -> bytes:
    """CHANNEL_OPEN_CONFIRMATION of the client's channel, as our channel 7."""
    return (
        byte(msg.CHANNEL_OPEN_CONFIRMATION) + uint32(client_id) + uint32(7) + uint32(window) + uint32(32768)
    )


def global_request(name: str, want_reply: bool) -> bytes:
    return byte(msg.GLOBAL_REQUEST) + string(name) + boolean(want_reply)


async def answered(link: ScriptedLink) -> bool:
    """Whether the client answers a global request: it is alive and reading."""
    await link.send(global_request("probe@example.com", True))
    while (reply := await link.receive()) and reply[0] not in (msg.REQUEST_SUCCESS, msg.REQUEST_FAILURE):
        pass
    return bool(reply) and reply[0] == msg.REQUEST_FAILURE


@pytest.mark.parametrize(
    "flood", [pytest.param(512 * MiB, id="512MiB"), pytest.param(8 << 30, id="8GiB", marks=pytest.mark.slow)]
)
async def test_an_ignore_flood_costs_no_memory(flood: int) -> None:
    """Gigabytes of SSH_MSG_IGNORE are read and dropped: the client answers afterwards, its RSS unchanged."""
    alive = trio.Event()
    samples: list[int] = []

    async def script(link: ScriptedLink) -> None:
        junk = byte(msg.IGNORE) + string(b"\0" * (32 * 1024 - 16))
        batch = [junk] * 8
        step = len(junk) * len(batch)
        for sent in range(0, flood, step):
            await link.send(*batch)
            if sent % (64 * MiB) < step:
                samples.append(resident_bytes())  # same process: the client's RSS, mid-flood
        if await answered(link):
            alive.set()

    with trio.fail_after(60 + flood / (10 * MiB)):
        async with hostile(script, rekey_bytes=2 * flood):
            before = resident_bytes()
            await alive.wait()
            after = resident_bytes()
    print(f"IGNORE flood of {flood // MiB} MiB: RSS {before / MiB:.1f} -> {after / MiB:.1f} MiB")
    assert max([after, *samples]) - before < 16 * MiB


async def test_global_requests_whose_replies_are_never_read_end_the_connection() -> None:
    """A server that floods want-reply requests and never reads: past MAX_REPLY_BACKLOG queued replies the
    connection ends with a ProtocolError naming the limit, its memory bounded by that count."""

    async def script(link: ScriptedLink) -> None:
        request = global_request("flood@example.com", True)
        for _ in range(4 * MAX_REPLY_BACKLOG // 64):
            await link.send(*[request] * 64)
        await trio.sleep_forever()  # and never read

    with trio.fail_after(60):
        with pytest.raises(trissh.ProtocolError, match=f"over {MAX_REPLY_BACKLOG} replies"):
            async with hostile(script) as conn:
                before = resident_bytes()
                while conn.transport.error is None:
                    await trio.sleep(0.01)
                grown = resident_bytes() - before
                await conn.run("true")  # raises the connection's error
    print(f"global request flood: RSS grew {grown / MiB:.1f} MiB before the connection ended")
    assert grown < 16 * MiB


async def test_data_beyond_the_window_ends_the_connection() -> None:
    """A server that confirms a session and sends more than the window we granted, while nobody reads."""

    async def script(link: ScriptedLink) -> None:
        reader = Reader(await link.receive(), "CHANNEL_OPEN")
        assert reader.byte() == msg.CHANNEL_OPEN and reader.ascii() == "session"
        client_id = reader.uint32()
        await link.send(confirmation(client_id, window=2**32 - 1))
        await link.receive()  # the exec request
        await link.send(byte(msg.CHANNEL_SUCCESS) + uint32(client_id))
        chunk = byte(msg.CHANNEL_DATA) + uint32(client_id) + string(b"x" * 32768)
        for _ in range(INITIAL_WINDOW // 32768 + 1):
            await link.send(chunk)
        await trio.sleep_forever()

    with trio.fail_after(30):
        with pytest.raises(trissh.ProtocolError, match="bytes of window left"):
            async with hostile(script) as conn, conn.open_process("cat") as proc:
                await proc.wait()  # nobody reads stdout: the window is all the server may fill


async def test_a_huge_send_window_with_a_server_that_never_reads() -> None:
    """The server grants 2^32-1 bytes of window and stops reading its socket: our sender blocks once the
    send queue and the socket buffers are full, instead of buffering what it is given."""
    blocked = trio.Event()

    async def script(link: ScriptedLink) -> None:
        reader = Reader(await link.receive(), "CHANNEL_OPEN")
        reader.byte(), reader.ascii()
        client_id = reader.uint32()
        await link.send(confirmation(client_id, window=2**32 - 1))
        await link.receive()  # exec
        await link.send(byte(msg.CHANNEL_SUCCESS) + uint32(client_id))
        await blocked.wait()  # never reads again until the test is done

    with trio.fail_after(60):
        async with hostile(script) as conn, conn.open_process("cat") as proc:
            before = resident_bytes()
            data = b"y" * MiB
            sent = 0

            async def send_forever() -> None:
                nonlocal sent
                while True:
                    await proc.stdin.send_all(data)
                    sent += len(data)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send_forever)
                # Every task blocked: the sender waits for queue space that will never come.
                await trio.testing.wait_all_tasks_blocked(cushion=0.2)
                grown = resident_bytes() - before
                nursery.cancel_scope.cancel()
            blocked.set()
    print(
        f"never-reading server: {sent // MiB} MiB taken before the sender blocked, RSS +{grown / MiB:.1f} MiB"
    )
    assert sent < 64 * MiB  # the queue (4 MiB) and the kernel's socket buffers, not the 4 GiB window
    assert grown < 32 * MiB
