"""The ``trissh`` command against a real sshd: output, exit status, stdin, refused host keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trissh.testing import SSHServer


def trissh(
    server: SSHServer, *args: str, known_hosts: Path | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    argv = [sys.executable, "-m", "trissh.cli", "-i", str(server.client_key), "-p", str(server.port)]
    argv += [
        "--known-hosts",
        str(known_hosts or server.known_hosts),
        f"{server.username}@{server.host}",
        *args,
    ]
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=60, check=False)


def test_runs_a_command_and_passes_its_output_and_status(sshd: SSHServer) -> None:
    done = trissh(sshd, "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, b"out\n", b"err\n")


def test_arguments_are_joined_as_a_shell_command(sshd: SSHServer) -> None:
    done = trissh(sshd, "printf", "%s|", "a b", "c")
    assert done.stdout == b"a b|c|"


def test_stdin_goes_to_the_command(sshd: SSHServer) -> None:
    done = trissh(sshd, "wc", "-c", stdin=b"x" * 100_000)
    assert (done.returncode, done.stdout.strip()) == (0, b"100000")


def test_unknown_host_key_exits_255_with_a_message(sshd: SSHServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    done = trissh(sshd, "true", known_hosts=empty)
    assert done.returncode == 255
    assert b"not known" in done.stderr and b"SHA256:" in done.stderr
