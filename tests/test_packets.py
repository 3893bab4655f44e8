"""Unit tests for packet protection (``trissh._algorithms.ciphers``) and the binary packet layer
(``trissh._transport.packets``), checked against an independent implementation written here
from the specifications with ``cryptography`` primitives and the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.poly1305 import Poly1305

from trissh._algorithms import ciphers
from trissh._algorithms.ciphers import (
    CIPHERS,
    MACS,
    MAX_PACKET_LENGTH,
    Opener,
    Sealer,
    make_opener,
    make_sealer,
    plain_opener,
    plain_sealer,
)
from trissh._errors import DisconnectReason, ProtocolError
from trissh._transport.packets import PacketReader, PacketWriter

PacketError = ciphers.PacketError

# --- the suites under test -----------------------------------------------------------


@dataclass(frozen=True)
class Suite:
    """One (cipher, MAC) combination; cipher "none" is the unprotected state before NEWKEYS."""

    cipher: str
    mac: str | None

    def __str__(self) -> str:
        return self.cipher if self.mac is None else f"{self.cipher}+{self.mac}"

    # Everything below is derived from the algorithm *names* and their specifications,
    # not from trissh's tables, so the reference implementation stays independent.

    @property
    def family(self) -> str:
        if self.cipher == "none":
            return "none"
        if self.cipher == "chacha20-poly1305@openssh.com":
            return "chacha"
        if self.cipher.endswith("-gcm@openssh.com"):
            return "gcm"
        if self.cipher.endswith("-cbc"):
            return "cbc"
        assert self.cipher.endswith("-ctr"), self.cipher
        return "ctr"

    @property
    def key_size(self) -> int:
        if self.family == "none":
            return 0
        if self.family == "chacha":
            return 64  # two 256-bit keys (PROTOCOL.chacha20poly1305)
        return int(self.cipher[3:6]) // 8  # aes128 / aes192 / aes256

    @property
    def iv_size(self) -> int:
        return {"none": 0, "chacha": 0, "gcm": 12, "ctr": 16, "cbc": 16}[self.family]

    @property
    def block(self) -> int:
        """RFC 4253 §6: the cipher block size, or 8 for stream ciphers and no cipher."""
        return 16 if self.family in ("gcm", "ctr", "cbc") else 8

    @property
    def etm(self) -> bool:
        return self.mac is not None and self.mac.endswith("-etm@openssh.com")

    @property
    def hash_name(self) -> str:
        assert self.mac is not None
        if self.mac.startswith("hmac-sha1"):
            return "sha1"
        return "sha512" if "sha2-512" in self.mac else "sha256"

    @property
    def mac_size(self) -> int:
        if self.family in ("chacha", "gcm"):
            return 16
        if self.family == "none":
            return 0
        return hashlib.new(self.hash_name).digest_size

    @property
    def mac_key_size(self) -> int:
        return hashlib.new(self.hash_name).digest_size if self.mac else 0

    @property
    def length_outside(self) -> bool:
        """Is packet_length outside the padded region? (AEAD and EtM: OpenSSH PROTOCOL §1.2/1.3.)"""
        return self.family in ("chacha", "gcm") or self.etm

    @property
    def header_size(self) -> int:
        return 16 if self.family in ("ctr", "cbc") and not self.etm else 4


SUITES = (
    [Suite("none", None)]
    + [Suite(name, None) for name, spec in CIPHERS.items() if spec.aead]
    + [Suite(name, mac) for name, spec in CIPHERS.items() if not spec.aead for mac in MACS]
)
PROTECTED = [suite for suite in SUITES if suite.family != "none"]

all_suites = pytest.mark.parametrize("suite", SUITES, ids=str)
protected_suites = pytest.mark.parametrize("suite", PROTECTED, ids=str)

PAYLOAD_SIZES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 15, 16, 17, 255, 32768, 100000]


@dataclass(frozen=True)
class Keys:
    key: bytes
    iv: bytes
    mac_key: bytes


def make_keys(suite: Suite, seed: int = 0, *, iv: bytes | None = None) -> Keys:
    rng = random.Random(f"{suite}/{seed}")
    return Keys(
        rng.randbytes(suite.key_size),
        iv if iv is not None else rng.randbytes(suite.iv_size),
        rng.randbytes(suite.mac_key_size),
    )


def trissh_sealer(suite: Suite, keys: Keys, rand: Callable[[int], bytes] | None = None) -> Sealer:
    rand = rand or random.Random(1).randbytes
    if suite.family == "none":
        return plain_sealer(rand)
    mac = MACS[suite.mac] if suite.mac else None
    return make_sealer(CIPHERS[suite.cipher], mac, keys.key, keys.iv, keys.mac_key, rand)


def trissh_opener(suite: Suite, keys: Keys) -> Opener:
    if suite.family == "none":
        return plain_opener()
    mac = MACS[suite.mac] if suite.mac else None
    return make_opener(CIPHERS[suite.cipher], mac, keys.key, keys.iv, keys.mac_key)


def writer_for(
    suite: Suite, keys: Keys, seq: int = 0, rand: Callable[[int], bytes] | None = None
) -> PacketWriter:
    writer = PacketWriter()
    writer.set_sealer(trissh_sealer(suite, keys, rand), reset_seq=True)
    writer.seq = seq
    return writer


def reader_for(suite: Suite, keys: Keys, seq: int = 0) -> PacketReader:
    reader = PacketReader()
    reader.set_opener(trissh_opener(suite, keys), reset_seq=True)
    reader.seq = seq
    return reader


def payload_of(size: int, seed: int = 0) -> bytes:
    return random.Random(size * 1000 + seed).randbytes(size)


# --- the independent reference implementation --------------------------------------


def _xor(data: bytes, stream: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream[: len(data)], "big")).to_bytes(
        len(data), "big"
    )


def _chacha20(key: bytes, seq: int, counter: int, data: bytes) -> bytes:
    """ChaCha20 with OpenSSH's 64-bit block counter and 64-bit nonce = seq, big endian."""
    iv = counter.to_bytes(8, "little") + seq.to_bytes(8, "big")
    return Cipher(algorithms.ChaCha20(key, iv), mode=None).encryptor().update(data)


