"""Tests for the sans-IO SFTP v3 codec (``trissh.sftp``): constants, ATTRS, errors, framing.

The unit tests feed bytes the way h11's tests do (whole, one byte at a time,
in uneven chunks); the interop tests run OpenSSH's own ``sftp-server`` over
pipes and check the results on the real file system.
"""

from __future__ import annotations

import errno
import itertools
import os
import pickle
import re
import stat
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trissh._errors import ProtocolError, SSHError
from trissh._wire import DecodeError, Reader, string, uint32, uint64
from trissh.sftp import (
    SFTPAttributes,
    SFTPDirNotEmpty,
    SFTPError,
    SFTPFailure,
    SFTPFileExists,
    SFTPIsADirectory,
    SFTPNoSuchFile,
    SFTPNotADirectory,
    SFTPOpUnsupported,
    SFTPPermissionDenied,
    SFTPProtocolError,
)
from trissh.sftp._attributes import MAX_EXTENDED_ATTRS
from trissh.sftp._codec import (
    Attrs,
    Data,
    ExtendedReply,
    Handle,
    Name,
    NameEntry,
    Response,
    SFTPCodec,
    Status,
    Version,
    packet_name,
)
from trissh.sftp._constants import (
    MAX_PACKET_LENGTH,
    SFTP_VERSION,
    AttrFlag,
    OpenFlag,
    PacketType,
    StatusCode,
    open_flags,
)
from trissh.sftp._errors import error_from_status

T = PacketType
SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def frame(kind: int, body: bytes) -> bytes:
    return uint32(len(body) + 1) + bytes((kind,)) + body


def reply(kind: int, rid: int, body: bytes = b"") -> bytes:
    return frame(kind, uint32(rid) + body)


def version_packet(extensions: dict[bytes, bytes] | None = None) -> bytes:
    body = uint32(SFTP_VERSION) + b"".join(string(k) + string(v) for k, v in (extensions or {}).items())
    return frame(T.VERSION, body)


def status_body(code: int, message: bytes = b"", language: bytes = b"en") -> bytes:
    return uint32(code) + string(message) + string(language)


def chunkings(data: bytes) -> Iterator[list[bytes]]:
    """The same bytes whole, one byte at a time, and in uneven chunks."""
    yield [data]
    yield [data[i : i + 1] for i in range(len(data))]
    sizes = itertools.cycle((3, 1, 7, 2, 11))
    chunks, pos = [], 0
    while pos < len(data):
        n = next(sizes)
        chunks.append(data[pos : pos + n])
        pos += n
    yield chunks


def feed_all(codec: SFTPCodec, chunks: list[bytes] | list[memoryview]) -> list[Response]:
    out: list[Response] = []
    for chunk in chunks:
        codec.receive_data(chunk)
        while (response := codec.next_response()) is not None:
            out.append(response)
    return out


def ready_codec() -> SFTPCodec:
    codec = SFTPCodec()
    codec.receive_data(version_packet())
    assert codec.next_response() == Version(3, {})
    return codec


def fails(codec: SFTPCodec, data: bytes, match: str) -> SFTPProtocolError:
    codec.receive_data(data)
    with pytest.raises(SFTPProtocolError, match=match) as info:
        codec.next_response()
    return info.value


# -- constants ---------------------------------------------------------------


def test_constant_values() -> None:
    assert SFTP_VERSION == 3
    assert MAX_PACKET_LENGTH == 262144
    assert (T.INIT, T.SYMLINK, T.STATUS, T.ATTRS, T.EXTENDED, T.EXTENDED_REPLY) == (1, 20, 101, 105, 200, 201)
    assert (StatusCode.OP_UNSUPPORTED, StatusCode.LINK_LOOP, StatusCode.FILE_IS_A_DIRECTORY) == (8, 21, 24)
    assert (int(OpenFlag.EXCL), int(AttrFlag.EXTENDED)) == (0x20, 0x80000000)


@pytest.mark.parametrize(
    ("mode", "flags"),
    [
        ("r", OpenFlag.READ),
        ("rb", OpenFlag.READ),
        ("r+", OpenFlag.READ | OpenFlag.WRITE),
        ("r+b", OpenFlag.READ | OpenFlag.WRITE),
        ("rb+", OpenFlag.READ | OpenFlag.WRITE),
        ("w", OpenFlag.WRITE | OpenFlag.CREAT | OpenFlag.TRUNC),
        ("wb", OpenFlag.WRITE | OpenFlag.CREAT | OpenFlag.TRUNC),
        ("w+", OpenFlag.READ | OpenFlag.WRITE | OpenFlag.CREAT | OpenFlag.TRUNC),
        ("a", OpenFlag.WRITE | OpenFlag.APPEND | OpenFlag.CREAT),
        ("ab", OpenFlag.WRITE | OpenFlag.APPEND | OpenFlag.CREAT),
        ("a+", OpenFlag.READ | OpenFlag.WRITE | OpenFlag.APPEND | OpenFlag.CREAT),
        ("x", OpenFlag.WRITE | OpenFlag.CREAT | OpenFlag.EXCL),
        ("xb", OpenFlag.WRITE | OpenFlag.CREAT | OpenFlag.EXCL),
        ("x+", OpenFlag.READ | OpenFlag.WRITE | OpenFlag.CREAT | OpenFlag.EXCL),
    ],
)
def test_open_flags(mode: str, flags: OpenFlag) -> None:
    assert open_flags(mode) == flags


@pytest.mark.parametrize("mode", ["", "b", "t", "rt", "rw", "r++", "+r", "rbb", "q", "wa", "U", "r +"])
def test_open_flags_rejects(mode: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"invalid SFTP file mode {mode!r}")):
        open_flags(mode)


