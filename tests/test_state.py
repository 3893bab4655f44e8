"""The sans-IO transport state machine (trissh._transport.state), fed by a scripted server.

Every test wires a :class:`TransportState` to a :class:`ScriptedServer` (see
``tests/sshserver_script.py``): the server's half of the key exchange, key
derivation and strict KEX are written there independently of trissh's client
code, so a handshake that completes here agrees with the specifications, not
merely with itself. Randomness is seeded on both sides, so every run sees the
same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from sshserver_script import ClientPacket, ScriptedServer, kexinit_lists

from trissh import _messages as msg
from trissh._algorithms import ciphers
from trissh._errors import DisconnectError, DisconnectReason, HostKeyNotVerifiable, ProtocolError
from trissh._transport.events import NEED_DATA, Event, HostKeyReceived, KexComplete, PacketReceived
from trissh._transport.negotiate import AlgorithmPreferences
from trissh._transport.state import KexState, Phase, TransportState, allowed_during_kex
from trissh._wire import boolean, byte, string, uint32

Chunker = Callable[[bytes], Iterator[bytes]]

SERVICE_ACCEPT = byte(msg.SERVICE_ACCEPT) + string("ssh-userauth")
IGNORE = byte(msg.IGNORE) + string(b"padding")
DEBUG = byte(msg.DEBUG) + boolean(False) + string("hello") + string("")
USERAUTH_SUCCESS = byte(msg.USERAUTH_SUCCESS)
CHANNEL_DATA = byte(msg.CHANNEL_DATA) + uint32(0) + string(b"data")


def whole(data: bytes) -> Iterator[bytes]:
    yield data


def bytewise(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


def random_chunks(seed: int) -> Chunker:
    def chunks(data: bytes) -> Iterator[bytes]:
        rng = random.Random(seed)
        pos = 0
        while pos < len(data):
            size = rng.randint(1, 64)
            yield data[pos : pos + size]
            pos += size

    return chunks


CHUNKERS = {
    "whole": whole,
    "bytewise": bytewise,
    "random-1": random_chunks(1),
    "random-2": random_chunks(2),
}

# (client cipher list, client MAC list): the three packet protection families.
CIPHER_SUITES = {
    "chacha20-poly1305": ("chacha20-poly1305@openssh.com", "hmac-sha2-256"),
    "aes128-gcm": ("aes128-gcm@openssh.com", "hmac-sha2-256"),
    "aes128-ctr+hmac-sha2-256": ("aes128-ctr", "hmac-sha2-256"),
    "aes128-ctr+hmac-sha2-256-etm": ("aes128-ctr", "hmac-sha2-256-etm@openssh.com"),
}
# Ciphers whose nonce *is* the sequence number; AES-GCM counts its own nonce,
# so a wrong sequence number alone does not show there.
# How a packet opened with the wrong sequence number or keystream shows: the tag
# or MAC fails, or (when the length is encrypted) the decrypted length is absurd.
INTEGRITY_FAILURE = r"check failed|exceeds the maximum|not a valid multiple"
SEQ_KEYED_SUITES = ["chacha20-poly1305", "aes128-ctr+hmac-sha2-256", "aes128-ctr+hmac-sha2-256-etm"]


class Link:
    """A TransportState wired to a ScriptedServer (h11's ConnectionPair, with one side scripted).

    Args:
        suite: a key of CIPHER_SUITES, the client's only cipher and MAC.
        server: the scripted server (a default strict one if None).
        accept: accept the host key as soon as HostKeyReceived comes out.
        state_args: passed to TransportState (rekey_bytes=...).
    """

    def __init__(
        self,
        suite: str = "chacha20-poly1305",
        *,
        server: ScriptedServer | None = None,
        accept: bool = True,
        kex: tuple[str, ...] = ("curve25519-sha256",),
        seed: int = 7,
        **state_args: Any,
    ) -> None:
        cipher, mac = CIPHER_SUITES[suite]
        self.server = server if server is not None else ScriptedServer(seed=seed)
        prefs = AlgorithmPreferences(kex=kex, host_key=["ssh-ed25519"], ciphers=[cipher], macs=[mac])
        self.state = TransportState(prefs, random=random.Random(seed + 1).randbytes, **state_args)
        self.accept = accept

    def to_server(self) -> list[ClientPacket]:
        """Everything the client has queued, as the server parses it."""
        return self.server.feed(bytes(self.state.data_to_send()))

    def to_client(self, data: bytes, chunks: Chunker = whole) -> list[Event]:
        """Feed ``data`` in pieces, pulling events after each until NEED_DATA."""
        events: list[Event] = []
        for piece in chunks(data):
            self.state.receive_data(piece)
            while True:
                event = self.state.next_event()
                if event is NEED_DATA:
                    break
                events.append(event)
                if isinstance(event, HostKeyReceived):
                    if not self.accept:
                        return events
                    self.state.accept_host_key()
        return events

    def start(self, chunks: Chunker = whole, **kexinit: Any) -> list[ClientPacket]:
        """Both version lines and KEXINITs; returns the client's answer (its KEX_ECDH_INIT)."""
        self.state.start()
        assert [p.type for p in self.to_server()] == [msg.KEXINIT]
        assert self.to_client(self.server.version() + self.server.kexinit(**kexinit), chunks) == []
        return self.to_server()

    def handshake(
        self, chunks: Chunker = whole, after_newkeys: Sequence[bytes] = (), **kexinit: Any
    ) -> list[Event]:
        """A whole first key exchange; ``after_newkeys`` payloads are sealed into the same flight."""
        init = self.start(chunks, **kexinit)
        assert [p.type for p in init] == [msg.KEX_ECDH_INIT]
        flight = self.server.handshake_reply(init)
        flight += b"".join(self.server.packet(payload) for payload in after_newkeys)
        events = self.to_client(flight, chunks)
        assert [p.type for p in self.to_server()] == [msg.NEWKEYS]
        return events

    def rekey_from_client(self) -> list[Event]:
        """A client-initiated rekey, completed; returns the client's events."""
        assert self.state.start_rekey()
        assert [p.type for p in self.to_server()] == [msg.KEXINIT]
        assert self.to_client(self.server.kexinit()) == []
        init = self.to_server()
        events = self.to_client(self.server.handshake_reply(init))
        assert [p.type for p in self.to_server()] == [msg.NEWKEYS]
        return events


def established(suite: str = "chacha20-poly1305", **kwargs: Any) -> Link:
    link = Link(suite, **kwargs)
    events = link.handshake()
    assert [type(e) for e in events] == [HostKeyReceived, KexComplete]
    return link


# --- the full handshake -----------------------------------------------------------


@pytest.mark.parametrize("chunks", list(CHUNKERS.values()), ids=list(CHUNKERS))
@pytest.mark.parametrize("suite", list(CIPHER_SUITES))
def test_full_handshake(suite: str, chunks: Chunker) -> None:
    """RFC 4253 §7-§8, RFC 8731, RFC 8709: version, KEXINIT, curve25519 ECDH, NEWKEYS, then traffic.

    The server's bytes go in whole, one byte at a time, and in random chunks;
    the flight after ECDH_REPLY carries NEWKEYS and an encrypted packet, so
    the reader must switch keys between buffered packets.
    """
    link = Link(suite)
    state, server = link.state, link.server
    events = link.handshake(chunks, after_newkeys=[SERVICE_ACCEPT])

    assert len(events) == 3
    host_key, done, service = events
    assert isinstance(host_key, HostKeyReceived)
    assert host_key.key.key_type == "ssh-ed25519"
    assert host_key.key.crypto_key.public_bytes_raw() == server.host_key.public_key().public_bytes_raw()
    assert isinstance(done, KexComplete) and done.initial
    assert done.negotiated is state.negotiated
    assert service == PacketReceived(0, SERVICE_ACCEPT)  # strict KEX: seq restarted at NEWKEYS

    cipher, mac = CIPHER_SUITES[suite]
    negotiated = state.negotiated
    assert negotiated is not None
    assert negotiated.kex == "curve25519-sha256"
    assert negotiated.host_key == "ssh-ed25519"
    assert negotiated.client_to_server.cipher == negotiated.server_to_client.cipher == cipher
    expected_mac = None if ciphers.CIPHERS[cipher].aead else mac
    assert negotiated.client_to_server.mac == negotiated.server_to_client.mac == expected_mac
    assert state.session_id == server.session_id  # H computed independently on both sides
    assert state.strict_kex and server.strict_kex and negotiated.strict_kex
    assert state.server_host_key == host_key.key
    assert state.server_version == server.server_version
    assert state.phase is Phase.OPEN and state.kex_state is KexState.IDLE and state.can_send

    request = byte(msg.SERVICE_REQUEST) + string("ssh-userauth")
    state.send(request)
    state.send(CHANNEL_DATA)
    assert link.to_server() == [ClientPacket(0, request), ClientPacket(1, CHANNEL_DATA)]


@pytest.mark.parametrize("chunks", [whole, bytewise], ids=["whole", "bytewise"])
def test_trailing_partial_packet_is_left_for_later(chunks: Chunker) -> None:
    """h11-style: bytes after a complete packet stay buffered until the rest arrives."""
    link = established()
    first = link.server.packet(CHANNEL_DATA)
    second = link.server.packet(USERAUTH_SUCCESS)
    events = link.to_client(first + second[:10], chunks)
    assert events == [PacketReceived(0, CHANNEL_DATA)]
    assert link.state.next_event() is NEED_DATA
    assert link.state.bytes_wanted == len(second) - 10
    assert link.to_client(second[10:], chunks) == [PacketReceived(1, USERAUTH_SUCCESS)]


def test_host_key_verdict_pending_blocks_next_event() -> None:
    """The driver must decide on the host key before any more packets are handled."""
    link = Link(accept=False)
    init = link.start()
    events = link.to_client(link.server.handshake_reply(init))
    assert [type(e) for e in events] == [HostKeyReceived]
    assert link.state.kex_state is KexState.VERIFYING
    with pytest.raises(RuntimeError, match="host key verdict"):
        link.state.next_event()
    assert link.to_server() == []  # no NEWKEYS before the verdict
    link.state.accept_host_key()
    assert [p.type for p in link.to_server()] == [msg.NEWKEYS]
    assert [type(e) for e in link.to_client(b"")] == [KexComplete]
    with pytest.raises(RuntimeError, match="no host key"):
        link.state.accept_host_key()


def test_non_strict_server_sequence_numbers_continue() -> None:
    """RFC 4253 §6.4: without strict KEX, sequence numbers never reset, not even at NEWKEYS."""
    link = Link(server=ScriptedServer(seed=3, strict=False))
    events = link.handshake(after_newkeys=[SERVICE_ACCEPT])
    assert not link.state.strict_kex
    # Server: KEXINIT 0, ECDH_REPLY 1, NEWKEYS 2, SERVICE_ACCEPT 3.
    assert events[-1] == PacketReceived(3, SERVICE_ACCEPT)
    link.state.send(CHANNEL_DATA)
    # Client: KEXINIT 0, ECDH_INIT 1, NEWKEYS 2, CHANNEL_DATA 3.
    assert link.to_server() == [ClientPacket(3, CHANNEL_DATA)]


def test_curve25519_libssh_alias() -> None:
    """RFC 8731 §3: curve25519-sha256@libssh.org is the same method under its older name."""
    link = Link(kex=("curve25519-sha256@libssh.org",))
    link.handshake()
    assert link.state.negotiated is not None
    assert link.state.negotiated.kex == "curve25519-sha256@libssh.org"
    assert link.state.session_id == link.server.session_id


# --- EXT_INFO (RFC 8308) ---------------------------------------------------------------


def test_ext_info_after_first_newkeys_is_recorded() -> None:
    """RFC 8308 §2.4: EXT_INFO as the first packet after the server's first NEWKEYS."""
    server = ScriptedServer(seed=5, ext_info=True)
    link = Link(server=server)
    extensions = {"server-sig-algs": b"ssh-ed25519,rsa-sha2-256", "ping@openssh.com": b"0"}
    events = link.handshake(after_newkeys=[server.ext_info_payload(extensions), SERVICE_ACCEPT])
    assert [type(e) for e in events] == [HostKeyReceived, KexComplete, PacketReceived]
    assert link.state.negotiated is not None and link.state.negotiated.server_ext_info
    assert link.state.extensions == extensions
    assert events[-1] == PacketReceived(1, SERVICE_ACCEPT)


@pytest.mark.parametrize("first", [SERVICE_ACCEPT, IGNORE], ids=["after SERVICE_ACCEPT", "after IGNORE"])
def test_ext_info_as_second_packet_after_newkeys(first: bytes) -> None:
    """RFC 8308 §2.4: EXT_INFO must be the *next* packet after NEWKEYS; later it is a violation."""
    link = established()
    link.to_client(link.server.packet(first))
    with pytest.raises(ProtocolError, match="EXT_INFO"):
        link.to_client(link.server.ext_info({"server-sig-algs": b"ssh-ed25519"}))
    assert link.state.extensions == {}


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "non-strict"])
def test_ext_info_before_newkeys(strict: bool) -> None:
    """RFC 8308 §2.4: EXT_INFO comes after NEWKEYS, never during the key exchange."""
    link = Link(server=ScriptedServer(seed=5, ext_info=True, strict=strict))
    link.start()
    with pytest.raises(ProtocolError, match="EXT_INFO"):
        link.to_client(link.server.ext_info({"server-sig-algs": b"ssh-ed25519"}))


