"""Protocol version exchange (RFC 4253 §4.2), client side.

The server may send other lines before its ``SSH-`` line; we accept them but
bound both their number and their length, so a server that sends endless junk
ends in a clear error instead of an ever-growing buffer.
"""

from __future__ import annotations

from typing import Final

from .._errors import DisconnectReason, ProtocolError

__all__ = ["CLIENT_VERSION", "MAX_PRE_BANNER_LINES", "VersionParser", "version_line"]

CLIENT_VERSION: Final = "SSH-2.0-trissh_0.1"

# OpenSSH gives up after 1024 lines before the banner; a line longer than 8 KiB
# is not a banner anyone meant to send. RFC 4253 caps the version line itself
# at 255 characters including CR LF.
MAX_PRE_BANNER_LINES: Final = 1024
MAX_LINE_LENGTH: Final = 8192
MAX_VERSION_LENGTH: Final = 255


def version_line(version: str = CLIENT_VERSION) -> bytes:
    return version.encode("ascii") + b"\r\n"


class VersionParser:
    """Finds the server's version line in a byte buffer.

    ``feed(buffer)`` consumes complete lines from the front of ``buffer`` and
    returns the version string (without CR LF) once seen, else ``None``.
    """

    def __init__(self) -> None:
        self.pre_banner_lines: list[str] = []

    def feed(self, buffer: bytearray) -> str | None:
        while True:
            end = buffer.find(b"\n", 0, MAX_LINE_LENGTH + 1)
            if end < 0:
                if len(buffer) > MAX_LINE_LENGTH:
                    raise ProtocolError(
                        f"version exchange: server sent a line longer than {MAX_LINE_LENGTH} bytes "
                        "without an end of line",
                        DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED,
                    )
                return None
            raw = bytes(buffer[:end])
            del buffer[: end + 1]
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if line.startswith(b"SSH-"):
                return self._check_version(line)
            if len(self.pre_banner_lines) >= MAX_PRE_BANNER_LINES:
                raise ProtocolError(
                    f"version exchange: no SSH version line within {MAX_PRE_BANNER_LINES} lines",
                    DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED,
                )
            self.pre_banner_lines.append(line.decode("utf-8", "replace"))

    @staticmethod
    def _check_version(line: bytes) -> str:
        if len(line) + 2 > MAX_VERSION_LENGTH:
            raise ProtocolError(
                f"version exchange: version line of {len(line)} bytes is longer than 255",
                DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED,
            )
        if b"\x00" in line:
            raise ProtocolError(
                "version exchange: version line contains a NUL byte",
                DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED,
            )
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError(
                f"version exchange: version line is not ASCII: {line[:80]!r}",
                DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED,
            ) from None
        parts = text.split("-", 2)
        if len(parts) < 3 or parts[1] not in ("2.0", "1.99") or not parts[2]:
            raise ProtocolError(
                f"version exchange: server speaks an unsupported protocol: {text!r}",
                DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED,
            )
        return text
