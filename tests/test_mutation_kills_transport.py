"""Properties of the transport modules that the mutation check found untested (docs/mutation.md).

The modules are ``trissh._transport`` (``state``, ``message_rules``, ``host_key``, ``packets``) and
``trissh._algorithms.ciphers``. Each test names the property it checks; /tmp/mutation/transport.md (and
docs/mutation.md) list the mutants each one kills. Everything here is sans-IO: bytes are fed to the packet
reader or the state machine directly, or the pure functions are called.
"""

from __future__ import annotations

import logging
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from test_certificates import SUBJECT, build
from test_packets import Reference, Suite, make_keys, payload_of, reader_for, seal_each, writer_for
from test_state import Link

from trissh import _messages as msg
from trissh._algorithms.certificates import parse_certificate
from trissh._algorithms.ciphers import MAX_PACKET_LENGTH, PacketError, plain_opener, plain_sealer
from trissh._algorithms.compression import decompressor_for
from trissh._algorithms.hostkeys import public_key_from_crypto
from trissh._errors import DisconnectError, HostKeyNotVerifiable, ProtocolError
from trissh._transport.events import HostKeyReceived, KexComplete, PacketReceived
from trissh._transport.host_key import check_rekey_host_key
from trissh._transport.message_rules import MAX_EXTENSIONS, log_debug_message, parse_ext_info
from trissh._transport.packets import PacketReader, PacketWriter
from trissh._transport.state import MAX_PACKETS_PER_KEY, KexState
from trissh._wire import DecodeError, boolean, byte, string, uint32

# --- message_rules: DEBUG and EXT_INFO ----------------------------------------------------------------


def _debug(always: bool, text: str) -> bytes:
    return byte(msg.DEBUG) + boolean(always) + string(text) + string("")


@pytest.mark.parametrize(("always", "level"), [(True, logging.INFO), (False, logging.DEBUG)])
def test_server_debug_message_is_logged_at_info_only_when_always_display(
    caplog: pytest.LogCaptureFixture, always: bool, level: int
) -> None:
    """RFC 4253 §11.3: a DEBUG message with always_display set is shown (INFO); otherwise it is
    logged at DEBUG only. The text the server sent is in the log line."""
    with caplog.at_level(logging.DEBUG, logger="trissh.transport"):
        log_debug_message(_debug(always, "motd: hello"))
    records = [r for r in caplog.records if r.name == "trissh.transport"]
    assert [(r.levelno, r.getMessage()) for r in records] == [(level, "server debug message: motd: hello")]


def test_truncated_debug_message_error_names_debug() -> None:
    """A truncated DEBUG message is a decode error that says which message was cut short."""
    payload = byte(msg.DEBUG) + boolean(True) + uint32(10) + b"abc"
    with pytest.raises(DecodeError, match=r"^DEBUG: truncated reading string"):
        log_debug_message(payload)


def _ext_info(names: list[str]) -> bytes:
    body = b"".join(string(name) + string(f"v-{name}") for name in names)
    return byte(msg.EXT_INFO) + uint32(len(names)) + body


def test_ext_info_with_exactly_the_maximum_number_of_extensions_is_accepted() -> None:
    """RFC 8308 §2.3: an EXT_INFO announcing exactly MAX_EXTENSIONS extensions is read in full."""
    names = [f"ext-{i}" for i in range(MAX_EXTENSIONS)]
    extensions = parse_ext_info(_ext_info(names))
    assert len(extensions) == MAX_EXTENSIONS
    assert extensions["ext-1023"] == b"v-ext-1023"


def test_ext_info_beyond_the_maximum_is_refused_naming_the_count() -> None:
    """One extension more than MAX_EXTENSIONS is refused, and the error says how many were announced."""
    payload = byte(msg.EXT_INFO) + uint32(MAX_EXTENSIONS + 1)  # refused before any is read
    with pytest.raises(ProtocolError, match=f"^EXT_INFO announces {MAX_EXTENSIONS + 1} extensions$"):
        parse_ext_info(payload)


def test_truncated_ext_info_error_names_ext_info() -> None:
    """A truncated EXT_INFO is a decode error that says which message was cut short."""
    payload = _ext_info(["server-sig-algs"])[:-3]
    with pytest.raises(DecodeError, match=r"^EXT_INFO: truncated reading string"):
        parse_ext_info(payload)


