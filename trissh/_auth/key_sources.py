"""Which keys publickey authentication offers, from where, in which order.

Theory of operation
-------------------
Keys come from two places: *configured* keys (``client_keys``: key files,
:class:`PrivateKey` objects, ``(key, certificate)`` pairs; by default the
``~/.ssh/id_*`` files that exist) and the ssh-agent. This module turns them into
one list of :class:`Identity` in OpenSSH's order (9.2, ``sshconnect2.c``
``pubkey_prepare``; ``ssh.c`` ``load_public_identity_files``):

1. configured keys that the agent also holds, in the *agent's* order, each
   used through the agent (the agent may hold a key whose file is locked);
2. the agent's other keys, in its order, unless ``identities_only``;
3. the remaining configured keys, in the order given.

Rules this module owns:

* **Expansion of a key file.** A path stands for its key, then, when a
  ``<path>-cert.pub`` holding a user certificate for that key sits beside it,
  the certified key (OpenSSH offers the plain key first, then the certificate).
  A ``(key, certificate)`` pair stands for the certified key only.
* **Matching.** A configured key matches an agent key when the blobs are equal:
  plain with plain, certificate with the same certificate (``sshkey_equal``).
  A configured certificate whose plain key the agent holds is signed by the
  agent (OpenSSH's ``sign_and_send_pubkey`` looks for such a key first).
* **No passphrase before it is needed.** An encrypted file's public key comes
  from ``<path>.pub``, else from the file's clear-text header (the OpenSSH
  format has one). Only :meth:`FileIdentity.sign` decrypts, once
  (:mod:`trissh._auth.file_identity`), asking the passphrase callable then;
  and since the auth loop asks the server (``want signature = false``) before
  signing, a passphrase is asked only for a key the server would take.
  Legacy PEM and PKCS#8 files hide their public key: without a ``.pub`` file
  they must be decrypted here, up front.
* **Loud for explicit keys, quiet for defaults.** A ``client_keys`` path that
  is missing, unreadable, not a key or of an unusable type raises
  :class:`KeyImportError` naming it. A default file with such a problem is
  skipped with a log record. A locked key nobody gave a passphrase for is
  skipped with a log record in both cases, unless the agent holds it.

What it must not know: the SSH protocol (the auth loop offers the list), how
the agent speaks (:mod:`trissh._auth.agent`), key file formats
(:mod:`trissh._auth.key_files`), how a locked file is unlocked
(:mod:`trissh._auth.file_identity`), reading and fitting ``-cert.pub`` files
(:mod:`trissh._auth.user_certificates`).
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeAlias, cast

import trio

from .._algorithms.cert_names import CERT_SIGNATURE_ALGORITHMS, is_certificate
from .._algorithms.hostkeys import PublicKey
from .._errors import AgentError, KeyImportError
from .agent_path import AUTH_SOCK_ENV, default_agent_path
from .file_identity import FileIdentity, KeyPath, PassphraseSource, ask_passphrase
from .identity import Identity, KeyIdentity
from .key_file_reading import read_key_file
from .key_files import PassphraseRequired, inspect_private_key, read_private_key, with_pub_file_comment
from .private_key import PrivateKey
from .public_key_files import read_public_key
from .user_certificates import CertOrigin, certificate_beside, certificate_fits, read_certificate_file

if TYPE_CHECKING:  # the agent client and the certificate parser are imported when first needed
    from .._algorithms.certificates import Certificate
    from .agent import AgentIdentity, SSHAgentClient

__all__ = [
    "DEFAULT_AGENT",
    "DEFAULT_KEYS",
    "DEFAULT_KEY_NAMES",
    "ClientKey",
    "ClientKeys",
    "ClientKeysArg",
    "FileIdentity",
    "KeySources",
    "PassphraseSource",
    "collect_identities",
    "describe_sources",
    "open_key_sources",
]

log = logging.getLogger("trissh.auth")


class Default(enum.Enum):
    """The marker for "not given, use the default" where None means "none"."""

    DEFAULT = "default"


#: ``client_keys`` left at its default: the ``~/.ssh`` files of :data:`DEFAULT_KEY_NAMES` that exist.
DEFAULT_KEYS: Final = Default.DEFAULT
#: ``agent_path`` left at its default: ``$SSH_AUTH_SOCK``.
DEFAULT_AGENT: Final = Default.DEFAULT

#: OpenSSH 9.2's default identity files, in its order (``readconf.c``), less the
#: types trissh cannot use (id_ecdsa_sk, id_ed25519_sk, id_xmss, id_dsa), which
#: are not looked for.
DEFAULT_KEY_NAMES: Final = ("id_rsa", "id_ecdsa", "id_ed25519")

#: A certificate: parsed, as its wire blob, or the path of a ``*-cert.pub`` file.
CertificateSource: TypeAlias = "Certificate | bytes | KeyPath"
#: One ``client_keys`` item.
ClientKey: TypeAlias = KeyPath | PrivateKey | Identity | tuple[PrivateKey | KeyPath, CertificateSource]
#: What ``connect(client_keys=...)`` accepts: one item, a sequence of them, None (no keys) or
#: :data:`DEFAULT_KEYS`. Exported as ``trissh.ClientKeysArg``.
ClientKeysArg: TypeAlias = ClientKey | Sequence[ClientKey] | Default | None
ClientKeys: TypeAlias = ClientKeysArg  # its earlier name

_HOW_TO: Final = (
    "to offer a key, pass client_keys=[path, PrivateKey or (key, certificate)] "
    "(with passphrase= for an encrypted one), or add it to an ssh-agent with ssh-add"
)


# --- the agent signing for a configured certificate ------------------------------------------


class _AgentSignedCertificate(Identity):
    """A configured certificate whose plain key the agent holds: the agent signs for it."""

    def __init__(self, certificate: Certificate, signer: AgentIdentity, source: str) -> None:
        self.public_key = certificate.key
        self.certificate = certificate
        self.source = f"{source}, signed by the agent"
        self._signer = signer

    async def sign(self, data: bytes, algorithm: str) -> bytes:
        # The agent signs with the plain key; the signature is the same for the certificate.
        return await self._signer.sign(data, CERT_SIGNATURE_ALGORITHMS.get(algorithm, algorithm))


# --- the result ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeySources:
    """The identities to offer, and what was looked at to find them.

    Fields:
        identities: in the order to offer them.
        agent: one line about the agent, e.g. ``"agent /tmp/x/agent.sock: 2 keys"``
            or ``"no agent: SSH_AUTH_SOCK is unset"``.
        files: one line per key file or key considered, e.g. ``"/home/me/.ssh/id_rsa: not found"``.
    """

    identities: tuple[Identity, ...]
    agent: str
    files: tuple[str, ...]

    def describe(self) -> str:
        """Where trissh looked for keys and how to give one: for a "no key was accepted" message."""
        lines = ["looked for keys in:", f"  {self.agent}"]
        lines += [f"  {line}" for line in self.files] or ["  no key files (client_keys is empty)"]
        lines.append(_HOW_TO)
        return "\n".join(lines)


def describe_sources(sources: KeySources) -> str:
    """``sources.describe()``: where keys were looked for, and how to pass one."""
    return sources.describe()


# --- collecting ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    """One configured identity before matching with the agent.

    ``identity`` is None for a locked key nobody can unlock (no passphrase
    given): it is kept only to be used through the agent, if the agent has it.
    """

    public_key: PublicKey
    certificate: Certificate | None
    identity: Identity | None
    label: str

    @property
    def blob(self) -> bytes:
        return self.certificate.blob if self.certificate is not None else self.public_key.blob


class _Collector:
    """Turns ``client_keys`` into entries, keeping a note per file for :meth:`KeySources.describe`."""

    def __init__(self, passphrase: PassphraseSource) -> None:
        self.passphrase = passphrase
        self.entries: list[_Entry] = []
        self.notes: list[str] = []

    async def add_defaults(self) -> None:
        ssh_dir = Path.home() / ".ssh"
        for name in DEFAULT_KEY_NAMES:
            path = ssh_dir / name
            if not path.exists():
                self.notes.append(f"file {path}: not found")
                continue
            try:
                await self.add_path(os.fspath(path), None)
            except KeyImportError as exc:
                log.info("skipping default key file %s: %s", path, exc)
                self.notes.append(f"file {path}: skipped: {exc}")

    async def add_item(self, index: int, item: object) -> None:
        if isinstance(item, Identity):  # already made (a custom key store, say): used as it is
            self.entries.append(_Entry(item.public_key, item.certificate, item, f"client_keys[{index}]"))
            self.notes.append(f"client_keys[{index}]: {item.describe()}")
        elif isinstance(item, PrivateKey):
            self.add_key(item, None, f"client_keys[{index}]")
        elif isinstance(item, str | os.PathLike):
            await self.add_path(_expand(item), None)
        elif isinstance(item, tuple) and len(item) == 2:
            key, cert_source = item
            if isinstance(key, PrivateKey):
                certificate = _certificate(cert_source, key.public_key, f"client_keys[{index}]")
                self.add_key(key, certificate, f"client_keys[{index}]")
            elif isinstance(key, str | os.PathLike):
                path = _expand(key)
                certificate = _certificate(cert_source, None, f"the certificate for key file {path}")
                await self.add_path(path, certificate)
            else:
                raise TypeError(f"client_keys[{index}]: a key must be a path or a PrivateKey, not {key!r}")
        else:
            raise TypeError(
                f"client_keys[{index}] must be a path, a PrivateKey or a (key, certificate) pair, "
                f"not {item!r}"
            )

    def add_key(self, key: PrivateKey, certificate: Certificate | None, label: str) -> None:
        identity = KeyIdentity(key, certificate, source=label)
        self.entries.append(_Entry(key.public_key, certificate, identity, label))
        self.notes.append(f"{label}: {_key_label(key.public_key, certificate)}")

    async def add_path(self, path: str, certificate: Certificate | None) -> None:
        """One key file: its key, then its ``-cert.pub`` (or just the certificate given with it)."""
        info = inspect_private_key(read_key_file(path), name=f"key file {path}")
        if certificate is not None:
            origin, certificates = CertOrigin.GIVEN, [certificate]
        else:
            picked = certificate_beside(path)
            origin, certificates = CertOrigin.BESIDE, ([picked] if picked is not None else [])
        # A key file alone stands for its key and its -cert.pub; a (path, certificate) pair
        # for the certified key only.
        include_plain = origin is CertOrigin.BESIDE
        # The file's own clear-text public key is the truth; a .pub file (which ssh.c reads
        # first) is only needed when the format hides it.
        public_key = (info.public_key or _pub_file_key(path)) if info.encrypted else None
        if public_key is not None:
            self._add_locked(path, public_key, certificates, origin)
            return
        if info.encrypted:
            key = await self._decrypt_now(path)
            if key is None:
                return
        else:
            assert info.key is not None  # inspect_private_key imported the unencrypted key already
            key = with_pub_file_comment(info.key, path)
        if include_plain:
            self.add_key(key, None, f"file {path}")
        for cert in certificates:
            if certificate_fits(cert, key.public_key, path, origin):
                self.add_key(key, cert, f"file {path}")

    def _add_locked(
        self, path: str, public_key: PublicKey, certificates: list[Certificate], origin: CertOrigin
    ) -> None:
        """An encrypted key file whose public key is known: decrypted only if it is used."""
        file_identity = FileIdentity(path, public_key, self.passphrase)
        unlockable = self.passphrase is not None
        variants: list[Certificate | None] = [None] if origin is CertOrigin.BESIDE else []
        variants += [cert for cert in certificates if certificate_fits(cert, public_key, path, origin)]
        state = "encrypted" if unlockable else "encrypted, no passphrase given: usable only through the agent"
        for cert in variants:
            identity: Identity | None = None
            if unlockable:
                identity = file_identity if cert is None else file_identity.with_certificate(cert)
            self.entries.append(_Entry(public_key, cert, identity, f"file {path}"))
            state = (
                "encrypted" if unlockable else "encrypted, no passphrase given: usable only through the agent"
            )
            self.notes.append(f"file {path}: {_key_label(public_key, cert)} ({state})")

    async def _decrypt_now(self, path: str) -> PrivateKey | None:
        """A legacy PEM / PKCS#8 encrypted key without a ``.pub``: its public key needs the passphrase."""
        try:
            secret = await ask_passphrase(self.passphrase, path)
        except PassphraseRequired as exc:
            log.info("skipping %s: %s (and no %s.pub tells its public key)", path, exc, path)
            self.notes.append(f"file {path}: encrypted, no passphrase given, and no {path}.pub")
            return None
        return await trio.to_thread.run_sync(read_private_key, path, secret)


