"""Packet protection: the ciphers and MACs of the binary packet protocol.

Theory of operation
-------------------
Each direction of a connection has one *sealer* (outgoing) or *opener*
(incoming) built from the negotiated cipher, MAC and derived keys. The packet
layer (``trissh._transport.packets``) only knows this narrow interface:

* ``Sealer.seal(seq, payload) -> bytes``: the whole wire form of one packet:
  length, padding length, payload, random padding, and the MAC or tag.
* ``Opener.header_size``: how many bytes are needed to learn the length;
  ``Opener.packet_size(seq, header)``: the total wire size of the packet whose
  first bytes are ``header`` (validated, so an absurd length is refused before
  anything is allocated for it); ``Opener.open(seq, packet) -> bytes``: the
  payload, after the MAC or tag has been checked.

Four families cover what OpenSSH speaks:

* ``chacha20-poly1305@openssh.com`` (OpenSSH PROTOCOL.chacha20poly1305): the
  length is encrypted with its own ChaCha20 key, the body with another, and a
  Poly1305 tag covers both;
* AES-GCM (RFC 5647 as OpenSSH implements it): the length travels in clear as
  associated data, the nonce is a 4-byte fixed part and an 8-byte counter;
* AES-CTR with an HMAC (RFC 4344, RFC 6668), either MAC-then-encrypt over the
  plaintext, or ``-etm@openssh.com`` with the length in clear and the MAC over
  the ciphertext;
* AES-CBC with an HMAC (RFC 4253 §6.3), framed exactly like CTR: the IV of
  each packet is the last ciphertext block of the one before.

Legacy rows (the CBC ciphers and the SHA-1 MACs) are marked ``legacy=True``:
they are never in ``DEFAULT_CIPHERS`` / ``DEFAULT_MACS`` and are negotiated
only when a caller names them. CBC with a non-EtM MAC is the weakest pairing:
its length field is decrypted and acted on before any MAC check, which is what
the plaintext-recovery attack of Albrecht, Paterson and Watson (2009) uses. So,
as OpenSSH does, a bad length or MAC with that pairing is not acted on at
once: the packet reader reads on until 256 KiB from the packet's start have
been consumed, and only then fails, whatever the length said. It is here only
for old servers that speak nothing better.

Adding a cipher or a MAC is one class (when a new family is needed) and one row
in ``CIPHERS`` or ``MACS``. All primitives come from ``cryptography``.
"""

from __future__ import annotations

import os
import struct
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.poly1305 import Poly1305

from .._errors import DisconnectReason, ProtocolError

__all__ = [
    "CIPHERS",
    "DEFAULT_CIPHERS",
    "DEFAULT_MACS",
    "LEGACY_CIPHERS",
    "LEGACY_MACS",
    "MACS",
    "MAX_OVERHEAD",
    "MAX_PACKET_LENGTH",
    "CipherSpec",
    "MacSpec",
    "Opener",
    "Sealer",
    "make_opener",
    "make_sealer",
    "plain_opener",
    "plain_sealer",
]

# RFC 4253 §6.1 asks implementations to handle 35000-byte packets and allows
# more. OpenSSH itself refuses anything over 256 KiB; so do we, before
# allocating: a hostile length field must not make us reserve gigabytes.
MAX_PACKET_LENGTH: Final = 256 * 1024
#: Room a sealer may need beyond the payload: length, padding length, up to
#: 19 bytes of padding, a 64-byte MAC, and the block-size slack that
#: ``update_into`` asks for.
MAX_OVERHEAD: Final = 128

_U32: Final = struct.Struct(">I")
_U32_U8: Final = struct.Struct(">IB")
_U64: Final = struct.Struct(">Q")
_ZERO_BLOCK: Final = bytes(64)


class PacketError(ProtocolError):
    """A packet failed its integrity check or had an impossible shape."""

    def __init__(self, message: str, reason: DisconnectReason = DisconnectReason.PROTOCOL_ERROR) -> None:
        super().__init__(message, reason)


