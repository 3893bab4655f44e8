"""``trissh cp`` against a real sshd (its internal-sftp): both ways, recursive, ``-p``, several sources,
remote to remote, the progress display on a terminal and plain lines elsewhere."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from trissh.testing import SSHServer

pytestmark = pytest.mark.timeout(120)


def config_for(server: SSHServer, tmp_path: Path) -> Path:
    path = tmp_path / "ssh_config"
    entry = f"""  HostName 127.0.0.1
  Port {server.port}
  User {server.username}
  IdentityFile {server.client_key}
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile {server.known_hosts}
"""
    path.write_text(f"Host alias\n{entry}\nHost other\n{entry}")
    return path


def cp(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "trissh", "cp", "-F", str(config), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=90, check=False)


def tree(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``root``: relative path -> (sha256, permission bits)."""
    return {
        str(path.relative_to(root)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            stat.S_IMODE(path.stat().st_mode),
        )
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    for i, rel in enumerate(["a.bin", "sub/b.txt", "sub/deeper/c", "empty"]):
        path = root / rel
        path.write_bytes(os.urandom(i * 100_000))
        path.chmod(0o640 if i % 2 else 0o604)
    os.utime(root / "sub" / "b.txt", (1_000_000_000, 1_000_000_000))


def test_a_file_both_ways(sshd: SSHServer, tmp_path: Path) -> None:
    config = config_for(sshd, tmp_path)
    data = os.urandom(3_000_000)
    (tmp_path / "src").write_bytes(data)
    (tmp_path / "remote").mkdir()
    done = cp(config, str(tmp_path / "src"), f"alias:{tmp_path / 'remote'}")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "remote" / "src").read_bytes() == data
    done = cp(config, f"alias:{tmp_path / 'remote' / 'src'}", str(tmp_path / "back"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "back").read_bytes() == data
    # Not a terminal: one plain line per file on stderr, nothing with -q.
    assert f"{tmp_path / 'remote' / 'src'}: 3000000 bytes" in done.stderr
    quiet = cp(config, "-q", f"alias:{tmp_path / 'remote' / 'src'}", str(tmp_path / "again"))
    assert (quiet.returncode, quiet.stderr) == (0, "")


def test_recursive_with_p_keeps_content_modes_and_times_both_ways(sshd: SSHServer, tmp_path: Path) -> None:
    config = config_for(sshd, tmp_path)
    make_tree(tmp_path / "src")
    (tmp_path / "remote").mkdir()
    done = cp(config, "-r", "-p", str(tmp_path / "src"), f"alias:{tmp_path / 'remote'}")
    assert done.returncode == 0, done.stderr
    assert tree(tmp_path / "remote" / "src") == tree(tmp_path / "src")
    done = cp(config, "-rp", f"alias:{tmp_path / 'remote' / 'src'}", str(tmp_path / "back"))
    assert done.returncode == 0, done.stderr
    assert tree(tmp_path / "back") == tree(tmp_path / "src")
    assert (tmp_path / "back" / "sub" / "b.txt").stat().st_mtime == 1_000_000_000
    without = cp(config, f"alias:{tmp_path / 'remote' / 'src'}", str(tmp_path / "no-r"))
    assert without.returncode == 255 and "-r" in without.stderr


def test_several_sources_go_into_a_directory(sshd: SSHServer, tmp_path: Path) -> None:
    config = config_for(sshd, tmp_path)
    for name in ("one", "two"):
        (tmp_path / name).write_bytes(name.encode() * 1000)
    (tmp_path / "remote").mkdir()
    done = cp(config, str(tmp_path / "one"), str(tmp_path / "two"), f"alias:{tmp_path / 'remote'}")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "remote").iterdir()) == ["one", "two"]
    not_a_dir = cp(
        config, str(tmp_path / "one"), str(tmp_path / "two"), f"alias:{tmp_path / 'remote' / 'one'}"
    )
    assert not_a_dir.returncode == 255 and "not a directory" in not_a_dir.stderr


def test_remote_to_remote_goes_through_the_client(sshd: SSHServer, tmp_path: Path) -> None:
    config = config_for(sshd, tmp_path)
    make_tree(tmp_path / "src")
    (tmp_path / "dst").mkdir()
    done = cp(config, "-rp", f"alias:{tmp_path / 'src'}", f"other:{tmp_path / 'dst'}")
    assert done.returncode == 0, done.stderr
    assert tree(tmp_path / "dst" / "src") == tree(tmp_path / "src")


def test_progress_on_a_terminal(sshd: SSHServer, tmp_path: Path) -> None:
    pexpect = pytest.importorskip("pexpect")
    config = config_for(sshd, tmp_path)
    (tmp_path / "big").write_bytes(os.urandom(20_000_000))
    child = pexpect.spawn(
        sys.executable,
        ["-m", "trissh", "cp", "-F", str(config), f"alias:{tmp_path / 'big'}", str(tmp_path / "copy")],
        env={**os.environ, "TERM": "xterm", "COLUMNS": "120"},
        dimensions=(24, 120),
        timeout=60,
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    shown = child.before.decode(errors="replace")
    assert "total" in shown and "MB" in shown  # rich's bars: the total, bytes and rate
    assert (tmp_path / "copy").read_bytes() == (tmp_path / "big").read_bytes()


@pytest.mark.parametrize("argv", [["only-one"], ["-Z", "a", "b"], ["a", "host:", "-P", "99999"]])
def test_usage_errors_exit_255(tmp_path: Path, argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trissh", "cp", *argv], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 255 and "usage: trissh cp" in done.stderr
