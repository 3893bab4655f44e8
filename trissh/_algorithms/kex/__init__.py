"""Key exchange methods: the client side of each, as small sans-IO objects.

:data:`KEX_METHODS` maps every method name we speak to a function that builds
its :class:`KexMethod` from a :class:`KexSetup`; adding a method is one class
(or one parameter set) and one row here. :data:`DEFAULT_KEX_ALGORITHMS` is
what we offer when the caller does not choose: OpenSSH 10's order without the
methods we lack. :data:`LEGACY_KEX_ALGORITHMS` (SHA-1 hashes, a 1024-bit
group) are in :data:`KEX_METHODS` so a caller may ask for them by name, and
are never offered otherwise.

Not here: ``sntrup761x25519-sha512`` (and its ``@openssh.com`` name).
`cryptography` has no Streamlined NTRU Prime, and a pure-Python one would be
home-made cryptography on the key exchange's critical path (and slow: its
polynomial arithmetic in R/q with n = 761 is some 600,000 small
multiplications per decapsulation). ``mlkem768x25519-sha256`` gives the same
post-quantum protection, is OpenSSH's default since 10.0, and comes from
`cryptography`; every server that offers sntrup761 also offers curve25519.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from .base import GexBits, KexMethod, KexResult, KexSetup
from .dh import FFDH_AVAILABLE, FixedGroupKex, GroupExchangeKex
from .ecdh import Curve25519Kex, NistEcdhKex
from .groups import GROUP1, GROUP14, GROUP16, GROUP18
from .hybrid import MLKEM_AVAILABLE, MlKem768X25519Kex

__all__ = [
    "DEFAULT_KEX_ALGORITHMS",
    "KEX_METHODS",
    "LEGACY_KEX_ALGORITHMS",
    "Curve25519Kex",
    "FixedGroupKex",
    "GexBits",
    "GroupExchangeKex",
    "KexFactory",
    "KexMethod",
    "KexResult",
    "KexSetup",
    "MlKem768X25519Kex",
    "NistEcdhKex",
]

KexFactory = Callable[[KexSetup], KexMethod]

_partial = functools.partial

_FINITE_FIELD: Final[dict[str, KexFactory]] = {
    "diffie-hellman-group-exchange-sha256": _partial(GroupExchangeKex, hash_algorithm=hashes.SHA256),
    "diffie-hellman-group16-sha512": _partial(FixedGroupKex, group=GROUP16, hash_algorithm=hashes.SHA512),
    "diffie-hellman-group18-sha512": _partial(FixedGroupKex, group=GROUP18, hash_algorithm=hashes.SHA512),
    "diffie-hellman-group14-sha256": _partial(FixedGroupKex, group=GROUP14, hash_algorithm=hashes.SHA256),
    # Legacy: by name only.
    "diffie-hellman-group14-sha1": _partial(FixedGroupKex, group=GROUP14, hash_algorithm=hashes.SHA1),
    "diffie-hellman-group-exchange-sha1": _partial(GroupExchangeKex, hash_algorithm=hashes.SHA1),
    "diffie-hellman-group1-sha1": _partial(FixedGroupKex, group=GROUP1, hash_algorithm=hashes.SHA1),
}

KEX_METHODS: Final[dict[str, KexFactory]] = {
    **({"mlkem768x25519-sha256": MlKem768X25519Kex} if MLKEM_AVAILABLE else {}),
    "curve25519-sha256": Curve25519Kex,
    "curve25519-sha256@libssh.org": Curve25519Kex,
    "ecdh-sha2-nistp256": _partial(NistEcdhKex, curve=ec.SECP256R1(), hash_algorithm=hashes.SHA256),
    "ecdh-sha2-nistp384": _partial(NistEcdhKex, curve=ec.SECP384R1(), hash_algorithm=hashes.SHA384),
    "ecdh-sha2-nistp521": _partial(NistEcdhKex, curve=ec.SECP521R1(), hash_algorithm=hashes.SHA512),
    **(_FINITE_FIELD if FFDH_AVAILABLE else {}),
}

LEGACY_KEX_ALGORITHMS: Final = frozenset(
    {"diffie-hellman-group14-sha1", "diffie-hellman-group-exchange-sha1", "diffie-hellman-group1-sha1"}
)

# OpenSSH 10's client order, less sntrup761 (see above). KEX_METHODS is in that order.
DEFAULT_KEX_ALGORITHMS: Final = [name for name in KEX_METHODS if name not in LEGACY_KEX_ALGORITHMS]
