"""Testing deploy() against a real sshd: the ``ssh_connection`` fixture is an open connection to it.

No conftest.py is needed: installing trissh brings the fixtures. The server runs on this machine as this
user, so the test can look at the result both through the connection and on the local disk.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import trio
from deploy import DeployError, deploy

import trissh


def make_archive(tmp_path: Path, files: dict[str, str]) -> Path:
    source = tmp_path / "build"
    source.mkdir()
    for name, text in files.items():
        (source / name).write_text(text)
    archive = tmp_path / "app-1.2.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in files:
            tar.add(source / name, arcname=name)
    return archive


async def test_deploy_unpacks_the_release_and_switches_current(
    ssh_connection: trissh.SSHConnection, tmp_path: Path
) -> None:
    archive = make_archive(tmp_path, {"app.py": "print('v1.2')\n", "VERSION": "1.2\n"})
    root = tmp_path / "srv"
    root.mkdir()
    with trio.fail_after(30):
        release = await deploy(ssh_connection, archive, str(root), "1.2")
        result = await ssh_connection.run(f"cat {root}/current/VERSION; ls {release}", check=True)
    assert result.stdout.decode().split() == ["1.2", "VERSION", "app.py"]  # the archive itself is gone
    assert (root / "current").resolve() == Path(release)


async def test_a_second_deploy_moves_current_and_keeps_the_first(
    ssh_connection: trissh.SSHConnection, tmp_path: Path
) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    with trio.fail_after(30):
        for version in ("1", "2"):
            archive_dir = tmp_path / version
            archive_dir.mkdir()
            await deploy(ssh_connection, make_archive(archive_dir, {"VERSION": version}), str(root), version)
    assert (root / "current" / "VERSION").read_text() == "2"
    assert (root / "releases" / "1" / "VERSION").read_text() == "1"


async def test_a_broken_archive_is_reported_with_tars_message(
    ssh_connection: trissh.SSHConnection, tmp_path: Path
) -> None:
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"not a tar file")
    with trio.fail_after(30), pytest.raises(DeployError, match=r"tar -xzf.*failed with status 2"):
        await deploy(ssh_connection, archive, str(tmp_path), "bad")
    assert not (tmp_path / "current").exists()  # current was never pointed at the broken release