def _expand(path: KeyPath) -> str:
    return os.path.expanduser(os.fspath(path))


def _pub_file_key(path: str) -> PublicKey | None:
    """The key of ``<path>.pub`` (ssh.c tries it before the private file's own header)."""
    pub_path = path + ".pub"
    if not os.path.exists(pub_path):
        return None
    try:
        return read_public_key(pub_path)
    except KeyImportError as exc:
        log.debug("ignoring %s: %s", pub_path, exc)
        return None


def _certificate(source: object, key: PublicKey | None, what: str) -> Certificate:
    """A certificate given in a pair, parsed; checked against ``key`` when it is known."""
    if is_certificate(source):
        certificate = cast("Certificate", source)
    elif isinstance(source, bytes):
        from .._algorithms.certificates import parse_certificate

        try:
            certificate = parse_certificate(source)
        except KeyImportError as exc:
            raise KeyImportError(f"{what}: {exc}") from None
    elif isinstance(source, str | os.PathLike):
        certificate = read_certificate_file(_expand(source))
    else:
        raise TypeError(f"{what}: a certificate must be a Certificate, its blob or a path, not {source!r}")
    if key is not None:
        certificate_fits(certificate, key, what, CertOrigin.GIVEN)
    return certificate


def _key_label(key: PublicKey, certificate: Certificate | None) -> str:
    if certificate is None:
        return f"{key.key_type} {key.fingerprint}"
    return f"{key.key_type} {key.fingerprint} with certificate {certificate.key_id!r}"