def test_server_extensions_are_logged_by_name(caplog: pytest.LogCaptureFixture) -> None:
    """The names of the server's extensions are logged (at DEBUG), comma separated, in order."""
    with caplog.at_level(logging.DEBUG, logger="trissh.transport"):
        parse_ext_info(_ext_info(["server-sig-algs", "ping@openssh.com"]))
    records = [r for r in caplog.records if r.name == "trissh.transport"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.DEBUG, "server extensions: server-sig-algs, ping@openssh.com")
    ]


# --- host_key: the rekey rule's error names which side had a certificate -----------------------------

OTHER_KEY = public_key_from_crypto(ed25519.Ed25519PrivateKey.generate().public_key())


def _rekey_error(**kwargs: object) -> str:
    with pytest.raises(HostKeyNotVerifiable) as info:
        check_rekey_host_key(**kwargs)  # type: ignore[arg-type]
    return str(info.value)


def test_rekey_host_key_error_marks_certificates_only_where_there_were_some() -> None:
    """OpenSSH kex.c: a rekey must show the first exchange's host key and certificate. The error
    names both fingerprints, and says "(certificate)" after exactly the side(s) that had one."""
    certificate = parse_certificate(build(subject=SUBJECT))
    new, old = SUBJECT.fingerprint, OTHER_KEY.fingerprint
    prefix = "server presented a different host key during a rekey: "
    plain = _rekey_error(key=SUBJECT, certificate=None, first_key=OTHER_KEY, first_certificate=None)
    assert plain == f"{prefix}{new}, was {old}"
    now_certified = _rekey_error(
        key=SUBJECT, certificate=certificate, first_key=OTHER_KEY, first_certificate=None
    )
    assert now_certified == f"{prefix}{new} (certificate), was {old}"
    was_certified = _rekey_error(
        key=OTHER_KEY, certificate=None, first_key=SUBJECT, first_certificate=certificate
    )
    assert was_certified == f"{prefix}{old}, was {new} (certificate)"


# --- packets: CBC without EtM reads a fixed amount before it fails ------------------------------------

CBC = Suite("aes128-cbc", "hmac-sha2-256")


def _feed_until_refused(reader: object, consumed: int) -> PacketError:
    """Feed zeros until the deferred failure comes; it must come exactly when MAX_PACKET_LENGTH bytes
    from the bad packet's start (``consumed`` of them already read) have been read, not a byte sooner."""
    assert reader.buffered == 0  # type: ignore[attr-defined]
    assert reader.wanted == MAX_PACKET_LENGTH - consumed  # type: ignore[attr-defined]
    reader.feed(bytes(MAX_PACKET_LENGTH - consumed - 1))  # type: ignore[attr-defined]
    assert reader.next_packet() is None  # type: ignore[attr-defined]
    assert reader.buffered == 0 and reader.wanted == 1  # type: ignore[attr-defined]
    reader.feed(bytes(3))  # type: ignore[attr-defined]
    with pytest.raises(PacketError) as info:
        reader.next_packet()  # type: ignore[attr-defined]
    return info.value


def test_cbc_bad_mac_after_a_good_packet_fails_after_exactly_the_fixed_amount() -> None:
    """A CBC (no EtM) packet whose MAC fails is refused only once MAX_PACKET_LENGTH bytes from its
    start are read (so the timing says nothing, see ciphers.py), however the bytes were split: here it
    follows a good packet in the same read and ends in the middle of the next read."""
    keys = make_keys(CBC)
    good, bad = seal_each(writer_for(CBC, keys, seq=1), [payload_of(20), payload_of(40)])
    tampered = bad[:-1] + bytes([bad[-1] ^ 1])  # the last MAC byte
    reader = reader_for(CBC, keys, seq=1)
    reader.feed(good + tampered[:7])
    assert reader.next_packet() == (1, payload_of(20))
    assert reader.next_packet() is None
    reader.feed(tampered[7:] + bytes(100))
    assert reader.next_packet() is None
    error = _feed_until_refused(reader, len(tampered) + 100)
    assert error.reason.name == "MAC_ERROR"


