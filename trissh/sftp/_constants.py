"""SFTP version 3 numbers: packet types, status codes and flag bits.

This is the protocol OpenSSH speaks (draft-ietf-secsh-filexfer-02). Later
drafts renumbered nothing below 100 but added status codes; some servers send
those even when they negotiated version 3, so :class:`StatusCode` knows them.
:func:`open_flags` translates a Python file mode to the OPEN request's pflags.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Final

__all__ = [
    "MAX_PACKET_LENGTH",
    "SFTP_VERSION",
    "AttrFlag",
    "OpenFlag",
    "PacketType",
    "StatusCode",
    "open_flags",
]

SFTP_VERSION: Final = 3

# OpenSSH's sftp-server refuses longer packets and its sftp client caps what it
# accepts at the same 256 KiB, so a longer length prefix means a broken peer.
MAX_PACKET_LENGTH: Final = 256 * 1024


class PacketType(IntEnum):
    """SSH_FXP_* packet type bytes."""

    INIT = 1
    VERSION = 2
    OPEN = 3
    CLOSE = 4
    READ = 5
    WRITE = 6
    LSTAT = 7
    FSTAT = 8
    SETSTAT = 9
    FSETSTAT = 10
    OPENDIR = 11
    READDIR = 12
    REMOVE = 13
    MKDIR = 14
    RMDIR = 15
    REALPATH = 16
    STAT = 17
    RENAME = 18
    READLINK = 19
    SYMLINK = 20
    STATUS = 101
    HANDLE = 102
    DATA = 103
    NAME = 104
    ATTRS = 105
    EXTENDED = 200
    EXTENDED_REPLY = 201


class StatusCode(IntEnum):
    """SSH_FX_* status codes: 0-8 from version 3, the rest from later drafts."""

    OK = 0
    EOF = 1
    NO_SUCH_FILE = 2
    PERMISSION_DENIED = 3
    FAILURE = 4
    BAD_MESSAGE = 5
    NO_CONNECTION = 6
    CONNECTION_LOST = 7
    OP_UNSUPPORTED = 8
    INVALID_HANDLE = 9
    NO_SUCH_PATH = 10
    FILE_ALREADY_EXISTS = 11
    WRITE_PROTECT = 12
    NO_MEDIA = 13
    NO_SPACE_ON_FILESYSTEM = 14
    QUOTA_EXCEEDED = 15
    UNKNOWN_PRINCIPAL = 16
    LOCK_CONFLICT = 17
    DIR_NOT_EMPTY = 18
    NOT_A_DIRECTORY = 19
    INVALID_FILENAME = 20
    LINK_LOOP = 21
    FILE_IS_A_DIRECTORY = 24


class OpenFlag(IntFlag):
    """SSH_FXF_* pflags of an OPEN request."""

    READ = 0x01
    WRITE = 0x02
    APPEND = 0x04
    CREAT = 0x08
    TRUNC = 0x10
    EXCL = 0x20


class AttrFlag(IntFlag):
    """SSH_FILEXFER_ATTR_* bits saying which fields an ATTRS structure carries."""

    SIZE = 0x00000001
    UIDGID = 0x00000002
    PERMISSIONS = 0x00000004
    ACMODTIME = 0x00000008
    EXTENDED = 0x80000000


# The base letter decides what open() would do; "+" then adds the other direction.
_BASE_FLAGS: Final = {
    "r": OpenFlag.READ,
    "w": OpenFlag.WRITE | OpenFlag.CREAT | OpenFlag.TRUNC,
    "a": OpenFlag.WRITE | OpenFlag.APPEND | OpenFlag.CREAT,
    "x": OpenFlag.WRITE | OpenFlag.CREAT | OpenFlag.EXCL,
}


def open_flags(mode: str) -> OpenFlag:
    """The OPEN pflags for a Python file mode such as ``"rb"``, ``"w+"`` or ``"ab"``.

    ``"b"`` is accepted and ignored (SFTP files are always bytes).

    Raises:
        ValueError: for anything :func:`open` would not accept among r/w/a/x, "+" and "b".
    """
    base = mode.replace("b", "", 1)
    plus = base.endswith("+")
    if plus:
        base = base[:-1]
    if base not in _BASE_FLAGS or mode.count("b") > 1 or ("+" in base):
        raise ValueError(f"invalid SFTP file mode {mode!r}: expected r, w, a or x, optionally with + and b")
    flags = _BASE_FLAGS[base]
    if plus:
        flags |= OpenFlag.WRITE if base == "r" else OpenFlag.READ
    return flags
