"""A server that completes the handshake and then misbehaves (issue 12): each ends in a clear error, bounded.

The servers are scripted (``tests/hostile_server.py``, over a real key exchange and TCP), because no real
server can be made to trickle a packet, cut the connection between EOF and ``exit-status``, report two exit
statuses or send a hundred thousand banners.
"""

from __future__ import annotations

import socket
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import trio
from hostile_server import (
    Script,
    accept_exec,
    accept_none_auth,
    channel_data,
    channel_eof,
    connected,
    exit_status,
    expect,
    scripted,
)
from scripted_auth import ScriptedLink
from test_channels import open_channel

import trissh
import trissh._connect
from trissh import _messages as msg
from trissh._algorithms.hostkeys import PublicKey
from trissh._auth.exchange import MAX_BANNER_BYTES, MAX_BANNERS
from trissh._errors import ProtocolError
from trissh._wire import boolean, byte, string, uint32

if TYPE_CHECKING:
    from trio_typing import TaskStatus

TIMEOUT = 20


# --- the connection breaks after EOF, before exit-status ---------------------------------------------------


def _cut_after_eof(output: bytes, *, reset: bool = False) -> tuple[list[str], Script]:
    """A script: run the command, send ``output`` and EOF, then break the connection with no exit status."""
    events: list[str] = []

    async def script(link: ScriptedLink) -> None:
        await accept_none_auth(link)
        channel, _ = await accept_exec(link)
        await expect(link, msg.CHANNEL_EOF)  # the client's stdin is done: nothing left unread to cause a RST
        await link.send(channel_data(channel, output), channel_eof(channel))
        events.append("eof sent")
        if reset:  # SO_LINGER 0: close() sends a RST, not a FIN
            link.stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        await link.stream.aclose()
        events.append("cut")

    return events, script


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
async def test_run_raises_when_the_connection_breaks_between_eof_and_exit_status(reset: bool) -> None:
    """RFC 4254 §6.10: without an exit status a command's end is unknown; run() must not make one up."""
    events, script = _cut_after_eof(b"partial output\n", reset=reset)
    with trio.fail_after(TIMEOUT):
        async with scripted(script) as where:
            async with connected(where) as conn:
                with pytest.raises(trissh.ConnectionLost) as caught:
                    await conn.run("make all")
    assert events == ["eof sent", "cut"]
    assert "closed the connection" in str(caught.value) or "reset" in str(caught.value).lower()


async def test_a_process_reads_its_output_then_wait_raises_when_cut_before_exit_status() -> None:
    """What did arrive is read; wait() then raises the connection's error: it never returns None."""
    events, script = _cut_after_eof(b"partial output\n")
    with trio.fail_after(TIMEOUT):
        async with scripted(script) as where:
            async with connected(where) as conn:
                async with conn.open_process("make all") as process:
                    await process.stdin.send_eof()
                    received = b""
                    try:
                        while chunk := await process.stdout.receive_some():
                            received += chunk
                    except trissh.ConnectionLost:
                        pass  # the cut was seen before the EOF was read: reads raise once the data is taken
                    assert received == b"partial output\n"
                    with pytest.raises(trissh.ConnectionLost, match="closed the connection"):
                        await process.wait()
                    assert process.returncode is None
    assert events == ["eof sent", "cut"]


# --- a second exit-status ----------------------------------------------------------------------------------


async def test_a_second_exit_status_is_a_protocol_error_naming_the_channel() -> None:
    """RFC 4254 §6.10: a command ends once; a server reporting two statuses is broken, not the last word."""

    async def script(link: ScriptedLink) -> None:
        await accept_none_auth(link)
        channel, _ = await accept_exec(link)
        await link.send(channel_data(channel, b"done\n"), exit_status(channel, 0), exit_status(channel, 1))
        await link.receive()  # the client's DISCONNECT, or its close

    with trio.fail_after(TIMEOUT):
        async with scripted(script) as where:
            async with connected(where) as conn:
                with pytest.raises(
                    trissh.ProtocolError, match=r"exit-status for channel \d+ after its exit-status 0"
                ):
                    await conn.run("true")


