"""Finite-field Diffie-Hellman: fixed groups (RFC 4253 §8, RFC 8268), group exchange (RFC 4419, 8270).

Fixed group: ``KEXDH_INIT(e)`` → ``KEXDH_REPLY(K_S, f, signature)``; the
exchange hash is ``H(prefix || string K_S || mpint e || mpint f || mpint K)``.

Group exchange first asks the server for a group of a size within bounds
(``KEX_DH_GEX_REQUEST(min, n, max)``), receives ``KEX_DH_GEX_GROUP(p, g)``,
then runs the same exchange with ``KEX_DH_GEX_INIT``/``KEX_DH_GEX_REPLY``; its
hash also covers ``uint32 min || uint32 n || uint32 max || mpint p || mpint g``
before ``e``. The server chooses the group, so we check it: the size within
what we asked for, a sane generator, an odd modulus.

For the fixed groups the arithmetic is `cryptography`'s (OpenSSL). For a
group the server chooses it cannot be: `cryptography` validates every group
it does not know as a safe prime before use, which measured 2.4 s for one
3072-bit group from sshd's moduli file, and 1.8 s more to accept the server's
value (OpenSSH's client spends about 10 ms on the whole exchange). So group
exchange raises the generator to a fresh 512-bit random exponent with
Python's built-in modular ``pow``: an ephemeral secret, used once, so the
timing of one exponentiation gives an observer nothing to accumulate; 512
bits is what OpenSSH uses with 256-bit ciphers (twice the strength needed).
Either way we check the peer's value is inside ``(1, p - 1)`` (RFC 4253 §8).

`cryptography` 50 deprecates finite-field Diffie-Hellman and warns on every
use. SSH servers still offer these methods (some offer nothing better), and
they are never preferred over the elliptic-curve ones, so the warning is
silenced for this module's own calls only. Should `cryptography` drop FFDH,
:data:`FFDH_AVAILABLE` turns false and the registry stops offering them.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dh
from cryptography.utils import CryptographyDeprecationWarning

from ... import _messages as msg
from ..._wire import mpint, string, uint32
from .availability import ffdh_available
from .base import KexMethod, KexResult, KexSetup, kex_failed
from .groups import GROUP1, GROUP14, GROUP16, GROUP18, ModpGroup

__all__ = [
    "FFDH_AVAILABLE",
    "GEX_SHA1",
    "GEX_SHA256",
    "GROUP14_SHA1",
    "GROUP14_SHA256",
    "GROUP16_SHA512",
    "GROUP18_SHA512",
    "GROUP1_SHA1",
    "FixedGroupKex",
    "GroupExchangeKex",
]


@contextlib.contextmanager
def _quietly() -> Iterator[None]:
    """Silence cryptography's FFDH deprecation warning for our own calls (see the module notes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


FFDH_AVAILABLE: Final = ffdh_available()


class _FixedGroupKey:
    """One side's ephemeral key in a well-known group, by `cryptography`."""

    def __init__(self, name: str, prime: int, generator: int) -> None:
        self._name = name
        self.prime = prime
        with _quietly():
            self._numbers = dh.DHParameterNumbers(prime, generator)
            self._private = self._numbers.parameters().generate_private_key()
            self.public = self._private.public_key().public_numbers().y

    def shared_secret(self, server_public: int) -> bytes:
        """K as an mpint, refusing a server value outside ``(1, p - 1)``."""
        _check_range(self._name, server_public, self.prime)
        with _quietly():
            peer = dh.DHPublicNumbers(server_public, self._numbers).public_key()
            return mpint(int.from_bytes(self._private.exchange(peer), "big"))