def test_cbc_bad_length_split_across_reads_fails_after_exactly_the_fixed_amount() -> None:
    """A CBC (no EtM) packet whose decrypted length is impossible, its first block split over two
    reads, is refused only once MAX_PACKET_LENGTH bytes from its start are read."""
    keys = make_keys(CBC)
    header = Reference(CBC, keys).encrypt_header(0, (7).to_bytes(4, "big") + bytes(12))
    reader = reader_for(CBC, keys)
    reader.feed(header[:10])
    assert reader.next_packet() is None
    reader.feed(header[10:] + bytes(4))
    assert reader.next_packet() is None
    error = _feed_until_refused(reader, len(header) + 4)
    assert "not a valid multiple" in str(error)


# --- state: the host key verdict -----------------------------------------------------------------------


def test_a_second_accept_host_key_before_the_servers_newkeys_is_refused() -> None:
    """accept_host_key answers one HostKeyReceived, once: called again while our NEWKEYS is out and
    the server's is not in, it raises and sends nothing (no second NEWKEYS, no key change)."""
    link = Link(accept=False)
    init = link.start()
    init_payload = next(p.payload for p in init if p.type == msg.KEX_ECDH_INIT)
    ecdh_reply = link.server.ecdh_reply(init_payload)
    newkeys = link.server.newkeys()
    assert [type(e) for e in link.to_client(ecdh_reply)] == [HostKeyReceived]
    link.state.accept_host_key()
    assert [p.type for p in link.to_server()] == [msg.NEWKEYS]
    assert link.state.kex_state is KexState.NEWKEYS_SENT
    with pytest.raises(RuntimeError, match=re.escape("no host key is waiting for a verdict (key exchange")):
        link.state.accept_host_key()
    assert link.to_server() == []
    assert [type(e) for e in link.to_client(newkeys)] == [KexComplete]


def test_send_disconnect_queues_one_disconnect_and_closes() -> None:
    """RFC 4253 §11.1: send_disconnect in the open state queues DISCONNECT(reason, description, empty
    language tag) and closes; called again once that was taken, it queues nothing more."""
    link = Link()
    link.handshake()
    assert link.to_server() == []
    link.state.send_disconnect(11, "bye")
    assert link.state.phase.name == "CLOSED"
    (packet,) = link.to_server()
    assert packet.payload == byte(msg.DISCONNECT) + uint32(11) + string("bye") + string(b"")
    link.state.send_disconnect(11, "bye")
    assert link.to_server() == []


def test_send_with_a_tail_and_a_put_back_rest_reach_the_server_whole_and_in_order() -> None:
    """send(payload, tail) seals payload + tail as one packet; the unsent end of a partial write,
    put back with put_back_unsent, goes out first next time, so the server reads every packet."""
    link = Link()
    link.handshake()
    link.state.send(byte(msg.CHANNEL_DATA) + uint32(0), string(b"tail"))
    data = link.state.data_to_send()
    sent, rest = bytes(data[:5]), data[5:]
    link.state.put_back_unsent(rest)
    link.state.send(byte(msg.IGNORE) + string(b""))
    packets = link.server.feed(sent + bytes(link.state.data_to_send()))
    assert [p.payload for p in packets] == [
        byte(msg.CHANNEL_DATA) + uint32(0) + string(b"tail"),
        byte(msg.IGNORE) + string(b""),
    ]


# --- state: what may be sent, and when the bulk path stops for a rekey ---------------------------------


def test_sending_after_close_names_the_reason() -> None:
    link = Link()
    link.handshake()
    link.state.send_disconnect(11, "bye")
    with pytest.raises(RuntimeError, match=r"^the transport is closed$"):
        link.state.send(byte(msg.IGNORE) + string(b""))


def test_channel_data_during_a_key_exchange_is_refused_naming_the_exchange_state() -> None:
    link = Link()
    link.handshake()
    assert link.state.start_rekey()
    with pytest.raises(
        RuntimeError, match=r"^channel data may not be sent now \(key exchange KEXINIT sent\)$"
    ):
        link.state.send_channel_data([byte(msg.CHANNEL_DATA)], memoryview(b"x"), 1)


def _channel_headers(count: int) -> list[bytes]:
    return [byte(msg.CHANNEL_DATA) + uint32(0) + uint32(4)] * count


def _bytes_per_packet(link: Link) -> int:
    """What one 4-byte CHANNEL_DATA packet adds to the writer's byte count."""
    before = link.state._writer.bytes_since_rekey
    link.state.send_channel_data(_channel_headers(1), memoryview(b"abcd"), 4)
    link.to_server()
    return int(link.state._writer.bytes_since_rekey - before)


