"""Tests of ``trissh.testing``: the throwaway sshd works, as proven by the real OpenSSH client."""

from __future__ import annotations

import os
import pwd
import socket
import stat
import subprocess
from pathlib import Path

import pytest

import trissh.testing._sshd
from trissh.testing import ENCRYPTED_KEY_PASSPHRASE, HOST_KEY_TYPES, SSHServer, start_sshd


def _ssh(server: SSHServer, command: str, *, key: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        server.ssh_command(command, key=key), capture_output=True, text=True, timeout=30, check=False
    )


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_openssh_client_logs_in(sshd: SSHServer) -> None:
    """Keys, known_hosts and config are right: OpenSSH's client logs in with strict host key checking."""
    result = subprocess.run(
        [
            "ssh",
            "-i", str(sshd.client_key),
            "-o", f"UserKnownHostsFile={sshd.known_hosts}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-p", str(sshd.port),
            f"{sshd.username}@127.0.0.1",
            "echo hi",
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "hi\n"), result.stderr + sshd.read_log()[-2000:]


def test_clean_environment(sshd: SSHServer) -> None:
    """Commands see HOME=<temp dir>, so the machine's shell start-up files are not read."""
    result = _ssh(sshd, 'echo "$HOME"')
    assert result.stdout == f"{sshd.directory}\n", result.stderr


def test_shell_reads_startup_files_from_the_temp_dir(sshd: SSHServer) -> None:
    """Debian's bash, run by sshd, sources $HOME/.bashrc: that must be the temp dir's, not the user's own."""
    if not pwd.getpwuid(os.getuid()).pw_shell.endswith("/bash"):
        pytest.skip("the login shell is not bash")
    assert _ssh(sshd, "true").stdout == ""
    bashrc = sshd.directory / ".bashrc"
    bashrc.write_text("echo SOURCED\n")
    try:
        sourced = _ssh(sshd, "true").stdout
    finally:
        bashrc.unlink()
    # Debian builds bash with SSH_SOURCE_BASHRC; other builds read nothing at all, which is fine too.
    assert sourced in ("SOURCED\n", "")


def test_every_user_key_logs_in(sshd: SSHServer) -> None:
    assert set(sshd.client_keys) == {"ed25519", "ecdsa", "rsa", "ed25519-encrypted"}
    for name, key in sshd.client_keys.items():
        if name == "ed25519-encrypted":
            continue  # BatchMode cannot type a passphrase; checked below with ssh-keygen
        result = _ssh(sshd, "echo ok", key=key)
        assert result.stdout == "ok\n", (name, result.stderr)


def test_encrypted_key_needs_the_passphrase(sshd: SSHServer) -> None:
    key = sshd.client_keys["ed25519-encrypted"]
    wrong = subprocess.run(["ssh-keygen", "-y", "-P", "", "-f", str(key)], capture_output=True, check=False)
    right = subprocess.run(
        ["ssh-keygen", "-y", "-P", ENCRYPTED_KEY_PASSPHRASE, "-f", str(key)], capture_output=True, check=False
    )
    assert wrong.returncode != 0
    assert right.returncode == 0
    assert right.stdout.split()[:2] == Path(f"{key}.pub").read_bytes().split()[:2]


def test_known_hosts_lists_every_host_key(sshd: SSHServer) -> None:
    lines = sshd.known_hosts.read_text().splitlines()
    assert set(sshd.host_keys) == set(HOST_KEY_TYPES)
    assert sorted(line.split()[1] for line in lines) == sorted(HOST_KEY_TYPES)
    assert all(line.startswith(f"[127.0.0.1]:{sshd.port} ") for line in lines)
    for key_type, path in sshd.host_keys.items():
        assert f"{key_type} {Path(f'{path}.pub').read_text().split()[1]}" in sshd.known_hosts.read_text()


@pytest.mark.parametrize("key_type", sorted(HOST_KEY_TYPES))
def test_each_host_key_verifies(sshd: SSHServer, key_type: str) -> None:
    algorithm = "rsa-sha2-256" if key_type == "ssh-rsa" else key_type
    command = sshd.ssh_command("true")
    command[1:1] = ["-o", f"HostKeyAlgorithms={algorithm}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr


def test_private_files_are_private(sshd: SSHServer) -> None:
    assert stat.S_IMODE(sshd.directory.stat().st_mode) == 0o700
    for path in [*sshd.host_keys.values(), *sshd.client_keys.values()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_server_and_directory_are_gone_after_exit() -> None:
    with start_sshd() as server:
        assert _port_answers(server.port)
        assert _running(server.pid)
        # A session still open at exit must not keep anything alive either.
        session = subprocess.Popen(
            server.ssh_command("echo $$; exec sleep 300"), stdout=subprocess.PIPE, text=True
        )
        assert session.stdout is not None
        command_pid = int(session.stdout.readline())
        assert _running(command_pid)
    try:
        assert not server.directory.exists()
        assert not _running(server.pid)
        assert not _running(command_pid)
        assert not _port_answers(server.port)
        assert session.wait(timeout=10) != 0
    finally:
        session.kill()
        session.wait()


def test_cleanup_on_exception() -> None:
    with pytest.raises(KeyboardInterrupt), start_sshd() as server:
        raise KeyboardInterrupt
    assert not server.directory.exists()
    assert not _running(server.pid)


def test_extra_config_overrides_defaults() -> None:
    extra = ["LogLevel DEBUG1", "SetEnv TRISSH_TEST=yes", "Match User nobody", "    MaxSessions 3"]
    with start_sshd(extra_config=extra) as server:
        config = server.config_path.read_text()
        assert config.lower().count("loglevel") == 1
        assert config.rstrip().endswith("Match User nobody\n    MaxSessions 3")
        assert "debug1:" in server.read_log()
        result = _ssh(server, 'echo "$HOME $TRISSH_TEST"')
        assert result.stdout == f"{server.directory} yes\n"


def test_reserved_keywords_are_rejected() -> None:
    with pytest.raises(ValueError, match="port"), start_sshd(extra_config=["Port 22"]):
        pass


def test_unknown_user_key_type() -> None:
    with pytest.raises(ValueError, match="dsa"), start_sshd(user_key_types=["dsa"]):
        pass


def test_host_key_types_chooses_the_host_keys() -> None:
    with start_sshd(host_key_types=["ssh-ed25519"]) as server:
        assert set(server.host_keys) == {"ssh-ed25519"}
        assert [line.split()[1] for line in server.known_hosts.read_text().splitlines()] == ["ssh-ed25519"]
        assert "HostKey" in server.config_path.read_text()
        result = subprocess.run(server.ssh_command("true"), capture_output=True, timeout=30, check=False)
        assert result.returncode == 0, result.stderr
    for bad in (["ssh-dss"], []):
        with pytest.raises(ValueError, match="host key"), start_sshd(host_key_types=bad):
            pass


def test_retries_when_the_port_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """If another process binds our port before sshd does, start_sshd picks another."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        ports = iter([taken])
        real_free_port = trissh.testing._sshd._free_port
        monkeypatch.setattr(trissh.testing._sshd, "_free_port", lambda: next(ports, None) or real_free_port())
        with start_sshd() as server:
            assert server.port != taken
            assert _ssh(server, "echo ok").stdout == "ok\n"


def test_start_failure_reports_the_log() -> None:
    with pytest.raises(RuntimeError, match="log tail") as info, start_sshd(extra_config=["NoSuchOption yes"]):
        pass
    assert "NoSuchOption" in str(info.value) or "Bad configuration" in str(info.value)


def test_sshd_path() -> None:
    assert os.path.isabs(trissh.testing.sshd_path())
