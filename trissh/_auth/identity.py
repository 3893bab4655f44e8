"""What public key authentication offers: an :class:`Identity`.

Theory of operation
-------------------
Publickey authentication (RFC 4252 §7) needs three things from a key: the
blob to put in the request (a plain public key, or an OpenSSH certificate as in
PROTOCOL.certkeys), the algorithm names it may be offered under, and a way to
sign. Where the private half lives differs: in this process
(:class:`KeyIdentity`, from a file or a key object) or in an ssh-agent
(:class:`trissh._auth.agent.AgentIdentity`). The auth loop sees only this
interface, so a new key source is one class.

Names, as in :mod:`trissh._algorithms.hostkeys`: the request's *algorithm*
(``rsa-sha2-512``, ``rsa-sha2-512-cert-v01@openssh.com``) is what the server
checks the signature against; the signature blob itself always carries the
plain signature algorithm (``rsa-sha2-512``), certificate or not.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._algorithms.cert_names import CERT_SIGNATURE_ALGORITHMS, cert_algorithm
from .._algorithms.hostkeys import PublicKey
from .private_key import PrivateKey, rsa_signature_algorithms

if TYPE_CHECKING:
    from .._algorithms.certificates import Certificate

__all__ = ["Identity", "KeyIdentity", "rsa_signature_algorithms"]


class Identity(abc.ABC):
    """A key that publickey authentication can offer.

    Attributes:
        public_key: the plain public key (a certificate's subject key).
        certificate: the OpenSSH certificate offered with it, or None.
        source: where it came from, for messages: ``"agent"``, ``"file ~/.ssh/id_rsa"``...
    """

    public_key: PublicKey
    certificate: Certificate | None
    source: str

    @property
    def blob(self) -> bytes:
        """What the request carries: the certificate blob, else the public key blob."""
        return self.certificate.blob if self.certificate is not None else self.public_key.blob

    @property
    def fingerprint(self) -> str:
        return self.public_key.fingerprint

    def describe(self) -> str:
        """``"ssh-ed25519-cert SHA256:... (file ~/.ssh/id_ed25519)"``, for logs and errors."""
        kind = self.public_key.key_type + ("-cert" if self.certificate is not None else "")
        return f"{kind} {self.fingerprint} ({self.source})"

    def algorithms(self, server_sig_algs: Sequence[str] | None, *, allow_sha1: bool = False) -> list[str]:
        """The request algorithm names to try, best first."""
        if self.public_key.key_type == "ssh-rsa":
            plain = rsa_signature_algorithms(server_sig_algs, allow_sha1)
        else:
            plain = [self.public_key.key_type]
        if self.certificate is None:
            return plain
        return [cert_algorithm(alg) for alg in plain]

    @abc.abstractmethod
    async def sign(self, data: bytes, algorithm: str) -> bytes:
        """Sign ``data`` for request algorithm ``algorithm``; returns the SSH signature blob.

        Raises:
            trissh.SSHError subclasses (an agent that failed, say): the loop
            logs them and goes on to the next identity.
        """

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


class KeyIdentity(Identity):
    """A private key held in this process, with an optional certificate."""

    def __init__(self, key: PrivateKey, certificate: Certificate | None = None, source: str = "key") -> None:
        if certificate is not None and certificate.key != key.public_key:
            raise ValueError(
                f"certificate for {certificate.key.fingerprint} does not belong to "
                f"key {key.public_key.fingerprint}"
            )
        self.key = key
        self.public_key = key.public_key
        self.certificate = certificate
        self.source = source

    async def sign(self, data: bytes, algorithm: str) -> bytes:
        plain = CERT_SIGNATURE_ALGORITHMS.get(algorithm, algorithm)
        return self.key.sign(data, plain)
