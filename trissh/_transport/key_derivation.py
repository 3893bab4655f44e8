"""Keys for the new ciphers from a finished key exchange (RFC 4253 §7.2).

Theory of operation
-------------------
Each direction's IV, cipher key and MAC key are ``HASH(K || H || letter ||
session_id)``, extended by ``HASH(K || H || what so far)`` until long enough,
with the letters A-F: A, C, E for client to server, B, D, F for server to
client. :func:`derive_keys` does that for the negotiated algorithms and builds
the sealer (ours) and opener (theirs). Pure: the hash, the session id and the
randomness for padding come in as arguments.

What it must not know: when the keys take effect (NEWKEYS, in
:mod:`trissh._transport.state`), or how the exchange got K and H.
"""

from __future__ import annotations

from collections.abc import Callable

from .._algorithms import ciphers
from .._algorithms.kex import KexResult
from .negotiate import Negotiated

__all__ = ["derive_keys"]


def derive_keys(
    negotiated: Negotiated,
    result: KexResult,
    *,
    session_id: bytes,
    hash_function: Callable[[bytes], bytes],
    random: Callable[[int], bytes],
) -> tuple[ciphers.Sealer, ciphers.Opener]:
    """RFC 4253 §7.2: HASH(K || H || letter || session_id), extended as needed.

    Args:
        negotiated: the algorithms the keys are for.
        result: the exchange's K (``shared_secret``) and H (``exchange_hash``).
        session_id: the first exchange's H.
        hash_function: the key exchange method's HASH.
        random: random bytes for the sealer's padding.

    Returns:
        The client-to-server sealer and the server-to-client opener.
    """
    base = result.shared_secret + result.exchange_hash

    def derive(letter: bytes, size: int) -> bytes:
        if size == 0:
            return b""
        out = hash_function(base + letter + session_id)
        while len(out) < size:
            out += hash_function(base + out)
        return out[:size]

    def keys(
        direction: str, letters: bytes
    ) -> tuple[ciphers.CipherSpec, ciphers.MacSpec | None, bytes, bytes, bytes]:
        algs = negotiated.client_to_server if direction == "c2s" else negotiated.server_to_client
        cipher = ciphers.CIPHERS[algs.cipher]
        mac = ciphers.MACS[algs.mac] if algs.mac else None
        iv = derive(letters[0:1], cipher.iv_size)
        key = derive(letters[1:2], cipher.key_size)
        mac_key = derive(letters[2:3], mac.key_size) if mac else b""
        return cipher, mac, key, iv, mac_key

    c_cipher, c_mac, c_key, c_iv, c_mac_key = keys("c2s", b"ACE")
    s_cipher, s_mac, s_key, s_iv, s_mac_key = keys("s2c", b"BDF")
    sealer = ciphers.make_sealer(c_cipher, c_mac, c_key, c_iv, c_mac_key, random)
    opener = ciphers.make_opener(s_cipher, s_mac, s_key, s_iv, s_mac_key)
    return sealer, opener