@dataclass(frozen=True)
class Opened:
    """A packet taken apart by the reference: its fields and wire size."""

    length: int
    padding_length: int
    payload: bytes
    padding: bytes
    size: int


class Reference:
    """One direction of packet protection, written from the specs:

    * none: RFC 4253 §6;
    * chacha20-poly1305@openssh.com: OpenSSH PROTOCOL.chacha20poly1305 (K_1 = key[32:] encrypts the
      length with block counter 0; K_2 = key[:32] gives the Poly1305 key from block 0 and encrypts
      the rest from block 1; the tag covers encrypted length || ciphertext);
    * AES-GCM: RFC 5647 §7 as OpenSSH does it (the length is clear and is the AAD; the nonce is a
      4-byte fixed field and an 8-byte invocation counter incremented per packet);
    * AES-CTR: RFC 4344 §4 (one keystream for the whole direction, counter = IV as a 128-bit
      big-endian integer, here built from AES-ECB), MAC (RFC 4253 §6.4, RFC 6668) over
      seq || plaintext packet, or for -etm@openssh.com over seq || length || ciphertext;
    * AES-CBC: RFC 4253 §6.3 (one chain for the whole direction: each packet's first block is
      XORed with the previous packet's last ciphertext block; here block by block from AES-ECB),
      with the same MACs as CTR.
    """

    def __init__(self, suite: Suite, keys: Keys) -> None:
        self.suite = suite
        self.keys = keys
        self._ctr = int.from_bytes(keys.iv, "big")
        self._cbc_chain = keys.iv
        self._gcm_counter = int.from_bytes(keys.iv[4:12], "big")

    def _ctr_keystream(self, nbytes: int, *, advance: bool = True) -> bytes:
        assert nbytes % 16 == 0
        blocks = nbytes // 16
        counters = b"".join(((self._ctr + i) % 2**128).to_bytes(16, "big") for i in range(blocks))
        if advance:
            self._ctr = (self._ctr + blocks) % 2**128
        return Cipher(algorithms.AES(self.keys.key), modes.ECB()).encryptor().update(counters)

    def _cbc(self, data: bytes, *, decrypt: bool, advance: bool = True) -> bytes:
        assert len(data) % 16 == 0
        ecb = Cipher(algorithms.AES(self.keys.key), modes.ECB())
        chain, out = self._cbc_chain, []
        for i in range(0, len(data), 16):
            block = data[i : i + 16]
            if decrypt:
                out.append(_xor(ecb.decryptor().update(block), chain))
                chain = block
            else:
                chain = ecb.encryptor().update(_xor(block, chain))
                out.append(chain)
        if advance:
            self._cbc_chain = chain
        return b"".join(out)

    def _encrypt(self, data: bytes, *, advance: bool = True) -> bytes:
        """CTR or CBC over whole blocks, continuing the direction's keystream or chain."""
        if self.suite.family == "cbc":
            return self._cbc(data, decrypt=False, advance=advance)
        return _xor(data, self._ctr_keystream(len(data), advance=advance))

    def _decrypt(self, data: bytes, *, advance: bool = True) -> bytes:
        if self.suite.family == "cbc":
            return self._cbc(data, decrypt=True, advance=advance)
        return _xor(data, self._ctr_keystream(len(data), advance=advance))

    def _gcm_nonce(self) -> bytes:
        nonce = self.keys.iv[:4] + self._gcm_counter.to_bytes(8, "big")
        self._gcm_counter = (self._gcm_counter + 1) % 2**64
        return nonce

    def _mac(self, seq: int, data: bytes) -> bytes:
        digest = hmac.new(self.keys.mac_key, seq.to_bytes(4, "big") + data, self.suite.hash_name).digest()
        return digest[: self.suite.mac_size]

    def min_padding(self, payload_size: int) -> int:
        region = 1 + payload_size + (0 if self.suite.length_outside else 4)
        pad = -region % self.suite.block
        return pad + self.suite.block if pad < 4 else pad

    def seal(
        self,
        seq: int,
        payload: bytes,
        *,
        padding: bytes | None = None,
        padding_length_field: int | None = None,
    ) -> bytes:
        if padding is None:
            padding = bytes(self.min_padding(len(payload)))
        pad_field = len(padding) if padding_length_field is None else padding_length_field
        length = (1 + len(payload) + len(padding)).to_bytes(4, "big")
        inner = bytes((pad_field,)) + payload + padding
        suite = self.suite
        if suite.family == "none":
            return length + inner
        if suite.family == "chacha":
            main, header = self.keys.key[:32], self.keys.key[32:]
            poly_key = _chacha20(main, seq, 0, bytes(32))
            data = _chacha20(header, seq, 0, length) + _chacha20(main, seq, 1, inner)
            return data + Poly1305.generate_tag(poly_key, data)
        if suite.family == "gcm":
            return length + AESGCM(self.keys.key).encrypt(self._gcm_nonce(), inner, length)
        if suite.etm:
            body = self._encrypt(inner)
            return length + body + self._mac(seq, length + body)
        plain = length + inner
        return self._encrypt(plain) + self._mac(seq, plain)

    def encrypt_header(self, seq: int, first: bytes) -> bytes:
        """The first ``header_size`` wire bytes for plaintext ``first`` (to craft length fields)."""
        if self.suite.family == "chacha":
            return _chacha20(self.keys.key[32:], seq, 0, first[:4])
        if self.suite.family in ("ctr", "cbc") and not self.suite.etm:
            return self._encrypt(first[:16], advance=False)
        return first[:4]

    def open(self, seq: int, data: bytes) -> Opened:
        """Check and decrypt the packet at the start of ``data``; raises AssertionError if it is bad."""
        suite = self.suite
        tag = suite.mac_size
        if suite.family == "chacha":
            main, header = self.keys.key[:32], self.keys.key[32:]
            length = int.from_bytes(_chacha20(header, seq, 0, data[:4]), "big")
            end = 4 + length
            try:
                Poly1305.verify_tag(_chacha20(main, seq, 0, bytes(32)), data[:end], data[end : end + tag])
            except InvalidSignature:
                raise AssertionError(f"packet {seq}: Poly1305 tag does not verify") from None
            inner = _chacha20(main, seq, 1, data[4:end])
        elif suite.family == "gcm":
            length = int.from_bytes(data[:4], "big")
            end = 4 + length
            inner = AESGCM(self.keys.key).decrypt(self._gcm_nonce(), data[4 : end + tag], data[:4])
        elif suite.family in ("ctr", "cbc") and suite.etm:
            length = int.from_bytes(data[:4], "big")
            end = 4 + length
            assert hmac.compare_digest(self._mac(seq, data[:end]), data[end : end + tag]), "bad EtM MAC"
            inner = self._decrypt(data[4:end])
        elif suite.family in ("ctr", "cbc"):
            first = self._decrypt(data[:16], advance=False)
            length = int.from_bytes(first[:4], "big")
            end = 4 + length
            plain = self._decrypt(data[:end])
            assert hmac.compare_digest(self._mac(seq, plain), data[end : end + tag]), "bad MAC"
            inner = plain[4:]
        else:
            length = int.from_bytes(data[:4], "big")
            end = 4 + length
            inner = data[4:end]
        assert len(inner) == length, "packet shorter than its length field"
        pad = inner[0]
        return Opened(length, pad, inner[1 : length - pad], inner[length - pad :], end + tag)


