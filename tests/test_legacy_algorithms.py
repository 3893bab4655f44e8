"""The opt-in legacy algorithms: AES-CBC (RFC 4253 §6.3), hmac-sha1 and hmac-sha1-etm@openssh.com
(RFC 4253 §6.4, OpenSSH PROTOCOL §1.5), and ssh-rsa host key signatures (RFC 4253 §6.6).

They work when a caller names them and are never offered otherwise. The packet tests check
trissh's sealer and opener against CBC and HMAC computed here with ``cryptography`` directly;
the server tests run them against OpenSSH with the legacy algorithms switched back on.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from contextlib import suppress

import pytest
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from test_integration import connect

import trissh
from trissh._algorithms.ciphers import (
    CIPHERS,
    DEFAULT_CIPHERS,
    DEFAULT_MACS,
    LEGACY_CIPHERS,
    LEGACY_MACS,
    MACS,
    MAX_OVERHEAD,
    MAX_PACKET_LENGTH,
    Opener,
    PacketError,
    Sealer,
    make_opener,
    make_sealer,
)
from trissh._algorithms.hostkeys import (
    DEFAULT_HOST_KEY_ALGORITHMS,
    HOST_KEY_ALGORITHMS,
    LEGACY_HOST_KEY_ALGORITHMS,
)
from trissh._errors import DisconnectReason
from trissh._transport.negotiate import AlgorithmPreferences, KexInit
from trissh._transport.packets import PacketReader
from trissh.testing import SSHServer, start_sshd

MiB = 1024 * 1024
CBC_CIPHERS = ["aes128-cbc", "aes192-cbc", "aes256-cbc"]
SHA1_MACS = ["hmac-sha1", "hmac-sha1-etm@openssh.com"]

# Every MAC'd (cipher, MAC) pair that involves a legacy algorithm: CBC with every MAC, and the
# SHA-1 MACs with every other non-AEAD cipher.
LEGACY_PAIRS = [
    (cipher, mac)
    for cipher, spec in CIPHERS.items()
    if not spec.aead
    for mac, mac_spec in MACS.items()
    if spec.legacy or mac_spec.legacy
]
CBC_PAIRS = [(cipher, mac) for cipher, mac in LEGACY_PAIRS if cipher in CBC_CIPHERS]
pairs = pytest.mark.parametrize(("cipher", "mac"), LEGACY_PAIRS)
cbc_pairs = pytest.mark.parametrize(("cipher", "mac"), CBC_PAIRS)


# --- the tables ------------------------------------------------------------------------------


def test_legacy_names() -> None:
    """The legacy rows are exactly the CBC ciphers, the SHA-1 MACs and ssh-rsa (SHA-1 signatures)."""
    assert set(CBC_CIPHERS) == LEGACY_CIPHERS
    assert set(SHA1_MACS) == LEGACY_MACS
    assert {"ssh-rsa"} == LEGACY_HOST_KEY_ALGORITHMS
    assert all(CIPHERS[name].legacy for name in CBC_CIPHERS)
    assert all(MACS[name].legacy for name in SHA1_MACS)
    assert HOST_KEY_ALGORITHMS["ssh-rsa"].legacy


def test_defaults_contain_no_legacy_name() -> None:
    """Secure by default: no legacy name in the default lists, nor in the KEXINIT built from them."""
    assert not LEGACY_CIPHERS & set(DEFAULT_CIPHERS)
    assert not LEGACY_MACS & set(DEFAULT_MACS)
    assert not LEGACY_HOST_KEY_ALGORITHMS & set(DEFAULT_HOST_KEY_ALGORITHMS)
    prefs = AlgorithmPreferences(
        kex=["curve25519-sha256"],
        host_key=DEFAULT_HOST_KEY_ALGORITHMS,
        ciphers=DEFAULT_CIPHERS,
        macs=DEFAULT_MACS,
    )
    kexinit = KexInit.build(prefs, os.urandom, initial=True)
    offered = {*kexinit.host_key, *kexinit.ciphers_c2s, *kexinit.ciphers_s2c, *kexinit.macs_c2s}
    offered |= set(kexinit.macs_s2c)
    assert not offered & (LEGACY_CIPHERS | LEGACY_MACS | LEGACY_HOST_KEY_ALGORITHMS)


@pytest.mark.parametrize("name", CBC_CIPHERS)
def test_cbc_table_rows(name: str) -> None:
    """RFC 4253 §6.3: AES-CBC with a 128/192/256-bit key and a 16-byte IV."""
    spec = CIPHERS[name]
    assert (spec.key_size, spec.iv_size, spec.family, spec.aead) == (int(name[3:6]) // 8, 16, "cbc", False)


@pytest.mark.parametrize("name", SHA1_MACS)
def test_sha1_mac_table_rows(name: str) -> None:
    """RFC 4253 §6.4: hmac-sha1 has a 20-byte key and a 20-byte tag; the -etm variant MACs the ciphertext."""
    spec = MACS[name]
    assert (spec.hash, spec.key_size, spec.size, spec.etm) == (
        hashes.SHA1,
        20,
        20,
        name.endswith("-etm@openssh.com"),
    )


# --- packets: round trips and tampering --------------------------------------------------


def _keys(cipher: str, mac: str, seed: int = 0) -> tuple[bytes, bytes, bytes]:
    rng = random.Random(f"{cipher}/{mac}/{seed}")
    return rng.randbytes(CIPHERS[cipher].key_size), rng.randbytes(16), rng.randbytes(MACS[mac].key_size)


def _pair(cipher: str, mac: str) -> tuple[Sealer, Opener]:
    key, iv, mac_key = _keys(cipher, mac)
    rand = random.Random(1).randbytes
    sealer = make_sealer(CIPHERS[cipher], MACS[mac], key, iv, mac_key, rand)
    return sealer, make_opener(CIPHERS[cipher], MACS[mac], key, iv, mac_key)


def _seal(sealer: Sealer, seq: int, payload: bytes, tail: bytes = b"") -> bytes:
    out = bytearray(len(payload) + len(tail) + MAX_OVERHEAD)
    return bytes(out[: sealer.seal_into(seq, payload, memoryview(out), tail)])


def _open(opener: Opener, seq: int, packet: bytes) -> bytes:
    """What the packet reader does: the size from the first header_size bytes, then the whole packet."""
    view = memoryview(packet)
    size = opener.packet_size(seq, view[: opener.header_size])
    assert size == len(packet)
    return bytes(opener.open(seq, view))


@pairs
def test_round_trip(cipher: str, mac: str) -> None:
    """RFC 4253 §6: payloads of any size survive seal → open in order, one state per direction;
    every packet is whole cipher blocks (16) plus the 20- or 32-byte MAC."""
    sealer, opener = _pair(cipher, mac)
    sizes = [0, 1, 15, 16, 17, 31, 255, 1000, 32768, 100_000]
    payloads = [random.Random(size).randbytes(size) for size in sizes]
    for seq, payload in enumerate(payloads):
        # Half the packets pass their payload as payload + tail, as a channel does.
        split = len(payload) // 3 if seq % 2 else len(payload)
        packet = _seal(sealer, seq, payload[:split], payload[split:])
        clear = 4 if MACS[mac].etm else 0  # the length field, outside the cipher under EtM
        assert (len(packet) - clear - MACS[mac].size) % 16 == 0
        assert _open(opener, seq, packet) == payload


@pairs
def test_flipped_bits_fail_the_mac(cipher: str, mac: str) -> None:
    """RFC 4253 §6.4: a bit flipped anywhere after the bytes that carry the length (ciphertext,
    padding, MAC) is refused with MAC_ERROR; a flip in the length bytes is refused too, or makes
    the packet claim another size (so it never opens)."""
    sealer, _ = _pair(cipher, mac)
    seq = 3
    packet = _seal(sealer, seq, random.Random(5).randbytes(200))
    header = 4 if MACS[mac].etm else 16
    for pos in range(len(packet)):
        tampered = bytearray(packet)
        tampered[pos] ^= 1 << (pos % 8)
        _, opener = _pair(cipher, mac)
        view = memoryview(bytes(tampered))
        try:
            size = opener.packet_size(seq, view[: opener.header_size])
        except PacketError:
            assert pos < header, pos
            continue
        if size != len(packet):
            assert pos < header, pos
            continue
        with pytest.raises(PacketError) as info:
            opener.open(seq, view)
        assert info.value.reason is DisconnectReason.MAC_ERROR, pos


@pairs
def test_replayed_packet_fails(cipher: str, mac: str) -> None:
    """RFC 4253 §6.4: the sequence number is in the MAC, so a packet opened under another number fails."""
    sealer, opener = _pair(cipher, mac)
    packet = _seal(sealer, 0, b"hello")
    with pytest.raises(PacketError):
        _open(opener, 1, packet)


# --- CBC chaining, checked with cryptography directly ----------------------------------


def _independent_mac(mac: str, key: bytes, seq: int, data: bytes) -> bytes:
    digest = hmac.HMAC(key, MACS[mac].hash())
    digest.update(seq.to_bytes(4, "big") + data)
    return digest.finalize()


def _encrypted_part(packet: bytes, mac: str) -> bytes:
    """The CBC ciphertext of a packet: all but the MAC, and without the clear length under EtM."""
    size = MACS[mac].size
    return packet[4:-size] if MACS[mac].etm else packet[:-size]


@cbc_pairs
def test_iv_chains_across_packets(cipher: str, mac: str) -> None:
    """RFC 4253 §6.3: "the initialization vector is passed from the end of one packet to the
    beginning of the next": each packet decrypts on its own with CBC whose IV is the previous
    packet's last ciphertext block (the derived IV for the first), and with no other IV."""
    key, iv, mac_key = _keys(cipher, mac)
    sealer = make_sealer(CIPHERS[cipher], MACS[mac], key, iv, mac_key, random.Random(2).randbytes)
    payloads = [random.Random(n).randbytes(n) for n in (10, 0, 100, 16, 4000, 33)]
    chain = iv
    for seq, payload in enumerate(payloads):
        packet = _seal(sealer, seq, payload)
        encrypted = _encrypted_part(packet, mac)
        plain = Cipher(algorithms.AES(key), modes.CBC(chain)).decryptor().update(encrypted)
        if MACS[mac].etm:
            length, inner = int.from_bytes(packet[:4], "big"), plain
            mac_input = packet[: 4 + length]
        else:
            length, inner = int.from_bytes(plain[:4], "big"), plain[4:]
            mac_input = plain
        assert length == len(inner)
        pad = inner[0]
        assert pad >= 4 and inner[1 : length - pad] == payload
        assert packet[-MACS[mac].size :] == _independent_mac(mac, mac_key, seq, mac_input)
        if seq:
            # Decrypted with the first IV again, only the first block comes out wrong (CBC).
            reset = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor().update(encrypted)
            assert reset[:16] != plain[:16] and reset[16:] == plain[16:]
        chain = encrypted[-16:]


