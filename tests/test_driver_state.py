"""The transport's one life-cycle state (``SSHClientTransport.status``), against a real sshd."""

from __future__ import annotations

import os
import signal

import pytest
import trio
import trio.testing
from test_integration import connect
from test_lowlevel import Client

import trissh
from trissh._driver import TransportStatus
from trissh.testing import SSHServer


async def test_running_while_connected_and_closed_after_the_block(sshd: SSHServer) -> None:
    with trio.fail_after(20):
        async with connect(sshd) as conn:
            transport = conn._transport
            assert transport.status is TransportStatus.RUNNING
            assert (await conn.run("echo hi")).stdout == b"hi\n"
            assert transport.status is TransportStatus.RUNNING
            assert not transport.is_closed
        assert transport.status is TransportStatus.CLOSED
        assert transport.is_closed
        assert isinstance(transport.error, trissh.ConnectionLost)


async def test_failed_after_the_server_is_killed_mid_connection(sshd: SSHServer) -> None:
    with trio.fail_after(20):
        async with connect(sshd) as conn:
            transport = conn._transport
            # SIGKILL this connection's own sshd process (the one that runs its session),
            # never the listener that the rest of the test session shares.
            session_pid = int((await conn.run("echo $PPID")).stdout)
            assert session_pid != sshd.pid
            os.kill(session_pid, signal.SIGKILL)
            while not transport.is_closed:
                await trio.sleep(0.01)
            assert transport.status is TransportStatus.FAILED
            assert isinstance(transport.error, trissh.ConnectionLost)
        assert transport.status is TransportStatus.FAILED  # closing a failed connection leaves it so


async def test_new_until_started() -> None:
    with trio.fail_after(20):
        client, _server = trio.testing.memory_stream_pair()
        transport = trissh.SSHClientTransport(client)
        assert transport.status is TransportStatus.NEW
        assert not transport.is_closed
        await transport.aclose()
        assert transport.status is TransportStatus.CLOSED


async def test_an_error_of_ours_ends_failed(sshd: SSHServer) -> None:
    stream = await trio.open_tcp_stream(sshd.host, sshd.port)
    transport = Client(stream, sshd)
    seen: list[TransportStatus] = []
    transport.add_close_callback(lambda error: seen.append(transport.status))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            transport.start(nursery)
            await transport.wait_secure()
            assert transport.status is TransportStatus.RUNNING
            await transport.fail(trissh.ProtocolError("the test decides"))
            assert transport.status is TransportStatus.FAILED
    assert seen == [TransportStatus.FAILED]  # callbacks run once the connection is shut down
    with pytest.raises(trissh.ProtocolError, match="the test decides"):
        await transport.wait_secure()


async def test_cancelled_from_outside_then_closed(sshd: SSHServer) -> None:
    stream = await trio.open_tcp_stream(sshd.host, sshd.port)
    transport = Client(stream, sshd)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            transport.start(nursery)
            await transport.service_started.wait()
            nursery.cancel_scope.cancel()
        assert transport.status is TransportStatus.CANCELLED
        assert transport.error is None  # the tasks in that scope saw their own Cancelled, not an error
        await transport.aclose()
    assert transport.status is TransportStatus.CLOSED
    assert isinstance(transport.error, trissh.ConnectionLost)