# -- attributes --------------------------------------------------------------

_FIELDS: dict[AttrFlag, dict[str, object]] = {
    AttrFlag.SIZE: {"st_size": 2**40 + 5},
    AttrFlag.UIDGID: {"st_uid": 1000, "st_gid": 2**32 - 1},
    AttrFlag.PERMISSIONS: {"st_mode": 0o100644},
    AttrFlag.ACMODTIME: {"st_atime": 1_700_000_000, "st_mtime": 1_700_000_001},
    AttrFlag.EXTENDED: {"extended": (("a@example.com", b"\x00\x01"), ("b", b""))},
}


@pytest.mark.parametrize("present", list(itertools.product((False, True), repeat=len(_FIELDS))))
def test_attributes_round_trip(present: tuple[bool, ...]) -> None:
    kwargs: dict[str, object] = {}
    flags = 0
    for on, (flag, fields) in zip(present, _FIELDS.items(), strict=True):
        if on:
            kwargs.update(fields)
            flags |= flag
    attrs = SFTPAttributes(**kwargs)  # type: ignore[arg-type]
    encoded = attrs.encode()
    assert encoded[:4] == uint32(flags)
    reader = Reader(encoded + b"tail")
    assert SFTPAttributes.decode(reader) == attrs
    assert reader.rest() == b"tail"


def test_attributes_vectors() -> None:
    assert SFTPAttributes().encode() == bytes(4)
    assert SFTPAttributes(st_size=1, st_mode=0o755).encode() == bytes.fromhex(
        "000000050000000000000001000001ed"
    )
    assert SFTPAttributes(st_uid=1, st_gid=2, st_atime=3, st_mtime=4).encode() == bytes.fromhex(
        "0000000a00000001000000020000000300000004"
    )
    assert SFTPAttributes(extended=(("n", b"v"),)).encode() == bytes.fromhex(
        "8000000000000001000000016e0000000176"
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"st_uid": 1}, "st_uid and st_gid"),
        ({"st_gid": 1}, "st_uid and st_gid"),
        ({"st_atime": 1}, "st_atime and st_mtime"),
        ({"st_mtime": 1}, "st_atime and st_mtime"),
        ({"extended": (("x", b""),) * 65}, r"65 extended attributes exceed MAX_EXTENDED_ATTRS \(64\)"),
    ],
)
def test_attributes_encode_rejects(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SFTPAttributes(**kwargs).encode()  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [{"st_size": -1}, {"st_mode": 2**32}, {"st_atime": -1, "st_mtime": 0}])
def test_attributes_encode_out_of_range(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="SFTPAttributes: field out of range"):
        SFTPAttributes(**kwargs).encode()  # type: ignore[arg-type]


def test_attributes_decode_errors() -> None:
    with pytest.raises(DecodeError, match="unknown flag bits 0x00000010"):
        SFTPAttributes.decode(Reader(uint32(0x10)))
    too_many = uint32(AttrFlag.EXTENDED) + uint32(MAX_EXTENDED_ATTRS + 1)
    with pytest.raises(
        DecodeError, match=r"claims 65 extended attributes, more than MAX_EXTENDED_ATTRS \(64\)"
    ):
        SFTPAttributes.decode(Reader(too_many))
    with pytest.raises(DecodeError, match="truncated reading uint64"):
        SFTPAttributes.decode(Reader(uint32(AttrFlag.SIZE) + b"\x00\x00"))
    # Exactly the limit is fine.
    body = uint32(AttrFlag.EXTENDED) + uint32(64) + (string(b"k") + string(b"v")) * 64
    assert len(SFTPAttributes.decode(Reader(body)).extended) == 64


def test_attributes_kind_helpers(tmp_path: Path) -> None:
    assert not SFTPAttributes().is_dir() and not SFTPAttributes().is_file()
    assert not SFTPAttributes().is_symlink()
    assert SFTPAttributes(st_mode=stat.S_IFDIR | 0o755).is_dir()
    assert SFTPAttributes(st_mode=stat.S_IFREG | 0o644).is_file()
    assert SFTPAttributes(st_mode=stat.S_IFLNK | 0o777).is_symlink()
    assert not SFTPAttributes(st_mode=stat.S_IFLNK | 0o777).is_file()
    path = tmp_path / "f"
    path.write_bytes(b"12345")
    os.utime(path, (1_600_000_000.7, 1_600_000_100.2))
    attrs = SFTPAttributes.from_stat(path.stat())
    st = path.stat()
    assert attrs == SFTPAttributes(5, st.st_uid, st.st_gid, st.st_mode, 1_600_000_000, 1_600_000_100)
    assert attrs.is_file()
    assert all(type(v) is int for v in (attrs.st_atime, attrs.st_mtime, attrs.st_size))


