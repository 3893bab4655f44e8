"""The values the SFTP client hands out, and how paths become the bytes SFTP carries.

Paths go out as UTF-8; bytes that are not UTF-8 travel through ``surrogateescape``, as
:func:`os.fsencode` does, so every name a server lists can be passed back to it unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeAlias

from .._public import public
from ._attributes import SFTPAttributes

__all__ = ["SFTPLimits", "SFTPName", "SFTPStatVFS", "StrPath", "decode_name", "encode_path", "shown_path"]

StrPath: TypeAlias = "str | bytes | os.PathLike[str]"


@public
@dataclass(frozen=True, slots=True)
class SFTPName:
    """One directory entry: its name (not a path), ``ls -l``-style long name, and attributes."""

    filename: str
    longname: str
    attrs: SFTPAttributes


@public
@dataclass(frozen=True, slots=True)
class SFTPLimits:
    """The server's ``limits@openssh.com`` answer (0: no limit stated)."""

    max_packet_length: int
    max_read_length: int
    max_write_length: int
    max_open_handles: int


@public
@dataclass(frozen=True, slots=True)
class SFTPStatVFS:
    """``statvfs@openssh.com``: the file system's figures, as :func:`os.statvfs`."""

    f_bsize: int
    f_frsize: int
    f_blocks: int
    f_bfree: int
    f_bavail: int
    f_files: int
    f_ffree: int
    f_favail: int
    f_fsid: int
    f_flag: int
    f_namemax: int


def encode_path(path: StrPath) -> bytes:
    path = os.fspath(path)
    if isinstance(path, bytes):
        return path
    return path.encode("utf-8", "surrogateescape")


def decode_name(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


def shown_path(path: StrPath) -> str:
    path = os.fspath(path)
    return decode_name(path) if isinstance(path, bytes) else path
