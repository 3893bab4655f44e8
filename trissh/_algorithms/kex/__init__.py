"""Key exchange methods: the client side of each, as small sans-IO objects.

:data:`KEX_METHODS` maps every method name we speak to a function that builds
its :class:`KexMethod` from a :class:`KexSetup`; adding a method is one class
(or one parameter set, a ``functools.partial`` in the method's module) and one
row in :data:`_METHODS`. :data:`DEFAULT_KEX_ALGORITHMS` is what we offer when
the caller does not choose: OpenSSH 10's order without the methods we lack.
:data:`LEGACY_KEX_ALGORITHMS` (SHA-1 hashes, a 1024-bit group) are in
:data:`KEX_METHODS` so a caller may ask for them by name, and are never offered
otherwise.

Theory of operation: lazy loading
---------------------------------
A connection runs one key exchange method, almost always curve25519 or
ML-KEM; the finite-field ones (their MODP primes, `cryptography`'s DH) are
rarely negotiated. So a row of :data:`_METHODS` names its factory as
``"module:attr"``, and :data:`KEX_METHODS` imports that module the first time
the method is looked up (once per process: the factory is cached, so a
connection pays one dict lookup, as before). Listing names, ``in`` and
``len`` import nothing. A method that needs something of the installed
`cryptography` (ML-KEM, finite-field DH) has an availability probe, run once,
the first time the list of names is needed. The method classes are still
importable from here (module ``__getattr__``), loading their module then.

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
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from .availability import ffdh_available, mlkem_available
from .base import GexBits, KexMethod, KexResult, KexSetup

if TYPE_CHECKING:
    from .dh import FixedGroupKex, GroupExchangeKex
    from .ecdh import Curve25519Kex, NistEcdhKex
    from .hybrid import MlKem768X25519Kex

    DEFAULT_KEX_ALGORITHMS: list[str]

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

# (name, "module:factory" in this package, availability probe or None), in OpenSSH 10's client order.
_METHODS: Final[tuple[tuple[str, str, Callable[[], bool] | None], ...]] = (
    ("mlkem768x25519-sha256", "hybrid:MlKem768X25519Kex", mlkem_available),
    ("curve25519-sha256", "ecdh:Curve25519Kex", None),
    ("curve25519-sha256@libssh.org", "ecdh:Curve25519Kex", None),
    ("ecdh-sha2-nistp256", "ecdh:NISTP256_SHA256", None),
    ("ecdh-sha2-nistp384", "ecdh:NISTP384_SHA384", None),
    ("ecdh-sha2-nistp521", "ecdh:NISTP521_SHA512", None),
    ("diffie-hellman-group-exchange-sha256", "dh:GEX_SHA256", ffdh_available),
    ("diffie-hellman-group16-sha512", "dh:GROUP16_SHA512", ffdh_available),
    ("diffie-hellman-group18-sha512", "dh:GROUP18_SHA512", ffdh_available),
    ("diffie-hellman-group14-sha256", "dh:GROUP14_SHA256", ffdh_available),
    # Legacy: by name only.
    ("diffie-hellman-group14-sha1", "dh:GROUP14_SHA1", ffdh_available),
    ("diffie-hellman-group-exchange-sha1", "dh:GEX_SHA1", ffdh_available),
    ("diffie-hellman-group1-sha1", "dh:GROUP1_SHA1", ffdh_available),
)

# The method classes, importable from here; each loads its module when first asked for.
_CLASSES: Final = {
    "Curve25519Kex": "ecdh",
    "NistEcdhKex": "ecdh",
    "FixedGroupKex": "dh",
    "GroupExchangeKex": "dh",
    "MlKem768X25519Kex": "hybrid",
}


def _resolve(target: str) -> Any:
    module, attr = target.split(":")
    return getattr(importlib.import_module(f".{module}", __name__), attr)


class _KexRegistry(Mapping[str, KexFactory]):
    """Method name -> factory, in preference order; a factory's module is imported on its first lookup."""

    def __init__(self, rows: tuple[tuple[str, str, Callable[[], bool] | None], ...]) -> None:
        self._rows = rows
        self._factories: dict[str, KexFactory] = {}

    @functools.cached_property
    def _targets(self) -> dict[str, str]:
        return {name: target for name, target, available in self._rows if available is None or available()}

    def __getitem__(self, name: str) -> KexFactory:
        factory = self._factories.get(name)
        if factory is None:
            factory = self._factories[name] = _resolve(self._targets[name])
        return factory

    def __contains__(self, name: object) -> bool:
        return name in self._targets  # no import: Mapping's default would look the factory up

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)

    def __repr__(self) -> str:
        return f"KEX_METHODS({list(self._targets)})"


KEX_METHODS: Final[Mapping[str, KexFactory]] = _KexRegistry(_METHODS)

LEGACY_KEX_ALGORITHMS: Final = frozenset(
    {"diffie-hellman-group14-sha1", "diffie-hellman-group-exchange-sha1", "diffie-hellman-group1-sha1"}
)


@functools.cache
def _default_kex_algorithms() -> tuple[str, ...]:
    # OpenSSH 10's client order, less sntrup761 (see above) and what this cryptography lacks.
    return tuple(name for name in KEX_METHODS if name not in LEGACY_KEX_ALGORITHMS)


def __getattr__(name: str) -> Any:
    if name == "DEFAULT_KEX_ALGORITHMS":
        return list(_default_kex_algorithms())  # a fresh list each time: callers may not change ours
    if name in _CLASSES:
        return getattr(importlib.import_module(f".{_CLASSES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
