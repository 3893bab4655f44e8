"""The local side of SFTP transfers (``trissh.sftp._local``), on real files: the gathering writes of a
download and the packet buffers an upload reads into."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from trissh.sftp._codec import WRITE_HEADER_ROOM
from trissh.sftp._local import LocalWriter, WriteBuffers, open_and_read

pytestmark = pytest.mark.timeout(30)


async def test_a_download_of_many_tiny_pieces_is_written_whole(tmp_path: Path) -> None:
    """More pieces than one pwritev takes (IOV_MAX, 1024 on Linux): a server answering with tiny DATA
    replies, or a download kept as the channel's packets, is still written in full and in order."""
    path = tmp_path / "out"
    writer = LocalWriter(str(path), 0, append=False)
    pieces = [bytes([i % 251]) * (1 + i % 3) for i in range(5000)]
    for piece in pieces:
        await writer.add([memoryview(piece)], len(piece))
    await trio.to_thread.run_sync(writer.finish_sync, None, None)
    assert path.read_bytes() == b"".join(pieces)


async def test_a_download_resumed_appends_at_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_bytes(b"0123")
    writer = LocalWriter(str(path), 4, append=True)
    await writer.add([b"45", memoryview(b"6789")], 6)
    await trio.to_thread.run_sync(writer.finish_sync, None, None)
    assert path.read_bytes() == b"0123456789"


CHUNK = 1000


@pytest.mark.parametrize(
    ("file_size", "offset", "want"),
    [
        (0, 0, 1),
        (1, 0, 2),
        (CHUNK - 1, 0, CHUNK),
        (CHUNK, 0, CHUNK + 1),
        (CHUNK + 1, 0, CHUNK + 2),
        (5 * CHUNK + 7, 0, 3 * CHUNK),  # a block of whole packets from a longer file
        (5 * CHUNK + 7, 3 * CHUNK, 2 * CHUNK + 8),  # the rest, and one byte past it
        (10, 20, 5),  # past the end
    ],
)
def test_upload_blocks_are_read_into_their_packets(
    tmp_path: Path, file_size: int, offset: int, want: int
) -> None:
    content = os.urandom(file_size)
    path = tmp_path / "in"
    path.write_bytes(content)
    fd, block = open_and_read(str(path), offset, want, CHUNK)
    try:
        expected = content[offset : offset + want]
        assert block.size == len(expected)
        assert all(length == CHUNK for _, length in block.packets[:-1])
        assert all(len(buffer) >= WRITE_HEADER_ROOM + length for buffer, length in block.packets)
        room = WRITE_HEADER_ROOM
        got = b"".join(bytes(buffer[room : room + n]) for buffer, n in block.packets)
        assert got == expected
        again = WriteBuffers(fd, offset, want, CHUNK)  # the same read with the descriptor open
        assert again.size == block.size
    finally:
        os.close(fd)


def test_upload_block_of_a_file_that_grew_is_read_to_the_requested_size(tmp_path: Path) -> None:
    path = tmp_path / "in"
    path.write_bytes(b"a" * 100)
    fd, block = open_and_read(str(path), 0, 50, 16)
    os.close(fd)
    assert block.size == 50 and [n for _, n in block.packets] == [16, 16, 16, 2]
