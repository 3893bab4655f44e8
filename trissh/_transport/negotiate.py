"""KEXINIT messages and algorithm negotiation (RFC 4253 §7.1).

For every category the chosen algorithm is the first one in the client's list
that the server also lists. Pseudo-algorithms that only signal support for an
extension (``ext-info-c``, ``kex-strict-c-v00@openssh.com``) are added to the
first KEXINIT and never chosen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .. import _messages as msg
from .._errors import DisconnectError, DisconnectReason
from .._public import public
from .._wire import Reader, boolean, byte, name_list, uint32

__all__ = [
    "EXT_INFO_CLIENT",
    "STRICT_KEX_CLIENT",
    "STRICT_KEX_SERVER",
    "AlgorithmPreferences",
    "DirectionAlgorithms",
    "KexInit",
    "Negotiated",
    "negotiate",
]

EXT_INFO_CLIENT = "ext-info-c"
EXT_INFO_SERVER = "ext-info-s"
STRICT_KEX_CLIENT = "kex-strict-c-v00@openssh.com"
STRICT_KEX_SERVER = "kex-strict-s-v00@openssh.com"
_PSEUDO_ALGORITHMS = frozenset({EXT_INFO_CLIENT, EXT_INFO_SERVER, STRICT_KEX_CLIENT, STRICT_KEX_SERVER})


@dataclass(frozen=True)
class AlgorithmPreferences:
    """The client's algorithm lists, most preferred first."""

    kex: Sequence[str]
    host_key: Sequence[str]
    ciphers: Sequence[str]
    macs: Sequence[str]
    compression: Sequence[str] = ("none",)


@dataclass(frozen=True)
class KexInit:
    """A parsed SSH_MSG_KEXINIT. ``payload`` is the raw message, kept for the exchange hash."""

    payload: bytes
    kex: list[str]
    host_key: list[str]
    ciphers_c2s: list[str]
    ciphers_s2c: list[str]
    macs_c2s: list[str]
    macs_s2c: list[str]
    compression_c2s: list[str]
    compression_s2c: list[str]
    first_kex_packet_follows: bool

    @classmethod
    def build(cls, prefs: AlgorithmPreferences, random: Callable[[int], bytes], *, initial: bool) -> KexInit:
        kex = list(prefs.kex)
        if initial:
            # Only in the first KEXINIT, as OpenSSH does: they mean nothing in a rekey.
            kex += [EXT_INFO_CLIENT, STRICT_KEX_CLIENT]
        payload = b"".join(
            (
                byte(msg.KEXINIT),
                random(16),
                name_list(kex),
                name_list(prefs.host_key),
                name_list(prefs.ciphers),
                name_list(prefs.ciphers),
                name_list(prefs.macs),
                name_list(prefs.macs),
                name_list(prefs.compression),
                name_list(prefs.compression),
                name_list([]),
                name_list([]),
                boolean(False),
                uint32(0),
            )
        )
        return cls.parse(payload)

    @classmethod
    def parse(cls, payload: bytes) -> KexInit:
        reader = Reader(payload, "KEXINIT")
        reader.byte()
        reader.raw(16)  # cookie
        lists = [reader.name_list() for _ in range(10)]
        follows = reader.boolean()
        reader.uint32()  # reserved
        reader.check_end()
        (kex, host_key, c_c2s, c_s2c, m_c2s, m_s2c, z_c2s, z_s2c) = lists[:8]
        return cls(payload, kex, host_key, c_c2s, c_s2c, m_c2s, m_s2c, z_c2s, z_s2c, follows)


@public
@dataclass(frozen=True)
class DirectionAlgorithms:
    """The algorithms for one direction. ``mac`` is None when the cipher is an AEAD."""

    cipher: str
    mac: str | None
    compression: str


@public
@dataclass(frozen=True)
class Negotiated:
    """What the key exchange agreed, per direction.

    Fields: kex, host_key (the signature algorithm), client_to_server,
    server_to_client, strict_kex (both sides speak OpenSSH's strict KEX),
    server_ext_info (the server will send EXT_INFO, RFC 8308).
    """

    kex: str
    host_key: str
    client_to_server: DirectionAlgorithms
    server_to_client: DirectionAlgorithms
    strict_kex: bool = False
    server_ext_info: bool = False
    guess_was_wrong: bool = field(default=False, repr=False)

    def __str__(self) -> str:
        def show(d: DirectionAlgorithms) -> str:
            mac = f" + {d.mac}" if d.mac else ""
            comp = "" if d.compression == "none" else f", {d.compression}"
            return f"{d.cipher}{mac}{comp}"

        c2s, s2c = show(self.client_to_server), show(self.server_to_client)
        ciphers = c2s if c2s == s2c else f"{c2s} (out) / {s2c} (in)"
        strict = ", strict kex" if self.strict_kex else ""
        return f"kex {self.kex}, host key {self.host_key}, cipher {ciphers}{strict}"


def _choose(category: str, client: Sequence[str], server: Sequence[str]) -> str:
    offered = set(server)
    for name in client:
        if name in offered and name not in _PSEUDO_ALGORITHMS:
            return name
    raise DisconnectError(
        DisconnectReason.KEY_EXCHANGE_FAILED,
        f"no {category} algorithm in common; we offered {','.join(client)}; "
        f"the server offered {','.join(server)}",
        local=True,
    )


def negotiate(
    ours: KexInit,
    theirs: KexInit,
    aead_ciphers: frozenset[str],
    *,
    initial: bool,
) -> Negotiated:
    """Pick one algorithm per category; raises DisconnectError (KEY_EXCHANGE_FAILED)."""
    kex = _choose("key exchange", ours.kex, theirs.kex)
    host_key = _choose("host key", ours.host_key, theirs.host_key)

    def direction(
        label: str,
        ciphers: Sequence[str],
        macs: Sequence[str],
        comps: Sequence[str],
        peer: tuple[Sequence[str], Sequence[str], Sequence[str]],
    ) -> DirectionAlgorithms:
        cipher = _choose(f"cipher ({label})", ciphers, peer[0])
        # An AEAD cipher ignores the MAC lists (OpenSSH PROTOCOL.chacha20poly1305).
        mac = None if cipher in aead_ciphers else _choose(f"MAC ({label})", macs, peer[1])
        comp = _choose(f"compression ({label})", comps, peer[2])
        return DirectionAlgorithms(cipher, mac, comp)

    c2s = direction(
        "client to server",
        ours.ciphers_c2s,
        ours.macs_c2s,
        ours.compression_c2s,
        (theirs.ciphers_c2s, theirs.macs_c2s, theirs.compression_c2s),
    )
    s2c = direction(
        "server to client",
        ours.ciphers_s2c,
        ours.macs_s2c,
        ours.compression_s2c,
        (theirs.ciphers_s2c, theirs.macs_s2c, theirs.compression_s2c),
    )
    # RFC 4253 §7: the server's guessed first kex packet is right only when both
    # sides put the same kex and host key algorithms first (OpenSSH: proposals_match).
    guess_wrong = theirs.first_kex_packet_follows and (
        not theirs.kex
        or not ours.kex
        or theirs.kex[0] != ours.kex[0]
        or not theirs.host_key
        or not ours.host_key
        or theirs.host_key[0] != ours.host_key[0]
    )
    return Negotiated(
        kex,
        host_key,
        c2s,
        s2c,
        strict_kex=initial and STRICT_KEX_SERVER in theirs.kex,
        server_ext_info=EXT_INFO_SERVER in theirs.kex,
        guess_was_wrong=guess_wrong,
    )