class _ServerGroupKey:
    """One side's ephemeral key in a group the server chose (see the module notes on why ``pow``)."""

    EXPONENT_BITS = 512

    def __init__(self, name: str, prime: int, generator: int, random: Callable[[int], bytes]) -> None:
        self._name = name
        self.prime = prime
        bits = min(self.EXPONENT_BITS, prime.bit_length() - 1)
        self._exponent = 0
        while self._exponent < 2:
            self._exponent = int.from_bytes(random((bits + 7) // 8), "big") >> (-bits % 8)
        self.public = pow(generator, self._exponent, prime)

    def shared_secret(self, server_public: int) -> bytes:
        """K as an mpint, refusing a server value outside ``(1, p - 1)``."""
        _check_range(self._name, server_public, self.prime)
        return mpint(pow(server_public, self._exponent, self.prime))


def _check_range(name: str, value: int, prime: int) -> None:
    if not 1 < value < prime - 1:
        raise kex_failed(name, f"server's DH value f is out of range (1, p-1): {_describe(value)}")


def _describe(value: int) -> str:
    return str(value) if value.bit_length() <= 64 else f"a {value.bit_length()}-bit value"


class FixedGroupKex(KexMethod):
    """diffie-hellman-group{1,14,16,18}-sha{1,256,512}: one group, one hash."""

    def __init__(self, setup: KexSetup, group: ModpGroup, hash_algorithm: type[hashes.HashAlgorithm]) -> None:
        super().__init__(setup)
        self.hash_algorithm = hash_algorithm
        self._dh = _FixedGroupKey(self.name, group.prime, group.generator)

    def start(self) -> bytes:
        return bytes((msg.KEXDH_INIT,)) + mpint(self._dh.public)

    def receive(self, payload: bytes | memoryview) -> KexResult:
        reader = self._reader(payload, msg.KEXDH_REPLY, "KEXDH_REPLY")
        host_key = reader.string()
        server_public = reader.mpint()
        signature = reader.string()
        reader.check_end()
        shared = self._dh.shared_secret(server_public)
        exchange_hash = self.hash(
            self._prefix + string(host_key) + mpint(self._dh.public) + mpint(server_public) + shared
        )
        return KexResult(host_key, signature, shared, exchange_hash)


class GroupExchangeKex(KexMethod):
    """diffie-hellman-group-exchange-sha256 (and -sha1, legacy): the server picks the group."""

    def __init__(self, setup: KexSetup, hash_algorithm: type[hashes.HashAlgorithm]) -> None:
        super().__init__(setup)
        self.hash_algorithm = hash_algorithm
        self._bits = setup.gex_bits
        self._dh: _ServerGroupKey | None = None
        self._group_fields = b""  # min || n || max || p || g, for the exchange hash

    def start(self) -> bytes:
        bits = self._bits
        return (
            bytes((msg.KEX_DH_GEX_REQUEST,))
            + uint32(bits.minimum)
            + uint32(bits.preferred)
            + uint32(bits.maximum)
        )

    def receive(self, payload: bytes | memoryview) -> bytes | KexResult:
        if self._dh is None:
            return self._receive_group(payload)
        return self._receive_reply(payload, self._dh)

    def _receive_group(self, payload: bytes | memoryview) -> bytes:
        reader = self._reader(payload, msg.KEX_DH_GEX_GROUP, "KEX_DH_GEX_GROUP")
        prime = reader.mpint()
        generator = reader.mpint()
        reader.check_end()
        bits = self._bits
        size = prime.bit_length()
        if not bits.minimum <= size <= bits.maximum:
            raise kex_failed(
                self.name,
                f"server offered a {size}-bit group; we asked for {bits.minimum} to {bits.maximum} bits",
            )
        if prime % 2 == 0:
            raise kex_failed(self.name, "server's group modulus is even, so not a prime")
        if not 1 < generator < prime - 1:
            raise kex_failed(self.name, f"server's group generator is out of range: {_describe(generator)}")
        self._dh = _ServerGroupKey(self.name, prime, generator, self._random)
        self._group_fields = (
            uint32(bits.minimum)
            + uint32(bits.preferred)
            + uint32(bits.maximum)
            + mpint(prime)
            + mpint(generator)
        )
        return bytes((msg.KEX_DH_GEX_INIT,)) + mpint(self._dh.public)

    def _receive_reply(self, payload: bytes | memoryview, group: _ServerGroupKey) -> KexResult:
        reader = self._reader(payload, msg.KEX_DH_GEX_REPLY, "KEX_DH_GEX_REPLY")
        host_key = reader.string()
        server_public = reader.mpint()
        signature = reader.string()
        reader.check_end()
        shared = group.shared_secret(server_public)
        exchange_hash = self.hash(
            self._prefix
            + string(host_key)
            + self._group_fields
            + mpint(group.public)
            + mpint(server_public)
            + shared
        )
        return KexResult(host_key, signature, shared, exchange_hash)


# The registry's factories (trissh._algorithms.kex names each by "dh:NAME").
GEX_SHA256: Final = partial(GroupExchangeKex, hash_algorithm=hashes.SHA256)
GROUP16_SHA512: Final = partial(FixedGroupKex, group=GROUP16, hash_algorithm=hashes.SHA512)
GROUP18_SHA512: Final = partial(FixedGroupKex, group=GROUP18, hash_algorithm=hashes.SHA512)
GROUP14_SHA256: Final = partial(FixedGroupKex, group=GROUP14, hash_algorithm=hashes.SHA256)
GROUP14_SHA1: Final = partial(FixedGroupKex, group=GROUP14, hash_algorithm=hashes.SHA1)
GEX_SHA1: Final = partial(GroupExchangeKex, hash_algorithm=hashes.SHA1)
GROUP1_SHA1: Final = partial(FixedGroupKex, group=GROUP1, hash_algorithm=hashes.SHA1)
