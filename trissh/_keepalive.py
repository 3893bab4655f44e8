"""Keepalive: OpenSSH's ``ServerAliveInterval`` / ``ServerAliveCountMax`` for trissh connections.

After every ``interval`` seconds in which nothing at all arrived from the
server, send a ``keepalive@openssh.com`` global request that asks for a reply
(any server answers it, if only with REQUEST_FAILURE). Anything received
resets the count; after ``count_max`` unanswered requests in a row the
connection ends with :class:`~trissh.ConnectionLost`, so a dead peer or path
is noticed within about ``interval * (count_max + 1)`` seconds instead of at
TCP's timeout, hours later.
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
    seen = transport.bytes_received
    while not transport.is_closed:
        await trio.sleep(interval)
        if transport.bytes_received != seen:
            seen = transport.bytes_received
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
