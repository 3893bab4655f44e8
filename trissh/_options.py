"""Algorithm choices as callers give them, checked and turned into :class:`AlgorithmPreferences`.

Shared by :func:`trissh.connect` and by low-level users who build a
:class:`~trissh.SSHClientTransport` themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._algorithms import kex
from ._algorithms.cert_names import CERT_SIGNATURE_ALGORITHMS
from ._algorithms.ciphers import CIPHERS, DEFAULT_CIPHERS, DEFAULT_MACS, MACS
from ._algorithms.compression import COMPRESSION_METHODS, COMPRESSION_WHEN_ASKED, DEFAULT_COMPRESSION
from ._algorithms.hostkeys import DEFAULT_HOST_KEY_ALGORITHMS, HOST_KEY_ALGORITHMS
from ._transport.negotiate import AlgorithmPreferences

__all__ = ["algorithm_preferences", "validated_names"]

# Host key algorithms a caller may name: plain signature algorithms and their certificate forms.
_HOST_KEY_NAMES = (*HOST_KEY_ALGORITHMS, *CERT_SIGNATURE_ALGORITHMS)


def validated_names(
    names: Sequence[str] | str | None, known: Iterable[str], default: Sequence[str], what: str
) -> list[str]:
    """``names`` (a list, or a comma-separated string) checked against ``known``; ``default`` when None."""
    if names is None:
        return list(default)
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    known_set = set(known)
    unknown = [n for n in names if n not in known_set]
    if unknown:
        supported = ", ".join(sorted(known_set))
        raise ValueError(f"unsupported {what} algorithm(s): {', '.join(unknown)}; supported: {supported}")
    if not names:
        raise ValueError(f"empty list of {what} algorithms")
    return list(names)


def algorithm_preferences(
    *,
    kex_algs: Sequence[str] | str | None = None,
    host_key_algs: Sequence[str] | str | None = None,
    ciphers: Sequence[str] | str | None = None,
    macs: Sequence[str] | str | None = None,
    compression: bool | Sequence[str] | str | None = None,
) -> AlgorithmPreferences:
    """Our KEXINIT lists: each given list checked (ValueError naming what is unknown), else the default.

    ``compression``: True offers zlib@openssh.com, zlib, none (in that order);
    None or False only none; or a list of names.
    """
    if compression is None or compression is False:
        compression = DEFAULT_COMPRESSION
    elif compression is True:
        compression = COMPRESSION_WHEN_ASKED
    return AlgorithmPreferences(
        # The default kex list is read here, not at import: it probes the installed cryptography once.
        kex=validated_names(kex_algs, kex.KEX_METHODS, kex.DEFAULT_KEX_ALGORITHMS, "key exchange"),
        host_key=validated_names(
            host_key_algs,
            [*HOST_KEY_ALGORITHMS, *CERT_SIGNATURE_ALGORITHMS],
            DEFAULT_HOST_KEY_ALGORITHMS,
            "host key",
        ),
        ciphers=validated_names(ciphers, CIPHERS, DEFAULT_CIPHERS, "cipher"),
        macs=validated_names(macs, MACS, DEFAULT_MACS, "MAC"),
        compression=validated_names(compression, COMPRESSION_METHODS, DEFAULT_COMPRESSION, "compression"),
    )
