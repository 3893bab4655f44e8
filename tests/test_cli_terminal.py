"""The ``trissh`` command under a real pseudo-terminal (pexpect), against a real sshd: an interactive
shell, the window size and its changes, the ``~`` escapes, Ctrl-C, prompts that never echo, the host
key question, and the terminal given back as it was."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from trissh.testing import ENCRYPTED_KEY_PASSPHRASE, SSHServer, password_user, start_sshd

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.timeout(90)
WAIT = 30  # seconds pexpect waits for each expected text
# The remote shell's prompt; written so that the echo of this line does not contain "READY> ".
SET_PROMPT = "export PS1='READ''Y> '"


def config_for(server: SSHServer, tmp_path: Path, extra: str = "", *, key: Path | None = None) -> Path:
    path = tmp_path / "ssh_config"
    path.write_text(
        f"""Host alias
  HostName 127.0.0.1
  Port {server.port}
  User {server.username}
  IdentityFile {key or server.client_key}
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile {server.known_hosts}
{extra}
"""
    )
    return path


def spawn(*args: str, cwd: Path | None = None) -> pexpect.spawn:
    env = {**os.environ, "TERM": "xterm", "PYTHONUNBUFFERED": "1"}
    return pexpect.spawn(
        sys.executable, ["-m", "trissh", *args], env=env, dimensions=(24, 80), timeout=WAIT, cwd=cwd
    )


@pytest.fixture
def shell(sshd: SSHServer, tmp_path: Path) -> Iterator[pexpect.spawn]:
    child = spawn("-F", str(config_for(sshd, tmp_path)), "alias")
    child.sendline(SET_PROMPT)
    child.expect("READY> ")
    yield child
    child.close(force=True)


def test_an_interactive_shell_sees_the_window_size_and_its_changes(shell: pexpect.spawn) -> None:
    shell.sendline("stty size")
    shell.expect("24 80")
    shell.setwinsize(40, 100)  # the pty sends trissh SIGWINCH
    shell.sendline("stty size")
    shell.expect("40 100")
    shell.sendline("exit 7")
    shell.expect(pexpect.EOF)
    shell.close()
    assert shell.exitstatus == 7


def test_tilde_dot_disconnects_with_255(shell: pexpect.spawn) -> None:
    shell.send("\r~.")
    shell.expect("Connection to alias closed")
    shell.expect(pexpect.EOF)
    shell.close()
    assert shell.exitstatus == 255


def test_tilde_question_mark_lists_the_escapes_and_tilde_tilde_sends_one(shell: pexpect.spawn) -> None:
    shell.send("\r~?")
    shell.expect("terminate connection")
    shell.send("echo x~~y\r")  # not at a line start: sent as typed
    shell.expect("x~~y")
    shell.send("cat > out.txt\r")
    shell.expect("out.txt\r\n")  # the line is taken: cat runs (or soon will)
    shell.send("~~z\r\x04")  # at a line start, ~~ sends one ~
    shell.expect("READY> ")
    shell.sendline("cat out.txt")
    shell.expect("\r~z\r\n")  # one ~, not two
    shell.sendline("exit 0")
    shell.expect(pexpect.EOF)


def test_ctrl_c_goes_to_the_remote_command_in_a_shell(shell: pexpect.spawn) -> None:
    shell.sendline("sleep 60; echo not-interrupted")
    shell.send("\x03")
    shell.expect("READY> ")
    shell.sendline("exit 0")
    shell.expect(pexpect.EOF)
    assert b"not-interrupted" not in shell.before
    shell.close()
    assert shell.exitstatus == 0


def test_ctrl_c_ends_a_command_quietly_with_130(sshd: SSHServer, tmp_path: Path) -> None:
    child = spawn("-F", str(config_for(sshd, tmp_path)), "alias", "echo started; sleep 60")
    child.expect("started")
    child.sendintr()  # the local terminal's Ctrl-C: SIGINT to trissh (no pty for a command)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    assert b"Traceback" not in child.before


def test_the_terminal_is_restored_after_every_exit(sshd: SSHServer, tmp_path: Path) -> None:
    config = config_for(sshd, tmp_path)
    env = {**os.environ, "TERM": "xterm", "PS1": "LOCAL$ "}
    local = pexpect.spawn("/bin/sh", env=env, dimensions=(24, 80), timeout=WAIT)
    try:
        local.expect("LOCAL\\$ ")
        for ending in ("\r~.", "exit\r"):
            local.sendline(f"{sys.executable} -m trissh -F {config} alias")
            local.sendline(SET_PROMPT)
            local.expect("READY> ")
            local.send(ending)
            local.expect("LOCAL\\$ ")
            local.sendline("stty -a")
            local.expect("LOCAL\\$ ")
            settings = local.before.decode()
            assert " icanon" in settings and " echo " in settings and "-icanon" not in settings
    finally:
        local.close(force=True)


def test_a_password_prompt_never_echoes(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("password_user() needs root")
    with (
        password_user() as user,
        start_sshd(extra_config=["PasswordAuthentication yes"]) as server,
    ):
        config = config_for(server, tmp_path, "  PubkeyAuthentication no").with_suffix("")
        text = (tmp_path / "ssh_config").read_text().replace(f"User {server.username}", f"User {user.name}")
        config.write_text(text)
        child = spawn("-F", str(config), "alias", "echo logged-in")
        child.expect("password: ")
        child.sendline(user.password)
        child.expect("logged-in")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        assert user.password.encode() not in child.before


def test_a_key_passphrase_is_asked_on_the_terminal(tmp_path: Path) -> None:
    with start_sshd(user_key_types=("ed25519", "ed25519-encrypted")) as server:
        key = server.client_keys["ed25519-encrypted"]
        child = spawn("-F", str(config_for(server, tmp_path, key=key)), "alias", "echo with-key")
        child.expect("Enter passphrase for key")
        child.sendline(ENCRYPTED_KEY_PASSPHRASE)
        child.expect("with-key")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        assert ENCRYPTED_KEY_PASSPHRASE.encode() not in child.before


def test_an_unknown_host_key_is_asked_about_and_remembered(sshd: SSHServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    config = config_for(sshd, tmp_path)
    config.write_text(config.read_text().replace(str(sshd.known_hosts), str(known)))
    child = spawn("-F", str(config), "alias", "echo first")
    child.expect(r"continue connecting \(yes/no/\[fingerprint\]\)\? ")
    child.sendline("yes")
    child.expect("first")
    child.expect(pexpect.EOF)
    assert known.read_text().count("\n") == 1
    child = spawn("-F", str(config), "alias", "echo second")  # now known: no question
    child.expect("second")
    child.expect(pexpect.EOF)
    assert b"continue connecting" not in child.before
