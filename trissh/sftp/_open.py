"""``SSHConnection.open_sftp()``: the ``sftp`` subsystem on a new session channel, as an SFTPClient."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .._channels.launch import open_nursery_unwrapped, open_session
from .._channels.mux import ChannelMux
from .._channels.process_io import DEVNULL, PIPE
from ._client import SFTPClient
from ._session import SFTPSession

__all__ = ["open_sftp"]


@asynccontextmanager
async def open_sftp(mux: ChannelMux, subsystem: str = "sftp") -> AsyncIterator[SFTPClient]:
    """Start the SFTP subsystem, negotiate version 3, ask for the server's limits, yield the client.

    Leaving the block closes the channel: the server closes every handle still open.
    """
    async with open_session(
        mux, subsystem, stdout=PIPE, stderr=DEVNULL, subsystem=True, env=None, term_type=None, term_size=None
    ) as process:
        session = SFTPSession(process)
        async with open_nursery_unwrapped() as nursery:
            try:
                await session.start(nursery)
                client = SFTPClient(session, mux.transport.server_version or "")
                await client._setup()
                yield client
            finally:
                session.close()
                nursery.cancel_scope.cancel()