def test_ext_info_after_rekey_newkeys() -> None:
    """RFC 8308 §2.4: only the *first* NEWKEYS may be followed by EXT_INFO."""
    link = established()
    link.rekey_from_client()
    with pytest.raises(ProtocolError, match="EXT_INFO"):
        link.to_client(link.server.ext_info({"server-sig-algs": b"ssh-ed25519"}))


# --- strict KEX (OpenSSH PROTOCOL "kex-strict", CVE-2023-48795) ------------------------


def test_strict_kex_rejects_packet_before_kexinit() -> None:
    """OpenSSH PROTOCOL kex-strict: the server's KEXINIT must be its first packet (CVE-2023-48795)."""
    link = Link()
    link.state.start()
    server = link.server
    with pytest.raises(ProtocolError, match="KEXINIT was packet 1"):
        link.to_client(server.version() + server.packet(IGNORE) + server.kexinit())


def test_non_strict_allows_ignore_before_kexinit() -> None:
    """RFC 4253 §11.2: IGNORE is allowed anywhere when strict KEX is not in use."""
    server = ScriptedServer(seed=9, strict=False)
    link = Link(server=server)
    link.state.start()
    link.to_server()
    assert link.to_client(server.version() + server.packet(IGNORE) + server.packet(DEBUG)) == []
    assert link.to_client(server.kexinit()) == []
    init = link.to_server()
    events = link.to_client(server.packet(IGNORE) + server.handshake_reply(init))
    assert [type(e) for e in events] == [HostKeyReceived, KexComplete]
    assert not link.state.strict_kex