def test_channel_data_returns_how_many_packets_it_sealed() -> None:
    link = Link()
    link.handshake()
    assert link.state.send_channel_data(_channel_headers(5), memoryview(b"x" * 20), 4) == 5
    assert [p.type for p in link.to_server()] == [msg.CHANNEL_DATA] * 5


@pytest.mark.parametrize("reached_after", [1, 3])
def test_channel_data_stops_at_the_packet_that_reaches_the_byte_limit_exactly(reached_after: int) -> None:
    """The packet that brings the count to exactly rekey_bytes is the last one sealed: the count it
    returns is 1-based, the limit is reached at >=, and a KEXINIT follows it."""
    link = Link()
    link.handshake()
    per_packet = _bytes_per_packet(link)
    link.state.rekey_bytes = link.state._writer.bytes_since_rekey + reached_after * per_packet
    sealed = link.state.send_channel_data(_channel_headers(5), memoryview(b"y" * 20), 4)
    assert sealed == reached_after
    assert [p.type for p in link.to_server()] == [msg.CHANNEL_DATA] * reached_after + [msg.KEXINIT]
    assert link.state.kex_state is KexState.KEXINIT_SENT


def test_channel_data_stops_at_the_packet_limit_even_far_from_the_byte_limit() -> None:
    link = Link()
    link.handshake()
    link.state._writer.packets_since_rekey = MAX_PACKETS_PER_KEY - 2
    assert link.state.send_channel_data(_channel_headers(5), memoryview(b"z" * 20), 4) == 2
    assert [p.type for p in link.to_server()] == [msg.CHANNEL_DATA] * 2 + [msg.KEXINIT]


@pytest.mark.parametrize("suite", ["chacha20-poly1305", "aes128-gcm", "aes128-ctr+hmac-sha2-256"])
def test_a_tail_is_sealed_into_the_packet_with_every_cipher(suite: str) -> None:
    link = Link(suite)
    link.handshake()
    link.state.send(byte(msg.CHANNEL_DATA) + uint32(0), string(b"the tail of it"))
    (packet,) = link.to_server()
    assert packet.payload == byte(msg.CHANNEL_DATA) + uint32(0) + string(b"the tail of it")


def test_a_disconnect_that_cannot_be_sealed_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = Link()
    link.handshake()

    class BrokenWriter:
        pending = 0

        def write(self, *args: object) -> None:
            raise ValueError("sealer broken")

    monkeypatch.setattr(link.state, "_writer", BrokenWriter())
    with caplog.at_level(logging.DEBUG, logger="trissh.transport"):
        link.state.send_disconnect(2, "protocol error")
    assert link.state.phase.name == "CLOSED"
    (record,) = [r for r in caplog.records if "DISCONNECT" in r.getMessage()]
    assert (record.levelno, record.getMessage()) == (logging.DEBUG, "could not seal DISCONNECT")
    assert record.exc_info is not None and record.exc_info[0] is ValueError


def test_a_completed_key_exchange_is_logged_with_what_was_agreed(caplog: pytest.LogCaptureFixture) -> None:
    link = Link()
    with caplog.at_level(logging.DEBUG, logger="trissh.transport"):
        link.handshake()
    negotiated = link.state.negotiated
    assert f"key exchange complete: {negotiated}" in [r.getMessage() for r in caplog.records]


# --- state: before any exchange, and the first packets ---------------------------------------------------


def test_a_fresh_state_knows_no_server_version_and_no_host_certificate() -> None:
    link = Link()
    assert link.state.server_version is None
    assert link.state.server_host_certificate is None


def test_ext_info_before_the_servers_kexinit_is_refused() -> None:
    """RFC 8308 §2.4: EXT_INFO only as the first packet after NEWKEYS; as the server's very first
    packet (before KEXINIT) it is a protocol violation, with strict kex or without."""
    link = Link()
    link.state.start()
    link.to_server()
    ext_info = byte(msg.EXT_INFO) + uint32(1) + string("server-sig-algs") + string("ssh-ed25519")
    with pytest.raises(ProtocolError):
        link.to_client(link.server.version() + link.server.packet(ext_info))


