"""Process stdin/stdout/stderr follow Trio's stream conventions (against a real sshd)."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import pytest
import trio
import trio.testing

import trissh
from trissh.testing import SSHServer


def _connect(server: SSHServer) -> AbstractAsyncContextManager[trissh.SSHConnection]:
    return trissh.connect(
        server.host,
        server.port,
        username=server.username,
        client_keys=[server.client_key],
        known_hosts=server.known_hosts,
    )


async def test_every_stream_call_is_a_checkpoint(sshd: SSHServer) -> None:
    """Trio convention: every async method checkpoints on every path, including no-op ones."""
    async with _connect(sshd) as conn, conn.open_process("echo hi; cat") as proc:
        await trio.sleep(0.2)  # let "hi" arrive, so the read below needs no waiting
        with trio.testing.assert_checkpoints():
            assert await proc.stdout.receive_some() == b"hi\n"
        with trio.testing.assert_checkpoints():
            await proc.stdin.send_all(b"")
        with trio.testing.assert_checkpoints():
            await proc.stdin.send_all(b"x")
        with trio.testing.assert_checkpoints():
            await proc.stdin.send_eof()
        with trio.testing.assert_checkpoints():
            await proc.stdin.send_eof()  # a second EOF is a no-op, still a checkpoint
        with trio.testing.assert_checkpoints():
            await proc.stdin.aclose()
        assert await proc.stdout.receive_some() == b"x"
        assert await proc.stdout.receive_some() == b""
        with trio.testing.assert_checkpoints():
            assert await proc.stdout.receive_some() == b""  # EOF again, without waiting
        with trio.testing.assert_checkpoints():
            await proc.stderr.aclose()
        with trio.testing.assert_checkpoints():
            await proc.stderr.aclose()  # idempotent


async def test_closed_streams_raise_trio_errors(sshd: SSHServer) -> None:
    async with _connect(sshd) as conn, conn.open_process("cat") as proc:
        await proc.stdin.send_eof()
        with pytest.raises(trio.ClosedResourceError):
            await proc.stdin.send_all(b"after eof")
        await proc.stdout.aclose()
        with pytest.raises(trio.ClosedResourceError):
            await proc.stdout.receive_some()
        assert await proc.wait() == 0


async def test_two_readers_conflict(sshd: SSHServer) -> None:
    """A second task in receive_some gets BusyResourceError, as trio's own streams do."""
    async with _connect(sshd) as conn, conn.open_process("sleep 1") as proc:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(proc.stdout.receive_some)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.BusyResourceError):
                await proc.stdout.receive_some()
            nursery.cancel_scope.cancel()


async def test_async_iteration_reads_to_eof(sshd: SSHServer) -> None:
    async with _connect(sshd) as conn, conn.open_process("seq 1 20000") as proc:
        data = b"".join([chunk async for chunk in proc.stdout])
        assert data == b"".join(b"%d\n" % i for i in range(1, 20001))
        assert await proc.wait() == 0


async def test_stderr_and_stdout_read_separately(sshd: SSHServer) -> None:
    async with _connect(sshd) as conn, conn.open_process("echo out; echo err >&2") as proc:
        assert await proc.stderr.receive_some() == b"err\n"
        assert await proc.stdout.receive_some() == b"out\n"
        assert await proc.wait() == 0


async def test_terminal(sshd: SSHServer) -> None:
    """RFC 4254 §6.2 pty-req: the command sees a terminal of the requested size."""
    async with _connect(sshd) as conn:
        result = await conn.run(
            "tty >/dev/null && stty size && echo $TERM", term_type="xterm", term_size=(100, 30)
        )
        assert result.stdout.replace(b"\r", b"") == b"30 100\nxterm\n"
