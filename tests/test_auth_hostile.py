"""User authentication against a scripted server that misbehaves on purpose (RFC 4252, RFC 4256).

Each test plays the server's side of authentication over real TCP (``tests/scripted_auth.py``) and checks
that trissh ends with a clear error within bounds, never hangs, allocates without limit or answers nonsense.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
from hostile_server import connected, scripted
from scripted_auth import Listening, ScriptedLink

import trissh
from trissh import _messages as msg
from trissh._auth.exchange import MAX_BANNER_BYTES, MAX_BANNERS
from trissh._auth.methods.kbdint import MAX_PROMPTS, MAX_ROUNDS
from trissh._wire import Reader, boolean, byte, name_list, string, uint32

Script = Callable[[ScriptedLink], Awaitable[None]]


async def login(where: Listening, **kwargs: Any) -> trissh.SSHConnection:
    async with connected(where, **kwargs) as conn:
        return conn


def failure(*methods: str, partial: bool = False) -> bytes:
    return byte(msg.USERAUTH_FAILURE) + name_list(methods) + boolean(partial)


def banner(text: str) -> bytes:
    return byte(msg.USERAUTH_BANNER) + string(text) + string("")


def info_request(prompts: list[tuple[str, bool]], name: str = "", instructions: str = "") -> bytes:
    body = b"".join(string(text) + boolean(echo) for text, echo in prompts)
    return (
        byte(msg.USERAUTH_INFO_REQUEST)
        + string(name)
        + string(instructions)
        + string("")
        + uint32(len(prompts))
        + body
    )


def method_of(request: bytes) -> str:
    reader = Reader(request, "USERAUTH_REQUEST")
    assert reader.byte() == msg.USERAUTH_REQUEST
    reader.string()
    reader.string()
    return reader.ascii()


async def test_endless_banners_end_with_a_clear_error() -> None:
    """RFC 4252 §5.4 allows banners before success; a server that never stops sending them is cut off."""
    sent = 0

    async def script(link: ScriptedLink) -> None:
        nonlocal sent
        await link.receive()  # none
        while True:
            await link.send(banner("hello\n"))
            sent += 1

    with trio.fail_after(20):
        async with scripted(script) as where:
            with pytest.raises(trissh.ProtocolError, match="banners"):
                await login(where)
    assert sent > MAX_BANNERS


@pytest.mark.parametrize("count", [MAX_BANNERS, MAX_BANNERS + 1])
async def test_banners_up_to_the_limit_are_kept_and_one_more_is_refused(count: int) -> None:
    """MAX_BANNERS is the most kept: that many and success logs in, one more is a ProtocolError naming it."""

    async def script(link: ScriptedLink) -> None:
        await link.receive()
        await link.send(*[banner(f"{i}\n") for i in range(count)], byte(msg.USERAUTH_SUCCESS))
        await link.receive()

    with trio.fail_after(20):
        async with scripted(script) as where:
            if count > MAX_BANNERS:
                with pytest.raises(trissh.ProtocolError, match="MAX_BANNERS"):
                    await login(where)
            else:
                conn = await login(where)
                assert conn.auth.banners == [f"{i}\n" for i in range(count)]


async def test_banner_bytes_up_to_the_limit_are_kept_and_one_more_is_refused() -> None:
    """MAX_BANNER_BYTES counts the text of all banners: exactly that many log in, one byte more is refused."""
    sizes = [MAX_BANNER_BYTES // 2, MAX_BANNER_BYTES - MAX_BANNER_BYTES // 2]
    for extra in (0, 1):

        async def script(link: ScriptedLink, extra: int = extra) -> None:
            await link.receive()
            await link.send(*[banner("x" * size) for size in sizes[:-1]], banner("y" * (sizes[-1] + extra)))
            await link.send(byte(msg.USERAUTH_SUCCESS))
            await link.receive()

        with trio.fail_after(20):
            async with scripted(script) as where:
                if extra:
                    with pytest.raises(trissh.ProtocolError, match="MAX_BANNER_BYTES"):
                        await login(where)
                else:
                    conn = await login(where)
                    assert sum(map(len, conn.auth.banners)) == MAX_BANNER_BYTES


async def test_an_undecodable_banner_is_shown_with_replacements_not_refused() -> None:
    """RFC 4252 §5.4 banners are UTF-8, but a banner is for display: bad bytes become U+FFFD."""
    seen: list[str] = []

    async def on_banner(text: str) -> None:
        seen.append(text)

    async def script(link: ScriptedLink) -> None:
        await link.receive()
        await link.send(
            byte(msg.USERAUTH_BANNER) + string(b"caf\xe9\n") + string(""), byte(msg.USERAUTH_SUCCESS)
        )
        await link.receive()

    with trio.fail_after(20):
        async with scripted(script) as where:
            conn = await login(where, banner_handler=on_banner)
    assert seen == conn.auth.banners == ["caf\ufffd\n"]


async def test_banners_reach_the_callback_and_the_result() -> None:
    seen: list[str] = []

    async def on_banner(text: str) -> None:
        seen.append(text)

    async def script(link: ScriptedLink) -> None:
        await link.receive()
        await link.send(banner("Authorised users only\n"), byte(msg.USERAUTH_SUCCESS))
        await link.receive()

    with trio.fail_after(20):
        async with scripted(script) as where:
            conn = await login(where, banner_handler=on_banner)
    assert seen == ["Authorised users only\n"]
    assert conn.auth.banners == seen
    assert conn.auth.method == "none"


async def test_thousands_of_prompts_are_refused() -> None:
    asked = 0

    async def handler(name: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        nonlocal asked
        asked += 1
        return [""] * len(prompts)

    async def script(link: ScriptedLink) -> None:
        await link.receive()
        await link.send(failure("keyboard-interactive"))
        assert method_of(await link.receive()) == "keyboard-interactive"
        await link.send(info_request([("x", False)] * 5000))
        await link.receive()

    with trio.fail_after(20):
        async with scripted(script) as where:
            with pytest.raises(trissh.ProtocolError, match=f"5000 prompts \\(at most {MAX_PROMPTS}\\)"):
                await login(where, kbdint_handler=handler)
    assert asked == 0


async def test_huge_prompts_are_refused() -> None:
    async def handler(name: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        raise AssertionError("never asked")

    async def script(link: ScriptedLink) -> None:
        await link.receive()
        await link.send(failure("keyboard-interactive"))
        await link.receive()
        await link.send(info_request([("P" * 30000, False)] * 4))
        await link.receive()

    with trio.fail_after(20):
        async with scripted(script) as where:
            with pytest.raises(trissh.ProtocolError, match="characters of prompts"):
                await login(where, kbdint_handler=handler)


async def test_endless_prompt_rounds_are_cut_off() -> None:
    rounds = 0

    async def handler(name: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        return ["answer"]

    async def script(link: ScriptedLink) -> None:
        nonlocal rounds
        await link.receive()
        await link.send(failure("keyboard-interactive"))
        await link.receive()
        while True:
            await link.send(info_request([("Code: ", True)]))
            response = await link.receive()
            if not response:
                return
            assert response[0] == msg.USERAUTH_INFO_RESPONSE
            rounds += 1

    with trio.fail_after(20):
        async with scripted(script) as where:
            with pytest.raises(trissh.ProtocolError, match=f"over {MAX_ROUNDS} rounds"):
                await login(where, kbdint_handler=handler)
    assert rounds == MAX_ROUNDS


async def test_kbdint_answers_go_back_in_order_and_zero_prompt_rounds_get_empty_answers() -> None:
    """RFC 4256 §3.4: one response per prompt, in order; PAM's informational rounds have none."""
    responses: list[list[str]] = []

    async def handler(name: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        assert (name, instructions) == ("Two factors", "Answer both")
        return [f"{text.strip()}-{'shown' if echo else 'hidden'}" for text, echo in prompts]

    async def script(link: ScriptedLink) -> None:
        await link.receive()
        await link.send(failure("keyboard-interactive"))
        await link.receive()
        for request in (
            info_request([("pin", False), ("code", True)], "Two factors", "Answer both"),
            info_request([], "Two factors", "Answer both"),
        ):
            await link.send(request)
            reader = Reader(await link.receive(), "INFO_RESPONSE")
            assert reader.byte() == msg.USERAUTH_INFO_RESPONSE
            responses.append([reader.text() for _ in range(reader.uint32())])
            reader.check_end()
        await link.send(byte(msg.USERAUTH_SUCCESS))
        await link.receive()

    with trio.fail_after(20):
        async with scripted(script) as where:
            conn = await login(where, kbdint_handler=handler)
    assert responses == [["pin-hidden", "code-shown"], []]
    assert conn.auth.method == "keyboard-interactive"


async def test_a_pk_ok_for_another_key_is_refused(sshd: Any) -> None:
    """RFC 4252 §7: PK_OK repeats the algorithm and blob of the query; anything else is a protocol error."""

    async def script(link: ScriptedLink) -> None:
        await link.receive()
        await link.send(failure("publickey"))
        await link.receive()
        await link.send(byte(msg.USERAUTH_PK_OK) + string("ssh-ed25519") + string(b"another key"))
        await link.receive()

    with trio.fail_after(20):
        async with scripted(script) as where:
            with pytest.raises(trissh.ProtocolError, match="PK_OK names another key"):
                await login(where, client_keys=[sshd.client_key])


async def test_a_password_change_request_without_a_handler_is_permission_denied() -> None:
    async def script(link: ScriptedLink) -> None:
        await link.receive()
        await link.send(failure("password"))
        await link.receive()
        await link.send(byte(msg.USERAUTH_PASSWD_CHANGEREQ) + string("Password expired") + string(""))
        await link.receive()

    with trio.fail_after(20):
        async with scripted(script) as where:
            with pytest.raises(
                trissh.PermissionDenied, match=r"requires a new password.*password_change_handler"
            ):
                await login(where, password="old")


async def test_the_loop_does_not_offer_methods_the_server_does_not_list() -> None:
    """RFC 4252 §5.1: only methods in the last USERAUTH_FAILURE may continue."""
    methods: list[str] = []

    async def script(link: ScriptedLink) -> None:
        methods.append(method_of(await link.receive()))
        await link.send(failure("hostbased"))
        request = await link.receive()
        if request:
            methods.append(method_of(request))

    with trio.fail_after(20):
        async with scripted(script) as where:
            with pytest.raises(trissh.PermissionDenied, match="the server allows: hostbased"):
                await login(where, password="secret")
    assert methods == ["none"]