def _exit_signal(local_id: int, name: str) -> bytes:
    fields = string(name) + boolean(False) + string("") + string("")
    return byte(msg.CHANNEL_REQUEST) + uint32(local_id) + string("exit-signal") + boolean(False) + fields


@pytest.mark.parametrize(
    ("first", "second", "earlier"),
    [
        ("status", "status", "exit-status 3"),
        ("status", "signal", "exit-status 3"),
        ("signal", "status", "exit-signal TERM"),
        ("signal", "signal", "exit-signal TERM"),
    ],
)
def test_any_second_exit_report_is_refused_and_the_first_kept(first: str, second: str, earlier: str) -> None:
    """exit-status and exit-signal are alternatives (RFC 4254 §6.10): after either, both are refused."""
    mux, channel, _ = open_channel()

    def report(kind: str) -> bytes:
        return (
            exit_status(channel.local_id, 3) if kind == "status" else _exit_signal(channel.local_id, "TERM")
        )

    mux.handle_packet(1, report(first))
    before = channel.returncode
    request = "exit-status" if second == "status" else "exit-signal"
    with pytest.raises(ProtocolError, match=f"{request} for channel {channel.local_id} after its {earlier}"):
        mux.handle_packet(2, report(second))
    assert channel.returncode == before and before in (3, -15)


# --- a packet that never completes, one byte at a time -----------------------------------------------------


async def test_a_trickled_packet_that_never_completes_does_not_defeat_keepalive() -> None:
    """As OpenSSH counts it, only a complete packet answers a keepalive; bytes of an endless one do not."""
    trickled = 0

    async def script(link: ScriptedLink) -> None:
        nonlocal trickled
        await accept_none_auth(link)
        # A real packet, sealed with the session's keys, sent a byte at a time and never finished: at this
        # pace it would take five minutes.
        sealed = link.server.packet(byte(msg.IGNORE) + string(bytes(1000)))
        for index in range(len(sealed) - 1):
            await link.stream.send_all(sealed[index : index + 1])
            trickled += 1
            await trio.sleep(0.3)
        raise AssertionError("the client was still there when the trickle ran out")

    with trio.fail_after(10):
        async with scripted(script) as where:
            async with connected(where, keepalive_interval=0.5, keepalive_count_max=3) as conn:
                with pytest.raises(trissh.ConnectionLost, match="did not answer 3 keepalive request"):
                    await conn.run("true")  # its channel is never confirmed: the server only trickles
    assert trickled >= 3  # the trickle was under way, every keepalive interval seeing bytes arrive


# --- a hundred thousand banners ----------------------------------------------------------------------------