class _PaddingSource:
    """Random padding bytes, drawn from the system in blocks.

    One ``os.urandom`` call per packet is a system call per packet; drawing
    512 bytes at a time (some 50 packets' worth) gives every packet fresh
    random padding at a fraction of the cost, and keeps idle connections small.
    """

    __slots__ = ("_pool", "_pos", "_random")

    _BLOCK: Final = 512

    def __init__(self, random: Callable[[int], bytes]) -> None:
        self._random = random
        self._pool = b""
        self._pos = 0

    def __call__(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._pool):
            self._pool = self._random(max(self._BLOCK, n))
            self._pos, end = 0, n
        chunk = self._pool[self._pos : end]
        self._pos = end
        return chunk


def _padding_length(body: int, block: int) -> int:
    """Random padding so ``body + padding`` is a multiple of ``block`` (min 4, RFC 4253 §6)."""
    pad = block - (body % block)
    if pad < 4:
        pad += block
    return pad


def _check_length(length: int, block: int, extra: int) -> None:
    """Validate a packet_length field; ``extra`` is 4 when the length is inside the padded region."""
    if length > MAX_PACKET_LENGTH:
        raise PacketError(f"packet length {length} exceeds the maximum of {MAX_PACKET_LENGTH}")
    if length < 5 or (length + extra) % block:
        raise PacketError(f"packet length {length} is not a valid multiple of the block size {block}")


def _payload(plain: bytes | memoryview, length: int) -> memoryview:
    """Strip padding_length byte and padding from ``padding_length || payload || padding``.

    Returns a view, not a copy: the payload of a data packet is copied once,
    when a consumer takes it.
    """
    pad = plain[0]
    if pad < 4 or pad > length - 1:
        raise PacketError(f"invalid padding length {pad} in a packet of length {length}")
    return memoryview(plain)[1 : length - pad]


Buffer = bytes | bytearray | memoryview


class Sealer(ABC):
    """Protects outgoing packets for one direction."""

    #: Bytes of MAC or tag appended to each packet.
    mac_size: int = 0

    @abstractmethod
    def seal_into(self, seq: int, payload: Buffer, out: memoryview, tail: Buffer = b"") -> int:
        """Write the whole wire packet for ``payload + tail`` (sequence number ``seq``)
        at the start of ``out``, which has room for the payload and MAX_OVERHEAD
        bytes; return its size.

        Writing in place spares the copies and reallocations of a growing buffer
        (at 32 KiB per packet they cost more than AES-GCM), and ``tail`` lets a
        channel pass its message header and its data without joining them first.
        """

    def seal(self, seq: int, payload: Buffer) -> bytes:
        """The whole wire packet for ``payload``, as bytes (see :meth:`seal_into`)."""
        out = bytearray(len(payload) + MAX_OVERHEAD)
        size = self.seal_into(seq, payload, memoryview(out))
        return bytes(out[:size])


class Opener(ABC):
    """Checks and decrypts incoming packets for one direction."""

    #: Bytes needed before :meth:`packet_size` can tell the packet's size.
    header_size: int = 4
    #: After a bad length or MAC, read on to a fixed amount before failing,
    #: so that when we fail tells an attacker nothing (CBC without EtM only:
    #: see the module notes).
    discard_on_error: bool = False

    @abstractmethod
    def packet_size(self, seq: int, header: memoryview) -> int:
        """The packet's total size on the wire, MAC included. Raises PacketError."""

    @abstractmethod
    def open(self, seq: int, packet: memoryview) -> bytes | memoryview:
        """The payload of the complete wire ``packet`` (a view into fresh plaintext). Raises PacketError."""


# --- no protection (before the first NEWKEYS) --------------------------------