# --- feeding helpers (h11 tests/test_io.py style: whole, bytewise, with trailing bytes) ---


def seal_each(writer: PacketWriter, payloads: list[bytes]) -> list[bytes]:
    """The wire form of each payload, in order."""
    packets = []
    for payload in payloads:
        writer.write(payload)
        packets.append(bytes(writer.take()))
    return packets


def drain(reader: PacketReader) -> Iterator[tuple[int, bytes]]:
    while (packet := reader.next_packet()) is not None:
        yield packet


def next_packet_or_fail(reader: PacketReader) -> object:
    """next_packet(), and for a suite that defers its failures (CBC without EtM: it reads on to
    256 KiB from the bad packet's start first), the bytes it waits for, so the failure comes."""
    packet = reader.next_packet()
    if packet is None and reader._discard_error is not None:
        assert reader.wanted <= MAX_PACKET_LENGTH
        reader.feed(bytes(reader.wanted))
        packet = reader.next_packet()
    return packet


def read_whole(reader: PacketReader, packets: list[bytes]) -> list[tuple[int, bytes]]:
    reader.feed(b"".join(packets))
    out = list(drain(reader))
    assert not reader.buffered
    return out


def read_bytewise(reader: PacketReader, packets: list[bytes]) -> list[tuple[int, bytes]]:
    """One byte at a time; each packet must appear exactly when its last byte arrives."""
    out = []
    for packet in packets:
        for i in range(len(packet)):
            reader.feed(packet[i : i + 1])
            got = list(drain(reader))
            if i < len(packet) - 1:
                assert got == [], f"packet came out {len(packet) - 1 - i} bytes early"
                assert reader.wanted >= 1
            else:
                assert len(got) == 1
                out += got
    return out


