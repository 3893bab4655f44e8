"""The user authentication protocol, client side (RFC 4252).

Methods are tried in OpenSSH's order: public keys (each key once per signature
algorithm the server may accept), then password. A key is offered with its
signature at once, without the unsigned query OpenSSH makes first: for keys we
hold ourselves that saves a round trip, and a refusal costs the same.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from .. import _messages as msg
from .._driver import SSHClientTransport
from .._errors import PermissionDenied, ProtocolError
from .._wire import Reader, boolean, byte, string
from .keys import PrivateKey

__all__ = ["AuthResult", "authenticate"]

log = logging.getLogger("trissh.auth")

PasswordSource = str | Callable[[], Awaitable[str]] | None

_SERVICE = "ssh-connection"


@dataclass
class AuthResult:
    """How authentication went: the method that succeeded, and any banners the server sent."""

    method: str = ""
    banners: list[str] = field(default_factory=list)


class _Exchange:
    """Sends requests and reads their answers, collecting banners on the way."""

    def __init__(self, transport: SSHClientTransport, username: str, result: AuthResult) -> None:
        self.transport = transport
        self.username = username
        self.result = result
        self.methods: tuple[str, ...] | None = None  # from the last FAILURE; None before any

    def request(self, method: str, *fields: bytes) -> bytes:
        return (
            byte(msg.USERAUTH_REQUEST)
            + string(self.username)
            + string(_SERVICE)
            + string(method)
            + b"".join(fields)
        )

    async def attempt(self, payload: bytes, method: str) -> bool | int:
        """Send one request; True on success, False on failure, or another message number."""
        await self.transport.send_packet(payload)
        while True:
            reply = await self.transport.receive_packet()
            kind = reply[0]
            if kind == msg.USERAUTH_BANNER:
                reader = Reader(reply, "USERAUTH_BANNER")
                reader.byte()
                banner = reader.text()
                self.result.banners.append(banner)
                log.info("server banner: %s", banner.rstrip())
                continue
            if kind == msg.USERAUTH_SUCCESS:
                if len(reply) != 1:
                    raise ProtocolError("USERAUTH_SUCCESS has unexpected bytes")
                self.result.method = method
                return True
            if kind == msg.USERAUTH_FAILURE:
                reader = Reader(reply, "USERAUTH_FAILURE")
                reader.byte()
                self.methods = tuple(reader.name_list())
                partial = reader.boolean()
                reader.check_end()
                if partial:
                    log.debug("%s succeeded partially; server wants more: %s", method, self.methods)
                return False
            if 60 <= kind <= 79:
                return kind
            raise ProtocolError(f"unexpected {msg.message_name(kind)} during user authentication")

    def allows(self, method: str) -> bool:
        return self.methods is None or method in self.methods


async def _try_key(exchange: _Exchange, key: PrivateKey, server_sig_algs: Sequence[str] | None) -> bool:
    session_id = exchange.transport.session_id
    assert session_id is not None
    blob = key.public_key.blob
    for algorithm in key.signature_algorithms(server_sig_algs):
        if not exchange.allows("publickey"):
            return False
        signed = string(session_id) + exchange.request(
            "publickey", boolean(True), string(algorithm), string(blob)
        )
        signature = key.sign(signed, algorithm)
        payload = exchange.request(
            "publickey", boolean(True), string(algorithm), string(blob), string(signature)
        )
        outcome = await exchange.attempt(payload, "publickey")
        if outcome is True:
            log.debug("authenticated with %s key %s", algorithm, key.public_key.fingerprint)
            return True
        if outcome is not False:
            raise ProtocolError(
                f"unexpected {msg.message_name(outcome)} in reply to a signed publickey request"
            )
    return False


async def _try_password(exchange: _Exchange, password: PasswordSource) -> bool:
    if password is None or not exchange.allows("password"):
        return False
    text = password if isinstance(password, str) else await password()
    payload = exchange.request("password", boolean(False), string(text))
    outcome = await exchange.attempt(payload, "password")
    if outcome is True:
        return True
    if outcome == msg.USERAUTH_PK_OK:  # SSH_MSG_USERAUTH_PASSWD_CHANGEREQ shares number 60
        raise PermissionDenied("the server requires a password change, which trissh does not do")
    if outcome is not False:
        raise ProtocolError(f"unexpected {msg.message_name(outcome)} in reply to a password request")
    return False


async def authenticate(
    transport: SSHClientTransport,
    username: str,
    keys: Sequence[PrivateKey],
    password: PasswordSource = None,
) -> AuthResult:
    """Authenticate as ``username``; returns on success.

    Raises:
        PermissionDenied: every method we could try was refused.
        ProtocolError: the server sent something auth does not allow.
    """
    await transport.request_service("ssh-userauth")
    result = AuthResult()
    exchange = _Exchange(transport, username, result)
    raw_algs = transport.state.extensions.get("server-sig-algs")
    server_sig_algs = raw_algs.decode("ascii", "replace").split(",") if raw_algs is not None else None
    for key in keys:
        if await _try_key(exchange, key, server_sig_algs):
            transport.authenticated = True
            return result
    if await _try_password(exchange, password):
        transport.authenticated = True
        return result
    tried = (["publickey"] if keys else []) + (["password"] if password is not None else [])
    offered = ", ".join(exchange.methods) if exchange.methods is not None else "unknown"
    raise PermissionDenied(
        f"authentication as {username!r} failed: tried {', '.join(tried) or 'nothing'}"
        f"{f' ({len(keys)} key(s))' if keys else ''}; the server allows: {offered}",
        exchange.methods or (),
    )