# -- errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cls", "builtin", "os_errno"),
    [
        (StatusCode.NO_SUCH_FILE, SFTPNoSuchFile, FileNotFoundError, errno.ENOENT),
        (StatusCode.NO_SUCH_PATH, SFTPNoSuchFile, FileNotFoundError, errno.ENOENT),
        (StatusCode.PERMISSION_DENIED, SFTPPermissionDenied, PermissionError, errno.EACCES),
        (StatusCode.WRITE_PROTECT, SFTPPermissionDenied, PermissionError, errno.EACCES),
        (StatusCode.FILE_ALREADY_EXISTS, SFTPFileExists, FileExistsError, errno.EEXIST),
        (StatusCode.NOT_A_DIRECTORY, SFTPNotADirectory, NotADirectoryError, errno.ENOTDIR),
        (StatusCode.FILE_IS_A_DIRECTORY, SFTPIsADirectory, IsADirectoryError, errno.EISDIR),
        (StatusCode.DIR_NOT_EMPTY, SFTPDirNotEmpty, OSError, errno.ENOTEMPTY),
    ],
)
def test_os_error_classes(
    code: StatusCode, cls: type[SFTPError], builtin: type[OSError], os_errno: int
) -> None:
    err = error_from_status(code, "the text", "/tmp/x")
    assert type(err) is cls
    assert isinstance(err, builtin) and isinstance(err, SFTPError) and isinstance(err, SSHError)
    assert isinstance(err, OSError)
    assert err.errno == os_errno
    assert err.filename == "/tmp/x"
    assert err.strerror == "the text"
    assert err.code is code and err.message == "the text" and err.path == "/tmp/x"
    assert str(err) == f"/tmp/x: the text (SSH_FX_{code.name})"
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is cls and str(copy) == str(err)
    assert isinstance(copy, OSError) and copy.errno == os_errno


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (StatusCode.OP_UNSUPPORTED, SFTPOpUnsupported),
        (StatusCode.FAILURE, SFTPFailure),
        (StatusCode.BAD_MESSAGE, SFTPFailure),
        (StatusCode.LOCK_CONFLICT, SFTPFailure),
        (StatusCode.EOF, SFTPFailure),
        (99, SFTPFailure),
    ],
)
def test_other_error_classes(code: int, cls: type[SFTPError]) -> None:
    err = error_from_status(code, "msg")
    assert type(err) is cls
    assert not isinstance(err, OSError)
    assert err.code == code and err.path is None


def test_error_messages() -> None:
    assert str(error_from_status(2, "No such file", "/tmp/x")) == "/tmp/x: No such file (SSH_FX_NO_SUCH_FILE)"
    assert str(error_from_status(2, "No such file")) == "No such file (SSH_FX_NO_SUCH_FILE)"
    assert str(error_from_status(4, "")) == "Failure (SSH_FX_FAILURE)"
    assert str(error_from_status(3, "", "/etc/shadow")) == (
        "/etc/shadow: Permission denied (SSH_FX_PERMISSION_DENIED)"
    )
    assert str(error_from_status(99, "odd", "p")) == "p: odd (status 99)"
    assert repr(error_from_status(2, "gone", "/x")) == "trissh.sftp.SFTPNoSuchFile(2, 'gone', '/x')"
    err = SFTPNoSuchFile(StatusCode.NO_SUCH_FILE, "", "/x")
    assert err.strerror == "No such file" and err.errno == errno.ENOENT


def test_except_builtin() -> None:
    with pytest.raises(FileNotFoundError) as info:
        raise error_from_status(StatusCode.NO_SUCH_FILE, "No such file", "/nope")
    assert info.value.filename == "/nope"
    try:
        raise error_from_status(StatusCode.PERMISSION_DENIED, "Permission denied", "/root")
    except PermissionError as exc:
        assert exc.errno == errno.EACCES
    with pytest.raises(SSHError):
        raise error_from_status(StatusCode.FAILURE, "Failure")


def test_protocol_error_is_protocol_error() -> None:
    assert issubclass(SFTPProtocolError, ProtocolError)
    assert not issubclass(SFTPError, ProtocolError)


# -- requests ----------------------------------------------------------------

H = b"\x00\x00\x00\x07"  # an OpenSSH-like 4-byte handle
A = SFTPAttributes(st_mode=0o644)


@pytest.mark.parametrize(
    ("build", "kind", "body"),
    [
        (
            lambda c: c.open(b"/f", OpenFlag.READ | OpenFlag.WRITE, A),
            T.OPEN,
            string(b"/f") + uint32(3) + A.encode(),
        ),
        (lambda c: c.close(H), T.CLOSE, string(H)),
        (lambda c: c.read(H, 2**33, 32768), T.READ, string(H) + uint64(2**33) + uint32(32768)),
        (lambda c: c.write(H, 7, b"data"), T.WRITE, string(H) + uint64(7) + string(b"data")),
        (lambda c: c.write(H, 7, memoryview(b"xy")), T.WRITE, string(H) + uint64(7) + string(b"xy")),
        (lambda c: c.lstat(b"/l"), T.LSTAT, string(b"/l")),
        (lambda c: c.fstat(H), T.FSTAT, string(H)),
        (lambda c: c.setstat(b"/s", A), T.SETSTAT, string(b"/s") + A.encode()),
        (lambda c: c.fsetstat(H, A), T.FSETSTAT, string(H) + A.encode()),
        (lambda c: c.opendir(b"/d"), T.OPENDIR, string(b"/d")),
        (lambda c: c.readdir(H), T.READDIR, string(H)),
        (lambda c: c.remove(b"/r"), T.REMOVE, string(b"/r")),
        (lambda c: c.mkdir(b"/m", A), T.MKDIR, string(b"/m") + A.encode()),
        (lambda c: c.rmdir(b"/m"), T.RMDIR, string(b"/m")),
        (lambda c: c.realpath(b"."), T.REALPATH, string(b".")),
        (lambda c: c.stat(b"/s"), T.STAT, string(b"/s")),
        (lambda c: c.rename(b"/old", b"/new"), T.RENAME, string(b"/old") + string(b"/new")),
        (lambda c: c.readlink(b"/ln"), T.READLINK, string(b"/ln")),
        # OpenSSH order: target first, then the link's own path.
        (lambda c: c.symlink(b"/link", b"/target"), T.SYMLINK, string(b"/target") + string(b"/link")),
        (
            lambda c: c.symlink(b"/link", b"/target", openssh_order=False),
            T.SYMLINK,
            string(b"/link") + string(b"/target"),
        ),
        (lambda c: c.extended("limits@openssh.com"), T.EXTENDED, string(b"limits@openssh.com")),
        (lambda c: c.extended("x@y", b"ab", uint32(1)), T.EXTENDED, string(b"x@y") + b"ab" + uint32(1)),
    ],
)
def test_request_packets(build: Callable[[SFTPCodec], tuple[int, bytes]], kind: int, body: bytes) -> None:
    codec = SFTPCodec()
    codec.read(H, 0, 1)  # id 0 stays outstanding
    rid, packet = build(codec)
    assert rid == 1
    assert packet == reply(kind, 1, body)  # requests frame like replies
    assert type(packet) is bytes
    assert codec.outstanding == 2


