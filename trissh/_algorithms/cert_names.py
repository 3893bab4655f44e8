"""The names of OpenSSH certificate types and algorithms (PROTOCOL.certkeys), without the parser.

Most connections never see a certificate, yet every connection needs these
names: to offer (or not) certificate host key algorithms, to map a
certificate signature algorithm to the plain one it signs with, to tell a
certificate blob from a plain key. They live here so that those uses do not
import :mod:`trissh._algorithms.certificates` (the parser, the checks and the
:class:`~trissh._algorithms.certificates.Certificate` class), which is loaded
when a certificate first appears; it re-exports every name here.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Final

__all__ = [
    "CERT_HOST_KEY_ALGORITHMS",
    "CERT_KEY_TYPES",
    "CERT_SIGNATURE_ALGORITHMS",
    "LEGACY_CERT_HOST_KEY_ALGORITHMS",
    "cert_algorithm",
    "is_certificate",
    "is_certificate_type",
]

_CERTIFICATES_MODULE: Final = f"{__package__}.certificates"  # trissh._algorithms.certificates

#: Certificate key type -> the plain key type it certifies.
CERT_KEY_TYPES: Final[Mapping[str, str]] = {
    "ssh-ed25519-cert-v01@openssh.com": "ssh-ed25519",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com": "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com": "ecdsa-sha2-nistp521",
    "ssh-rsa-cert-v01@openssh.com": "ssh-rsa",
}

#: Certificate signature algorithm (as negotiated, or named in a publickey
#: request) -> the plain signature algorithm its signatures are made with.
CERT_SIGNATURE_ALGORITHMS: Final[Mapping[str, str]] = {
    "ssh-ed25519-cert-v01@openssh.com": "ssh-ed25519",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com": "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com": "ecdsa-sha2-nistp521",
    "rsa-sha2-512-cert-v01@openssh.com": "rsa-sha2-512",
    "rsa-sha2-256-cert-v01@openssh.com": "rsa-sha2-256",
    "ssh-rsa-cert-v01@openssh.com": "ssh-rsa",  # SHA-1: legacy, only by name
}

#: Certificate host key algorithms in the order they are offered, when they are
#: (see :func:`trissh._auth.host_key_check.host_key_preferences`: only for a
#: host that a ``@cert-authority`` line covers). No legacy (SHA-1) entry.
CERT_HOST_KEY_ALGORITHMS: Final[tuple[str, ...]] = (
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
)
#: Certificate algorithms negotiated only when a caller names them.
LEGACY_CERT_HOST_KEY_ALGORITHMS: Final[frozenset[str]] = frozenset({"ssh-rsa-cert-v01@openssh.com"})

_CERT_BY_PLAIN: Final[Mapping[str, str]] = {plain: cert for cert, plain in CERT_SIGNATURE_ALGORITHMS.items()}


def cert_algorithm(plain_algorithm: str) -> str:
    """The certificate form of a plain signature algorithm.

    ``rsa-sha2-512`` -> ``rsa-sha2-512-cert-v01@openssh.com``.

    Raises:
        KeyError: ``plain_algorithm`` has no certificate form.
    """
    return _CERT_BY_PLAIN[plain_algorithm]


def is_certificate_type(name: str) -> bool:
    """Whether ``name`` is a certificate key type or certificate signature algorithm."""
    return name in CERT_KEY_TYPES or name in CERT_SIGNATURE_ALGORITHMS


def is_certificate(value: object) -> bool:
    """``isinstance(value, Certificate)``, without importing :mod:`trissh._algorithms.certificates`.

    A :class:`~trissh._algorithms.certificates.Certificate` can only exist once that module is loaded; until
    then nothing is one.
    """
    module = sys.modules.get(_CERTIFICATES_MODULE)
    return module is not None and isinstance(value, module.Certificate)
