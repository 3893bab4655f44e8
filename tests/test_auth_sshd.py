"""Authentication methods against a real OpenSSH sshd (RFC 4252, RFC 4256): password, keyboard-interactive
with PAM off and on, two factors with ``AuthenticationMethods``, banners, and the order methods are tried in.

Password and keyboard-interactive need an account with a password, which only root can make
(``trissh.testing.password_user``); those tests skip otherwise.
"""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import trissh
from trissh._auth.identity import KeyIdentity
from trissh.testing import PasswordUser, SSHServer, password_user, start_sshd

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create an account with a password")

PAM_SERVICE = Path("/etc/pam.d/sshd")


@pytest.fixture(scope="module")
def account() -> Iterator[PasswordUser]:
    with password_user() as user:
        yield user


def _authorize(server: SSHServer) -> None:
    """Let the account log in with the server's user keys too.

    sshd reads AuthorizedKeysFile as the user logging in, and start_sshd's directory is root's alone;
    the private keys in it stay 0600.
    """
    server.directory.chmod(0o711)
    (server.directory / "authorized_keys").chmod(0o644)


@pytest.fixture(scope="module")
def password_sshd(account: PasswordUser) -> Iterator[SSHServer]:
    with start_sshd(extra_config=["PasswordAuthentication yes", "MaxAuthTries 10"]) as server:
        yield server


async def login(server: SSHServer, account: PasswordUser, **kwargs: Any) -> trissh.SSHConnection:
    options: dict[str, Any] = {
        "username": account.name,
        "known_hosts": server.known_hosts,
        "client_keys": [],
        "agent_path": None,
        "connect_timeout": 10,
    }
    options.update(kwargs)
    async with trissh.connect(server.host, server.port, **options) as conn:
        result = await conn.run("id -un")
        assert result.stdout.decode().strip() == account.name
        return conn


async def test_password(password_sshd: SSHServer, account: PasswordUser) -> None:
    with trio.fail_after(20):
        conn = await login(password_sshd, account, password=account.password)
    assert conn.auth.method == "password"


async def test_password_from_a_callable_is_asked_again_after_a_refusal(
    password_sshd: SSHServer, account: PasswordUser
) -> None:
    answers = iter(["wrong", "also wrong", account.password])
    asked = 0

    async def ask() -> str:
        nonlocal asked
        asked += 1
        return next(answers)

    with trio.fail_after(30):
        conn = await login(password_sshd, account, password=ask)
    assert (asked, conn.auth.method) == (3, "password")


async def test_wrong_password_is_permission_denied_saying_what_was_tried(
    password_sshd: SSHServer, account: PasswordUser
) -> None:
    with trio.fail_after(30), pytest.raises(trissh.PermissionDenied) as caught:
        await login(password_sshd, account, password="not the password", preferred_auth=["password"])
    text = str(caught.value)
    assert f"authentication as {account.name!r} failed" in text
    assert "password: refused" in text
    assert "the server allows: publickey, password" in text
    assert caught.value.methods == ("publickey", "password")


async def test_refused_keys_are_listed_by_fingerprint_and_source(
    password_sshd: SSHServer, account: PasswordUser
) -> None:
    """The account has no authorized key: each key offered shows up in the error."""
    with trio.fail_after(30), pytest.raises(trissh.PermissionDenied) as caught:
        await login(
            password_sshd, account, client_keys=[password_sshd.client_key], preferred_auth=["publickey"]
        )
    text = str(caught.value)
    fingerprint = trissh.load_private_key(password_sshd.client_key).public_key.fingerprint
    assert fingerprint in text and str(password_sshd.client_key) in text, text


async def test_preferred_auth_decides_the_order(password_sshd: SSHServer, account: PasswordUser) -> None:
    """PreferredAuthentications: with password first, a working password wins before any key is offered."""
    signed: list[str] = []

    class Recording(KeyIdentity):
        async def sign(self, data: bytes, algorithm: str) -> bytes:
            signed.append(algorithm)
            return await super().sign(data, algorithm)

    key = Recording(trissh.load_private_key(password_sshd.client_key), source="test")
    with trio.fail_after(20):
        conn = await login(
            password_sshd,
            account,
            password=account.password,
            client_keys=[key],
            preferred_auth="password,publickey",
        )
    assert (conn.auth.method, signed) == ("password", [])


@pytest.fixture(scope="module")
def kbdint_no_pam_sshd(account: PasswordUser) -> Iterator[SSHServer]:
    with start_sshd(
        extra_config=["KbdInteractiveAuthentication yes", "PasswordAuthentication yes", "UsePAM no"]
    ) as server:
        yield server


