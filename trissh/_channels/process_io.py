"""Where a process's output goes: ``PIPE``, ``DEVNULL``, ``STDOUT``, or a stream to copy into.

Theory of operation
-------------------
A command's stdout and stderr arrive on one channel and share its one receive
window (RFC 4254 §5.2), so data nobody takes stops *both* streams. Each
``stdout=`` / ``stderr=`` argument says who takes it:

* :data:`PIPE`: the caller, through ``Process.stdout`` / ``Process.stderr``
  (or, for ``run()``, collected into ``CompletedProcess``).
* :data:`DEVNULL`: nobody. The channel drops the data on arrival and grants
  its window back at once, so it can never hold the window.
* :data:`STDOUT` (stderr only): stderr is appended to stdout's buffer as it
  arrives, so the two interleave in arrival order.
* a :class:`trio.abc.SendStream`, or an object with an async ``write(bytes)``
  (a ``trio.wrap_file`` file): a trissh task copies the data into it as fast
  as it accepts it (the window is granted back as the copy proceeds).

This module only names and checks targets and runs copies; the channel side
(dropping, merging, stderr's bound) lives in
:class:`~trissh._channels.session.SessionChannel`.
"""

from __future__ import annotations

import enum
from typing import Final, Protocol, TypeAlias, runtime_checkable

import trio

from .._public import public

__all__ = [
    "DEVNULL",
    "PIPE",
    "STDOUT",
    "AsyncWriter",
    "OutputTarget",
    "Redirect",
    "check_target",
    "copy_output",
    "is_stream_target",
]


@public
class Redirect(enum.Enum):
    """Where a process's output stream goes when it is not copied into a stream."""

    #: The caller reads it (``Process.stdout`` / ``.stderr``; ``run()`` collects it).
    PIPE = "PIPE"
    #: Dropped on arrival; its window is granted back at once.
    DEVNULL = "DEVNULL"
    #: (stderr only) merged into stdout in arrival order.
    STDOUT = "STDOUT"

    def __repr__(self) -> str:
        return f"trissh.{self.value}"


PIPE: Final = Redirect.PIPE
DEVNULL: Final = Redirect.DEVNULL
STDOUT: Final = Redirect.STDOUT


@runtime_checkable
class AsyncWriter(Protocol):
    """An async file-like object (``trio.wrap_file(open(..., "wb"))``): only ``write`` is used."""

    async def write(self, data: bytes, /) -> object: ...  # (a file returns a count; unused)


OutputTarget: TypeAlias = "Redirect | trio.abc.SendStream | AsyncWriter"


def check_target(name: str, target: object) -> None:
    """Raise a clear error if ``target`` is not a valid ``stdout=`` / ``stderr=`` argument.

    Raises:
        ValueError: ``stdout=STDOUT``.
        TypeError: anything that is neither a :class:`Redirect`, a SendStream, nor has an async ``write``.
    """
    if isinstance(target, Redirect):
        if target is STDOUT and name != "stderr":
            raise ValueError(f"{name}=trissh.STDOUT: only stderr can be merged into stdout")
        return
    if isinstance(target, (trio.abc.SendStream, AsyncWriter)):
        return
    raise TypeError(
        f"{name} must be trissh.PIPE, trissh.DEVNULL, trissh.STDOUT, a trio SendStream "
        f"or an async file, not {target!r}"
    )


def is_stream_target(target: object) -> bool:
    """Whether ``target`` is a stream to copy into (rather than a :class:`Redirect`)."""
    return not isinstance(target, Redirect)


async def copy_output(source: trio.abc.ReceiveStream, target: trio.abc.SendStream | AsyncWriter) -> None:
    """Copy ``source`` into ``target`` until end-of-file (or until trissh closes ``source``).

    The target is not closed: it belongs to the caller.
    """
    while True:
        try:
            data = await source.receive_some()
        except trio.ClosedResourceError:
            return  # the process's block ended while the command still ran: nothing more will come
        if not data:
            return
        if isinstance(target, trio.abc.SendStream):
            await target.send_all(data)
        else:
            await target.write(data)