UNEXPECTED_DURING_KEX = {
    "IGNORE": (IGNORE, "IGNORE"),
    "DEBUG": (DEBUG, "DEBUG"),
    "UNIMPLEMENTED": (byte(msg.UNIMPLEMENTED) + uint32(0), "UNIMPLEMENTED"),
    "SERVICE_ACCEPT": (SERVICE_ACCEPT, "SERVICE_ACCEPT"),
    "message 25": (byte(25), "message 25"),
    "USERAUTH_SUCCESS": (USERAUTH_SUCCESS, "USERAUTH_SUCCESS"),
}


@pytest.mark.parametrize("where", ["after KEXINIT", "after ECDH_REPLY"])
@pytest.mark.parametrize("name", list(UNEXPECTED_DURING_KEX))
def test_strict_kex_rejects_non_kex_messages(name: str, where: str) -> None:
    """OpenSSH PROTOCOL kex-strict: during the initial exchange only KEX messages may arrive.

    This is what stops Terrapin's (CVE-2023-48795) sequence-number shifting injection.
    """
    payload, shown = UNEXPECTED_DURING_KEX[name]
    link = Link()
    init = link.start()
    server = link.server
    if where == "after KEXINIT":
        data = server.packet(payload)
    else:
        data = server.ecdh_reply(init[0].payload) + server.packet(payload) + server.newkeys()
    with pytest.raises(ProtocolError, match=f"strict key exchange: unexpected {shown}"):
        link.to_client(data)


