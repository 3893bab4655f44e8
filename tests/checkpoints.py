"""Cancel an operation at its Nth step: a Trio instrument for sweeping cancellation over every point.

Theory of operation
-------------------
A Trio task runs in *steps*: from one schedule point (a checkpoint that yields) to the next. Between two
steps of the tasks that carry an operation nothing of it happens, so "just before step N" is a point of the
operation at which a cancellation can land. :class:`StepCounter` is an instrument that counts the steps of
the task under test (the *victim*, which opens the cancel scope) and of every trissh task started below it
(the transport's reader and writer, the forwarding's tasks, ...), and cancels the scope in
``before_task_step`` of the Nth: Trio then delivers ``Cancelled`` to every task of that scope at its next
checkpoint, or at once where it is blocked.

Counting the victim's steps alone would be coarse (it sleeps through a whole key exchange on one event) and
would miss the moments that matter most: the reader, about to run, is going to wake the victim with a
packet, so the victim will run once more with a *success* in hand while its scope is already cancelled.
Counting our own tasks too puts a point before each of those wake-ups.

What happens next depends on the order in which the cancelled tasks run, and Trio shuffles every batch of
runnable tasks: the bug fixed in 278d53f (the reader, cancelled, marked the connection failed, and the
victim woken just before raised that error instead of its Cancelled) needs the reader to run first, and a
sweep in Trio's own order catches it in about one round out of four. So while an attempt runs, the batches
are not shuffled but sorted, in one of two fixed orders (:class:`Order`): our tasks before the victim, or
the victim before ours. A sweep tries each point in both.

The count is still not exact from run to run: a packet may arrive in one read or two. The same operation
against the same server gives the same sequence of phases within a few steps, which is what a sweep needs:
it tries every point (or an even spread with both ends in full) of a count taken just before, and a point
past the end of a shorter run simply lets the operation finish.

Tasks are told apart by their names: trissh starts its tasks with functions of its own modules (named
``trissh.<module>.<function>``) or names them ``trissh ...``; everything else (the test's own helpers, a
fixture's servers) is not counted, since its timing is the network's, not trissh's.

The fixed order replaces Trio's scheduler's random source (``trio._core._run._r``) for the attempt, as
Trio's own Hypothesis plugin does to make the scheduler deterministic; with a Trio that no longer has it,
:func:`cancel_at_step` raises rather than quietly sweeping in a random order.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Iterator, MutableSequence
from contextlib import contextmanager
from typing import Any

import trio
import trio._core._run as trio_run

__all__ = ["Order", "StepCounter", "cancel_at_step", "sweep_points"]


class Order(enum.Enum):
    """Which tasks run first in each batch of runnable tasks while an attempt runs."""

    #: trissh's tasks, then the victim, then everything else: our reaction to a cancellation comes first.
    OURS_FIRST = "ours first"
    #: The victim, then trissh's tasks, then everything else.
    VICTIM_FIRST = "victim first"


def _descends_from(task: trio.lowlevel.Task, ancestor: trio.lowlevel.Task) -> bool:
    """Whether ``task`` was started, at any depth, from a nursery of ``ancestor``."""
    current: trio.lowlevel.Task | None = task
    while current is not None:
        if current is ancestor:
            return True
        nursery = current.parent_nursery
        current = nursery.parent_task if nursery is not None else None
    return False


class StepCounter(trio.abc.Instrument):
    """Counts the steps of ``victim`` and the trissh tasks below it; cancels ``scope`` before the
    ``cancel_at``-th.

    Attributes:
        steps: steps counted so far.
        fired_before: the name of the task whose step the cancellation came before (None: not yet).
    """

    def __init__(self, victim: trio.lowlevel.Task, scope: trio.CancelScope, cancel_at: int | None) -> None:
        self._victim = victim
        self._scope = scope
        self._cancel_at = cancel_at
        self._ours: dict[trio.lowlevel.Task, bool] = {}  # a task's ancestry does not change
        self.steps = 0
        self.fired_before: str | None = None

    def is_ours(self, task: trio.lowlevel.Task) -> bool:
        """Whether ``task`` is a trissh task started below the victim."""
        ours = self._ours.get(task)
        if ours is None:
            ours = task.name.startswith("trissh") and _descends_from(task, self._victim)
            self._ours[task] = ours
        return ours

    def rank(self, task: trio.lowlevel.Task, order: Order) -> int:
        """Where ``task`` goes in a batch run in ``order``: lower runs first."""
        if task is self._victim:
            return 1 if order is Order.OURS_FIRST else 0
        if self.is_ours(task):
            return 0 if order is Order.OURS_FIRST else 1
        return 2

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is not self._victim and not self.is_ours(task):
            return
        self.steps += 1
        if self.steps == self._cancel_at:
            self.fired_before = task.name
            self._scope.cancel()

    def task_exited(self, task: trio.lowlevel.Task) -> None:
        self._ours.pop(task, None)


class _SortedBatches(random.Random):
    """Stands in for the scheduler's random source: each batch is sorted, not shuffled.

    (Trio runs a batch from its end: ``batch.pop()``. So the task to run first is sorted last.)
    """

    def __init__(self, counter: StepCounter, order: Order) -> None:
        super().__init__(0)
        self._counter = counter
        self._order = order

    def shuffle(self, x: MutableSequence[Any]) -> None:
        x[:] = sorted(x, key=lambda task: self._counter.rank(task, self._order), reverse=True)


@contextmanager
def _scheduled_in(counter: StepCounter, order: Order) -> Iterator[None]:
    """Trio's batches in ``order`` (instead of shuffled) for the duration of the block."""
    if not hasattr(trio_run, "_r") or not hasattr(trio_run, "_ALLOW_DETERMINISTIC_SCHEDULING"):
        raise RuntimeError("this Trio has no scheduler random source to replace: update tests/checkpoints.py")
    saved = trio_run._r, trio_run._ALLOW_DETERMINISTIC_SCHEDULING
    trio_run._r = _SortedBatches(counter, order)
    trio_run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]  # batches go through shuffle()
    try:
        yield
    finally:
        trio_run._r, trio_run._ALLOW_DETERMINISTIC_SCHEDULING = saved  # type: ignore[misc]


