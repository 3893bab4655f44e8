"""Starting processes and shells, running them to completion, and stopping them when their block ends.

Theory of operation
-------------------
:func:`open_session` is what ``SSHConnection.open_process`` and
``open_shell`` are: open a session channel, route its output
(:mod:`~trissh._channels.process_io`) *before* the command starts so no byte
arrives unrouted, start it, and yield the :class:`Process`. When the block is
left while the command still runs (an exception, a cancellation, or simply
leaving early) :meth:`Process.stop_nowait` queues a ``signal``
(:data:`~trissh._channels.session.STOP_SIGNAL`) and CLOSE without waiting,
so the remote command does not outlive its block on servers that honour
``signal`` (OpenSSH since 7.9), and cleanup never blocks.

Output copied into caller streams is copied by tasks named ``trissh.*`` in
a nursery of the block. When the command has ended by the time the block is
left, they finish copying what arrived; otherwise they are cancelled. Errors
come out unwrapped: a single exception, never an ``ExceptionGroup`` of one.

:func:`run_session` is ``run()``: with only PIPE/DEVNULL/STDOUT targets the
channel collects on arrival (``Channel.collect``, window granted at once);
with a stream target, every output is copied by a task instead, so a slow
target slows the command rather than filling memory.
"""

from __future__ import annotations

import shlex
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from .._errors import ProcessError
from .channel import EXTENDED_DATA_STDERR
from .mux import ChannelMux
from .open import channel_opened
from .process_io import DEVNULL, PIPE, STDOUT, OutputTarget, check_target, copy_output, is_stream_target
from .session import CompletedProcess, Process, SessionChannel

__all__ = ["command_line", "open_nursery_unwrapped", "open_session", "run_session", "unwrap_group"]


def command_line(command: str | Sequence[str]) -> str:
    """``command`` as one line: a string as is, a sequence of arguments joined with :func:`shlex.join`.

    Raises:
        TypeError: bytes, or an argument that is not a str.
        ValueError: an empty sequence.
    """
    if isinstance(command, str):
        return command
    if isinstance(command, (bytes, bytearray, memoryview)) or not isinstance(command, Sequence):
        raise TypeError(f"command must be a str or a sequence of str arguments, not {command!r}")
    arguments = list(command)
    if not arguments:
        raise ValueError("command: an empty argument list")
    for argument in arguments:
        if not isinstance(argument, str):
            raise TypeError(f"command arguments must be str, not {argument!r} in {arguments!r}")
    return shlex.join(arguments)


def _route(channel: SessionChannel, stdout: OutputTarget, stderr: OutputTarget) -> None:
    if stdout is DEVNULL:
        channel.discard(0)
    if stderr is DEVNULL:
        channel.discard(EXTENDED_DATA_STDERR)
        channel.stderr_route = DEVNULL
    elif stderr is STDOUT:
        channel.stderr_route = STDOUT
    elif is_stream_target(stderr):
        channel.bound_stderr = False  # our copy task reads it: the bound is for stderr nobody reads


def unwrap_group(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one real error in ``group`` (cancellations of our own tasks aside), or the group itself."""
    real = [exc for exc in group.exceptions if not isinstance(exc, trio.Cancelled)]
    if len(real) == 1:
        only = real[0]
        return unwrap_group(only) if isinstance(only, BaseExceptionGroup) else only
    if not real and group.exceptions:
        return group.exceptions[0]
    return group


@asynccontextmanager
async def open_nursery_unwrapped() -> AsyncIterator[trio.Nursery]:
    """A nursery that lets its one real error leave as itself, the block's own included, rather than in
    an ExceptionGroup (:func:`unwrap_group`): for context managers whose helper tasks are an internal
    matter, so that the caller's ``except`` works as written."""
    try:
        async with trio.open_nursery() as nursery:
            yield nursery
    except BaseExceptionGroup as group:
        raise unwrap_group(group) from None


@asynccontextmanager
async def open_session(
    mux: ChannelMux,
    command: str,
    *,
    stdout: OutputTarget = PIPE,
    stderr: OutputTarget = PIPE,
    **start: Any,
) -> AsyncIterator[Process]:
    """Open a session, route its output, start it with ``start`` (see :meth:`Process.start`), and yield it.

    Raises:
        ValueError, TypeError: a bad ``stdout``/``stderr`` target (before anything is sent).
    """
    check_target("stdout", stdout)
    check_target("stderr", stderr)
    copies = [
        (name, stream_no, target)
        for name, stream_no, target in (("stdout", 0, stdout), ("stderr", EXTENDED_DATA_STDERR, stderr))
        if is_stream_target(target)
    ]
    async with channel_opened(mux, "session", factory=SessionChannel) as channel:
        process = Process(channel, command)
        _route(channel, stdout, stderr)
        try:
            await process.start(**start)
            if not copies:
                yield process
                return
            async with open_nursery_unwrapped() as nursery:
                for name, stream_no, target in copies:
                    source = process.stdout if stream_no == 0 else process.stderr
                    nursery.start_soon(copy_output, source, target, name=f"trissh.process.copy {name}")
                yield process
                if process.running:
                    nursery.cancel_scope.cancel()  # left early: what is left of the output is not wanted
        finally:
            process.stop_nowait()


class _Collector:
    """An async writer that keeps everything (``run()``'s PIPE when other output is copied)."""

    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        self.data += data
        await trio.lowlevel.checkpoint()


async def run_session(
    mux: ChannelMux,
    command: str | Sequence[str],
    *,
    check: bool,
    input: bytes | bytearray | memoryview,
    stdout: OutputTarget,
    stderr: OutputTarget,
    **start: Any,
) -> CompletedProcess:
    """``SSHConnection.run``: start ``command``, feed ``input``, wait, and return what it wrote."""
    line = command_line(command)
    check_target("stdout", stdout)
    check_target("stderr", stderr)
    copying = is_stream_target(stdout) or is_stream_target(stderr)
    out = _Collector() if stdout is PIPE and copying else None
    err = _Collector() if stderr is PIPE and copying else None
    async with open_session(
        mux, line, stdout=out or stdout, stderr=err or stderr, subsystem=False, **start
    ) as process:
        channel = process.channel
        channel.collect = not copying  # we keep all output, so grant window as it arrives
        try:
            if input:
                await process.stdin.send_all(input)
            await process.stdin.send_eof()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the command ended without reading all its input; as with ssh(1)
        returncode = await process.wait()
        # Taken inside the block: leaving it closes the channel, which drops its buffers.
        stdout_data = channel.take_all(0) if stdout is PIPE and not copying else b""
        stderr_data = channel.take_all(EXTENDED_DATA_STDERR) if stderr is PIPE and not copying else b""
    # Past the block the copy tasks have finished, so the collectors are complete.
    result = CompletedProcess(
        line,
        returncode,
        bytes(out.data) if out is not None else stdout_data,
        bytes(err.data) if err is not None else stderr_data,
        channel.exit_signal,
    )
    if check and returncode != 0:
        raise ProcessError(line, returncode, result.stdout, result.stderr, result.exit_signal)
    return result
