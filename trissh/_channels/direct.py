"""Streams to places the server can reach: ``direct-tcpip`` (RFC 4254 §7.2) and
``direct-streamlocal@openssh.com`` (OpenSSH PROTOCOL §2.4), each a :class:`ChannelStream`."""

from __future__ import annotations

import os

from .._wire import string, uint32
from .mux import ChannelMux
from .open import open_channel
from .streams import ChannelStream

__all__ = ["open_tcp_stream", "open_unix_stream"]


async def open_tcp_stream(
    mux: ChannelMux, host: str, port: int, *, originator: tuple[str, int] = ("127.0.0.1", 0)
) -> ChannelStream:
    """A stream to ``host:port`` as connected to by the server (``ssh -W host:port``).

    ``originator`` is the address the connection claims to come from (RFC
    4254 §7.2: informational; sshd logs it).
    """
    if not 0 <= port < 65536:
        raise ValueError(f"port must be 0..65535, got {port}")
    extra = string(host) + uint32(port) + string(originator[0]) + uint32(originator[1])
    return ChannelStream(await open_channel(mux, "direct-tcpip", extra))


async def open_unix_stream(mux: ChannelMux, path: str | os.PathLike[str]) -> ChannelStream:
    """A stream to the unix socket ``path`` on the server."""
    # PROTOCOL §2.4: string socket path, string reserved, uint32 reserved.
    extra = string(os.fsencode(path)) + string("") + uint32(0)
    return ChannelStream(await open_channel(mux, "direct-streamlocal@openssh.com", extra))
