"""The server's global requests (RFC 4254 §4): refused, and ``hostkeys-00@openssh.com`` recorded."""

from __future__ import annotations

import logging

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from test_agent_forwarding import RecordingTransport
from test_integration import connect

import trissh
from trissh import _messages as msg
from trissh._algorithms.hostkeys import parse_openssh_public_key, public_key_from_crypto
from trissh._channels.global_requests import HOSTKEYS_REQUEST, MAX_SERVER_HOST_KEYS
from trissh._channels.mux import ChannelMux
from trissh._wire import boolean, byte, string, uint32
from trissh.testing import SSHServer

FAILURE = byte(msg.REQUEST_FAILURE)


def global_request(name: str, want_reply: bool, data: bytes = b"") -> bytes:
    return byte(msg.GLOBAL_REQUEST) + string(name) + boolean(want_reply) + data


def new_key() -> trissh.PublicKey:
    return public_key_from_crypto(ed25519.Ed25519PrivateKey.generate().public_key())


def fed(*packets: bytes) -> tuple[ChannelMux, RecordingTransport]:
    transport = RecordingTransport()
    mux = ChannelMux(transport)  # type: ignore[arg-type]
    for seq, packet in enumerate(packets):
        mux.handle_packet(seq, packet)
    return mux, transport


@pytest.mark.parametrize("name", ["no-such-request@example.com", "keepalive@openssh.com", "tcpip-forward"])
def test_request_wanting_a_reply_is_refused(name: str) -> None:
    """RFC 4254 §4: a request we do not grant, with want_reply, gets REQUEST_FAILURE (exactly one)."""
    mux, transport = fed(global_request(name, True, string("data") + uint32(7)))
    assert transport.sent == [FAILURE]
    assert mux.server_host_keys == ()


def test_request_without_reply_gets_no_answer() -> None:
    _, transport = fed(global_request("no-such-request@example.com", False))
    assert transport.sent == []


def test_hostkeys_recorded_skipping_bad_ones(caplog: pytest.LogCaptureFixture) -> None:
    """PROTOCOL §2.5: the keys are parsed in order; malformed, unsupported and repeated blobs are
    skipped with a log line, and no reply is sent (want_reply is false)."""
    first, second = new_key(), public_key_from_crypto(ec.generate_private_key(ec.SECP256R1()).public_key())
    blobs = [
        first.blob,
        b"garbage",  # no valid framing inside
        string("ssh-dss") + string("p"),  # unsupported type
        first.blob,  # repeated
        first.blob[:-1],  # truncated key
        second.blob,
    ]
    with caplog.at_level(logging.INFO, logger="trissh.channel"):
        mux, transport = fed(global_request(HOSTKEYS_REQUEST, False, b"".join(map(string, blobs))))
    assert mux.server_host_keys == (first, second)
    assert transport.sent == []
    assert sum("skipping" in record.getMessage() for record in caplog.records) == 4


def test_hostkeys_with_want_reply_is_refused_but_recorded() -> None:
    """We prove nothing and promise nothing: a reply, if wanted, is REQUEST_FAILURE."""
    key = new_key()
    mux, transport = fed(global_request(HOSTKEYS_REQUEST, True, string(key.blob)))
    assert mux.server_host_keys == (key,)
    assert transport.sent == [FAILURE]


def test_hostkeys_bounded_and_broken_framing_keeps_what_came_before() -> None:
    keys = [new_key() for _ in range(MAX_SERVER_HOST_KEYS + 3)]
    mux, _ = fed(global_request(HOSTKEYS_REQUEST, False, b"".join(string(k.blob) for k in keys)))
    assert mux.server_host_keys == tuple(keys[:MAX_SERVER_HOST_KEYS])
    # A string length past the end: the keys before it stay, the connection is not broken.
    truncated = string(keys[0].blob) + uint32(1000) + b"short"
    mux, transport = fed(global_request(HOSTKEYS_REQUEST, False, truncated))
    assert mux.server_host_keys == (keys[0],)
    assert transport.sent == []


def test_a_later_announcement_replaces_the_first() -> None:
    one, two = new_key(), new_key()
    mux, _ = fed(
        global_request(HOSTKEYS_REQUEST, False, string(one.blob)),
        global_request(HOSTKEYS_REQUEST, False, string(two.blob)),
    )
    assert mux.server_host_keys == (two,)


async def test_sshd_announces_all_its_host_keys(sshd: SSHServer) -> None:
    """sshd sends hostkeys-00 after authentication: every host key it has, none of them trusted
    (known_hosts is not written), and the connection goes on working."""
    expected = {
        parse_openssh_public_key(line.split(None, 1)[1]) for line in sshd.known_hosts.read_text().splitlines()
    }
    before = sshd.known_hosts.read_text()
    with trio.fail_after(20):
        async with connect(sshd) as conn:
            await conn.run("true")  # the announcement comes before the session's replies
            assert set(conn.server_host_keys) == expected
            assert len(conn.server_host_keys) == len(expected) == 5
            assert conn.host_key in conn.server_host_keys
            assert (await conn.run("echo ok")).stdout == b"ok\n"
    assert sshd.known_hosts.read_text() == before