def test_terrapin_injection_before_newkeys_is_detected() -> None:
    """CVE-2023-48795: an attacker's IGNORE before NEWKEYS (shifting seq by one) ends the connection."""
    server = ScriptedServer(seed=11, ext_info=True)
    link = Link(server=server)
    init = link.start()
    # The man in the middle's packet is plaintext and not counted by the server.
    injected = ciphers.plain_sealer().seal(0, IGNORE)
    with pytest.raises(ProtocolError, match="unexpected IGNORE"):
        link.to_client(server.ecdh_reply(init[0].payload) + injected + server.newkeys())


@pytest.mark.parametrize("suite", list(CIPHER_SUITES))
def test_terrapin_deletion_after_newkeys_is_detected(suite: str) -> None:
    """CVE-2023-48795: deleting the server's first encrypted packet (its EXT_INFO) breaks the MAC.

    Under strict KEX the client expects the next packet with seq 0 (or the
    next GCM nonce); the server sealed it as its second.
    """
    server = ScriptedServer(seed=13, ext_info=True)
    link = Link(suite, server=server)
    init = link.start()
    flight = server.handshake_reply(init)
    server.ext_info({"server-sig-algs": b"ssh-ed25519"})  # deleted in transit
    with pytest.raises(ProtocolError, match=INTEGRITY_FAILURE):
        link.to_client(flight + server.packet(SERVICE_ACCEPT))
    assert link.state.extensions == {}


def test_terrapin_attack_succeeds_without_strict_kex() -> None:
    """CVE-2023-48795, the attack itself: without strict KEX, inject + delete goes unnoticed.

    This pins that the scripted server models the attack faithfully (and shows
    why strict KEX matters): the EXT_INFO silently disappears.
    """
    server = ScriptedServer(seed=13, ext_info=True, strict=False)
    link = Link(server=server)
    init = link.start()
    injected = ciphers.plain_sealer().seal(0, IGNORE)
    flight = server.ecdh_reply(init[0].payload) + injected + server.newkeys()
    server.ext_info({"server-sig-algs": b"ssh-ed25519"})  # deleted in transit
    events = link.to_client(flight + server.packet(SERVICE_ACCEPT))
    assert [type(e) for e in events] == [HostKeyReceived, KexComplete, PacketReceived]
    assert link.state.extensions == {}


@pytest.mark.parametrize("suite", SEQ_KEYED_SUITES)
def test_strict_server_that_does_not_reset_seq(suite: str) -> None:
    """OpenSSH PROTOCOL kex-strict: seq restarts at 0 after NEWKEYS; a server that keeps counting fails."""
    link = Link(suite)
    link.server.reset_seq_on_newkeys = False
    with pytest.raises(ProtocolError, match=INTEGRITY_FAILURE):
        link.handshake(after_newkeys=[SERVICE_ACCEPT])


@pytest.mark.parametrize("suite", SEQ_KEYED_SUITES)
def test_packet_sealed_with_wrong_seq_fails(suite: str) -> None:
    """RFC 4253 §6.4: the MAC (or chacha20 nonce) covers the implicit sequence number."""
    link = established(suite)
    with pytest.raises(ProtocolError, match=INTEGRITY_FAILURE):
        link.to_client(link.server.packet(SERVICE_ACCEPT, seq=1))


def test_client_resets_its_seq_at_newkeys() -> None:
    """OpenSSH PROTOCOL kex-strict: the client's first packet after its NEWKEYS has seq 0."""
    link = established()
    link.state.send(CHANNEL_DATA)
    assert link.to_server() == [ClientPacket(0, CHANNEL_DATA)]


def test_sequence_number_wrap_during_initial_kex() -> None:
    """OpenSSH PROTOCOL kex-strict: a sequence number that wraps during the initial KEX is fatal.

    Reaching 2**32 packets takes too long for a test, so the reader's counter
    is set near the end (a white-box step).
    """
    server = ScriptedServer(seed=9, strict=False)
    link = Link(server=server)
    link.state.start()
    link.state._reader.seq = 0xFFFFFFFF
    with pytest.raises(ProtocolError, match="wrapped"):
        link.to_client(server.version() + server.packet(IGNORE))


# --- messages out of place -----------------------------------------------------------------


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "non-strict"])
@pytest.mark.parametrize(
    "payload", [USERAUTH_SUCCESS, CHANNEL_DATA], ids=["USERAUTH_SUCCESS", "CHANNEL_DATA"]
)
@pytest.mark.parametrize("where", ["first packet", "after KEXINIT"])
def test_service_message_before_first_newkeys(payload: bytes, strict: bool, where: str) -> None:
    """RFC 4253 §7.1 (and §4.2's "before any keys"): no service messages before the first NEWKEYS."""
    server = ScriptedServer(seed=17, strict=strict)
    link = Link(server=server)
    link.state.start()
    data = server.version() + (b"" if where == "first packet" else server.kexinit())
    with pytest.raises(ProtocolError, match=msg.message_name(payload[0]).split()[0]):
        link.to_client(data + server.packet(payload))


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "non-strict"])
def test_second_kexinit_during_kex(strict: bool) -> None:
    """RFC 4253 §7.1: no further KEXINIT until the exchange in progress has finished."""
    link = Link(server=ScriptedServer(seed=19, strict=strict))
    link.start()
    with pytest.raises(ProtocolError, match="KEXINIT received during key exchange"):
        link.to_client(link.server.kexinit())


def test_second_kexinit_after_ecdh_reply() -> None:
    """RFC 4253 §7.1: a KEXINIT between ECDH_REPLY and NEWKEYS is a violation."""
    link = Link()
    init = link.start()
    reply = link.server.ecdh_reply(init[0].payload)
    with pytest.raises(ProtocolError, match="KEXINIT received during key exchange"):
        link.to_client(reply + link.server.kexinit())


