"""The ``trissh`` command against a real sshd: output, exit status, stdin, refused host keys."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import time
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


def _base(server: SSHServer) -> list[str]:
    return [
        sys.executable, "-m", "trissh", "-F", "none", "-i", str(server.client_key), "-p", str(server.port),
        "--known-hosts", str(server.known_hosts), "-o", "IdentityAgent=none",
    ]  # fmt: skip


def test_stdio_forward_carries_our_stdin_and_stdout(sshd: SSHServer) -> None:
    """``-W host:port``: here sshd's own port, whose banner comes back on our stdout."""
    argv = [*_base(sshd), "-W", f"127.0.0.1:{sshd.port}", f"{sshd.username}@{sshd.host}"]
    done = subprocess.run(argv, input=b"", capture_output=True, timeout=60, check=False)
    assert done.stdout.startswith(b"SSH-2.0-"), done.stderr


def test_local_forward_with_no_command(sshd: SSHServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    argv = [*_base(sshd), "-N", "-L", f"{port}:127.0.0.1:{sshd.port}", f"{sshd.username}@{sshd.host}"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:  # wait for the listener (a poll, not a timing assertion)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                    assert client.recv(100).startswith(b"SSH-2.0-")
                break
            except ConnectionRefusedError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the forward never listened"
                time.sleep(0.1)
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_a_closed_pipe_ends_quietly(sshd: SSHServer) -> None:
    """``trissh host cmd | head -1``: no traceback when the reader goes away."""
    argv = [*_base(sshd), f"{sshd.username}@{sshd.host}", "yes"]
    pipeline = subprocess.run(
        f"{shlex.join(argv)} | head -1", shell=True, capture_output=True, timeout=60, check=False
    )
    assert pipeline.stdout == b"y\n"
    assert b"Traceback" not in pipeline.stderr and b"Error" not in pipeline.stderr, pipeline.stderr


def test_a_bad_destination_is_a_usage_error_255() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trissh", "bad host"], capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 255 and b"invalid destination" in done.stderr and b"usage:" in done.stderr


def _jump_config(server: SSHServer, tmp_path: Path) -> Path:
    block = "".join(
        f"  {line}\n"
        for line in (
            "HostName 127.0.0.1", f"Port {server.port}", f"User {server.username}",
            f"IdentityFile {server.client_key}", "IdentitiesOnly yes", "IdentityAgent none",
            f"UserKnownHostsFile {server.known_hosts}",
        )
    )  # fmt: skip
    path = tmp_path / "config"
    path.write_text(f"Host bastion\n{block}Host target\n{block}")
    return path


def test_jump_host_option_goes_through_the_bastion(sshd: SSHServer, tmp_path: Path) -> None:
    """``-J bastion``: the jump host is resolved from the files alone, as ssh's own ``ssh -W`` for it
    is run with ``-F`` but not the command line's options (here, ``-J`` itself would loop)."""
    config = _jump_config(sshd, tmp_path)
    argv = [sys.executable, "-m", "trissh", "-F", str(config), "-J", "bastion", "target", "echo", "ok"]
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, b"ok\n"), done.stderr


def test_command_line_options_are_for_the_destination_not_the_jump_host(
    sshd: SSHServer, tmp_path: Path
) -> None:
    config = _jump_config(sshd, tmp_path)
    argv = [sys.executable, "-m", "trissh", "-F", str(config), "-l", "nobody-here", "-J", "bastion", "target"]
    done = subprocess.run([*argv, "true"], capture_output=True, timeout=60, check=False)
    assert done.returncode == 255
    assert b"hop 2 of 2, via jump host" in done.stderr, done.stderr  # bastion let us in as ourselves
