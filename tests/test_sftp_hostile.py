"""SFTP against a hostile or odd server: a scripted SFTP server behind the real session and client.

The session (:class:`trissh.sftp._session.SFTPSession`) runs on a fake process whose stdin and stdout
are in-memory channels, so a test decides exactly which bytes the "server" answers with, request by
request. The errors must be protocol errors that say what was wrong, every waiting operation must get
them (nothing hangs), and nothing the server claims may make the client allocate without bound.
"""

from __future__ import annotations

import os
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from trissh._wire import Reader, string, uint32, uint64
from trissh.sftp import SFTPAttributes, SFTPClient, SFTPError, SFTPProtocolError
from trissh.sftp._constants import MAX_PACKET_LENGTH, PacketType, StatusCode
from trissh.sftp._session import SFTPSession

TIMEOUT = 10


class _Stdout:
    def __init__(self, receive: trio.MemoryReceiveChannel[bytes]) -> None:
        self._receive = receive

    async def receive_parts(self) -> list[bytes | memoryview]:
        try:
            return [await self._receive.receive()]
        except trio.EndOfChannel:
            return []


class _Stdin:
    def __init__(self, send: trio.MemorySendChannel[bytes]) -> None:
        self._send = send

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._send.send(bytes(data))


class FakeProcess:
    """What SFTPSession uses of a Process: the server's bytes come from ``to_client``."""

    def __init__(self) -> None:
        self.to_client, receive = trio.open_memory_channel[bytes](100)
        send, self.from_client = trio.open_memory_channel[bytes](100)
        self.stdout = _Stdout(receive)
        self.stdin = _Stdin(send)


def packet(kind: int, body: bytes) -> bytes:
    return uint32(1 + len(body)) + bytes([kind]) + body


def version(extensions: dict[str, bytes] | None = None) -> bytes:
    fields = b"".join(string(name) + string(data) for name, data in (extensions or {}).items())
    return packet(PacketType.VERSION, uint32(3) + fields)


def status(request_id: int, code: int = StatusCode.OK, message: str = "") -> bytes:
    return packet(PacketType.STATUS, uint32(request_id) + uint32(code) + string(message) + string(""))


class Requests:
    """The client's requests as the scripted server reads them: (type, id, body)."""

    def __init__(self, process: FakeProcess) -> None:
        self._process = process
        self._buffer = b""

    async def next(self) -> tuple[int, int, bytes]:
        while True:
            if len(self._buffer) >= 4:
                size = struct.unpack(">I", self._buffer[:4])[0]
                if len(self._buffer) >= 4 + size:
                    body, self._buffer = self._buffer[4 : 4 + size], self._buffer[4 + size :]
                    if body[0] == PacketType.INIT:
                        return body[0], 0, body[1:]
                    return body[0], struct.unpack(">I", body[1:5])[0], body[5:]
            self._buffer += await self._process.from_client.receive()


Script = Callable[[FakeProcess, Requests], Awaitable[None]]


@asynccontextmanager
async def scripted(script: Script, extensions: dict[str, bytes] | None = None) -> AsyncIterator[SFTPClient]:
    """A client on a session whose server is ``script`` (after INIT/VERSION with ``extensions``)."""
    process = FakeProcess()
    session = SFTPSession(process)  # type: ignore[arg-type]
    requests = Requests(process)

    async def server() -> None:
        kind, _, _ = await requests.next()
        assert kind == PacketType.INIT
        await process.to_client.send(version(extensions))
        await script(process, requests)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        await session.start(nursery)
        client = SFTPClient(session)
        await client._setup()
        try:
            yield client
        finally:
            session.close()
            nursery.cancel_scope.cancel()


async def answer_first(process: FakeProcess, requests: Requests, reply: Callable[[int], bytes]) -> None:
    _, request_id, _ = await requests.next()
    await process.to_client.send(reply(request_id))
    await trio.sleep_forever()


# --- replies that break the protocol -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (lambda rid: status(rid + 7), r"request id 7|id 7"),  # an id never used
        (
            lambda rid: packet(PacketType.HANDLE, uint32(rid) + string(b"h")),
            r"HANDLE",
        ),  # STAT answered by HANDLE
        (lambda rid: packet(PacketType.ATTRS, uint32(rid) + uint32(0) + b"extra"), r"unexpected bytes|left"),
        (lambda rid: packet(PacketType.ATTRS, uint32(rid) + uint32(1) + b"\x00\x00"), r"truncated"),
        (lambda rid: uint32(MAX_PACKET_LENGTH + 1) + b"\x69", r"MAX_PACKET_LENGTH|max"),
    ],
    ids=["unknown id", "wrong type", "trailing bytes", "truncated field", "oversized"],
)
async def test_a_broken_reply_is_a_protocol_error_that_says_what_was_wrong(
    reply: Callable[[int], bytes], message: str
) -> None:
    async def script(process: FakeProcess, requests: Requests) -> None:
        await answer_first(process, requests, reply)

    with trio.fail_after(TIMEOUT):
        async with scripted(script) as sftp:
            with pytest.raises(SFTPProtocolError, match=message):
                await sftp.stat("/x")
            # The session is over: the next request raises the same error at once, nothing hangs.
            with pytest.raises(SFTPProtocolError, match=message):
                await sftp.stat("/y")