@pytest.mark.parametrize(
    "build",
    [
        lambda c: c.read(H, -1, 10),
        lambda c: c.read(H, 2**64, 10),
        lambda c: c.read(H, 0, 2**32),
        lambda c: c.read(H, 0, -1),
        lambda c: c.write(H, -5, b"x"),
    ],
)
def test_request_out_of_range(build: Callable[[SFTPCodec], tuple[int, bytes]]) -> None:
    codec = SFTPCodec()
    with pytest.raises(ValueError, match="out of range"):
        build(codec)
    assert codec.outstanding == 0 and codec.stat(b"/")[0] == 0


def test_init_packet() -> None:
    assert SFTPCodec().init() == bytes.fromhex("000000050100000003")


def test_ids_count_up_and_wrap_skipping_outstanding() -> None:
    codec = ready_codec()
    assert [codec.stat(b"/")[0] for _ in range(3)] == [0, 1, 2]
    codec.receive_data(reply(T.STATUS, 1, status_body(0)))
    assert codec.next_response() == Status(1, 0, "", "en")
    codec._next_id = 2**32 - 2  # as if 4 billion requests had come and gone
    ids = [codec.stat(b"/")[0] for _ in range(4)]
    assert ids == [2**32 - 2, 2**32 - 1, 1, 3]  # 0 and 2 are still outstanding
    assert codec.outstanding == 6


def test_request_too_long_is_refused() -> None:
    codec = SFTPCodec(max_packet=1000)
    assert codec.max_packet == 1000 and SFTPCodec().max_packet == MAX_PACKET_LENGTH
    rid, packet = codec.write(H, 0, bytes(1000 - 5 - 4 - 4 - 12))
    assert len(packet) == 1004
    with pytest.raises(ValueError, match=r"WRITE \(6\) request of 1001 bytes exceeds max_packet \(1000\)"):
        codec.write(H, 0, bytes(1000 - 5 - 4 - 4 - 12 + 1))
    assert codec.outstanding == 1
    assert codec.stat(b"/")[0] == rid + 1


# -- responses ---------------------------------------------------------------

_ENTRY_ATTRS = SFTPAttributes(st_size=3, st_mode=stat.S_IFREG | 0o600)


@pytest.mark.parametrize(
    ("request_", "packet", "expected"),
    [
        (
            lambda c: c.remove(b"/x"),
            reply(T.STATUS, 0, status_body(2, b"No such file")),
            Status(0, 2, "No such file", "en"),
        ),
        (lambda c: c.remove(b"/x"), reply(T.STATUS, 0, uint32(4)), Status(0, 4, "", "")),
        (lambda c: c.remove(b"/x"), reply(T.STATUS, 0, uint32(4) + string(b"bad")), Status(0, 4, "bad", "")),
        (lambda c: c.open(b"/f", 1, SFTPAttributes()), reply(T.HANDLE, 0, string(H)), Handle(0, H)),
        (lambda c: c.opendir(b"/"), reply(T.HANDLE, 0, string(b"h" * 256)), Handle(0, b"h" * 256)),
        (lambda c: c.read(H, 0, 5), reply(T.DATA, 0, string(b"hello")), Data(0, b"hello")),
        (lambda c: c.read(H, 0, 5), reply(T.DATA, 0, string(b"")), Data(0, b"")),
        (lambda c: c.readdir(H), reply(T.NAME, 0, uint32(0)), Name(0, [])),
        (
            lambda c: c.readdir(H),
            reply(
                T.NAME,
                0,
                uint32(2)
                + string(b"a")
                + string(b"-rw------- a")
                + _ENTRY_ATTRS.encode()
                + string(b"\xff")
                + string(b"")
                + bytes(4),
            ),
            Name(
                0, [NameEntry(b"a", b"-rw------- a", _ENTRY_ATTRS), NameEntry(b"\xff", b"", SFTPAttributes())]
            ),
        ),
        (
            lambda c: c.realpath(b"."),
            reply(T.NAME, 0, uint32(1) + string(b"/") + string(b"") + bytes(4)),
            Name(0, [NameEntry(b"/", b"", SFTPAttributes())]),
        ),
        (lambda c: c.stat(b"/"), reply(T.ATTRS, 0, _ENTRY_ATTRS.encode()), Attrs(0, _ENTRY_ATTRS)),
        (lambda c: c.fstat(H), reply(T.ATTRS, 0, bytes(4)), Attrs(0, SFTPAttributes())),
        (lambda c: c.extended("x"), reply(T.EXTENDED_REPLY, 0, b"\x01\x02"), ExtendedReply(0, b"\x01\x02")),
        (lambda c: c.extended("x"), reply(T.EXTENDED_REPLY, 0), ExtendedReply(0, b"")),
        (lambda c: c.extended("x"), reply(T.NAME, 0, uint32(0)), Name(0, [])),
        (lambda c: c.write(H, 0, b"x"), reply(T.STATUS, 0, status_body(0)), Status(0, 0, "", "en")),
    ],
)
def test_responses(
    request_: Callable[[SFTPCodec], tuple[int, bytes]], packet: bytes, expected: Response
) -> None:
    for chunks in chunkings(packet + reply(T.STATUS, 1, status_body(1))):
        codec = ready_codec()
        request_(codec)
        codec.close(H)
        assert codec.outstanding == 2
        assert feed_all(codec, chunks) == [expected, Status(1, 1, "", "en")]
        assert codec.outstanding == 0


