"""SSH data types (RFC 4251 §5): encoders as small pure functions, and a reader.

Nothing here does I/O or cryptography. Decoding errors raise :class:`DecodeError`,
a :class:`ProtocolError` whose message names the field that was short or bad,
so a malformed message from the server ends the connection with a clear reason.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Final

from ._errors import ProtocolError

__all__ = [
    "DecodeError",
    "Reader",
    "boolean",
    "byte",
    "mpint",
    "name_list",
    "string",
    "uint32",
    "uint64",
]

_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")

# A name-list or string field bigger than a whole packet can never be valid;
# the packet layer already caps packets, this only keeps messages honest.
MAX_NAME_LIST: Final = 64 * 1024


class DecodeError(ProtocolError):
    """A message from the server could not be decoded."""


def byte(value: int) -> bytes:
    return bytes((value,))


def boolean(value: bool) -> bytes:
    return b"\x01" if value else b"\x00"


def uint32(value: int) -> bytes:
    return _U32.pack(value)


def uint64(value: int) -> bytes:
    return _U64.pack(value)


def string(value: bytes | bytearray | memoryview | str) -> bytes:
    """A length-prefixed string; ``str`` is encoded as UTF-8."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    return _U32.pack(len(value)) + bytes(value)


def mpint(value: int) -> bytes:
    """A two's complement multiple-precision integer, minimal length (RFC 4251 §5)."""
    if value == 0:
        return b"\x00\x00\x00\x00"
    length = (value.bit_length() + 8) // 8 if value > 0 else ((-value - 1).bit_length() + 8) // 8
    return _U32.pack(length) + value.to_bytes(length, "big", signed=True)


def mpint_from_unsigned(data: bytes) -> bytes:
    """Encode big-endian unsigned bytes (an X25519 secret, say) as an mpint."""
    return mpint(int.from_bytes(data, "big"))


def name_list(names: Iterable[str]) -> bytes:
    return string(",".join(names).encode("ascii"))


class Reader:
    """A cursor over one message. Every ``read_*`` raises DecodeError when short.

    ``what`` names the message being read, so errors say e.g.
    "KEXINIT: truncated reading string (need 40 bytes, 12 left)".
    """

    __slots__ = ("_data", "_pos", "what")

    def __init__(self, data: bytes | bytearray | memoryview, what: str = "message") -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def _take(self, n: int, field: str) -> memoryview:
        end = self._pos + n
        if end > len(self._data):
            raise DecodeError(
                f"{self.what}: truncated reading {field} (need {n} bytes, {len(self._data) - self._pos} left)"
            )
        view = self._data[self._pos : end]
        self._pos = end
        return view

    def byte(self) -> int:
        return self._take(1, "byte")[0]

    def boolean(self) -> bool:
        return self._take(1, "boolean")[0] != 0

    def uint32(self) -> int:
        value: int = _U32.unpack(self._take(4, "uint32"))[0]
        return value

    def uint64(self) -> int:
        value: int = _U64.unpack(self._take(8, "uint64"))[0]
        return value

    def raw(self, n: int) -> bytes:
        return bytes(self._take(n, "raw bytes"))

    def string(self) -> bytes:
        n = self.uint32()
        return bytes(self._take(n, "string"))

    def string_view(self) -> memoryview:
        """A string's bytes without copying (valid while the message buffer lives)."""
        n = self.uint32()
        return self._take(n, "string")

    def text(self) -> str:
        """A UTF-8 string; undecodable bytes are replaced, not fatal (it is for display)."""
        return self.string().decode("utf-8", "replace")

    def ascii(self) -> str:
        data = self.string()
        try:
            return data.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError(f"{self.what}: expected an ASCII name, got {data[:40]!r}") from None

    def mpint(self) -> int:
        data = self.string_view()
        if len(data) > 2048:
            raise DecodeError(f"{self.what}: mpint of {len(data)} bytes is too large")
        return int.from_bytes(data, "big", signed=True)

    def name_list(self) -> list[str]:
        n = self.uint32()
        if n > MAX_NAME_LIST:
            raise DecodeError(f"{self.what}: name-list of {n} bytes is too long")
        data = bytes(self._take(n, "name-list"))
        if not data:
            return []
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise DecodeError(f"{self.what}: name-list is not ASCII: {data[:40]!r}") from None
        names = text.split(",")
        if any(not name for name in names):
            raise DecodeError(f"{self.what}: name-list has an empty name: {text[:80]!r}")
        return names

    def rest(self) -> bytes:
        view = self._data[self._pos :]
        self._pos = len(self._data)
        return bytes(view)

    def check_end(self) -> None:
        if self._pos != len(self._data):
            raise DecodeError(f"{self.what}: {len(self._data) - self._pos} unexpected bytes at end")