def _independent_seal(cipher: str, mac: str, chain: bytes, seq: int, payload: bytes) -> tuple[bytes, bytes]:
    """One packet sealed with cryptography's CBC from ``chain``; returns it and the next chain value."""
    key, _, mac_key = _keys(cipher, mac)
    etm = MACS[mac].etm
    region = 1 + len(payload) + (0 if etm else 4)
    pad = 16 - region % 16
    pad += 16 if pad < 4 else 0
    length = (1 + len(payload) + pad).to_bytes(4, "big")
    inner = bytes((pad,)) + payload + bytes(range(pad))
    encryptor = Cipher(algorithms.AES(key), modes.CBC(chain)).encryptor()
    if etm:
        body = encryptor.update(inner)
        return length + body + _independent_mac(mac, mac_key, seq, length + body), body[-16:]
    body = encryptor.update(length + inner)
    return body + _independent_mac(mac, mac_key, seq, length + inner), body[-16:]


@cbc_pairs
def test_independently_chained_packets_open(cipher: str, mac: str) -> None:
    """RFC 4253 §6.3 the other way: packets chained by an independent CBC open in trissh; a sender
    that restarts every packet from the first IV is refused or misread from the second packet on."""
    _, iv, _ = _keys(cipher, mac)
    payloads = [random.Random(n).randbytes(n) for n in (7, 300, 0, 64)]
    _, opener = _pair(cipher, mac)
    chain = iv
    for seq, payload in enumerate(payloads):
        packet, chain = _independent_seal(cipher, mac, chain, seq, payload)
        assert _open(opener, seq, packet) == payload

    _, opener = _pair(cipher, mac)
    assert _open(opener, 0, _independent_seal(cipher, mac, iv, 0, payloads[0])[0]) == payloads[0]
    unchained, _ = _independent_seal(cipher, mac, iv, 1, payloads[1])
    with suppress(PacketError):
        assert _open(opener, 1, unchained) != payloads[1]


