"""Progress of ``trissh cp``: a ``rich`` display (each file and the total: bytes, rate, time left) when
stderr is a terminal, one plain line per file when it is not, nothing with ``-q``.

``rich`` is imported only when a display is shown: the command's start-up does not pay for it.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Any

__all__ = ["TransferDisplay"]


class TransferDisplay:
    """The progress callback of a set of transfers (``progress(path, done, total)``) and what it
    shows. Use as a context manager around the transfers."""

    def __init__(self, total_bytes: int | None, *, quiet: bool = False, terminal: bool | None = None) -> None:
        self._quiet = quiet
        self._terminal = sys.stderr.isatty() if terminal is None else terminal
        self._total_bytes = total_bytes
        self._done: dict[str, int] = {}
        self._started: dict[str, float] = {}
        self._finished: set[str] = set()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._total_task: Any = None

    def __enter__(self) -> TransferDisplay:
        if not self._quiet and self._terminal:
            try:
                import rich.progress  # noqa: F401  (the optional dependency: trissh[cli])
            except ImportError:
                return self  # plain lines, as without a terminal
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}", justify="left"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                transient=False,
            )
            self._progress.start()
            if self._total_bytes is not None:
                self._total_task = self._progress.add_task("total", total=self._total_bytes)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, path: str, done: int, total: int) -> None:
        if self._quiet or path in self._finished:
            return
        now = time.monotonic()
        self._started.setdefault(path, now)
        before = self._done.get(path, 0)
        self._done[path] = done
        if self._progress is not None:
            task = self._tasks.get(path)
            if task is None:
                task = self._tasks[path] = self._progress.add_task(_short(path), total=total)
            self._progress.update(task, completed=done, total=total)
            if self._total_task is not None:
                self._progress.advance(self._total_task, done - before)
        if done >= total:
            self._finished.add(path)
            if self._progress is not None:
                self._progress.remove_task(self._tasks.pop(path))
                self._progress.console.print(f"{path}  {_size(total)}", highlight=False)
            else:
                seconds = max(now - self._started[path], 1e-6)
                print(f"{path}: {total} bytes, {total / seconds / 1e6:.1f} MB/s", file=sys.stderr)


def _short(path: str, width: int = 40) -> str:
    return path if len(path) <= width else "…" + path[-(width - 1) :]


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover
