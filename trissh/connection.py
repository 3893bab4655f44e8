""":class:`SSHConnection`: what an authenticated connection can do.

:func:`trissh.connect` (in :mod:`trissh._connect`) makes one; its methods are
short front-ends over the channel layer (:mod:`trissh._channels`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

from ._algorithms.hostkeys import PublicKey
from ._auth.userauth import AuthResult
from ._channels.direct import open_tcp_stream, open_unix_stream
from ._channels.launch import command_line, open_session, run_session
from ._channels.mux import ChannelMux
from ._channels.process_io import PIPE, OutputTarget
from ._channels.session import CompletedProcess, Process
from ._channels.streams import ChannelStream
from ._driver import SSHClientTransport
from ._public import public
from ._transport.negotiate import Negotiated

if TYPE_CHECKING:
    from ._algorithms.certificates import Certificate
    from ._forwarding.local import LocalForward
    from ._forwarding.remote import Destination, RemoteForward
    from .sftp import SFTPClient

__all__ = ["SSHConnection"]

log = logging.getLogger("trissh.connection")


@public
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
        #: Environment variables every session started here gets (the config's SendEnv and SetEnv),
        #: under those a call passes in ``env``.
        self.session_env: dict[str, str] = {}

    def __repr__(self) -> str:
        # For a log line: who, where, whether it is still usable, and what protects it (nothing secret).
        transport = self._transport
        user = f"{self.auth.username}@" if self.auth.username else ""
        state = "closed" if transport.is_closed else "open"
        negotiated = transport.negotiated
        if negotiated is not None:
            state += f", {negotiated.kex}, {negotiated.client_to_server.cipher}"
        return f"<trissh.SSHConnection {user}{transport._where} {state}>"

    def _env(self, env: Mapping[str, str] | None) -> Mapping[str, str] | None:
        if not self.session_env:
            return env
        return {**self.session_env, **(env or {})}

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
    def server_host_keys(self) -> tuple[PublicKey, ...]:
        """All the host keys the server says it has (``hostkeys-00@openssh.com``, OpenSSH PROTOCOL §2.5).

        Empty until the server sends them (sshd does right after authentication) or if it never does.
        These are the server's **unverified claims**: it has not proved it holds them, and trissh
        neither trusts them nor writes them to known_hosts. Malformed or unsupported keys are left out.
        """
        return self._mux.server_host_keys

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
        command: str | Sequence[str],
        *,
        check: bool = False,
        input: bytes | bytearray | memoryview = b"",
        env: Mapping[str, str] | None = None,
        term_type: str | None = None,
        term_size: tuple[int, ...] | None = None,
        term_modes: Mapping[str | int, int] | None = None,
        stdout: OutputTarget = PIPE,
        stderr: OutputTarget = PIPE,
        forward_agent: bool | None = None,
    ) -> CompletedProcess:
        """Run ``command`` to completion and return its output and exit status.

        Args:
            command: a command line, or a sequence of arguments (joined with
                :func:`shlex.join`, so spaces and quotes arrive intact).
            check: raise :class:`ProcessError` if it exits non-zero or by a signal.
            input: bytes for its standard input, which is then closed.
            env: environment variables to ask for (the server may ignore them:
                sshd accepts only those its ``AcceptEnv`` lists).
            term_type, term_size, term_modes: allocate a pseudo-terminal
                (``term_modes``: RFC 4254 §8 modes by name or opcode, e.g. ``{"ECHO": 0}``).
            stdout, stderr: :data:`trissh.PIPE` (collect, the default),
                :data:`trissh.DEVNULL`, :data:`trissh.STDOUT` (stderr only:
                merged into stdout), or a Trio ``SendStream``/async file to copy into.
            forward_agent: forward the local agent to this command; default:
                when ``connect(forward_agent=True)``.

        If cancelled, the command is sent ``TERM`` and its channel closed (see docs/processes.md).

        Raises:
            ProcessError: with ``check=True``, for a failed command.
            ValueError, TypeError: a bad command, target or terminal argument.
            ConnectionLost, ProtocolError, DisconnectError: the connection broke
                before the command finished; its partial output is not returned.
        """
        return await run_session(
            self._mux,
            command,
            check=check,
            input=input,
            stdout=stdout,
            stderr=stderr,
            env=self._env(env),
            term_type=term_type,
            term_size=term_size,
            term_modes=term_modes,
            forward_agent=self._mux.agent_forwarding if forward_agent is None else forward_agent,
        )

    @asynccontextmanager
    async def open_process(
        self,
        command: str | Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        term_type: str | None = None,
        term_size: tuple[int, ...] | None = None,
        term_modes: Mapping[str | int, int] | None = None,
        subsystem: str | None = None,
        stdout: OutputTarget = PIPE,
        stderr: OutputTarget = PIPE,
        forward_agent: bool | None = None,
    ) -> AsyncIterator[Process]:
        """Start ``command`` (or ``subsystem``) and yield a :class:`Process` with Trio streams.

        ``stdout``/``stderr``: :data:`trissh.PIPE` (read ``process.stdout`` /
        ``.stderr``), :data:`trissh.DEVNULL`, :data:`trissh.STDOUT` (stderr
        only), or a stream/async file that trissh copies into while the block runs.

        Leaving the block while the command still runs (cancellation included)
        sends it ``TERM`` and closes the channel.
        """
        name = subsystem if subsystem is not None else command_line(command)
        async with open_session(
            self._mux,
            name,
            stdout=stdout,
            stderr=stderr,
            subsystem=subsystem is not None,
            env=self._env(env),
            term_type=term_type,
            term_size=term_size,
            term_modes=term_modes,
            forward_agent=self._mux.agent_forwarding if forward_agent is None else forward_agent,
        ) as process:
            yield process

    @asynccontextmanager
    async def open_shell(
        self,
        *,
        term_type: str | None = "xterm",
        term_size: tuple[int, ...] | None = (80, 24),
        term_modes: Mapping[str | int, int] | None = None,
        env: Mapping[str, str] | None = None,
        stdout: OutputTarget = PIPE,
        stderr: OutputTarget = PIPE,
        forward_agent: bool | None = None,
    ) -> AsyncIterator[Process]:
        """Start the user's login shell (RFC 4254 §6.5 ``shell``), on a pty unless ``term_type=None``.

        Yields a :class:`Process`: write commands to ``stdin``, read ``stdout``
        (on a terminal, stderr arrives there too), resize with
        :meth:`Process.resize_terminal`. X11 forwarding is never requested.
        """
        async with open_session(
            self._mux,
            "",
            stdout=stdout,
            stderr=stderr,
            shell=True,
            env=self._env(env),
            term_type=term_type,
            term_size=term_size if term_type is not None else None,
            term_modes=term_modes,
            forward_agent=self._mux.agent_forwarding if forward_agent is None else forward_agent,
        ) as process:
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

    def forward_local_port(
        self, listen_host: str, listen_port: int, dest_host: str, dest_port: int
    ) -> AbstractAsyncContextManager[LocalForward]:
        """Listen on ``listen_host:listen_port`` here; carry each connection to ``dest_host:dest_port``
        as the server connects to it (``ssh -L``). An async context manager yielding a :class:`LocalForward`.

        ``listen_host``: an address or a name (``"localhost"`` listens on 127.0.0.1 and ::1), or ``""``
        for every interface. ``listen_port`` 0 lets the system choose: ``forward.port`` says which.
        Each accepted connection is carried by a task of its own; one whose channel the server refuses
        is closed (and logged), and the others carry on. Leaving the block closes the listener and
        every connection it carries; when the SSH connection ends, the listener closes.

        Raises:
            ForwardingError: the address cannot be listened on.
        """
        from ._forwarding import local as _local  # loaded on first use: most connections never forward

        return _local.forward_local_port(self._mux, listen_host, listen_port, dest_host, dest_port)

    def forward_local_unix(
        self, listen_path: str | os.PathLike[str], dest_path: str | os.PathLike[str]
    ) -> AbstractAsyncContextManager[LocalForward]:
        """Listen on the unix socket ``listen_path`` here; carry each connection to the unix socket
        ``dest_path`` on the server (``ssh -L /here:/there``, ``direct-streamlocal@openssh.com``).

        A stale socket file at ``listen_path`` is replaced (anything else there is an error); the socket
        is removed when the block ends. Otherwise as :meth:`forward_local_port`.
        """
        from ._forwarding import local as _local

        return _local.forward_local_unix(self._mux, listen_path, dest_path)

    def forward_remote_port(
        self, listen_host: str, listen_port: int, destination: Destination
    ) -> AbstractAsyncContextManager[RemoteForward]:
        """Ask the server to listen on ``listen_host:listen_port`` (``ssh -R``, ``tcpip-forward``) and carry
        each connection it accepts to ``destination``: a local ``(host, port)``, a local unix socket
        path, or an async ``handler(stream)`` that takes over the connection as a :class:`ChannelStream`.

        ``listen_host`` as sshd reads it: ``"localhost"`` (loopback), ``""`` or ``"*"`` (every
        interface, if its ``GatewayPorts`` allows), or an address. ``listen_port`` 0: the server
        chooses, and ``forward.port`` says which. A destination that refuses a connection gets its
        channel refused; a handler's exception ends the forwarding and comes out of the block. Leaving
        the block sends ``cancel-tcpip-forward`` and closes what is still open.

        Raises:
            ForwardingError: the server refused to listen (sshd: ``AllowTcpForwarding``, a port in use).
        """
        from ._forwarding import remote as _remote

        return _remote.forward_remote_port(self._mux, listen_host, listen_port, destination)

    def forward_remote_unix(
        self, listen_path: str, destination: Destination
    ) -> AbstractAsyncContextManager[RemoteForward]:
        """Ask the server to listen on the unix socket ``listen_path`` (``streamlocal-forward@openssh.com``)
        and carry each connection to ``destination``, as :meth:`forward_remote_port` does.

        sshd refuses when the path exists, unless its ``StreamLocalBindUnlink`` is ``yes``.

        Raises:
            ForwardingError: the server refused.
        """
        from ._forwarding import remote as _remote

        return _remote.forward_remote_unix(self._mux, listen_path, destination)

    def forward_socks(self, listen_host: str, listen_port: int) -> AbstractAsyncContextManager[LocalForward]:
        """Dynamic forwarding (``ssh -D``): a SOCKS server on ``listen_host:listen_port`` here, each client's
        CONNECT carried to the host it names as the server connects to it.

        SOCKS4, SOCKS4a and SOCKS5 (CONNECT, no authentication; names resolved by the server with
        SOCKS4a and SOCKS5 domain requests). A client that speaks anything else is closed, with the
        reason logged on ``trissh.forwarding``. Otherwise as :meth:`forward_local_port`.
        """
        from ._forwarding import local as _local

        return _local.forward_socks(self._mux, listen_host, listen_port)

    def open_sftp(self, *, subsystem: str = "sftp") -> AbstractAsyncContextManager[SFTPClient]:
        """An SFTP session (version 3, with OpenSSH's extensions): ``async with conn.open_sftp() as sftp``.

        Leaving the block closes the session; handles still open are closed by the server. See
        :class:`trissh.sftp.SFTPClient` and docs/sftp.md.
        """
        from .sftp._open import open_sftp  # imported when used: the CLI's start-up does not pay for it

        return open_sftp(self._mux, subsystem)

    async def rekey(self) -> None:
        """Start a new key exchange now and wait for it to complete."""
        await self._transport.rekey()

    async def aclose(self) -> None:
        """Close the connection (``connect()``'s block does this on exit)."""
        await self._transport.aclose()