async def collect_identities(
    *,
    agent: SSHAgentClient | None,
    client_keys: ClientKeysArg = DEFAULT_KEYS,
    passphrase: PassphraseSource = None,
    identities_only: bool = False,
) -> KeySources:
    """The identities publickey authentication should offer, in OpenSSH's order.

    Args:
        agent: a connected agent (its keys sign only while it stays open), or None.
        client_keys: :data:`DEFAULT_KEYS` (the ``~/.ssh`` files of
            :data:`DEFAULT_KEY_NAMES` that exist), None or ``[]`` (no key files),
            or one item or a sequence of items, each a path, a :class:`PrivateKey`
            or a ``(key, certificate)`` pair (key: a PrivateKey or a path;
            certificate: a :class:`Certificate`, its blob, or a ``-cert.pub`` path),
            or an :class:`Identity` made elsewhere. A lone pair is recognised as
            one when its certificate is a Certificate or blob; otherwise put
            pairs in a list (a tuple of two paths is two key files).
        passphrase: for encrypted key files: a str or bytes, or an async callable
            ``(path) -> passphrase`` called only when a key must be decrypted
            (at most once per file). None: locked keys are used only through the agent.
        identities_only: offer only configured keys (through the agent when it
            holds them), not the agent's other keys (OpenSSH ``IdentitiesOnly``).

    Returns:
        The identities and a description of the sources (see :class:`KeySources`).

    Raises:
        KeyImportError: an explicit key file is missing, unreadable, not a key, of
            an unusable type, or has a certificate that does not fit it; a wrong
            passphrase for an encrypted PEM/PKCS#8 file that has no ``.pub``.
        TypeError: a ``client_keys`` item of another type.
    """
    collector = _Collector(passphrase)
    if isinstance(client_keys, Default):
        await collector.add_defaults()
    elif client_keys is not None:
        items: Sequence[object]
        if isinstance(client_keys, str | os.PathLike | PrivateKey | Identity) or _is_pair(client_keys):
            items = [client_keys]
        else:
            items = list(client_keys)
        for index, item in enumerate(items):
            await collector.add_item(index, item)

    agent_keys: list[AgentIdentity] = []
    if agent is None:
        agent_note = "no agent"
    else:
        try:
            agent_keys = await agent.list_keys()
            agent_note = f"agent {agent.path}: {_count(len(agent_keys), 'key')}"
        except AgentError as exc:
            log.info("not using the ssh-agent: %s", exc)
            agent_note = f"agent {agent.path}: not usable: {exc}"
    identities = _order(collector.entries, agent_keys, identities_only=identities_only)
    return KeySources(tuple(identities), agent_note, tuple(collector.notes))


