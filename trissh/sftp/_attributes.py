"""The SFTP version 3 ATTRS structure: file size, owner, mode and times.

Which fields are present is said by a flags word in front of them, so here a
field is either an ``int`` or ``None`` (absent), and :meth:`SFTPAttributes.encode`
derives the flags from that. Owner and group travel as one flag, as do access
and modification time, so setting only one of a pair is refused rather than
silently sending a zero for the other.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from typing import Final

from .._public import public
from .._wire import DecodeError, Reader, string
from ._constants import AttrFlag

__all__ = ["MAX_EXTENDED_ATTRS", "SFTPAttributes"]

# OpenSSH never sends extended attributes; a server that claims thousands is
# only trying to make us allocate, and 64 leaves room for any real use.
MAX_EXTENDED_ATTRS: Final = 64

# Plain ints: IntFlag arithmetic costs a Python call per operation, and every ATTRS is decoded here.
_SIZE: Final = int(AttrFlag.SIZE)
_UIDGID: Final = int(AttrFlag.UIDGID)
_PERMISSIONS: Final = int(AttrFlag.PERMISSIONS)
_ACMODTIME: Final = int(AttrFlag.ACMODTIME)
_EXTENDED: Final = int(AttrFlag.EXTENDED)
_KNOWN_FLAGS: Final = _SIZE | _UIDGID | _PERMISSIONS | _ACMODTIME | _EXTENDED
_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")
_U32_PAIR: Final = struct.Struct(">II")


@public
@dataclass(frozen=True, slots=True)
class SFTPAttributes:
    """File attributes as SFTP version 3 carries them.

    Fields (``None`` means "not sent" / "leave unchanged"):
        st_size: size in bytes.
        st_uid, st_gid: numeric owner and group (both or neither).
        st_mode: permission and file type bits, as in :func:`os.stat`.
        st_atime, st_mtime: access and modification time in whole seconds (both or neither).
        extended: (name, data) pairs of vendor extensions.
    """

    st_size: int | None = None
    st_uid: int | None = None
    st_gid: int | None = None
    st_mode: int | None = None
    st_atime: int | None = None
    st_mtime: int | None = None
    extended: tuple[tuple[str, bytes], ...] = ()

    def encode(self) -> bytes:
        """The wire form: flags, then the present fields in protocol order.

        Raises:
            ValueError: only one of uid/gid or atime/mtime set, too many extensions, or a
                field out of its wire range (negative, say).
        """
        if (self.st_uid is None) != (self.st_gid is None):
            raise ValueError("SFTPAttributes: st_uid and st_gid must be set together")
        if (self.st_atime is None) != (self.st_mtime is None):
            raise ValueError("SFTPAttributes: st_atime and st_mtime must be set together")
        if len(self.extended) > MAX_EXTENDED_ATTRS:
            raise ValueError(
                f"SFTPAttributes: {len(self.extended)} extended attributes exceed "
                f"MAX_EXTENDED_ATTRS ({MAX_EXTENDED_ATTRS})"
            )
        try:
            return self._encode()
        except struct.error as exc:  # a negative or too large field
            raise ValueError(f"SFTPAttributes: field out of range: {exc}") from None

    def _encode(self) -> bytes:
        flags = 0
        parts: list[bytes] = [b""]
        if self.st_size is not None:
            flags |= _SIZE
            parts.append(_U64.pack(self.st_size))
        if self.st_uid is not None and self.st_gid is not None:
            flags |= _UIDGID
            parts.append(_U32_PAIR.pack(self.st_uid, self.st_gid))
        if self.st_mode is not None:
            flags |= _PERMISSIONS
            parts.append(_U32.pack(self.st_mode))
        if self.st_atime is not None and self.st_mtime is not None:
            flags |= _ACMODTIME
            parts.append(_U32_PAIR.pack(self.st_atime, self.st_mtime))
        if self.extended:
            flags |= _EXTENDED
            parts.append(_U32.pack(len(self.extended)))
            for name, data in self.extended:
                parts.append(string(name))
                parts.append(string(data))
        parts[0] = _U32.pack(flags)
        return b"".join(parts)

    @classmethod
    def decode(cls, reader: Reader) -> SFTPAttributes:
        """Read one ATTRS structure from ``reader``.

        Raises:
            DecodeError: truncated fields, unknown flag bits, or more than
                :data:`MAX_EXTENDED_ATTRS` extensions.
        """
        flags = reader.uint32()
        unknown = flags & ~_KNOWN_FLAGS
        if unknown:
            raise DecodeError(f"{reader.what}: ATTRS has unknown flag bits 0x{unknown:08x}")
        size = reader.uint64() if flags & _SIZE else None
        uid = gid = None
        if flags & _UIDGID:
            uid = reader.uint32()
            gid = reader.uint32()
        mode = reader.uint32() if flags & _PERMISSIONS else None
        atime = mtime = None
        if flags & _ACMODTIME:
            atime = reader.uint32()
            mtime = reader.uint32()
        extended: tuple[tuple[str, bytes], ...] = ()
        if flags & _EXTENDED:
            count = reader.uint32()
            if count > MAX_EXTENDED_ATTRS:
                raise DecodeError(
                    f"{reader.what}: ATTRS claims {count} extended attributes, "
                    f"more than MAX_EXTENDED_ATTRS ({MAX_EXTENDED_ATTRS})"
                )
            extended = tuple((reader.text(), reader.string()) for _ in range(count))
        return cls(size, uid, gid, mode, atime, mtime, extended)

    @classmethod
    def from_stat(cls, st: os.stat_result) -> SFTPAttributes:
        """Attributes of a local file, for uploads that preserve mode and times."""
        return cls(
            st_size=st.st_size,
            st_uid=st.st_uid,
            st_gid=st.st_gid,
            st_mode=st.st_mode,
            st_atime=int(st.st_atime),
            st_mtime=int(st.st_mtime),
        )

    def is_dir(self) -> bool:
        """True when ``st_mode`` says directory (False when the mode is unknown)."""
        return self.st_mode is not None and stat.S_ISDIR(self.st_mode)

    def is_file(self) -> bool:
        """True when ``st_mode`` says regular file (False when the mode is unknown)."""
        return self.st_mode is not None and stat.S_ISREG(self.st_mode)

    def is_symlink(self) -> bool:
        """True when ``st_mode`` says symbolic link (False when the mode is unknown)."""
        return self.st_mode is not None and stat.S_ISLNK(self.st_mode)
