"""A deploy step, as an application might have one: the code under test in ``test_deploy.py``.

It uploads a release archive by SFTP into ``<root>/releases/<version>/``, unpacks it there with ``tar``,
points the ``<root>/current`` symlink at it (atomically, with ``mv -T``) and returns the release path.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import trissh


class DeployError(Exception):
    """A step of the deploy failed on the server; the message has the step and its stderr."""


async def deploy(conn: trissh.SSHConnection, archive: Path, root: str, version: str) -> str:
    release = f"{root}/releases/{version}"
    async with conn.open_sftp() as sftp:
        await sftp.makedirs(release, exist_ok=True)
        await sftp.put(archive, f"{release}/{archive.name}")
    await _step(conn, f"tar -xzf {shlex.quote(archive.name)} && rm {shlex.quote(archive.name)}", cwd=release)
    # ln then mv -T: `current` always names a whole release, never a missing one.
    await _step(conn, f"ln -sfn {shlex.quote(release)} current.new && mv -T current.new current", cwd=root)
    return release


async def _step(conn: trissh.SSHConnection, command: str, *, cwd: str) -> None:
    result = await conn.run(f"cd {shlex.quote(cwd)} && {command}")
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise DeployError(f"`{command}` failed with status {result.returncode}: {stderr}")
