"""Port forwarding against OpenSSH sshd: local (-L), remote (-R), unix sockets, SOCKS (-D), and many
direct-tcpip streams at once; every byte checked with sha256, and nothing left behind when cancelled."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
from test_integration import connect, trissh_tasks, trissh_tasks_once_idle

import trissh
from trissh._channels.streams import ChannelStream
from trissh.testing import SSHServer

MiB = 1024 * 1024
CHUNK = 256 * 1024


# --- local peers ------------------------------------------------------------------------------------


async def _echo(stream: trio.abc.Stream) -> None:
    """Send back what arrives; pass the end-of-file on."""
    try:
        while data := await stream.receive_some(CHUNK):
            await stream.send_all(data)
        if isinstance(stream, trio.abc.HalfCloseableStream):
            await stream.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


@asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    """A Trio echo server on 127.0.0.1; yields its port."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, host="127.0.0.1"), _echo, 0)
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def unix_echo_server(path: Path) -> AsyncIterator[Path]:
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(os.fspath(path))
    sock.listen(16)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, _echo, [trio.SocketListener(sock)])
        yield path
        nursery.cancel_scope.cancel()


def short_socket_dir() -> Path:
    """A directory for unix sockets: pytest's tmp_path can be longer than a socket path may be."""
    return Path(tempfile.mkdtemp(prefix="trissh-fwd-", dir="/tmp"))


