"""Unit tests for the key exchange: curve25519-sha256 (``trissh._algorithms.kex``), algorithm
negotiation (``trissh._transport.negotiate``), the version exchange (``trissh._transport.version``)
and key derivation, the last through a whole first exchange with a scripted server
(``trissh._transport.state``).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from trissh import _messages as msg
from trissh._algorithms.ciphers import CIPHERS, MACS, make_opener, make_sealer
from trissh._algorithms.kex import KEX_METHODS, Curve25519Kex, KexResult, KexSetup
from trissh._errors import DisconnectError, DisconnectReason, HostKeyNotVerifiable, ProtocolError
from trissh._transport.events import NEED_DATA, HostKeyReceived, KexComplete, PacketReceived
from trissh._transport.negotiate import (
    STRICT_KEX_CLIENT,
    STRICT_KEX_SERVER,
    AlgorithmPreferences,
    DirectionAlgorithms,
    KexInit,
    negotiate,
)
from trissh._transport.packets import PacketReader, PacketWriter
from trissh._transport.state import TransportState
from trissh._transport.version import (
    CLIENT_VERSION,
    MAX_LINE_LENGTH,
    MAX_PRE_BANNER_LINES,
    VersionParser,
    version_line,
)
from trissh._wire import DecodeError, boolean, byte, mpint, name_list, string, uint32

# --- curve25519-sha256 -------------------------------------------------------------------

# RFC 7748 §6.1
ALICE_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB_PRIVATE = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUBLIC = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED_K = bytes.fromhex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")

# RFC 7748 §5.2: (scalar, u-coordinate, output u-coordinate). The first two outputs have their
# top bit set, the third has it clear.
X25519_VECTORS = [
    (
        "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
        "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
        "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552",
    ),
    (
        "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
        "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
        "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957",
    ),
    (  # the first step of the iterated test: k = u = 9
        "0900000000000000000000000000000000000000000000000000000000000000",
        "0900000000000000000000000000000000000000000000000000000000000000",
        "422c8e7a6227d7bca1350b3e2bb7279f7897b87bb6854b783c60e80311ae3079",
    ),
]

# Points of small order (and non-canonical encodings of them): each makes X25519 output all zeros.
LOW_ORDER_POINTS = [
    "00" * 32,
    "01" + "00" * 31,
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ec" + "ff" * 30 + "7f",
    "ed" + "ff" * 30 + "7f",
    "ee" + "ff" * 30 + "7f",
]

V_C = b"SSH-2.0-trissh_0.1"
V_S = b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13"
I_C = b"\x14client kexinit payload"
I_S = b"\x14server kexinit payload"
PREFIX = string(V_C) + string(V_S) + string(I_C) + string(I_S)
HOST_KEY_BLOB = string("ssh-ed25519") + string(bytes(range(32)))
SIGNATURE_BLOB = string("ssh-ed25519") + string(bytes(64))


def make_kex(private: bytes, prefix: bytes = PREFIX) -> Curve25519Kex:
    """A Curve25519Kex whose ephemeral private key, its one draw of random(32), is ``private``."""

    def draw(n: int) -> bytes:
        assert n == 32, n
        return private

    return Curve25519Kex(KexSetup("curve25519-sha256", prefix, draw))


def ecdh_reply(
    server_public: bytes, host_key: bytes = HOST_KEY_BLOB, signature: bytes = SIGNATURE_BLOB
) -> bytes:
    """SSH_MSG_KEX_ECDH_REPLY (RFC 5656 §4, RFC 8731 §3)."""
    return byte(msg.KEX_ECDH_REPLY) + string(host_key) + string(server_public) + string(signature)


def expected_exchange_hash(prefix: bytes, k_s: bytes, q_c: bytes, q_s: bytes, k: bytes) -> bytes:
    """RFC 8731 §3 / RFC 5656 §4: SHA-256 over V_C, V_S, I_C, I_S, K_S, Q_C, Q_S as strings, then K."""
    k_mpint = mpint(int.from_bytes(k, "big"))
    return hashlib.sha256(prefix + string(k_s) + string(q_c) + string(q_s) + k_mpint).digest()


def test_start_sends_the_public_key() -> None:
    """RFC 8731 §3 / RFC 5656 §4: KEX_ECDH_INIT carries Q_C, our 32-byte public key (RFC 7748 §6.1)."""
    assert make_kex(ALICE_PRIVATE).start() == byte(msg.KEX_ECDH_INIT) + string(ALICE_PUBLIC)
    assert make_kex(BOB_PRIVATE).start() == byte(msg.KEX_ECDH_INIT) + string(BOB_PUBLIC)


@pytest.mark.parametrize(
    ("ours", "ours_public", "theirs"),
    [(ALICE_PRIVATE, ALICE_PUBLIC, BOB_PUBLIC), (BOB_PRIVATE, BOB_PUBLIC, ALICE_PUBLIC)],
    ids=["alice", "bob"],
)
def test_rfc7748_diffie_hellman(ours: bytes, ours_public: bytes, theirs: bytes) -> None:
    """RFC 7748 §6.1: both sides reach K; RFC 8731 §3: H is SHA-256 over the listed fields."""
    result = make_kex(ours).receive(ecdh_reply(theirs))
    assert isinstance(result, KexResult)
    assert result.shared_secret == mpint(int.from_bytes(SHARED_K, "big"))
    assert result.shared_secret == uint32(32) + SHARED_K  # top bit clear: no leading zero
    assert result.exchange_hash == expected_exchange_hash(
        PREFIX, HOST_KEY_BLOB, ours_public, theirs, SHARED_K
    )
    assert result.host_key_blob == HOST_KEY_BLOB
    assert result.signature == SIGNATURE_BLOB


@pytest.mark.parametrize(("scalar", "u", "output"), X25519_VECTORS, ids=["5.2-1", "5.2-2", "5.2-iter1"])
def test_rfc7748_x25519_vectors_and_mpint_leading_zero(scalar: str, u: str, output: str) -> None:
    """RFC 7748 §5.2 vectors; RFC 8731 §3: K is the X25519 output read as an unsigned big-endian
    integer and sent as an mpint, so a set top bit gets a leading zero byte (RFC 4251 §5)."""
    kex = make_kex(bytes.fromhex(scalar))
    result = kex.receive(ecdh_reply(bytes.fromhex(u)))
    if bytes.fromhex(output)[0] >= 0x80:
        assert result.shared_secret == uint32(33) + b"\x00" + bytes.fromhex(output)
    else:
        assert result.shared_secret == uint32(32) + bytes.fromhex(output)
    q_c = x25519.X25519PrivateKey.from_private_bytes(bytes.fromhex(scalar)).public_key().public_bytes_raw()
    assert result.exchange_hash == expected_exchange_hash(
        PREFIX, HOST_KEY_BLOB, q_c, bytes.fromhex(u), bytes.fromhex(output)
    )


def test_shared_secret_with_leading_zero_byte_is_minimal() -> None:
    """RFC 4251 §5 / RFC 8731 §3: K is an mpint, so leading zero bytes of the X25519 output are
    dropped (OpenSSH does the same); the hash uses that minimal encoding."""
    server = x25519.X25519PrivateKey.from_private_bytes(hashlib.sha256(b"server").digest())
    server_public = server.public_key().public_bytes_raw()
    for i in range(5000):
        private = hashlib.sha256(b"client %d" % i).digest()
        raw = x25519.X25519PrivateKey.from_private_bytes(private).exchange(server.public_key())
        if raw[0] == 0 and raw[1] < 0x80:
            break
    else:
        pytest.fail("no secret with a leading zero byte found")
    result = make_kex(private).receive(ecdh_reply(server_public))
    stripped = raw.lstrip(b"\x00")
    assert result.shared_secret == uint32(len(stripped)) + stripped
    q_c = x25519.X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
    assert result.exchange_hash == expected_exchange_hash(PREFIX, HOST_KEY_BLOB, q_c, server_public, raw)


@pytest.mark.parametrize("point", LOW_ORDER_POINTS)
def test_low_order_server_point_is_refused(point: str) -> None:
    """RFC 7748 §6.1 / RFC 8731 §3: an all-zero shared secret must be refused (KEY_EXCHANGE_FAILED)."""
    with pytest.raises(ProtocolError, match="all-zero") as info:
        make_kex(ALICE_PRIVATE).receive(ecdh_reply(bytes.fromhex(point)))
    assert info.value.reason is DisconnectReason.KEY_EXCHANGE_FAILED


@pytest.mark.parametrize("size", [0, 31, 33, 65])
def test_server_public_key_of_wrong_size_is_refused(size: int) -> None:
    """RFC 8731 §3: Q_S is exactly 32 bytes."""
    with pytest.raises(ProtocolError, match=f"{size} bytes, expected 32") as info:
        make_kex(ALICE_PRIVATE).receive(ecdh_reply(BOB_PUBLIC[:size] + bytes(max(0, size - 32))))
    assert info.value.reason is DisconnectReason.KEY_EXCHANGE_FAILED


@pytest.mark.parametrize("kind", [msg.KEX_ECDH_INIT, msg.KEXINIT, msg.NEWKEYS, 32, msg.USERAUTH_REQUEST])
def test_wrong_message_type_is_refused(kind: int) -> None:
    """RFC 5656 §4: the only message the client expects is KEX_ECDH_REPLY (31)."""
    payload = bytes((kind,)) + ecdh_reply(BOB_PUBLIC)[1:]
    with pytest.raises(ProtocolError, match="expected KEX_ECDH_REPLY") as info:
        make_kex(ALICE_PRIVATE).receive(payload)
    assert info.value.reason is DisconnectReason.KEY_EXCHANGE_FAILED


def test_trailing_bytes_are_refused() -> None:
    """RFC 5656 §4: KEX_ECDH_REPLY has exactly three strings after the type."""
    with pytest.raises(DecodeError, match="KEX_ECDH_REPLY: 1 unexpected bytes at end"):
        make_kex(ALICE_PRIVATE).receive(ecdh_reply(BOB_PUBLIC) + b"\x00")


def test_every_truncation_is_a_decode_error() -> None:
    """RFC 5656 §4: a short KEX_ECDH_REPLY is malformed, whatever the cut."""
    reply = ecdh_reply(BOB_PUBLIC)
    for cut in range(1, len(reply)):
        with pytest.raises(DecodeError, match="KEX_ECDH_REPLY: truncated"):
            make_kex(ALICE_PRIVATE).receive(reply[:cut])


def test_kex_method_table() -> None:
    """RFC 8731 §2: curve25519-sha256 and the older libssh name are the same method."""
    assert KEX_METHODS["curve25519-sha256"] is Curve25519Kex
    assert KEX_METHODS["curve25519-sha256@libssh.org"] is Curve25519Kex


# --- negotiation (RFC 4253 §7.1) ---------------------------------------------------------------

AEAD = frozenset(name for name, spec in CIPHERS.items() if spec.aead)


def kexinit(
    kex: list[str],
    host_key: list[str] | None = None,
    ciphers: list[str] | None = None,
    macs: list[str] | None = None,
    compression: list[str] | None = None,
    *,
    ciphers_s2c: list[str] | None = None,
    macs_s2c: list[str] | None = None,
    compression_s2c: list[str] | None = None,
    follows: bool = False,
    cookie: bytes = bytes(range(16)),
    languages: tuple[list[str], list[str]] = ([], []),
    reserved: int = 0,
) -> bytes:
    """An SSH_MSG_KEXINIT payload, field by field (RFC 4253 §7.1)."""
    host_key = host_key if host_key is not None else ["ssh-ed25519"]
    ciphers = ciphers if ciphers is not None else ["aes128-ctr"]
    macs = macs if macs is not None else ["hmac-sha2-256"]
    compression = compression if compression is not None else ["none"]
    return b"".join(
        (
            byte(msg.KEXINIT),
            cookie,
            name_list(kex),
            name_list(host_key),
            name_list(ciphers),
            name_list(ciphers_s2c if ciphers_s2c is not None else ciphers),
            name_list(macs),
            name_list(macs_s2c if macs_s2c is not None else macs),
            name_list(compression),
            name_list(compression_s2c if compression_s2c is not None else compression),
            name_list(languages[0]),
            name_list(languages[1]),
            boolean(follows),
            uint32(reserved),
        )
    )


PREFS = AlgorithmPreferences(
    kex=["curve25519-sha256", "curve25519-sha256@libssh.org"],
    host_key=["ssh-ed25519", "rsa-sha2-512"],
    ciphers=["chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes128-ctr"],
    macs=["hmac-sha2-256-etm@openssh.com", "hmac-sha2-256"],
)


def test_kexinit_build_parse_round_trip() -> None:
    """RFC 4253 §7.1: our KEXINIT lists our algorithms, in order, for both directions; the first
    one also carries ext-info-c (RFC 8308 §2.1) and kex-strict-c-v00@openssh.com (OpenSSH PROTOCOL)."""
    cookie = bytes(range(100, 116))
    ours = KexInit.build(PREFS, lambda n: cookie[:n], initial=True)
    assert ours.payload[0] == msg.KEXINIT
    assert ours.payload[1:17] == cookie
    assert ours.kex == [*PREFS.kex, "ext-info-c", STRICT_KEX_CLIENT]
    assert ours.host_key == PREFS.host_key
    assert ours.ciphers_c2s == ours.ciphers_s2c == PREFS.ciphers
    assert ours.macs_c2s == ours.macs_s2c == PREFS.macs
    assert ours.compression_c2s == ours.compression_s2c == ["none"]
    assert ours.first_kex_packet_follows is False
    assert ours.payload.endswith(name_list([]) + name_list([]) + boolean(False) + uint32(0))
    assert KexInit.parse(ours.payload) == ours

    rekey = KexInit.build(PREFS, lambda n: cookie[:n], initial=False)
    assert rekey.kex == PREFS.kex  # the pseudo-algorithms mean nothing in a rekey


def test_kexinit_parse_all_fields() -> None:
    """RFC 4253 §7.1: every field is read; languages and the reserved word are accepted and ignored."""
    payload = kexinit(
        ["a", "b"],
        ["h"],
        ["c1"],
        ["m1"],
        ["zlib", "none"],
        ciphers_s2c=["c2", "c3"],
        macs_s2c=["m2"],
        compression_s2c=["none"],
        follows=True,
        languages=(["en"], ["fr"]),
        reserved=7,
    )
    parsed = KexInit.parse(payload)
    assert parsed.payload == payload
    assert (parsed.kex, parsed.host_key) == (["a", "b"], ["h"])
    assert (parsed.ciphers_c2s, parsed.ciphers_s2c) == (["c1"], ["c2", "c3"])
    assert (parsed.macs_c2s, parsed.macs_s2c) == (["m1"], ["m2"])
    assert (parsed.compression_c2s, parsed.compression_s2c) == (["zlib", "none"], ["none"])
    assert parsed.first_kex_packet_follows is True


def test_kexinit_parse_refuses_malformed() -> None:
    """RFC 4253 §7.1: a KEXINIT with trailing bytes, a cut, or a bad name-list is malformed."""
    payload = kexinit(["curve25519-sha256"])
    with pytest.raises(DecodeError, match="KEXINIT: 1 unexpected bytes at end"):
        KexInit.parse(payload + b"\x00")
    for cut in range(1, len(payload)):
        with pytest.raises(DecodeError, match="KEXINIT: truncated"):
            KexInit.parse(payload[:cut])
    with pytest.raises(DecodeError, match="empty name"):
        KexInit.parse(kexinit(["curve25519-sha256", ""]))


def test_negotiate_picks_the_clients_first_supported_choice() -> None:
    """RFC 4253 §7.1: "The chosen ... algorithm MUST be the first algorithm on the client's
    name-list that is also on the server's name-list" — whatever the server's order."""
    ours = KexInit.build(PREFS, bytes, initial=True)
    theirs = KexInit.parse(
        kexinit(
            ["curve25519-sha256@libssh.org", "curve25519-sha256"],
            ["rsa-sha2-512", "ssh-ed25519"],
            ["aes128-ctr", "aes128-gcm@openssh.com"],
            ["hmac-sha2-256", "hmac-sha2-256-etm@openssh.com"],
            ciphers_s2c=["aes128-ctr"],
        )
    )
    result = negotiate(ours, theirs, AEAD, initial=True)
    assert result.kex == "curve25519-sha256"
    assert result.host_key == "ssh-ed25519"
    assert result.client_to_server == DirectionAlgorithms("aes128-gcm@openssh.com", None, "none")
    assert result.server_to_client == DirectionAlgorithms(
        "aes128-ctr", "hmac-sha2-256-etm@openssh.com", "none"
    )
    assert not result.strict_kex
    assert not result.guess_was_wrong


def test_negotiate_ignores_pseudo_algorithms() -> None:
    """RFC 8308 §2.1 / OpenSSH PROTOCOL: ext-info-* and kex-strict-* only signal support; they are
    never chosen as the key exchange method, even when both sides list them."""
    pseudo = ["ext-info-c", "ext-info-s", STRICT_KEX_CLIENT, STRICT_KEX_SERVER]
    ours = KexInit.parse(kexinit([*pseudo, "curve25519-sha256"]))
    theirs = KexInit.parse(kexinit([*pseudo, "curve25519-sha256"]))
    assert negotiate(ours, theirs, AEAD, initial=True).kex == "curve25519-sha256"

    with pytest.raises(DisconnectError) as info:
        negotiate(KexInit.parse(kexinit(pseudo)), KexInit.parse(kexinit(pseudo)), AEAD, initial=True)
    assert info.value.code is DisconnectReason.KEY_EXCHANGE_FAILED


@pytest.mark.parametrize("cipher", sorted(AEAD))
def test_aead_cipher_gives_no_mac(cipher: str) -> None:
    """OpenSSH PROTOCOL.chacha20poly1305 / RFC 5647 as OpenSSH does it: an AEAD cipher ignores the
    MAC lists, so no common MAC is needed."""
    ours = KexInit.parse(kexinit(["curve25519-sha256"], ciphers=[cipher], macs=["hmac-sha2-256"]))
    theirs = KexInit.parse(kexinit(["curve25519-sha256"], ciphers=[cipher], macs=["hmac-md5"]))
    result = negotiate(ours, theirs, AEAD, initial=True)
    assert result.client_to_server.mac is None
    assert result.server_to_client.mac is None


@pytest.mark.parametrize(
    ("field", "category"),
    [
        ("kex", "key exchange"),
        ("host_key", "host key"),
        ("ciphers", "cipher (client to server)"),
        ("ciphers_s2c", "cipher (server to client)"),
        ("macs", "MAC (client to server)"),
        ("macs_s2c", "MAC (server to client)"),
        ("compression", "compression (client to server)"),
        ("compression_s2c", "compression (server to client)"),
    ],
)
def test_no_common_algorithm_is_key_exchange_failed(field: str, category: str) -> None:
    """RFC 4253 §7.1: "If no algorithm satisfying all these conditions can be found, the connection
    fails" — a DisconnectError (KEY_EXCHANGE_FAILED, ours) naming the category and both lists."""
    base: dict[str, list[str]] = {
        "kex": ["curve25519-sha256"],
        "host_key": ["ssh-ed25519"],
        "ciphers": ["aes128-ctr"],
        "macs": ["hmac-sha2-256"],
        "compression": ["none"],
    }
    ours = KexInit.parse(kexinit(**base))  # type: ignore[arg-type]
    server = dict(base)
    server[field] = ["x-one@example.com", "x-two@example.com"]
    if field.endswith("_s2c"):
        server[field.removesuffix("_s2c")] = base[field.removesuffix("_s2c")]
    theirs = KexInit.parse(kexinit(**server))  # type: ignore[arg-type]
    with pytest.raises(DisconnectError) as info:
        negotiate(ours, theirs, AEAD, initial=True)
    error = info.value
    assert error.code is DisconnectReason.KEY_EXCHANGE_FAILED
    assert error.local
    assert f"no {category} algorithm in common" in error.reason
    ours_list = ",".join(base[field.removesuffix("_s2c")])
    assert f"we offered {ours_list}" in error.reason
    assert "the server offered x-one@example.com,x-two@example.com" in error.reason