def test_newkeys_before_ecdh_reply() -> None:
    """RFC 4253 §7.3: NEWKEYS ends a finished exchange; before the reply it is out of order."""
    link = Link()
    link.start()
    with pytest.raises(ProtocolError, match="NEWKEYS received out of order"):
        link.to_client(link.server.packet(byte(msg.NEWKEYS)))


def test_newkeys_while_idle() -> None:
    """RFC 4253 §7.3: NEWKEYS outside a key exchange is out of order."""
    link = established()
    with pytest.raises(ProtocolError, match="NEWKEYS received out of order"):
        link.to_client(link.server.packet(byte(msg.NEWKEYS)))


def test_ecdh_reply_when_idle() -> None:
    """RFC 5656 §4: KEX_ECDH_REPLY only answers our KEX_ECDH_INIT."""
    link = established()
    with pytest.raises(ProtocolError, match=r"KEX_ECDH_REPLY.*outside a key exchange"):
        link.to_client(link.server.packet(byte(msg.KEX_ECDH_REPLY) + string(b"x")))


def test_ecdh_reply_before_kexinit() -> None:
    """RFC 4253 §7.1: method messages come after both KEXINITs."""
    link = Link()
    link.state.start()
    reply = byte(msg.KEX_ECDH_REPLY) + string(b"") + string(b"") + string(b"")
    with pytest.raises(ProtocolError, match="KEX_ECDH_REPLY"):
        link.to_client(link.server.version() + link.server.packet(reply))


def test_duplicate_ecdh_reply() -> None:
    """RFC 5656 §4: one KEX_ECDH_REPLY per exchange; a replayed one is refused."""
    link = Link()
    init = link.start()
    reply = link.server.ecdh_reply(init[0].payload)
    with pytest.raises(ProtocolError, match=r"KEX_ECDH_REPLY.*outside a key exchange"):
        link.to_client(reply + reply)  # plaintext: the copy is a valid packet


def test_newkeys_with_trailing_bytes() -> None:
    """RFC 4253 §7.3: NEWKEYS is the single byte 21."""
    link = Link()
    init = link.start()
    with pytest.raises(ProtocolError, match="NEWKEYS has 3 unexpected bytes"):
        link.to_client(link.server.ecdh_reply(init[0].payload) + link.server.packet(b"\x15abc"))


def test_empty_payload() -> None:
    """RFC 4253 §6: every packet carries a message number; an empty payload is malformed."""
    link = established()
    with pytest.raises(ProtocolError, match="empty payload"):
        link.to_client(link.server.packet(b""))


def test_bad_host_key_signature() -> None:
    """RFC 4253 §8: the server's signature over H must verify with K_S."""
    link = Link()
    init = link.start()
    with pytest.raises(HostKeyNotVerifiable, match="does not verify"):
        link.to_client(link.server.ecdh_reply(init[0].payload, corrupt_signature=True))
    assert link.state.session_id is None and link.state.server_host_key is None


