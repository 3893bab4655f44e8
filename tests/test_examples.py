"""The examples run on their own: each starts a throwaway sshd when given no destination, and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from servers import requires_sshd

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# A hang guard, not a timing: each example takes well under a second once sshd is up.
RUN_TIMEOUT = 60


pytestmark = requires_sshd


def run_example(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
        cwd=EXAMPLES.parent,
    )


def test_lowlevel_example_prints_what_was_negotiated_and_runs_a_command() -> None:
    done = run_example("lowlevel.py")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "known_hosts: trusted" in out  # its verify_host_key hook ran, against the server's known_hosts
    for direction in ("client to server", "server to client"):  # its connection_secure hook ran
        assert f"{direction}: cipher " in out and "compression none" in out, out
    assert "key exchange: " in out and "session id: " in out, out
    assert "authenticated as " in out, out
    assert "exit status 0: " in out, out


def test_demo_runs_its_commands_against_a_throwaway_sshd() -> None:
    done = run_example("demo.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "negotiated: kex " in done.stdout and "exit status: 3" in done.stdout, done.stdout