@pytest.mark.parametrize(
    ("server_kex", "initial", "strict"),
    [
        (["curve25519-sha256", STRICT_KEX_SERVER], True, True),
        (["curve25519-sha256", STRICT_KEX_SERVER], False, False),  # only the first exchange counts
        (["curve25519-sha256"], True, False),
        (["curve25519-sha256", STRICT_KEX_CLIENT], True, False),  # the client's marker is not the server's
    ],
)
def test_strict_kex(server_kex: list[str], initial: bool, strict: bool) -> None:
    """OpenSSH PROTOCOL "kex-strict": strict mode when the server lists kex-strict-s-v00@openssh.com
    in the initial KEXINIT (we always list the -c- marker there)."""
    ours = KexInit.build(PREFS, bytes, initial=initial)
    theirs = KexInit.parse(kexinit(server_kex, ciphers=["aes128-ctr"]))
    assert negotiate(ours, theirs, AEAD, initial=initial).strict_kex is strict


@pytest.mark.parametrize(
    ("client_kex", "server_kex", "client_hk", "server_hk", "follows", "wrong"),
    [
        (["k1", "k2"], ["k1", "k2"], ["h1"], ["h1"], True, False),
        (["k1", "k2"], ["k2", "k1"], ["h1"], ["h1"], True, True),
        (["k1"], ["k1"], ["h1", "h2"], ["h2", "h1"], True, True),
        (["k1", "k2"], ["k2", "k1"], ["h1"], ["h1"], False, False),  # no guess, nothing to be wrong
        (["k1", "k2"], ["k1"], ["h1"], ["h1"], True, False),
    ],
)
def test_guess_was_wrong(
    client_kex: list[str],
    server_kex: list[str],
    client_hk: list[str],
    server_hk: list[str],
    follows: bool,
    wrong: bool,
) -> None:
    """RFC 4253 §7: a guessed first kex packet is wrong when the kex or host key algorithm was
    guessed wrong; then it MUST be ignored."""
    ours = KexInit.parse(kexinit(client_kex, client_hk))
    theirs = KexInit.parse(kexinit(server_kex, server_hk, follows=follows))
    assert negotiate(ours, theirs, AEAD, initial=True).guess_was_wrong is wrong


