"""Which user certificate goes with a configured key: ``-cert.pub`` files and the fit check.

Theory of operation
-------------------
A key file ``<path>`` may have its certificate beside it, in
``<path>-cert.pub``, as OpenSSH's ``ssh-keygen -s`` writes it; or the caller
gives one with the key. Either way the certificate must be a *user*
certificate of that very key. Where it came from (:class:`CertOrigin`) decides
what a misfit does: a certificate the caller gave is the caller's error and
raises; one found beside the file is logged and ignored, as OpenSSH does.

What it must not know: the order keys are offered in or the agent
(:mod:`trissh._auth.key_sources`), certificate encoding
(:mod:`trissh._algorithms.certificates`).
"""

from __future__ import annotations

import enum
import logging
import os
from typing import TYPE_CHECKING, Final

from .._algorithms.hostkeys import PublicKey
from .._errors import KeyImportError
from .key_file_reading import read_key_file

if TYPE_CHECKING:
    from .._algorithms.certificates import Certificate

__all__ = ["CertOrigin", "certificate_beside", "certificate_fits", "read_certificate_file"]

log = logging.getLogger("trissh.auth")

#: What OpenSSH appends to a key file's path to find its certificate.
CERT_SUFFIX: Final = "-cert.pub"


def certificate_beside(path: str) -> Certificate | None:
    """``<path>-cert.pub``, when it exists and holds a certificate (else a log line and None)."""
    cert_path = path + CERT_SUFFIX
    if not os.path.exists(cert_path):
        return None
    try:
        return read_certificate_file(cert_path)
    except KeyImportError as exc:
        log.warning("ignoring %s: %s", cert_path, exc)
        return None


def read_certificate_file(path: str) -> Certificate:
    """The certificate in an OpenSSH ``*-cert.pub`` file (its first line that is not blank or ``#``)."""
    data = read_key_file(path, "certificate file")
    for line in data.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(b"#"):
            try:
                from .._algorithms.certificates import parse_openssh_certificate_line

                return parse_openssh_certificate_line(stripped)
            except KeyImportError as exc:
                raise KeyImportError(f"certificate file {path}: {exc}") from None
    raise KeyImportError(f"certificate file {path}: no certificate found")


class CertOrigin(enum.Enum):
    """Where a key file's certificate came from, which decides what a misfit does."""

    GIVEN = "given with the key: a misfit is the caller's error"
    BESIDE = "found as <path>-cert.pub: a misfit is logged and ignored"


def certificate_fits(certificate: Certificate, key: PublicKey, where: str, origin: CertOrigin) -> bool:
    """Whether a certificate is a user certificate of ``key``; a misfit given with the key raises."""
    from .._algorithms.certificates import CertType  # a certificate exists, so its module is loaded

    problem = ""
    if certificate.key != key:
        problem = f"certifies {certificate.key.fingerprint}, not this key ({key.fingerprint})"
    elif certificate.cert_type is not CertType.USER:
        problem = "is a host certificate, not a user certificate"
    if not problem:
        return True
    message = f"{where}: certificate {certificate.key_id!r} {problem}"
    if origin is CertOrigin.GIVEN:
        raise KeyImportError(message)
    log.warning("ignoring %s", message)
    return False