class _PlainSealer(Sealer):
    def __init__(self, random: Callable[[int], bytes]) -> None:
        self._random = random

    def seal_into(self, seq: int, payload: Buffer, out: memoryview, tail: Buffer = b"") -> int:
        first, size = len(payload), len(payload) + len(tail)
        pad = _padding_length(5 + size, 8)
        _U32_U8.pack_into(out, 0, 1 + size + pad, pad)
        out[5 : 5 + first] = payload
        out[5 + first : 5 + size] = tail
        out[5 + size : 5 + size + pad] = self._random(pad)
        return 5 + size + pad


class _PlainOpener(Opener):
    header_size = 4

    def packet_size(self, seq: int, header: memoryview) -> int:
        length: int = _U32.unpack(header[:4])[0]
        _check_length(length, 8, 4)
        return 4 + length

    def open(self, seq: int, packet: memoryview) -> memoryview:
        # The packet is a view into the receive buffer, which is about to change: copy.
        return _payload(bytes(packet[4:]), len(packet) - 4)


# Padding need not be secret, only unpredictable (it is encrypted with the
# packet): every connection draws from one pool rather than keeping its own.
_SYSTEM_PADDING: Final = _PaddingSource(os.urandom)


def _padding_source(random: Callable[[int], bytes]) -> Callable[[int], bytes]:
    return _SYSTEM_PADDING if random is os.urandom else _PaddingSource(random)


def plain_sealer(random: Callable[[int], bytes] = os.urandom) -> Sealer:
    return _PlainSealer(_padding_source(random))


def plain_opener() -> Opener:
    return _PlainOpener()


# --- chacha20-poly1305@openssh.com ---------------------------------------------


def _chacha_nonce(seq: int) -> bytes:
    # cryptography takes a 16-byte IV: a 64-bit little-endian block counter
    # (starting at 0) followed by OpenSSH's 64-bit nonce, the sequence number.
    return b"\x00" * 8 + _U64.pack(seq)


def _chacha_context(key: bytes) -> CipherContext:
    # One context per key, re-aimed with reset_nonce() per packet: building a
    # new Cipher per packet costs more than the encryption of a small one.
    return Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()


class _ChaChaSealer(Sealer):
    mac_size = 16

    def __init__(self, key: bytes, random: Callable[[int], bytes]) -> None:
        self._main = _chacha_context(key[:32])  # K_2: payload and Poly1305 key
        self._header = _chacha_context(key[32:64])  # K_1: the length field only
        self._random = random

    def seal_into(self, seq: int, payload: Buffer, out: memoryview, tail: Buffer = b"") -> int:
        size = len(payload) + len(tail)
        pad = _padding_length(1 + size, 8)
        length = 1 + size + pad
        nonce = _chacha_nonce(seq)
        self._header.reset_nonce(nonce)
        out[:4] = self._header.update(_U32.pack(length))
        main = self._main
        main.reset_nonce(nonce)
        poly_key = main.update(_ZERO_BLOCK)[:32]  # block 0 keys Poly1305; the body starts at block 1
        main.update_into(b"".join((bytes((pad,)), payload, tail, self._random(pad))), out[4:])
        end = 4 + length
        out[end : end + 16] = Poly1305.generate_tag(poly_key, out[:end])
        return end + 16


class _ChaChaOpener(Opener):
    header_size = 4

    def __init__(self, key: bytes) -> None:
        self._main = _chacha_context(key[:32])
        self._header = _chacha_context(key[32:64])

    def packet_size(self, seq: int, header: memoryview) -> int:
        self._header.reset_nonce(_chacha_nonce(seq))
        length: int = _U32.unpack(self._header.update(header[:4]))[0]
        _check_length(length, 8, 0)
        return 4 + length + 16

    def open(self, seq: int, packet: memoryview) -> memoryview:
        main = self._main
        main.reset_nonce(_chacha_nonce(seq))
        poly_key = main.update(_ZERO_BLOCK)[:32]
        try:
            Poly1305.verify_tag(poly_key, packet[:-16], bytes(packet[-16:]))
        except InvalidSignature:
            raise PacketError(
                f"packet {seq}: chacha20-poly1305 tag check failed (corrupted or tampered)",
                DisconnectReason.MAC_ERROR,
            ) from None
        return _payload(main.update(packet[4:-16]), len(packet) - 20)


