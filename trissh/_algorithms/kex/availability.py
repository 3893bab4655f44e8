"""What the installed `cryptography` can do for key exchange, asked once and only when needed.

The probes live apart from the methods so that listing the methods we speak
(:data:`trissh._algorithms.kex.KEX_METHODS`) does not import the methods'
modules; each probe imports only the `cryptography` module it asks about.
"""

from __future__ import annotations

import functools
import warnings

__all__ = ["ffdh_available", "mlkem_available"]


@functools.cache
def mlkem_available() -> bool:
    """Whether `cryptography` has ML-KEM-768: cryptography 47+ with an OpenSSL (3.5+), AWS-LC or BoringSSL."""
    try:
        from cryptography.hazmat.primitives.asymmetric import mlkem
    except ImportError:  # pragma: no cover - depends on the installed cryptography
        return False
    from cryptography.hazmat.backends.openssl import backend

    # Ask the backend when it can tell: a trial key costs 1.7 MiB of memory
    # (OpenSSL's ML-KEM set-up) in every process, used or not.
    supported = getattr(backend, "mlkem_supported", None)
    if supported is not None:
        return bool(supported())
    try:  # pragma: no cover - depends on the installed cryptography
        mlkem.MLKEM768PrivateKey.generate()
    except Exception:  # UnsupportedAlgorithm: an OpenSSL build without ML-KEM
        return False
    return True


@functools.cache
def ffdh_available() -> bool:
    """Whether `cryptography` still has finite-field Diffie-Hellman (deprecated in cryptography 50)."""
    from cryptography.hazmat.primitives.asymmetric import dh
    from cryptography.utils import CryptographyDeprecationWarning

    with warnings.catch_warnings():  # even looking the names up warns
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return hasattr(dh, "DHParameterNumbers")