def test_pulling_events_while_a_host_key_awaits_a_verdict_names_the_mistake() -> None:
    link = Link(accept=False)
    init = link.start()
    assert [type(e) for e in link.to_client(link.server.handshake_reply(init))] == [HostKeyReceived]
    with pytest.raises(RuntimeError, match=r"^next_event\(\) called while a host key verdict is pending$"):
        link.state.next_event()


def test_the_plain_sealer_seals_a_tail_into_the_packet() -> None:
    """Before the first NEWKEYS packets are unprotected; payload + tail must still be one packet."""
    sealer = plain_sealer(lambda n: b"\x00" * n)
    joined = bytearray(64)
    split = bytearray(64)
    size = sealer.seal_into(0, b"head-tail", memoryview(joined))
    assert sealer.seal_into(0, b"head-", memoryview(split), b"tail") == size
    assert split[:size] == joined[:size]
    assert bytes(plain_opener().open(0, memoryview(bytes(split[:size])))) == b"head-tail"


def test_lines_before_the_version_are_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    link = Link()
    link.state.start()
    link.to_server()
    with caplog.at_level(logging.DEBUG, logger="trissh.transport"):
        link.to_client(link.server.version(pre_banner=[b"Welcome to the machine"]) + link.server.kexinit())
    assert ("trissh.transport", logging.DEBUG, "server pre-banner line: Welcome to the machine") in [
        (r.name, r.levelno, r.getMessage()) for r in caplog.records
    ]


def test_events_after_close_name_the_reason() -> None:
    link = Link()
    link.handshake()
    link.state.send_disconnect(11, "bye")
    with pytest.raises(RuntimeError, match=r"^the transport is closed$"):
        link.state.next_event()


def test_a_server_disconnect_closes_the_state() -> None:
    link = Link()
    link.handshake()
    disconnect = byte(msg.DISCONNECT) + uint32(11) + string("going away") + string("")
    with pytest.raises(DisconnectError):
        link.to_client(link.server.packet(disconnect))
    assert link.state.phase.name == "CLOSED"


def test_a_truncated_disconnect_is_named_in_the_error() -> None:
    link = Link()
    link.handshake()
    with pytest.raises(DecodeError, match=r"^DISCONNECT: truncated"):
        link.to_client(link.server.packet(byte(msg.DISCONNECT) + b"\x00\x00"))


def test_ext_info_after_the_first_service_packet_is_refused() -> None:
    """RFC 8308 §2.4: only the first packet after the first NEWKEYS may be EXT_INFO; once a service
    message (a banner here) has come, an EXT_INFO is a protocol violation."""
    link = Link()
    link.handshake()
    banner = byte(msg.USERAUTH_BANNER) + string("hi") + string("")
    ext_info = byte(msg.EXT_INFO) + uint32(1) + string("server-sig-algs") + string("ssh-ed25519")
    with pytest.raises(
        ProtocolError, match=r"^EXT_INFO received other than right after the first NEWKEYS \(RFC 8308 §2.4\)$"
    ):
        link.to_client(link.server.packet(banner) + link.server.packet(ext_info))


@pytest.mark.parametrize("kind", [30, 31, 49])
def test_key_exchange_messages_outside_an_exchange_are_protocol_errors(kind: int) -> None:
    """Messages 30-49 belong to a key exchange method; outside one they are an error (not an unknown
    message to answer with UNIMPLEMENTED), at both ends of the range."""
    link = Link()
    link.handshake()
    with pytest.raises(ProtocolError, match=r"outside a key exchange"):
        link.to_client(link.server.packet(byte(kind) + b"\x00" * 8))
    assert link.to_server() == []


def test_a_truncated_unimplemented_is_named_in_the_error() -> None:
    link = Link()
    link.handshake()
    with pytest.raises(DecodeError, match=r"^UNIMPLEMENTED: truncated"):
        link.to_client(link.server.packet(byte(msg.UNIMPLEMENTED) + b"\x00"))


def test_an_unknown_message_is_answered_unimplemented_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    link = Link()
    link.handshake()
    with caplog.at_level(logging.DEBUG, logger="trissh.transport"):
        assert link.to_client(link.server.packet(byte(17) + b"whatever")) == []
    assert [p.type for p in link.to_server()] == [msg.UNIMPLEMENTED]
    assert "server sent unknown message 17; replying UNIMPLEMENTED" in [
        r.getMessage() for r in caplog.records
    ]