# --- AES-GCM (aes128-gcm@openssh.com, aes256-gcm@openssh.com) -----------------


class _GcmNonce:
    """4-byte fixed field + 8-byte invocation counter, incremented per packet (RFC 5647 §7.1)."""

    __slots__ = ("_counter", "_fixed")

    def __init__(self, iv: bytes) -> None:
        self._fixed = iv[:4]
        self._counter = int.from_bytes(iv[4:12], "big")

    def next(self) -> bytes:
        nonce = self._fixed + _U64.pack(self._counter)
        self._counter = (self._counter + 1) & 0xFFFFFFFFFFFFFFFF
        return nonce


class _GcmSealer(Sealer):
    mac_size = 16

    def __init__(self, key: bytes, iv: bytes, random: Callable[[int], bytes]) -> None:
        self._aead = AESGCM(key)
        self._nonce = _GcmNonce(iv)
        self._random = random

    def seal_into(self, seq: int, payload: Buffer, out: memoryview, tail: Buffer = b"") -> int:
        size = len(payload) + len(tail)
        pad = _padding_length(1 + size, 16)
        length = 1 + size + pad
        header = _U32.pack(length)
        out[:4] = header
        body = b"".join((bytes((pad,)), payload, tail, self._random(pad)))
        self._aead.encrypt_into(self._nonce.next(), body, header, out[4 : 4 + length + 16])
        return 4 + length + 16


class _GcmOpener(Opener):
    header_size = 4

    def __init__(self, key: bytes, iv: bytes) -> None:
        self._aead = AESGCM(key)
        self._nonce = _GcmNonce(iv)

    def packet_size(self, seq: int, header: memoryview) -> int:
        length: int = _U32.unpack(header[:4])[0]
        _check_length(length, 16, 0)
        return 4 + length + 16

    def open(self, seq: int, packet: memoryview) -> memoryview:
        try:
            plain = self._aead.decrypt(self._nonce.next(), packet[4:], packet[:4])
        except InvalidTag:
            raise PacketError(
                f"packet {seq}: AES-GCM tag check failed (corrupted or tampered)", DisconnectReason.MAC_ERROR
            ) from None
        return _payload(plain, len(packet) - 20)


# --- AES-CTR and AES-CBC with an HMAC, MAC-then-encrypt or encrypt-then-MAC ---


class _Mac:
    """A keyed HMAC; ``copy()`` of a keyed context saves re-keying per packet."""

    __slots__ = ("_template", "size")

    def __init__(self, key: bytes, algorithm: hashes.HashAlgorithm, size: int) -> None:
        self._template = hmac.HMAC(key, algorithm)
        self.size = size

    def _keyed(self, seq: int, parts: tuple[bytes | memoryview, ...]) -> hmac.HMAC:
        mac = self._template.copy()
        mac.update(_U32.pack(seq & 0xFFFFFFFF))
        for part in parts:
            mac.update(part)
        return mac

    def compute(self, seq: int, *parts: bytes | memoryview) -> bytes:
        return self._keyed(seq, parts).finalize()[: self.size]

    def check(self, seq: int, tag: bytes | memoryview, *parts: bytes | memoryview) -> None:
        try:
            self._keyed(seq, parts).verify(bytes(tag))
        except InvalidSignature:
            raise PacketError(
                f"packet {seq}: MAC check failed (corrupted or tampered)", DisconnectReason.MAC_ERROR
            ) from None


# CTR and CBC differ only in the mode object: each keeps one context per
# direction whose state (the counter, or the last ciphertext block, RFC 4253
# §6.3) carries over from packet to packet, and every packet is whole 16-byte
# blocks, so one sealer and one opener serve both.
_AesMode = modes.CTR | modes.CBC
_AES_MODES: Final[dict[str, Callable[[bytes], _AesMode]]] = {"ctr": modes.CTR, "cbc": modes.CBC}


