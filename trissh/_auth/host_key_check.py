"""Is this the server we meant? The host key check run during the first key exchange.

:func:`make_host_key_verifier` builds the transport's ``host_key_verifier``
from the caller's known_hosts and policy; :func:`host_key_preferences` orders
the host key algorithms offered so that a key type already known for the host
is negotiated first, as OpenSSH does.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

from .._algorithms.hostkeys import HOST_KEY_ALGORITHMS, PublicKey
from .._errors import HostKeyNotVerifiable
from .known_hosts import HostKeyStatus, KnownHosts, Marker, default_known_hosts_paths

__all__ = ["HostKeyPolicy", "host_key_preferences", "make_host_key_verifier"]

log = logging.getLogger("trissh.host_key")

HostKeyPolicy = Literal["strict", "accept-new"] | Callable[[str, int, PublicKey], Awaitable[bool]]


def host_key_preferences(
    names: list[str], known: KnownHosts | None, host: str, port: int, explicit: bool
) -> list[str]:
    """Put algorithms for key types we already know for this host first, as OpenSSH does.

    Otherwise a server with both an ed25519 and an RSA key, known to us by its
    RSA key only, would present ed25519 and be refused as unknown.
    """
    if known is None or explicit:
        return names
    types = {e.key.key_type for e in known.lookup(host, port) if e.marker is Marker.NONE}
    if not types:
        return names
    first = [n for n in names if HOST_KEY_ALGORITHMS[n].key_type in types]
    return first + [n for n in names if n not in first]


def make_host_key_verifier(
    known: KnownHosts | None,
    policy: HostKeyPolicy,
    known_hosts_arg: object,
    host: str,
    port: int,
) -> Callable[[PublicKey], Awaitable[bool]]:
    async def verify(key: PublicKey) -> bool:
        if known is None:
            log.warning(
                "host key checking is disabled: accepting %s %s for %s", key.key_type, key.fingerprint, host
            )
            return True
        status = known.check(host, port, key)
        where = f"{host}:{port}" if port != 22 else host
        if status is HostKeyStatus.TRUSTED:
            return True
        if status is HostKeyStatus.REVOKED:
            raise HostKeyNotVerifiable(f"host key for {where} is revoked: {key.key_type} {key.fingerprint}")
        if status is HostKeyStatus.CHANGED:
            raise HostKeyNotVerifiable(
                f"HOST KEY FOR {where} HAS CHANGED: the server presented {key.key_type} {key.fingerprint}, "
                "which differs from the key in known_hosts. Someone could be eavesdropping, "
                "or the host key was replaced."
            )
        if callable(policy):
            return await policy(host, port, key)
        if policy == "accept-new":
            path = (
                Path(os.fspath(known_hosts_arg))
                if isinstance(known_hosts_arg, str | os.PathLike)
                else default_known_hosts_paths()[0]
            )
            known.add(path, host, port, key)
            log.warning("permanently added %s (%s %s) to %s", where, key.key_type, key.fingerprint, path)
            return True
        raise HostKeyNotVerifiable(
            f"host key for {where} is not known: {key.key_type} {key.fingerprint} "
            "(add it to known_hosts, or pass host_key_policy='accept-new')"
        )

    return verify
