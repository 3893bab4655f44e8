"""What trissh logs, through ``logging.getLogger("trissh")`` and its children.

INFO: one line per connection event, in order. DEBUG: a line per packet (``trissh.packets``), decided
once per connection, so that with DEBUG off the packet loop never formats anything. Never a secret:
not the password of a password login, nor a client key's bytes, nor its passphrase.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from cryptography.hazmat.primitives import serialization
from test_integration import connect

import trissh
import trissh._transport.packets as packets
from trissh.testing import ENCRYPTED_KEY_PASSPHRASE, PasswordUser, SSHServer, password_user, start_sshd


def _lines(caplog: pytest.LogCaptureFixture, where: str, level: int = logging.INFO) -> list[str]:
    """This connection's messages at ``level`` and above (other tests' connections may log too)."""
    return [
        f"{r.name} {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= level and r.name.startswith("trissh") and where in r.getMessage()
    ]


def _texts(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Everything each record could show: its formatted message, its raw message and arguments, and
    its exception text."""
    formatter = logging.Formatter("%(name)s %(message)s")
    shown = []
    for record in caplog.records:
        shown += [formatter.format(record), str(record.msg), repr(record.args), record.exc_text or ""]
    return shown


async def test_info_shows_each_connection_event_once_in_order(
    sshd: SSHServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trissh")
    where = f"{sshd.host}:{sshd.port}"
    with trio.fail_after(30):
        async with connect(sshd, config=None) as conn:
            await conn.run("true")
            fingerprint, key_type = conn.host_key.fingerprint, conn.host_key.key_type
            negotiated = conn.negotiated
    lines = _lines(caplog, f"{sshd.port}")
    expected = [
        f"trissh.connection connecting to {where}",
        f"trissh.connection connected to {where}",
        f"trissh.transport {where}: server version 'SSH-2.0-OpenSSH",
        f"trissh.host_key [{sshd.host}]:{sshd.port}: host key {key_type} {fingerprint} accepted",
        f"trissh.transport {where}: key exchange done: kex {negotiated.kex}, host key {negotiated.host_key} "
        f"{fingerprint}, out {negotiated.client_to_server.cipher}",
        f"trissh.auth authenticated to {where} as '{sshd.username}' (publickey)",
        f"trissh.connection connection to {where} closed (",
    ]
    assert len(lines) == len(expected), lines
    for line, start in zip(lines, expected, strict=True):
        assert line.startswith(start), (line, start)


async def test_info_says_how_a_connection_gets_there(
    sshd: SSHServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trissh")
    where = f"{sshd.host}:{sshd.port}"
    with trio.fail_after(30):
        async with connect(sshd, config=None) as jump, connect(sshd, config=None, tunnel=jump):
            pass
    lines = _lines(caplog, where)
    assert f"trissh.connection connecting to {where} via {where}" in lines
    # Through a tunnel there is no TCP address of its own to show.
    assert lines.count(f"trissh.connection connected to {where}") == 2
    assert sum(line.startswith(f"trissh.connection connection to {where} closed") for line in lines) == 2


async def test_info_shows_a_rekey_and_who_ended_the_connection(
    sshd: SSHServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trissh")
    with trio.fail_after(30):
        async with connect(sshd, config=None) as conn:
            await conn.rekey()
            with pytest.raises((trissh.ConnectionLost, trissh.DisconnectError)):
                # The server ends the connection: sshd's session dies with the connection's shell.
                await conn.run("kill -HUP $PPID; sleep 5")
    lines = _lines(caplog, f"{sshd.port}")
    assert sum("rekey done: kex" in line for line in lines) == 1
    assert lines[-1].startswith(f"trissh.connection connection to {sshd.host}:{sshd.port} ended: ")


async def test_debug_logs_each_packet_by_type_length_and_channel(
    sshd: SSHServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trissh")
    with trio.fail_after(30):
        async with connect(sshd, config=None) as conn:
            await conn.run("echo hello")
    lines = [r.getMessage() for r in caplog.records if r.name == "trissh.packets"]
    where = f"{sshd.host}:{sshd.port}: "
    assert all(line.startswith(where) for line in lines)
    assert lines[0] == f"{where}sent #0 KEXINIT (20), {lines[0].split(', ')[1]}"
    for pattern in [
        r"received #0 KEXINIT \(20\), \d+ bytes",
        r"sent #2 NEWKEYS \(21\), 1 bytes",
        r"received #\d+ USERAUTH_SUCCESS \(52\), 1 bytes",
        r"sent #\d+ CHANNEL_OPEN \(90\), \d+ bytes, 'session'",
        r"sent #\d+ CHANNEL_REQUEST \(98\), \d+ bytes, their channel \d+, 'exec'",
        r"received #\d+ CHANNEL_WINDOW_ADJUST \(93\), 9 bytes, our channel 0, \+\d+ window",
        r"received #\d+ CHANNEL_DATA \(94\), 15 bytes, our channel 0",  # header 9 + "hello\n"
        r"received #\d+ CHANNEL_EOF \(96\), 5 bytes, our channel 0",
        r"received #\d+ CHANNEL_REQUEST \(98\), \d+ bytes, our channel 0, 'exit-status'",
        r"sent #\d+ CHANNEL_CLOSE \(97\), 5 bytes, their channel \d+",
        r"sent #\d+ DISCONNECT \(1\), \d+ bytes",
    ]:
        assert any(re.fullmatch(where + pattern, line) for line in lines), pattern


async def test_without_debug_the_packet_loop_formats_nothing(
    sshd: SSHServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DEBUG off: one boolean test per packet, decided when the connection starts, and no call."""

    def never(*args: Any) -> None:
        raise AssertionError("a packet was logged with DEBUG off")

    monkeypatch.setattr(packets, "_log_packet", never)
    caplog.set_level(logging.INFO, logger="trissh")
    with trio.fail_after(30):
        async with connect(sshd, config=None) as conn:
            assert not conn.transport.state._writer.debug and not conn.transport.state._reader.debug
            await conn.run("echo hello")
            # Turned on later: this connection keeps its choice (a later one makes its own).
            caplog.set_level(logging.DEBUG, logger="trissh")
            await conn.run("echo again")
    assert not [r for r in caplog.records if r.name == "trissh.packets"]


def _key_secrets(path: os.PathLike[str], passphrase: str | None) -> list[str]:
    """A private key as text that could leak: its file's base64 lines, its raw bytes in the usual forms."""
    with open(path) as file:
        text = file.read()
    lines = [line for line in text.splitlines() if line and "-----" not in line]
    key = trissh.read_private_key(path, passphrase)
    raw = key.crypto_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return [*lines, raw.hex(), base64.b64encode(raw).decode(), repr(raw)[2:-1], str(list(raw))[1:-1]]


async def test_debug_shows_neither_the_key_nor_its_passphrase(
    sshd: SSHServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="trissh")
    path = sshd.client_keys["ed25519-encrypted"]
    with trio.fail_after(30):
        async with connect(
            sshd, client_keys=[path], passphrase=ENCRYPTED_KEY_PASSPHRASE, config=None
        ) as conn:
            assert conn.auth.method == "publickey"
            await conn.run("true")
    # The test keys' comments ("trissh-test user_...", public) happen to start with the passphrase.
    fields = [pub.read_text().split(maxsplit=2) for pub in sshd.directory.glob("*.pub")]
    comments = [parts[2].strip() for parts in fields if len(parts) == 3 and parts[2].strip()]
    texts = _texts(caplog)
    for comment in comments:
        texts = [text.replace(comment, "<comment>") for text in texts]
    assert any("USERAUTH_SUCCESS" in text for text in texts)  # DEBUG was on
    for secret in [ENCRYPTED_KEY_PASSPHRASE, *_key_secrets(path, ENCRYPTED_KEY_PASSPHRASE)]:
        assert not [text for text in texts if secret in text], secret


@pytest.fixture(scope="module")
def password_login() -> Iterator[tuple[SSHServer, PasswordUser]]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create an account with a password (trissh.testing.password_user)")
    with password_user() as account, start_sshd(extra_config=["PasswordAuthentication yes"]) as server:
        yield server, account


async def test_debug_never_shows_the_password(
    password_login: tuple[SSHServer, PasswordUser], caplog: pytest.LogCaptureFixture
) -> None:
    server, account = password_login
    caplog.set_level(logging.DEBUG, logger="trissh")
    with trio.fail_after(30):
        async with connect(
            server, username=account.name, password=account.password, client_keys=[], config=None
        ) as conn:
            assert conn.auth.method == "password"
            await conn.run("true")
    texts = _texts(caplog)
    assert any(
        f"authenticated to {server.host}:{server.port} as '{account.name}' (password)" in t for t in texts
    )
    assert not [text for text in texts if account.password in text]
