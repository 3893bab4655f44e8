"""A scripted SSH server for testing the client transport state machine, byte for byte.

Theory of operation
-------------------
:class:`ScriptedServer` is the *server* half of the SSH transport (RFC 4253),
reduced to what a test needs to drive :class:`trissh._transport.state.TransportState`
through every corner: it never decides anything on its own. The test reads the
client's bytes with :meth:`ScriptedServer.feed` and writes the server's bytes
with the builders (:meth:`~ScriptedServer.version`, :meth:`~ScriptedServer.kexinit`,
:meth:`~ScriptedServer.ecdh_reply`, :meth:`~ScriptedServer.newkeys`,
:meth:`~ScriptedServer.packet`), each of which returns the wire bytes to hand
to the client, in any chunks, dropped, reordered or tampered with.

What it shares with trissh and what it does not:

* Shared (tested on their own): the ``trissh._wire`` encoders and the packet
  sealers/openers of ``trissh._algorithms.ciphers``.
* Independent, so a bug in trissh's client cannot be mirrored here: algorithm
  negotiation, the curve25519-sha256 exchange (RFC 8731) and exchange hash
  H = SHA256(V_C || V_S || I_C || I_S || K_S || Q_C || Q_S || K) (RFC 4253 §8),
  the Ed25519 host key signature (RFC 8709), the key derivation
  HASH(K || H || letter || session_id) (RFC 4253 §7.2), sequence numbers, and
  OpenSSH's strict KEX rule (sequence numbers restart at 0 after each NEWKEYS).

Sequence numbers are plain attributes (:attr:`ScriptedServer.send_seq`,
:attr:`ScriptedServer.recv_seq`) so a test can skip, rewind or refuse to reset
them: that is how the Terrapin-style tampering (CVE-2023-48795) is scripted.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from trissh._algorithms import ciphers as protection
from trissh._wire import Reader, boolean, byte, name_list, string, uint32

__all__ = ["ClientPacket", "ScriptedServer", "kexinit_lists"]

KEXINIT: Final = 20
NEWKEYS: Final = 21
KEX_ECDH_INIT: Final = 30
KEX_ECDH_REPLY: Final = 31

STRICT_KEX_SERVER: Final = "kex-strict-s-v00@openssh.com"
STRICT_KEX_CLIENT: Final = "kex-strict-c-v00@openssh.com"
EXT_INFO_SERVER: Final = "ext-info-s"

DEFAULT_KEX: Final = ("curve25519-sha256", "curve25519-sha256@libssh.org")
DEFAULT_CIPHERS: Final = ("chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes128-ctr")
DEFAULT_MACS: Final = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-256")


@dataclass(frozen=True)
class ClientPacket:
    """One packet the client sent: its sequence number (as the server counted it) and payload."""

    seq: int
    payload: bytes

    @property
    def type(self) -> int:
        return self.payload[0]


def _mpint_unsigned(data: bytes) -> bytes:
    """RFC 4251 §5 mpint of a big-endian unsigned number (written here, not taken from trissh)."""
    data = data.lstrip(b"\x00")
    if data and data[0] & 0x80:
        data = b"\x00" + data
    return len(data).to_bytes(4, "big") + data


def _choose(client: Sequence[str], server: Sequence[str]) -> str | None:
    """RFC 4253 §7.1: the first algorithm on the client's list that the server also lists."""
    return next((name for name in client if name in server), None)


def kexinit_lists(payload: bytes) -> list[list[str]]:
    """The ten name-lists of a KEXINIT payload (kex, host key, ciphers, MACs, compression, languages)."""
    reader = Reader(payload, "KEXINIT")
    reader.byte()
    reader.raw(16)
    return [reader.name_list() for _ in range(10)]


