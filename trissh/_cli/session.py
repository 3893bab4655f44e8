"""The session ``trissh destination [command]`` runs: a command with its output streaming to ours, an
interactive shell on a pseudo-terminal, forwards only (``-N``), or a stdio forward (``-W``)."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import trio

from .._errors import SSHError
from .common import EXIT_SSH_ERROR, SSHSetup, copy_out
from .ssh_args import Invocation, UsageError
from .terminal import ESCAPE_HELP, EscapeAction, EscapeFilter, raw_terminal, terminal_size

if TYPE_CHECKING:
    from .._channels.session import Process
    from ..connection import SSHConnection

__all__ = ["run_session"]

log = logging.getLogger("trissh.cli")


def run_session(inv: Invocation, setup: SSHSetup) -> int:
    return trio.run(_session, inv, setup)


def _wants_terminal(inv: Invocation) -> bool:
    """ssh's rule: a pty for a shell on a terminal, or when asked with -t (-tt: even without one)."""
    if inv.tty < 0 or inv.no_command or inv.stdio_forward or inv.subsystem:
        return False
    if inv.tty >= 2:
        return True
    if not os.isatty(0):
        if inv.tty == 1:
            print("Pseudo-terminal will not be allocated because stdin is not a terminal.", file=sys.stderr)
        return False
    return inv.tty == 1 or not inv.command


async def _session(inv: Invocation, setup: SSHSetup) -> int:
    async with setup.connect() as conn, setup.forwards(conn, inv):
        if inv.stdio_forward:
            return await _stdio_forward(conn, inv.stdio_forward)
        if inv.no_command:
            await trio.sleep_forever()
        if _wants_terminal(inv):
            return await _interactive(conn, inv, setup.host)
        return await _command(conn, inv)
    raise AssertionError("unreachable")  # pragma: no cover


async def _command(conn: SSHConnection, inv: Invocation) -> int:
    command = shlex.join(inv.command) if len(inv.command) > 1 else " ".join(inv.command)
    subsystem = command if inv.subsystem else None
    async with conn.open_process(command if not inv.subsystem else "", subsystem=subsystem) as process:
        async with trio.open_nursery() as nursery:
            if inv.no_stdin:
                await process.stdin.send_eof()
            else:
                nursery.start_soon(_pump_stdin, process, None)
            async with trio.open_nursery() as copies:  # ends when both outputs reach EOF
                copies.start_soon(copy_out, process.stdout, 1)
                copies.start_soon(copy_out, process.stderr, 2)
            returncode = await process.wait()
            nursery.cancel_scope.cancel()  # stop reading our stdin
    return _exit_status(returncode)


def _exit_status(returncode: int | None) -> int:
    if returncode is None:
        return EXIT_SSH_ERROR
    return returncode if returncode >= 0 else 128 - returncode


async def _pump_stdin(process: Process, escapes: EscapeFilter | None) -> None:
    """Our standard input to the command's, then EOF; stops quietly if the command has gone."""
    stdin = trio.lowlevel.FdStream(os.dup(0))
    async with stdin:
        try:
            while chunk := await stdin.receive_some():
                disconnect = False
                if escapes is not None:
                    filtered = escapes.feed(chunk)
                    chunk = filtered.data
                    for action in filtered.actions:
                        if action is EscapeAction.HELP:
                            _say("~?\r\n" + ESCAPE_HELP.replace("\n", "\r\n"))
                    disconnect = EscapeAction.DISCONNECT in filtered.actions
                if chunk:
                    await process.stdin.send_all(chunk)  # what was typed before a ~. goes first
                if disconnect:
                    raise _Disconnect
            await process.stdin.send_eof()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the command ended without reading everything, as with ssh(1)


class _Disconnect(Exception):
    """The user typed ``~.``."""


def _say(text: str) -> None:
    os.write(2, text.encode())


async def _interactive(conn: SSHConnection, inv: Invocation, host: str) -> int:
    on_terminal = os.isatty(0)
    cols, rows, width, height = terminal_size(0) if on_terminal else (80, 24, 0, 0)
    term = os.environ.get("TERM", "xterm") or "xterm"
    size = (cols, rows, width, height)
    escapes = EscapeFilter(inv.escape_char) if on_terminal or inv.escape_char != "~" else None
    with raw_terminal(0) if on_terminal else contextlib.nullcontext():
        try:
            async with _process_on_terminal(conn, inv, term, size) as process:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_pump_stdin, process, escapes)
                    nursery.start_soon(_follow_window, process, nursery.cancel_scope)
                    await copy_out(process.stdout, 1)
                    returncode = await process.wait()
                    nursery.cancel_scope.cancel()
        except* _Disconnect:
            returncode = None
    if not inv.quiet:
        _say(f"Connection to {host} closed.\r\n")
    return _exit_status(returncode)


@contextlib.asynccontextmanager
async def _process_on_terminal(
    conn: SSHConnection, inv: Invocation, term: str, size: tuple[int, int, int, int]
) -> AsyncIterator[Process]:
    if inv.command:
        command = shlex.join(inv.command) if len(inv.command) > 1 else inv.command[0]
        async with conn.open_process(command, term_type=term, term_size=size) as process:
            yield process
    else:
        async with conn.open_shell(term_type=term, term_size=size) as process:
            yield process


async def _follow_window(process: Process, scope: trio.CancelScope) -> None:
    """Send the window's new size on every SIGWINCH; end the session on SIGTERM or SIGHUP."""
    with trio.open_signal_receiver(signal.SIGWINCH, signal.SIGTERM, signal.SIGHUP) as signals:
        async for signum in signals:
            if signum == signal.SIGWINCH:
                cols, rows, width, height = terminal_size(0)
                try:
                    await process.resize_terminal(cols, rows, width, height)
                except SSHError as exc:  # e.g. the channel closing meanwhile
                    log.debug("window size not sent: %s", exc)
            else:
                raise _Disconnect


async def _stdio_forward(conn: SSHConnection, target: str) -> int:
    host, _, port_text = target.rpartition(":")
    host = host.strip("[]")
    if not host or not port_text.isdigit():
        raise UsageError(f"bad stdio forwarding specification {target!r}")
    stream = await conn.open_tcp_stream(host, int(port_text))
    async with stream, trio.open_nursery() as nursery:

        async def upstream() -> None:
            source = trio.lowlevel.FdStream(os.dup(0))
            async with source:
                while chunk := await source.receive_some():
                    await stream.send_all(chunk)
            await stream.send_eof()

        nursery.start_soon(upstream)
        await copy_out(stream, 1)
        nursery.cancel_scope.cancel()
    return 0