async def test_a_broken_reply_fails_every_waiting_request_not_only_its_own() -> None:
    async def script(process: FakeProcess, requests: Requests) -> None:
        ids = [(await requests.next())[1] for _ in range(3)]
        await process.to_client.send(packet(PacketType.HANDLE, uint32(ids[0]) + string(b"h")))
        await trio.sleep_forever()

    failures: list[BaseException] = []

    async def stat(path: str) -> None:
        try:
            await sftp.stat(path)
        except SFTPProtocolError as exc:
            failures.append(exc)

    with trio.fail_after(TIMEOUT):
        async with scripted(script) as sftp, trio.open_nursery() as nursery:
            for path in ("/a", "/b", "/c"):
                nursery.start_soon(stat, path)
    assert len(failures) == 3


async def test_a_name_whose_count_does_not_match_its_body_is_refused() -> None:
    entry = string(b"file") + string(b"-rw-r--r-- file") + uint32(0)

    async def script(process: FakeProcess, requests: Requests) -> None:
        _, rid, _ = await requests.next()  # REALPATH
        await process.to_client.send(packet(PacketType.NAME, uint32(rid) + uint32(5) + entry))
        await trio.sleep_forever()

    with trio.fail_after(TIMEOUT):
        async with scripted(script) as sftp:
            with pytest.raises(SFTPProtocolError, match="5 entries cannot fit"):
                await sftp.realpath(".")


async def test_data_longer_than_the_read_asked_for_is_refused() -> None:
    async def script(process: FakeProcess, requests: Requests) -> None:
        _, rid, _ = await requests.next()  # OPEN
        await process.to_client.send(packet(PacketType.HANDLE, uint32(rid) + string(b"h")))
        _, rid, body = await requests.next()  # READ handle offset length
        reader = Reader(body)
        reader.string()
        reader.uint64()
        asked = reader.uint32()
        await process.to_client.send(packet(PacketType.DATA, uint32(rid) + string(b"x" * (asked + 1))))
        await trio.sleep_forever()

    with trio.fail_after(TIMEOUT):
        async with scripted(script) as sftp:
            f = await sftp.open("/f")
            with pytest.raises(SFTPProtocolError, match="DATA"):
                await f.read(10)


async def test_the_server_ending_the_session_fails_what_waits() -> None:
    async def script(process: FakeProcess, requests: Requests) -> None:
        await requests.next()
        await process.to_client.aclose()

    with trio.fail_after(TIMEOUT):
        async with scripted(script) as sftp:
            with pytest.raises(SFTPError, match="ended the SFTP session"):
                await sftp.stat("/x")


# --- limits ---------------------------------------------------------------------------------------------


def limits_reply(rid: int, packet_length: int, read: int, write: int, handles: int = 0) -> bytes:
    body = uint64(packet_length) + uint64(read) + uint64(write) + uint64(handles)
    return packet(PacketType.EXTENDED_REPLY, uint32(rid) + body)


@pytest.mark.parametrize(
    ("announced", "read_chunk", "write_chunk"),
    [
        # Huge limits are capped at ours: what a server claims never sizes our buffers past MAX_PACKET_LENGTH.
        ((1 << 40, 1 << 40, 1 << 40), MAX_PACKET_LENGTH - 1024, MAX_PACKET_LENGTH - 1024),
        # Smaller limits are obeyed, also below the 32 KiB default.
        ((34_000, 16_384, 8_192), 16_384, 8_192),
        # Zero means "no limit stated": the default.
        ((0, 0, 0), 32 * 1024, 32 * 1024),
    ],
)
async def test_limits_are_obeyed_when_smaller_and_capped_when_larger(
    announced: tuple[int, int, int], read_chunk: int, write_chunk: int
) -> None:
    async def script(process: FakeProcess, requests: Requests) -> None:
        await answer_first(process, requests, lambda rid: limits_reply(rid, *announced))

    with trio.fail_after(TIMEOUT):
        async with scripted(script, {"limits@openssh.com": b"1"}) as sftp:
            assert (sftp.read_chunk, sftp.write_chunk) == (read_chunk, write_chunk)
            assert 4 <= sftp.depth <= 64
            assert sftp.depth * max(read_chunk, write_chunk) <= 4 * 1024 * 1024 + MAX_PACKET_LENGTH


