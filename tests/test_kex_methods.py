"""The key exchange methods beyond curve25519: NIST ECDH, the MODP groups, group exchange, mlkem768x25519.

Each method is driven as the transport drives it (start, then each server message), with the server's side
computed here from `cryptography` and the exchange hash recomputed with hashlib from the RFCs' definitions, so
a method that agreed with itself but not with the RFC would fail. Bad server values end the exchange with a
ProtocolError that names what was wrong. Against real servers: tests/test_integration.py (OpenSSH: every
method with every host key type) and tests/test_interop.py (Dropbear; AsyncSSH for mlkem768x25519).
"""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import dh, ec, mlkem, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from trissh import _messages as msg
from trissh._algorithms.kex import (
    DEFAULT_KEX_ALGORITHMS,
    KEX_METHODS,
    LEGACY_KEX_ALGORITHMS,
    GexBits,
    KexMethod,
    KexResult,
    KexSetup,
)
from trissh._algorithms.kex.groups import GROUP1, GROUP14, GROUP16, GROUP18, ModpGroup
from trissh._errors import DisconnectReason, ProtocolError
from trissh._wire import Reader, mpint, string, uint32

# The server side of the DH tests uses cryptography's FFDH, deprecated in cryptography 50.
pytestmark = pytest.mark.filterwarnings("ignore:Diffie-Hellman over finite fields")

PREFIX = string(b"SSH-2.0-client") + string(b"SSH-2.0-server") + string(b"\x14I_C") + string(b"\x14I_S")
HOST_KEY = string("ssh-ed25519") + string(bytes(range(32)))
SIGNATURE = string("ssh-ed25519") + string(bytes(64))

HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def make(name: str, gex_bits: GexBits | None = None) -> KexMethod:
    return KEX_METHODS[name](KexSetup(name, PREFIX, os.urandom, gex_bits or GexBits()))


def hash_of(name: str, data: bytes) -> bytes:
    return HASHES[name.rsplit("-", 1)[1].split("@")[0]](data).digest()


def init_value(payload: bytes, expected_type: int) -> Reader:
    assert payload[0] == expected_type
    reader = Reader(payload, "init")
    reader.byte()
    return reader


# --- the MODP groups -----------------------------------------------------------------------------