# --- against OpenSSH --------------------------------------------------------------------------

_LEGACY_ON = [
    "Ciphers +aes128-cbc,aes192-cbc,aes256-cbc",
    "MACs +hmac-sha1,hmac-sha1-etm@openssh.com",
    "HostKeyAlgorithms +ssh-rsa",
]
_LEGACY_ONLY = [
    "Ciphers aes128-cbc,aes192-cbc,aes256-cbc",
    "MACs hmac-sha1,hmac-sha1-etm@openssh.com",
    "HostKeyAlgorithms ssh-rsa",
]


@pytest.fixture(scope="module")
def legacy_sshd() -> Iterator[SSHServer]:
    """OpenSSH with its defaults plus the legacy algorithms it no longer offers (OpenSSH 7.4 / 8.8)."""
    with start_sshd(extra_config=_LEGACY_ON) as server:
        yield server


@pytest.fixture(scope="module")
def legacy_only_sshd() -> Iterator[SSHServer]:
    """OpenSSH speaking nothing but legacy ciphers, MACs and host key algorithms."""
    with start_sshd(extra_config=_LEGACY_ONLY) as server:
        yield server


SERVER_PAIRS = [
    *((cipher, mac) for cipher in CBC_CIPHERS for mac in [*SHA1_MACS, "hmac-sha2-256"]),
    *(("aes128-ctr", mac) for mac in SHA1_MACS),
]


