"""Testing code that must handle a server that dies: ``server.kill()`` ends sshd and its sessions at once,
as a crashed or powered-off host would."""

from __future__ import annotations

import pytest
import trio
from failover import AllServersFailed, run_with_failover

import trissh
from trissh.testing import SSHServer
from trissh.testing.plugin import SSHServerFactory


async def test_the_first_server_answers(ssh_server_factory: SSHServerFactory) -> None:
    first, second = ssh_server_factory(), ssh_server_factory()
    with trio.fail_after(30):
        assert await run_with_failover([first.connect, second.connect], "echo hi") == (0, b"hi\n")


async def test_a_dead_server_is_skipped(ssh_server_factory: SSHServerFactory) -> None:
    first, second = ssh_server_factory(), ssh_server_factory()
    first.kill()
    with trio.fail_after(30):
        assert await run_with_failover([first.connect, second.connect], "echo hi") == (1, b"hi\n")


async def test_a_server_dying_mid_command_moves_to_the_next(
    ssh_server_factory: SSHServerFactory, tmp_path: trio.Path
) -> None:
    first, second = ssh_server_factory(), ssh_server_factory()
    # Both servers are this machine: the first run leaves a marker and hangs; a rerun sees it and answers.
    marker = trio.Path(tmp_path) / "started"
    command = f"if test -e {marker}; then echo rerun; else touch {marker}; sleep 60; fi"

    async def kill_once_started(server: SSHServer) -> None:
        while not await marker.exists():
            await trio.sleep(0.01)
        server.kill()

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(kill_once_started, first)
            assert await run_with_failover([first.connect, second.connect], command) == (1, b"rerun\n")


async def test_every_server_dead_is_one_clear_error(ssh_server_factory: SSHServerFactory) -> None:
    servers = [ssh_server_factory(), ssh_server_factory()]
    for server in servers:
        server.kill()
    with trio.fail_after(30), pytest.raises(AllServersFailed) as caught:
        await run_with_failover([s.connect for s in servers], "true")
    assert len(caught.value.errors) == 2
    assert all(isinstance(e, trissh.ConnectionLost) for e in caught.value.errors)
