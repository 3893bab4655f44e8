"""Pseudo-terminal requests (RFC 4254 §6.2, §6.7, §8): terminal modes, sizes, window changes.

Theory of operation
-------------------
A pty-req carries the terminal type, its size in characters and pixels, and
the *encoded terminal modes* of RFC 4254 §8: a byte string of (opcode byte,
uint32 value) pairs ended by TTY_OP_END (0). This module owns that encoding
and the validation of what callers pass; it knows nothing of channels. Modes
may be named (``"ECHO"``, ``"VINTR"``, ``"TTY_OP_ISPEED"``...) or given by
opcode number; names are those of the RFC's table, case-insensitive.
Opcodes 160 to 255 are not defined by the RFC (RFC 4254 §8: "not yet
defined, and cause parsing to stop"), so they are refused rather than sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .._wire import string, uint32

__all__ = ["TERMINAL_MODES", "encode_terminal_modes", "pty_request_fields", "window_change_fields"]

#: RFC 4254 §8: mode name -> opcode.
TERMINAL_MODES: Final[Mapping[str, int]] = {
    "VINTR": 1,
    "VQUIT": 2,
    "VERASE": 3,
    "VKILL": 4,
    "VEOF": 5,
    "VEOL": 6,
    "VEOL2": 7,
    "VSTART": 8,
    "VSTOP": 9,
    "VSUSP": 10,
    "VDSUSP": 11,
    "VREPRINT": 12,
    "VWERASE": 13,
    "VLNEXT": 14,
    "VFLUSH": 15,
    "VSWTCH": 16,
    "VSTATUS": 17,
    "VDISCARD": 18,
    "IGNPAR": 30,
    "PARMRK": 31,
    "INPCK": 32,
    "ISTRIP": 33,
    "INLCR": 34,
    "IGNCR": 35,
    "ICRNL": 36,
    "IUCLC": 37,
    "IXON": 38,
    "IXANY": 39,
    "IXOFF": 40,
    "IMAXBEL": 41,
    "IUTF8": 42,  # RFC 8160
    "ISIG": 50,
    "ICANON": 51,
    "XCASE": 52,
    "ECHO": 53,
    "ECHOE": 54,
    "ECHOK": 55,
    "ECHONL": 56,
    "NOFLSH": 57,
    "TOSTOP": 58,
    "IEXTEN": 59,
    "ECHOCTL": 60,
    "ECHOKE": 61,
    "PENDIN": 62,
    "OPOST": 70,
    "OLCUC": 71,
    "ONLCR": 72,
    "OCRNL": 73,
    "ONOCR": 74,
    "ONLRET": 75,
    "CS7": 90,
    "CS8": 91,
    "PARENB": 92,
    "PARODD": 93,
    "TTY_OP_ISPEED": 128,
    "TTY_OP_OSPEED": 129,
}

_TTY_OP_END: Final = 0
#: RFC 4254 §8: opcodes 1 to 159 carry a uint32 argument; 160 to 255 are undefined.
_LAST_OPCODE: Final = 159
_UINT32_MAX: Final = 0xFFFFFFFF


def encode_terminal_modes(modes: Mapping[str | int, int] | None) -> bytes:
    """Encode ``modes`` as RFC 4254 §8 terminal modes, ending with TTY_OP_END.

    Raises:
        ValueError: an unknown mode name, an opcode outside 1..159, or a value
            that is not a uint32 (the message names the mode).
        TypeError: a key that is neither a name nor an int, or a value that is not an int.
    """
    out = bytearray()
    for key, value in (modes or {}).items():
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise TypeError(f"terminal mode keys are names or opcodes, not {key!r}")
        if isinstance(key, str):
            opcode = TERMINAL_MODES.get(key.upper())
            if opcode is None:
                raise ValueError(f"unknown terminal mode {key!r} (RFC 4254 §8 names, e.g. 'ECHO')")
        else:
            opcode = key
            if not 1 <= opcode <= _LAST_OPCODE:
                raise ValueError(f"terminal mode opcode {opcode} is outside 1..{_LAST_OPCODE}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"terminal mode {key!r}: value must be an int, not {value!r}")
        if not 0 <= value <= _UINT32_MAX:
            raise ValueError(f"terminal mode {key!r}: value {value} is not a uint32")
        out.append(opcode)
        out += uint32(value)
    out.append(_TTY_OP_END)
    return bytes(out)


def _dimensions(what: str, cols: int, rows: int, width: int, height: int) -> tuple[int, int, int, int]:
    values = (cols, rows, width, height)
    for name, value in zip(("cols", "rows", "width", "height"), values, strict=True):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{what}: {name} must be an int, not {value!r}")
        if not 0 <= value <= _UINT32_MAX:
            raise ValueError(f"{what}: {name} {value} is not a uint32")
    return values


def _size(term_size: tuple[int, ...] | None) -> tuple[int, int, int, int]:
    size = tuple(term_size) if term_size is not None else (80, 24)
    if len(size) not in (2, 4):
        raise ValueError(f"term_size must be (cols, rows) or (cols, rows, width, height), not {term_size!r}")
    cols, rows, width, height = (*size, 0, 0)[:4]
    return _dimensions("term_size", cols, rows, width, height)


def pty_request_fields(
    term_type: str, term_size: tuple[int, ...] | None, term_modes: Mapping[str | int, int] | None
) -> list[bytes]:
    """The fields of a ``pty-req`` (RFC 4254 §6.2), validated; ``term_size`` defaults to 80x24."""
    if not isinstance(term_type, str) or not term_type or not term_type.isprintable():
        raise ValueError(f"term_type must be a non-empty printable string, not {term_type!r}")
    cols, rows, width, height = _size(term_size)
    return [
        string(term_type),
        uint32(cols),
        uint32(rows),
        uint32(width),
        uint32(height),
        string(encode_terminal_modes(term_modes)),
    ]


def window_change_fields(cols: int, rows: int, width: int, height: int) -> list[bytes]:
    """The fields of a ``window-change`` request (RFC 4254 §6.7), validated."""
    return [uint32(value) for value in _dimensions("resize_terminal", cols, rows, width, height)]
