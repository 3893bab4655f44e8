"""Authentication against AsyncSSH's server: keyboard-interactive with several prompts (RFC 4256) and an
expired password changed through SSH_MSG_USERAUTH_PASSWD_CHANGEREQ (RFC 4252 §8), which sshd never sends."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from servers import InteropServer

import trissh

PROMPTS = ["Account PIN: =1234", "Token code+=998877", "Favourite colour: =blue"]


async def login(server: InteropServer, **kwargs: Any) -> trissh.SSHConnection:
    options: dict[str, Any] = {
        "username": "anyone",
        "known_hosts": server.known_hosts,
        "client_keys": [],
        "agent_path": None,
        "connect_timeout": 10,
    }
    options.update(kwargs)
    async with trissh.connect(server.host, server.port, **options) as conn:
        assert (await conn.run("echo in")).stdout == b"in\n"
        return conn


async def test_kbdint_with_several_prompts(make_asyncssh_server: Any) -> None:
    server = make_asyncssh_server(auth_args=[f"--kbdint-prompt={p}" for p in PROMPTS] + ["--banner=Hi\n"])
    asked: list[tuple[str, str, list[tuple[str, bool]]]] = []
    answers = {"Account PIN: ": "1234", "Token code": "998877", "Favourite colour: ": "blue"}

    async def handler(name: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        asked.append((name, instructions, prompts))
        return [answers[text] for text, _ in prompts]

    with trio.fail_after(20):
        conn = await login(server, kbdint_handler=handler)
    assert asked == [
        (
            "trissh test",
            "Answer every prompt.",
            [("Account PIN: ", False), ("Token code", True), ("Favourite colour: ", False)],
        )
    ]
    assert conn.auth.method == "keyboard-interactive"
    assert conn.auth.banners == ["Hi\n"]


async def test_kbdint_with_wrong_answers_is_retried_then_denied(make_asyncssh_server: Any) -> None:
    server = make_asyncssh_server(auth_args=[f"--kbdint-prompt={p}" for p in PROMPTS])
    rounds = 0

    async def handler(name: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        nonlocal rounds
        rounds += 1
        return ["wrong"] * len(prompts)

    with trio.fail_after(20), pytest.raises(trissh.PermissionDenied, match="keyboard-interactive: refused"):
        await login(server, kbdint_handler=handler)
    assert rounds == 3  # OpenSSH's NumberOfPasswordPrompts


async def test_several_prompts_without_a_handler_are_not_answered_with_the_password(
    make_asyncssh_server: Any,
) -> None:
    server = make_asyncssh_server(auth_args=[f"--kbdint-prompt={p}" for p in PROMPTS])
    with trio.fail_after(20), pytest.raises(trissh.PermissionDenied, match="no kbdint_handler"):
        await login(server, password="1234", preferred_auth=["keyboard-interactive"])


async def test_expired_password_is_changed_through_the_handler(make_asyncssh_server: Any) -> None:
    server = make_asyncssh_server(auth_args=["--expired-password=old-secret:new-secret"])
    prompts: list[str] = []

    async def change(prompt: str) -> str:
        prompts.append(prompt)
        return "new-secret"

    with trio.fail_after(20):
        conn = await login(server, password="old-secret", password_change_handler=change)
    assert prompts == ["Your password has expired; choose a new one"]
    assert conn.auth.method == "password"


async def test_expired_password_without_a_handler_is_permission_denied(make_asyncssh_server: Any) -> None:
    server = make_asyncssh_server(auth_args=["--expired-password=old-secret:new-secret"])
    with trio.fail_after(20), pytest.raises(trissh.PermissionDenied, match="requires a new password"):
        await login(server, password="old-secret")


async def test_refused_new_passwords_end_in_permission_denied(make_asyncssh_server: Any) -> None:
    server = make_asyncssh_server(auth_args=["--expired-password=old-secret:new-secret"])
    asked = 0

    async def change(prompt: str) -> str:
        nonlocal asked
        asked += 1
        return "not-allowed"

    with trio.fail_after(20), pytest.raises(trissh.PermissionDenied, match="refused 3 new passwords"):
        await login(server, password="old-secret", password_change_handler=change)
    assert asked == 3