def test_version_with_extensions_split_anywhere() -> None:
    exts = {b"posix-rename@openssh.com": b"1", b"limits@openssh.com": b"1", b"binary@x": b"\x00\xff"}
    expected = Version(3, {k.decode(): v for k, v in exts.items()})
    for chunks in chunkings(version_packet(exts)):
        assert feed_all(SFTPCodec(), chunks) == [expected]


def test_many_packets_and_trailing_bytes_left() -> None:
    codec = ready_codec()
    n = 2000
    for _ in range(n):
        codec.read(H, 0, 10)
    stream = b"".join(reply(T.DATA, i, string(bytes([i % 256]) * 10)) for i in range(n))
    partial = reply(T.DATA, n, string(b"x"))[:-1]
    got: list[Response] = []
    view = memoryview(bytearray(stream + partial))
    for start in range(0, len(view), 4099):  # chunk edges fall anywhere in a packet
        got += feed_all(codec, [view[start : start + 4099]])
    assert got == [Data(i, bytes([i % 256]) * 10) for i in range(n)]
    assert codec.next_response() is None
    assert codec.outstanding == 0


def _mixed_session() -> tuple[list[Callable[[SFTPCodec], tuple[int, bytes]]], bytes, list[Response]]:
    builds: list[Callable[[SFTPCodec], tuple[int, bytes]]] = [
        lambda c: c.open(b"/f", 1, A),
        lambda c: c.read(H, 0, 3),
        lambda c: c.readdir(H),
        lambda c: c.stat(b"/"),
        lambda c: c.extended("x"),
        lambda c: c.close(H),
    ]
    # Answered out of order, as a server with parallel workers may.
    stream = version_packet({b"a": b"1"}) + b"".join(
        [
            reply(T.DATA, 1, string(b"abc")),
            reply(T.HANDLE, 0, string(H)),
            reply(T.ATTRS, 3, _ENTRY_ATTRS.encode()),
            reply(T.STATUS, 5, uint32(0)),
            reply(T.NAME, 2, uint32(1) + string(b"n") + string(b"l") + _ENTRY_ATTRS.encode()),
            reply(T.EXTENDED_REPLY, 4, b"\x00" * 7),
        ]
    )
    expected: list[Response] = [
        Version(3, {"a": b"1"}),
        Data(1, b"abc"),
        Handle(0, H),
        Attrs(3, _ENTRY_ATTRS),
        Status(5, 0, "", ""),
        Name(2, [NameEntry(b"n", b"l", _ENTRY_ATTRS)]),
        ExtendedReply(4, bytes(7)),
    ]
    return builds, stream, expected


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=30), as_bytearray=st.booleans())
def test_arbitrary_chunk_boundaries(cuts: list[int], as_bytearray: bool) -> None:
    builds, stream, expected = _mixed_session()
    codec = SFTPCodec()
    for build in builds:
        build(codec)
    edges = sorted({0, len(stream), *(c for c in cuts if c < len(stream))})
    chunks = [stream[a:b] for a, b in itertools.pairwise(edges)]
    fed = [bytearray(chunk) for chunk in chunks] if as_bytearray else chunks
    got: list[Response] = []
    for chunk in fed:
        codec.receive_data(chunk)
        while (response := codec.next_response()) is not None:
            got.append(response)
    assert got == expected
    assert codec.outstanding == 0


def test_response_retires_the_id() -> None:
    codec = ready_codec()
    codec.remove(b"/x")
    codec.receive_data(reply(T.STATUS, 0, status_body(0)))
    assert codec.next_response() == Status(0, 0, "", "en")
    fails(
        codec,
        reply(T.STATUS, 0, status_body(0)),
        r"STATUS \(101\) for request id 0, which is not outstanding",
    )


def test_packet_name() -> None:
    assert packet_name(5) == "READ (5)"
    assert packet_name(T.EXTENDED_REPLY) == "EXTENDED_REPLY (201)"
    assert packet_name(77) == "packet 77"


# -- protocol errors ---------------------------------------------------------


def test_first_packet_must_be_version() -> None:
    fails(
        SFTPCodec(), reply(T.STATUS, 0, status_body(0)), r"expected VERSION \(2\) first, got STATUS \(101\)"
    )


def test_version_twice() -> None:
    fails(ready_codec(), version_packet(), r"VERSION \(2\) again after the first packet")


@pytest.mark.parametrize("version", [2, 4, 6])
def test_wrong_version(version: int) -> None:
    fails(SFTPCodec(), frame(T.VERSION, uint32(version)), f"server speaks version {version}; only version 3")


def test_too_many_version_extensions() -> None:
    ok = {f"e{i}".encode(): b"" for i in range(64)}
    assert feed_all(SFTPCodec(), [version_packet(ok)])[0] == Version(3, {k.decode(): b"" for k in ok})
    ok[b"one-more"] = b""
    fails(SFTPCodec(), version_packet(ok), r"more than 64 extensions \(MAX_VERSION_EXTENSIONS\)")