def test_host_key_signed_by_another_key() -> None:
    """RFC 4253 §8: the signature must be made by the key the server presented as K_S."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    link = Link()
    init = link.start()
    impostor = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    with pytest.raises(HostKeyNotVerifiable):
        link.to_client(link.server.ecdh_reply(init[0].payload, sign_with=impostor))


def test_unusable_host_key_blob() -> None:
    """RFC 4253 §6.6: a K_S that is not a key of a supported type cannot be verified."""
    link = Link()
    link.start()
    q_s = bytes(range(1, 33))  # any non-degenerate point on curve25519
    reply = byte(msg.KEX_ECDH_REPLY) + string(string("ssh-dss") + string(b"x")) + string(q_s) + string(b"")
    with pytest.raises(HostKeyNotVerifiable, match="cannot be used"):
        link.to_client(link.server.packet(reply))


@pytest.mark.parametrize("q_s", [bytes(32), bytes(31)], ids=["low-order point", "short"])
def test_bad_server_ephemeral_key(q_s: bytes) -> None:
    """RFC 8731 §3: Q_S is 32 bytes, and an all-zero shared secret must be refused (RFC 7748 §6.1)."""
    link = Link()
    link.start()
    k_s = string("ssh-ed25519") + string(link.server.host_key.public_key().public_bytes_raw())
    reply = byte(msg.KEX_ECDH_REPLY) + string(k_s) + string(q_s) + string(b"")
    with pytest.raises(ProtocolError) as info:
        link.to_client(link.server.packet(reply))
    assert info.value.reason == DisconnectReason.KEY_EXCHANGE_FAILED


@pytest.mark.parametrize(
    "override",
    [
        {"kex": ["diffie-hellman-group14-sha256"]},
        {"host_key_algorithms": ["rsa-sha2-512"]},
        {"ciphers": ["aes256-cbc"]},
        {"macs": ["hmac-md5"]},
    ],
    ids=["kex", "host key", "cipher", "mac"],
)
def test_nothing_in_common(override: dict[str, list[str]]) -> None:
    """RFC 4253 §7.1: no common algorithm in a category fails the exchange (KEY_EXCHANGE_FAILED)."""
    link = Link("aes128-ctr+hmac-sha2-256")
    link.state.start()
    with pytest.raises(DisconnectError) as info:
        link.to_client(link.server.version() + link.server.kexinit(**override))
    assert info.value.code == DisconnectReason.KEY_EXCHANGE_FAILED
    assert info.value.local


@pytest.mark.parametrize("when", ["during kex", "after kex"])
@pytest.mark.parametrize("code", [DisconnectReason.BY_APPLICATION, 99], ids=["BY_APPLICATION", "99"])
def test_disconnect_from_server(when: str, code: int) -> None:
    """RFC 4253 §11.1: DISCONNECT carries a reason code and a description."""
    payload = byte(msg.DISCONNECT) + uint32(code) + string("going away") + string("en")
    if when == "during kex":
        link = Link()
        link.start()
    else:
        link = established()
    with pytest.raises(DisconnectError) as info:
        link.to_client(link.server.packet(payload))
    assert info.value.code == code and info.value.reason == "going away" and not info.value.local
    assert link.state.phase is Phase.CLOSED


def test_unimplemented_from_server() -> None:
    """RFC 4253 §11.4: the server did not know one of our packets: the error names its seq."""
    link = established()
    with pytest.raises(ProtocolError, match="packet 7"):
        link.to_client(link.server.packet(byte(msg.UNIMPLEMENTED) + uint32(7)))


@pytest.mark.parametrize("kind", [8, 19, 25, 29])
def test_unknown_transport_message_gets_unimplemented(kind: int) -> None:
    """RFC 4253 §11.4: an unknown message is answered with UNIMPLEMENTED and its sequence number."""
    link = established()
    link.to_client(link.server.packet(IGNORE))  # so the unknown one is not seq 0
    seq = link.server.send_seq
    assert link.to_client(link.server.packet(byte(kind) + b"whatever")) == []
    assert link.to_server() == [ClientPacket(0, byte(msg.UNIMPLEMENTED) + uint32(seq))]
    assert link.to_client(link.server.packet(CHANNEL_DATA)) == [PacketReceived(seq + 1, CHANNEL_DATA)]


def test_errors_are_sticky() -> None:
    """After a protocol error every next_event raises it again, even with good data behind it."""
    link = established()
    with pytest.raises(ProtocolError) as first:
        link.to_client(link.server.packet(byte(msg.NEWKEYS)))
    link.state.receive_data(link.server.packet(CHANNEL_DATA))
    for _ in range(2):
        with pytest.raises(ProtocolError) as again:
            link.state.next_event()
        assert again.value is first.value
    assert link.state.phase is Phase.CLOSED
    with pytest.raises(RuntimeError, match="closed"):
        link.state.send(CHANNEL_DATA)


def test_wrongly_guessed_kex_packet_is_ignored() -> None:
    """RFC 4253 §7: first_kex_packet_follows with a wrong guess: the next kex packet is dropped."""
    server = ScriptedServer(seed=23, kex=["curve25519-sha256@libssh.org", "curve25519-sha256"])
    link = Link(server=server)
    init = link.start(first_kex_packet_follows=True)
    guessed = server.packet(byte(msg.KEX_ECDH_REPLY) + string(b"guess"))
    events = link.to_client(guessed + server.handshake_reply(init))
    assert [type(e) for e in events] == [HostKeyReceived, KexComplete]


def test_guess_is_wrong_when_preferred_algorithms_differ() -> None:
    """RFC 4253 §7: "the guess is considered wrong if ... server and client have different preferred
    algorithm". Client prefers an algorithm the server lacks; server's first is the one negotiated.
    Both sides must agree the guess was wrong, so the guessed packet is ignored.
    """
    server = ScriptedServer(seed=23, kex=["curve25519-sha256"])
    link = Link(server=server, kex=("curve25519-sha256@libssh.org", "curve25519-sha256"))
    init = link.start(first_kex_packet_follows=True)
    guessed = server.packet(byte(msg.KEX_ECDH_REPLY) + string(b"guess"))
    events = link.to_client(guessed + server.handshake_reply(init))
    assert [type(e) for e in events] == [HostKeyReceived, KexComplete]


# --- sending -----------------------------------------------------------------------------------


def test_send_service_packet_during_initial_kex_raises() -> None:
    """RFC 4253 §7.1: no service packet between our KEXINIT and our NEWKEYS (caller error)."""
    link = Link(accept=False)
    link.state.start()
    request = byte(msg.SERVICE_REQUEST) + string("ssh-userauth")
    assert not link.state.can_send
    with pytest.raises(RuntimeError, match="SERVICE_REQUEST"):
        link.state.send(request)
    link.state.send(IGNORE)  # transport generic messages are allowed
    init = link.to_server()
    link.to_server()
    assert [p.type for p in init] == [msg.KEXINIT, msg.IGNORE]
    link.to_client(link.server.version() + link.server.kexinit())
    events = link.to_client(link.server.handshake_reply(link.to_server()))
    assert [type(e) for e in events] == [HostKeyReceived]
    assert not link.state.can_send  # verifying the host key
    with pytest.raises(RuntimeError):
        link.state.send(request)
    link.state.accept_host_key()
    assert link.state.can_send  # our NEWKEYS is out: new keys protect what we send
    link.state.send(request)
    assert [p.payload for p in link.to_server()] == [byte(msg.NEWKEYS), request]


ALLOWED_DURING_KEX = [
    (msg.DISCONNECT, True),
    (msg.IGNORE, True),
    (msg.UNIMPLEMENTED, True),
    (msg.DEBUG, True),
    (msg.SERVICE_REQUEST, False),
    (msg.SERVICE_ACCEPT, False),
    (msg.EXT_INFO, True),
    (19, True),
    (msg.KEXINIT, False),
    (msg.NEWKEYS, True),
    (29, True),
    (msg.KEX_ECDH_INIT, True),
    (49, True),
    (msg.USERAUTH_REQUEST, False),
    (msg.CHANNEL_DATA, False),
    (0, False),
    (255, False),
]


@pytest.mark.parametrize(("kind", "allowed"), ALLOWED_DURING_KEX)
def test_allowed_during_kex(kind: int, allowed: bool) -> None:
    """RFC 4253 §7.1: transport generic (1-19) minus SERVICE_*, negotiation (20-29) minus KEXINIT, 30-49."""
    assert allowed_during_kex(kind) is allowed


# --- rekey -------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", list(CIPHER_SUITES))
def test_client_initiated_rekey(suite: str) -> None:
    """RFC 4253 §9: a rekey from the client; strict KEX restarts the sequence numbers again."""
    link = established(suite)
    state, server = link.state, link.server
    session_id = state.session_id
    state.send(CHANNEL_DATA)
    assert link.to_client(server.packet(CHANNEL_DATA)) == [PacketReceived(0, CHANNEL_DATA)]

    assert state.start_rekey()
    assert not state.start_rekey()  # already in progress
    assert not state.can_send
    with pytest.raises(RuntimeError):
        state.send(CHANNEL_DATA)
    packets = link.to_server()
    assert [p.type for p in packets] == [msg.CHANNEL_DATA, msg.KEXINIT]
    # RFC 8308 §2.1, OpenSSH PROTOCOL kex-strict: the markers belong to the first KEXINIT only.
    assert kexinit_lists(packets[1].payload)[0] == ["curve25519-sha256"]
    # The server had not seen our KEXINIT yet: its service packets still count.
    assert link.to_client(server.packet(USERAUTH_SUCCESS)) == [PacketReceived(1, USERAUTH_SUCCESS)]

    assert link.to_client(server.kexinit()) == []
    init = link.to_server()
    assert [p.type for p in init] == [msg.KEX_ECDH_INIT]
    assert not state.can_send
    reply = server.ecdh_reply(init[0].payload)
    assert link.to_client(reply) == []  # same host key: no verdict needed
    assert state.can_send  # our NEWKEYS is out
    state.send(CHANNEL_DATA)
    assert [(p.seq, p.type) for p in link.to_server()] == [(3, msg.NEWKEYS), (0, msg.CHANNEL_DATA)]
    events = link.to_client(server.newkeys() + server.packet(SERVICE_ACCEPT))
    assert len(events) == 2
    assert isinstance(events[0], KexComplete) and not events[0].initial
    assert events[1] == PacketReceived(0, SERVICE_ACCEPT)
    assert state.session_id == session_id
    assert server.exchange_hash != session_id
    assert state.strict_kex and state.kex_state is KexState.IDLE


def test_first_kexinit_carries_the_markers() -> None:
    """RFC 8308 §2.1 and OpenSSH PROTOCOL kex-strict: ext-info-c and kex-strict-c in the first KEXINIT."""
    link = Link()
    link.state.start()
    (kexinit,) = link.to_server()
    kex = kexinit_lists(kexinit.payload)[0]
    assert kex[0] == "curve25519-sha256"
    assert "ext-info-c" in kex and "kex-strict-c-v00@openssh.com" in kex
    assert link.server.client_version == link.state.client_version


def test_non_strict_rekey_keeps_counting() -> None:
    """RFC 4253 §6.4: without strict KEX the sequence numbers run on through a rekey."""
    link = Link(server=ScriptedServer(seed=3, strict=False))
    link.handshake()
    assert [type(e) for e in link.rekey_from_client()] == [KexComplete]
    # Server: KEXINIT, ECDH_REPLY, NEWKEYS (0-2), then the same again (3-5).
    assert link.to_client(link.server.packet(CHANNEL_DATA)) == [PacketReceived(6, CHANNEL_DATA)]
    link.state.send(CHANNEL_DATA)
    # Client: KEXINIT, ECDH_INIT, NEWKEYS (0-2), then KEXINIT, ECDH_INIT, NEWKEYS (3-5).
    assert link.to_server() == [ClientPacket(6, CHANNEL_DATA)]


def test_server_initiated_rekey() -> None:
    """RFC 4253 §9: the server's KEXINIT while idle; the client answers with KEXINIT and ECDH_INIT."""
    link = established()
    state, server = link.state, link.server
    assert link.to_client(server.packet(CHANNEL_DATA) + server.kexinit()) == [PacketReceived(0, CHANNEL_DATA)]
    assert state.kex_state is KexState.EXCHANGING and not state.can_send
    packets = link.to_server()
    assert [(p.seq, p.type) for p in packets] == [(0, msg.KEXINIT), (1, msg.KEX_ECDH_INIT)]
    with pytest.raises(ProtocolError, match="during key exchange"):
        # A service message after the server's KEXINIT breaks RFC 4253 §7.1.
        link.to_client(server.packet(CHANNEL_DATA))