def test_guess_is_wrong_when_preferred_algorithms_differ() -> None:
    """RFC 4253 §7: the client prefers k2 (which the server lacks), the server prefers k1; k1 is
    negotiated, but the preferred algorithms differ, so a guessing server treats its guess as
    wrong and sends the real packet — the client must ignore the guessed one to stay in step."""
    ours = KexInit.parse(kexinit(["k2", "k1"]))
    theirs = KexInit.parse(kexinit(["k1"], follows=True))
    negotiated = negotiate(ours, theirs, AEAD, initial=True)
    assert negotiated.kex == "k1"
    assert negotiated.guess_was_wrong is True


def test_server_ext_info_flag() -> None:
    """RFC 8308 §2.1: ext-info-s in the server's kex list is recorded, never chosen."""
    ours = KexInit.parse(kexinit(["curve25519-sha256"]))
    theirs = KexInit.parse(kexinit(["ext-info-s", "curve25519-sha256"]))
    assert negotiate(ours, theirs, AEAD, initial=True).server_ext_info is True


# --- version exchange (RFC 4253 §4.2) -----------------------------------------------------------


def feed_version(data: bytes, how: str) -> tuple[str | None, bytes, VersionParser]:
    """Feed ``data`` whole or byte by byte; returns (version, what is left in the buffer, parser)."""
    parser = VersionParser()
    buffer = bytearray()
    if how == "whole":
        buffer += data
        return parser.feed(buffer), bytes(buffer), parser
    for i in range(len(data)):
        buffer += data[i : i + 1]
        version = parser.feed(buffer)
        if version is not None:
            return version, bytes(buffer) + data[i + 1 :], parser
    return None, bytes(buffer), parser