async def test_a_hundred_thousand_banners_are_refused_with_the_limit_named_in_bounded_memory() -> None:
    """RFC 4252 §5.4 lets a server send banners; 100,000 of 1,000 characters must not become 100 MB kept."""
    total, size = 100_000, 1000
    seen: list[str] = []

    async def on_banner(text: str) -> None:
        seen.append(text)

    async def script(link: ScriptedLink) -> None:
        await expect(link, msg.USERAUTH_REQUEST)
        text = string("B" * (size - 1) + "\n") + string("")
        batch = [byte(msg.USERAUTH_BANNER) + text] * 100
        for _ in range(total // len(batch)):
            await link.send(*batch)
        await link.send(byte(msg.USERAUTH_SUCCESS))
        await link.receive()

    # A client that kept every banner would read all 100 MB (slowly, under tracemalloc): no connect_timeout,
    # so that such a client fails on the memory it holds rather than on the clock.
    error: trissh.ProtocolError | None = None
    tracemalloc.start()
    try:
        with trio.fail_after(120):
            async with scripted(script) as where:
                try:
                    async with connected(where, banner_handler=on_banner, connect_timeout=None):
                        pass
                except trissh.ProtocolError as exc:
                    error = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB traced while 100,000 banners came"
    assert error is not None and f"more than {MAX_BANNERS} authentication banners (MAX_BANNERS)" in str(error)
    assert len(seen) == MAX_BANNERS
    assert MAX_BANNERS * size <= MAX_BANNER_BYTES  # so the count, not the size, is the limit this test meets


async def test_banner_text_beyond_its_byte_bound_is_refused() -> None:
    """Fewer banners than the count allows, but more text than MAX_BANNER_BYTES: refused, the bound named."""

    async def script(link: ScriptedLink) -> None:
        await expect(link, msg.USERAUTH_REQUEST)
        banner = byte(msg.USERAUTH_BANNER) + string("é" * 8000) + string("")  # 16,000 bytes of UTF-8
        await link.send(*[banner] * 5, byte(msg.USERAUTH_SUCCESS))
        await link.receive()

    with trio.fail_after(TIMEOUT):
        async with scripted(script) as where:
            with pytest.raises(trissh.ProtocolError, match=f"over {MAX_BANNER_BYTES} bytes of text"):
                async with connected(where):
                    pass


# --- connect_timeout=None: the handshake still has a bound -------------------------------------------------


async def _silent_server(task_status: TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Accept TCP connections and never send a byte (reading what comes, so the client's writes succeed)."""

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            while await stream.receive_some():
                pass

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handle, listeners)


async def test_a_server_that_never_sends_its_version_line_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """RFC 4253 §4.2: the version exchange; without connect_timeout it is bounded by HANDSHAKE_TIMEOUT."""
    monkeypatch.setattr(trissh._connect, "HANDSHAKE_TIMEOUT", 0.5)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(_silent_server)
            with pytest.raises(
                trissh.ConnectTimeout, match=r"version exchange within 0\.5 s \(HANDSHAKE_TIMEOUT"
            ):
                async with trissh.connect(
                    "127.0.0.1",
                    port,
                    username="me",
                    known_hosts=None,
                    client_keys=[],
                    agent_path=None,
                    connect_timeout=None,
                ):
                    pass
            nursery.cancel_scope.cancel()


async def test_a_server_that_stalls_the_key_exchange_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a version line, a server that sends nothing more is cut off in the key exchange (RFC 4253 §7)."""
    monkeypatch.setattr(trissh._connect, "HANDSHAKE_TIMEOUT", 0.5)

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.send_all(b"SSH-2.0-Stalling_1.0\r\n")
            while await stream.receive_some():
                pass

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            nursery.start_soon(trio.serve_listeners, handle, listeners)
            with pytest.raises(trissh.ConnectTimeout, match=r"key exchange within 0\.5 s"):
                async with trissh.connect(
                    "127.0.0.1",
                    port,
                    username="me",
                    known_hosts=None,
                    client_keys=[],
                    agent_path=None,
                    connect_timeout=None,
                ):
                    pass
            nursery.cancel_scope.cancel()


async def test_the_host_key_decision_is_not_counted_in_the_handshake_bound(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A policy callback may ask a person: the bound pauses while it decides, and the connection succeeds."""
    monkeypatch.setattr(trissh._connect, "HANDSHAKE_TIMEOUT", 0.5)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    asked: list[str] = []

    async def ask(host: str, port: int, key: PublicKey) -> bool:
        asked.append(host)
        await trio.sleep(1.5)  # three times the bound
        return True

    async def script(link: ScriptedLink) -> None:
        await accept_none_auth(link)
        await link.receive()

    with trio.fail_after(TIMEOUT):
        async with scripted(script) as where:
            async with connected(
                where, known_hosts=known_hosts, host_key_policy=ask, connect_timeout=None
            ) as conn:
                assert conn.auth.method == "none"
    assert asked == ["127.0.0.1"]
