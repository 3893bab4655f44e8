"""The client side of SFTP version 3, sans-IO: request bytes out, responses in.

Theory of operation. :class:`SFTPCodec` owns the framing (uint32 length, type
byte, request id), the request ids, and the rules about which answer may
follow which request. It does not know about files, channels or Trio: the
caller writes what the builders return, feeds what arrives to
:meth:`~SFTPCodec.receive_data`, and pulls :meth:`~SFTPCodec.next_response`
until it returns None.

Rules this module enforces (a violation is :class:`SFTPProtocolError`, and the
codec then stays broken):

1. The first packet is VERSION, with version 3; no VERSION after it.
2. Every later packet answers an outstanding request id, with a type that can
   answer that request (STATUS answers any); the answer retires the id.
3. No packet is empty or longer than ``max_packet``; the length prefix is
   checked as soon as it arrives, before waiting for the body.
4. Every field is decoded exactly: nothing short, nothing left over, handles
   at most 256 bytes, a DATA no longer than its READ asked for.

The hot path is READ/WRITE: a READ is one ``struct`` pack, a WRITE one pack
plus one concatenation, and responses are parsed from a memoryview of the
receive buffer, copying only the fields handed out.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

from .._wire import DecodeError, Reader, string
from ._attributes import SFTPAttributes
from ._constants import MAX_PACKET_LENGTH, SFTP_VERSION, PacketType
from ._errors import SFTPProtocolError

__all__ = [
    "MAX_HANDLE_LENGTH",
    "MAX_VERSION_EXTENSIONS",
    "Attrs",
    "Data",
    "ExtendedReply",
    "Handle",
    "Name",
    "NameEntry",
    "Response",
    "SFTPCodec",
    "Status",
    "WRITE_HEADER_ROOM",
    "Version",
    "packet_name",
]

# The draft caps handles at 256 bytes; OpenSSH's are 4.
MAX_HANDLE_LENGTH: Final = 256
# The longest WRITE header (length, type, id, handle, offset, data length): room left in front of the
# data of a WRITE built in place (SFTPCodec.write_in_place).
WRITE_HEADER_ROOM: Final = 4 + 1 + 4 + 4 + MAX_HANDLE_LENGTH + 8 + 4
# OpenSSH announces about a dozen extensions; more than 64 is not a real server.
MAX_VERSION_EXTENSIONS: Final = 64
# Compact the receive buffer once this much consumed data sits in front of it.
_COMPACT_THRESHOLD: Final = 64 * 1024

_U32: Final = struct.Struct(">I")
_HEADER: Final = struct.Struct(">IBI")  # length, type, request id
_DATA_HEADER: Final = struct.Struct(">IBII")  # length, DATA, request id, data length
_INIT: Final = struct.Struct(">IBI").pack(5, PacketType.INIT, SFTP_VERSION)
# The smallest NAME entry: empty filename, empty longname, flags word.
_MIN_NAME_ENTRY: Final = 12


@dataclass(frozen=True, slots=True)
class Version:
    """The server's VERSION, always the first packet.

    Fields: version (always 3 here), extensions (name -> data, e.g. ``"limits@openssh.com": b"1"``).
    """

    version: int
    extensions: dict[str, bytes]


@dataclass(frozen=True, slots=True)
class Status:
    """A STATUS answer: success, EOF or a failure.

    Fields: request_id, code (compare with :class:`StatusCode`), message and
    language (the server's text and its language tag, "" when omitted).
    """

    request_id: int
    code: int
    message: str
    language: str


@dataclass(frozen=True, slots=True)
class Handle:
    """A HANDLE answer to OPEN or OPENDIR. Fields: request_id, handle (opaque bytes)."""

    request_id: int
    handle: bytes


class Data:
    """A DATA answer to READ (at most the length asked for).

    Attributes:
        request_id: the READ's id.
        chunks: the bytes in order, as they arrived (pieces of the channel's packets, not joined: a
            download hands them to one gathering write).
        size: their total length.
    """

    __slots__ = ("chunks", "request_id", "size")

    def __init__(self, request_id: int, data: bytes | Sequence[bytes | memoryview]) -> None:
        self.request_id = request_id
        self.chunks: Sequence[bytes | memoryview] = (data,) if isinstance(data, bytes) else data
        self.size = sum(len(chunk) for chunk in self.chunks)

    @property
    def data(self) -> bytes:
        """The bytes, joined (a copy when they came in several pieces)."""
        chunks = self.chunks
        return chunks[0] if len(chunks) == 1 and isinstance(chunks[0], bytes) else b"".join(chunks)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Data):
            return NotImplemented
        return self.request_id == other.request_id and self.data == other.data

    __hash__ = None  # type: ignore[assignment]  # compared by value, like the dataclasses beside it

    def __repr__(self) -> str:
        return f"Data(request_id={self.request_id}, size={self.size}, chunks={len(self.chunks)})"


@dataclass(frozen=True, slots=True)
class NameEntry:
    """One NAME entry. Fields: filename, longname (``ls -l`` style text), attrs."""

    filename: bytes
    longname: bytes
    attrs: SFTPAttributes


@dataclass(frozen=True, slots=True)
class Name:
    """A NAME answer to READDIR, REALPATH or READLINK. Fields: request_id, entries."""

    request_id: int
    entries: list[NameEntry]


@dataclass(frozen=True, slots=True)
class Attrs:
    """An ATTRS answer to STAT, LSTAT or FSTAT. Fields: request_id, attrs."""

    request_id: int
    attrs: SFTPAttributes


@dataclass(frozen=True, slots=True)
class ExtendedReply:
    """An EXTENDED_REPLY to an extension request. Fields: request_id, payload (undecoded)."""

    request_id: int
    payload: bytes


Response: TypeAlias = Version | Status | Handle | Data | Name | Attrs | ExtendedReply

_T = PacketType
# Which answers each request can get besides STATUS. Extensions may answer with
# NAME as well: OpenSSH's expand-path@openssh.com and home-directory do.
_ANSWERS: Final[dict[int, frozenset[int]]] = {
    _T.OPEN: frozenset({_T.HANDLE}),
    _T.OPENDIR: frozenset({_T.HANDLE}),
    _T.READ: frozenset({_T.DATA}),
    _T.READDIR: frozenset({_T.NAME}),
    _T.REALPATH: frozenset({_T.NAME}),
    _T.READLINK: frozenset({_T.NAME}),
    _T.STAT: frozenset({_T.ATTRS}),
    _T.LSTAT: frozenset({_T.ATTRS}),
    _T.FSTAT: frozenset({_T.ATTRS}),
    _T.EXTENDED: frozenset({_T.EXTENDED_REPLY, _T.NAME}),
}
_NO_ANSWERS: Final[frozenset[int]] = frozenset()


def _check_range(kind: int, offset: int, length: int) -> None:
    # Checked before an id is taken, so a bad call leaves nothing outstanding.
    if not (0 <= offset < 2**64 and 0 <= length < 2**32):
        raise ValueError(f"SFTP {packet_name(kind)}: offset {offset} or length {length} out of range")


def packet_name(kind: int) -> str:
    """A packet type for messages: ``"READ (5)"``, or ``"packet 77"`` when unknown."""
    return _PACKET_NAMES.get(kind) or f"packet {kind}"


# Made once: every response's parse names its packet (the Reader's label for errors).
_PACKET_NAMES: Final = {int(kind): f"{kind.name} ({int(kind)})" for kind in PacketType}


class SFTPCodec:
    """The client side of one SFTP session, without I/O.

    Args:
        max_packet: the longest packet accepted from the server (without its
            length prefix) and the longest request built.

    Builders return ``(request_id, packet)``; write the packet as is. They
    raise ``ValueError`` for a request longer than ``max_packet`` (split big
    writes), which leaves the codec unchanged.
    """

    __slots__ = (
        "_buf",
        "_error",
        "_got_version",
        "_max_packet",
        "_next_id",
        "_pending",
        "_pos",
        "_ready",
        "_stream_left",
        "_streaming",
    )

    def __init__(self, max_packet: int = MAX_PACKET_LENGTH) -> None:
        self._max_packet = max_packet
        self._buf = bytearray()
        self._pos = 0  # start of the unconsumed bytes in _buf
        self._next_id = 0
        # request id -> (request type, READ length or 0)
        self._pending: dict[int, tuple[int, int]] = {}
        self._got_version = False
        self._error: SFTPProtocolError | None = None
        # A DATA whose payload is arriving piece by piece: (request id, pieces so far, size).
        self._streaming: tuple[int, list[bytes | memoryview], int] | None = None
        self._stream_left = 0
        self._ready: Data | None = None  # a streamed DATA, complete, not handed out yet

    @property
    def max_packet(self) -> int:
        """The packet length limit given to the constructor."""
        return self._max_packet

    @property
    def outstanding(self) -> int:
        """The number of requests still awaiting a response."""
        return len(self._pending)

    def init(self) -> bytes:
        """The INIT packet: version 3, no extensions. Send it first."""
        return _INIT

    def _allocate(self, kind: int, length: int, read_length: int = 0) -> int:
        if length > self._max_packet:
            raise ValueError(
                f"SFTP {packet_name(kind)} request of {length} bytes exceeds max_packet ({self._max_packet})"
            )
        # Ids wrap at 2**32; skipping live ids keeps every answer unambiguous.
        while True:
            rid = self._next_id
            self._next_id = (rid + 1) & 0xFFFFFFFF
            if rid not in self._pending:
                self._pending[rid] = (kind, read_length)
                return rid

    def _request(self, kind: int, body: bytes) -> tuple[int, bytes]:
        length = 5 + len(body)
        rid = self._allocate(kind, length)
        return rid, _HEADER.pack(length, kind, rid) + body

    def open(self, path: bytes, flags: int, attrs: SFTPAttributes) -> tuple[int, bytes]:
        """OPEN ``path`` with :class:`OpenFlag` bits; ``attrs`` apply when it is created."""
        return self._request(_T.OPEN, b"".join((string(path), _U32.pack(flags), attrs.encode())))

    def close(self, handle: bytes) -> tuple[int, bytes]:
        """CLOSE a file or directory handle."""
        return self._request(_T.CLOSE, string(handle))

    def read(self, handle: bytes, offset: int, length: int) -> tuple[int, bytes]:
        """READ up to ``length`` bytes at ``offset``; the answer is DATA or STATUS (EOF)."""
        _check_range(_T.READ, offset, length)
        n = len(handle)
        size = 5 + 4 + n + 12
        rid = self._allocate(_T.READ, size, length)
        return rid, struct.pack(f">IBII{n}sQI", size, _T.READ, rid, n, handle, offset, length)

    def write(self, handle: bytes, offset: int, data: bytes | memoryview) -> tuple[int, bytes]:
        """WRITE ``data`` at ``offset``."""
        _check_range(_T.WRITE, offset, 0)
        n = len(handle)
        size = 5 + 4 + n + 12 + len(data)
        rid = self._allocate(_T.WRITE, size)
        head = struct.pack(f">IBII{n}sQI", size, _T.WRITE, rid, n, handle, offset, len(data))
        return rid, head + data

    def write_in_place(
        self, handle: bytes, offset: int, packet: bytearray, length: int
    ) -> tuple[int, memoryview]:
        """WRITE the ``length`` bytes that sit in ``packet`` at :data:`WRITE_HEADER_ROOM`: the header is
        packed in front of them, so the data is never copied. Returns the id and the packet's bytes."""
        _check_range(_T.WRITE, offset, length)
        n = len(handle)
        header = 4 + 1 + 4 + 4 + n + 8 + 4
        size = header - 4 + length
        if n > MAX_HANDLE_LENGTH or WRITE_HEADER_ROOM + length > len(packet):
            raise ValueError(f"SFTP WRITE: {length} bytes and a {n}-byte handle do not fit the packet buffer")
        rid = self._allocate(_T.WRITE, size)
        start = WRITE_HEADER_ROOM - header
        struct.pack_into(f">IBII{n}sQI", packet, start, size, _T.WRITE, rid, n, handle, offset, length)
        return rid, memoryview(packet)[start : WRITE_HEADER_ROOM + length]

    def lstat(self, path: bytes) -> tuple[int, bytes]:
        """LSTAT: attributes of ``path`` itself, not following a final symlink."""
        return self._request(_T.LSTAT, string(path))

    def fstat(self, handle: bytes) -> tuple[int, bytes]:
        """FSTAT: attributes of an open file."""
        return self._request(_T.FSTAT, string(handle))

    def setstat(self, path: bytes, attrs: SFTPAttributes) -> tuple[int, bytes]:
        """SETSTAT: change the attributes that are set in ``attrs``."""
        return self._request(_T.SETSTAT, string(path) + attrs.encode())

    def fsetstat(self, handle: bytes, attrs: SFTPAttributes) -> tuple[int, bytes]:
        """FSETSTAT: SETSTAT on an open file."""
        return self._request(_T.FSETSTAT, string(handle) + attrs.encode())

    def opendir(self, path: bytes) -> tuple[int, bytes]:
        """OPENDIR: a handle for READDIR."""
        return self._request(_T.OPENDIR, string(path))

    def readdir(self, handle: bytes) -> tuple[int, bytes]:
        """READDIR: the next batch of entries, or STATUS EOF at the end."""
        return self._request(_T.READDIR, string(handle))

    def remove(self, path: bytes) -> tuple[int, bytes]:
        """REMOVE a file."""
        return self._request(_T.REMOVE, string(path))

    def mkdir(self, path: bytes, attrs: SFTPAttributes) -> tuple[int, bytes]:
        """MKDIR with the given attributes (usually just ``st_mode``)."""
        return self._request(_T.MKDIR, string(path) + attrs.encode())

    def rmdir(self, path: bytes) -> tuple[int, bytes]:
        """RMDIR an empty directory."""
        return self._request(_T.RMDIR, string(path))

    def realpath(self, path: bytes) -> tuple[int, bytes]:
        """REALPATH: the canonical absolute path, as a one-entry NAME."""
        return self._request(_T.REALPATH, string(path))

    def stat(self, path: bytes) -> tuple[int, bytes]:
        """STAT: attributes of ``path``, following symlinks."""
        return self._request(_T.STAT, string(path))

    def rename(self, old: bytes, new: bytes) -> tuple[int, bytes]:
        """RENAME ``old`` to ``new`` (OpenSSH refuses when ``new`` exists)."""
        return self._request(_T.RENAME, string(old) + string(new))

    def readlink(self, path: bytes) -> tuple[int, bytes]:
        """READLINK: a symlink's target, as a one-entry NAME."""
        return self._request(_T.READLINK, string(path))

    def symlink(self, link_path: bytes, target: bytes, *, openssh_order: bool = True) -> tuple[int, bytes]:
        """SYMLINK: create ``link_path`` pointing at ``target``.

        The draft sends linkpath then targetpath; OpenSSH's sftp-server (and so every server that runs
        it: Dropbear's, and Paramiko's which copies it) reads them the other way round, which is
        ``openssh_order``. Other servers (AsyncSSH's) follow the draft.
        """
        first, second = (target, link_path) if openssh_order else (link_path, target)
        return self._request(_T.SYMLINK, string(first) + string(second))

    def extended(self, name: str, *fields: bytes) -> tuple[int, bytes]:
        """EXTENDED request ``name`` with its fields, already encoded."""
        return self._request(_T.EXTENDED, string(name) + b"".join(fields))

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Take bytes from the server; :meth:`next_response` parses them.

        Feed each piece as it arrives and pull the responses before the next piece: the payload of a
        DATA is then kept as the pieces themselves (slices of ``data`` when it is bytes or a read-only
        view, which the channel's are), not copied into the receive buffer.
        """
        if self._error is not None:
            raise SFTPProtocolError(f"SFTP session already failed: {self._error}")
        if self._streaming is not None:
            data = self._stream(data)
            if not data:
                return
        buf = self._buf
        if self._pos:
            # Dropping the consumed front only now and then keeps the total
            # work linear in the bytes received.
            if self._pos == len(buf):
                buf.clear()
                self._pos = 0
            elif self._pos >= _COMPACT_THRESHOLD or self._pos * 2 >= len(buf):
                del buf[: self._pos]
                self._pos = 0
        buf += data

    def _stream(self, data: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
        """Add the front of ``data`` to the DATA being streamed; returns what follows it."""
        streaming = self._streaming
        assert streaming is not None
        rid, chunks, _ = streaming
        left = self._stream_left
        if not isinstance(data, bytes) and not (isinstance(data, memoryview) and data.readonly):
            data = bytes(data)  # writable memory the caller may reuse: keep a copy
        if len(data) <= left:
            chunks.append(data)
            rest: bytes | memoryview = b""
            left -= len(data)
        else:
            view = memoryview(data)
            chunks.append(view[:left])
            rest = view[left:]
            left = 0
        self._stream_left = left
        if not left:
            self._streaming = None
            del self._pending[rid]
            self._ready = Data(rid, chunks)
        return rest

    def next_response(self) -> Response | None:
        """The next complete response, or None when more bytes are needed.

        Raises:
            SFTPProtocolError: the server broke one of the rules above; every
                later call raises too.
        """
        if self._error is not None:
            raise SFTPProtocolError(f"SFTP session already failed: {self._error}")
        if self._ready is not None:
            ready, self._ready = self._ready, None
            return ready
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < 4 or self._streaming is not None:
            return None
        (length,) = _U32.unpack_from(buf, pos)
        try:
            if length == 0:
                raise SFTPProtocolError("SFTP: zero-length packet from server")
            if length > self._max_packet:
                raise SFTPProtocolError(
                    f"SFTP: packet of {length} bytes from server exceeds max_packet ({self._max_packet})"
                )
            end = pos + 4 + length
            if len(buf) < end:
                if len(buf) - pos >= _DATA_HEADER.size and buf[pos + 4] == _T.DATA:
                    self._start_stream(length)
                return None
            response = self._parse(memoryview(buf)[pos + 4 : end])
        except SFTPProtocolError as exc:
            self._fail(exc)
            raise
        self._pos = end
        return response

    def _start_stream(self, length: int) -> None:
        """A DATA whose header is here and whose payload is not: take the payload as it comes.

        Only a well-formed DATA is streamed (one string filling the packet, answering an
        outstanding READ); anything else waits for its whole packet and the usual checks.
        """
        _, _, rid, size = _DATA_HEADER.unpack_from(self._buf, self._pos)
        pending = self._pending.get(rid)
        if not self._got_version or pending is None or pending[0] != _T.READ or size + 9 != length:
            return
        if size > pending[1]:
            raise SFTPProtocolError(
                f"SFTP: DATA (103) for request id {rid} has {size} bytes, "
                f"more than the {pending[1]} its READ asked for"
            )
        start = self._pos + _DATA_HEADER.size
        first = bytes(memoryview(self._buf)[start:])  # the payload's front came in with the header
        self._buf.clear()
        self._pos = 0
        self._streaming = (rid, [first] if first else [], size)
        self._stream_left = size - len(first)

    def _fail(self, exc: SFTPProtocolError) -> None:
        self._error = exc
        # A traceback may keep a memoryview of the old buffer alive, which
        # would forbid resizing it; nothing more is parsed anyway.
        self._buf = bytearray()
        self._pos = 0
        self._streaming = None
        self._ready = None

    def _parse(self, view: memoryview) -> Response:
        kind = view[0]
        if not self._got_version:
            if kind != _T.VERSION:
                raise SFTPProtocolError(f"SFTP: expected VERSION (2) first, got {packet_name(kind)}")
            self._got_version = True
            return self._parse_version(Reader(view[1:], "SFTP VERSION (2)"))
        if kind == _T.VERSION:
            raise SFTPProtocolError("SFTP: VERSION (2) again after the first packet")
        if len(view) < 5:
            raise SFTPProtocolError(f"SFTP {packet_name(kind)}: {len(view)}-byte packet has no request id")
        (rid,) = _U32.unpack_from(view, 1)
        pending = self._pending.get(rid)
        if kind not in _PARSERS:
            raise SFTPProtocolError(f"SFTP: unexpected {packet_name(kind)} from server (request id {rid})")
        if pending is None:
            raise SFTPProtocolError(
                f"SFTP: {packet_name(kind)} for request id {rid}, which is not outstanding"
            )
        request, read_length = pending
        if kind != _T.STATUS and kind not in _ANSWERS.get(request, _NO_ANSWERS):
            raise SFTPProtocolError(
                f"SFTP: {packet_name(kind)} cannot answer {packet_name(request)} (request id {rid})"
            )
        reader = Reader(view[5:], f"SFTP {packet_name(kind)} for request id {rid}")
        try:
            response = _PARSERS[kind](rid, reader)
            reader.check_end()
        except DecodeError as exc:
            raise SFTPProtocolError(str(exc)) from exc
        if isinstance(response, Data) and len(response.data) > read_length:
            raise SFTPProtocolError(
                f"SFTP: DATA (103) for request id {rid} has {len(response.data)} bytes, "
                f"more than the {read_length} its READ asked for"
            )
        del self._pending[rid]
        return response

    @staticmethod
    def _parse_version(reader: Reader) -> Version:
        try:
            version = reader.uint32()
            if version != SFTP_VERSION:
                raise SFTPProtocolError(
                    f"SFTP: server speaks version {version}; only version {SFTP_VERSION} is supported"
                )
            extensions: dict[str, bytes] = {}
            while reader.remaining:
                if len(extensions) >= MAX_VERSION_EXTENSIONS:
                    raise SFTPProtocolError(
                        f"SFTP VERSION (2): more than {MAX_VERSION_EXTENSIONS} extensions "
                        "(MAX_VERSION_EXTENSIONS)"
                    )
                name = reader.text()
                extensions[name] = reader.string()
        except DecodeError as exc:
            raise SFTPProtocolError(str(exc)) from exc
        return Version(version, extensions)


def _parse_status(rid: int, reader: Reader) -> Status:
    code = reader.uint32()
    # Some old servers end the packet after the code.
    message = reader.text() if reader.remaining else ""
    language = reader.text() if reader.remaining else ""
    return Status(rid, code, message, language)


def _parse_handle(rid: int, reader: Reader) -> Handle:
    handle = reader.string()
    if len(handle) > MAX_HANDLE_LENGTH:
        raise SFTPProtocolError(
            f"SFTP HANDLE (102) for request id {rid}: handle of {len(handle)} bytes exceeds "
            f"MAX_HANDLE_LENGTH ({MAX_HANDLE_LENGTH})"
        )
    return Handle(rid, handle)


def _parse_name(rid: int, reader: Reader) -> Name:
    count = reader.uint32()
    if count * _MIN_NAME_ENTRY > reader.remaining:
        raise SFTPProtocolError(
            f"SFTP NAME (104) for request id {rid}: {count} entries cannot fit in {reader.remaining} bytes"
        )
    entries = [
        NameEntry(reader.string(), reader.string(), SFTPAttributes.decode(reader)) for _ in range(count)
    ]
    return Name(rid, entries)


_PARSERS: Final[dict[int, Callable[[int, Reader], Response]]] = {
    _T.STATUS: _parse_status,
    _T.HANDLE: _parse_handle,
    _T.DATA: lambda rid, reader: Data(rid, reader.string()),
    _T.NAME: _parse_name,
    _T.ATTRS: lambda rid, reader: Attrs(rid, SFTPAttributes.decode(reader)),
    _T.EXTENDED_REPLY: lambda rid, reader: ExtendedReply(rid, reader.rest()),
}
