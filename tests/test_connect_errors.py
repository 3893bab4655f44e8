"""What comes out of ``connect()``'s block when it ends badly, and that nothing of trissh outlives it.

``connect()`` runs its tasks in a nursery of its own; these tests pin down that the caller never sees
that nursery's ExceptionGroup (even when an outer cancel scope fires while the block raises) and that
every task trissh starts, the keepalive task included, has ended when the block has.
"""

from __future__ import annotations

import pytest
import trio
from test_integration import connect, trissh_tasks

from trissh.testing import SSHServer

KEEPALIVE_TASK = "trissh._keepalive.keep_alive"


class BlockError(Exception):
    """The caller's own error, raised inside the ``connect()`` block."""


# --- the caller's error, not a group ------------------------------------------------------------


async def test_the_blocks_error_wins_over_an_outer_cancel(sshd: SSHServer) -> None:
    """An outer scope cancelled just before the block raises: our tasks end Cancelled, the block's
    body ends with the caller's error, and the caller gets that error bare, not an ExceptionGroup of
    it and the Cancelled exceptions (which belong to the outer scope, so no scope of ours eats them)."""
    with trio.fail_after(20):
        with trio.CancelScope() as outer:
            with pytest.raises(BlockError, match="the caller's") as info:
                async with connect(sshd) as conn:
                    await conn.run("true")
                    outer.cancel()
                    raise BlockError("the caller's")
        assert type(info.value) is BlockError
        assert not outer.cancelled_caught  # the error went through the scope, as it must
        assert trissh_tasks() == []


async def test_the_blocks_error_wins_over_an_outer_cancel_with_keepalive(sshd: SSHServer) -> None:
    """The same with a keepalive task as well: one more Cancelled in the group, still the bare error."""
    with trio.fail_after(20):
        with trio.CancelScope() as outer:
            with pytest.raises(BlockError) as info:
                async with connect(sshd, keepalive_interval=30) as conn:
                    await conn.run("true")  # the keepalive task is asleep in its interval by now
                    assert KEEPALIVE_TASK in trissh_tasks()
                    outer.cancel()
                    raise BlockError("with keepalive")
        assert type(info.value) is BlockError
        assert trissh_tasks() == []


async def test_an_outer_cancel_alone_comes_out_as_the_scopes_cancel(sshd: SSHServer) -> None:
    """With no error of the caller's, only Cancelled comes out, and the outer scope catches it."""
    with trio.fail_after(20):
        with trio.CancelScope() as outer:
            async with connect(sshd, keepalive_interval=30):
                outer.cancel()
                await trio.sleep_forever()
        assert outer.cancelled_caught
        assert trissh_tasks() == []


# --- no task left, the keepalive task included ------------------------------------------------------


async def test_the_keepalive_task_is_seen_as_a_trissh_task(sshd: SSHServer) -> None:
    """``trissh_tasks()`` counts tasks whose name starts with "trissh": the keepalive task must be one,
    or the "no task left" checks below could not see it survive."""
    with trio.fail_after(20):
        async with connect(sshd, keepalive_interval=30):
            assert KEEPALIVE_TASK in trissh_tasks()
        async with connect(sshd):
            assert KEEPALIVE_TASK not in trissh_tasks()  # started only when asked for


@pytest.mark.parametrize("how", ["normally", "cancelled", "raising"])
async def test_a_block_with_keepalive_leaves_no_task(sshd: SSHServer, how: str) -> None:
    """However the block ends, the keepalive task (sleeping for 30 s, far longer than the test) has
    ended with it, as have the reader and writer: nothing named trissh is left anywhere in the run."""
    with trio.fail_after(20):
        with trio.CancelScope() as scope:
            try:
                async with connect(sshd, keepalive_interval=30) as conn:
                    assert (await conn.run("echo up")).stdout == b"up\n"
                    assert KEEPALIVE_TASK in trissh_tasks()
                    if how == "cancelled":
                        scope.cancel()
                        await trio.sleep_forever()
                    if how == "raising":
                        raise BlockError(how)
            except BlockError:
                assert how == "raising"
        assert scope.cancelled_caught == (how == "cancelled")
        assert trissh_tasks() == []
        assert conn.is_closed
