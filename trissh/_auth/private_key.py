"""A private key that signs SSH authentication requests: :class:`PrivateKey`.

Theory of operation
-------------------
`cryptography` holds the key and does the arithmetic; this module wraps it in
the SSH view of a key: its public key blob and fingerprint, which signature
algorithms it may sign with (RFC 8332 for RSA, filtered by the server's
``server-sig-algs``, RFC 8308 §3.1), and signing in the SSH wire formats
(RFC 4253 §6.6, RFC 5656 §3.1.2, RFC 8332, RFC 8709).

Verification and the table of signature algorithms live in
:mod:`trissh._algorithms.hostkeys`; this module must agree with that table.
What it must not know: files and their formats (:mod:`trissh._auth.key_files`
reads private key files and builds a :class:`PrivateKey` from them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeAlias, final

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from .._algorithms.hostkeys import HOST_KEY_ALGORITHMS, PublicKey, public_key_from_crypto
from .._errors import KeyImportError
from .._public import public
from .._wire import mpint, string

__all__ = ["CryptoPrivateKey", "PrivateKey", "rsa_signature_algorithms"]

#: The `cryptography` private key classes trissh can sign with.
CryptoPrivateKey: TypeAlias = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_RSA_SHA2: Final = ("rsa-sha2-512", "rsa-sha2-256")


def rsa_signature_algorithms(server_sig_algs: Sequence[str] | None, allow_sha1: bool) -> list[str]:
    """RSA signature algorithms to try, best first (RFC 8332, RFC 8308 §3.1).

    The server's ``server-sig-algs`` filters rsa-sha2-512/256; a list naming
    neither is treated as advisory (both are still tried, as OpenSSH does).
    ``ssh-rsa`` (SHA-1) comes last, and only when asked for.
    """
    if server_sig_algs is None:
        algorithms = list(_RSA_SHA2)
    else:
        algorithms = [alg for alg in _RSA_SHA2 if alg in server_sig_algs] or list(_RSA_SHA2)
    if allow_sha1:
        algorithms.append("ssh-rsa")
    return algorithms


@public
@final
class PrivateKey:
    """A private key that can sign SSH authentication requests.

    Wraps a `cryptography` Ed25519, ECDSA (P-256/384/521) or RSA (>= 1024 bits)
    private key. Build one with :func:`load_private_key`,
    :func:`import_private_key` or :meth:`from_crypto`.

    Attributes:
        public_key: the matching :class:`PublicKey`.
        key_type: the public key blob type, e.g. ``"ssh-ed25519"``.
        comment: the key's comment ("" when the file had none or it was encrypted).
        crypto_key: the wrapped `cryptography` private key.
    """

    __slots__ = ("_comment", "_key", "_public_key")

    def __init__(self, key: CryptoPrivateKey, comment: str = "") -> None:
        if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise KeyImportError(f"unsupported key type {crypto_key_label(key)}")
        self._key = key
        # Raises KeyImportError for an unsupported curve or a too-small RSA key.
        self._public_key = public_key_from_crypto(key.public_key())
        self._comment = comment

    @classmethod
    def from_crypto(cls, key: CryptoPrivateKey, comment: str = "") -> PrivateKey:
        """Wrap a `cryptography` private key object.

        Raises:
            KeyImportError: for a key type, curve or size that SSH (or trissh) does not support.
        """
        return cls(key, comment)

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    @property
    def key_type(self) -> str:
        return self._public_key.key_type

    @property
    def comment(self) -> str:
        return self._comment

    @property
    def fingerprint(self) -> str:
        """The public key's ``SHA256:`` fingerprint, as ``ssh-keygen -l -E sha256`` prints it."""
        return self._public_key.fingerprint

    @property
    def crypto_key(self) -> CryptoPrivateKey:
        return self._key

    def signature_algorithms(
        self, server_sig_algs: Sequence[str] | None = None, *, allow_sha1: bool = False
    ) -> list[str]:
        """The signature algorithms to try with this key, best first.

        Args:
            server_sig_algs: the server's ``server-sig-algs`` extension (RFC 8308
                §3.1), or None if it sent none. Only RSA keys have a choice to filter.
            allow_sha1: also offer ``ssh-rsa`` (RSA with SHA-1) for RSA keys, last.

        Returns:
            Ed25519 and ECDSA keys: their one algorithm. RSA keys: ``rsa-sha2-512``
            and ``rsa-sha2-256`` (RFC 8332) in that order, keeping those the server
            lists; if it lists neither the list is advisory only, so both are
            still offered.
        """
        if self.key_type != "ssh-rsa":
            return [self.key_type]
        return rsa_signature_algorithms(server_sig_algs, allow_sha1)

    def sign(self, data: bytes, algorithm: str) -> bytes:
        """Sign ``data``; returns the SSH signature blob ``string algorithm || string signature``.

        Raises:
            ValueError: if ``algorithm`` is unknown or does not fit this key's type.
        """
        row = HOST_KEY_ALGORITHMS.get(algorithm)
        if row is None or row.key_type != self.key_type:
            raise ValueError(f"signature algorithm {algorithm!r} cannot be used with a {self.key_type} key")
        key = self._key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            signature = key.sign(data)
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            assert row.hash is not None
            r, s = decode_dss_signature(key.sign(data, ec.ECDSA(row.hash())))
            # RFC 5656 §3.1.2: SSH carries (r, s) as two mpints, not DER.
            signature = mpint(r) + mpint(s)
        else:
            assert row.hash is not None
            signature = key.sign(data, padding.PKCS1v15(), row.hash())
        return string(algorithm) + string(signature)

    def __repr__(self) -> str:
        # Never show key material; the fingerprint identifies the key.
        comment = f" {self._comment!r}" if self._comment else ""
        return f"<PrivateKey {self.key_type} {self._public_key.fingerprint}{comment}>"


def crypto_key_label(key: object) -> str:
    """How an error names a `cryptography` key object of a type trissh cannot sign with."""
    if isinstance(key, dsa.DSAPrivateKey):
        return "dsa"
    return type(key).__name__
