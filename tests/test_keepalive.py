"""keepalive_interval / keepalive_count_max against a real sshd, and a server that stops answering."""

from __future__ import annotations

import math

import pytest
import trio
from proxy import Delay, ProxyFactory
from test_integration import connect

import trissh
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


async def test_a_busy_connection_sends_no_keepalives(sshd: SSHServer) -> None:
    """Data from the server is sign of life enough: no request goes out while it keeps coming."""
    async with connect(sshd, keepalive_interval=0.2) as conn:
        sent = []
        conn._mux.send_global_request_nowait = lambda *a, **k: sent.append(a)  # type: ignore[method-assign]
        async with conn.open_process("for i in $(seq 15); do echo $i; sleep 0.05; done") as proc:
            async for _ in proc.stdout:
                pass
        assert not sent


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
