"""Compression: zlib and zlib@openssh.com, unit and against OpenSSH (zlib@openssh.com) and AsyncSSH (both)."""

from __future__ import annotations

import hashlib
import os
import zlib

import pytest
from servers import AsyncSSHServerFactory
from test_integration import connect

from trissh._algorithms.compression import (
    MAX_INFLATED_PAYLOAD,
    Compressor,
    Decompressor,
    compressor_for,
    decompressor_for,
)
from trissh._errors import DisconnectError, DisconnectReason, ProtocolError
from trissh._options import algorithm_preferences
from trissh._transport.packets import PacketReader, PacketWriter
from trissh.testing import SSHServer

MiB = 1024 * 1024


def test_each_packet_inflates_on_its_own_with_a_shared_context() -> None:
    """A partial flush per packet: the receiver inflates every packet as it comes, and later packets
    refer back to earlier ones (the second copy of a payload costs a few bytes)."""
    compressor, decompressor = Compressor(), Decompressor()
    payload = os.urandom(2000)
    first = compressor.compress(payload)
    second = compressor.compress(payload)
    assert len(second) < 100 < len(first)
    assert decompressor.decompress(0, first) == payload
    assert decompressor.decompress(1, second) == payload
    assert decompressor.decompress(2, compressor.compress(b"he", b"llo")) == b"hello"


def test_a_stream_started_afresh_cannot_read_the_old_one() -> None:
    """After a key exchange both sides start new streams (RFC 4253 §6.2); a stale one would be refused."""
    compressor = Compressor()
    compressor.compress(b"x" * 5000)
    continued = compressor.compress(b"x" * 5000)  # refers back into the first packet
    with pytest.raises(ProtocolError, match="packet 9: compressed payload is corrupt") as info:
        Decompressor().decompress(9, continued)
    assert info.value.reason == DisconnectReason.COMPRESSION_ERROR


def test_a_decompression_bomb_is_refused() -> None:
    bomb = zlib.compressobj()
    data = bomb.compress(bytes(MAX_INFLATED_PAYLOAD + 1)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    assert len(data) < 1024
    with pytest.raises(ProtocolError, match=f"inflates past {MAX_INFLATED_PAYLOAD} bytes"):
        Decompressor().decompress(3, data)
    exact = zlib.compressobj()
    fits = exact.compress(bytes(MAX_INFLATED_PAYLOAD)) + exact.flush(zlib.Z_SYNC_FLUSH)
    assert len(Decompressor().decompress(3, fits)) == MAX_INFLATED_PAYLOAD


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x00garbage", "corrupt"),
        (zlib.compress(b"a finished stream"), "stream ended"),
        (zlib.compressobj().flush(zlib.Z_SYNC_FLUSH), "inflates to nothing"),
    ],
)
def test_bad_compressed_payloads_are_refused(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match) as info:
        Decompressor().decompress(0, data)
    assert info.value.reason == DisconnectReason.COMPRESSION_ERROR


def test_zlib_starts_at_once_and_the_delayed_method_after_authentication() -> None:
    assert isinstance(compressor_for("zlib", authenticated=False), Compressor)
    assert compressor_for("zlib@openssh.com", authenticated=False) is None
    assert isinstance(compressor_for("zlib@openssh.com", authenticated=True), Compressor)
    assert compressor_for("none", authenticated=True) is None
    assert decompressor_for("zlib@openssh.com", authenticated=False) is None
    assert isinstance(decompressor_for("zlib", authenticated=False), Decompressor)


def test_packets_compressed_then_sealed_round_trip() -> None:
    writer, reader = PacketWriter(), PacketReader()
    writer.compressor, reader.decompressor = Compressor(), Decompressor()
    payloads = [bytes([94]) + os.urandom(100) + bytes(5000) for _ in range(20)]
    for payload in payloads:
        writer.write(payload[:50], payload[50:])
    wire = bytes(writer.take())
    assert len(wire) < sum(map(len, payloads)) // 4
    reader.feed(wire)
    for seq, payload in enumerate(payloads):
        assert reader.next_packet() == (seq, payload)


def test_the_compression_option() -> None:
    assert list(algorithm_preferences().compression) == ["none"]
    assert list(algorithm_preferences(compression=False).compression) == ["none"]
    assert list(algorithm_preferences(compression=True).compression) == ["zlib@openssh.com", "zlib", "none"]
    assert list(algorithm_preferences(compression=["zlib"]).compression) == ["zlib"]
    with pytest.raises(ValueError, match="unsupported compression algorithm"):
        algorithm_preferences(compression=["lz4"])


# --- against OpenSSH ----------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", [True, False])
async def test_openssh(sshd: SSHServer, compression: bool) -> None:
    """sshd offers zlib@openssh.com (OpenSSH dropped plain zlib): on and off, across rekeys."""
    data = os.urandom(MiB) + bytes(3 * MiB)
    async with connect(sshd, compression=compression) as conn:
        expected = "zlib@openssh.com" if compression else "none"
        assert conn.negotiated.client_to_server.compression == expected
        assert conn.negotiated.server_to_client.compression == expected
        for _ in range(3):
            result = await conn.run("cat", input=data)
            assert result.stdout == data
            await conn.rekey()  # both sides start new zlib streams
        download = await conn.run("head -c 5000000 /dev/zero | tee >(sha256sum >&2)")
        assert len(download.stdout) == 5_000_000
        assert download.stderr.split()[0].decode() == hashlib.sha256(download.stdout).hexdigest()
        writer = conn._transport.state._writer
        if compression:
            assert writer.compressor is not None
        else:
            assert writer.compressor is None


async def test_openssh_zlib_only_is_refused_cleanly(sshd: SSHServer) -> None:
    with pytest.raises(DisconnectError, match=r"no compression \(client to server\) algorithm in common"):
        async with connect(sshd, compression=["zlib"]):
            pass


# --- against AsyncSSH: both methods --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["zlib", "zlib@openssh.com"])
async def test_asyncssh(make_asyncssh_server: AsyncSSHServerFactory, method: str) -> None:
    server = make_asyncssh_server(compression_algs=[method])
    data = os.urandom(256 * 1024) + bytes(2 * MiB)
    async with connect(server, compression=[method]) as conn:
        assert conn.negotiated.client_to_server.compression == method
        assert conn.negotiated.server_to_client.compression == method
        for _ in range(2):
            result = await conn.run("cat", input=data)
            assert result.stdout == data
            await conn.rekey()
