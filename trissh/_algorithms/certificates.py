"""OpenSSH certificates (PROTOCOL.certkeys): names, parsing and checks.

SKELETON: the tables and the Certificate shape are the agreed interface;
parse_certificate and the checks are being written.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from .hostkeys import PublicKey

__all__ = [
    "CERT_KEY_TYPES",
    "CERT_SIGNATURE_ALGORITHMS",
    "CertType",
    "Certificate",
    "cert_algorithm",
    "is_certificate_type",
    "parse_certificate",
]

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

_CERT_BY_PLAIN: Final[Mapping[str, str]] = {plain: cert for cert, plain in CERT_SIGNATURE_ALGORITHMS.items()}


def cert_algorithm(plain_algorithm: str) -> str:
    """The certificate form of a plain signature algorithm.

    ``rsa-sha2-512`` -> ``rsa-sha2-512-cert-v01@openssh.com``.
    """
    return _CERT_BY_PLAIN[plain_algorithm]


def is_certificate_type(name: str) -> bool:
    """Whether ``name`` is a certificate key type or certificate signature algorithm."""
    return name in CERT_KEY_TYPES or name in CERT_SIGNATURE_ALGORITHMS


class CertType(enum.IntEnum):
    """PROTOCOL.certkeys ``type`` field."""

    USER = 1
    HOST = 2


@dataclass(frozen=True, slots=True)
class Certificate:
    """A parsed OpenSSH certificate. Its CA signature is checked by :func:`parse_certificate`.

    Fields:
        blob: the whole certificate as it travels on the wire.
        key_type: the certificate key type, e.g. ``"ssh-ed25519-cert-v01@openssh.com"``.
        key: the certified (subject) public key.
        serial, cert_type, key_id, principals, valid_after, valid_before: as in PROTOCOL.certkeys
            (``valid_before`` 2**64-1 means forever).
        critical_options, extensions: name -> data (raw bytes of the inner string, b"" when empty).
        signature_key: the CA's public key.
    """

    blob: bytes
    key_type: str
    key: PublicKey
    serial: int
    cert_type: CertType
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    critical_options: Mapping[str, bytes]
    extensions: Mapping[str, bytes]
    signature_key: PublicKey

    @property
    def fingerprint(self) -> str:
        """The subject key's fingerprint (as ``ssh-keygen -l`` shows for a certificate)."""
        return self.key.fingerprint


def parse_certificate(blob: bytes) -> Certificate:
    """Decode a certificate blob and verify the CA's signature over it.

    Raises:
        KeyImportError: malformed, an unsupported type, or a bad CA signature; the message says which.
    """
    raise NotImplementedError("certificates: being written")
