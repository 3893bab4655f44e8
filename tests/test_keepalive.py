"""keepalive_interval / keepalive_count_max against a real sshd, and a server that stops answering."""

from __future__ import annotations

import math
from typing import Any

import pytest
import trio
import trio.testing
from proxy import Delay, ProxyFactory
from test_integration import connect
from trio.testing import MockClock

import trissh
from trissh._keepalive import REQUEST
from trissh.testing import SSHServer


async def test_an_idle_connection_is_kept_and_its_keepalives_answered(sshd: SSHServer) -> None:
    async with connect(sshd, keepalive_interval=0.1, keepalive_count_max=1) as conn:
        transport = conn._transport
        before = transport.bytes_received
        with trio.fail_after(10):
            while transport.bytes_received < before + 3 * 40:  # a few replies (each at least 40 bytes)
                await trio.sleep(0.05)  # idle but for our keepalives and their replies
        assert not conn.is_closed
        assert (await conn.run("echo alive")).stdout == b"alive\n"


async def test_a_busy_connection_sends_no_keepalives(sshd: SSHServer, mock_clock: MockClock) -> None:
    """Data from the server is sign of life enough: an interval in which something came sends no
    request; the first one in which nothing came sends one.

    Trio's clock is a MockClock moved by hand, one interval at a time, so the test decides which
    intervals see data, not the machine's speed. (Should the test hang, the clock starts jumping
    after 5 s of real idleness, which brings fail_after's deadline.)
    """
    mock_clock.autojump_threshold = 5
    with trio.fail_after(100):
        async with connect(sshd, keepalive_interval=10, keepalive_count_max=3) as conn:
            mux = conn._mux
            sent: list[str] = []
            send = mux.send_global_request_nowait

            def recording(name: str, data: bytes = b"", on_reply: Any = None) -> None:
                sent.append(name)
                send(name, data, on_reply)

            mux.send_global_request_nowait = recording  # type: ignore[method-assign]
            for turn in range(3):
                assert (await conn.run(f"echo {turn}")).stdout == f"{turn}\n".encode()
                mock_clock.jump(10)
                await trio.testing.wait_all_tasks_blocked()  # the keepalive task has had its turn
                assert sent == [], turn
            mock_clock.jump(10)  # an interval with nothing from the server
            await trio.testing.wait_all_tasks_blocked()
            assert sent == [REQUEST]
            assert (await conn.run("echo alive")).stdout == b"alive\n"


async def test_an_unresponsive_server_ends_the_connection(sshd: SSHServer, make_proxy: ProxyFactory) -> None:
    """Everything we send after the handshake is held by the proxy, so no keepalive is ever answered."""
    async with connect(sshd) as probe:
        handshake_bytes = probe._transport.bytes_sent  # the same for every connection with these settings
    proxy = await make_proxy((sshd.host, sshd.port), upstream_fault=Delay(math.inf, after=handshake_bytes))
    with trio.fail_after(10):
        async with connect(
            sshd, host=proxy.host, port=proxy.port, keepalive_interval=0.1, keepalive_count_max=2
        ) as conn:
            while not conn.is_closed:  # 2 unanswered requests, then the third silent interval ends it
                await trio.sleep(0.05)
            with pytest.raises(trissh.ConnectionLost, match="did not answer 2 keepalive request"):
                await conn.run("true")


async def test_keepalive_settings_are_checked(sshd: SSHServer) -> None:
    with pytest.raises(ValueError, match="keepalive_interval must be positive"):
        async with connect(sshd, keepalive_interval=0):
            pass
    with pytest.raises(ValueError, match="keepalive_count_max must be 0 or more"):
        async with connect(sshd, keepalive_interval=1, keepalive_count_max=-1):
            pass
