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


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
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


def test_sftp_example_mirrors_a_directory_both_ways(tmp_path: Path) -> None:
    tree = tmp_path / "site"
    (tree / "css").mkdir(parents=True)
    (tree / "index.html").write_text("<h1>hello</h1>")
    (tree / "css" / "style.css").write_text("h1 { color: red }")
    (tree / "big.bin").write_bytes(bytes(range(256)) * 4096)
    done = run_example("sftp.py", str(tree))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 file transfers" in done.stdout and "the mirror matches" in done.stdout, done.stdout
    assert "big.bin" in done.stderr and "100%" in done.stderr, done.stderr
    mirrored = tmp_path / "site.mirrored"
    assert (mirrored / "css" / "style.css").read_text() == "h1 { color: red }"
