""":class:`SSHConnection`: what an authenticated connection can do.

:func:`trissh.connect` (in :mod:`trissh._connect`) makes one; its methods are
short front-ends over the channel layer (:mod:`trissh._channels`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import trio

from ._algorithms.certificates import Certificate
from ._algorithms.hostkeys import PublicKey
from ._auth.userauth import AuthResult
from ._channels.direct import open_tcp_stream, open_unix_stream
from ._channels.mux import ChannelMux
from ._channels.open import channel_opened
from ._channels.session import CompletedProcess, Process, SessionChannel
from ._channels.streams import ChannelStream
from ._driver import SSHClientTransport
from ._errors import (
    ProcessError,
)
from ._transport.negotiate import Negotiated

__all__ = ["SSHConnection"]

log = logging.getLogger("trissh.connection")


class SSHConnection:
    """An authenticated SSH connection. Made by :func:`connect`; use it inside its block.

    Attributes:
        host_key: the server's host key (:class:`PublicKey`); for a host certificate, the key it certifies.
        host_certificate: the server's host :class:`Certificate`, or None when it used a plain key.
        server_version: the server's version string.
        negotiated: the algorithms agreed, per direction (:class:`Negotiated`).
        auth: how authentication went (method, banners).
    """

    def __init__(self, transport: SSHClientTransport, auth: AuthResult | None = None) -> None:
        """Run the connection protocol over ``transport``, which must be authenticated.

        :func:`connect` makes these; low-level users who authenticated
        themselves may too (``auth`` then says nothing unless given).
        """
        self._transport = transport
        self._mux = ChannelMux(transport)
        self.auth = auth or AuthResult()

    @property
    def host_key(self) -> PublicKey:
        key = self._transport.host_key
        assert key is not None
        return key

    @property
    def host_certificate(self) -> Certificate | None:
        """The server's host certificate, if it presented one (``host_key`` is the key it certifies)."""
        return self._transport.host_certificate

    @property
    def server_version(self) -> str:
        return self._transport.server_version or ""

    @property
    def negotiated(self) -> Negotiated:
        negotiated = self._transport.negotiated
        assert negotiated is not None
        return negotiated

    @property
    def transport(self) -> SSHClientTransport:
        """The low-level transport, for Conch-style use."""
        return self._transport

    @property
    def is_closed(self) -> bool:
        return self._transport.is_closed

    async def run(
        self,
        command: str,
        *,
        check: bool = False,
        input: bytes | bytearray | memoryview = b"",
        env: Mapping[str, str] | None = None,
        term_type: str | None = None,
        term_size: tuple[int, ...] | None = None,
        forward_agent: bool | None = None,
    ) -> CompletedProcess:
        """Run ``command`` to completion and return its output and exit status.

        Args:
            check: raise :class:`ProcessError` if it exits non-zero or by a signal.
            input: bytes for its standard input, which is then closed.
            env: environment variables to ask for (the server may ignore them:
                sshd accepts only those its ``AcceptEnv`` lists).
            term_type, term_size: allocate a pseudo-terminal.
            forward_agent: forward the local agent to this command; default:
                when ``connect(forward_agent=True)``.

        Raises:
            ProcessError: with ``check=True``, for a failed command.
            ConnectionLost, ProtocolError, DisconnectError: the connection broke
                before the command finished; its partial output is not returned.
        """
        async with self.open_process(
            command, env=env, term_type=term_type, term_size=term_size, forward_agent=forward_agent
        ) as process:
            channel = process.channel
            channel.collect = True  # we keep all output, so grant window as it arrives
            try:
                if input:
                    await process.stdin.send_all(input)
                await process.stdin.send_eof()
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass  # the command ended without reading all its input; as with ssh(1)
            returncode = await process.wait()
            result = CompletedProcess(
                command, returncode, channel.take_all(0), channel.take_all(1), channel.exit_signal
            )
        if check and (returncode != 0):
            raise ProcessError(command, returncode, result.stdout, result.stderr, result.exit_signal)
        return result

    @asynccontextmanager
    async def open_process(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        term_type: str | None = None,
        term_size: tuple[int, ...] | None = None,
        subsystem: str | None = None,
        forward_agent: bool | None = None,
    ) -> AsyncIterator[Process]:
        """Start ``command`` (or ``subsystem``) and yield a :class:`Process` with Trio streams.

        Leaving the block closes the channel if the command is still running.
        """
        async with channel_opened(self._mux, "session", factory=SessionChannel) as channel:
            process = Process(channel, subsystem if subsystem is not None else command)
            await process.start(
                subsystem=subsystem is not None,
                env=env,
                term_type=term_type,
                term_size=term_size,
                forward_agent=self._mux.agent_forwarding if forward_agent is None else forward_agent,
            )
            yield process

    async def open_tcp_stream(self, host: str, port: int) -> ChannelStream:
        """A Trio stream to ``host:port``, connected to by the server (``direct-tcpip``, like ``ssh -W``).

        The stream is a :class:`trio.abc.HalfCloseableStream`: ``send_eof()``
        half-closes, ``aclose()`` closes the channel.

        Raises:
            ChannelOpenError: the server refused or could not connect (its reason code and text).
        """
        return await open_tcp_stream(self._mux, host, port)

    async def open_unix_stream(self, path: str | os.PathLike[str]) -> ChannelStream:
        """A Trio stream to the unix socket ``path`` on the server (``direct-streamlocal@openssh.com``).

        Raises:
            ChannelOpenError: the server refused (sshd: ``AllowStreamLocalForwarding``) or could not connect.
        """
        return await open_unix_stream(self._mux, path)

    async def rekey(self) -> None:
        """Start a new key exchange now and wait for it to complete."""
        await self._transport.rekey()

    async def aclose(self) -> None:
        """Close the connection (``connect()``'s block does this on exit)."""
        await self._transport.aclose()
