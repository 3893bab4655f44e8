"""The pre-auth inbox: service packets for ``receive_packet()`` callers, until a packet handler takes over.

Services that read packets themselves (auth) take them from here, in order.
Once the connection layer installs a packet handler (after auth), whatever is
still waiting goes to the handler first, and the inbox is let go: a connection
keeps it no longer than auth. The check that no connection message comes
before authentication has succeeded (CVE-2023-46446) is made here, in packet
order, as each packet arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import trio

from . import _messages as msg
from ._errors import ProtocolError
from ._sync import PacketInbox
from ._transport.events import PacketReceived

if TYPE_CHECKING:
    from ._driver import SSHClientTransport

__all__ = ["INBOX_SIZE", "PacketHandler", "PreAuthInbox", "dispatch"]

PacketHandler = Callable[[int, bytes | memoryview], None]

#: Packets that may wait for a receive_packet() caller before the reader waits too.
INBOX_SIZE: Final = 64


class PreAuthInbox:
    """A bounded FIFO of ``(seq, payload)`` from the reader task to ``receive_packet()`` callers."""

    __slots__ = ("_packets",)

    def __init__(self) -> None:
        self._packets: PacketInbox[tuple[int, bytes]] = PacketInbox(INBOX_SIZE)

    async def put(self, seq: int, payload: bytes | memoryview) -> bool:
        """Keep a copy of the packet for :meth:`get`, waiting while the inbox is full.

        False when the inbox was closed first: a handler took over while we
        waited, or the connection is closing.
        """
        try:
            await self._packets.put((seq, bytes(payload)))
        except trio.ClosedResourceError:
            return False
        return True

    async def get(self) -> bytes:
        """The next packet's payload; ``trio.EndOfChannel`` once closed and drained."""
        return (await self._packets.get())[1]

    def close(self) -> None:
        """No more packets: wake the reader and the receiver (packets already in are still delivered)."""
        self._packets.close()

    def hand_over(self, handler: PacketHandler) -> None:
        """Close the inbox, and give ``handler`` what was waiting, in order.

        Raises what the handler raises; the packets after that one are dropped.
        """
        packets = self._packets
        packets.close()
        while True:
            try:
                seq, payload = packets.get_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            handler(seq, payload)


async def dispatch(transport: SSHClientTransport, event: PacketReceived) -> None:
    """Hand a packet to ``receive_packet()`` callers (before a handler is installed)."""
    kind = event.payload[0]
    if kind >= 80 and not transport.authenticated:
        # CVE-2023-46446: connection messages before authentication has succeeded.
        raise ProtocolError(f"{msg.message_name(kind)} received before authentication succeeded")
    if kind == msg.USERAUTH_SUCCESS:
        # Decided here, in packet order: the server may follow its success with
        # connection messages (sshd's hostkeys-00 request) before the task that
        # waits for the success has even run.
        transport.authenticated = True
    inbox = transport._inbox
    if inbox is not None and await inbox.put(event.seq, event.payload):
        return
    # A handler took over while we waited, or we are closing.
    if transport._packet_handler is not None:
        transport._packet_handler(event.seq, event.payload)
