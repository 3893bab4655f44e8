"""Small synchronisation primitives for the per-connection tasks.

A connection lives for a long time and a process may hold thousands of them,
so what each one keeps matters (the fan-out benchmark holds 1000). A
``trio.Event`` carries a ParkingLot with an OrderedDict, and a memory channel
two endpoints, a state object, a deque and two OrderedDicts; these do the same
few jobs with a slot or two, and wake the one task that waits without any
bookkeeping in between.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import trio

__all__ = ["Latch", "PacketInbox", "Wakeup"]

T = TypeVar("T")


class Wakeup:
    """Wakes one waiting task; a wake-up with nobody waiting is kept for the next wait.

    The packet inbox's signal in each direction: rung for every packet, so it
    must be cheap, and reusable without building a new object per round.
    """

    __slots__ = ("_pending", "_task")

    def __init__(self) -> None:
        self._task: trio.lowlevel.Task | None = None
        self._pending = False

    def set(self) -> None:
        task = self._task
        if task is not None:
            self._task = None
            trio.lowlevel.reschedule(task)
        else:
            self._pending = True

    def clear(self) -> None:
        """Forget a wake-up that came before the waiter looked at its work."""
        self._pending = False

    async def wait(self) -> None:
        """Return after the next :meth:`set` (at once if one is pending). Only one task may wait."""
        if self._pending:
            self._pending = False
            await trio.lowlevel.checkpoint()
            return
        assert self._task is None, "Wakeup has a single waiter"
        self._task = trio.lowlevel.current_task()

        def abort(_: object) -> trio.lowlevel.Abort:
            self._task = None
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)


class Latch:
    """A one-shot flag that tasks can wait for: a ``trio.Event`` built only when someone waits."""

    __slots__ = ("_event", "_set")

    def __init__(self) -> None:
        self._set = False
        self._event: trio.Event | None = None

    def set(self) -> None:
        self._set = True
        event = self._event
        if event is not None:
            self._event = None  # the woken waiters hold it while they need it; the latch needs it no more
            event.set()

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> None:
        if self._set:
            await trio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = trio.Event()
        await self._event.wait()


class PacketInbox(Generic[T]):
    """A bounded FIFO from the reader task to one consumer task at a time.

    :meth:`put` waits while the inbox is full (so a server cannot make the
    reader buffer without bound); :meth:`get` waits while it is empty and
    raises ``trio.EndOfChannel`` once it is closed and drained.
    """

    __slots__ = ("_closed", "_items", "_limit", "_not_empty", "_not_full")

    def __init__(self, limit: int) -> None:
        self._items: deque[T] = deque()
        self._limit = limit
        self._closed = False
        self._not_empty = Wakeup()
        self._not_full = Wakeup()

    async def put(self, item: T) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        while len(self._items) >= self._limit and not self._closed:
            await self._not_full.wait()
        if self._closed:
            raise trio.ClosedResourceError("the inbox is closed")
        self._items.append(item)
        self._not_empty.set()
        await trio.lowlevel.cancel_shielded_checkpoint()  # the item is in: a cancel must not lose it

    def get_nowait(self) -> T:
        """The oldest item; ``trio.WouldBlock`` when empty, ``trio.EndOfChannel`` when closed and empty."""
        if self._items:
            item = self._items.popleft()
            self._not_full.set()
            return item
        if self._closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def get(self) -> T:
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                item = self.get_nowait()
            except trio.WouldBlock:
                await self._not_empty.wait()
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()  # the item is out: a cancel must not lose it
            return item

    def close(self) -> None:
        """No more items: wake both sides (items already in are still delivered)."""
        self._closed = True
        self._not_empty.set()
        self._not_full.set()
