"""The channels the server may open to us (RFC 4254 §5.1), and where each kind goes.

Theory of operation
-------------------
A client accepts a channel from the server only when it asked for it:

=====================================  ==========================================================
``forwarded-tcpip``                    a port we asked the server to listen on (``tcpip-forward``)
``forwarded-streamlocal@openssh.com``  a unix socket we asked it to listen on
``auth-agent@openssh.com``             agent forwarding, once a session sent ``auth-agent-req``
``x11`` and anything else              refused: trissh never asks for X11 forwarding
=====================================  ==========================================================

:data:`ROUTES` maps each kind to a function that reads the kind's fields from
the CHANNEL_OPEN and finds the :class:`Listening` registered for it (by the
forwarding that asked for it, through :class:`IncomingChannels`), or says why
not: an open nobody asked for is refused with ADMINISTRATIVELY_PROHIBITED.
The dispatcher (:meth:`ChannelMux._handle_open`) then makes the
:class:`ServerOpenedChannel` and starts ``listening.serve(channel, origin)``
as a task in ``listening.nursery``: the forwarding's own, so its tasks end
with it. That task confirms or refuses the open.

Memory stays bounded whatever the server does: at most
:data:`MAX_SERVER_OPENED_CHANNELS` server-opened channels are alive at once
(and :data:`MAX_AGENT_CHANNELS` agent ones); beyond, opens are refused with
RESOURCE_SHORTAGE, which costs one small reply each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import trio

from .._errors import ChannelOpenFailureReason
from .._wire import Reader
from .channel import ServerOpenedChannel

__all__ = [
    "AGENT_CHANNEL",
    "FORWARDED_STREAMLOCAL",
    "FORWARDED_TCPIP",
    "MAX_AGENT_CHANNELS",
    "MAX_SERVER_OPENED_CHANNELS",
    "ROUTES",
    "LIMITS",
    "IncomingChannels",
    "Listening",
    "Refusal",
    "Route",
]

FORWARDED_TCPIP: Final = "forwarded-tcpip"
FORWARDED_STREAMLOCAL: Final = "forwarded-streamlocal@openssh.com"
AGENT_CHANNEL: Final = "auth-agent@openssh.com"

#: The most channels the server may have opened to us at once, all kinds together.
MAX_SERVER_OPENED_CHANNELS: Final = 256
#: The most forwarded agent connections open at once. Real use needs one or
#: two at a time, so a server opening more is refused rather than allowed to pile them up.
MAX_AGENT_CHANNELS: Final = 64

#: Where a forwarded connection comes from, as the server says: (address, port); ("", 0) when not said.
Origin = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Listening:
    """Where one forwarding's channels go: ``serve(channel, origin)`` runs as a task in ``nursery``."""

    nursery: trio.Nursery
    serve: Callable[[ServerOpenedChannel, Origin], Awaitable[None]]
    #: For log lines: what was forwarded ("remote port 127.0.0.1:8080").
    what: str


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an open is refused: the reason code and the text sent to the server."""

    reason: ChannelOpenFailureReason
    text: str


@dataclass(slots=True)
class IncomingChannels:
    """The forwardings that accept channels from the server, by what they listen on."""

    #: Remote port forwardings by (the listen address as we asked for it, the port the server bound).
    tcp: dict[tuple[str, int], Listening] = field(default_factory=dict)
    #: Remote unix socket forwardings by the socket path on the server.
    unix: dict[str, Listening] = field(default_factory=dict)
    #: Agent forwarding, once enabled.
    agent: Listening | None = None

    def find_tcp(self, address: str, port: int) -> Listening | None:
        """The forwarding for a ``forwarded-tcpip`` open: by address and port, else by the port alone
        when only one forwarding has it (servers may report the address they bound, not ours)."""
        listening = self.tcp.get((address, port))
        if listening is not None:
            return listening
        same_port = [entry for (_, bound), entry in self.tcp.items() if bound == port]
        return same_port[0] if len(same_port) == 1 else None


#: Reads one kind's CHANNEL_OPEN fields and finds where it goes: (listening, origin), or a refusal.
Route = Callable[[IncomingChannels, Reader], "tuple[Listening, Origin] | Refusal"]

_NOT_ASKED: Final = ChannelOpenFailureReason.ADMINISTRATIVELY_PROHIBITED


def _forwarded_tcpip(table: IncomingChannels, reader: Reader) -> tuple[Listening, Origin] | Refusal:
    # RFC 4254 §7.2: address that was connected, port that was connected, originator address and port.
    address = reader.text()
    port = reader.uint32()
    origin = (reader.text(), reader.uint32())
    reader.check_end()
    listening = table.find_tcp(address, port)
    if listening is None:
        return Refusal(_NOT_ASKED, f"no forwarding of port {address[:64]}:{port} was asked for")
    return listening, origin


def _forwarded_streamlocal(table: IncomingChannels, reader: Reader) -> tuple[Listening, Origin] | Refusal:
    # OpenSSH PROTOCOL §2.4: socket path, reserved string.
    path = reader.text()
    reader.string()
    reader.check_end()
    listening = table.unix.get(path)
    if listening is None:
        return Refusal(_NOT_ASKED, f"no forwarding of unix socket {path[:128]!r} was asked for")
    return listening, ("", 0)


def _agent(table: IncomingChannels, reader: Reader) -> tuple[Listening, Origin] | Refusal:
    reader.check_end()
    if table.agent is None:
        return Refusal(_NOT_ASKED, "agent forwarding was not requested")
    return table.agent, ("", 0)


#: The channel kinds a server may open, and how each is routed; every other kind is refused.
ROUTES: Final[dict[str, Route]] = {
    FORWARDED_TCPIP: _forwarded_tcpip,
    FORWARDED_STREAMLOCAL: _forwarded_streamlocal,
    AGENT_CHANNEL: _agent,
}

#: Kinds with a limit of their own, below :data:`MAX_SERVER_OPENED_CHANNELS`.
LIMITS: Final[dict[str, int]] = {AGENT_CHANNEL: MAX_AGENT_CHANNELS}