@pytest.mark.parametrize("how", ["whole", "bytewise"])
@pytest.mark.parametrize(
    ("data", "version"),
    [
        (b"SSH-2.0-OpenSSH_9.6\r\n", "SSH-2.0-OpenSSH_9.6"),
        (b"SSH-2.0-OpenSSH_9.6\n", "SSH-2.0-OpenSSH_9.6"),  # bare LF: tolerated, as OpenSSH does
        (b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n", "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13"),
        (b"SSH-1.99-Cisco-1.25\r\n", "SSH-1.99-Cisco-1.25"),  # RFC 4253 §5.1: 1.99 means 2.0 too
    ],
)
def test_version_line_accepted(data: bytes, version: str, how: str) -> None:
    """RFC 4253 §4.2: "SSH-protoversion-softwareversion SP comments CR LF"; CR LF is stripped (the
    exchange hash uses the line without it, §8), and bytes after the line stay in the buffer."""
    got, rest, _ = feed_version(data + b"\x00\x00\x00\x0cpacket", how)
    assert got == version
    assert rest == b"\x00\x00\x00\x0cpacket"


@pytest.mark.parametrize("how", ["whole", "bytewise"])
def test_pre_banner_lines_accepted(how: str) -> None:
    """RFC 4253 §4.2: "The server MAY send other lines of data before sending the version string"."""
    data = b"Welcome\r\n\r\nno CR here\nnon-UTF-8 \xff\r\nSSH-2.0-Server\r\n"
    version, rest, parser = feed_version(data, how)
    assert version == "SSH-2.0-Server"
    assert rest == b""
    assert parser.pre_banner_lines == ["Welcome", "", "no CR here", "non-UTF-8 \ufffd"]


def test_partial_line_waits() -> None:
    """RFC 4253 §4.2: the version line ends at LF; until it arrives there is nothing to return."""
    parser = VersionParser()
    buffer = bytearray(b"SSH-2.0-Serv")
    assert parser.feed(buffer) is None
    assert bytes(buffer) == b"SSH-2.0-Serv"  # nothing consumed
    buffer += b"er\r"
    assert parser.feed(buffer) is None
    buffer += b"\n"
    assert parser.feed(buffer) == "SSH-2.0-Server"
    assert buffer == b""


@pytest.mark.parametrize(
    "line",
    [b"SSH-1.5-OldServer", b"SSH-1.0-x", b"SSH-3.0-x", b"SSH-2.0", b"SSH-2.0-", b"SSH-", b"SSH-2.0x-y"],
)
def test_unsupported_version_refused(line: bytes) -> None:
    """RFC 4253 §4.2 / §5.1: only protocol 2.0 (or 1.99) with a software version will do."""
    with pytest.raises(ProtocolError, match="unsupported protocol") as info:
        VersionParser().feed(bytearray(line + b"\r\n"))
    assert info.value.reason is DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED


def test_version_line_length_limit() -> None:
    """RFC 4253 §4.2: "The maximum length of the string is 255 characters, including the CR and LF"."""
    longest = b"SSH-2.0-" + b"x" * (253 - 8)
    assert VersionParser().feed(bytearray(longest + b"\r\n")) == longest.decode()
    with pytest.raises(ProtocolError, match="longer than 255") as info:
        VersionParser().feed(bytearray(longest + b"x\r\n"))
    assert info.value.reason is DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED


def test_endless_line_refused() -> None:
    """A server that sends more than 8 KiB without an end of line is refused rather than buffered."""
    parser = VersionParser()
    buffer = bytearray(b"x" * MAX_LINE_LENGTH)
    assert parser.feed(buffer) is None
    buffer += b"x"
    with pytest.raises(ProtocolError, match="without an end of line") as info:
        parser.feed(buffer)
    assert info.value.reason is DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED
    # A long line that does end in time is just a pre-banner line.
    long_line = bytearray(b"y" * MAX_LINE_LENGTH + b"\nSSH-2.0-ok\r\n")
    assert VersionParser().feed(long_line) == "SSH-2.0-ok"


def test_too_many_pre_banner_lines_refused() -> None:
    """OpenSSH's limit of 1024 lines before the version line, so junk cannot go on forever."""
    enough = b"junk\r\n" * MAX_PRE_BANNER_LINES + b"SSH-2.0-ok\r\n"
    assert VersionParser().feed(bytearray(enough)) == "SSH-2.0-ok"
    with pytest.raises(ProtocolError, match=f"within {MAX_PRE_BANNER_LINES} lines") as info:
        VersionParser().feed(bytearray(b"junk\r\n" * (MAX_PRE_BANNER_LINES + 1) + b"SSH-2.0-ok\r\n"))
    assert info.value.reason is DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED


@pytest.mark.parametrize("line", [b"SSH-2.0-a\x00b", b"SSH-2.0-\x00", b"SSH-2.0-ok\x00 comment"])
def test_nul_in_version_line_refused(line: bytes) -> None:
    """RFC 4253 §4.2: the version line must not contain a null character."""
    with pytest.raises(ProtocolError, match="NUL") as info:
        VersionParser().feed(bytearray(line + b"\r\n"))
    assert info.value.reason is DisconnectReason.PROTOCOL_VERSION_NOT_SUPPORTED


def test_non_ascii_version_line_refused() -> None:
    """RFC 4253 §4.2: protoversion and softwareversion are printable US-ASCII."""
    with pytest.raises(ProtocolError, match="not ASCII"):
        VersionParser().feed(bytearray(b"SSH-2.0-caf\xc3\xa9\r\n"))


def test_our_version_line() -> None:
    """RFC 4253 §4.2: our line is "SSH-2.0-" + a softwareversion of printable ASCII without
    whitespace or '-', CR LF terminated, at most 255 bytes."""
    line = version_line()
    assert line == CLIENT_VERSION.encode() + b"\r\n"
    assert line.startswith(b"SSH-2.0-")
    assert len(line) <= 255
    software = CLIENT_VERSION.removeprefix("SSH-2.0-").split(" ", 1)[0]
    assert software and all(0x21 <= ord(c) <= 0x7E and c != "-" for c in software)


# --- a whole first key exchange, keys derived independently (RFC 4253 §7.2) ----------------------


def derive(k: bytes, h: bytes, session_id: bytes, letter: bytes, size: int) -> bytes:
    """RFC 4253 §7.2: K1 = HASH(K || H || X || session_id), Kn = HASH(K || H || K1 || ... || Kn-1)."""
    out = hashlib.sha256(k + h + letter + session_id).digest()
    while len(out) < size:
        out += hashlib.sha256(k + h + out).digest()
    return out[:size]


@dataclass(frozen=True)
class Choice:
    """What the server lists for each direction (and so what gets negotiated)."""

    c2s: str
    s2c: str
    mac_c2s: str | None = None
    mac_s2c: str | None = None

    def __str__(self) -> str:
        return "/".join(str(x) for x in (self.c2s, self.mac_c2s, self.s2c, self.mac_s2c) if x)


CHOICES = [
    Choice("chacha20-poly1305@openssh.com", "chacha20-poly1305@openssh.com"),  # 64-byte keys: extended
    Choice("aes256-gcm@openssh.com", "aes128-gcm@openssh.com"),
    Choice("aes128-ctr", "aes256-ctr", "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512"),  # 64-byte MAC key
    Choice("aes192-ctr", "chacha20-poly1305@openssh.com", "hmac-sha2-512-etm@openssh.com", None),
]


def server_keys(choice: Choice, k: bytes, h: bytes, c2s: bool) -> tuple[str, str | None, bytes, bytes, bytes]:
    """RFC 4253 §7.2: IVs A/B, keys C/D, MAC keys E/F, client-to-server first."""
    cipher, mac = (choice.c2s, choice.mac_c2s) if c2s else (choice.s2c, choice.mac_s2c)
    letters = b"ACE" if c2s else b"BDF"
    spec = CIPHERS[cipher]
    iv = derive(k, h, h, letters[0:1], spec.iv_size) if spec.iv_size else b""
    key = derive(k, h, h, letters[1:2], spec.key_size)
    mac_key = derive(k, h, h, letters[2:3], MACS[mac].key_size) if mac else b""
    return cipher, mac, key, iv, mac_key


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "not-strict"])
@pytest.mark.parametrize("choice", CHOICES, ids=str)
def test_first_key_exchange_against_scripted_server(choice: Choice, strict: bool) -> None:
    """RFC 4253 §7-§8 and RFC 8731 §3 end to end: the server's signature over H (computed here from
    V_C, V_S, I_C, I_S, K_S, Q_C, Q_S, K) verifies, the session id is H, and packets sealed with
    keys derived here by RFC 4253 §7.2 (letters A-F) pass both ways after NEWKEYS; under strict KEX
    (OpenSSH PROTOCOL) the sequence numbers restart at 0."""
    prefs = AlgorithmPreferences(
        kex=["curve25519-sha256"],
        host_key=["ssh-ed25519"],
        ciphers=list(CIPHERS),
        macs=list(MACS),
    )
    state = TransportState(prefs, random=random.Random(42).randbytes)
    state.start()
    out = bytes(state.data_to_send())
    v_c, _, rest = out.partition(b"\r\n")
    assert v_c == CLIENT_VERSION.encode()
    server_reader, server_writer = PacketReader(), PacketWriter()
    server_reader.feed(rest)
    seq, i_c = server_reader.next_packet() or (None, b"")
    assert (seq, i_c[0]) == (0, msg.KEXINIT)

    v_s = b"SSH-2.0-Scripted_1.0 test server"
    i_s = kexinit(
        ["curve25519-sha256", *([STRICT_KEX_SERVER] if strict else [])],
        ["ssh-ed25519"],
        [choice.c2s],
        [m for m in (choice.mac_c2s,) if m] or ["hmac-sha2-256"],
        ciphers_s2c=[choice.s2c],
        macs_s2c=[m for m in (choice.mac_s2c,) if m] or ["hmac-sha2-256"],
    )
    server_writer.write(i_s)
    state.receive_data(b"a pre-banner line\r\n" + v_s + b"\r\n" + bytes(server_writer.take()))
    assert state.next_event() is NEED_DATA
    server_reader.feed(bytes(state.data_to_send()))
    seq, ecdh_init = server_reader.next_packet() or (None, b"")
    assert seq == 1 and ecdh_init[0] == msg.KEX_ECDH_INIT
    q_c = ecdh_init[5:]
    assert ecdh_init == byte(msg.KEX_ECDH_INIT) + string(q_c) and len(q_c) == 32

    host_key = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"host key").digest())
    k_s = string("ssh-ed25519") + string(host_key.public_key().public_bytes_raw())
    ephemeral = x25519.X25519PrivateKey.from_private_bytes(hashlib.sha256(b"server ephemeral").digest())
    q_s = ephemeral.public_key().public_bytes_raw()
    raw_k = ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(bytes(q_c)))
    k = mpint(int.from_bytes(raw_k, "big"))
    h = hashlib.sha256(
        string(v_c) + string(v_s) + string(i_c) + string(i_s) + string(k_s) + string(q_c) + string(q_s) + k
    ).digest()
    signature = string("ssh-ed25519") + string(host_key.sign(h))
    server_writer.write(ecdh_reply(q_s, k_s, signature))
    server_writer.write(byte(msg.NEWKEYS))
    server_writer.set_sealer(make_sealer(*_spec(server_keys(choice, k, h, c2s=False))), reset_seq=strict)
    state.receive_data(bytes(server_writer.take()))

    event = state.next_event()
    assert isinstance(event, HostKeyReceived)
    assert event.key.blob == k_s
    state.accept_host_key()
    server_reader.feed(bytes(state.data_to_send()))
    assert server_reader.next_packet() == (2, byte(msg.NEWKEYS))
    server_reader.set_opener(make_opener(*_spec(server_keys(choice, k, h, c2s=True))), reset_seq=strict)

    event = state.next_event()
    assert isinstance(event, KexComplete)
    assert event.initial
    assert state.session_id == h
    assert state.strict_kex is strict
    assert event.negotiated.client_to_server == DirectionAlgorithms(choice.c2s, choice.mac_c2s, "none")
    assert event.negotiated.server_to_client == DirectionAlgorithms(choice.s2c, choice.mac_s2c, "none")

    first_seq = 0 if strict else 3
    request = byte(msg.SERVICE_REQUEST) + string("ssh-userauth")
    state.send(request)
    state.send(byte(msg.IGNORE) + string(bytes(1000)))
    server_reader.feed(bytes(state.data_to_send()))
    assert server_reader.next_packet() == (first_seq, request)
    assert server_reader.next_packet() == (first_seq + 1, byte(msg.IGNORE) + string(bytes(1000)))

    accept = byte(msg.SERVICE_ACCEPT) + string("ssh-userauth")
    server_writer.write(accept)
    state.receive_data(bytes(server_writer.take()))
    assert state.next_event() == PacketReceived(first_seq, accept)