def test_truncated_version() -> None:
    fails(SFTPCodec(), frame(T.VERSION, uint32(3) + uint32(5) + b"ab"), r"SFTP VERSION \(2\): truncated")


def test_unknown_request_id() -> None:
    codec = ready_codec()
    codec.stat(b"/")
    fails(codec, reply(T.ATTRS, 9, bytes(4)), r"ATTRS \(105\) for request id 9, which is not outstanding")


@pytest.mark.parametrize(
    ("build", "packet", "match"),
    [
        (
            lambda c: c.write(H, 0, b"x"),
            reply(T.DATA, 0, string(b"")),
            r"DATA \(103\) cannot answer WRITE \(6\) \(request id 0\)",
        ),
        (lambda c: c.stat(b"/"), reply(T.HANDLE, 0, string(H)), r"HANDLE \(102\) cannot answer STAT \(17\)"),
        (
            lambda c: c.open(b"/", 1, A),
            reply(T.ATTRS, 0, bytes(4)),
            r"ATTRS \(105\) cannot answer OPEN \(3\)",
        ),
        (lambda c: c.read(H, 0, 1), reply(T.NAME, 0, uint32(0)), r"NAME \(104\) cannot answer READ \(5\)"),
        (
            lambda c: c.remove(b"/"),
            reply(T.EXTENDED_REPLY, 0),
            r"EXTENDED_REPLY \(201\) cannot answer REMOVE",
        ),
        (
            lambda c: c.extended("x"),
            reply(T.DATA, 0, string(b"")),
            r"DATA \(103\) cannot answer EXTENDED \(200\)",
        ),
    ],
)
def test_wrong_response_type(
    build: Callable[[SFTPCodec], tuple[int, bytes]], packet: bytes, match: str
) -> None:
    codec = ready_codec()
    build(codec)
    fails(codec, packet, match)


def test_unknown_or_request_packet_type() -> None:
    codec = ready_codec()
    codec.stat(b"/")
    fails(codec, reply(77, 0), r"unexpected packet 77 from server \(request id 0\)")
    codec = ready_codec()
    codec.stat(b"/")
    fails(codec, reply(T.OPEN, 0), r"unexpected OPEN \(3\) from server")


def test_oversized_packet_rejected_from_the_prefix() -> None:
    codec = ready_codec()
    # Only the length prefix has arrived: the error comes before any body is buffered.
    fails(
        codec,
        uint32(MAX_PACKET_LENGTH + 1),
        r"packet of 262145 bytes from server exceeds max_packet \(262144\)",
    )
    small = SFTPCodec(max_packet=100)
    fails(small, uint32(0xFFFFFFFF)[:4], r"4294967295 bytes from server exceeds max_packet \(100\)")


def test_max_packet_exactly_is_fine() -> None:
    codec = ready_codec()
    n = MAX_PACKET_LENGTH - 5 - 4
    codec.read(H, 0, n)
    assert feed_all(codec, [reply(T.DATA, 0, string(bytes(n)))]) == [Data(0, bytes(n))]


def test_zero_length_packet() -> None:
    fails(ready_codec(), uint32(0), "zero-length packet")


def test_packet_without_request_id() -> None:
    fails(ready_codec(), frame(T.STATUS, b"\x00\x00"), r"STATUS \(101\): 3-byte packet has no request id")


def test_trailing_bytes() -> None:
    codec = ready_codec()
    codec.stat(b"/")
    fails(
        codec,
        reply(T.ATTRS, 0, bytes(4) + b"xyz"),
        r"ATTRS \(105\) for request id 0: 3 unexpected bytes at end",
    )
    codec = ready_codec()
    codec.remove(b"/")
    fails(codec, reply(T.STATUS, 0, status_body(0) + b"!"), "1 unexpected bytes at end")


def test_truncated_fields() -> None:
    codec = ready_codec()
    codec.read(H, 0, 100)
    fails(
        codec,
        reply(T.DATA, 0, uint32(10) + b"abc"),
        r"DATA \(103\) for request id 0: truncated reading string",
    )
    codec = ready_codec()
    codec.stat(b"/")
    fails(codec, reply(T.ATTRS, 0, uint32(0x40)), "unknown flag bits 0x00000040")


def test_handle_too_long() -> None:
    codec = ready_codec()
    codec.open(b"/f", 1, A)
    fails(
        codec,
        reply(T.HANDLE, 0, string(bytes(257))),
        r"handle of 257 bytes exceeds MAX_HANDLE_LENGTH \(256\)",
    )


def test_data_longer_than_requested() -> None:
    codec = ready_codec()
    codec.read(H, 0, 4)
    fails(
        codec, reply(T.DATA, 0, string(b"12345")), "DATA .* has 5 bytes, more than the 4 its READ asked for"
    )


def test_name_count_cannot_fit() -> None:
    codec = ready_codec()
    codec.readdir(H)
    fails(codec, reply(T.NAME, 0, uint32(2**32 - 1)), "4294967295 entries cannot fit in 0 bytes")


def test_errors_are_sticky() -> None:
    codec = ready_codec()
    codec.stat(b"/")
    error = fails(codec, uint32(0), "zero-length")
    with pytest.raises(SFTPProtocolError, match="already failed: SFTP: zero-length"):
        codec.next_response()
    with pytest.raises(SFTPProtocolError, match="already failed"):
        codec.receive_data(b"more")
    assert isinstance(error, ProtocolError)


# -- interop with OpenSSH's sftp-server --------------------------------------


