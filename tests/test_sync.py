"""The per-connection synchronisation primitives (trissh._sync)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trissh._sync import Latch, PacketInbox, Wakeup


async def test_wakeup_wakes_the_waiter() -> None:
    wakeup = Wakeup()
    woken = trio.Event()

    async def waiter() -> None:
        await wakeup.wait()
        woken.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert not woken.is_set()
        wakeup.set()
        await trio.testing.wait_all_tasks_blocked()
        assert woken.is_set()


async def test_wakeup_keeps_a_wakeup_with_nobody_waiting_until_cleared() -> None:
    wakeup = Wakeup()
    wakeup.set()
    with trio.testing.assert_checkpoints():
        await wakeup.wait()  # returns at once, with a checkpoint
    wakeup.set()
    wakeup.clear()
    with trio.move_on_after(0.05) as scope:
        await wakeup.wait()
    assert scope.cancelled_caught


async def test_wakeup_survives_a_cancelled_wait() -> None:
    wakeup = Wakeup()
    with trio.move_on_after(0.01):
        await wakeup.wait()
    wakeup.set()  # nobody waits: kept, and no reschedule of the cancelled task
    with trio.fail_after(1):
        await wakeup.wait()


async def test_latch_wakes_every_waiter_and_stays_set() -> None:
    latch = Latch()
    woken: list[int] = []

    async def waiter(index: int) -> None:
        await latch.wait()
        woken.append(index)

    async with trio.open_nursery() as nursery:
        for index in range(3):
            nursery.start_soon(waiter, index)
        await trio.testing.wait_all_tasks_blocked()
        assert not latch.is_set() and not woken
        latch.set()
    assert sorted(woken) == [0, 1, 2]
    assert latch.is_set()
    assert latch._event is None  # a connection keeps its latches for life: no Event behind a set one
    with trio.testing.assert_checkpoints():
        await latch.wait()


async def test_inbox_is_fifo_and_bounded() -> None:
    inbox: PacketInbox[int] = PacketInbox(2)
    await inbox.put(1)
    await inbox.put(2)
    put_done = trio.Event()

    async def third() -> None:
        await inbox.put(3)
        put_done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(third)
        await trio.testing.wait_all_tasks_blocked()
        assert not put_done.is_set()  # full: the producer waits
        assert await inbox.get() == 1
        await trio.testing.wait_all_tasks_blocked()
        assert put_done.is_set()
    assert [await inbox.get(), await inbox.get()] == [2, 3]
    with pytest.raises(trio.WouldBlock):
        inbox.get_nowait()


async def test_inbox_close_delivers_what_is_in_then_ends() -> None:
    inbox: PacketInbox[str] = PacketInbox(4)
    await inbox.put("a")
    inbox.close()
    with pytest.raises(trio.ClosedResourceError):
        await inbox.put("b")
    assert await inbox.get() == "a"
    with pytest.raises(trio.EndOfChannel):
        await inbox.get()


async def test_inbox_close_wakes_a_waiting_consumer_and_producer() -> None:
    inbox: PacketInbox[int] = PacketInbox(1)
    await inbox.put(0)
    outcomes: list[str] = []

    async def producer() -> None:
        with pytest.raises(trio.ClosedResourceError):
            await inbox.put(1)
        outcomes.append("producer")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer)
        await trio.testing.wait_all_tasks_blocked()
        inbox.close()
    assert outcomes == ["producer"]
    assert inbox.get_nowait() == 0

    empty: PacketInbox[int] = PacketInbox(1)

    async def consumer() -> None:
        with pytest.raises(trio.EndOfChannel):
            await empty.get()
        outcomes.append("consumer")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await trio.testing.wait_all_tasks_blocked()
        empty.close()
    assert outcomes == ["producer", "consumer"]


async def test_inbox_cancelled_get_loses_nothing() -> None:
    inbox: PacketInbox[int] = PacketInbox(4)
    with trio.CancelScope() as scope:
        scope.cancel()
        await inbox.put(1)  # cancelled before it puts anything
    assert scope.cancelled_caught
    with pytest.raises(trio.WouldBlock):
        inbox.get_nowait()

    await inbox.put(7)
    with trio.CancelScope() as scope:
        scope.cancel()
        await inbox.get()  # cancelled before it takes anything
    assert inbox.get_nowait() == 7
