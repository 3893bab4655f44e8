"""Identities backed by key files: decrypted only when a signature is needed.

Theory of operation
-------------------
An encrypted key file whose public key is known (from ``<path>.pub`` or the
file's clear-text header) becomes a :class:`FileIdentity`: it can be offered
to the server without a passphrase, and only :meth:`FileIdentity.sign`
decrypts it, once, asking the :data:`PassphraseSource` then. bcrypt-kdf is
slow by design, so decryption runs in a worker thread. A file and its
``-cert.pub`` twin share one decryption, so a passphrase callback is asked at
most once per file, and a failure is remembered rather than asked again.

What it must not know: which files to look at or in which order
(:mod:`trissh._auth.key_sources`), key file formats
(:mod:`trissh._auth.key_files`), the SSH protocol.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeAlias

import trio

from .._algorithms.cert_names import CERT_SIGNATURE_ALGORITHMS
from .._algorithms.hostkeys import PublicKey
from .._errors import KeyImportError
from .identity import Identity
from .key_files import PassphraseRequired, read_private_key
from .private_key import PrivateKey

if TYPE_CHECKING:
    from .._algorithms.certificates import Certificate

__all__ = ["FileIdentity", "KeyPath", "PassphraseSource", "ask_passphrase"]

#: A key file's path, as the caller gives it.
KeyPath: TypeAlias = str | os.PathLike[str]
#: A passphrase for encrypted key files, or ``async (path) -> passphrase`` (None or "" declines).
PassphraseSource: TypeAlias = str | bytes | Callable[[str], Awaitable[str | bytes | None]] | None


class _LockedKeyFile:
    """An encrypted key file, decrypted at most once, when a signature is first needed."""

    def __init__(self, path: str, public_key: PublicKey, passphrase: PassphraseSource) -> None:
        self.path = path
        self.public_key = public_key
        self._passphrase = passphrase
        self._lock = trio.Lock()
        self._key: PrivateKey | None = None
        self._failure: KeyImportError | None = None

    async def private_key(self) -> PrivateKey:
        async with self._lock:  # two identities (key, key-cert) share one file: ask once
            if self._key is not None:
                return self._key
            if self._failure is not None:
                # Remembered, so a callback is never asked twice for one file.
                raise type(self._failure)(str(self._failure))
            try:
                self._key = await self._decrypt()
            except KeyImportError as exc:
                self._failure = exc
                raise
            return self._key

    async def _decrypt(self) -> PrivateKey:
        secret = await ask_passphrase(self._passphrase, self.path)
        # bcrypt-kdf is deliberately slow: keep it off the event loop.
        key = await trio.to_thread.run_sync(read_private_key, self.path, secret)
        if key.public_key != self.public_key:
            raise KeyImportError(
                f"key file {self.path} holds key {key.fingerprint}, but {self.path}.pub "
                f"names {self.public_key.fingerprint}"
            )
        return key


async def ask_passphrase(source: PassphraseSource, path: str) -> str | bytes:
    """The passphrase for key file ``path``.

    Raises:
        PassphraseRequired: none was given, or the callback declined (returned None or "").
    """
    if source is None:
        raise PassphraseRequired(f"key file {path} is encrypted: a passphrase is needed")
    secret = source if isinstance(source, str | bytes) else await source(path)
    if not secret:
        raise PassphraseRequired(f"key file {path} is encrypted and no passphrase was given for it")
    return secret


class FileIdentity(Identity):
    """An encrypted key file whose public key is known; decrypted on the first :meth:`sign`.

    Attributes:
        path: the private key file.
        public_key, certificate, source: as for every :class:`Identity`
            (``source`` is ``"file <path>"``).
    """

    def __init__(
        self,
        path: KeyPath,
        public_key: PublicKey,
        passphrase: PassphraseSource,
        certificate: Certificate | None = None,
    ) -> None:
        self._file = _LockedKeyFile(os.fspath(path), public_key, passphrase)
        self._init(certificate)

    def _init(self, certificate: Certificate | None) -> None:
        if certificate is not None and certificate.key != self._file.public_key:
            raise ValueError(f"certificate for {certificate.key.fingerprint} does not belong to {self.path}")
        self.public_key = self._file.public_key
        self.certificate = certificate
        self.source = f"file {self._file.path}"

    @property
    def path(self) -> str:
        return self._file.path

    def with_certificate(self, certificate: Certificate) -> FileIdentity:
        """The same key file with a certificate; both decrypt (and ask) only once between them."""
        twin = copy.copy(self)  # shares self._file, and so its one decryption
        twin._init(certificate)
        return twin

    async def sign(self, data: bytes, algorithm: str) -> bytes:
        """Decrypt the file (the first time only), then sign.

        Raises:
            PassphraseRequired: no passphrase was given, or the callback declined.
            KeyImportError: a wrong passphrase, or the file changed or cannot be read.
        """
        key = await self._file.private_key()
        return key.sign(data, CERT_SIGNATURE_ALGORITHMS.get(algorithm, algorithm))
