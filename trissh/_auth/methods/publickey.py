"""The ``publickey`` method (RFC 4252 §7), for keys held here, in an agent, or certified.

Each key is first offered without a signature (``want signature = false``);
only a key the server answers with USERAUTH_PK_OK is signed for. That costs a
round trip per key, but it means an agent or a passphrase prompt is asked to
sign only for a key the server would take, and a key's private half is never
used for a server that refuses it (as OpenSSH does). An RSA key is offered
under each signature algorithm the server may accept (rsa-sha2-512, then
rsa-sha2-256: RFC 8332, RFC 8308 §3.1) until one is accepted.
"""

from __future__ import annotations

import enum
import logging

from ... import _messages as msg
from ..._errors import KeyImportError, ProtocolError, SSHError
from ..._wire import Reader, boolean, string
from ..exchange import AuthExchange, Failure, MethodMessage, Success
from ..identity import Identity
from ..keys import PassphraseRequired
from .base import AuthMethod, AuthSettings, Outcome

__all__ = ["PublicKeyMethod"]

log = logging.getLogger("trissh.auth")


class _Next(enum.Enum):
    """What to do after an offer that neither succeeded nor changed the server's list."""

    ALGORITHM = "try the key's next algorithm"
    KEY = "go on to the next key"


class PublicKeyMethod(AuthMethod):
    """Offers each identity in turn; remembers which were offered across restarts."""

    name = "publickey"

    def __init__(self, settings: AuthSettings) -> None:
        super().__init__(settings)
        self._pending = list(settings.identities)
        self._offered: set[bytes] = set()

    def can_try(self) -> bool:
        return bool(self._pending)

    async def run(self, exchange: AuthExchange) -> Outcome:
        raw_algs = exchange.transport.state.extensions.get("server-sig-algs")
        server_sig_algs = raw_algs.decode("ascii", "replace").split(",") if raw_algs is not None else None
        while self._pending:
            identity = self._pending.pop(0)
            if identity.blob in self._offered:
                continue  # the same key from two sources (an agent and a file): offer it once
            self._offered.add(identity.blob)
            for algorithm in identity.algorithms(server_sig_algs, allow_sha1=self.settings.allow_sha1):
                result = await self._offer(exchange, identity, algorithm)
                if isinstance(result, Outcome):
                    return result
                if result is _Next.KEY:
                    break
        return Outcome.EXHAUSTED

    async def _offer(self, exchange: AuthExchange, identity: Identity, algorithm: str) -> Outcome | _Next:
        """Query, then sign if the server accepts the key."""
        before = exchange.methods
        await exchange.send(
            exchange.request("publickey", boolean(False), string(algorithm), string(identity.blob))
        )
        reply = await exchange.reply()
        if isinstance(reply, Success):  # allowed by RFC 4252 §7, if odd
            return Outcome.SUCCESS
        if isinstance(reply, Failure):
            log.debug("server refused %s as %s", identity.describe(), algorithm)
            self._note(identity, algorithm, "refused")
            return self.after_failure(reply, before) or _Next.ALGORITHM
        self._check_pk_ok(reply, identity, algorithm)
        signed_fields = (boolean(True), string(algorithm), string(identity.blob))
        to_sign = string(exchange.session_id) + exchange.request("publickey", *signed_fields)
        try:
            signature = await identity.sign(to_sign, algorithm)
        except SSHError as exc:
            log.info("cannot sign with %s: %s", identity.describe(), exc)
            if isinstance(exc, KeyImportError) and not isinstance(exc, PassphraseRequired):
                self.settings.key_errors.append(exc)  # a wrong passphrase, a damaged file: say so
            self._note(identity, algorithm, f"not usable: {exc}")
            return _Next.KEY
        before = exchange.methods
        await exchange.send(exchange.request("publickey", *signed_fields, string(signature)))
        reply = await exchange.reply()
        if isinstance(reply, Success):
            log.debug("authenticated with %s as %s", identity.describe(), algorithm)
            return Outcome.SUCCESS
        if isinstance(reply, MethodMessage):
            raise ProtocolError(
                f"unexpected {msg.message_name(reply.kind)} in reply to a signed publickey request"
            )
        if reply.partial:
            log.info("%s accepted; the server wants more: %s", identity.describe(), ", ".join(reply.methods))
            return Outcome.CONTINUE
        self._note(identity, algorithm, "signature refused")
        # A refused signature for an accepted key will not improve with another algorithm.
        return self.after_failure(reply, before) or _Next.KEY

    def _note(self, identity: Identity, algorithm: str, what: str) -> None:
        self.settings.tried.append(f"publickey {identity.describe()} as {algorithm}: {what}")

    @staticmethod
    def _check_pk_ok(reply: MethodMessage, identity: Identity, algorithm: str) -> None:
        if reply.kind != msg.USERAUTH_PK_OK:
            raise ProtocolError(f"unexpected {msg.message_name(reply.kind)} in reply to a publickey query")
        reader = Reader(reply.payload, "USERAUTH_PK_OK")
        reader.byte()
        answered_alg = reader.string()
        answered_blob = reader.string()
        reader.check_end()
        if answered_alg != algorithm.encode("ascii") or answered_blob != identity.blob:
            raise ProtocolError("USERAUTH_PK_OK names another key or algorithm than the one offered")