def _pi_times_two_to(bits: int) -> int:
    """floor(pi * 2**bits), by Machin's formula in fixed point (with guard bits)."""
    guard = 64
    one = 1 << (bits + guard)

    def arctan_of_inverse(x: int) -> int:
        total = term = one // x
        k, sign = 1, -1
        while term:
            term //= x * x
            total += sign * (term // (2 * k + 1))
            k, sign = k + 1, -sign
        return total

    return (16 * arctan_of_inverse(5) - 4 * arctan_of_inverse(239)) >> guard


@pytest.mark.parametrize("group", [GROUP1, GROUP14, GROUP16, GROUP18], ids=lambda g: str(g.bits))
def test_group_primes_follow_their_definition(group: ModpGroup) -> None:
    """RFC 2409 §6.2 / RFC 3526: p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) pi) + offset), g = 2."""
    n = group.bits
    assert n in (1024, 2048, 4096, 8192)
    assert group.prime == 2**n - 2 ** (n - 64) - 1 + 2**64 * (_pi_times_two_to(n - 130) + group.offset)
    assert group.generator == 2
    if n <= 4096:  # a Fermat check that the prime is (probably) prime; 8192 bits would take seconds
        assert pow(2, group.prime - 1, group.prime) == 1


# --- fixed groups ------------------------------------------------------------------------------------

FIXED_GROUPS = {
    "diffie-hellman-group14-sha256": GROUP14,
    "diffie-hellman-group16-sha512": GROUP16,
    "diffie-hellman-group18-sha512": GROUP18,
    "diffie-hellman-group14-sha1": GROUP14,
    "diffie-hellman-group1-sha1": GROUP1,
}


def server_dh(prime: int, generator: int, client_value: int) -> tuple[int, int]:
    """The server's (f, K) for the client's e, from cryptography."""
    numbers = dh.DHParameterNumbers(prime, generator)
    private = numbers.parameters().generate_private_key()
    peer = dh.DHPublicNumbers(client_value, numbers).public_key()
    shared = int.from_bytes(private.exchange(peer), "big")
    return private.public_key().public_numbers().y, shared


@pytest.mark.parametrize("name", list(FIXED_GROUPS))
def test_fixed_group_exchange(name: str) -> None:
    group = FIXED_GROUPS[name]
    kex = make(name)
    e = init_value(kex.start(), msg.KEXDH_INIT).mpint()
    assert 1 < e < group.prime - 1
    f, k = server_dh(group.prime, 2, e)
    result = kex.receive(bytes([msg.KEXDH_REPLY]) + string(HOST_KEY) + mpint(f) + string(SIGNATURE))
    assert isinstance(result, KexResult)
    assert result.shared_secret == mpint(k)
    assert result.exchange_hash == hash_of(name, PREFIX + string(HOST_KEY) + mpint(e) + mpint(f) + mpint(k))
    assert (result.host_key_blob, result.signature) == (HOST_KEY, SIGNATURE)


@pytest.mark.parametrize("bad", [0, 1, "p-1", "p", "p+1", -5])
def test_fixed_group_refuses_a_value_out_of_range(bad: object) -> None:
    """RFC 4253 §8: f must lie in (1, p-1): 0, 1 and p-1 would give a known shared secret."""
    p = GROUP14.prime
    f = {"p-1": p - 1, "p": p, "p+1": p + 1}.get(bad, bad)  # type: ignore[call-overload]
    kex = make("diffie-hellman-group14-sha256")
    kex.start()
    with pytest.raises(ProtocolError, match="f is out of range") as info:
        kex.receive(bytes([msg.KEXDH_REPLY]) + string(HOST_KEY) + mpint(f) + string(SIGNATURE))
    assert info.value.reason == DisconnectReason.KEY_EXCHANGE_FAILED


# --- group exchange ------------------------------------------------------------------------------------


def gex_group(prime: int, generator: int = 2) -> bytes:
    return bytes([msg.KEX_DH_GEX_GROUP]) + mpint(prime) + mpint(generator)


@pytest.mark.parametrize(
    "name", ["diffie-hellman-group-exchange-sha256", "diffie-hellman-group-exchange-sha1"]
)
def test_group_exchange(name: str) -> None:
    bits = GexBits(2048, 4096, 8192)
    kex = make(name, bits)
    request = Reader(kex.start(), "request")
    assert request.byte() == msg.KEX_DH_GEX_REQUEST
    assert (request.uint32(), request.uint32(), request.uint32()) == (2048, 4096, 8192)
    request.check_end()
    init = kex.receive(gex_group(GROUP16.prime))
    assert isinstance(init, bytes)
    e = init_value(init, msg.KEX_DH_GEX_INIT).mpint()
    f, k = server_dh(GROUP16.prime, 2, e)
    result = kex.receive(bytes([msg.KEX_DH_GEX_REPLY]) + string(HOST_KEY) + mpint(f) + string(SIGNATURE))
    assert isinstance(result, KexResult)
    assert result.shared_secret == mpint(k)
    # RFC 4419 §3: H covers min, n, max, p and g between K_S and e.
    expected = (
        PREFIX
        + string(HOST_KEY)
        + uint32(2048)
        + uint32(4096)
        + uint32(8192)
        + mpint(GROUP16.prime)
        + mpint(2)
        + mpint(e)
        + mpint(f)
        + mpint(k)
    )
    assert result.exchange_hash == hash_of(name, expected)


def test_group_exchange_defaults_are_openssh_sizes() -> None:
    request = Reader(make("diffie-hellman-group-exchange-sha256").start(), "request")
    request.byte()
    assert (request.uint32(), request.uint32(), request.uint32()) == (2048, 3072, 8192)


@pytest.mark.parametrize(
    ("group", "match"),
    [
        (gex_group(GROUP1.prime), "server offered a 1024-bit group; we asked for 2048 to 8192 bits"),
        (gex_group(GROUP18.prime * 4 + 1), r"server offered a 8194-bit group; we asked for 2048 to 8192"),
        (gex_group(GROUP14.prime + 1), "modulus is even"),
        (gex_group(GROUP14.prime, 1), "generator is out of range: 1"),
        (gex_group(GROUP14.prime, GROUP14.prime - 1), "generator is out of range"),
        (bytes([msg.KEX_DH_GEX_REPLY]) + string(HOST_KEY), "expected KEX_DH_GEX_GROUP, got KEX_DH_GEX_REPLY"),
    ],
)
def test_group_exchange_refuses_weak_or_malformed_groups(group: bytes, match: str) -> None:
    kex = make("diffie-hellman-group-exchange-sha256")
    kex.start()
    with pytest.raises(ProtocolError, match=match) as info:
        kex.receive(group)
    assert info.value.reason == DisconnectReason.KEY_EXCHANGE_FAILED


def test_group_exchange_minimum_is_a_setting() -> None:
    """A caller who must talk to an old server may accept 1024-bit groups; the default refuses them."""
    kex = make("diffie-hellman-group-exchange-sha256", GexBits(1024, 2048, 8192))
    kex.start()
    assert isinstance(kex.receive(gex_group(GROUP1.prime)), bytes)
    with pytest.raises(ValueError, match="minimum <= preferred <= maximum"):
        GexBits(4096, 2048, 8192)


def test_group_exchange_refuses_f_out_of_range() -> None:
    kex = make("diffie-hellman-group-exchange-sha256")
    kex.start()
    kex.receive(gex_group(GROUP14.prime))
    with pytest.raises(ProtocolError, match="f is out of range"):
        kex.receive(bytes([msg.KEX_DH_GEX_REPLY]) + string(HOST_KEY) + mpint(1) + string(SIGNATURE))


# --- NIST ECDH ---------------------------------------------------------------------------------------------

NIST = {
    "ecdh-sha2-nistp256": ec.SECP256R1(),
    "ecdh-sha2-nistp384": ec.SECP384R1(),
    "ecdh-sha2-nistp521": ec.SECP521R1(),
}
NIST_HASH = {"ecdh-sha2-nistp256": "sha256", "ecdh-sha2-nistp384": "sha384", "ecdh-sha2-nistp521": "sha512"}


@pytest.mark.parametrize("name", list(NIST))
def test_nist_ecdh(name: str) -> None:
    curve = NIST[name]
    kex = make(name)
    q_c = init_value(kex.start(), msg.KEX_ECDH_INIT).string()
    server = ec.generate_private_key(curve)
    q_s = server.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    k = server.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(curve, q_c))
    result = kex.receive(bytes([msg.KEX_ECDH_REPLY]) + string(HOST_KEY) + string(q_s) + string(SIGNATURE))
    assert isinstance(result, KexResult)
    assert result.shared_secret == mpint(int.from_bytes(k, "big"))
    digest = HASHES[NIST_HASH[name]]
    assert (
        result.exchange_hash
        == digest(
            PREFIX + string(HOST_KEY) + string(q_c) + string(q_s) + mpint(int.from_bytes(k, "big"))
        ).digest()
    )


