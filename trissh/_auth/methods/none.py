"""The ``none`` method (RFC 4252 §5.2): asks what the server allows, and logs in where nothing is needed."""

from __future__ import annotations

from ... import _messages as msg
from ..._errors import ProtocolError
from ..exchange import AuthExchange, Failure, MethodMessage, Success
from .base import AuthMethod, AuthSettings, Outcome

__all__ = ["NoneMethod"]


class NoneMethod(AuthMethod):
    """Sent once, first: the reply's method list is where the loop starts."""

    name = "none"

    def __init__(self, settings: AuthSettings) -> None:
        super().__init__(settings)
        self._sent = False

    def can_try(self) -> bool:
        return not self._sent

    async def run(self, exchange: AuthExchange) -> Outcome:
        self._sent = True
        await exchange.send(exchange.request("none"))
        reply = await exchange.reply()
        if isinstance(reply, Success):
            return Outcome.SUCCESS
        if isinstance(reply, MethodMessage):
            raise ProtocolError(f"unexpected {msg.message_name(reply.kind)} in reply to a 'none' request")
        assert isinstance(reply, Failure)
        return Outcome.CONTINUE
