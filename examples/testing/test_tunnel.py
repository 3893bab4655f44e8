"""Testing a port-forwarding helper: a small service listens on this machine, which is also the SSH server,
so the forward really goes client -> sshd -> service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import pytest
import trio
from tunnel import service_status

import trissh
from trissh.testing.plugin import SSHServerFactory


@pytest.fixture
async def status_service(nursery: trio.Nursery) -> AsyncIterator[int]:
    """A line service on 127.0.0.1 answering ``STATUS`` with ``OK <n>``; yields its port."""
    served = 0

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal served
        async with stream:
            request = await stream.receive_some(1024)
            served += 1
            if request == b"STATUS\n":
                await stream.send_all(f"OK {served}\n".encode())

    listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
    yield listeners[0].socket.getsockname()[1]


async def test_status_comes_through_the_tunnel(
    ssh_connection: trissh.SSHConnection, status_service: int
) -> None:
    with trio.fail_after(30):
        assert await service_status(ssh_connection, "127.0.0.1", status_service) == "OK 1"
        assert await service_status(ssh_connection, "127.0.0.1", status_service) == "OK 2"


async def test_a_service_that_is_down_is_an_error_not_a_hang(
    ssh_connection: trissh.SSHConnection, status_service: int
) -> None:
    with trio.fail_after(30), pytest.raises((ConnectionError, trio.BrokenResourceError)):
        await service_status(ssh_connection, "127.0.0.1", 1)  # nothing listens on port 1


async def test_a_server_that_forbids_forwarding(
    ssh_server_factory: SSHServerFactory, status_service: int
) -> None:
    server = ssh_server_factory(["AllowTcpForwarding no"])
    with trio.fail_after(30):
        async with server.connect() as conn:
            with pytest.raises((ConnectionError, trio.BrokenResourceError)):
                await service_status(conn, "127.0.0.1", status_service)