async def test_a_refused_limits_request_falls_back_to_the_defaults() -> None:
    async def script(process: FakeProcess, requests: Requests) -> None:
        await answer_first(process, requests, lambda rid: status(rid, StatusCode.OP_UNSUPPORTED, "no"))

    with trio.fail_after(TIMEOUT):
        async with scripted(script, {"limits@openssh.com": b"1"}) as sftp:
            assert sftp.limits is None
            assert (sftp.read_chunk, sftp.write_chunk, sftp.depth) == (32 * 1024, 32 * 1024, 64)


async def test_without_limits_a_get_uses_32_kib_reads(tmp_path: Path) -> None:
    """The fallback path, end to end: every READ asks for at most 32 KiB."""
    data = os.urandom(100_000)
    asked: list[int] = []

    async def script(process: FakeProcess, requests: Requests) -> None:
        while True:
            kind, rid, body = await requests.next()
            reader = Reader(body)
            if kind == PacketType.STAT:
                attrs = SFTPAttributes(st_size=len(data), st_mode=0o100644).encode()
                await process.to_client.send(packet(PacketType.ATTRS, uint32(rid) + attrs))
            elif kind == PacketType.OPEN:
                await process.to_client.send(packet(PacketType.HANDLE, uint32(rid) + string(b"h")))
            elif kind == PacketType.READ:
                reader.string()
                offset, length = reader.uint64(), reader.uint32()
                asked.append(length)
                if offset >= len(data):
                    await process.to_client.send(status(rid, StatusCode.EOF, "EOF"))
                else:
                    piece = data[offset : offset + length]
                    await process.to_client.send(packet(PacketType.DATA, uint32(rid) + string(piece)))
            else:
                await process.to_client.send(status(rid))

    with trio.fail_after(TIMEOUT):
        async with scripted(script) as sftp:
            await sftp.get("/remote", str(tmp_path / "local"))
    assert (tmp_path / "local").read_bytes() == data
    assert max(asked) == 32 * 1024


# --- names ------------------------------------------------------------------------------------------------


async def test_a_name_that_is_not_utf8_comes_back_as_surrogates_and_goes_back_as_the_same_bytes() -> None:
    raw = b"caf\xe9.txt"  # Latin-1, not UTF-8
    seen: list[bytes] = []

    async def script(process: FakeProcess, requests: Requests) -> None:
        while True:
            kind, rid, body = await requests.next()
            if kind == PacketType.OPENDIR:
                await process.to_client.send(packet(PacketType.HANDLE, uint32(rid) + string(b"d")))
            elif kind == PacketType.READDIR and not seen:
                seen.append(b"")
                entry = string(raw) + string(b"-rw-r--r-- " + raw) + uint32(0)
                await process.to_client.send(packet(PacketType.NAME, uint32(rid) + uint32(1) + entry))
            elif kind == PacketType.READDIR:
                await process.to_client.send(status(rid, StatusCode.EOF))
            elif kind == PacketType.STAT:
                seen.append(Reader(body).string())
                await process.to_client.send(packet(PacketType.ATTRS, uint32(rid) + uint32(0)))
            else:
                await process.to_client.send(status(rid))

    with trio.fail_after(TIMEOUT):
        async with scripted(script) as sftp:
            (name,) = await sftp.listdir("/")
            assert name == os.fsdecode(raw)
            await sftp.stat("/" + name)
    assert seen[-1] == b"/" + raw


# --- the public names ----------------------------------------------------------------------------------


def test_sftp_names_are_public_from_trissh_without_loading_sftp_at_import() -> None:
    """``trissh.SFTPError`` (the API contract) is the SFTP package's class, loaded when first used: a
    bare ``import trissh`` (the command line's start-up) does not import the SFTP modules."""
    import subprocess
    import sys

    code = (
        "import sys, trissh\n"
        "assert 'trissh.sftp' not in sys.modules\n"
        "from trissh import SFTPError, SFTPTransferError, SFTPClient\n"
        "import trissh.sftp as sftp\n"
        "assert SFTPError is sftp.SFTPError and SFTPTransferError is sftp.SFTPTransferError\n"
        "assert SFTPClient is sftp.SFTPClient\n"
        "assert issubclass(SFTPError, trissh.SSHError)\n"
        "assert all(hasattr(trissh, name) for name in trissh.__all__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