def test_server_initiated_rekey_completes() -> None:
    """RFC 4253 §9: a server-initiated rekey carries traffic with the new keys afterwards."""
    link = established("aes128-ctr+hmac-sha2-256")
    state, server = link.state, link.server
    link.to_client(server.kexinit())
    init = link.to_server()
    events = link.to_client(server.handshake_reply(init) + server.packet(CHANNEL_DATA))
    assert [type(e) for e in events] == [KexComplete, PacketReceived]
    assert events[1] == PacketReceived(0, CHANNEL_DATA)
    state.send(CHANNEL_DATA)
    assert [(p.seq, p.type) for p in link.to_server()] == [(2, msg.NEWKEYS), (0, msg.CHANNEL_DATA)]


def test_rekey_with_different_host_key() -> None:
    """RFC 4253 §9: a rekey must be signed by the same host key as the first exchange."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    link = established()
    assert link.state.start_rekey()
    link.to_server()
    link.to_client(link.server.kexinit())
    init = link.to_server()
    other = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32))
    with pytest.raises(HostKeyNotVerifiable, match="different host key"):
        link.to_client(link.server.ecdh_reply(init[0].payload, host_key=other))


def test_rekey_bytes_outgoing() -> None:
    """RFC 4253 §9 / RFC 4344 §3: sending past rekey_bytes starts a rekey by itself."""
    link = established(rekey_bytes=4096)
    link.state.send(byte(msg.CHANNEL_DATA) + uint32(0) + string(bytes(5000)))
    assert link.state.kex_state is KexState.KEXINIT_SENT
    assert [p.type for p in link.to_server()] == [msg.CHANNEL_DATA, msg.KEXINIT]
    link.to_client(link.server.kexinit())
    events = link.to_client(link.server.handshake_reply(link.to_server()))
    assert [type(e) for e in events] == [KexComplete]
    link.to_server()
    link.state.send(CHANNEL_DATA)  # a fresh budget: no second rekey
    assert link.state.kex_state is KexState.IDLE


def test_rekey_before_sequence_numbers_wrap() -> None:
    """RFC 4344 §3.1: rekey at least once every 2**32 outgoing packets (OpenSSH: every 2**31)."""
    link = established(rekey_bytes=1 << 62)
    # White-box: sending 2**32 real packets takes hours, so start the count near the end.
    link.state._writer.packets_since_rekey = 2**32 - 1
    link.state.send(CHANNEL_DATA)
    assert link.state.kex_state is KexState.KEXINIT_SENT


def test_rekey_bytes_incoming() -> None:
    """RFC 4253 §9: receiving past rekey_bytes starts a rekey too."""
    link = established(rekey_bytes=4096)
    big = byte(msg.CHANNEL_DATA) + uint32(0) + string(bytes(5000))
    assert link.to_client(link.server.packet(big)) == [PacketReceived(0, big)]
    assert [p.type for p in link.to_server()] == [msg.KEXINIT]


# --- version exchange and framing --------------------------------------------------------


@pytest.mark.parametrize("chunks", [whole, bytewise], ids=["whole", "bytewise"])
def test_pre_banner_lines(chunks: Chunker) -> None:
    """RFC 4253 §4.2: the server may send other lines (CR LF or bare LF) before its version line."""
    link = Link()
    server = link.server
    server.server_version = "SSH-2.0-OpenSSH_9.9 Debian"
    link.state.start()
    link.to_server()
    banner = b"Welcome to the test server\r\n\r\nbare LF line\n"
    assert link.to_client(banner + server.version() + server.kexinit(), chunks) == []
    assert link.state.server_version == "SSH-2.0-OpenSSH_9.9 Debian"
    events = link.to_client(server.handshake_reply(link.to_server()))
    assert [type(e) for e in events] == [HostKeyReceived, KexComplete]
    assert link.state.session_id == server.session_id  # V_S is the version line, not a banner line


def test_version_line_split_across_reads() -> None:
    """RFC 4253 §4.2: a partial version line waits for its end of line."""
    link = Link()
    link.state.start()
    assert link.to_client(b"SSH-2.0-Op") == []
    assert link.state.phase is Phase.VERSION
    assert link.to_client(b"enSSH\r\n") == []
    assert link.state.phase is Phase.OPEN and link.state.server_version == "SSH-2.0-OpenSSH"


def test_junk_line_too_long() -> None:
    """RFC 4253 §4.2: an endless line before the version is refused, not buffered forever."""
    link = Link()
    link.state.start()
    with pytest.raises(ProtocolError, match="longer than"):
        link.to_client(b"x" * 9000)


@pytest.mark.parametrize("line", [b"SSH-1.5-old", b"SSH-2.0-" + b"v" * 300], ids=["1.5", "too long"])
def test_bad_version_line(line: bytes) -> None:
    """RFC 4253 §4.2: protocol 2.0 (or 1.99), at most 255 bytes."""
    link = Link()
    link.state.start()
    with pytest.raises(ProtocolError, match="version exchange"):
        link.to_client(line + b"\r\n")


def test_oversized_packet_length_plaintext() -> None:
    """RFC 4253 §6.1: a length over the limit is refused from the 4 length bytes alone."""
    link = Link()
    link.state.start()
    with pytest.raises(ProtocolError, match="exceeds the maximum"):
        link.to_client(link.server.version() + uint32(ciphers.MAX_PACKET_LENGTH + 4))


def test_oversized_packet_length_encrypted() -> None:
    """RFC 4253 §6.1 with AES-GCM, whose length travels in clear: refused before any body arrives."""
    link = established("aes128-gcm")
    with pytest.raises(ProtocolError, match="exceeds the maximum"):
        link.to_client(uint32(0x7FFFFFF0))


@pytest.mark.parametrize("suite", list(CIPHER_SUITES))
def test_truncated_packet_needs_data(suite: str) -> None:
    """RFC 4253 §6: a packet that is not complete yet is NEED_DATA, never an error."""
    for cut in (1, 3, 4, 17, -1):
        link = established(suite)
        data = link.server.packet(CHANNEL_DATA)
        assert link.to_client(data[:cut]) == []
        assert link.state.next_event() is NEED_DATA
        assert link.state.bytes_wanted >= 1
        assert link.to_client(data[cut:]) == [PacketReceived(0, CHANNEL_DATA)]


def test_corrupted_packet_fails_mac() -> None:
    """RFC 4253 §6.4: a flipped bit anywhere in the packet fails the integrity check."""
    link = established()
    data = bytearray(link.server.packet(CHANNEL_DATA))
    data[10] ^= 0x01
    with pytest.raises(ProtocolError, match="tag check failed"):
        link.to_client(bytes(data))
