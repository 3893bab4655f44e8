"""Keepalive: OpenSSH's ``ServerAliveInterval`` / ``ServerAliveCountMax`` for trissh connections.

After every ``interval`` seconds in which no complete packet arrived from the
server, send a ``keepalive@openssh.com`` global request that asks for a reply
(any server answers it, if only with REQUEST_FAILURE). A complete packet
resets the count; after ``count_max`` unanswered requests in a row the
connection ends with :class:`~trissh.ConnectionLost`, so a dead peer or path
is noticed within about ``interval * (count_max + 1)`` seconds instead of at
TCP's timeout, hours later.

Only whole packets are signs of life, as in OpenSSH (its packet layer clears
the count when it has read a packet, not a byte): a server that trickles a
packet that never completes, one byte at a time, must not keep the
connection alive forever.
"""

from __future__ import annotations

import trio

from ._channels.mux import ChannelMux
from ._driver import SSHClientTransport
from ._errors import ConnectionLost

__all__ = ["keep_alive"]

REQUEST: str = "keepalive@openssh.com"


def _ignore_reply(success: bool, data: bytes) -> None:
    """The reply's content does not matter: its arrival is the sign of life."""


async def keep_alive(transport: SSHClientTransport, mux: ChannelMux, interval: float, count_max: int) -> None:
    """Run until the connection ends (or ends it, when the server stops answering)."""
    unanswered = 0
    seen = transport.state.packets_received_mark
    while not transport.is_closed:
        await trio.sleep(interval)
        now = transport.state.packets_received_mark
        if now != seen:
            seen = now
            unanswered = 0
            continue
        if unanswered >= count_max:
            where = f"{transport.host}:{transport.port}" if transport.host else "the server"
            await transport.fail(
                ConnectionLost(
                    f"{where} did not answer {count_max} keepalive request(s) sent {interval:g} s apart"
                )
            )
            return
        if transport.is_closed:
            return
        unanswered += 1
        mux.send_global_request_nowait(REQUEST, on_reply=_ignore_reply)