def _spec(keys: tuple[str, str | None, bytes, bytes, bytes]) -> tuple:  # type: ignore[type-arg]
    cipher, mac, key, iv, mac_key = keys
    return CIPHERS[cipher], MACS[mac] if mac else None, key, iv, mac_key


def test_signature_over_a_different_hash_is_refused() -> None:
    """RFC 4253 §8: the server signs H; a signature over anything else (here H without V_S) means
    the exchange was tampered with, and the host key cannot be trusted."""
    prefs = AlgorithmPreferences(
        kex=["curve25519-sha256"], host_key=["ssh-ed25519"], ciphers=["aes128-ctr"], macs=["hmac-sha2-256"]
    )
    state = TransportState(prefs, random=random.Random(3).randbytes)
    state.start()
    v_c, _, rest = bytes(state.data_to_send()).partition(b"\r\n")
    server_reader, server_writer = PacketReader(), PacketWriter()
    server_reader.feed(rest)
    _, i_c = server_reader.next_packet() or (0, b"")
    i_s = kexinit(["curve25519-sha256"])
    server_writer.write(i_s)
    state.receive_data(b"SSH-2.0-S\r\n" + bytes(server_writer.take()))
    assert state.next_event() is NEED_DATA
    server_reader.feed(bytes(state.data_to_send()))
    _, ecdh_init = server_reader.next_packet() or (0, b"")
    q_c = ecdh_init[5:]
    host_key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(32))
    k_s = string("ssh-ed25519") + string(host_key.public_key().public_bytes_raw())
    ephemeral = x25519.X25519PrivateKey.from_private_bytes(bytes(range(32)))
    q_s = ephemeral.public_key().public_bytes_raw()
    k = mpint(int.from_bytes(ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(bytes(q_c))), "big"))
    wrong_h = hashlib.sha256(
        string(v_c) + string(i_c) + string(i_s) + string(k_s) + string(q_c) + string(q_s) + k
    ).digest()
    server_writer.write(ecdh_reply(q_s, k_s, string("ssh-ed25519") + string(host_key.sign(wrong_h))))
    state.receive_data(bytes(server_writer.take()))
    with pytest.raises(HostKeyNotVerifiable, match="does not verify"):
        state.next_event()
