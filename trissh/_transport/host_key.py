"""The server's host key in a key exchange: decoding it, checking its signature, the rekey rule.

Theory of operation
-------------------
The key exchange reply carries the server's host key blob (K_S) and its
signature over the exchange hash H (RFC 4253 §8). This module turns those into
a checked :class:`PublicKey` (and :class:`Certificate`, for a certificate host
key algorithm, PROTOCOL.certkeys) with three pure functions:

* :func:`decode_host_key`: the blob, for the negotiated algorithm, as a key
  and certificate, with the plain algorithm the signature is made with;
* :func:`verified_host_key`: that, and the signature over H checked;
* :func:`check_rekey_host_key`: a rekey must show the very host key, and
  certificate, of the first exchange (OpenSSH ``kex.c``, ``initial_hostkey``).

Every failure raises :class:`HostKeyNotVerifiable`.

What it must not know: whether the key or its CA is trusted (the driver's
host key verifier decides, after :class:`~trissh._transport.events.HostKeyReceived`),
and the transport's state: :mod:`trissh._transport.state` says when each
check applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._algorithms.cert_names import CERT_KEY_TYPES, CERT_SIGNATURE_ALGORITHMS
from .._algorithms.hostkeys import HOST_KEY_ALGORITHMS, PublicKey, decode_public_key
from .._algorithms.kex import KexResult
from .._errors import HostKeyNotVerifiable, KeyImportError

if TYPE_CHECKING:  # the parser is imported when a server first presents a certificate
    from .._algorithms.certificates import Certificate

__all__ = ["check_rekey_host_key", "decode_host_key", "verified_host_key"]


def decode_host_key(blob: bytes, algorithm: str) -> tuple[PublicKey, Certificate | None, str]:
    """The server's host key blob for the negotiated ``algorithm``: (key, certificate, plain algorithm).

    For a certificate algorithm (PROTOCOL.certkeys) the blob is a certificate,
    its CA signature is checked here, and the exchange hash is signed by the
    certified key with the plain algorithm (``rsa-sha2-512`` for
    ``rsa-sha2-512-cert-v01@openssh.com``). Whether the CA is trusted is the
    host key verifier's question, not the transport's.

    Raises:
        HostKeyNotVerifiable: the blob is not a valid key (or certificate) of the negotiated type.
    """
    plain = CERT_SIGNATURE_ALGORITHMS.get(algorithm)
    try:
        if plain is None:
            return decode_public_key(blob), None, algorithm
        from .._algorithms.certificates import parse_certificate

        certificate = parse_certificate(blob)
    except KeyImportError as exc:
        raise HostKeyNotVerifiable(f"server host key cannot be used: {exc}") from exc
    if CERT_KEY_TYPES[certificate.key_type] != HOST_KEY_ALGORITHMS[plain].key_type:
        raise HostKeyNotVerifiable(
            f"server sent a {certificate.key_type} certificate for host key algorithm {algorithm}"
        )
    return certificate.key, certificate, plain


def verified_host_key(result: KexResult, algorithm: str) -> tuple[PublicKey, Certificate | None]:
    """The host key (and certificate) of a finished exchange, its signature over H checked.

    Args:
        result: the key exchange method's result (K_S, the signature, H).
        algorithm: the negotiated host key algorithm.

    Raises:
        HostKeyNotVerifiable: the blob is not a key of that algorithm, or the
            signature does not verify.
    """
    key, certificate, plain = decode_host_key(result.host_key_blob, algorithm)
    if not key.verify(result.signature, result.exchange_hash, plain):
        raise HostKeyNotVerifiable(
            f"server's {algorithm} signature over the key exchange does not verify "
            f"with host key {key.fingerprint}"
        )
    return key, certificate


def check_rekey_host_key(
    key: PublicKey,
    certificate: Certificate | None,
    *,
    first_key: PublicKey,
    first_certificate: Certificate | None,
) -> None:
    """Refuse a rekey's host key unless it is the first exchange's.

    As OpenSSH (kex.c, initial_hostkey): a rekey must show the very same key,
    and the very same certificate if the first exchange had one.

    Raises:
        HostKeyNotVerifiable: the key or the certificate differs.
    """
    was_blob = first_certificate.blob if first_certificate else None
    if key != first_key or (certificate.blob if certificate else None) != was_blob:
        raise HostKeyNotVerifiable(
            f"server presented a different host key during a rekey: {key.fingerprint}"
            f"{' (certificate)' if certificate else ''}, was {first_key.fingerprint}"
            f"{' (certificate)' if was_blob else ''}"
        )
