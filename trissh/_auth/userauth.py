"""The user authentication protocol, client side (RFC 4252): the loop that chooses methods.

Theory of operation
-------------------
The loop follows OpenSSH's (sshconnect2.c): a ``none`` request first, whose
USERAUTH_FAILURE lists the methods the server allows; then, walking the
caller's preference list (OpenSSH's PreferredAuthentications: publickey,
keyboard-interactive, password), the first method the server allows and we
can try is run (:mod:`trissh._auth.methods`) until it succeeds, runs out of
things to try, or the server's list changes. A changed list, which is what a
partial success (``AuthenticationMethods publickey,password``) looks like,
starts the walk over from the top; each method object remembers what it has
already tried, so a key accepted for the first factor is not offered again.
When nothing is left, :class:`PermissionDenied` lists what was tried and what
the server allows.

This module knows no method's messages and no key source: methods live in
``methods/``, keys arrive as :class:`~trissh._auth.identity.Identity` objects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from .._driver import SSHClientTransport
from .._errors import KeyImportError, PermissionDenied
from .._public import public
from .exchange import AuthExchange, BannerHandler
from .methods import DEFAULT_PREFERRED_AUTH, METHODS, AuthMethod, AuthSettings, NoneMethod, Outcome

__all__ = ["AuthResult", "authenticate", "check_preferred_auth"]

log = logging.getLogger("trissh.auth")


@public
@dataclass
class AuthResult:
    """How authentication went.

    Attributes:
        method: the method that completed it (``"publickey"``, ``"password"``...); ``""`` before it has.
        methods: every method that succeeded, partial successes first (more than one when the server
            asks for several, OpenSSH's ``AuthenticationMethods``).
        banners: the server's login banners, in the order they came.
        username: the user name authenticated as; ``""`` when not known (a connection made by hand).
    """

    method: str = ""
    methods: list[str] = field(default_factory=list)
    banners: list[str] = field(default_factory=list)
    username: str = ""


def check_preferred_auth(names: Sequence[str] | str | None) -> tuple[str, ...]:
    """``preferred_auth`` as given (a list, or OpenSSH's comma-separated string), checked."""
    if names is None:
        return DEFAULT_PREFERRED_AUTH
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(
            f"unsupported authentication method(s) {', '.join(unknown)}; supported: {', '.join(METHODS)}"
        )
    return tuple(names)


async def authenticate(
    transport: SSHClientTransport,
    settings: AuthSettings,
    preferred: Sequence[str] = DEFAULT_PREFERRED_AUTH,
    banner_handler: BannerHandler | None = None,
) -> AuthResult:
    """Authenticate as ``settings.username``; returns on success.

    Raises:
        PermissionDenied: every method we could try was refused.
        ProtocolError: the server sent something authentication does not allow.
    """
    await transport.request_service("ssh-userauth")
    exchange = AuthExchange(transport, settings.username, banner_handler)
    result = AuthResult(banners=exchange.banners, username=settings.username)
    methods: dict[str, AuthMethod] = {name: METHODS[name](settings) for name in preferred}
    current: AuthMethod = NoneMethod(settings)
    while True:
        outcome = await current.run(exchange)
        if outcome is Outcome.SUCCESS:
            result.method = current.name
            result.methods.append(current.name)
            transport.authenticated = True
            return result
        if outcome is Outcome.CONTINUE and exchange.partial:
            result.methods.append(current.name)  # one factor of several done
        allowed = exchange.methods or ()
        following = next(
            (m for name, m in methods.items() if name in allowed and m.can_try()),
            None,
        )
        if following is None:
            denied = _denied(settings, exchange, preferred)
            if settings.key_errors:
                # A key the server would have taken could not be used: that is the news, not the refusal.
                raise KeyImportError(f"{settings.key_errors[0]}\n{denied}") from settings.key_errors[0]
            raise denied
        if following is not current:
            log.debug("next authentication method: %s", following.name)
        current = following


def _denied(settings: AuthSettings, exchange: AuthExchange, preferred: Sequence[str]) -> PermissionDenied:
    allowed = exchange.methods or ()
    offered = ", ".join(allowed) or "nothing"
    lines = [f"authentication as {settings.username!r} failed; the server allows: {offered}"]
    if settings.tried:
        lines.append("tried:")
        lines.extend(f"  {line}" for line in settings.tried)
    usable = [name for name in preferred if name in allowed]
    if "publickey" in usable and not settings.identities:
        lines.append(settings.no_keys_hint or "no keys to offer: pass client_keys=[path, ...]")
    if "password" in allowed and settings.password is None:
        lines.append("no password given (password=...)")
    if "keyboard-interactive" in allowed and settings.kbdint_handler is None and settings.password is None:
        lines.append("no kbdint_handler or password for keyboard-interactive")
    not_preferred = [name for name in allowed if name in METHODS and name not in preferred]
    if not_preferred:
        lines.append(f"not in preferred_auth: {', '.join(not_preferred)}")
    return PermissionDenied("\n".join(lines), tuple(allowed))