class ScriptedServer:
    """The server side of one SSH transport connection, driven step by step by a test.

    Args:
        seed: seeds every random choice (padding, cookie, ephemeral key, host key).
        kex, host_key_algorithms, ciphers, macs: the server's KEXINIT lists.
        strict: advertise ``kex-strict-s-v00@openssh.com`` in the first KEXINIT.
        ext_info: advertise ``ext-info-s`` in the KEXINIT.
        version: the server's version string, without CR LF.

    Attributes a test may read or change:
        send_seq, recv_seq: the next sequence number in each direction.
        reset_seq_on_newkeys: when False, ignore the strict KEX reset (a broken server).
        host_key: the Ed25519 private key that signs the exchange hash.
        session_id: H of the first exchange, once computed.
        strict_kex: both sides asked for strict KEX in the first exchange.
        received: every client packet so far.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        kex: Sequence[str] = DEFAULT_KEX,
        host_key_algorithms: Sequence[str] = ("ssh-ed25519",),
        ciphers: Sequence[str] = DEFAULT_CIPHERS,
        macs: Sequence[str] = DEFAULT_MACS,
        strict: bool = True,
        ext_info: bool = False,
        version: str = "SSH-2.0-ScriptedServer_1.0",
    ) -> None:
        self._rng = random.Random(seed)
        self.random: Callable[[int], bytes] = self._rng.randbytes
        self.kex_algorithms = list(kex)
        self.host_key_algorithms = list(host_key_algorithms)
        self.ciphers = list(ciphers)
        self.macs = list(macs)
        self.strict = strict
        self.advertise_ext_info = ext_info
        self.server_version = version
        self.host_key = ed25519.Ed25519PrivateKey.from_private_bytes(self.random(32))

        self.client_version: str | None = None
        self.client_kexinit: bytes | None = None
        self.server_kexinit: bytes | None = None
        self.session_id: bytes | None = None
        self.exchange_hash: bytes | None = None
        self.strict_kex = False
        self.reset_seq_on_newkeys = True
        self.received: list[ClientPacket] = []

        self.send_seq = 0
        self.recv_seq = 0
        self._sealer: protection.Sealer = protection.plain_sealer(self.random)
        self._opener: protection.Opener = protection.plain_opener()
        self._next_sealer: protection.Sealer | None = None
        self._next_opener: protection.Opener | None = None
        self._in_buffer = bytearray()
        self._in_size = 0

    # --- the client's bytes ----------------------------------------------------------

    def feed(self, data: bytes) -> list[ClientPacket]:
        """Parse the client's version line and packets; return the complete packets in ``data``.

        KEXINIT is remembered for the exchange hash; NEWKEYS switches the
        client-to-server keys (and, under strict KEX, restarts ``recv_seq``).
        A bad MAC or framing raises the opener's ProtocolError, so a client
        that seals with the wrong keys or sequence number fails the test.
        """
        self._in_buffer += data
        if self.client_version is None:
            end = self._in_buffer.find(b"\r\n")
            if end < 0:
                return []
            line = bytes(self._in_buffer[:end])
            del self._in_buffer[: end + 2]
            assert line.startswith(b"SSH-2.0-"), line
            self.client_version = line.decode("ascii")
        packets: list[ClientPacket] = []
        while True:
            if not self._in_size:
                if len(self._in_buffer) < self._opener.header_size:
                    break
                with memoryview(self._in_buffer) as view:
                    self._in_size = self._opener.packet_size(self.recv_seq, view[: self._opener.header_size])
            if len(self._in_buffer) < self._in_size:
                break
            with memoryview(self._in_buffer) as view:
                payload = self._opener.open(self.recv_seq, view[: self._in_size])
            del self._in_buffer[: self._in_size]
            self._in_size = 0
            packet = ClientPacket(self.recv_seq, payload)
            self.recv_seq = (self.recv_seq + 1) & 0xFFFFFFFF
            packets.append(packet)
            self.received.append(packet)
            if packet.type == KEXINIT:
                self.client_kexinit = payload
            elif packet.type == NEWKEYS:
                assert self._next_opener is not None, "client NEWKEYS before the exchange finished"
                self._opener, self._next_opener = self._next_opener, None
                if self.strict_kex:
                    self.recv_seq = 0
        return packets

    # --- the server's bytes ------------------------------------------------------------

    def version(self, pre_banner: Sequence[bytes] = ()) -> bytes:
        """The version line (RFC 4253 §4.2), after any other lines the server shows first."""
        return b"".join(line + b"\r\n" for line in pre_banner) + self.server_version.encode() + b"\r\n"

    def kexinit_payload(
        self,
        *,
        strict: bool | None = None,
        kex: Sequence[str] | None = None,
        host_key_algorithms: Sequence[str] | None = None,
        ciphers: Sequence[str] | None = None,
        macs: Sequence[str] | None = None,
        ext_info: bool | None = None,
        first_kex_packet_follows: bool = False,
    ) -> bytes:
        """A KEXINIT payload from the server's lists; keyword arguments override them once."""
        kex_list = list(self.kex_algorithms if kex is None else kex)
        if self.advertise_ext_info if ext_info is None else ext_info:
            kex_list.append(EXT_INFO_SERVER)
        if self.strict if strict is None else strict:
            kex_list.append(STRICT_KEX_SERVER)
        cipher_list = self.ciphers if ciphers is None else ciphers
        mac_list = self.macs if macs is None else macs
        return b"".join(
            (
                byte(KEXINIT),
                self.random(16),
                name_list(kex_list),
                name_list(self.host_key_algorithms if host_key_algorithms is None else host_key_algorithms),
                name_list(cipher_list),
                name_list(cipher_list),
                name_list(mac_list),
                name_list(mac_list),
                name_list(["none"]),
                name_list(["none"]),
                name_list([]),
                name_list([]),
                boolean(first_kex_packet_follows),
                uint32(0),
            )
        )

    def kexinit(self, payload: bytes | None = None, **overrides: Any) -> bytes:
        """Seal a KEXINIT and remember it as I_S.

        ``payload`` replaces the whole message; otherwise it is built by
        :meth:`kexinit_payload` with ``overrides``.
        """
        if payload is None:
            payload = self.kexinit_payload(**overrides)
        self.server_kexinit = payload
        return self.packet(payload)

    def ecdh_reply(
        self,
        client_init_payload: bytes,
        *,
        host_key: ed25519.Ed25519PrivateKey | None = None,
        sign_with: ed25519.Ed25519PrivateKey | None = None,
        corrupt_signature: bool = False,
        k_s: bytes | None = None,
    ) -> bytes:
        """Answer the client's KEX_ECDH_INIT (RFC 8731 §3, RFC 5656 §4): seal KEX_ECDH_REPLY.

        Computes K and H, sets the session id on the first exchange, and derives
        the next keys of both directions (installed by NEWKEYS each way).
        ``host_key`` replaces K_S (and the signer) for this reply; ``sign_with``
        signs with another key than K_S; ``corrupt_signature`` flips one bit;
        ``k_s`` is sent as K_S instead of the signer's plain key (a certificate of it, say).
        """
        assert self.client_version is not None and self.client_kexinit is not None
        assert self.server_kexinit is not None, "send kexinit() first"
        reader = Reader(client_init_payload, "KEX_ECDH_INIT")
        assert reader.byte() == KEX_ECDH_INIT
        q_c = reader.string()
        reader.check_end()
        signer = host_key or self.host_key
        ephemeral = x25519.X25519PrivateKey.from_private_bytes(self.random(32))
        q_s = ephemeral.public_key().public_bytes_raw()
        k = _mpint_unsigned(ephemeral.exchange(x25519.X25519PublicKey.from_public_bytes(q_c)))
        if k_s is None:
            k_s = string("ssh-ed25519") + string(signer.public_key().public_bytes_raw())
        h = hashlib.sha256(
            string(self.client_version)
            + string(self.server_version)
            + string(self.client_kexinit)
            + string(self.server_kexinit)
            + string(k_s)
            + string(q_c)
            + string(q_s)
            + k
        ).digest()
        self.exchange_hash = h
        if self.session_id is None:
            self.session_id = h
            client_kex = kexinit_lists(self.client_kexinit)[0]
            self.strict_kex = STRICT_KEX_SERVER in kexinit_lists(self.server_kexinit)[0] and (
                STRICT_KEX_CLIENT in client_kex
            )
        signature = (sign_with or signer).sign(h)
        if corrupt_signature:
            signature = bytes([signature[0] ^ 1]) + signature[1:]
        self._derive(k, h)
        signature_blob = string("ssh-ed25519") + string(signature)
        return self.packet(byte(KEX_ECDH_REPLY) + string(k_s) + string(q_s) + string(signature_blob))

    def newkeys(self) -> bytes:
        """Seal NEWKEYS under the old keys, then switch to the new server-to-client keys."""
        assert self._next_sealer is not None, "ecdh_reply() first"
        data = self.packet(byte(NEWKEYS))
        self._sealer, self._next_sealer = self._next_sealer, None
        if self.strict_kex and self.reset_seq_on_newkeys:
            self.send_seq = 0
        return data

    def packet(self, payload: bytes, *, seq: int | None = None) -> bytes:
        """Seal ``payload`` with the current keys and ``send_seq`` (or ``seq``), then count it.

        ``seq`` seals with another sequence number than the client expects (the
        counter still advances). To drop a packet, build it and do not send it.
        """
        data = self._sealer.seal(self.send_seq if seq is None else seq, payload)
        self.send_seq = (self.send_seq + 1) & 0xFFFFFFFF
        return data

    @staticmethod
    def ext_info_payload(extensions: Mapping[str, bytes]) -> bytes:
        """An EXT_INFO payload (RFC 8308 §2.3)."""
        body = b"".join(string(name) + string(value) for name, value in extensions.items())
        return byte(7) + uint32(len(extensions)) + body

    def ext_info(self, extensions: Mapping[str, bytes]) -> bytes:
        """Seal an EXT_INFO (RFC 8308 §2.3)."""
        return self.packet(self.ext_info_payload(extensions))

    def handshake_reply(self, client_packets: Sequence[ClientPacket]) -> bytes:
        """KEX_ECDH_REPLY and NEWKEYS for the ECDH_INIT among ``client_packets``."""
        init = next(p.payload for p in client_packets if p.type == KEX_ECDH_INIT)
        return self.ecdh_reply(init) + self.newkeys()

    # --- key derivation -------------------------------------------------------------------

    def _derive(self, k: bytes, h: bytes) -> None:
        """RFC 4253 §7.2: key = HASH(K || H || X || session_id), extended by HASH(K || H || K1 || ...)."""
        assert self.client_kexinit is not None and self.server_kexinit is not None
        assert self.session_id is not None
        session_id = self.session_id

        def derive(letter: str, size: int) -> bytes:
            out = hashlib.sha256(k + h + letter.encode() + session_id).digest()
            while len(out) < size:
                out += hashlib.sha256(k + h + out).digest()
            return out[:size]

        c = kexinit_lists(self.client_kexinit)
        s = kexinit_lists(self.server_kexinit)

        def direction(
            ci: int, mi: int, letters: str
        ) -> tuple[protection.CipherSpec, protection.MacSpec | None, bytes, bytes, bytes]:
            cipher_name = _choose(c[ci], s[ci])
            assert cipher_name is not None, "no cipher in common"
            spec = protection.CIPHERS[cipher_name]
            mac = None
            if not spec.aead:
                mac_name = _choose(c[mi], s[mi])
                assert mac_name is not None, "no MAC in common"
                mac = protection.MACS[mac_name]
            iv = derive(letters[0], spec.iv_size) if spec.iv_size else b""
            key = derive(letters[1], spec.key_size)
            mac_key = derive(letters[2], mac.key_size) if mac else b""
            return spec, mac, key, iv, mac_key

        c_spec, c_mac, c_key, c_iv, c_mac_key = direction(2, 4, "ACE")
        s_spec, s_mac, s_key, s_iv, s_mac_key = direction(3, 5, "BDF")
        self._next_opener = protection.make_opener(c_spec, c_mac, c_key, c_iv, c_mac_key)
        self._next_sealer = protection.make_sealer(s_spec, s_mac, s_key, s_iv, s_mac_key, self.random)

    @property
    def negotiated_cipher(self) -> str | None:
        """The server-to-client cipher the lists agree on (client preference), for assertions."""
        if self.client_kexinit is None or self.server_kexinit is None:
            return None
        return _choose(kexinit_lists(self.client_kexinit)[3], kexinit_lists(self.server_kexinit)[3])
