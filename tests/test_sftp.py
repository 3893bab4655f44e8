"""SFTP against OpenSSH's sshd (internal-sftp): the file API, transfers, and what failures leave behind.

The server runs on this machine as this user, so a test can look at (and change) the "remote" files
directly in its tmp_path, which is how it checks what the server really did.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from proxy import CutAfter
from servers import InteropServer
from test_integration import connect, trissh_tasks_once_idle

import trissh
from trissh.sftp import (
    SFTPAttributes,
    SFTPClient,
    SFTPError,
    SFTPNoSuchFile,
    SFTPOpUnsupported,
    SFTPTransferError,
)
from trissh.testing import SSHServer

TIMEOUT = 30


@asynccontextmanager
async def sftp_session(
    server: SSHServer, proxy: tuple[str, int] | None = None, **kwargs: Any
) -> AsyncIterator[tuple[trissh.SSHConnection, SFTPClient]]:
    """A connection (test_integration's, through ``proxy`` when given) and an SFTP session on it."""
    if proxy is not None:
        kwargs.update(host=proxy[0], port=proxy[1])
    async with connect(server, **kwargs) as conn, conn.open_sftp() as sftp:
        yield conn, sftp


def random_blob(size: int) -> bytes:
    return os.urandom(size)


# --- the session --------------------------------------------------------------------------------------


async def test_openssh_extensions_and_limits_size_the_transfers(sshd: SSHServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            assert "posix-rename@openssh.com" in sftp.extensions
            assert sftp.limits is not None
            assert sftp.limits.max_read_length > 32 * 1024
            # The chunks follow the server's limits, and stay inside its packet size.
            assert sftp.read_chunk == min(sftp.limits.max_read_length, sftp.limits.max_packet_length - 1024)
            assert sftp.write_chunk <= sftp.limits.max_packet_length - 1024
            assert 4 <= sftp.depth <= 64
            assert (await sftp.realpath(".")).startswith("/")


async def test_the_connection_stays_usable_after_the_sftp_block(sshd: SSHServer, tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with connect(sshd) as conn:
            async with conn.open_sftp() as sftp:
                await sftp.stat(str(tmp_path))
            assert not conn.is_closed
            async with conn.open_sftp() as again:
                assert await again.isdir(str(tmp_path))
            assert (await conn.run("echo still here")).stdout == b"still here\n"


# --- files --------------------------------------------------------------------------------------------


async def test_file_write_seek_read_tell(sshd: SSHServer, tmp_path: Path) -> None:
    path = str(tmp_path / "f")
    data = random_blob(700_000)  # several write and read chunks
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            async with await sftp.open(path, "w") as f:
                assert await f.write(data) == len(data)
                assert f.tell() == len(data)
            assert (tmp_path / "f").read_bytes() == data
            async with await sftp.open(path, "r+") as f:
                assert await f.read(10) == data[:10]
                assert f.tell() == 10
                assert await f.seek(-5, os.SEEK_END) == len(data) - 5
                assert await f.read() == data[-5:]
                assert await f.read() == b""
                await f.seek(100)
                await f.write(b"XYZ")
                assert await f.seek(0, os.SEEK_CUR) == 103
                assert (await f.stat()).st_size == len(data)
                await f.truncate(200)
                await f.fsync()
            expected = data[:100] + b"XYZ" + data[103:200]
            assert (tmp_path / "f").read_bytes() == expected
            async with await sftp.open(path, "rb") as f:
                assert b"".join([chunk async for chunk in f]) == expected


async def test_append_mode_appends_and_x_mode_refuses_an_existing_file(
    sshd: SSHServer, tmp_path: Path
) -> None:
    (tmp_path / "log").write_bytes(b"one\n")
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            async with await sftp.open(str(tmp_path / "log"), "a") as f:
                assert f.tell() == 4
                await f.write(b"two\n")
            assert (tmp_path / "log").read_bytes() == b"one\ntwo\n"
            with pytest.raises(FileExistsError) as caught:
                await sftp.open(str(tmp_path / "log"), "x")
            assert caught.value.filename == str(tmp_path / "log")
            async with await sftp.open(str(tmp_path / "new"), "x", permissions=0o640) as f:
                await f.write(b"fresh")
            assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o640


async def test_reading_a_write_only_file_is_refused_before_anything_is_sent(
    sshd: SSHServer, tmp_path: Path
) -> None:
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            async with await sftp.open(str(tmp_path / "w"), "w") as f:
                with pytest.raises(OSError, match="not open for reading"):
                    await f.read()
            with pytest.raises(ValueError, match="closed"):
                await f.write(b"late")


# --- errors -------------------------------------------------------------------------------------------


async def test_errors_are_the_matching_builtins_and_name_the_path(sshd: SSHServer, tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    (tmp_path / "file").write_bytes(b"")
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            with pytest.raises(FileNotFoundError) as caught:
                await sftp.stat(missing)
            assert isinstance(caught.value, SFTPError)
            assert caught.value.filename == missing
            assert missing in str(caught.value)
            with pytest.raises(SFTPNoSuchFile):
                await sftp.open(missing)
            # /sys/kernel/notes is not writable, not even by root.
            with pytest.raises(PermissionError):
                await sftp.open("/sys/kernel/notes", "w")
            with pytest.raises(FileExistsError):
                await sftp.mkdir(str(tmp_path / "file"))
            assert not await sftp.exists(missing)
            assert not await sftp.isdir(missing)
            assert not await sftp.isfile(missing)


# --- paths and directories ------------------------------------------------------------------------------


async def test_path_operations(sshd: SSHServer, tmp_path: Path) -> None:
    root = tmp_path
    (root / "a.txt").write_bytes(b"aaa")
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            await sftp.makedirs(str(root / "x/y/z"))
            await sftp.makedirs(str(root / "x/y/z"), exist_ok=True)
            with pytest.raises(FileExistsError):
                await sftp.makedirs(str(root / "x/y/z"))
            assert (root / "x/y/z").is_dir()
            await sftp.symlink("a.txt", str(root / "link"))
            assert os.readlink(root / "link") == "a.txt"
            assert await sftp.readlink(str(root / "link")) == "a.txt"
            assert await sftp.islink(str(root / "link"))
            assert (await sftp.stat(str(root / "link"))).st_size == 3
            assert (await sftp.lstat(str(root / "link"))).is_symlink()
            assert await sftp.realpath(str(root / "x/y/../y")) == str(root / "x/y")
            assert sorted(await sftp.listdir(str(root))) == ["a.txt", "link", "x"]
            entries = {entry.filename: entry async for entry in sftp.scandir(str(root))}
            assert entries["a.txt"].attrs.st_size == 3
            assert entries["x"].attrs.is_dir()
            assert "a.txt" in entries["a.txt"].longname
            await sftp.chmod(str(root / "a.txt"), 0o604)
            assert stat.S_IMODE((root / "a.txt").stat().st_mode) == 0o604
            await sftp.utime(str(root / "a.txt"), (1_000_000_000, 1_100_000_000))
            assert (root / "a.txt").stat().st_mtime == 1_100_000_000
            await sftp.truncate(str(root / "a.txt"), 1)
            assert (root / "a.txt").read_bytes() == b"a"
            uid, gid = os.getuid(), os.getgid()
            await sftp.chown(str(root / "a.txt"), uid, gid)
            await sftp.rename(str(root / "a.txt"), str(root / "b.txt"))
            (root / "c.txt").write_bytes(b"c")
            await sftp.replace(str(root / "c.txt"), str(root / "b.txt"))
            assert (root / "b.txt").read_bytes() == b"c"
            assert not (root / "c.txt").exists()
            await sftp.hardlink(str(root / "b.txt"), str(root / "hard"))
            assert (root / "hard").stat().st_ino == (root / "b.txt").stat().st_ino
            await sftp.remove(str(root / "hard"))
            assert not (root / "hard").exists()
            walked = [item async for item in sftp.walk(str(root / "x"))]
            assert walked == [
                (str(root / "x"), ["y"], []),
                (str(root / "x/y"), ["z"], []),
                (str(root / "x/y/z"), [], []),
            ]
            (root / "x/y/one.py").write_bytes(b"")
            (root / "x/y/two.py").write_bytes(b"")
            (root / "x/y/.hidden.py").write_bytes(b"")
            assert await sftp.glob(str(root / "x/*/*.py")) == [
                str(root / "x/y/one.py"),
                str(root / "x/y/two.py"),
            ]
            await sftp.rmtree(str(root / "x"))
            assert not (root / "x").exists()
            await sftp.mkdir(str(root / "empty"), 0o700)
            await sftp.rmdir(str(root / "empty"))
            assert not (root / "empty").exists()


async def test_openssh_extension_requests(sshd: SSHServer, tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"data")
    os.symlink("f", tmp_path / "l")
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            figures = await sftp.statvfs(str(tmp_path))
            local = os.statvfs(tmp_path)
            assert (figures.f_bsize, figures.f_blocks, figures.f_namemax) == (
                local.f_bsize,
                local.f_blocks,
                local.f_namemax,
            )
            # lsetstat changes the link's times, not the file's.
            await sftp.setstat(
                str(tmp_path / "l"),
                SFTPAttributes(st_atime=1_000_000_000, st_mtime=1_000_000_000),
                follow_symlinks=False,
            )
            assert os.lstat(tmp_path / "l").st_mtime == 1_000_000_000
            assert (tmp_path / "f").stat().st_mtime != 1_000_000_000
            home = await sftp.realpath(".")
            if "expand-path@openssh.com" in sftp.extensions:
                assert await sftp.expand_path("~") == home
            if "home-directory" in sftp.extensions:
                assert await sftp.home_directory() == home
                assert await sftp.home_directory("root") == os.path.expanduser("~root")
            if "users-groups-by-id@openssh.com" in sftp.extensions:
                users, groups = await sftp.users_groups_by_id([0], [0])
                assert users == {0: "root"}
                assert groups == {0: "root"}
            with pytest.raises(SFTPOpUnsupported):
                await sftp._extension("no-such-extension@example.com")


# --- transfers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 32 * 1024 - 1, 32 * 1024, 261_120, 261_121, 3 * 1024 * 1024 + 7])
async def test_put_and_get_round_trip(sshd: SSHServer, tmp_path: Path, size: int) -> None:
    data = random_blob(size)
    (tmp_path / "src").write_bytes(data)
    (tmp_path / "remote").mkdir()
    seen: list[tuple[str, int, int]] = []
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            await sftp.put(
                str(tmp_path / "src"), str(tmp_path / "remote"), progress=lambda *a: seen.append(a)
            )
            assert (tmp_path / "remote" / "src").read_bytes() == data
            assert seen[-1] == (str(tmp_path / "remote" / "src"), size, size)
            assert [done for _, done, _ in seen] == sorted(done for _, done, _ in seen)
            seen.clear()
            await sftp.get(
                str(tmp_path / "remote" / "src"), str(tmp_path / "back"), progress=lambda *a: seen.append(a)
            )
            assert (tmp_path / "back").read_bytes() == data
            assert seen[-1] == (str(tmp_path / "remote" / "src"), size, size)  # an empty file's too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["back", "remote", "src"]  # no temporary left


async def test_get_default_destination_is_the_name_here(
    sshd: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "remote.bin").write_bytes(b"x" * 10)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            await sftp.get(str(tmp_path / "remote.bin"))
    assert (here / "remote.bin").read_bytes() == b"x" * 10


async def test_preserve_keeps_mode_and_times(sshd: SSHServer, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.write_bytes(b"keep")
    source.chmod(0o751)
    os.utime(source, (1_200_000_000, 1_300_000_000))
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            await sftp.put(str(source), str(tmp_path / "up"), preserve=True)
            os.utime(source, (1_200_000_000, 1_300_000_000))  # reading it for the upload set its atime
            await sftp.get(str(source), str(tmp_path / "down"), preserve=True)
            await sftp.get(str(source), str(tmp_path / "plain"))
    for name in ("up", "down"):
        st = (tmp_path / name).stat()
        assert (name, stat.S_IMODE(st.st_mode), st.st_mtime, st.st_atime) == (
            name,
            0o751,
            1_300_000_000,
            1_200_000_000,
        )
    assert (tmp_path / "plain").stat().st_mtime != 1_300_000_000


async def test_recursive_preserve_keeps_directory_times_after_their_files_are_written(
    sshd: SSHServer, tmp_path: Path
) -> None:
    """A directory's mtime changes whenever an entry is created in it, so its preserved times must be
    set after the files inside have been written, for every direction."""
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    for i in range(10):
        (tree / "sub" / f"f{i}").write_bytes(b"x" * i)
    (tree / "sub").chmod(0o750)
    for directory in (tree / "sub", tree):
        os.utime(directory, (1_000_000_000, 1_100_000_000))
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            await sftp.get(str(tree), str(tmp_path / "got"), recursive=True, preserve=True)
            await sftp.put(str(tree), str(tmp_path / "put"), recursive=True, preserve=True)
            await sftp.copy(str(tree), str(tmp_path / "copied"), recursive=True, preserve=True)
    for name in ("got", "put", "copied"):
        for directory in (tmp_path / name, tmp_path / name / "sub"):
            assert directory.stat().st_mtime == 1_100_000_000, directory
        assert stat.S_IMODE((tmp_path / name / "sub").stat().st_mode) == 0o750, name


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "top.txt": b"top",
        "a/one.bin": random_blob(100_000),
        "a/b/two.bin": random_blob(5),
        "a/b/c/empty": b"",
        "d/three": random_blob(300_000),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "emptydir").mkdir()
    os.symlink("top.txt", root / "link")
    return files


def tree_of(root: Path) -> dict[str, bytes | str | None]:
    found: dict[str, bytes | str | None] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            found[name] = "-> " + os.readlink(path)
        elif path.is_dir():
            found[name] = None
        else:
            found[name] = path.read_bytes()
    return found


@pytest.mark.parametrize("follow_symlinks", [True, False])
async def test_recursive_get_put_and_copy_mirror_the_tree(
    sshd: SSHServer, tmp_path: Path, follow_symlinks: bool
) -> None:
    source = tmp_path / "tree"
    source.mkdir()
    make_tree(source)
    expected = tree_of(source)
    if follow_symlinks:
        expected["link"] = b"top"
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            await sftp.get(
                str(source), str(tmp_path / "got"), recursive=True, follow_symlinks=follow_symlinks
            )
            await sftp.put(
                str(source), str(tmp_path / "put"), recursive=True, follow_symlinks=follow_symlinks
            )
            await sftp.copy(
                str(source), str(tmp_path / "copied"), recursive=True, follow_symlinks=follow_symlinks
            )
            with pytest.raises(SFTPError, match="recursive=True"):
                await sftp.get(str(source), str(tmp_path / "nope"))
    for name in ("got", "put", "copied"):
        assert tree_of(tmp_path / name) == expected, name


async def test_recursive_get_into_an_existing_directory_nests_like_cp(
    sshd: SSHServer, tmp_path: Path
) -> None:
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "f").write_bytes(b"f")
    (tmp_path / "dest").mkdir()
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            await sftp.get(str(tmp_path / "tree"), str(tmp_path / "dest"), recursive=True)
    assert (tmp_path / "dest" / "tree" / "f").read_bytes() == b"f"


async def test_a_failed_recursive_get_raises_one_error_not_a_group(sshd: SSHServer, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for i in range(20):
        (tree / f"f{i}").write_bytes(b"x")
    (tree / "f7").chmod(0o000)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "tree").mkdir()
    (tmp_path / "out" / "tree" / "f3").mkdir()  # the download of f3 cannot be renamed over a directory
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            with pytest.raises(OSError) as caught:
                await sftp.get(str(tree), str(tmp_path / "out"), recursive=True, max_files=4)
            assert not isinstance(caught.value, BaseExceptionGroup)
            assert await sftp.isdir(str(tree))  # still usable


async def test_a_250_byte_file_name_downloads_through_a_temporary_name_that_fits(
    sshd: SSHServer, tmp_path: Path
) -> None:
    name = "é" * 125  # 250 bytes of UTF-8
    (tmp_path / name).write_bytes(b"long")
    (tmp_path / "out").mkdir()
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            await sftp.get(str(tmp_path / name), str(tmp_path / "out"))
    assert (tmp_path / "out" / name).read_bytes() == b"long"


# --- failures part-way --------------------------------------------------------------------------------


async def test_a_cancelled_get_leaves_no_file_and_the_session_usable(sshd: SSHServer, tmp_path: Path) -> None:
    data = random_blob(8 * 1024 * 1024)
    (tmp_path / "big").write_bytes(data)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "big").write_bytes(b"the old version")
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            with trio.CancelScope() as scope:

                def cancel_after_first(path: str, done: int, total: int) -> None:
                    scope.cancel()

                await sftp.get(str(tmp_path / "big"), str(tmp_path / "out"), progress=cancel_after_first)
            assert scope.cancelled_caught
            assert os.listdir(tmp_path / "out") == ["big"]
            assert (tmp_path / "out" / "big").read_bytes() == b"the old version"
            assert (await sftp.stat(str(tmp_path / "big"))).st_size == len(data)
            await sftp.get(str(tmp_path / "big"), str(tmp_path / "out"))
    assert (tmp_path / "out" / "big").read_bytes() == data


async def test_resume_continues_a_partial_download_and_upload(sshd: SSHServer, tmp_path: Path) -> None:
    data = random_blob(2 * 1024 * 1024 + 3)
    (tmp_path / "src").write_bytes(data)
    (tmp_path / "partial").write_bytes(data[:777_777])
    (tmp_path / "remote-partial").write_bytes(data[:1_000_001])
    got: list[int] = []
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            await sftp.get(
                str(tmp_path / "src"),
                str(tmp_path / "partial"),
                resume=True,
                progress=lambda p, d, t: got.append(d),
            )
            await sftp.put(str(tmp_path / "src"), str(tmp_path / "remote-partial"), resume=True)
            (tmp_path / "longer").write_bytes(data + b"more")
            with pytest.raises(SFTPError, match="cannot resume"):
                await sftp.get(str(tmp_path / "src"), str(tmp_path / "longer"), resume=True)
    assert (tmp_path / "partial").read_bytes() == data
    assert (tmp_path / "remote-partial").read_bytes() == data
    assert got[0] > 777_777  # it did not start over


async def test_a_remote_file_that_grows_or_shrinks_during_get_is_reported(
    sshd: SSHServer, tmp_path: Path
) -> None:
    size = 8 * 1024 * 1024
    (tmp_path / "grows").write_bytes(random_blob(size))
    (tmp_path / "shrinks").write_bytes(random_blob(size))

    def grow(path: str, done: int, total: int) -> None:
        if done < 1024 * 1024:
            with open(tmp_path / "grows", "ab") as f:
                f.write(b"+" * 1000)

    def shrink(path: str, done: int, total: int) -> None:
        os.truncate(tmp_path / "shrinks", size // 2)

    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            with pytest.raises(SFTPTransferError, match="grew"):
                await sftp.get(str(tmp_path / "grows"), str(tmp_path / "g"), progress=grow)
            with pytest.raises(SFTPTransferError, match="shrank"):
                await sftp.get(str(tmp_path / "shrinks"), str(tmp_path / "s"), progress=shrink)
    assert not (tmp_path / "g").exists()
    assert not (tmp_path / "s").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grows", "shrinks"]


async def test_a_local_file_that_grows_during_put_is_reported(sshd: SSHServer, tmp_path: Path) -> None:
    size = 3 * 1024 * 1024
    (tmp_path / "grows").write_bytes(random_blob(size))

    def grow(path: str, done: int, total: int) -> None:
        with open(tmp_path / "grows", "ab") as f:
            f.write(b"+" * 1000)

    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            with pytest.raises(SFTPTransferError, match="changed size") as caught:
                await sftp.put(str(tmp_path / "grows"), str(tmp_path / "up"), progress=grow)
    assert caught.value.bytes_confirmed >= size


async def test_a_put_that_fails_part_way_says_how_much_the_server_confirmed(
    sshd: SSHServer, tmp_path: Path, make_proxy: Any
) -> None:
    """The connection is cut after 6 MiB from the client: the error says how many bytes the server
    acknowledged, and the remote file holds at least those, intact. (The server's 2 MiB window means
    it has taken in at least 4 MiB by then, so some of its acknowledgements have come back.)"""
    data = random_blob(8 * 1024 * 1024)
    (tmp_path / "src").write_bytes(data)
    remote = tmp_path / "up"
    proxy = await make_proxy((sshd.host, sshd.port), upstream_fault=CutAfter(6 * 1024 * 1024))
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd, proxy=proxy) as (_, sftp):
            with pytest.raises(SFTPTransferError) as caught:
                await sftp.put(str(tmp_path / "src"), str(remote))
    confirmed = caught.value.bytes_confirmed
    assert isinstance(caught.value.__cause__, trissh.ConnectionLost)
    assert 0 < confirmed < len(data)
    assert remote.read_bytes()[:confirmed] == data[:confirmed]


# --- another server ------------------------------------------------------------------------------------


async def test_asyncssh_sftp_server_interoperates(asyncssh_server: InteropServer, tmp_path: Path) -> None:
    """AsyncSSH's SFTP server: a different extension set (no limits@openssh.com: 32 KiB requests), and
    its own reading of SYMLINK's argument order."""
    data = random_blob(1_000_000)
    (tmp_path / "src").write_bytes(data)
    with trio.fail_after(TIMEOUT):
        async with sftp_session(asyncssh_server) as (_, sftp):  # type: ignore[arg-type]
            assert sftp.read_chunk >= 16 * 1024
            await sftp.put(str(tmp_path / "src"), str(tmp_path / "up"))
            await sftp.get(str(tmp_path / "up"), str(tmp_path / "down"))
            assert (tmp_path / "down").read_bytes() == data
            await sftp.makedirs(str(tmp_path / "a/b"))
            await sftp.symlink("../src", str(tmp_path / "a/link"))
            assert os.readlink(tmp_path / "a/link") == "../src"
            assert await sftp.readlink(str(tmp_path / "a/link")) == "../src"
            assert sorted(await sftp.listdir(str(tmp_path / "a"))) == ["b", "link"]
            await sftp.rename(str(tmp_path / "up"), str(tmp_path / "moved"))
            with pytest.raises(FileNotFoundError):
                await sftp.stat(str(tmp_path / "up"))
            await sftp.rmtree(str(tmp_path / "a"))
            assert not (tmp_path / "a").exists()


async def test_dropbear_runs_openssh_sftp_server_and_links_point_the_right_way(tmp_path: Path) -> None:
    """Dropbear starts OpenSSH's sftp-server (/usr/lib/sftp-server), whose SYMLINK takes the target
    first although the SSH version says dropbear.

    A Dropbear of its own, not the session's: that one sees its home through a bind mount over
    /etc/passwd, which an account made or removed by another test (password_user: useradd replaces the
    file) detaches, after which it refuses every key."""
    from servers import ServerUnavailable, start_dropbear

    data = random_blob(300_000)
    (tmp_path / "src").write_bytes(data)
    with contextlib.ExitStack() as stack:
        try:
            dropbear = stack.enter_context(start_dropbear())
        except ServerUnavailable as exc:
            pytest.skip(str(exc))
        with trio.fail_after(TIMEOUT):
            async with sftp_session(dropbear) as (_, sftp):  # type: ignore[arg-type]
                await sftp.put(str(tmp_path / "src"), str(tmp_path / "up"))
                await sftp.get(str(tmp_path / "up"), str(tmp_path / "down"))
                await sftp.symlink("src", str(tmp_path / "link"))
    assert (tmp_path / "down").read_bytes() == data
    assert os.readlink(tmp_path / "link") == "src"


# --- cuts, full and read-only file systems, odd names -----------------------------------------------------


async def test_a_get_cut_by_the_network_raises_and_leaves_no_file_then_resume_finishes_it(
    sshd: SSHServer, tmp_path: Path, make_proxy: Any
) -> None:
    """The proxy cuts the connection after 6 MiB towards the client: the get raises, no destination and
    no temporary file are left; a resumed get of a partial file, over a fresh connection, completes it
    (checked by sha256)."""
    import hashlib

    data = random_blob(16 * 1024 * 1024)
    (tmp_path / "big").write_bytes(data)
    (tmp_path / "out").mkdir()
    proxy = await make_proxy((sshd.host, sshd.port), fault=CutAfter(6 * 1024 * 1024))
    with trio.fail_after(TIMEOUT):
        with pytest.raises(trissh.SSHError):
            async with sftp_session(sshd, proxy=proxy) as (_, sftp):
                await sftp.get(str(tmp_path / "big"), str(tmp_path / "out"))
        assert os.listdir(tmp_path / "out") == []
        (tmp_path / "out" / "big").write_bytes(data[:5_000_000])  # what an earlier resumable try kept
        async with sftp_session(sshd) as (_, sftp):
            await sftp.get(str(tmp_path / "big"), str(tmp_path / "out"), resume=True)
    got = (tmp_path / "out" / "big").read_bytes()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_a_resumed_get_keeps_what_arrived_before_a_cut(
    sshd: SSHServer, tmp_path: Path, make_proxy: Any
) -> None:
    """With resume=True the data goes straight into the destination, so a cut leaves a partial file that
    the next resumed get continues: sha256 of the result as the source's."""
    import hashlib

    data = random_blob(16 * 1024 * 1024)
    (tmp_path / "big").write_bytes(data)
    proxy = await make_proxy((sshd.host, sshd.port), fault=CutAfter(8 * 1024 * 1024))
    with trio.fail_after(TIMEOUT):
        with pytest.raises(trissh.SSHError):
            async with sftp_session(sshd, proxy=proxy) as (_, sftp):
                await sftp.get(str(tmp_path / "big"), str(tmp_path / "partial"), resume=True)
        kept = (tmp_path / "partial").stat().st_size
        assert 0 < kept < len(data)
        assert (tmp_path / "partial").read_bytes() == data[:kept]
        async with sftp_session(sshd) as (_, sftp):
            await sftp.get(str(tmp_path / "big"), str(tmp_path / "partial"), resume=True)
    assert hashlib.sha256((tmp_path / "partial").read_bytes()).digest() == hashlib.sha256(data).digest()


@pytest.mark.parametrize("cancel_after", [1, 7 * 1024 * 1024, 33 * 1024 * 1024, 63 * 1024 * 1024])
async def test_a_64_mib_get_cancelled_part_way_leaves_nothing_and_the_connection_usable(
    sshd: SSHServer, tmp_path: Path, cancel_after: int
) -> None:

    data = random_blob(64 * 1024 * 1024)
    (tmp_path / "big").write_bytes(data)
    (tmp_path / "out").mkdir()
    with trio.fail_after(TIMEOUT * 2):
        async with connect(sshd) as conn:
            before = await trissh_tasks_once_idle()
            with trio.CancelScope() as scope:
                async with conn.open_sftp() as sftp:

                    def cancel(path: str, done: int, total: int) -> None:
                        if done >= cancel_after:
                            scope.cancel()

                    await sftp.get(str(tmp_path / "big"), str(tmp_path / "out"), progress=cancel)
            assert scope.cancelled_caught
            assert os.listdir(tmp_path / "out") == []
            assert await trissh_tasks_once_idle() == before
            assert (await conn.run("echo ok")).stdout == b"ok\n"


def _mount_tmpfs(path: Path, options: str) -> bool:
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return result.returncode == 0


def _unmount(path: Path) -> None:
    import subprocess

    # Lazily: the server may still hold a file there for a moment after the session ends.
    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=True)


async def test_a_put_to_a_full_file_system_says_how_much_the_server_confirmed(
    sshd: SSHServer, tmp_path: Path
) -> None:
    small = tmp_path / "small-fs"
    if not _mount_tmpfs(small, "size=1m"):
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        data = random_blob(3 * 1024 * 1024)
        (tmp_path / "src").write_bytes(data)
        with trio.fail_after(TIMEOUT):
            async with sftp_session(sshd) as (_, sftp):
                with pytest.raises(SFTPTransferError) as caught:
                    await sftp.put(str(tmp_path / "src"), str(small / "dst"))
        confirmed = caught.value.bytes_confirmed
        assert 0 < confirmed <= 1024 * 1024
        assert (small / "dst").read_bytes()[:confirmed] == data[:confirmed]
        assert isinstance(caught.value.__cause__, SFTPError)
    finally:
        _unmount(small)


async def test_a_read_only_file_system_refuses_writes_with_an_error_naming_the_path(
    sshd: SSHServer, tmp_path: Path
) -> None:
    read_only = tmp_path / "ro-fs"
    if not _mount_tmpfs(read_only, "ro,size=1m"):
        pytest.skip("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)")
    try:
        (tmp_path / "src").write_bytes(b"x")
        with trio.fail_after(TIMEOUT):
            async with sftp_session(sshd) as (_, sftp):
                with pytest.raises(SFTPError) as caught:
                    await sftp.put(str(tmp_path / "src"), str(read_only / "dst"))
                assert str(read_only / "dst") in str(caught.value)
                with pytest.raises(SFTPError):
                    await sftp.mkdir(str(read_only / "d"))
                assert await sftp.listdir(str(read_only)) == []
    finally:
        _unmount(read_only)


ODD_NAMES = [
    "spaces in it",
    "tab\tand\nnewline",
    "日本語のファイル",
    "emoji 🦀",
    "-leading-dash",
    "'quotes\" and \\backslash",
    "é" * 125,  # 250 bytes
]


async def test_odd_file_names_round_trip_both_ways(sshd: SSHServer, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for index, name in enumerate(ODD_NAMES):
        (tree / name).write_bytes(name.encode() * (index + 1))
    raw_name = b"latin-1 caf\xe9"  # not UTF-8: travels as bytes, shown with surrogates
    with open(os.path.join(os.fsencode(tree), raw_name), "wb") as f:
        f.write(b"bytes")
    with trio.fail_after(TIMEOUT):
        async with sftp_session(sshd) as (_, sftp):
            names = await sftp.listdir(str(tree))
            assert sorted(names) == sorted([*ODD_NAMES, os.fsdecode(raw_name)])
            await sftp.get(str(tree), str(tmp_path / "got"), recursive=True)
            await sftp.put(str(tmp_path / "got"), str(tmp_path / "put"), recursive=True)
    for copy in ("got", "put"):
        assert sorted(os.listdir(os.fsencode(tmp_path / copy))) == sorted(os.listdir(os.fsencode(tree)))
        for name in os.listdir(os.fsencode(tree)):
            with (
                open(os.path.join(os.fsencode(tree), name), "rb") as original,
                open(os.path.join(os.fsencode(tmp_path / copy), name), "rb") as copied,
            ):
                assert copied.read() == original.read()


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_1_gib_file_both_ways_checked_by_sha256(sshd: SSHServer, tmp_path: Path) -> None:
    import hashlib

    size = 1 << 30
    digest = hashlib.sha256()
    with open(tmp_path / "big", "wb") as f:
        for _ in range(size // (16 << 20)):
            block = os.urandom(16 << 20)
            digest.update(block)
            f.write(block)
    with trio.fail_after(500):
        async with sftp_session(sshd) as (_, sftp):
            await sftp.get(str(tmp_path / "big"), str(tmp_path / "down"))
            await sftp.put(str(tmp_path / "down"), str(tmp_path / "up"))
    for name in ("down", "up"):
        check = hashlib.sha256()
        with open(tmp_path / name, "rb") as f:
            while block := f.read(16 << 20):
                check.update(block)
        assert check.digest() == digest.digest(), name
