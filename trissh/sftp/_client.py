"""The SFTP client: file and directory operations on the server, and ``open()``.

Paths are ``str`` (or ``os.PathLike``/``bytes``), sent as UTF-8; bytes that are not UTF-8 travel
through ``surrogateescape``, as :func:`os.fsencode` does, so every name the server lists can be
passed back to it. Errors are :class:`~trissh.sftp.SFTPError` subclasses that are also the
matching built-in (``FileNotFoundError``, ``PermissionError``...), naming the path.

OpenSSH's extensions are used when the server announces them: ``posix-rename@openssh.com`` for
:meth:`SFTPClient.rename`, ``limits@openssh.com`` to size transfers, ``statvfs``, ``hardlink``,
``fsync``, ``lsetstat``, ``expand-path``, ``copy-data``, ``home-directory`` and
``users-groups-by-id``; a method whose extension is missing raises :class:`SFTPOpUnsupported`.
Transfers (``get``, ``put``, ``copy``) live in :mod:`~trissh.sftp._download`, ``_upload`` and
``_remote_copy``; the names and figures it hands out in :mod:`~trissh.sftp._types`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final

import trio

from .._public import public
from .._wire import DecodeError, Reader, string, uint32, uint64
from . import _trees
from ._attributes import SFTPAttributes
from ._codec import Attrs, ExtendedReply, Handle, Name, Response, Status
from ._constants import OpenFlag, StatusCode, open_flags
from ._errors import SFTPError, SFTPNoSuchFile, SFTPOpUnsupported, SFTPProtocolError, error_from_status
from ._file import SFTPFile
from ._pipeline import ReadAhead
from ._session import SFTPSession, check_status
from ._transfer import Progress, TransferOptions
from ._types import SFTPLimits, SFTPName, SFTPStatVFS, StrPath, decode_name, encode_path, shown_path

__all__ = ["SFTPClient", "SFTPLimits", "SFTPName", "SFTPStatVFS", "StrPath"]

log = logging.getLogger("trissh.sftp")

#: Without limits@openssh.com: the read and write size every server takes (the draft's minimum).
DEFAULT_CHUNK: Final = 32 * 1024
#: Requests in flight per transfer, as OpenSSH's sftp (-R 64) for 32 KiB; fewer for bigger chunks.
DEFAULT_DEPTH: Final = 64
#: Bytes in flight per transfer: enough to cover the channel window with room for the round trip.
_BYTES_IN_FLIGHT: Final = 4 * 1024 * 1024
# The smallest request size we use whatever a server says (a server asking for less is not usable).
_MIN_CHUNK: Final = 512
#: Bounds a directory listing: a server that never sends EOF for READDIR is cut off here.
MAX_DIRECTORY_ENTRIES: Final = 1_000_000


def _symlink_target_first(extensions: dict[str, bytes], default: bool) -> bool:
    """Whether SYMLINK takes the target first (see :meth:`SFTPCodec.symlink`), from what the SFTP server
    announces: a server that names its vendor (``vendor-id``, draft-ietf-secsh-filexfer-13 §5.4) and is
    not OpenSSH follows the draft (AsyncSSH's does); OpenSSH's sftp-server names no vendor and takes the
    target first, as do the servers that copy it. ``default`` (from the SSH version) decides when the
    vendor-id cannot be read."""
    vendor_id = extensions.get("vendor-id")
    if vendor_id is None:
        return True
    try:
        vendor = Reader(vendor_id, "vendor-id").text()
    except DecodeError:
        return default
    return "openssh" in vendor.lower()


@public
class SFTPClient:
    """An SFTP session: ``async with conn.open_sftp() as sftp``.

    Attributes:
        extensions: what the server announced (name -> version data).
        limits: the server's limits, when it announced ``limits@openssh.com``.
        read_chunk, write_chunk: the size of each READ and WRITE in a transfer.
        depth: how many requests a transfer keeps in flight.
    """

    def __init__(self, session: SFTPSession, server_version: str = "") -> None:
        self._session = session
        # Whether SYMLINK takes the target first (SFTPCodec.symlink): decided in _setup from what the
        # SFTP server announces; the SSH version (OpenSSH, Dropbear, Paramiko) is only the fallback.
        self.symlink_target_first = any(
            name in server_version.lower() for name in ("openssh", "dropbear", "paramiko")
        )
        self.limits: SFTPLimits | None = None
        self.read_chunk = DEFAULT_CHUNK
        self.write_chunk = DEFAULT_CHUNK
        self.depth = DEFAULT_DEPTH

    def __repr__(self) -> str:
        session = self._session
        error = f" ({type(session.error).__name__})" if session.error is not None else ""
        return (
            f"<trissh.SFTPClient {session.state.value}{error}, channel {session.process.channel.local_id}, "
            f"{len(self.extensions)} extensions, {self.read_chunk // 1024} KiB x {self.depth} in flight>"
        )

    @property
    def extensions(self) -> dict[str, bytes]:
        return self._session.extensions

    async def _setup(self) -> None:
        """Ask for the server's limits, when it offers them, and size transfers by them.

        A server's stated lengths are obeyed when smaller than ours and capped by ours
        (:data:`~trissh.sftp._constants.MAX_PACKET_LENGTH`) when larger; a server that refuses the
        request it announced gets the defaults every server takes.
        """
        self.symlink_target_first = _symlink_target_first(self.extensions, self.symlink_target_first)
        if "limits@openssh.com" not in self.extensions:
            return
        try:
            reply = await self._extension("limits@openssh.com")
        except SFTPError as exc:
            log.debug("limits@openssh.com refused (%s): default request sizes", exc)
            return
        reader = Reader(reply, "limits@openssh.com reply")
        self.limits = SFTPLimits(reader.uint64(), reader.uint64(), reader.uint64(), reader.uint64())
        reader.check_end()
        ours = self._session.codec.max_packet
        packet = min(self.limits.max_packet_length or ours, ours)
        # A WRITE carries its header (type, id, handle, offset, length: under 1 KiB) in the same packet.
        room = max(_MIN_CHUNK, packet - 1024)
        self.read_chunk = max(_MIN_CHUNK, min(self.limits.max_read_length or DEFAULT_CHUNK, room))
        self.write_chunk = max(_MIN_CHUNK, min(self.limits.max_write_length or DEFAULT_CHUNK, room))
        chunk = max(self.read_chunk, self.write_chunk)
        self.depth = max(4, min(DEFAULT_DEPTH, _BYTES_IN_FLIGHT // chunk))

    # --- plumbing -------------------------------------------------------------------------------------

    def _read_ahead(self, handle: bytes, offset: int, end: int | None, path: str | None) -> ReadAhead:
        return ReadAhead(
            self._session, handle, offset, end, chunk=self.read_chunk, depth=self.depth, path=path
        )

    def _require(self, extension: str) -> None:
        if extension not in self.extensions:
            raise SFTPOpUnsupported(
                StatusCode.OP_UNSUPPORTED, f"the server does not offer the {extension} extension"
            )

    async def _extension_request(self, name: str, *fields: bytes) -> Response:
        try:
            self._require(name)
        except SFTPError:
            await trio.lowlevel.checkpoint()
            raise
        codec = self._session.codec
        return await self._session.request(lambda: codec.extended(name, *fields))

    async def _extension(self, name: str, *fields: bytes, path: str | None = None) -> bytes:
        """An extension request answered by EXTENDED_REPLY: its payload."""
        response = await self._extension_request(name, *fields)
        if isinstance(response, ExtendedReply):
            return response.payload
        check_status(response, path)
        raise SFTPProtocolError(f"{name}: an OK status where a reply was expected")

    async def _extension_status(self, name: str, *fields: bytes, path: str | None = None) -> None:
        check_status(await self._extension_request(name, *fields), path)

    async def _name(self, build: Callable[[], tuple[int, bytes]], path: str) -> str:
        """A request answered by a NAME with one entry (REALPATH, READLINK): its file name."""
        response = await self._session.request(build)
        return self._one_name(response, path)

    @staticmethod
    def _one_name(response: Response, path: str) -> str:
        if isinstance(response, Name):
            if len(response.entries) != 1:
                raise SFTPProtocolError(f"{path}: expected one name, the server sent {len(response.entries)}")
            return decode_name(response.entries[0].filename)
        check_status(response, path)
        raise SFTPProtocolError(f"{path}: an OK status where a name was expected")

    async def _attrs(self, build: Callable[[], tuple[int, bytes]], path: str) -> SFTPAttributes:
        response = await self._session.request(build)
        if isinstance(response, Attrs):
            return response.attrs
        check_status(response, path)
        raise SFTPProtocolError(f"{path}: an OK status where attributes were expected")

    async def _status(self, build: Callable[[], tuple[int, bytes]], path: str) -> None:
        await self._session.request_status(build, path)

    async def _handle(self, build: Callable[[], tuple[int, bytes]], path: str) -> bytes:
        response = await self._session.request(build)
        if isinstance(response, Handle):
            return response.handle
        check_status(response, path)
        raise SFTPProtocolError(f"{path}: an OK status where a handle was expected")

    # --- files ----------------------------------------------------------------------------------------

    async def open(self, path: StrPath, mode: str = "r", *, permissions: int | None = None) -> SFTPFile:
        """Open a remote file; ``mode`` as Python's ``open()`` (``"rb"``, ``"w"``, ``"a+"``, ``"x"``...).

        ``permissions`` (e.g. ``0o600``) applies when the file is created. Data is always bytes.
        """
        flags = open_flags(mode)
        shown = shown_path(path)
        raw = encode_path(path)
        attrs = SFTPAttributes(st_mode=permissions) if permissions is not None else SFTPAttributes()
        codec = self._session.codec
        try:
            handle = await self._handle(lambda: codec.open(raw, int(flags), attrs), shown)
        except SFTPError as exc:
            # As for mkdir: version 3 reports an exclusive create of an existing file as FAILURE.
            if exc.code == StatusCode.FAILURE and flags & OpenFlag.EXCL and await self._exists_quietly(path):
                raise error_from_status(StatusCode.FILE_ALREADY_EXISTS, exc.message, shown) from None
            raise
        file = SFTPFile(
            self, handle, shown, readable=bool(flags & OpenFlag.READ), writable=bool(flags & OpenFlag.WRITE)
        )
        if flags & OpenFlag.APPEND:
            try:
                await file.seek(0, os.SEEK_END)
            except BaseException:
                with trio.CancelScope(shield=True):
                    await file.aclose()
                raise
        return file

    async def stat(self, path: StrPath) -> SFTPAttributes:
        """Attributes of ``path``, following symlinks."""
        raw, codec = encode_path(path), self._session.codec
        return await self._attrs(lambda: codec.stat(raw), shown_path(path))

    async def lstat(self, path: StrPath) -> SFTPAttributes:
        """Attributes of ``path`` itself (a symlink is not followed)."""
        raw, codec = encode_path(path), self._session.codec
        return await self._attrs(lambda: codec.lstat(raw), shown_path(path))

    async def setstat(self, path: StrPath, attrs: SFTPAttributes, *, follow_symlinks: bool = True) -> None:
        """Change what ``attrs`` sets; ``follow_symlinks=False`` needs ``lsetstat@openssh.com``."""
        raw, codec = encode_path(path), self._session.codec
        if follow_symlinks:
            await self._status(lambda: codec.setstat(raw, attrs), shown_path(path))
        else:
            await self._extension_status(
                "lsetstat@openssh.com", string(raw), attrs.encode(), path=shown_path(path)
            )

    async def chmod(self, path: StrPath, mode: int) -> None:
        await self.setstat(path, SFTPAttributes(st_mode=mode))

    async def chown(self, path: StrPath, uid: int, gid: int) -> None:
        await self.setstat(path, SFTPAttributes(st_uid=uid, st_gid=gid))

    async def utime(self, path: StrPath, times: tuple[float, float] | None = None) -> None:
        """Set access and modification times (whole seconds; default: now), as :func:`os.utime`."""
        atime, mtime = times if times is not None else (time.time(), time.time())
        await self.setstat(path, SFTPAttributes(st_atime=int(atime), st_mtime=int(mtime)))

    async def truncate(self, path: StrPath, size: int) -> None:
        await self.setstat(path, SFTPAttributes(st_size=size))

    async def exists(self, path: StrPath) -> bool:
        try:
            await self.stat(path)
        except SFTPNoSuchFile:
            return False
        return True

    async def isdir(self, path: StrPath) -> bool:
        try:
            return (await self.stat(path)).is_dir()
        except SFTPNoSuchFile:
            return False

    async def isfile(self, path: StrPath) -> bool:
        try:
            return (await self.stat(path)).is_file()
        except SFTPNoSuchFile:
            return False

    async def islink(self, path: StrPath) -> bool:
        try:
            return (await self.lstat(path)).is_symlink()
        except SFTPNoSuchFile:
            return False

    async def remove(self, path: StrPath) -> None:
        raw, codec = encode_path(path), self._session.codec
        await self._status(lambda: codec.remove(raw), shown_path(path))

    unlink = remove

    async def rename(self, old: StrPath, new: StrPath) -> None:
        """Rename ``old`` to ``new``; with ``posix-rename@openssh.com`` an existing ``new`` is replaced
        (as :func:`os.rename`), without it the server refuses to overwrite."""
        raw_old, raw_new, codec = encode_path(old), encode_path(new), self._session.codec
        if "posix-rename@openssh.com" in self.extensions:
            await self._extension_status(
                "posix-rename@openssh.com", string(raw_old), string(raw_new), path=shown_path(old)
            )
        else:
            await self._status(lambda: codec.rename(raw_old, raw_new), shown_path(old))

    async def replace(self, old: StrPath, new: StrPath) -> None:
        """Rename ``old`` to ``new``, replacing ``new`` if it exists (atomically with posix-rename)."""
        if "posix-rename@openssh.com" in self.extensions:
            await self.rename(old, new)
            return
        with contextlib.suppress(SFTPNoSuchFile):
            await self.remove(new)
        await self.rename(old, new)

    async def symlink(self, target: StrPath, link: StrPath) -> None:
        """Create ``link`` pointing at ``target`` (argument order of :func:`os.symlink`)."""
        raw_target, raw_link, codec = encode_path(target), encode_path(link), self._session.codec
        first = self.symlink_target_first
        await self._status(lambda: codec.symlink(raw_link, raw_target, openssh_order=first), shown_path(link))

    async def hardlink(self, existing: StrPath, new: StrPath) -> None:
        """Create ``new`` as another name of ``existing`` (``hardlink@openssh.com``)."""
        await self._extension_status(
            "hardlink@openssh.com",
            string(encode_path(existing)),
            string(encode_path(new)),
            path=shown_path(new),
        )

    async def readlink(self, path: StrPath) -> str:
        raw, codec = encode_path(path), self._session.codec
        return await self._name(lambda: codec.readlink(raw), shown_path(path))

    async def realpath(self, path: StrPath = ".") -> str:
        """The server's absolute, canonical form of ``path`` (``"."``: the start directory)."""
        raw, codec = encode_path(path), self._session.codec
        return await self._name(lambda: codec.realpath(raw), shown_path(path))

    async def expand_path(self, path: StrPath) -> str:
        """``path`` with a leading ``~`` or ``~user`` expanded by the server (``expand-path@openssh.com``)."""
        response = await self._extension_request("expand-path@openssh.com", string(encode_path(path)))
        return self._one_name(response, shown_path(path))

    async def home_directory(self, user: str | None = None) -> str:
        """The home directory of ``user`` (``home-directory`` extension); None: ours, by
        ``expand-path@openssh.com`` of ``~``."""
        if user is None:
            return await self.expand_path("~")
        response = await self._extension_request("home-directory", string(user))
        return self._one_name(response, f"~{user}")

    async def users_groups_by_id(
        self, uids: Sequence[int] = (), gids: Sequence[int] = ()
    ) -> tuple[dict[int, str], dict[int, str]]:
        """Names for numeric user and group ids (``users-groups-by-id@openssh.com``); unknown ids
        are left out."""
        request = [
            string(b"".join(uint32(uid) for uid in uids)),
            string(b"".join(uint32(gid) for gid in gids)),
        ]
        reply = Reader(
            await self._extension("users-groups-by-id@openssh.com", *request), "users-groups reply"
        )
        users, groups = Reader(reply.string(), "user names"), Reader(reply.string(), "group names")
        reply.check_end()
        user_names = {uid: users.text() for uid in uids}
        group_names = {gid: groups.text() for gid in gids}
        users.check_end()
        groups.check_end()
        return (
            {uid: name for uid, name in user_names.items() if name},
            {gid: name for gid, name in group_names.items() if name},
        )

    async def statvfs(self, path: StrPath = ".") -> SFTPStatVFS:
        """File-system figures for the file system holding ``path`` (``statvfs@openssh.com``)."""
        reply = Reader(
            await self._extension("statvfs@openssh.com", string(encode_path(path)), path=shown_path(path)),
            "statvfs reply",
        )
        values = [reply.uint64() for _ in range(11)]
        reply.check_end()
        return SFTPStatVFS(*values)

    # --- directories ----------------------------------------------------------------------------------

    async def mkdir(self, path: StrPath, mode: int = 0o777) -> None:
        raw, codec = encode_path(path), self._session.codec
        try:
            await self._status(lambda: codec.mkdir(raw, SFTPAttributes(st_mode=mode)), shown_path(path))
        except SFTPError as exc:
            # Version 3 has no "file exists" code: OpenSSH answers FAILURE. Tell the cases apart.
            if exc.code == StatusCode.FAILURE and await self._exists_quietly(path):
                raise error_from_status(
                    StatusCode.FILE_ALREADY_EXISTS, exc.message, shown_path(path)
                ) from None
            raise

    async def _exists_quietly(self, path: StrPath) -> bool:
        try:
            await self.lstat(path)
        except SFTPError:
            return False
        return True

    async def makedirs(self, path: StrPath, mode: int = 0o777, exist_ok: bool = False) -> None:
        """Create ``path`` and any missing parents, as :func:`os.makedirs`."""
        shown = shown_path(path)
        parent = posixpath.dirname(shown.rstrip("/"))
        if parent and parent != shown and not await self.exists(parent):
            await self.makedirs(parent, mode, exist_ok=True)
        try:
            await self.mkdir(shown, mode)
        except FileExistsError:
            if not exist_ok or not await self.isdir(shown):
                raise

    async def rmdir(self, path: StrPath) -> None:
        raw, codec = encode_path(path), self._session.codec
        await self._status(lambda: codec.rmdir(raw), shown_path(path))

    async def scandir(self, path: StrPath = ".") -> AsyncIterator[SFTPName]:
        """The entries of a directory (``.`` and ``..`` left out), with their attributes, as they come."""
        raw, codec, shown = encode_path(path), self._session.codec, shown_path(path)
        handle = await self._handle(lambda: codec.opendir(raw), shown)
        count = 0
        try:
            while True:
                response = await self._session.request(lambda: codec.readdir(handle))
                if isinstance(response, Status) and response.code == StatusCode.EOF:
                    return
                if not isinstance(response, Name):
                    check_status(response, shown)
                    raise SFTPProtocolError(f"{shown}: READDIR answered with an OK status")
                count += len(response.entries)
                if count > MAX_DIRECTORY_ENTRIES:
                    raise SFTPProtocolError(
                        f"{shown}: over MAX_DIRECTORY_ENTRIES ({MAX_DIRECTORY_ENTRIES}) directory entries"
                    )
                for entry in response.entries:
                    name = decode_name(entry.filename)
                    if name not in (".", ".."):
                        yield SFTPName(name, decode_name(entry.longname), entry.attrs)
        finally:
            self._session.close_nowait(handle)

    iterdir = scandir

    async def listdir(self, path: StrPath = ".") -> list[str]:
        """The names in a directory, sorted (``.`` and ``..`` left out)."""
        return sorted([entry.filename async for entry in self.scandir(path)])

    def walk(
        self, top: StrPath, *, topdown: bool = True, follow_symlinks: bool = False
    ) -> AsyncIterator[tuple[str, list[str], list[str]]]:
        """``(dirpath, dirnames, filenames)`` for ``top`` and every directory below, as :func:`os.walk`
        (a symlink to a directory is listed among the files unless ``follow_symlinks``)."""
        return _trees.walk(self, top, topdown=topdown, follow_symlinks=follow_symlinks)

    async def glob(self, pattern: str) -> list[str]:
        """Paths matching ``pattern`` (``*``, ``?``, ``[...]`` within one path component), sorted; a
        wildcard does not match a leading dot, as in the shell."""
        return await _trees.glob(self, pattern)

    async def rmtree(self, path: StrPath) -> None:
        """Remove a directory and everything in it (symlinks are removed, not followed)."""
        await _trees.rmtree(self, path)

    # --- transfers (trissh.sftp._download, _upload, _remote_copy) ------------------------------------

    async def get(
        self,
        remote: StrPath,
        local: StrPath | None = None,
        *,
        recursive: bool = False,
        preserve: bool = False,
        follow_symlinks: bool = True,
        resume: bool = False,
        progress: Progress | None = None,
        max_files: int = 8,
    ) -> None:
        """Download ``remote`` to ``local`` (default: its name in the current directory).

        A failed download never leaves a complete-looking file: data goes to a temporary name
        beside the destination, renamed on success (with ``resume=True``, into the destination,
        continuing from its size). See docs/sftp.md.
        """
        from ._download import download

        options = TransferOptions(recursive, preserve, follow_symlinks, resume, progress, max_files)
        await download(self, shown_path(remote), os.fsdecode(local) if local is not None else None, options)

    async def put(
        self,
        local: StrPath,
        remote: StrPath | None = None,
        *,
        recursive: bool = False,
        preserve: bool = False,
        follow_symlinks: bool = True,
        resume: bool = False,
        progress: Progress | None = None,
        max_files: int = 8,
    ) -> None:
        """Upload ``local`` to ``remote`` (default: its name in the server's start directory).

        Raises :class:`~trissh.sftp.SFTPTransferError` with ``bytes_confirmed`` when it fails after
        data was sent.
        """
        from ._upload import upload

        options = TransferOptions(recursive, preserve, follow_symlinks, resume, progress, max_files)
        await upload(self, os.fsdecode(local), shown_path(remote) if remote is not None else None, options)

    async def copy(
        self,
        source: StrPath,
        destination: StrPath,
        *,
        recursive: bool = False,
        preserve: bool = False,
        follow_symlinks: bool = True,
        progress: Progress | None = None,
        max_files: int = 8,
    ) -> None:
        """Copy on the server, ``source`` to ``destination``: by ``copy-data`` where offered (the
        data never leaves the server), otherwise read and written back through this client."""
        from ._remote_copy import remote_copy

        options = TransferOptions(recursive, preserve, follow_symlinks, False, progress, max_files)
        await remote_copy(self, shown_path(source), shown_path(destination), options)

    async def copy_data(
        self, source: SFTPFile, destination: SFTPFile, *, offset: int = 0, length: int = 0, to_offset: int = 0
    ) -> None:
        """Server-side copy between two open files (``copy-data``; ``length=0``: to end of file)."""
        await self._extension_status(
            "copy-data",
            string(source.handle),
            uint64(offset),
            uint64(length),
            string(destination.handle),
            uint64(to_offset),
            path=destination.path,
        )
