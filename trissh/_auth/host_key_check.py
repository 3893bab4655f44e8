"""Is this the server we meant? The host key check run during the first key exchange.

Theory of operation
-------------------
:func:`load_known_hosts` turns the caller's ``known_hosts`` argument into a
:class:`KnownHosts` (or None: checking disabled). :func:`host_key_preferences`
orders the host key algorithms offered, as OpenSSH's ``order_hostkeyalgs``
does. :func:`make_host_key_verifier` builds the transport's
``host_key_verifier``, which the driver calls with the server's key, and its
certificate when it presented one. The order of the verifier's questions is
OpenSSH's (sshconnect.c ``check_host_key``):

1. A certificate is judged first (:meth:`KnownHosts.check_certificate`).
   REVOKED (its CA or its key listed ``@revoked``) is final. A trusted CA whose
   certificate passes every check is accepted. A trusted CA whose certificate
   fails a check (wrong type or principal, expired, critical options) is
   refused, naming the check and the ``@cert-authority`` line; only the
   certified key being itself listed as a plain host key still lets it in
   (OpenSSH retries with the plain key too), and ``accept-new`` or a callable
   policy never rescue it. No CA line for the host: judge the certified key as
   a plain key (step 2), as OpenSSH does ("No matching CA found. Retry with
   plain key").
2. A plain key: TRUSTED is accepted, REVOKED and CHANGED refused, UNKNOWN goes
   to the policy: ``"strict"`` refuses, ``"accept-new"`` appends one hashed
   line and accepts, a callable decides.

Certificate algorithms are offered only for a host that a ``@cert-authority``
line covers, and then first. OpenSSH's default list puts them first for every
host; trissh does not, because without a trusted CA a certificate can only be
judged by its plain key anyway, so offering it gains nothing, while it adds a
parse that can fail (a CA that signed with SHA-1 ``ssh-rsa``, refused by
:func:`~trissh._algorithms.certificates.parse_certificate`) for a host that
its plain key would have let in. Hosts known by plain key are unaffected.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Literal, TypeAlias

from .._algorithms.cert_names import CERT_SIGNATURE_ALGORITHMS, cert_algorithm
from .._algorithms.hostkeys import HOST_KEY_ALGORITHMS, PublicKey
from .._errors import HostKeyNotVerifiable
from .known_hosts import (
    CertificateStatus,
    CertificateVerdict,
    HostKeyStatus,
    KnownHostEntry,
    KnownHosts,
    default_known_hosts_paths,
)

__all__ = [
    "HostKeyPolicy",
    "KnownHostsArg",
    "host_key_preferences",
    "load_known_hosts",
    "make_host_key_verifier",
]

if TYPE_CHECKING:
    from .._algorithms.certificates import Certificate
    from .._driver import HostKeyVerifier
    from .key_sources import Default

log = logging.getLogger("trissh.host_key")

#: ``"strict"``, ``"accept-new"``, or ``async def policy(host, port, key) -> bool`` for an unknown key.
HostKeyPolicy = Literal["strict", "accept-new"] | Callable[[str, int, PublicKey], Awaitable[bool]]

#: What ``connect(known_hosts=...)`` takes: a :class:`KnownHosts`, a path, paths, None (no host key
#: checking: explicit and insecure) or the default marker. Exported as ``trissh.KnownHostsArg``.
KnownHostsArg: TypeAlias = (
    "KnownHosts | str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Default | None"
)

_POLICIES = ("strict", "accept-new")


def load_known_hosts(
    known_hosts: KnownHostsArg, policy: HostKeyPolicy, *, default: bool = False
) -> KnownHosts | None:
    """The :class:`KnownHosts` for ``connect(known_hosts=..., host_key_policy=...)``.

    Args:
        known_hosts: None (checking disabled: returns None), a :class:`KnownHosts`
            (used as is), a path, or paths.
        policy: the host key policy (decides whether explicit files must exist).
        default: ``known_hosts`` was not given: read :func:`default_known_hosts_paths`,
            any of which may be missing.

    Explicitly named files must exist, except with ``"accept-new"``: then, as
    with OpenSSH's ``StrictHostKeyChecking accept-new``, a missing file is
    created by the first key it learns (it goes to the first path).

    Raises:
        FileNotFoundError: an explicitly named file does not exist (and the policy
            is not ``"accept-new"``); the error names it.
        OSError: a file exists but cannot be read.
        TypeError, ValueError: ``known_hosts`` or ``policy`` is not one of the above.
    """
    if not callable(policy) and policy not in _POLICIES:
        raise ValueError(
            f"host_key_policy must be 'strict', 'accept-new' or an async callable, not {policy!r}"
        )
    if default:
        return KnownHosts.load(default_known_hosts_paths())
    if known_hosts is None or isinstance(known_hosts, KnownHosts):
        return known_hosts
    paths: Sequence[str | os.PathLike[str]]
    if isinstance(known_hosts, str | os.PathLike):
        paths = [known_hosts]
    elif isinstance(known_hosts, Iterable) and not isinstance(known_hosts, bytes):
        paths = list(known_hosts)
        if not all(isinstance(p, str | os.PathLike) for p in paths):
            raise TypeError(f"known_hosts paths must be str or os.PathLike, got {paths!r}")
    else:
        raise TypeError(f"known_hosts must be None, a KnownHosts, a path or paths, not {known_hosts!r}")
    if not paths:
        raise ValueError("known_hosts is an empty list of files (pass None to disable host key checking)")
    return KnownHosts.load(paths, required=policy != "accept-new")


def host_key_preferences(
    names: list[str], known: KnownHosts | None, host: str, port: int, explicit: bool
) -> list[str]:
    """Order the host key algorithms to offer, as OpenSSH's order_hostkeyalgs does.

    An ``explicit`` list (the caller named it) is offered verbatim, as OpenSSH
    does for an explicit HostKeyAlgorithms. Otherwise: when a
    ``@cert-authority`` line covers the host, the certificate forms of the
    (non-legacy) algorithms come first; then the algorithms for key types
    already known for the host; then the rest, each group in list order.
    Otherwise a server with both an ed25519 and an RSA key, known to us by its
    RSA key only, would present ed25519 and be refused as unknown.
    """
    if known is None or explicit:
        return names
    has_ca = known.has_cert_authority(host, port)
    if has_ca:
        certs = [
            cert_algorithm(n) for n in names if n in HOST_KEY_ALGORITHMS and not HOST_KEY_ALGORITHMS[n].legacy
        ]
        names = list(dict.fromkeys([*certs, *names]))
    types = known.known_key_types(host, port)

    def rank(name: str) -> int:
        if name in CERT_SIGNATURE_ALGORITHMS:
            return 0 if has_ca else 2
        return 1 if HOST_KEY_ALGORITHMS[name].key_type in types else 2

    return sorted(names, key=rank)  # sorted() is stable: list order within each group


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if port != 22 else host


def make_host_key_verifier(
    known: KnownHosts | None,
    policy: HostKeyPolicy,
    known_hosts_arg: object,
    host: str,
    port: int,
    *,
    clock: Callable[[], float] = time.time,
) -> HostKeyVerifier:
    """The ``host_key_verifier`` for the transport: ``await verify(key, certificate=None)``.

    Args:
        known: the known hosts, or None to accept any key (with a warning).
        policy: what to do with an unknown plain key (see the module docstring).
        known_hosts_arg: unused; kept for callers of the earlier signature.
        host, port: the server as the caller named it (the certificate principal is ``host``).
        clock: seconds since the epoch, for certificate validity (tests pass a fixed one).

    Returns:
        An async callable returning True to accept; it raises
        :class:`HostKeyNotVerifiable` saying why otherwise.
    """
    del known_hosts_arg  # where accept-new writes is known.paths[0] (see KnownHosts.paths)
    where = _where(host, port)

    async def verify(key: PublicKey, certificate: Certificate | None = None, /) -> bool:
        if known is None:
            what = "certificate" if certificate else "key"
            log.warning(
                "host key checking is disabled: accepting %s %s %s for %s",
                key.key_type,
                what,
                key.fingerprint,
                where,
            )
            return True
        cert_failure = ""
        if certificate is not None:
            verdict = known.check_certificate(host, port, certificate, now=int(clock()))
            if verdict.status is CertificateStatus.TRUSTED:
                assert verdict.entry is not None
                log.info(
                    "%s: host %s trusted by @cert-authority at %s",
                    where,
                    certificate.describe(),
                    verdict.entry.where,
                )
                return True
            if verdict.status is CertificateStatus.REVOKED:
                raise HostKeyNotVerifiable(_revoked_message(where, certificate, verdict))
            if verdict.status is CertificateStatus.INVALID:
                assert verdict.problem is not None and verdict.entry is not None
                cert_failure = (
                    f"host certificate for {where} failed the {verdict.problem.check.value} check: "
                    f"{verdict.problem.message} "
                    f"(its CA is trusted by @cert-authority at {verdict.entry.where})"
                )
                log.debug("%s; trying the certified key as a plain host key", cert_failure)
            else:
                log.debug(
                    "%s: no @cert-authority line trusts CA %s; retrying with the plain key",
                    where,
                    certificate.signature_key.fingerprint,
                )
        return await _verify_plain(known, policy, host, port, key, certificate, cert_failure)

    return verify


def _revoked_message(where: str, certificate: Certificate, verdict: CertificateVerdict) -> str:
    assert verdict.entry is not None
    which = "its CA key" if verdict.entry.key == certificate.signature_key else "its certified key"
    return (
        f"host certificate for {where} is revoked: {which} {verdict.entry.key.key_type} "
        f"{verdict.entry.key.fingerprint} is listed @revoked at {verdict.entry.where} "
        f"({certificate.describe()})"
    )


async def _verify_plain(
    known: KnownHosts,
    policy: HostKeyPolicy,
    host: str,
    port: int,
    key: PublicKey,
    certificate: Certificate | None,
    cert_failure: str,
) -> bool:
    where = _where(host, port)
    status, entry = known.explain(host, port, key)
    if status is HostKeyStatus.TRUSTED:
        what = "certified key" if certificate is not None else "host key"
        log.info("%s: %s %s %s accepted: known at %s", where, what, key.key_type, key.fingerprint, _at(entry))
        return True
    if status is HostKeyStatus.REVOKED:
        raise HostKeyNotVerifiable(
            f"host key for {where} is revoked: {key.key_type} {key.fingerprint} "
            f"is listed @revoked at {_at(entry)}"
        )
    if status is HostKeyStatus.CHANGED:
        raise HostKeyNotVerifiable(
            f"HOST KEY FOR {where} HAS CHANGED: the server presented {key.key_type} {key.fingerprint}, "
            f"which differs from the key in known_hosts at {_at(entry)}. Someone could be eavesdropping, "
            "or the host key was replaced."
            + (f" (It also presented a certificate that was refused: {cert_failure})" if cert_failure else "")
        )
    if cert_failure:
        # A certificate from a CA we trust that fails its checks is suspicious;
        # no policy may wave its key through as merely "new".
        raise HostKeyNotVerifiable(cert_failure)
    if certificate is not None:
        unknown = (
            f"host key for {where} is not known: the server presented {certificate.describe()}, "
            f"and no @cert-authority line for {where} trusts CA {certificate.signature_key.key_type} "
            f"{certificate.signature_key.fingerprint}; nor is its key {key.key_type} {key.fingerprint} "
            "listed as a host key"
        )
    else:
        unknown = f"host key for {where} is not known: {key.key_type} {key.fingerprint}"
    if callable(policy):
        accepted = await policy(host, port, key)
        verdict = "accepted" if accepted else "refused"
        log.info(
            "%s: unknown host key %s %s %s by host_key_policy", where, key.key_type, key.fingerprint, verdict
        )
        return accepted
    if policy == "accept-new":
        if not known.paths:
            log.warning(
                "accepting new host key %s for %s (in memory only: no known_hosts file)",
                key.fingerprint,
                where,
            )
            known.add(None, host, port, key)
            return True
        path = known.paths[0]
        known.add(path, host, port, key, hashed=True)
        log.warning("permanently added %s (%s %s) to %s", where, key.key_type, key.fingerprint, path)
        return True
    raise HostKeyNotVerifiable(f"{unknown} (add it to known_hosts, or pass host_key_policy='accept-new')")


def _at(entry: KnownHostEntry | None) -> str:
    return entry.where if entry is not None else "?"