async def test_kbdint_without_pam_fails_over_to_password(
    kbdint_no_pam_sshd: SSHServer, account: PasswordUser
) -> None:
    """sshd lists keyboard-interactive without PAM but has no device to run it: the loop moves on."""
    asked: list[list[tuple[str, bool]]] = []

    async def handler(name: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        asked.append(prompts)
        return [account.password for _ in prompts]

    with trio.fail_after(30):
        conn = await login(kbdint_no_pam_sshd, account, kbdint_handler=handler, password=account.password)
    assert conn.auth.method == "password"
    assert asked == []


def _pam_works() -> bool:
    return PAM_SERVICE.exists()


@pytest.fixture(scope="module")
def pam_sshd(account: PasswordUser) -> Iterator[SSHServer]:
    if not _pam_works():
        pytest.skip(f"{PAM_SERVICE} is missing: sshd cannot use PAM here")
    with start_sshd(
        extra_config=["UsePAM yes", "KbdInteractiveAuthentication yes", "PasswordAuthentication no"]
    ) as server:
        yield server


async def test_kbdint_with_pam_and_a_handler(pam_sshd: SSHServer, account: PasswordUser) -> None:
    asked: list[list[tuple[str, bool]]] = []

    async def handler(name: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        asked.append(prompts)
        return [account.password for _ in prompts]

    with trio.fail_after(30):
        conn = await login(pam_sshd, account, kbdint_handler=handler)
    assert conn.auth.method == "keyboard-interactive"
    assert [prompts for prompts in asked if prompts] == [[("Password: ", False)]]


async def test_kbdint_with_pam_answered_by_the_password(pam_sshd: SSHServer, account: PasswordUser) -> None:
    """No handler: the password answers PAM's one hidden "Password:" prompt, as ssh users see it."""
    with trio.fail_after(30):
        conn = await login(pam_sshd, account, password=account.password)
    assert conn.auth.method == "keyboard-interactive"


async def test_kbdint_with_pam_and_a_wrong_password(pam_sshd: SSHServer, account: PasswordUser) -> None:
    with trio.fail_after(60), pytest.raises(trissh.PermissionDenied, match="keyboard-interactive: refused"):
        await login(pam_sshd, account, password="wrong")


@pytest.fixture(scope="module")
def two_factor_sshd(account: PasswordUser) -> Iterator[SSHServer]:
    with start_sshd(
        extra_config=[
            "PasswordAuthentication yes",
            "KbdInteractiveAuthentication yes",
            f"UsePAM {'yes' if _pam_works() else 'no'}",
            "AuthenticationMethods publickey,password publickey,keyboard-interactive",
        ]
    ) as server:
        _authorize(server)
        yield server


async def test_publickey_then_password(two_factor_sshd: SSHServer, account: PasswordUser) -> None:
    """RFC 4252 §5.1 partial success: the key is the first factor, the password the second."""
    with trio.fail_after(30):
        conn = await login(
            two_factor_sshd,
            account,
            client_keys=[two_factor_sshd.client_key],
            password=account.password,
            preferred_auth=["publickey", "password"],
        )
    assert conn.auth.methods == ["publickey", "password"]
    assert conn.auth.method == "password"


async def test_publickey_then_keyboard_interactive(two_factor_sshd: SSHServer, account: PasswordUser) -> None:
    if not _pam_works():
        pytest.skip("keyboard-interactive needs PAM in sshd")

    async def handler(name: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        return [account.password for _ in prompts]

    with trio.fail_after(30):
        conn = await login(
            two_factor_sshd, account, client_keys=[two_factor_sshd.client_key], kbdint_handler=handler
        )
    assert conn.auth.methods == ["publickey", "keyboard-interactive"]


async def test_one_factor_of_two_is_permission_denied_naming_the_partial_success(
    two_factor_sshd: SSHServer, account: PasswordUser
) -> None:
    with trio.fail_after(30), pytest.raises(trissh.PermissionDenied) as caught:
        await login(two_factor_sshd, account, client_keys=[two_factor_sshd.client_key])
    assert "no password given" in str(caught.value)
    assert "publickey" not in caught.value.methods  # the key's factor is done; the server wants the other


@pytest.fixture(scope="module")
def banner_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    banner = tmp_path_factory.mktemp("banner") / "banner.txt"
    banner.write_text("Authorised use only.\nSecond line.\n")
    with start_sshd(extra_config=[f"Banner {banner}"]) as server:
        yield server


async def test_banner_reaches_the_callback(banner_sshd: SSHServer) -> None:
    seen: list[str] = []

    async def on_banner(text: str) -> None:
        seen.append(text)

    with trio.fail_after(20):
        async with trissh.connect(
            banner_sshd.host,
            banner_sshd.port,
            username=banner_sshd.username,
            client_keys=[banner_sshd.client_key],
            known_hosts=banner_sshd.known_hosts,
            agent_path=None,
            banner_handler=on_banner,
        ) as conn:
            assert conn.auth.banners == ["Authorised use only.\nSecond line.\n"]
    assert seen == conn.auth.banners


def _run_on_a_terminal(
    argv: list[str], answers: dict[bytes, bytes], env: dict[str, str]
) -> tuple[int, bytes]:
    """Run ``argv`` with a pseudo-terminal as its controlling terminal, answering prompts as they appear."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: become the command
        os.execve(argv[0], argv, env)
    seen = b""
    pending = dict(answers)
    deadline = time.monotonic() + 30
    try:
        while True:
            assert time.monotonic() < deadline, f"no end in sight; the terminal shows {seen!r}"
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            for prompt, answer in list(pending.items()):
                if seen.endswith(prompt):
                    os.write(fd, answer)
                    del pending[prompt]
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen


def test_the_command_asks_for_the_password_on_the_terminal(
    password_sshd: SSHServer, account: PasswordUser, tmp_path: Path
) -> None:
    """As ssh(1): with a terminal, ``trissh`` prompts "user@host's password:" and reads it without echo."""
    env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}
    env["HOME"] = str(tmp_path)  # no ~/.ssh keys: the password is the only way in
    argv = [sys.executable, "-m", "trissh.cli", "--known-hosts", str(password_sshd.known_hosts)]
    argv += ["-l", account.name, "-p", str(password_sshd.port), password_sshd.host, "id", "-un"]
    status, screen = _run_on_a_terminal(
        argv, {f"{password_sshd.host}'s password: ".encode(): f"{account.password}\n".encode()}, env
    )
    assert status == 0, screen
    assert account.password.encode() not in screen  # not echoed
    assert screen.rstrip().endswith(account.name.encode()), screen