@pytest.mark.parametrize(("cipher", "mac"), SERVER_PAIRS)
async def test_transfer_with_openssh(legacy_sshd: SSHServer, cipher: str, mac: str) -> None:
    """Each CBC cipher with hmac-sha1, hmac-sha1-etm and hmac-sha2-256 (and the SHA-1 MACs with CTR)
    carries a few MiB each way through OpenSSH: many packets, so the CBC chain and the sequence
    numbers run long in both directions."""
    size = 3 * MiB + 5
    async with connect(legacy_sshd, ciphers=[cipher], macs=[mac]) as conn:
        for direction in (conn.negotiated.client_to_server, conn.negotiated.server_to_client):
            assert (direction.cipher, direction.mac) == (cipher, mac)
        down = await conn.run(f"head -c {size} /dev/zero")
        assert down.returncode == 0
        assert len(down.stdout) == size and down.stdout == bytes(size)
        data = os.urandom(size)
        up = await conn.run("tee >(sha256sum >&2) | wc -c", input=data)
        assert int(up.stdout) == size
        assert up.stderr.split()[0].decode() == hashlib.sha256(data).hexdigest()


async def test_ssh_rsa_host_key_when_named(legacy_sshd: SSHServer) -> None:
    """RFC 4253 §6.6: named, ssh-rsa (RSA with SHA-1) verifies the server's RSA host key; by default
    the same server's key is checked with a SHA-2 algorithm instead."""
    async with connect(legacy_sshd, host_key_algs=["ssh-rsa"]) as conn:
        assert conn.negotiated.host_key == "ssh-rsa"
        assert conn.host_key.key_type == "ssh-rsa"
        assert (await conn.run("echo ok")).stdout == b"ok\n"
    async with connect(legacy_sshd, host_key_algs=["rsa-sha2-512", "ssh-rsa"]) as conn:
        assert conn.negotiated.host_key == "rsa-sha2-512"
    async with connect(legacy_sshd) as conn:
        assert conn.negotiated.host_key not in LEGACY_HOST_KEY_ALGORITHMS
        assert conn.negotiated.client_to_server.cipher not in LEGACY_CIPHERS
        assert conn.negotiated.client_to_server.mac not in LEGACY_MACS


