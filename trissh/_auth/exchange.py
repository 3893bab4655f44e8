"""One user authentication request at a time (RFC 4252 §5): send it, read what comes back.

Theory of operation
-------------------
Every method speaks through :class:`AuthExchange`. :meth:`AuthExchange.send`
queues a USERAUTH_REQUEST for our user and service; :meth:`AuthExchange.reply`
waits for the server's answer and returns one of three things:

* :class:`Success` — USERAUTH_SUCCESS: we are in;
* :class:`Failure` — USERAUTH_FAILURE: the methods that may continue, and
  whether the request just made succeeded partially (RFC 4252 §5.1);
* :class:`MethodMessage` — a message in 60..79, whose meaning belongs to the
  method in progress (PK_OK, PASSWD_CHANGEREQ and INFO_REQUEST all share 60).

USERAUTH_BANNER may come at any time before success (§5.4); it is handed to the
caller's callback and logged, never returned. A server could send banners
forever, so their number and total size are bounded; past the bound the
connection ends with a :class:`ProtocolError` that says so. Anything else is a
protocol violation.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeAlias

from .. import _messages as msg
from .._driver import SSHClientTransport
from .._errors import ProtocolError
from .._wire import Reader, byte, string

__all__ = [
    "MAX_BANNERS",
    "MAX_BANNER_BYTES",
    "AuthExchange",
    "AuthReply",
    "BannerHandler",
    "Failure",
    "MethodMessage",
    "Success",
]

log = logging.getLogger("trissh.auth")

#: An optional callback for USERAUTH_BANNER text (RFC 4252 §5.4).
BannerHandler: TypeAlias = Callable[[str], Awaitable[None]]

# A login banner is a few lines of legal text; OpenSSH's sshd sends at most one.
# These bounds leave room for chatty PAM modules and stop a server that sends
# banners without end: past either, the connection ends (nothing more is kept). Text is counted in bytes as
# received, so the kept text is at most 64 KiB of UTF-8.
MAX_BANNERS: Final = 64
MAX_BANNER_BYTES: Final = 64 * 1024

_SERVICE: Final = "ssh-connection"


@dataclass(frozen=True, slots=True)
class Success:
    """USERAUTH_SUCCESS."""


@dataclass(frozen=True, slots=True)
class Failure:
    """USERAUTH_FAILURE.

    Fields:
        methods: the methods that can continue (the server's list).
        partial: the request just made succeeded, but more methods are needed.
    """

    methods: tuple[str, ...]
    partial: bool


@dataclass(frozen=True, slots=True)
class MethodMessage:
    """A method-specific message (numbers 60..79), for the method in progress to read.

    Fields:
        kind: the message number.
        payload: the whole packet, message number included.
    """

    kind: int
    payload: bytes


AuthReply: TypeAlias = Success | Failure | MethodMessage


class AuthExchange:
    """Sends our requests and reads the server's replies; collects banners on the way.

    Attributes:
        username: who we authenticate as.
        banners: every banner received, in order.
        methods: the method list of the last USERAUTH_FAILURE (None before any).
        partial: whether that failure reported a partial success.
    """

    def __init__(
        self, transport: SSHClientTransport, username: str, banner_handler: BannerHandler | None = None
    ) -> None:
        self.transport = transport
        self.username = username
        self.banners: list[str] = []
        self.methods: tuple[str, ...] | None = None
        self.partial = False
        self._banner_handler = banner_handler
        self._banner_bytes = 0

    @property
    def session_id(self) -> bytes:
        session_id = self.transport.session_id
        assert session_id is not None, "authentication starts after the first key exchange"
        return session_id

    def request(self, method: str, *fields: bytes) -> bytes:
        """The USERAUTH_REQUEST payload for ``method`` with its method-specific ``fields``."""
        return (
            byte(msg.USERAUTH_REQUEST)
            + string(self.username)
            + string(_SERVICE)
            + string(method)
            + b"".join(fields)
        )

    async def send(self, payload: bytes) -> None:
        await self.transport.send_packet(payload)

    async def reply(self) -> AuthReply:
        """The server's next answer, banners aside."""
        while True:
            packet = await self.transport.receive_packet()
            kind = packet[0]
            if kind == msg.USERAUTH_BANNER:
                await self._banner(packet)
                continue
            if kind == msg.USERAUTH_SUCCESS:
                if len(packet) != 1:
                    raise ProtocolError("USERAUTH_SUCCESS has unexpected bytes")
                return Success()
            if kind == msg.USERAUTH_FAILURE:
                reader = Reader(packet, "USERAUTH_FAILURE")
                reader.byte()
                methods = tuple(reader.name_list())
                partial = reader.boolean()
                reader.check_end()
                self.methods = methods
                self.partial = partial
                return Failure(methods, partial)
            if 60 <= kind <= 79:
                return MethodMessage(kind, packet)
            raise ProtocolError(f"unexpected {msg.message_name(kind)} during user authentication")

    async def _banner(self, packet: bytes) -> None:
        reader = Reader(packet, "USERAUTH_BANNER")
        reader.byte()
        raw = reader.string()
        # The language tag that follows is ignored: some servers leave it out.
        # Checked before anything is kept, so what is kept never exceeds the bounds.
        if len(self.banners) >= MAX_BANNERS:
            raise ProtocolError(
                f"the server sent more than {MAX_BANNERS} authentication banners (MAX_BANNERS)"
            )
        self._banner_bytes += len(raw)
        if self._banner_bytes > MAX_BANNER_BYTES:
            raise ProtocolError(
                f"the server sent over {MAX_BANNER_BYTES} bytes of text in its authentication banners "
                "(MAX_BANNER_BYTES)"
            )
        text = raw.decode("utf-8", "replace")  # for display: undecodable bytes are replaced, not fatal
        self.banners.append(text)
        log.info("server banner: %s", text.rstrip())
        if self._banner_handler is not None:
            await self._banner_handler(text)