def test_strict_kex_stays_agreed_after_a_rekey() -> None:
    """The server's later KEXINITs need not repeat the strict-kex marker; what the first exchange agreed
    holds for the connection's life, and negotiated says so after every rekey."""
    link = Link()
    link.handshake()
    assert link.state.negotiated is not None and link.state.negotiated.strict_kex
    link.rekey_from_client()
    assert link.state.strict_kex is True
    assert link.state.negotiated.strict_kex is True


def _received_bytes_per_packet(link: Link, packet: bytes) -> int:
    before = link.state._reader.bytes_since_rekey
    link.to_client(packet)
    return int(link.state._reader.bytes_since_rekey - before)


def test_receiving_exactly_rekey_bytes_starts_a_rekey() -> None:
    link = Link()
    link.handshake()
    ignore = link.server.packet(byte(msg.IGNORE) + string(b"x" * 100))
    per_packet = _received_bytes_per_packet(link, ignore)
    link.state.rekey_bytes = link.state._reader.bytes_since_rekey + per_packet
    link.to_client(link.server.packet(byte(msg.IGNORE) + string(b"x" * 100)))
    assert [p.type for p in link.to_server()] == [msg.KEXINIT]


def test_receiving_the_packet_limit_exactly_starts_a_rekey() -> None:
    link = Link()
    link.handshake()
    link.state._reader.packets_since_rekey = MAX_PACKETS_PER_KEY - 1
    link.to_client(link.server.packet(byte(msg.IGNORE) + string(b"")))
    assert [p.type for p in link.to_server()] == [msg.KEXINIT]


def test_a_failed_key_exchange_names_the_method() -> None:
    link = Link()
    link.start()
    with pytest.raises(ProtocolError, match=r"^curve25519-sha256: expected"):
        link.to_client(link.server.packet(byte(msg.KEXDH_INIT) + string(b"\x00" * 32)))


def test_a_corrupt_compressed_packet_names_its_sequence_number() -> None:
    writer, reader = PacketWriter(), PacketReader()
    for _ in range(2):
        writer.write(byte(msg.IGNORE) + string(b""))
    writer.write(b"\x00not zlib at all")
    reader.feed(bytes(writer.take()))
    assert reader.next_packet() is not None and reader.next_packet() is not None
    reader.decompressor = decompressor_for("zlib", True)
    with pytest.raises(ProtocolError, match=r"^packet 2: compressed payload is corrupt"):
        reader.next_packet()


def test_a_service_message_during_the_first_exchange_is_refused_before_any_keys() -> None:
    link = Link()
    link.state.start()
    link.to_server()
    banner = byte(msg.USERAUTH_BANNER) + string("early") + string("")
    with pytest.raises(
        ProtocolError,
        match=r"^USERAUTH_BANNER \(53\) received during key exchange \(KEXINIT sent, before any keys\)$",
    ):
        link.to_client(link.server.version() + link.server.packet(banner))


def test_a_service_message_inside_a_rekey_is_refused_without_before_any_keys() -> None:
    link = Link()
    link.handshake()
    assert link.state.start_rekey()
    link.to_client(link.server.kexinit())  # the exchange runs: service messages must wait for NEWKEYS
    banner = byte(msg.USERAUTH_BANNER) + string("late") + string("")
    with pytest.raises(
        ProtocolError, match=r"^USERAUTH_BANNER \(53\) received during key exchange \(exchanging\)$"
    ):
        link.to_client(link.server.packet(banner))


def test_userauth_success_while_our_rekey_kexinit_is_out_still_counts() -> None:
    """After our KEXINIT and before the server's, its service messages still arrive; USERAUTH_SUCCESS
    among them marks the connection authenticated (which starts delayed compression)."""
    link = Link()
    link.handshake()
    assert link.state.start_rekey()
    events = link.to_client(link.server.packet(byte(msg.USERAUTH_SUCCESS)))
    assert [type(e) for e in events] == [PacketReceived]
    assert link.state.authenticated is True


def test_a_sequence_number_wrap_in_the_first_exchange_is_refused_by_name() -> None:
    """RFC 4253 §6.4 / Terrapin: the sequence number must not wrap before the first NEWKEYS."""
    link = Link()
    link.state.start()
    link.to_server()
    link.state._reader.wrapped = True
    with pytest.raises(
        ProtocolError, match=r"^sequence number wrapped around during the initial key exchange$"
    ):
        link.to_client(link.server.version() + link.server.kexinit())