class _AesHmacSealer(Sealer):
    def __init__(
        self, mode: _AesMode, key: bytes, mac: _Mac, etm: bool, random: Callable[[int], bytes]
    ) -> None:
        self._encryptor = Cipher(algorithms.AES(key), mode).encryptor()
        self._mac = mac
        self._etm = etm
        self.mac_size = mac.size
        self._random = random

    def seal_into(self, seq: int, payload: Buffer, out: memoryview, tail: Buffer = b"") -> int:
        size = self.mac_size
        body_size = len(payload) + len(tail)
        if self._etm:
            pad = _padding_length(1 + body_size, 16)
            length = 1 + body_size + pad
            _U32.pack_into(out, 0, length)
            self._encryptor.update_into(b"".join((bytes((pad,)), payload, tail, self._random(pad))), out[4:])
            end = 4 + length
            out[end : end + size] = self._mac.compute(seq, out[:end])
            return end + size
        pad = _padding_length(5 + body_size, 16)
        length = 1 + body_size + pad
        plain = b"".join((_U32_U8.pack(length, pad), payload, tail, self._random(pad)))
        self._encryptor.update_into(plain, out)
        end = 4 + length
        out[end : end + size] = self._mac.compute(seq, plain)
        return end + size


class _AesHmacOpener(Opener):
    def __init__(self, mode: _AesMode, key: bytes, mac: _Mac, etm: bool) -> None:
        self._decryptor = Cipher(algorithms.AES(key), mode).decryptor()
        self._mac = mac
        self._etm = etm
        # Without EtM the length is encrypted: we must decrypt a whole first
        # block to read it, and keep that block for open().
        self.header_size = 4 if etm else 16
        self._first_block = b""
        self.discard_on_error = isinstance(mode, modes.CBC) and not etm

    def packet_size(self, seq: int, header: memoryview) -> int:
        if self._etm:
            length: int = _U32.unpack(header[:4])[0]
            _check_length(length, 16, 0)
        else:
            self._first_block = self._decryptor.update(header[:16])
            length = _U32.unpack(self._first_block[:4])[0]
            _check_length(length, 16, 4)
        return 4 + length + self._mac.size

    def open(self, seq: int, packet: memoryview) -> memoryview:
        size = self._mac.size
        length = len(packet) - 4 - size
        if self._etm:
            self._mac.check(seq, packet[-size:], packet[:-size])
            plain = self._decryptor.update(packet[4:-size])
            return _payload(plain, length)
        plain = self._first_block + self._decryptor.update(packet[16:-size])
        self._mac.check(seq, packet[-size:], plain)
        return _payload(memoryview(plain)[4:], length)


# --- the registries -------------------------------------------------------------


@dataclass(frozen=True)
class CipherSpec:
    """One row of the cipher table.

    Fields: name; key_size and iv_size (bytes of key material to derive);
    family ("chacha", "gcm", "ctr" or "cbc"); aead (True when it needs no MAC);
    legacy (offered only when the caller names it).
    """

    name: str
    key_size: int
    iv_size: int
    family: str
    aead: bool
    legacy: bool = False


@dataclass(frozen=True)
class MacSpec:
    """One row of the MAC table: name, hash, key_size, tag size, encrypt-then-MAC, legacy."""

    name: str
    hash: type[hashes.HashAlgorithm]
    key_size: int
    size: int
    etm: bool
    legacy: bool = False


