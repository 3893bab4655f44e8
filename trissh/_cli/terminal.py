"""The local terminal of an interactive session: raw mode, its size, and ssh's ``~`` escapes.

:class:`EscapeFilter` is pure (bytes in, bytes and actions out) so that the escape rules are tested
without a terminal; :func:`raw_terminal` puts the terminal in raw mode and restores it on every way
out, including an exception or a cancellation.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import os
import struct
import termios
import tty
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["EscapeAction", "EscapeFilter", "ESCAPE_HELP", "raw_terminal", "terminal_size"]

ESCAPE_HELP = """\
Supported escape sequences:
 ~.   - terminate connection
 ~?   - this message
 ~~   - send the escape character by typing it twice
(Note that escapes are only recognized immediately after newline.)
"""


class EscapeAction(enum.Enum):
    DISCONNECT = "disconnect"
    HELP = "help"


@dataclass
class _Filtered:
    data: bytes
    actions: list[EscapeAction]


class EscapeFilter:
    """ssh's escape character: recognised only as the first character of a line (after CR or LF, or
    at the start). ``~.`` disconnects, ``~?`` lists the escapes, ``~~`` sends one ``~``; any other
    character after it sends both, as ssh does."""

    def __init__(self, escape: str | None = "~") -> None:
        self._escape = escape.encode("latin-1")[0] if escape else None
        self._line_start = True
        self._pending = False  # the escape character was seen at a line start

    def feed(self, data: bytes) -> _Filtered:
        """What of ``data`` goes to the server, and what the user asked for."""
        if self._escape is None:
            return _Filtered(data, [])
        out = bytearray()
        actions: list[EscapeAction] = []
        for byte in data:
            if self._pending:
                self._pending = False
                if byte == ord("."):
                    actions.append(EscapeAction.DISCONNECT)
                    return _Filtered(bytes(out), actions)  # nothing after it is sent
                if byte == ord("?"):
                    actions.append(EscapeAction.HELP)
                    continue
                if byte != self._escape:
                    out.append(self._escape)
                out.append(byte)
                self._line_start = byte in (0x0D, 0x0A)
                continue
            if self._line_start and byte == self._escape:
                self._pending = True
                continue
            out.append(byte)
            self._line_start = byte in (0x0D, 0x0A)
        return _Filtered(bytes(out), actions)


def terminal_size(fd: int) -> tuple[int, int, int, int]:
    """``(columns, rows, width_px, height_px)`` of the terminal on ``fd`` (zeros when unknown)."""
    try:
        rows, cols, width, height = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, bytes(8)))
    except OSError:
        return 80, 24, 0, 0
    return cols or 80, rows or 24, width, height


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """The terminal on ``fd`` in raw mode for the block (keys go to the server as typed, no local echo,
    no signals from Ctrl-C), then exactly as it was."""
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSADRAIN)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def is_terminal(fd: int) -> bool:
    return os.isatty(fd)