def read_with_trailing(reader: PacketReader, packets: list[bytes], keep: int) -> list[tuple[int, bytes]]:
    """Each chunk is the rest of one packet plus ``keep`` bytes of the next, which must stay buffered."""
    out = []
    carried = 0
    for i, packet in enumerate(packets):
        nxt = packets[i + 1][:keep] if i + 1 < len(packets) else b""
        reader.feed(packet[carried:] + nxt)
        carried = len(nxt)
        got = list(drain(reader))
        assert len(got) == 1
        assert reader.unconsumed() == nxt, "trailing bytes of the next packet were consumed"
        out += got
    return out


# --- round trips --------------------------------------------------------------------------


@all_suites
@pytest.mark.parametrize("how", ["whole", "bytewise", "trailing-1", "trailing-header", "trailing-header+1"])
def test_round_trip_through_writer_and_reader(suite: Suite, how: str) -> None:
    """RFC 4253 §6: payloads of any size survive seal → bytes → open, in order, with seq = 0, 1, 2, ...

    Fed whole, one byte at a time, and with bytes of the next packet left in the buffer.
    """
    keys = make_keys(suite)
    sizes = PAYLOAD_SIZES if how != "bytewise" else [s for s in PAYLOAD_SIZES if s <= 255]
    payloads = [payload_of(size) for size in sizes]
    writer = writer_for(suite, keys)
    packets = seal_each(writer, payloads)
    assert writer.seq == len(payloads)
    assert writer.packets_since_rekey == len(payloads)
    assert writer.bytes_since_rekey == sum(map(len, packets))

    reader = reader_for(suite, keys)
    if how == "whole":
        got = read_whole(reader, packets)
    elif how == "bytewise":
        got = read_bytewise(reader, packets)
    else:
        keep = {
            "trailing-1": 1,
            "trailing-header": suite.header_size,
            "trailing-header+1": suite.header_size + 1,
        }
        got = read_with_trailing(reader, packets, keep[how])
    assert got == list(enumerate(payloads))
    assert reader.seq == len(payloads)
    assert reader.packets_since_rekey == len(payloads)
    assert reader.bytes_since_rekey == sum(map(len, packets))


@all_suites
def test_sealed_packets_match_the_reference(suite: Suite) -> None:
    """trissh's packets open with the independent implementation: same keys, nonce, MAC input.

    Also pins RFC 4253 §6's padding rules: at least 4 bytes of random padding, and the padded
    region (with packet_length, unless AEAD/EtM keeps it outside) a multiple of the block size
    (8 for none and chacha20-poly1305, 16 for AES).
    """
    keys = make_keys(suite)
    drawn: list[bytes] = []
    rng = random.Random(7)

    def rand(n: int) -> bytes:
        drawn.append(rng.randbytes(n))
        return drawn[-1]

    payloads = [payload_of(size) for size in PAYLOAD_SIZES]
    packets = seal_each(writer_for(suite, keys, rand=rand), payloads)
    reference = Reference(suite, keys)
    # Padding is drawn from the random source in blocks; each packet's padding
    # is the next slice of that stream.
    stream = b"".join(drawn)
    used = 0
    for seq, (payload, packet) in enumerate(zip(payloads, packets, strict=True)):
        opened = reference.open(seq, packet)
        assert opened.size == len(packet)
        assert opened.payload == payload
        assert 4 <= opened.padding_length <= 255
        drawn_padding = stream[used : used + opened.padding_length]
        assert opened.padding == drawn_padding, "padding must be the random bytes"
        used += opened.padding_length
        region = opened.length + (0 if suite.length_outside else 4)
        assert region % suite.block == 0, (opened.length, suite.block)
        assert len(packet) == 4 + opened.length + suite.mac_size


