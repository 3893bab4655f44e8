"""Streams through the server: ``direct-tcpip`` (RFC 4254 §7.2) and ``direct-streamlocal@openssh.com``
(OpenSSH PROTOCOL §2.4) against a real sshd, checked by Trio's own stream conformance tests."""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing
from test_integration import connect, trissh_tasks

import trissh
from trissh.testing import SSHServer

StreamPair = tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]


async def _pair_maker(
    conn: trissh.SSHConnection, nursery: trio.Nursery
) -> Callable[[], Awaitable[StreamPair]]:
    """Pairs of (channel stream, the socket sshd connected to in our listener)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    accepted: trio.MemorySendChannel[trio.SocketStream]
    accepted, incoming = trio.open_memory_channel[trio.SocketStream](1)

    async def handler(stream: trio.SocketStream) -> None:
        await accepted.send(stream)
        await trio.sleep_forever()  # the test owns the stream now

    nursery.start_soon(trio.serve_listeners, handler, listeners)

    async def make() -> StreamPair:
        ours = await conn.open_tcp_stream("127.0.0.1", port)
        theirs = await incoming.receive()
        return ours, theirs

    return make


async def test_direct_tcpip_passes_trios_half_closeable_stream_checks(sshd: SSHServer) -> None:
    with trio.fail_after(60):
        async with connect(sshd) as conn, trio.open_nursery() as nursery:
            make = await _pair_maker(conn, nursery)
            await trio.testing.check_half_closeable_stream(make, None)
            nursery.cancel_scope.cancel()
    assert trissh_tasks() == []


async def test_direct_tcpip_carries_data_both_ways(sshd: SSHServer) -> None:
    """8 MiB each way at once, sha256-checked: flow control in both directions on one channel."""
    payload = os.urandom(8 * 1024 * 1024)
    with trio.fail_after(60):
        async with connect(sshd) as conn, trio.open_nursery() as nursery:
            make = await _pair_maker(conn, nursery)
            ours, theirs = await make()
            got: dict[str, bytes] = {}

            async def send(stream: trio.abc.HalfCloseableStream) -> None:
                await stream.send_all(payload)
                await stream.send_eof()

            async def receive(stream: trio.abc.HalfCloseableStream, name: str) -> None:
                digest = hashlib.sha256()
                async for chunk in stream:
                    digest.update(chunk)
                got[name] = digest.digest()

            async with trio.open_nursery() as inner:
                for stream, name in ((ours, "ours"), (theirs, "theirs")):
                    inner.start_soon(send, stream)
                    inner.start_soon(receive, stream, name)
            await ours.aclose()
            await theirs.aclose()
            nursery.cancel_scope.cancel()
    assert got == {"ours": hashlib.sha256(payload).digest(), "theirs": hashlib.sha256(payload).digest()}


async def test_a_refused_connection_is_a_channel_open_error(sshd: SSHServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with trio.fail_after(20):
        async with connect(sshd) as conn:
            with pytest.raises(trissh.ChannelOpenError) as caught:
                await conn.open_tcp_stream("127.0.0.1", port)
            assert caught.value.code == trissh.ChannelOpenFailureReason.CONNECT_FAILED
            assert (await conn.run("echo still here")).stdout == b"still here\n"


async def test_unix_stream(sshd: SSHServer) -> None:
    directory = Path(tempfile.mkdtemp(prefix="trissh-unix-"))
    path = directory / "echo.sock"
    try:
        raw = trio.socket.socket(trio.socket.AF_UNIX)
        await raw.bind(str(path))
        raw.listen()
        os.chmod(path, 0o777)

        async def echo(stream: trio.SocketStream) -> None:
            async with stream:
                async for chunk in stream:
                    await stream.send_all(chunk)

        with trio.fail_after(20):
            async with connect(sshd) as conn, trio.open_nursery() as nursery:
                nursery.start_soon(trio.serve_listeners, echo, [trio.SocketListener(raw)])
                stream = await conn.open_unix_stream(path)
                await stream.send_all(b"over a unix socket")
                await stream.send_eof()
                received = b""
                async for chunk in stream:
                    received += chunk
                await stream.aclose()
                nursery.cancel_scope.cancel()
        assert received == b"over a unix socket"
    finally:
        path.unlink(missing_ok=True)
        directory.rmdir()