@pytest.mark.parametrize(
    "point",
    [
        b"",
        b"\x04" + bytes(64),  # (0, 0) is not on P-256
        b"\x04" + b"\x01" * 64,
        b"\x05" + bytes(64),  # not a point encoding
    ],
)
def test_nist_ecdh_refuses_points_off_the_curve(point: bytes) -> None:
    kex = make("ecdh-sha2-nistp256")
    kex.start()
    with pytest.raises(ProtocolError, match="not a point on secp256r1"):
        kex.receive(bytes([msg.KEX_ECDH_REPLY]) + string(HOST_KEY) + string(point) + string(SIGNATURE))


def test_a_point_of_another_curve_is_refused() -> None:
    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    point = other.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    kex = make("ecdh-sha2-nistp256")
    kex.start()
    with pytest.raises(ProtocolError, match="not a point on secp256r1"):
        kex.receive(bytes([msg.KEX_ECDH_REPLY]) + string(HOST_KEY) + string(point) + string(SIGNATURE))


# --- mlkem768x25519-sha256 ----------------------------------------------------------------------------------


def test_mlkem768x25519() -> None:
    kex = make("mlkem768x25519-sha256")
    client_init = init_value(kex.start(), msg.KEX_HYBRID_INIT).string()
    assert len(client_init) == 1184 + 32
    encapsulation_key = mlkem.MLKEM768PublicKey.from_public_bytes(client_init[:1184])
    kem_secret, ciphertext = encapsulation_key.encapsulate()
    server_x = x25519.X25519PrivateKey.generate()
    classic_secret = server_x.exchange(x25519.X25519PublicKey.from_public_bytes(client_init[1184:]))
    server_reply = ciphertext + server_x.public_key().public_bytes_raw()
    result = kex.receive(
        bytes([msg.KEX_HYBRID_REPLY]) + string(HOST_KEY) + string(server_reply) + string(SIGNATURE)
    )
    assert isinstance(result, KexResult)
    # K = SHA-256(ML-KEM secret || X25519 secret), a string, not an mpint.
    k = string(hashlib.sha256(kem_secret + classic_secret).digest())
    assert result.shared_secret == k
    assert (
        result.exchange_hash
        == hashlib.sha256(PREFIX + string(HOST_KEY) + string(client_init) + string(server_reply) + k).digest()
    )


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        (bytes(1088 + 31), "1119 bytes, expected 1120"),
        (bytes(1088 + 33), "1121 bytes, expected 1120"),
        (bytes(1088) + bytes(32), "all-zero shared secret"),  # the X25519 half is a low-order point
    ],
)
def test_mlkem768x25519_refuses_bad_replies(reply: bytes, match: str) -> None:
    kex = make("mlkem768x25519-sha256")
    kex.start()
    with pytest.raises(ProtocolError, match=match):
        kex.receive(bytes([msg.KEX_HYBRID_REPLY]) + string(HOST_KEY) + string(reply) + string(SIGNATURE))