@contextmanager
def cancel_at_step(
    step: int | None, order: Order = Order.OURS_FIRST
) -> Iterator[tuple[trio.CancelScope, StepCounter]]:
    """A cancel scope cancelled just before the ``step``-th step of the operation run inside it.

    ``step=None`` only counts (the count is the counter's ``steps`` after the block); ``step=0`` cancels on
    entry, so the operation starts in a cancelled scope (its first step runs up to its first checkpoint,
    which raises). The calling task is the victim; steps are counted from entering the block to leaving
    it, leaving included, with every batch of runnable tasks run in ``order``.
    """
    with trio.CancelScope() as scope:
        counter = StepCounter(trio.lowlevel.current_task(), scope, step)
        if step == 0:
            counter.fired_before = "(the start)"
            scope.cancel()
        with _scheduled_in(counter, order):
            trio.lowlevel.add_instrument(counter)
            try:
                yield scope, counter
            finally:
                trio.lowlevel.remove_instrument(counter)


def sweep_points(total: int, budget: int, *, ends: int = 8) -> list[int]:
    """Steps to cancel at for an operation of ``total`` steps: all of them if ``budget`` allows.

    Otherwise the first and last ``ends`` steps (where set-up and tear-down happen) and an even spread
    between them, ``budget`` points in all. Either way one more, past the end (the operation runs to
    completion).
    """
    if total <= budget:
        return list(range(1, total + 2))
    head = list(range(1, ends + 1))
    tail = list(range(total - ends + 1, total + 1))
    middle = budget - 2 * ends
    first, last = ends + 1, total - ends
    spread = {first + round(i * (last - first) / max(middle - 1, 1)) for i in range(max(middle, 0))}
    return sorted({*head, *spread, *tail, total + 1})