def pattern(size: int, seed: int = 0) -> bytes:
    """``size`` bytes that differ from stream to stream."""
    block = hashlib.sha256(seed.to_bytes(4, "big")).digest() * (CHUNK // 32)
    return (block * (size // CHUNK + 1))[:size]


async def exchange(stream: trio.abc.HalfCloseableStream, size: int, seed: int = 0) -> None:
    """Send ``size`` bytes and EOF while reading the echo back; check both ends' sha256 and length."""
    data = pattern(size, seed)
    received = hashlib.sha256()
    count = 0

    async def send() -> None:
        view = memoryview(data)
        for start in range(0, size, CHUNK):
            await stream.send_all(view[start : start + CHUNK])
        await stream.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        while chunk := await stream.receive_some(CHUNK):
            received.update(chunk)
            count += len(chunk)
    assert count == size
    assert received.hexdigest() == hashlib.sha256(data).hexdigest()


async def endless_exchange(stream: trio.abc.Stream) -> None:
    """Send and read back until cancelled."""
    block = pattern(CHUNK)

    async def send() -> None:
        while True:
            await stream.send_all(block)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        while await stream.receive_some(CHUNK):
            pass


async def wait_refused(host: str, port: int) -> None:
    """Until nothing listens on host:port any more (the caller's fail_after bounds it)."""
    while True:
        try:
            stream = await trio.open_tcp_stream(host, port)
        except OSError:
            return
        await stream.aclose()
        await trio.sleep(0.02)


# --- local forwarding ----------------------------------------------------------------------------


async def test_local_forward_carries_64_mib_each_way(sshd: SSHServer) -> None:
    with trio.fail_after(60):
        async with echo_server() as echo_port, connect(sshd) as conn:
            async with conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", echo_port) as forward:
                assert forward.port > 0 and forward.listen_host == "127.0.0.1"
                assert forward.addresses == (("127.0.0.1", forward.port),)
                stream = await trio.open_tcp_stream("127.0.0.1", forward.port)
                async with stream:
                    await exchange(stream, 64 * MiB)
            await wait_refused("127.0.0.1", forward.port)  # the listener is gone with the block


async def test_local_forward_localhost_listens_on_every_address_on_one_port(sshd: SSHServer) -> None:
    with trio.fail_after(30):
        async with echo_server() as echo_port, connect(sshd) as conn:
            async with conn.forward_local_port("localhost", 0, "127.0.0.1", echo_port) as forward:
                families = {len(address) for address in forward.addresses}  # 2: IPv4, 4: IPv6
                assert {address[1] for address in forward.addresses} == {forward.port}
                for address in forward.addresses:
                    stream = await trio.open_tcp_stream(str(address[0]), forward.port)
                    async with stream:
                        await exchange(stream, 64 * 1024)
                assert 2 in families


async def test_local_forward_many_connections_and_one_refused_destination(sshd: SSHServer) -> None:
    """A destination the server cannot reach closes that connection only (logged); the rest carry on."""
    with trio.fail_after(60):
        async with echo_server() as echo_port, connect(sshd) as conn:
            closed_port = _free_port()
            async with (
                conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", echo_port) as good,
                conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", closed_port) as bad,
            ):
                refused = await trio.open_tcp_stream("127.0.0.1", bad.port)
                assert await refused.receive_some(10) == b""  # closed once the open failed
                await refused.aclose()

                async def one(seed: int) -> None:
                    stream = await trio.open_tcp_stream("127.0.0.1", good.port)
                    async with stream:
                        await exchange(stream, MiB, seed)

                async with trio.open_nursery() as nursery:
                    for seed in range(20):
                        nursery.start_soon(one, seed)
            assert (await conn.run("echo still")).stdout == b"still\n"


async def test_local_peer_that_vanishes_closes_its_channel_only(sshd: SSHServer) -> None:
    with trio.fail_after(30):
        async with echo_server() as echo_port, connect(sshd) as conn:
            async with conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", echo_port) as forward:
                survivor = await trio.open_tcp_stream("127.0.0.1", forward.port)
                vanishing = await trio.open_tcp_stream("127.0.0.1", forward.port)
                await vanishing.send_all(b"x" * 100_000)
                # A reset, not a clean close: SO_LINGER 0.
                vanishing.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                await vanishing.aclose()
                while len(conn._mux.channels) > 1:  # the reset one's channel goes away
                    await trio.sleep(0.01)
                async with survivor:
                    await exchange(survivor, MiB)


async def test_local_forward_refuses_an_address_in_use(sshd: SSHServer) -> None:
    with trio.fail_after(20):
        async with connect(sshd) as conn:
            before = await trissh_tasks_once_idle()
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            try:
                with pytest.raises(trissh.ForwardingError, match=f"cannot listen on 127.0.0.1:{port}"):
                    async with conn.forward_local_port("127.0.0.1", port, "127.0.0.1", 22):
                        pass
            finally:
                await listeners[0].aclose()
            assert await trissh_tasks_once_idle() == before


class _BlockError(Exception):
    """Raised by a test inside a forwarding's block."""


@pytest.mark.parametrize("kind", ["local", "socks", "local_unix", "remote", "remote_unix"])
async def test_an_error_in_the_block_leaves_the_forward_as_itself(
    sshd: SSHServer, kind: str, tmp_path: Path
) -> None:
    """Not wrapped in an ExceptionGroup by the forward's own nursery: ``except`` works as written."""

    def forward(conn: trissh.SSHConnection) -> Any:
        short = Path(tempfile.mkdtemp(prefix="trissh-fw-"))  # unix socket paths are short
        return {
            "local": lambda: conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", 9),
            "socks": lambda: conn.forward_socks("127.0.0.1", 0),
            "local_unix": lambda: conn.forward_local_unix(str(short / "l.sock"), "/nonexistent"),
            "remote": lambda: conn.forward_remote_port("127.0.0.1", 0, ("127.0.0.1", 9)),
            "remote_unix": lambda: conn.forward_remote_unix(str(short / "r.sock"), ("127.0.0.1", 9)),
        }[kind]()

    with trio.fail_after(20):
        async with connect(sshd) as conn:
            with pytest.raises(_BlockError) as caught:
                async with forward(conn):
                    raise _BlockError("mine")
            assert type(caught.value) is _BlockError
            assert (await conn.run("echo ok")).stdout == b"ok\n"  # and the connection carries on


# --- remote forwarding -----------------------------------------------------------------------------


async def test_remote_forward_carries_64_mib_each_way(sshd: SSHServer) -> None:
    with trio.fail_after(60):
        async with echo_server() as echo_port, connect(sshd) as conn:
            async with conn.forward_remote_port("127.0.0.1", 0, ("127.0.0.1", echo_port)) as forward:
                assert forward.port > 0 and forward.port != echo_port
                # sshd listens on this machine: connect to it as any client of the server would.
                stream = await trio.open_tcp_stream("127.0.0.1", forward.port)
                async with stream:
                    await exchange(stream, 64 * MiB)
            await wait_refused("127.0.0.1", forward.port)  # cancel-tcpip-forward was sent


async def test_remote_forward_to_a_handler(sshd: SSHServer) -> None:
    seen: list[tuple[str, int]] = []

    async def handler(stream: ChannelStream) -> None:
        seen.append(("handler", stream.channel.local_id))
        await _echo(stream)

    with trio.fail_after(30):
        async with connect(sshd) as conn, conn.forward_remote_port("localhost", 0, handler) as forward:
            for round_ in range(3):
                stream = await trio.open_tcp_stream("127.0.0.1", forward.port)
                async with stream:
                    await exchange(stream, 300_000, round_)
            assert len(seen) == 3


async def test_remote_forward_the_server_refuses(sshd: SSHServer) -> None:
    """A port the server cannot listen on: ForwardingError, and nothing registered or running."""
    with trio.fail_after(20):
        async with connect(sshd) as conn:
            listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            try:
                with pytest.raises(trissh.ForwardingError, match=f"refused to listen on 127.0.0.1:{port}"):
                    async with conn.forward_remote_port("127.0.0.1", port, ("127.0.0.1", 9)):
                        pytest.fail("the block must not run")
            finally:
                await listeners[0].aclose()
            assert conn._mux.incoming.tcp == {}
            assert (await conn.run("echo ok")).stdout == b"ok\n"


async def test_remote_forward_to_a_closed_port_refuses_the_channel(sshd: SSHServer) -> None:
    """Our side cannot connect: the channel is refused (CONNECT_FAILED), and sshd closes its client."""
    with trio.fail_after(20):
        async with (
            connect(sshd) as conn,
            conn.forward_remote_port("127.0.0.1", 0, ("127.0.0.1", _free_port())) as forward,
        ):
            stream = await trio.open_tcp_stream("127.0.0.1", forward.port)
            async with stream:
                assert await stream.receive_some(10) == b""
            assert (await conn.run("echo ok")).stdout == b"ok\n"


# --- unix sockets ------------------------------------------------------------------------------------


async def test_unix_forwarding_both_ways(sshd: SSHServer) -> None:
    directory = short_socket_dir()
    try:
        with trio.fail_after(60):
            async with unix_echo_server(directory / "echo.sock") as echo_path, connect(sshd) as conn:
                # Here -> there: a local unix socket to the server's (the echo server's path).
                local_path = directory / "local.sock"
                async with conn.forward_local_unix(local_path, echo_path) as forward:
                    assert forward.path == local_path and forward.port == 0
                    stream = await trio.open_unix_socket(os.fspath(local_path))
                    async with stream:
                        await exchange(stream, 8 * MiB)
                assert not local_path.exists()  # removed with the block
                # There -> here: the server listens on a unix socket, we carry to the echo server.
                remote_path = os.fspath(directory / "remote.sock")
                async with conn.forward_remote_unix(remote_path, echo_path) as forward:
                    assert forward.path == remote_path
                    stream = await trio.open_unix_socket(remote_path)
                    async with stream:
                        await exchange(stream, 8 * MiB)
                # sshd refuses a path that exists (StreamLocalBindUnlink no): a clear error.
                (directory / "taken").write_text("")
                with pytest.raises(trissh.ForwardingError, match="unix socket"):
                    async with conn.forward_remote_unix(os.fspath(directory / "taken"), echo_path):
                        pass
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --- SOCKS --------------------------------------------------------------------------------------------


async def _http_once(stream: trio.abc.Stream) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        data = await stream.receive_some(4096)
        if not data:
            return
        request += data
    body = b"hello through " + request.split(b" ")[1]
    await stream.send_all(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("option", ["--socks5-hostname", "--socks5", "--socks4a", "--socks4"])
async def test_socks_with_curl(sshd: SSHServer, option: str) -> None:
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery, connect(sshd) as conn:
            [web] = await nursery.start(partial(trio.serve_tcp, host="127.0.0.1"), _http_once, 0)
            web_port = web.socket.getsockname()[1]
            async with conn.forward_socks("127.0.0.1", 0) as socks:
                host = "localhost" if option in ("--socks5-hostname", "--socks4a") else "127.0.0.1"
                done = await trio.run_process(
                    ["curl", "-sS", "--max-time", "20", option, f"127.0.0.1:{socks.port}",
                     f"http://{host}:{web_port}/path"],
                    capture_stdout=True,
                    capture_stderr=True,
                    check=False,
                )  # fmt: skip
                assert done.returncode == 0, done.stderr
                assert done.stdout == b"hello through /path"
            nursery.cancel_scope.cancel()


async def test_socks_garbage_and_refusals_close_that_client_only(
    sshd: SSHServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trissh.forwarding")
    with trio.fail_after(30):
        async with echo_server() as echo_port, connect(sshd) as conn:
            async with conn.forward_socks("127.0.0.1", 0) as socks:
                garbage = await trio.open_tcp_stream("127.0.0.1", socks.port)
                await garbage.send_all(b"GET / HTTP/1.1\r\n\r\n")
                assert await garbage.receive_some(10) == b""
                await garbage.aclose()
                # SOCKS5 to a port nobody listens on: the server refuses, the client hears "refused".
                refused = await trio.open_tcp_stream("127.0.0.1", socks.port)
                await refused.send_all(b"\x05\x01\x00")
                assert await refused.receive_some(2) == b"\x05\x00"
                await refused.send_all(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + _free_port().to_bytes(2, "big"))
                assert (await refused.receive_some(10))[:2] == b"\x05\x05"
                await refused.aclose()
                # And a good one still works: SOCKS4 to the echo server.
                good = await trio.open_tcp_stream("127.0.0.1", socks.port)
                await good.send_all(
                    b"\x04\x01" + echo_port.to_bytes(2, "big") + bytes([127, 0, 0, 1]) + b"me\0"
                )
                assert await good.receive_some(8) == b"\x00\x5a" + bytes(6)
                async with good:
                    await exchange(good, MiB)
    assert "SOCKS" in caplog.text or "socks" in caplog.text


# --- many streams on one connection --------------------------------------------------------------


async def test_100_streams_at_once_and_one_stalled(sshd: SSHServer) -> None:
    """100 direct-tcpip streams carry sha256-checked data both ways at once, while one more, whose
    echo nobody reads, stalls on its window without holding the others up."""
    with trio.fail_after(120):
        async with echo_server() as echo_port, connect(sshd) as conn:
            stalled = await conn.open_tcp_stream("127.0.0.1", echo_port)
            stalled_sent = trio.Event()

            async def stall() -> None:
                await stalled.send_all(pattern(16 * MiB))  # more than all the windows and buffers
                stalled_sent.set()

            async def one(seed: int) -> None:
                async with await conn.open_tcp_stream("127.0.0.1", echo_port) as stream:
                    await exchange(stream, 512 * 1024, seed)

            async with trio.open_nursery() as outer:
                outer.start_soon(stall)
                async with trio.open_nursery() as nursery:
                    for seed in range(100):
                        nursery.start_soon(one, seed)
                assert not stalled_sent.is_set()  # still stuck: its echo is not read
                outer.cancel_scope.cancel()
            await stalled.aclose()
            assert (await conn.run("echo ok")).stdout == b"ok\n"


# --- cancellation ---------------------------------------------------------------------------------


Scenario = Callable[[trissh.SSHConnection, int, trio.Event], Awaitable[None]]


async def _transfer_through(port: int, started: trio.Event) -> None:
    _ports.append(port)
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"x" * MiB)
        started.set()
        await endless_exchange(stream)


async def _local_transfer(conn: trissh.SSHConnection, echo_port: int, started: trio.Event) -> None:
    async with conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", echo_port) as forward:
        await _transfer_through(forward.port, started)


async def _remote_transfer(conn: trissh.SSHConnection, echo_port: int, started: trio.Event) -> None:
    async with conn.forward_remote_port("127.0.0.1", 0, ("127.0.0.1", echo_port)) as forward:
        await _transfer_through(forward.port, started)


async def _socks_transfer(conn: trissh.SSHConnection, echo_port: int, started: trio.Event) -> None:
    async with conn.forward_socks("127.0.0.1", 0) as socks:
        _ports.append(socks.port)
        stream = await trio.open_tcp_stream("127.0.0.1", socks.port)
        async with stream:
            await stream.send_all(socks4_connect(echo_port))
            assert await stream.receive_some(8) == b"\x00\x5a" + bytes(6)
            started.set()
            await endless_exchange(stream)


async def _direct_transfer(conn: trissh.SSHConnection, echo_port: int, started: trio.Event) -> None:
    async with await conn.open_tcp_stream("127.0.0.1", echo_port) as stream:
        await stream.send_all(b"x" * MiB)
        started.set()
        await endless_exchange(stream)


_ports: list[int] = []


@pytest.mark.parametrize("scenario", [_local_transfer, _remote_transfer, _socks_transfer, _direct_transfer])
async def test_cancelled_mid_transfer_leaves_nothing_behind(sshd: SSHServer, scenario: Scenario) -> None:
    """Cancelled in the middle of a transfer: no trissh task, no listener (here or on the server),
    and the connection still works."""
    _ports.clear()
    with trio.fail_after(60):
        async with echo_server() as echo_port, connect(sshd) as conn:
            before = await trissh_tasks_once_idle()
            started = trio.Event()
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(scenario, conn, echo_port, started)
                    await started.wait()
                    await trio.sleep(0.05)  # let data flow through every task of the forwarding
                    scope.cancel()
            assert scope.cancelled_caught
            for port in _ports:
                await wait_refused("127.0.0.1", port)
            assert conn._mux.incoming.tcp == {}
            assert (await conn.run("echo ok")).stdout == b"ok\n"
            assert await trissh_tasks_once_idle() == before
        assert trissh_tasks() == []


async def test_forwarding_ends_when_the_connection_dies(sshd: SSHServer) -> None:
    """The SSH connection lost: the local listener closes (new connections refused by the kernel)."""
    with trio.fail_after(30):
        async with echo_server() as echo_port:
            with pytest.raises(trissh.SSHError):
                async with connect(sshd) as conn:
                    async with conn.forward_local_port("127.0.0.1", 0, "127.0.0.1", echo_port) as forward:
                        stream = await trio.open_tcp_stream("127.0.0.1", forward.port)
                        await exchange(stream, 100_000)
                        await conn._transport.fail(trissh.ConnectionLost("cut for the test"))
                        await wait_refused("127.0.0.1", forward.port)
                        assert await stream.receive_some(10) == b""
                        await stream.aclose()
                        await conn.run("true")  # raises the connection's error


def socks4_connect(port: int, user: bytes = b"") -> bytes:
    """A SOCKS4 CONNECT to 127.0.0.1:port."""
    return b"\x04\x01" + port.to_bytes(2, "big") + bytes([127, 0, 0, 1]) + user + b"\0"


def _free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
