"""Events returned by :meth:`TransportState.next_event`.

Each is a small frozen dataclass; the driver dispatches on its type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, final

from .._algorithms.hostkeys import PublicKey
from .negotiate import Negotiated

if TYPE_CHECKING:
    from .._algorithms.certificates import Certificate

__all__ = ["NEED_DATA", "Event", "HostKeyReceived", "KexComplete", "NeedData", "PacketReceived"]


class Event:
    """Base of the transport's events."""

    __slots__ = ()


@final
class NeedData(Event):
    """Nothing more can be decoded until more bytes arrive. Use the :data:`NEED_DATA` singleton."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()


@final
@dataclass(frozen=True, slots=True)
class HostKeyReceived(Event):
    """The server proved it holds ``key`` (its signature over the exchange hash checked out).

    Only for the first key exchange: the driver must decide whether ``key`` is the
    right key for this host and call :meth:`TransportState.accept_host_key`, or end
    the connection. Later exchanges must present the same key; the state checks that.

    Fields: key; certificate (the host certificate, with its CA signature already
    checked, when a certificate algorithm was negotiated; ``key`` is then the key
    it certifies, and whether its CA is trusted is for the driver to decide).
    """

    key: PublicKey
    certificate: Certificate | None = None


@final
@dataclass(frozen=True, slots=True)
class KexComplete(Event):
    """Both NEWKEYS have passed: new keys protect both directions.

    Fields: negotiated (the algorithms now in use), initial (True for the first exchange).
    """

    negotiated: Negotiated
    initial: bool


@final
@dataclass(frozen=True, slots=True)
class PacketReceived(Event):
    """A packet for the layers above the transport (service, auth, connection messages).

    Fields: seq (its sequence number, for SSH_MSG_UNIMPLEMENTED), payload.
    """

    seq: int
    payload: bytes | memoryview