def _is_pair(value: object) -> bool:
    """A lone ``(key, certificate)`` pair rather than a tuple of two keys."""
    return (
        isinstance(value, tuple)
        and len(value) == 2
        and (isinstance(value[1], bytes) or is_certificate(value[1]))
        and isinstance(value[0], PrivateKey | str | os.PathLike)
    )


def _order(
    entries: list[_Entry], agent_keys: list[AgentIdentity], *, identities_only: bool
) -> list[Identity]:
    """pubkey_prepare: configured keys the agent holds (agent order), other agent keys, the rest."""
    remaining = list(entries)
    matched: list[Identity] = []
    others: list[Identity] = []
    for agent_key in agent_keys:
        entry = next((e for e in remaining if e.blob == agent_key.blob), None)
        if entry is not None:
            remaining.remove(entry)  # only the first: a key listed twice stays once in the rest
            matched.append(agent_key)
        elif not identities_only:
            others.append(agent_key)
    by_plain_key = {a.public_key: a for a in agent_keys if a.certificate is None}
    rest: list[Identity] = []
    for entry in remaining:
        signer = by_plain_key.get(entry.public_key)
        if entry.certificate is not None and signer is not None:
            rest.append(_AgentSignedCertificate(entry.certificate, signer, entry.label))
        elif entry.identity is not None:
            rest.append(entry.identity)
        else:
            log.info("skipping %s: it is encrypted and no passphrase was given", entry.label)
    return matched + others + rest


