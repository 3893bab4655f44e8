"""A scripted server that completes the handshake and authentication, then misbehaves as a test says.

Built on :mod:`scripted_auth` (a real key exchange over TCP, then the test's script): the helpers here play
the honest part of a session (accept ``none`` authentication, confirm a session channel, accept its
``exec``) so that a test scripts only the misbehaviour that follows, byte by byte if it likes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Final

import trio
from scripted_auth import Listening, ScriptedLink, serve_scripted

import trissh
from trissh import _messages as msg
from trissh._wire import Reader, boolean, byte, string, uint32

__all__ = [
    "SERVER_CHANNEL",
    "Script",
    "accept_exec",
    "accept_none_auth",
    "channel_data",
    "channel_eof",
    "connected",
    "expect",
    "exit_status",
    "scripted",
]

Script = Callable[[ScriptedLink], Awaitable[None]]

#: The server's own number for the one channel it confirms.
SERVER_CHANNEL: Final = 3


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[Listening]:
    """Serve ``script`` on a loopback port for the block's duration."""
    async with trio.open_nursery() as nursery:
        where: Listening = await nursery.start(serve_scripted, script)
        yield where
        nursery.cancel_scope.cancel()


def connected(where: Listening, **kwargs: Any) -> AbstractAsyncContextManager[trissh.SSHConnection]:
    """``trissh.connect`` to the scripted server, with nothing to authenticate with but ``none``."""
    options: dict[str, Any] = {
        "username": "me",
        "known_hosts": None,
        "client_keys": [],
        "agent_path": None,
        "connect_timeout": 10,
    }
    options.update(kwargs)
    return trissh.connect(where.host, where.port, **options)


async def expect(link: ScriptedLink, kind: int) -> Reader:
    """The client's next packet of type ``kind`` (others skipped), read past its message number."""
    while True:
        payload = await link.receive()
        assert payload, f"the client closed the connection before sending {msg.message_name(kind)}"
        if payload[0] == kind:
            reader = Reader(payload, msg.message_name(kind))
            reader.byte()
            return reader


async def accept_none_auth(link: ScriptedLink) -> None:
    """Let the client in on its first request (RFC 4252 §5.2 ``none``)."""
    await expect(link, msg.USERAUTH_REQUEST)
    await link.send(byte(msg.USERAUTH_SUCCESS))


async def accept_exec(link: ScriptedLink, window: int = 1 << 20) -> tuple[int, str]:
    """Confirm the client's session channel (granting ``window`` bytes) and accept its ``exec``:
    ``(client's channel, command)``."""
    opening = await expect(link, msg.CHANNEL_OPEN)
    assert opening.ascii() == "session"
    client_channel = opening.uint32()
    await link.send(
        byte(msg.CHANNEL_OPEN_CONFIRMATION)
        + uint32(client_channel)
        + uint32(SERVER_CHANNEL)
        + uint32(window)
        + uint32(32768)
    )
    while True:
        request = await expect(link, msg.CHANNEL_REQUEST)
        assert request.uint32() == SERVER_CHANNEL
        name = request.ascii()
        want_reply = request.boolean()
        if name == "exec":
            command = request.text()
            await link.send(byte(msg.CHANNEL_SUCCESS) + uint32(client_channel))
            return client_channel, command
        if want_reply:
            await link.send(byte(msg.CHANNEL_FAILURE) + uint32(client_channel))


def channel_data(channel: int, data: bytes) -> bytes:
    return byte(msg.CHANNEL_DATA) + uint32(channel) + string(data)


def channel_eof(channel: int) -> bytes:
    return byte(msg.CHANNEL_EOF) + uint32(channel)


def exit_status(channel: int, status: int) -> bytes:
    """RFC 4254 §6.10 ``exit-status`` (no reply wanted)."""
    return (
        byte(msg.CHANNEL_REQUEST) + uint32(channel) + string("exit-status") + boolean(False) + uint32(status)
    )
