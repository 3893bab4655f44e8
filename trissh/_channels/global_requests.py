"""Global requests from the server (RFC 4254 §4): what we record, and that we refuse them all.

Theory of operation
-------------------
A client has nothing to grant the server at the connection level, so every
global request from the server is refused: REQUEST_FAILURE when it wants a
reply, silence when not (RFC 4254 §4). That covers OpenSSH's
``keepalive@openssh.com`` (sent with want_reply set; REQUEST_FAILURE is what
OpenSSH's own client answers, and any reply proves we are alive) and every
request we do not know.

One request carries information worth keeping: ``hostkeys-00@openssh.com``
(OpenSSH PROTOCOL §2.5), which sshd sends once after authentication, listing
all its host keys as ``string`` blobs. :func:`parse_host_keys` turns it into a
tuple of :class:`~trissh.PublicKey`, which ``SSHConnection.server_host_keys``
exposes. These keys are **claims**, not verified: the server has not proved
it holds them (that is ``hostkeys-prove-00@openssh.com``, not implemented),
so nothing here trusts them or writes them to known_hosts. A malformed or
unsupported key is skipped with a log line; the list is cut at
:data:`MAX_SERVER_HOST_KEYS`; a malformed request never breaks the
connection, because ignoring it is always safe.

This module knows the request names and their payloads; sending the reply
is the caller's (:class:`~trissh._channels.mux.ChannelMux`).
"""

from __future__ import annotations

import logging
from typing import Final

from .._algorithms.hostkeys import PublicKey, decode_public_key
from .._errors import KeyImportError
from .._wire import DecodeError, Reader

__all__ = ["HOSTKEYS_REQUEST", "MAX_SERVER_HOST_KEYS", "parse_host_keys", "server_global_request"]

log = logging.getLogger("trissh.channel")

#: OpenSSH PROTOCOL §2.5: the server announces its host keys.
HOSTKEYS_REQUEST: Final = "hostkeys-00@openssh.com"

#: The most host keys kept from one ``hostkeys-00`` request. A server has one
#: key per type (sshd: five at most, ed25519, three ECDSA, RSA), plus a few during a
#: key rotation; a longer list is hostile, and each key costs a parse.
MAX_SERVER_HOST_KEYS: Final = 32


def parse_host_keys(reader: Reader) -> tuple[PublicKey, ...]:
    """The keys of a ``hostkeys-00@openssh.com`` request: the rest of ``reader``, ``string`` blobs.

    Malformed, unsupported and repeated keys are skipped (logged), keys past
    :data:`MAX_SERVER_HOST_KEYS` dropped (logged); broken framing ends the
    list there. Never raises on the payload's content.
    """
    keys: dict[bytes, PublicKey] = {}
    while reader.remaining:
        try:
            blob = reader.string()
        except DecodeError as exc:
            log.warning("%s: malformed key list, ignoring the rest: %s", HOSTKEYS_REQUEST, exc)
            break
        if len(keys) == MAX_SERVER_HOST_KEYS:
            log.warning(
                "%s: more than %d host keys; ignoring the rest", HOSTKEYS_REQUEST, MAX_SERVER_HOST_KEYS
            )
            break
        try:
            key = decode_public_key(blob)
        except KeyImportError as exc:
            log.info("%s: skipping a host key: %s", HOSTKEYS_REQUEST, exc)
            continue
        if key.blob in keys:
            log.info("%s: skipping a repeated host key %s", HOSTKEYS_REQUEST, key.fingerprint)
            continue
        keys[key.blob] = key
    return tuple(keys.values())


def server_global_request(request: str, reader: Reader) -> tuple[PublicKey, ...] | None:
    """Look at the server's global request ``request`` (its data in ``reader``).

    Returns:
        the host keys when it is ``hostkeys-00@openssh.com``, else None. Either
        way the request is refused (the caller replies REQUEST_FAILURE if a
        reply is wanted).
    """
    if request == HOSTKEYS_REQUEST:
        keys = parse_host_keys(reader)
        log.debug("the server announced %d host keys: %s", len(keys), ", ".join(k.key_type for k in keys))
        return keys
    log.debug("refusing global request %r", request[:64])
    return None