@all_suites
def test_reference_packets_open_in_trissh(suite: Suite) -> None:
    """Packets sealed by the independent implementation open in trissh, including non-minimal
    padding (RFC 4253 §6: up to 255 bytes of padding are allowed)."""
    keys = make_keys(suite)
    reference = Reference(suite, keys)
    payloads = [payload_of(size, seed=1) for size in PAYLOAD_SIZES]
    packets = [reference.seal(seq, payload) for seq, payload in enumerate(payloads)]
    # Then one packet with the largest padding that keeps the block alignment.
    big_pad = reference.min_padding(3) + suite.block * ((255 - reference.min_padding(3)) // suite.block)
    packets.append(reference.seal(len(packets), b"abc", padding=bytes(range(big_pad))))
    payloads.append(b"abc")
    assert read_whole(reader_for(suite, keys), packets) == list(enumerate(payloads))


@pytest.mark.parametrize(
    "suite",
    [Suite("aes128-ctr", "hmac-sha2-256"), Suite("aes256-ctr", "hmac-sha2-512-etm@openssh.com")],
    ids=str,
)
def test_ctr_counter_wraps_at_2_128(suite: Suite) -> None:
    """RFC 4344 §4: the CTR counter is a 128-bit integer incremented modulo 2**128."""
    keys = make_keys(suite, iv=b"\xff" * 15 + b"\xfe")
    payloads = [payload_of(100), payload_of(5)]
    packets = seal_each(writer_for(suite, keys), payloads)
    reference = Reference(suite, keys)
    assert [reference.open(seq, p).payload for seq, p in enumerate(packets)] == payloads
    assert read_whole(reader_for(suite, keys), packets) == list(enumerate(payloads))


@pytest.mark.parametrize("suite", [s for s in SUITES if s.family == "gcm"], ids=str)
def test_gcm_invocation_counter_wraps_within_its_8_bytes(suite: Suite) -> None:
    """RFC 5647 §7.1: the 64-bit invocation counter increments modulo 2**64; the fixed field never changes."""
    keys = make_keys(suite, iv=b"\x01\x02\x03\x04" + b"\xff" * 8)
    payloads = [b"first", b"second", b"third"]
    packets = seal_each(writer_for(suite, keys), payloads)
    reference = Reference(suite, keys)
    assert [reference.open(seq, p).payload for seq, p in enumerate(packets)] == payloads
    assert read_whole(reader_for(suite, keys), packets) == list(enumerate(payloads))


# --- sequence numbers ---------------------------------------------------------------------


@all_suites
def test_sequence_number_wraps(suite: Suite) -> None:
    """RFC 4253 §6.4: the sequence number is a uint32 that wraps to 0 after 2**32 - 1.

    The MAC/nonce of each packet uses the wrapped value; ``wrapped`` records that it happened
    (strict KEX forbids it during the first exchange), and a reset clears it.
    """
    keys = make_keys(suite)
    writer = writer_for(suite, keys, seq=0xFFFFFFFE)
    packets = seal_each(writer, [b"a", b"b", b"c"])
    assert writer.seq == 1
    assert writer.wrapped
    reference = Reference(suite, keys)
    for seq, packet, payload in zip([0xFFFFFFFE, 0xFFFFFFFF, 0], packets, [b"a", b"b", b"c"], strict=True):
        assert reference.open(seq, packet).payload == payload

    reader = reader_for(suite, keys, seq=0xFFFFFFFE)
    assert read_whole(reader, packets) == [(0xFFFFFFFE, b"a"), (0xFFFFFFFF, b"b"), (0, b"c")]
    assert reader.seq == 1
    assert reader.wrapped

    writer.set_sealer(trissh_sealer(suite, keys), reset_seq=False)
    assert (writer.seq, writer.wrapped) == (1, True)
    writer.set_sealer(trissh_sealer(suite, keys), reset_seq=True)
    assert (writer.seq, writer.wrapped) == (0, False)
    reader.set_opener(trissh_opener(suite, keys), reset_seq=False)
    assert (reader.seq, reader.wrapped) == (1, True)
    reader.set_opener(trissh_opener(suite, keys), reset_seq=True)
    assert (reader.seq, reader.wrapped) == (0, False)


def test_writer_wraps_from_max_to_zero() -> None:
    """RFC 4253 §6.4: a writer at 0xFFFFFFFF sends that number, then wraps to 0 and sets ``wrapped``."""
    writer = PacketWriter()
    writer.seq = 0xFFFFFFFF
    assert not writer.wrapped
    writer.write(b"x")
    assert writer.seq == 0
    assert writer.wrapped
    writer.write(b"y")
    assert (writer.seq, writer.wrapped) == (1, True)


def test_set_sealer_and_opener_reset_the_rekey_counters() -> None:
    """RFC 4253 §9: rekey limits count from the last key change."""
    writer, reader = PacketWriter(), PacketReader()
    for _ in range(3):
        writer.write(b"payload")
    reader.feed(bytes(writer.take()))
    list(drain(reader))
    assert writer.bytes_since_rekey > 0 and reader.bytes_since_rekey > 0
    writer.set_sealer(plain_sealer(), reset_seq=False)
    reader.set_opener(plain_opener(), reset_seq=False)
    assert (writer.bytes_since_rekey, writer.packets_since_rekey, writer.seq) == (0, 0, 3)
    assert (reader.bytes_since_rekey, reader.packets_since_rekey, reader.seq) == (0, 0, 3)


@protected_suites
def test_reordered_or_replayed_packets_are_refused(suite: Suite) -> None:
    """RFC 4253 §6.4 / RFC 5647 §7.1: the sequence number (or the GCM invocation counter, or the
    CTR keystream position) binds each packet to its place; swapping or replaying fails."""
    keys = make_keys(suite)
    first, second = seal_each(writer_for(suite, keys), [b"same size 1", b"same size 2"])
    for order in ([second, first], [first, first]):
        reader = reader_for(suite, keys)
        reader.feed(b"".join(order))
        with pytest.raises(PacketError):
            list(drain(reader))
            # CBC without EtM fails only after reading a fixed amount more (see test_legacy_algorithms).
            reader.feed(bytes(reader.wanted))
            list(drain(reader))


def test_plain_packets_do_not_check_integrity() -> None:
    """RFC 4253 §6: before NEWKEYS nothing protects packets; what arrives is what is read."""
    suite = Suite("none", None)
    packet = Reference(suite, make_keys(suite)).seal(0, b"hello")
    tampered = packet[:5] + b"j" + packet[6:]
    assert read_whole(PacketReader(), [tampered]) == [(0, b"jello")]


# --- tampering -------------------------------------------------------------------------------


def _positions(size: int) -> list[int]:
    if size <= 400:
        return list(range(size))
    return sorted({*range(64), *range(size - 64, size), *range(64, size - 64, 211)})


def _assert_refused(suite: Suite, keys: Keys, seq: int, data: bytes) -> PacketError:
    """Feed ``data`` to a fresh reader: it must raise, never return a payload, never wait forever.

    A flipped length bit may claim a longer, still acceptable packet: then the reader may want
    more bytes (a bounded number), and once they come the MAC/tag check must fail.
    """
    reader = reader_for(suite, keys, seq)
    reader.feed(data)
    with pytest.raises(PacketError) as info:
        if reader.next_packet() is None:
            wanted = reader.wanted
            assert 0 < wanted <= MAX_PACKET_LENGTH + 4 + 64
            reader.feed(bytes(wanted))
            reader.next_packet()
    return info.value


@protected_suites
@pytest.mark.parametrize("size", [0, 17, 255, 32768])
def test_any_flipped_bit_is_refused(suite: Suite, size: int) -> None:
    """RFC 4253 §6.4, RFC 5647 §7.3, PROTOCOL.chacha20poly1305: one flipped bit anywhere in a sealed
    packet (length, padding length, payload, padding, MAC/tag) is a PacketError, a ProtocolError
    carrying MAC_ERROR or PROTOCOL_ERROR."""
    keys = make_keys(suite)
    seq = 5
    (packet,) = seal_each(writer_for(suite, keys, seq=seq), [payload_of(size)])
    for pos in _positions(len(packet)):
        bits = range(8) if pos < suite.header_size + 1 else [pos % 8]
        for bit in bits:
            tampered = bytearray(packet)
            tampered[pos] ^= 1 << bit
            error = _assert_refused(suite, keys, seq, bytes(tampered))
            assert isinstance(error, ProtocolError)
            assert error.reason in (DisconnectReason.MAC_ERROR, DisconnectReason.PROTOCOL_ERROR)


@protected_suites
def test_truncated_mac_is_refused(suite: Suite) -> None:
    """RFC 4253 §6.4: a packet whose MAC/tag is cut and replaced by other bytes fails the check."""
    keys = make_keys(suite)
    (packet,) = seal_each(writer_for(suite, keys), [b"payload"])
    _assert_refused(suite, keys, 0, packet[:-1] + b"\x00")
    _assert_refused(suite, keys, 0, packet[: -suite.mac_size] + bytes(suite.mac_size))


# --- length checks ---------------------------------------------------------------------------


def _length_cases(suite: Suite) -> tuple[int, int]:
    """(largest acceptable packet_length, smallest aligned one above MAX_PACKET_LENGTH)."""
    extra = 0 if suite.length_outside else 4
    accepted = MAX_PACKET_LENGTH - ((MAX_PACKET_LENGTH + extra) % suite.block)
    return accepted, accepted + suite.block


@all_suites
def test_oversized_length_is_refused_from_the_header_alone(suite: Suite) -> None:
    """RFC 4253 §6.1 (and OpenSSH's 256 KiB cap): a packet claiming more than MAX_PACKET_LENGTH is
    refused as soon as its header is read, before any more data is waited for."""
    keys = make_keys(suite)
    accepted, refused = _length_cases(suite)
    for length in (refused, 2**31, 2**32 - 16, 2**32 - 1):
        header = Reference(suite, keys).encrypt_header(0, length.to_bytes(4, "big") + bytes(12))
        reader = reader_for(suite, keys)
        reader.feed(header)
        assert reader.buffered == suite.header_size
        with pytest.raises(PacketError, match="exceeds the maximum"):
            next_packet_or_fail(reader)

    header = Reference(suite, keys).encrypt_header(0, accepted.to_bytes(4, "big") + bytes(12))
    reader = reader_for(suite, keys)
    reader.feed(header)
    assert reader.next_packet() is None
    assert reader.wanted == 4 + accepted + suite.mac_size - suite.header_size


@all_suites
def test_misaligned_or_tiny_length_is_refused(suite: Suite) -> None:
    """RFC 4253 §6: packet_length must fit the block alignment and hold at least the padding length
    byte and 4 bytes of padding."""
    keys = make_keys(suite)
    accepted, _ = _length_cases(suite)
    for length in (0, 1, 4, 2 * suite.block + 1, accepted - 1, accepted - suite.block // 2):
        header = Reference(suite, keys).encrypt_header(0, length.to_bytes(4, "big") + bytes(12))
        reader = reader_for(suite, keys)
        reader.feed(header)
        with pytest.raises(PacketError, match="not a valid multiple"):
            next_packet_or_fail(reader)


def test_max_packet_length_is_256_kib() -> None:
    """OpenSSH's PACKET_MAX_SIZE; RFC 4253 §6.1 requires at least 35000."""
    assert MAX_PACKET_LENGTH == 256 * 1024


# --- padding checks on receipt ---------------------------------------------------------------


def _aligned_payload_size(reference: Reference, pad: int) -> int:
    suite = reference.suite
    overhead = 1 + (0 if suite.length_outside else 4)
    return next(n for n in range(8, 64) if (overhead + n + pad) % suite.block == 0)


@all_suites
def test_padding_shorter_than_4_is_refused(suite: Suite) -> None:
    """RFC 4253 §6: "There MUST be at least four bytes of padding"."""
    keys = make_keys(suite)
    for pad in (0, 1, 2, 3):
        reference = Reference(suite, keys)
        payload = payload_of(_aligned_payload_size(reference, pad))
        packet = reference.seal(0, payload, padding=bytes(pad))
        reader = reader_for(suite, keys)
        reader.feed(packet)
        with pytest.raises(PacketError, match="invalid padding length"):
            next_packet_or_fail(reader)


@all_suites
def test_padding_length_beyond_the_packet_is_refused(suite: Suite) -> None:
    """RFC 4253 §6: padding_length counts bytes inside the packet; more than fit is malformed.
    Exactly all of the rest (an empty payload) is fine."""
    keys = make_keys(suite)
    padding = bytes(Reference(suite, keys).min_padding(10))
    length = 1 + 10 + len(padding)
    for field in (length, length + 1, 255):
        packet = Reference(suite, keys).seal(0, b"0123456789", padding=padding, padding_length_field=field)
        reader = reader_for(suite, keys)
        reader.feed(packet)
        with pytest.raises(PacketError, match="invalid padding length"):
            next_packet_or_fail(reader)
    packet = Reference(suite, keys).seal(0, b"0123456789", padding=padding, padding_length_field=length - 1)
    assert read_whole(reader_for(suite, keys), [packet]) == [(0, b"")]


# --- the tables and the reader's hints ---------------------------------------------------------


@pytest.mark.parametrize("name", list(CIPHERS))
def test_cipher_table_sizes(name: str) -> None:
    """Key and IV sizes per RFC 4253 §6.3, RFC 4344 §4, RFC 5647 §7 and PROTOCOL.chacha20poly1305."""
    spec = CIPHERS[name]
    suite = Suite(name, None)
    assert (spec.key_size, spec.iv_size) == (suite.key_size, suite.iv_size)
    assert spec.aead == (suite.family in ("chacha", "gcm"))


@pytest.mark.parametrize("name", list(MACS))
def test_mac_table_sizes(name: str) -> None:
    """RFC 6668 §2 and RFC 4253 §6.4: hmac-sha2-* and hmac-sha1 use a key and a MAC as long as the
    hash output."""
    spec = MACS[name]
    suite = Suite("aes128-ctr", name)
    assert (spec.key_size, spec.size, spec.etm) == (suite.mac_key_size, suite.mac_size, suite.etm)


@pytest.mark.parametrize("name", [n for n, s in CIPHERS.items() if not s.aead])
def test_cipher_without_mac_is_a_caller_error(name: str) -> None:
    """A non-AEAD cipher needs a MAC; asking for none is our bug, not the peer's (ValueError)."""
    with pytest.raises(ValueError, match="needs a MAC"):
        make_sealer(CIPHERS[name], None, bytes(32), bytes(16), b"")
    with pytest.raises(ValueError, match="needs a MAC"):
        make_opener(CIPHERS[name], None, bytes(32), bytes(16), b"")


def test_unknown_cipher_family_is_a_caller_error() -> None:
    """A table row whose family no sealer or opener knows is our bug (ValueError), not the peer's."""
    spec = ciphers.CipherSpec("aes128-xyz", 16, 16, "xyz", aead=False)
    with pytest.raises(ValueError, match="unknown cipher family"):
        make_sealer(spec, MACS["hmac-sha2-256"], bytes(16), bytes(16), bytes(32))
    with pytest.raises(ValueError, match="unknown cipher family"):
        make_opener(spec, MACS["hmac-sha2-256"], bytes(16), bytes(16), bytes(32))


@all_suites
def test_wanted_hint(suite: Suite) -> None:
    """The reader says how many bytes it still needs: the header first, then the rest of the packet."""
    keys = make_keys(suite)
    (packet,) = seal_each(writer_for(suite, keys), [payload_of(40)])
    reader = reader_for(suite, keys)
    assert reader.wanted == suite.header_size
    reader.feed(packet[:1])
    assert reader.next_packet() is None
    assert reader.wanted == suite.header_size - 1
    reader.feed(packet[1 : suite.header_size])
    assert reader.next_packet() is None
    assert reader.wanted == len(packet) - suite.header_size
    reader.feed(packet[suite.header_size :])
    assert reader.next_packet() == (0, payload_of(40))
    assert reader.wanted == suite.header_size


def test_writer_keeps_buffers_for_bulk_and_releases_them_when_quiet() -> None:
    """Send buffers grown by a burst are released once traffic stays small, never during a bulk stream."""
    writer = PacketWriter()
    big = bytes(32 * 1024)
    for _ in range(200):  # a bulk stream: 1 MiB batches
        for _ in range(32):
            writer.write(big)
        bytes(writer.take())
    grown = max(len(writer._buffer), len(writer._spare))
    assert grown >= 1024 * 1024
    for _ in range(200):  # still bulk: the buffers are kept, not regrown
        for _ in range(32):
            writer.write(big)
        bytes(writer.take())
        assert max(len(writer._buffer), len(writer._spare)) == grown
    for _ in range(40):  # then quiet: small batches only
        writer.write(b"x" * 100)
        bytes(writer.take())
    assert max(len(writer._buffer), len(writer._spare)) < 64 * 1024
    writer.take()  # the writer's round after its last send: an idle connection keeps no buffer at all
    assert len(writer._buffer) == len(writer._spare) == 0
    writer.write(b"y" * 100)  # and makes one again when it next sends
    assert len(writer.take()) > 100


def test_writer_takes_back_what_a_partial_write_left_ahead_of_newer_packets() -> None:
    writer = PacketWriter()
    writer.write(b"first")
    writer.write(b"second")
    taken = writer.take()
    sent_so_far = bytes(taken[:7])
    writer.put_back(taken[7:])
    assert writer.pending == len(taken) - 7
    writer.write(b"third")  # sealed after the put-back: goes after it
    rest = bytes(writer.take())
    reader = PacketReader()
    reader.feed(sent_so_far + rest)
    assert [reader.next_packet(), reader.next_packet(), reader.next_packet()] == [
        (0, b"first"),
        (1, b"second"),
        (2, b"third"),
    ]
    writer.put_back(memoryview(b""))  # a complete write puts nothing back
    assert writer.pending == 0
