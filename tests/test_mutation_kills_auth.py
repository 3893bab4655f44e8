"""Properties of the authentication loop that the mutation check found untested (docs/mutation.md).

The modules are ``trissh._auth.userauth`` (the loop, its final error, ``preferred_auth``) and
``trissh._auth.exchange`` (one request and its reply, banners). Everything here is sans-IO: a fake
transport hands the loop the server's packets from a list and records what the client sent, so each test
states exactly which messages go each way and which error text the user reads.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import pytest
import trio

from trissh import _messages as msg
from trissh._auth.exchange import MAX_BANNER_BYTES, AuthExchange, Failure, MethodMessage, Success
from trissh._auth.methods import DEFAULT_PREFERRED_AUTH, AuthSettings
from trissh._auth.userauth import AuthResult, authenticate, check_preferred_auth
from trissh._errors import KeyImportError, PermissionDenied, ProtocolError
from trissh._wire import Reader, boolean, byte, name_list, string, uint32


class FakeTransport:
    """What authenticate() uses of a transport; the server's packets come from a list."""

    session_id = b"\x42" * 32
    server_sig_algs = None
    extensions: dict[str, bytes] = {}  # noqa: RUF012

    def __init__(self, replies: Iterable[bytes]) -> None:
        self._replies = list(replies)
        self.sent: list[bytes] = []
        self.services: list[str] = []
        self.authenticated = False

    async def request_service(self, name: str) -> None:
        await trio.lowlevel.checkpoint()
        self.services.append(name)

    async def send_packet(self, payload: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.sent.append(payload)

    async def receive_packet(self) -> bytes:
        await trio.lowlevel.checkpoint()
        assert self._replies, "the client waited for a reply the script does not have"
        return self._replies.pop(0)

    def methods_sent(self) -> list[str]:
        """The method name of every USERAUTH_REQUEST sent, in order."""
        names = []
        for payload in self.sent:
            reader = Reader(payload, "request")
            if reader.byte() != msg.USERAUTH_REQUEST:
                continue
            reader.string()
            reader.string()
            names.append(reader.ascii())
        return names


def failure(*methods: str, partial: bool = False) -> bytes:
    return byte(msg.USERAUTH_FAILURE) + name_list(methods) + boolean(partial)


SUCCESS = byte(msg.USERAUTH_SUCCESS)
NO_PROMPTS = byte(msg.USERAUTH_INFO_REQUEST) + string("") + string("") + string("") + uint32(0)


async def _no_answers(name: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
    await trio.lowlevel.checkpoint()
    return []


async def run_auth(
    replies: Iterable[bytes], settings: AuthSettings, preferred: tuple[str, ...] = DEFAULT_PREFERRED_AUTH
) -> tuple[FakeTransport, AuthResult]:
    transport = FakeTransport(replies)
    with trio.fail_after(5):
        result = await authenticate(transport, settings, preferred)  # type: ignore[arg-type]
    return transport, result


async def denied(
    replies: Iterable[bytes], settings: AuthSettings, preferred: tuple[str, ...] = DEFAULT_PREFERRED_AUTH
) -> PermissionDenied:
    with pytest.raises(PermissionDenied) as caught:
        await run_auth(replies, settings, preferred)
    assert type(caught.value) is PermissionDenied
    return caught.value


# --- check_preferred_auth ----------------------------------------------------------------------------


def test_preferred_auth_none_is_openssh_default_order() -> None:
    assert check_preferred_auth(None) == ("publickey", "keyboard-interactive", "password")


def test_preferred_auth_string_is_split_on_commas_and_trimmed_dropping_empty_items() -> None:
    assert check_preferred_auth(" password , ,publickey,") == ("password", "publickey")
    assert check_preferred_auth("") == ()


def test_preferred_auth_list_is_kept_in_order_as_a_tuple() -> None:
    result = check_preferred_auth(["password", "keyboard-interactive"])
    assert result == ("password", "keyboard-interactive")
    assert type(result) is tuple


def test_unknown_preferred_auth_methods_are_all_named_with_the_supported_ones() -> None:
    with pytest.raises(ValueError) as caught:
        check_preferred_auth("password,hostbased, gssapi-with-mic")
    assert str(caught.value) == (
        "unsupported authentication method(s) hostbased, gssapi-with-mic; "
        "supported: publickey, keyboard-interactive, password"
    )


# --- the exchange: requests and replies ----------------------------------------------------------------


def test_request_payload_is_user_service_method_then_fields() -> None:
    exchange = AuthExchange(FakeTransport([]), "alice")  # type: ignore[arg-type]
    assert exchange.request("password", b"\x00", b"xyz") == (
        byte(msg.USERAUTH_REQUEST)
        + string("alice")
        + string("ssh-connection")
        + string("password")
        + b"\x00xyz"
    )


async def _reply(packet: bytes) -> object:
    exchange = AuthExchange(FakeTransport([packet]), "alice")  # type: ignore[arg-type]
    with trio.fail_after(5):
        return await exchange.reply()


async def test_success_with_trailing_bytes_is_refused() -> None:
    assert await _reply(SUCCESS) == Success()
    with pytest.raises(ProtocolError, match=r"^USERAUTH_SUCCESS has unexpected bytes$"):
        await _reply(SUCCESS + b"\x00")


async def test_failure_is_parsed_and_remembered_and_trailing_bytes_refused() -> None:
    exchange = AuthExchange(FakeTransport([failure("publickey", "password", partial=True)]), "a")  # type: ignore[arg-type]
    assert exchange.methods is None
    assert exchange.partial is False
    reply = await exchange.reply()
    assert reply == Failure(("publickey", "password"), True)
    assert exchange.methods == ("publickey", "password")
    assert exchange.partial is True
    with pytest.raises(ProtocolError, match="USERAUTH_FAILURE"):
        await _reply(failure("password") + b"\x00")


@pytest.mark.parametrize("kind", [60, 61, 79])
async def test_messages_60_to_79_go_to_the_method_whole(kind: int) -> None:
    packet = byte(kind) + b"payload"
    assert await _reply(packet) == MethodMessage(kind, packet)


@pytest.mark.parametrize(
    ("kind", "name"), [(59, "message 59"), (80, "GLOBAL_REQUEST (80)"), (msg.KEXINIT, "KEXINIT (20)")]
)
async def test_other_messages_during_authentication_are_protocol_errors(kind: int, name: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        await _reply(byte(kind) + b"x")
    assert str(caught.value) == f"unexpected {name} during user authentication"


# --- banners -------------------------------------------------------------------------------------------


async def test_banner_bytes_are_counted_across_banners() -> None:
    """Each banner alone is under MAX_BANNER_BYTES; together they are over it."""
    half = "b" * (MAX_BANNER_BYTES // 2)
    packets = [byte(msg.USERAUTH_BANNER) + string(half) + string("")] * 2
    packets.append(byte(msg.USERAUTH_BANNER) + string("x") + string(""))
    exchange = AuthExchange(FakeTransport(packets), "a")  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match=r"MAX_BANNER_BYTES"), trio.fail_after(5):
        await exchange.reply()
    assert exchange.banners == [half, half]


async def test_banner_without_language_tag_is_accepted_logged_and_handed_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []

    async def handler(text: str) -> None:
        await trio.lowlevel.checkpoint()
        seen.append(text)

    packets = [byte(msg.USERAUTH_BANNER) + string("Welcome\r\n"), SUCCESS]
    exchange = AuthExchange(FakeTransport(packets), "a", handler)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="trissh.auth"):
        assert await exchange.reply() == Success()
    assert seen == ["Welcome\r\n"]
    assert exchange.banners == ["Welcome\r\n"]
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("trissh.auth", logging.INFO, "server banner: Welcome")
    ]


# --- the loop -------------------------------------------------------------------------------------------


async def test_none_success_logs_in_with_method_none() -> None:
    transport, result = await run_auth([SUCCESS], AuthSettings("alice"))
    assert transport.services == ["ssh-userauth"]
    assert transport.methods_sent() == ["none"]
    assert transport.authenticated is True
    assert (result.method, result.methods, result.banners) == ("none", ["none"], [])


async def test_banners_collected_by_the_loop_are_in_the_result() -> None:
    banner = byte(msg.USERAUTH_BANNER) + string("hi") + string("")
    _, result = await run_auth([banner, SUCCESS], AuthSettings("alice"))
    assert result.banners == ["hi"]


async def test_a_partial_success_is_listed_before_the_method_that_completes() -> None:
    replies = [
        failure("password", "keyboard-interactive"),
        failure("keyboard-interactive", partial=True),
        NO_PROMPTS,
        SUCCESS,
    ]
    settings = AuthSettings("alice", password="pw", kbdint_handler=_no_answers)
    transport, result = await run_auth(replies, settings, ("password", "keyboard-interactive"))
    assert transport.methods_sent() == ["none", "password", "keyboard-interactive"]
    assert result.method == "keyboard-interactive"
    assert result.methods == ["password", "keyboard-interactive"]
    assert transport.authenticated is True


async def test_a_changed_method_list_without_partial_success_is_not_a_factor_done() -> None:
    replies = [
        failure("password", "keyboard-interactive"),
        failure("keyboard-interactive"),  # the list changed, but nothing succeeded
        NO_PROMPTS,
        SUCCESS,
    ]
    settings = AuthSettings("alice", password="pw", kbdint_handler=_no_answers)
    _, result = await run_auth(replies, settings, ("password", "keyboard-interactive"))
    assert result.methods == ["keyboard-interactive"]


async def test_the_loop_walks_the_preference_order_not_the_servers(caplog: pytest.LogCaptureFixture) -> None:
    replies = [failure("keyboard-interactive", "password"), SUCCESS]
    settings = AuthSettings("alice", password="pw", kbdint_handler=_no_answers)
    with caplog.at_level(logging.DEBUG, logger="trissh.auth"):
        transport, _ = await run_auth(replies, settings, ("password", "keyboard-interactive"))
    assert transport.methods_sent() == ["none", "password"]
    assert "next authentication method: password" in [r.getMessage() for r in caplog.records]


async def test_the_loop_skips_a_preferred_method_it_cannot_try() -> None:
    """No password given: password is skipped although first in the preference and allowed."""
    replies = [failure("password", "keyboard-interactive"), NO_PROMPTS, SUCCESS]
    settings = AuthSettings("alice", kbdint_handler=_no_answers)
    transport, _ = await run_auth(replies, settings, ("password", "keyboard-interactive"))
    assert transport.methods_sent() == ["none", "keyboard-interactive"]


# --- the final error ------------------------------------------------------------------------------------


async def test_denied_with_nothing_to_offer_says_what_is_missing_for_each_allowed_method() -> None:
    error = await denied([failure("publickey", "keyboard-interactive", "password")], AuthSettings("alice"))
    assert str(error) == "\n".join(
        [
            "authentication as 'alice' failed; the server allows: publickey, keyboard-interactive, password",
            "no keys to offer: pass client_keys=[path, ...]",
            "no password given (password=...)",
            "no kbdint_handler or password for keyboard-interactive",
        ]
    )
    assert error.methods == ("publickey", "keyboard-interactive", "password")


async def test_denied_uses_the_callers_hint_for_missing_keys() -> None:
    settings = AuthSettings("bob", no_keys_hint="looked in ~/.ssh/id_ed25519, ~/.ssh/id_rsa")
    error = await denied([failure("publickey")], settings)
    assert str(error) == (
        "authentication as 'bob' failed; the server allows: publickey\n"
        "looked in ~/.ssh/id_ed25519, ~/.ssh/id_rsa"
    )
    assert error.methods == ("publickey",)


async def test_denied_lists_what_was_tried_indented() -> None:
    replies = [failure("password"), failure("password")]
    error = await denied(replies, AuthSettings("carol", password="wrong"))
    assert str(error) == "\n".join(
        ["authentication as 'carol' failed; the server allows: password", "tried:", "  password: refused"]
    )


async def test_denied_when_the_server_allows_nothing() -> None:
    error = await denied([failure()], AuthSettings("dave"))
    assert str(error) == "authentication as 'dave' failed; the server allows: nothing"
    assert error.methods == ()


async def test_denied_names_allowed_methods_left_out_of_preferred_auth_and_no_hint_for_them() -> None:
    """publickey is allowed but not preferred: no "no keys" hint for it, and it is named as left out;
    hostbased is allowed but unknown to trissh: not named."""
    replies = [failure("publickey", "hostbased", "password"), failure("publickey", "hostbased", "password")]
    error = await denied(replies, AuthSettings("erin", password="pw"), ("password",))
    assert str(error) == "\n".join(
        [
            "authentication as 'erin' failed; the server allows: publickey, hostbased, password",
            "tried:",
            "  password: refused",
            "not in preferred_auth: publickey",
        ]
    )


async def test_denied_with_a_password_has_no_kbdint_hint_even_without_a_handler() -> None:
    replies = [failure("keyboard-interactive")]
    error = await denied(replies, AuthSettings("fay", password="pw"), ("password",))
    assert str(error) == "\n".join(
        [
            "authentication as 'fay' failed; the server allows: keyboard-interactive",
            "not in preferred_auth: keyboard-interactive",
        ]
    )


async def test_with_a_kbdint_handler_there_is_no_kbdint_hint() -> None:
    replies = [failure("keyboard-interactive")]
    error = await denied(replies, AuthSettings("gus", kbdint_handler=_no_answers), ("password",))
    assert "kbdint_handler" not in str(error)
    assert "no password given" not in str(error)


async def test_a_key_error_is_raised_instead_of_the_refusal_and_carries_it() -> None:
    key_error = KeyImportError("~/.ssh/id_ed25519: wrong passphrase")
    settings = AuthSettings("hal", key_errors=[key_error, KeyImportError("second")])
    with pytest.raises(KeyImportError) as caught:
        await run_auth([failure("password")], settings)
    assert str(caught.value) == (
        "~/.ssh/id_ed25519: wrong passphrase\n"
        "authentication as 'hal' failed; the server allows: password\n"
        "no password given (password=...)"
    )
    assert caught.value.__cause__ is key_error


async def test_denied_lists_every_allowed_method_left_out_of_preferred_auth_comma_separated() -> None:
    replies = [failure("publickey", "keyboard-interactive", "password")] * 2
    error = await denied(replies, AuthSettings("ian", password="pw"), ("password",))
    assert str(error).splitlines()[-1] == "not in preferred_auth: publickey, keyboard-interactive"