def test_mlkem768x25519_tampered_ciphertext_gives_another_secret() -> None:
    """ML-KEM's implicit rejection: a changed ciphertext decapsulates to an unrelated secret, so the
    keys differ and the server's signature over H fails (checked in the state machine)."""
    kex = make("mlkem768x25519-sha256")
    client_init = init_value(kex.start(), msg.KEX_HYBRID_INIT).string()
    kem_secret, ciphertext = mlkem.MLKEM768PublicKey.from_public_bytes(client_init[:1184]).encapsulate()
    server_x = x25519.X25519PrivateKey.generate()
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    reply = tampered + server_x.public_key().public_bytes_raw()
    result = kex.receive(bytes([msg.KEX_HYBRID_REPLY]) + string(HOST_KEY) + string(reply) + string(SIGNATURE))
    assert isinstance(result, KexResult)
    classic = server_x.exchange(x25519.X25519PublicKey.from_public_bytes(client_init[1184:]))
    assert result.shared_secret != string(hashlib.sha256(kem_secret + classic).digest())


# --- every method --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(KEX_METHODS))
def test_every_method_names_the_message_it_expected(name: str) -> None:
    kex = make(name)
    kex.start()
    with pytest.raises(ProtocolError, match=rf"{name}: expected KEX") as info:
        kex.receive(bytes([msg.KEX_DH_GEX_REQUEST]) + bytes(12))
    assert info.value.reason == DisconnectReason.KEY_EXCHANGE_FAILED


@pytest.mark.parametrize("name", list(KEX_METHODS))
def test_every_method_refuses_trailing_bytes(name: str) -> None:
    kex = make(name)
    first = kex.start()
    if name.startswith("diffie-hellman-group-exchange"):
        assert first[0] == msg.KEX_DH_GEX_REQUEST
        with pytest.raises(ProtocolError):
            kex.receive(gex_group(GROUP14.prime) + b"junk")
        return
    with pytest.raises(ProtocolError):
        kex.receive(bytes([31]) + string(HOST_KEY) + string(bytes(32)) + string(SIGNATURE) + b"junk")


def test_defaults_follow_openssh_and_leave_legacy_out() -> None:
    assert DEFAULT_KEX_ALGORITHMS == [
        "mlkem768x25519-sha256",
        "curve25519-sha256",
        "curve25519-sha256@libssh.org",
        "ecdh-sha2-nistp256",
        "ecdh-sha2-nistp384",
        "ecdh-sha2-nistp521",
        "diffie-hellman-group-exchange-sha256",
        "diffie-hellman-group16-sha512",
        "diffie-hellman-group18-sha512",
        "diffie-hellman-group14-sha256",
    ]
    assert set(KEX_METHODS) >= LEGACY_KEX_ALGORITHMS
    assert not LEGACY_KEX_ALGORITHMS & set(DEFAULT_KEX_ALGORITHMS)
    assert all("sha1" in name for name in LEGACY_KEX_ALGORITHMS)