CIPHERS: Final[dict[str, CipherSpec]] = {
    spec.name: spec
    for spec in (
        CipherSpec("chacha20-poly1305@openssh.com", 64, 0, "chacha", aead=True),
        CipherSpec("aes128-gcm@openssh.com", 16, 12, "gcm", aead=True),
        CipherSpec("aes256-gcm@openssh.com", 32, 12, "gcm", aead=True),
        CipherSpec("aes128-ctr", 16, 16, "ctr", aead=False),
        CipherSpec("aes192-ctr", 24, 16, "ctr", aead=False),
        CipherSpec("aes256-ctr", 32, 16, "ctr", aead=False),
        CipherSpec("aes128-cbc", 16, 16, "cbc", aead=False, legacy=True),  # RFC 4253 §6.3
        CipherSpec("aes192-cbc", 24, 16, "cbc", aead=False, legacy=True),
        CipherSpec("aes256-cbc", 32, 16, "cbc", aead=False, legacy=True),
    )
}

MACS: Final[dict[str, MacSpec]] = {
    spec.name: spec
    for spec in (
        MacSpec("hmac-sha2-256-etm@openssh.com", hashes.SHA256, 32, 32, etm=True),
        MacSpec("hmac-sha2-512-etm@openssh.com", hashes.SHA512, 64, 64, etm=True),
        MacSpec("hmac-sha2-256", hashes.SHA256, 32, 32, etm=False),
        MacSpec("hmac-sha2-512", hashes.SHA512, 64, 64, etm=False),
        MacSpec("hmac-sha1", hashes.SHA1, 20, 20, etm=False, legacy=True),  # RFC 4253 §6.4
        MacSpec("hmac-sha1-etm@openssh.com", hashes.SHA1, 20, 20, etm=True, legacy=True),
    )
}

#: Names usable only when a caller asks for them; never in the defaults.
LEGACY_CIPHERS: Final = frozenset(name for name, spec in CIPHERS.items() if spec.legacy)
LEGACY_MACS: Final = frozenset(name for name, spec in MACS.items() if spec.legacy)

# OpenSSH's client order, without the algorithms it no longer offers by default.
DEFAULT_CIPHERS: Final = [
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
]
DEFAULT_MACS: Final = [
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
    "hmac-sha2-256",
    "hmac-sha2-512",
]


def _aes_hmac_parts(
    cipher: CipherSpec, mac: MacSpec | None, iv: bytes, mac_key: bytes
) -> tuple[_AesMode, _Mac, bool]:
    """Mode, keyed MAC and EtM flag for AES with an HMAC.

    A missing MAC or an unknown family is our bug, not the peer's: ValueError.
    """
    make_mode = _AES_MODES.get(cipher.family)
    if make_mode is None:
        raise ValueError(f"{cipher.name}: unknown cipher family {cipher.family!r}")
    if mac is None:
        raise ValueError(f"{cipher.name} needs a MAC")
    return make_mode(iv), _Mac(mac_key, mac.hash(), mac.size), mac.etm


def make_sealer(
    cipher: CipherSpec,
    mac: MacSpec | None,
    key: bytes,
    iv: bytes,
    mac_key: bytes,
    random: Callable[[int], bytes] = os.urandom,
) -> Sealer:
    """The sealer for one direction, from the negotiated specs and derived keys."""
    random = _padding_source(random)
    if cipher.family == "chacha":
        return _ChaChaSealer(key, random)
    if cipher.family == "gcm":
        return _GcmSealer(key, iv, random)
    mode, keyed_mac, etm = _aes_hmac_parts(cipher, mac, iv, mac_key)
    return _AesHmacSealer(mode, key, keyed_mac, etm, random)


def make_opener(cipher: CipherSpec, mac: MacSpec | None, key: bytes, iv: bytes, mac_key: bytes) -> Opener:
    """The opener for one direction, from the negotiated specs and derived keys."""
    if cipher.family == "chacha":
        return _ChaChaOpener(key)
    if cipher.family == "gcm":
        return _GcmOpener(key, iv)
    mode, keyed_mac, etm = _aes_hmac_parts(cipher, mac, iv, mac_key)
    return _AesHmacOpener(mode, key, keyed_mac, etm)
