"""The Trio driver's packet routing, without a server (white-box: packets handed to the dispatcher)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trissh._driver import SSHClientTransport
from trissh._errors import ProtocolError
from trissh._transport.events import PacketReceived
from trissh._transport.negotiate import AlgorithmPreferences
from trissh._transport.state import TransportState
from trissh._wire import boolean, byte, string

USERAUTH_SUCCESS = byte(52)
HOSTKEYS_REQUEST = byte(80) + string("hostkeys-00@openssh.com") + boolean(False)


def _transport() -> SSHClientTransport:
    client, _server = trio.testing.memory_stream_pair()
    prefs = AlgorithmPreferences(
        kex=["curve25519-sha256"], host_key=["ssh-ed25519"], ciphers=["aes128-gcm@openssh.com"], macs=[]
    )
    return SSHClientTransport(client, TransportState(prefs))


async def test_connection_messages_right_after_auth_success_reach_the_handler() -> None:
    """sshd sends hostkeys-00 right after USERAUTH_SUCCESS: it must not be taken for a message
    before authentication (CVE-2023-46446 check), and must reach the connection layer."""
    transport = _transport()
    await transport._dispatch(PacketReceived(5, USERAUTH_SUCCESS))
    await transport._dispatch(PacketReceived(6, HOSTKEYS_REQUEST))
    assert await transport.receive_packet() == USERAUTH_SUCCESS
    got: list[tuple[int, bytes]] = []
    transport.set_packet_handler(lambda seq, payload: got.append((seq, bytes(payload))))
    assert got == [(6, HOSTKEYS_REQUEST)]


async def test_connection_message_before_auth_success_is_refused() -> None:
    """CVE-2023-46446: connection-layer messages before USERAUTH_SUCCESS end the connection."""
    transport = _transport()
    with pytest.raises(ProtocolError, match="before authentication"):
        await transport._dispatch(PacketReceived(5, HOSTKEYS_REQUEST))