async def test_legacy_only_server_needs_every_name(legacy_only_sshd: SSHServer) -> None:
    """Not offered unless named: against a server with only legacy algorithms, the key exchange
    fails (KEY_EXCHANGE_FAILED) for each category the caller has not named, and succeeds once
    host key, cipher and MAC are all named."""
    steps: list[tuple[dict[str, list[str]], str]] = [
        ({}, "host key"),
        ({"host_key_algs": ["ssh-rsa"]}, "cipher"),
        ({"host_key_algs": ["ssh-rsa"], "ciphers": ["aes256-cbc"]}, "MAC"),
    ]
    for kwargs, missing in steps:
        with pytest.raises(trissh.DisconnectError) as info:
            async with connect(legacy_only_sshd, **kwargs):
                pass
        assert info.value.code is DisconnectReason.KEY_EXCHANGE_FAILED
        assert f"no {missing} " in info.value.reason
    named = {"host_key_algs": ["ssh-rsa"], "ciphers": ["aes256-cbc"], "macs": ["hmac-sha1-etm@openssh.com"]}
    async with connect(legacy_only_sshd, **named) as conn:
        assert conn.negotiated.host_key == "ssh-rsa"
        assert conn.negotiated.server_to_client.cipher == "aes256-cbc"
        assert conn.negotiated.server_to_client.mac == "hmac-sha1-etm@openssh.com"
        assert (await conn.run("echo ok")).stdout == b"ok\n"


async def test_legacy_names_are_refused_by_a_default_server(sshd: SSHServer) -> None:
    """Naming a legacy algorithm offers only it: OpenSSH 9.2 in its defaults refuses CBC and ssh-rsa."""
    for kwargs in ({"ciphers": ["aes128-cbc"]}, {"host_key_algs": ["ssh-rsa"]}):
        with pytest.raises(trissh.DisconnectError) as info:
            async with connect(sshd, **kwargs):
                pass
        assert info.value.code is DisconnectReason.KEY_EXCHANGE_FAILED


# --- CBC without EtM: failures are acted on only after a fixed amount ---------------------------------


def _reader_with(opener: Opener) -> PacketReader:
    reader = PacketReader()
    reader.set_opener(opener, reset_seq=True)
    return reader


@pytest.mark.parametrize("where", ["length", "mac"])
def test_cbc_without_etm_reads_on_before_failing(where: str) -> None:
    """OpenSSH's countermeasure to the Albrecht-Paterson-Watson attack: after a bad length or MAC the
    reader consumes 256 KiB from the packet's start and only then fails, whatever the length said,
    so the moment of failure tells the attacker nothing about the decrypted length."""
    sealer, opener = _pair("aes128-cbc", "hmac-sha2-256")
    packet = bytearray(_seal(sealer, 0, b"\x5e" + bytes(100)))
    if where == "length":
        packet[0] ^= 0x80  # the decrypted length becomes nonsense
    else:
        packet[-1] ^= 1  # the MAC no longer matches
    reader = _reader_with(opener)
    reader.feed(bytes(packet))
    assert reader.next_packet() is None
    fed = len(packet)
    while fed + 4096 < MAX_PACKET_LENGTH:
        reader.feed(bytes(4096))
        fed += 4096
        assert reader.next_packet() is None
    assert reader.wanted == MAX_PACKET_LENGTH - fed
    reader.feed(bytes(MAX_PACKET_LENGTH - fed - 1))
    assert reader.next_packet() is None
    reader.feed(b"\x00")
    with pytest.raises(PacketError) as info:
        reader.next_packet()
    assert info.value.reason is (
        DisconnectReason.MAC_ERROR if where == "mac" else DisconnectReason.PROTOCOL_ERROR
    )


@pytest.mark.parametrize(
    ("cipher", "mac"), [("aes128-cbc", "hmac-sha2-256-etm@openssh.com"), ("aes128-ctr", "hmac-sha1")]
)
def test_other_pairings_fail_at_once(cipher: str, mac: str) -> None:
    """With EtM the MAC is checked before anything is decrypted; CTR leaks no length through padding
    oracles of this kind: both fail on the spot."""
    sealer, opener = _pair(cipher, mac)
    packet = bytearray(_seal(sealer, 0, b"\x5e" + bytes(100)))
    packet[-1] ^= 1
    reader = _reader_with(opener)
    reader.feed(bytes(packet))
    with pytest.raises(PacketError):
        reader.next_packet()
