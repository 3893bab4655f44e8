"""A real OpenSSH ssh-agent for tests: started on a short private socket, loaded with ssh-add, killed after.

Shared by the agent client, key source, agent forwarding and login tests, so every one of them runs
against the same agent the user has.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TOOL_TIMEOUT", "run_agent", "ssh_add", "ssh_add_listing"]

#: How long any one subprocess (ssh-agent start, ssh-add) may take.
TOOL_TIMEOUT = 30


@contextlib.contextmanager
def run_agent() -> Iterator[Path]:
    """A real ``ssh-agent -D`` on a fresh socket; killed on exit.

    The socket lives in a short /tmp directory (unix socket paths are limited to ~108 bytes). Confirmation
    prompts are always denied (SSH_ASKPASS=/bin/false), so a confirm-constrained key can never sign here.
    """
    directory = Path(tempfile.mkdtemp(prefix="trissh-agent-"))
    sock = directory / "agent.sock"
    env = {**os.environ, "SSH_ASKPASS": "/bin/false", "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
    proc = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(sock)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + TOOL_TIMEOUT
        while not _accepts_connections(sock):  # the socket file appears at bind(), before listen()
            if proc.poll() is not None:
                raise RuntimeError(f"ssh-agent exited with status {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("ssh-agent did not start listening on its socket")
            time.sleep(0.01)
        yield sock
    finally:
        proc.kill()
        proc.wait(timeout=TOOL_TIMEOUT)
        shutil.rmtree(directory, ignore_errors=True)


def _accepts_connections(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def ssh_add(sock: Path, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
    env.pop("SSH_ASKPASS", None)
    return subprocess.run(
        ["ssh-add", *map(str, args)],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        check=check,
    )


def ssh_add_listing(sock: Path) -> list[tuple[str, str, str]]:
    """``ssh-add -l -E sha256`` as (fingerprint, comment, type label) rows, in the agent's order."""
    result = ssh_add(sock, "-l", "-E", "sha256", check=False)
    if result.returncode == 1 and "no identities" in result.stdout:
        return []
    assert result.returncode == 0, result.stderr
    rows = []
    for line in result.stdout.splitlines():
        _bits, fingerprint, rest = line.split(" ", 2)
        comment, label = rest.rsplit(" ", 1)
        rows.append((fingerprint, comment, label.strip("()")))
    return rows
