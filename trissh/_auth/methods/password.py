"""The ``password`` method (RFC 4252 §8), with the server's demand for a new password.

A password given as a string is tried once; one given as an async callable
is asked for again after each refusal, up to :data:`PASSWORD_TRIES` times
(OpenSSH's NumberOfPasswordPrompts). SSH_MSG_USERAUTH_PASSWD_CHANGEREQ
(an expired password) is answered through the caller's
``password_change_handler``; without one it ends authentication with a
:class:`PermissionDenied` that says so, since no other method can help.
"""

from __future__ import annotations

from typing import Final

from ... import _messages as msg
from ..._errors import PermissionDenied, ProtocolError
from ..._wire import Reader, boolean, string
from ..exchange import AuthExchange, Failure, MethodMessage, Success
from .base import AuthMethod, AuthSettings, Outcome

__all__ = ["PASSWORD_TRIES", "PasswordMethod", "resolve_password"]

#: Tries of a password callable, as OpenSSH's NumberOfPasswordPrompts default.
PASSWORD_TRIES: Final = 3
# New passwords the server may refuse in a row before we give up.
_CHANGE_TRIES: Final = 3


async def resolve_password(settings: AuthSettings) -> str | None:
    password = settings.password
    if password is None or isinstance(password, str):
        return password
    return await password()


class PasswordMethod(AuthMethod):
    name = "password"

    def __init__(self, settings: AuthSettings) -> None:
        super().__init__(settings)
        password = settings.password
        self._tries_left = 0 if password is None else 1 if isinstance(password, str) else PASSWORD_TRIES

    def can_try(self) -> bool:
        return self._tries_left > 0

    async def run(self, exchange: AuthExchange) -> Outcome:
        while self._tries_left > 0:
            self._tries_left -= 1
            password = await resolve_password(self.settings)
            assert password is not None
            before = exchange.methods
            await exchange.send(exchange.request("password", boolean(False), string(password)))
            reply = await exchange.reply()
            for _ in range(_CHANGE_TRIES):
                if not isinstance(reply, MethodMessage):
                    break
                reply = await self._change(exchange, reply, password)
            if isinstance(reply, Success):
                return Outcome.SUCCESS
            if isinstance(reply, MethodMessage):
                raise PermissionDenied(
                    f"the server refused {_CHANGE_TRIES} new passwords for {exchange.username!r} in a row"
                )
            self.settings.tried.append("password: refused" + (" (partial success)" if reply.partial else ""))
            outcome = self.after_failure(reply, before)
            if outcome is not None:
                return outcome
        return Outcome.EXHAUSTED

    async def _change(
        self, exchange: AuthExchange, reply: MethodMessage, old: str
    ) -> Success | Failure | MethodMessage:
        if reply.kind != msg.USERAUTH_PASSWD_CHANGEREQ:
            raise ProtocolError(f"unexpected {msg.message_name(reply.kind)} in reply to a password request")
        reader = Reader(reply.payload, "USERAUTH_PASSWD_CHANGEREQ")
        reader.byte()
        prompt = reader.text()
        handler = self.settings.password_change_handler
        if handler is None:
            raise PermissionDenied(
                f"the server requires a new password for {exchange.username!r} ({prompt.strip()!r}); "
                "pass password_change_handler= to connect() to set one"
            )
        new = await handler(prompt)
        await exchange.send(exchange.request("password", boolean(True), string(old), string(new)))
        return await exchange.reply()