class Server:
    """OpenSSH's sftp-server on pipes, driven through the codec."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.stdin = process.stdin
        self.stdout = process.stdout
        self.codec = SFTPCodec()

    async def _next(self) -> Response:
        while (response := self.codec.next_response()) is None:
            data = await self.stdout.receive_some(65536)
            assert data, "sftp-server closed its stdout"
            self.codec.receive_data(data)
        return response

    async def call(self, built: tuple[int, bytes]) -> Response:
        rid, packet = built
        await self.stdin.send_all(packet)
        response = await self._next()
        assert not isinstance(response, Version)
        assert response.request_id == rid
        return response

    async def ok(self, built: tuple[int, bytes]) -> None:
        response = await self.call(built)
        assert response == Status(built[0], StatusCode.OK, "Success", "")

    async def handle(self, built: tuple[int, bytes]) -> bytes:
        response = await self.call(built)
        assert isinstance(response, Handle), response
        return response.handle


async def start_server(cwd: Path, nursery: trio.Nursery) -> Server:
    if not os.access(SFTP_SERVER, os.X_OK):
        pytest.skip(f"OpenSSH's {SFTP_SERVER} is not installed (Debian/Ubuntu: openssh-sftp-server)")
    process: trio.Process = await nursery.start(
        lambda task_status: trio.run_process(
            [SFTP_SERVER], cwd=cwd, stdin=-1, stdout=-1, check=False, task_status=task_status
        )
    )
    return Server(process)


async def test_interop_with_openssh_sftp_server(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            server = await start_server(tmp_path, nursery)
            await server.stdin.send_all(server.codec.init())
            version = await server._next()
            assert isinstance(version, Version) and version.version == 3
            assert "posix-rename@openssh.com" in version.extensions
            assert "limits@openssh.com" in version.extensions
            await run_file_operations(server, tmp_path)
            await server.stdin.aclose()
            assert await server.process.wait() == 0
            assert server.codec.outstanding == 0


async def run_file_operations(server: Server, root: Path) -> None:
    codec = server.codec
    base = str(root).encode()
    path = base + b"/file.bin"
    content = bytes(range(256)) * 300  # 76,800 bytes: several READs

    # Write it in pipelined chunks, all requests out before the answers come back.
    flags = open_flags("w")
    handle = await server.handle(codec.open(path, flags, SFTPAttributes(st_mode=0o640)))
    writes = [
        codec.write(handle, offset, content[offset : offset + 32768])
        for offset in range(0, len(content), 32768)
    ]
    await server.stdin.send_all(b"".join(packet for _, packet in writes))
    for rid, _ in writes:
        assert await server._next() == Status(rid, StatusCode.OK, "Success", "")
    await server.ok(codec.close(handle))
    assert (root / "file.bin").read_bytes() == content
    assert stat.S_IMODE((root / "file.bin").stat().st_mode) == 0o640

    attrs = await server.call(codec.stat(path))
    assert isinstance(attrs, Attrs)
    assert attrs.attrs.st_size == len(content) and attrs.attrs.is_file()
    assert attrs.attrs.st_mtime == int((root / "file.bin").stat().st_mtime)

    # Read it back in pieces, then meet EOF.
    handle = await server.handle(codec.open(path, open_flags("rb"), SFTPAttributes()))
    got, offset = b"", 0
    while True:
        response = await server.call(codec.read(handle, offset, 20000))
        if isinstance(response, Status):
            assert response.code == StatusCode.EOF
            break
        assert isinstance(response, Data) and 0 < len(response.data) <= 20000
        got += response.data
        offset += len(response.data)
    assert got == content
    await server.ok(codec.close(handle))

    # mkdir, a few entries, readdir until EOF.
    await server.ok(codec.mkdir(base + b"/sub", SFTPAttributes(st_mode=0o750)))
    assert (root / "sub").is_dir()
    handle = await server.handle(codec.opendir(base))
    names: dict[bytes, SFTPAttributes] = {}
    while True:
        response = await server.call(codec.readdir(handle))
        if isinstance(response, Status):
            assert response.code == StatusCode.EOF
            break
        assert isinstance(response, Name) and response.entries
        names.update((entry.filename, entry.attrs) for entry in response.entries)
    await server.ok(codec.close(handle))
    assert set(names) == {b".", b"..", b"file.bin", b"sub"}
    assert names[b"sub"].is_dir() and names[b"file.bin"].st_size == len(content)
    await server.ok(codec.rmdir(base + b"/sub"))
    assert not (root / "sub").exists()

    # rename, then symlink/readlink checked on the real file system.
    await server.ok(codec.rename(path, base + b"/renamed.bin"))
    assert not (root / "file.bin").exists() and (root / "renamed.bin").exists()
    await server.ok(codec.symlink(base + b"/link", b"renamed.bin"))
    assert os.readlink(root / "link") == "renamed.bin"
    target = await server.call(codec.readlink(base + b"/link"))
    assert isinstance(target, Name) and [e.filename for e in target.entries] == [b"renamed.bin"]
    lstat = await server.call(codec.lstat(base + b"/link"))
    assert isinstance(lstat, Attrs) and lstat.attrs.is_symlink()
    real = await server.call(codec.realpath(b"."))
    assert isinstance(real, Name) and real.entries[0].filename == os.path.realpath(root).encode()

    # remove, and the failures a missing path brings.
    await server.ok(codec.remove(base + b"/link"))
    await server.ok(codec.remove(base + b"/renamed.bin"))
    assert list(root.iterdir()) == []
    missing = await server.call(codec.stat(base + b"/renamed.bin"))
    assert isinstance(missing, Status) and missing.code == StatusCode.NO_SUCH_FILE
    error = error_from_status(missing.code, missing.message, "/renamed.bin")
    assert (
        isinstance(error, FileNotFoundError)
        and str(error) == "/renamed.bin: No such file (SSH_FX_NO_SUCH_FILE)"
    )

    # limits@openssh.com: max packet, max read, max write, max open handles.
    limits = await server.call(codec.extended("limits@openssh.com"))
    assert isinstance(limits, ExtendedReply) and len(limits.payload) == 32
    max_packet, max_read, max_write, _max_handles = struct.unpack(">4Q", limits.payload)
    assert max_packet == MAX_PACKET_LENGTH and 0 < max_read <= max_packet and 0 < max_write <= max_packet


# --- DATA streamed from the pieces it arrives in --------------------------------------------------


def _data_reply_pieces(rid: int, payload: bytes, piece: int) -> list[bytes]:
    whole = reply(T.DATA, rid, string(payload))
    return [whole[at : at + piece] for at in range(0, len(whole), piece)]


def test_data_payload_is_kept_as_the_pieces_fed_not_copied() -> None:
    codec = ready_codec()
    codec.read(H, 0, 65536)
    payload = os.urandom(65536)
    pieces = _data_reply_pieces(0, payload, 16384)
    got = feed_all(codec, pieces)
    assert got == [Data(0, payload)]
    (data,) = got
    assert isinstance(data, Data) and data.size == 65536
    # After the header's piece, every piece is the object fed (or a view of it), not a copy.
    later = data.chunks[1:]
    assert later and all(
        chunk is piece or (isinstance(chunk, memoryview) and chunk.obj is piece)
        for chunk, piece in zip(later, pieces[1:], strict=True)
    )


def test_streamed_data_and_the_next_reply_in_its_last_piece() -> None:
    codec = ready_codec()
    codec.read(H, 0, 100)
    codec.close(H)
    stream = reply(T.DATA, 0, string(b"x" * 100)) + reply(T.STATUS, 1, status_body(0))
    got = feed_all(codec, [stream[:40], stream[40:]])
    assert got == [Data(0, b"x" * 100), Status(1, 0, "", "en")]
    assert codec.outstanding == 0


def test_streamed_data_longer_than_asked_fails_at_its_header() -> None:
    codec = ready_codec()
    codec.read(H, 0, 10)
    pieces = _data_reply_pieces(0, b"y" * 50, 20)
    codec.receive_data(pieces[0])
    with pytest.raises(SFTPProtocolError, match="has 50 bytes, more than the 10 its READ asked for"):
        codec.next_response()


def test_malformed_data_is_not_streamed_and_fails_once_whole() -> None:
    codec = ready_codec()
    codec.read(H, 0, 100)
    # The string claims 20 bytes, the packet carries 30: a trailing rest the usual checks refuse.
    bad = reply(T.DATA, 0, string(b"z" * 20) + b"!" * 10)
    codec.receive_data(bad[:25])
    assert codec.next_response() is None
    codec.receive_data(bad[25:])
    with pytest.raises(SFTPProtocolError, match="DATA"):
        codec.next_response()


def test_streamed_data_from_writable_memory_is_copied() -> None:
    codec = ready_codec()
    codec.read(H, 0, 64)
    whole = reply(T.DATA, 0, string(b"a" * 64))
    buffer = bytearray(whole[20:])
    codec.receive_data(whole[:20])
    assert codec.next_response() is None
    codec.receive_data(memoryview(buffer))
    data = codec.next_response()
    buffer[:] = b"b" * len(buffer)  # the caller reuses its buffer
    assert data == Data(0, b"a" * 64)


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=40))
def test_any_split_gives_the_same_responses(cuts: list[int]) -> None:
    """DATA streamed or parsed whole, STATUS and HANDLE around it: every way of cutting the stream into
    pieces gives the same responses."""
    codec = ready_codec()
    codec.read(H, 0, 500)
    codec.open(b"/f", 1, A)
    codec.read(H, 500, 7)
    codec.read(H, 507, 9)
    stream = b"".join(
        [
            reply(T.DATA, 0, string(bytes(range(256)) + bytes(200))),
            reply(T.HANDLE, 1, string(H)),
            reply(T.DATA, 2, string(b"1234567")),
            reply(T.STATUS, 3, status_body(StatusCode.EOF)),
        ]
    )
    pieces, at = [], 0
    for cut in itertools.cycle(cuts):
        if at >= len(stream):
            break
        pieces.append(stream[at : at + cut])
        at += cut
    assert feed_all(codec, pieces) == [
        Data(0, bytes(range(256)) + bytes(200)),
        Handle(1, H),
        Data(2, b"1234567"),
        Status(3, StatusCode.EOF, "", "en"),
    ]
    assert codec.outstanding == 0


@pytest.mark.parametrize("handle", [H, b"h" * 256, b""])
@pytest.mark.parametrize("length", [0, 1, 4096])
def test_write_in_place_builds_what_write_builds(handle: bytes, length: int) -> None:
    from trissh.sftp._codec import WRITE_HEADER_ROOM

    data = os.urandom(length)
    packet = bytearray(WRITE_HEADER_ROOM + length)
    packet[WRITE_HEADER_ROOM:] = data
    rid_in_place, built = ready_codec().write_in_place(handle, 123456789, packet, length)
    rid, expected = ready_codec().write(handle, 123456789, data)
    assert (rid_in_place, bytes(built)) == (rid, expected)


def test_write_in_place_refuses_data_past_its_buffer() -> None:
    from trissh.sftp._codec import WRITE_HEADER_ROOM

    codec = ready_codec()
    with pytest.raises(ValueError, match="do not fit"):
        codec.write_in_place(H, 0, bytearray(WRITE_HEADER_ROOM + 10), 11)
    assert codec.outstanding == 0