def _count(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}s"


@asynccontextmanager
async def open_key_sources(
    *,
    agent_path: KeyPath | Default | None = DEFAULT_AGENT,
    client_keys: ClientKeysArg = DEFAULT_KEYS,
    passphrase: PassphraseSource = None,
    identities_only: bool = False,
) -> AsyncIterator[KeySources]:
    """Connect to the agent, collect the identities, and keep the agent open while they are used.

    A context manager because agent identities sign over the agent connection:
    it must outlive authentication, and be closed after it. An agent that
    cannot be reached is not an error (a log record and a note in
    :meth:`KeySources.describe`): files still work.

    Args:
        agent_path: the agent's socket; :data:`DEFAULT_AGENT`: ``$SSH_AUTH_SOCK``;
            None: no agent.
        client_keys, passphrase, identities_only: as for :func:`collect_identities`.

    Raises:
        KeyImportError, TypeError: as :func:`collect_identities`.
    """
    if isinstance(agent_path, Default):
        path = default_agent_path()
        agent_note = f"no agent: {AUTH_SOCK_ENV} is unset"
    else:
        path = os.fspath(agent_path) if agent_path is not None else None
        agent_note = "no agent: agent_path=None"
    client: SSHAgentClient | None = None
    if path is not None:
        from .agent import SSHAgentClient  # imported only when there is an agent to use

        client = SSHAgentClient(path)
        try:
            await client.__aenter__()
        except AgentError as exc:
            log.info("not using the ssh-agent: %s", exc)
            agent_note = f"agent {path}: not usable: {exc}"
            await client.aclose()
            client = None
    try:
        sources = await collect_identities(
            agent=client, client_keys=client_keys, passphrase=passphrase, identities_only=identities_only
        )
        yield sources if client is not None else replace(sources, agent=agent_note)
    finally:
        if client is not None:
            await client.aclose()
