"""The front door: :func:`connect` and :class:`SSHConnection`.

``connect()`` opens the TCP stream, starts the transport's reader and writer
tasks in a nursery of its own, checks the host key, authenticates, and yields
an :class:`SSHConnection`. Leaving the ``async with`` block (normally, by an
exception, or by cancellation) closes the connection: queued data is flushed
(when cancelled, only what the socket takes at once), a DISCONNECT sent, the
socket closed, and every task of ours has ended before the block exits.
Errors come out as the trissh error they are, never wrapped in an
ExceptionGroup of our tasks.
"""

from __future__ import annotations

import getpass
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Final

import trio

from ._algorithms.hostkeys import PublicKey
from ._algorithms.kex import GexBits
from ._auth.host_key_check import HostKeyPolicy, host_key_preferences, make_host_key_verifier
from ._auth.keys import PrivateKey, is_encrypted, load_private_key, read_key_file
from ._auth.known_hosts import KnownHosts, default_known_hosts_paths
from ._auth.userauth import AuthResult, PasswordSource, authenticate
from ._channels.channel import ChannelMux
from ._channels.session import CompletedProcess, Process, SessionChannel
from ._driver import SSHClientTransport
from ._errors import (
    ConnectionLost,
    KeyImportError,
    ProcessError,
)
from ._keepalive import keep_alive
from ._options import algorithm_preferences
from ._transport.negotiate import Negotiated
from ._transport.state import DEFAULT_REKEY_BYTES, Phase, TransportState

__all__ = ["ConnectTimeout", "SSHConnection", "connect"]

log = logging.getLogger("trissh.connection")

PassphraseSource = str | bytes | Callable[[str], Awaitable[str]] | None

_DEFAULT_KEY_NAMES: Final = ("id_ed25519", "id_ecdsa", "id_rsa")


class ConnectTimeout(ConnectionLost):
    """``connect()`` did not finish within ``connect_timeout``; the message says at which step."""


class _Default:
    """Marks a keyword left at its default (where None means something else)."""

    def __repr__(self) -> str:
        return "..."


_DEFAULT: Final = _Default()


class SSHConnection:
    """An authenticated SSH connection. Made by :func:`connect`; use it inside its block.

    Attributes:
        host_key: the server's host key (:class:`PublicKey`).
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
    ) -> CompletedProcess:
        """Run ``command`` to completion and return its output and exit status.

        Args:
            check: raise :class:`ProcessError` if it exits non-zero or by a signal.
            input: bytes for its standard input, which is then closed.
            env: environment variables to ask for (the server may ignore them:
                sshd accepts only those its ``AcceptEnv`` lists).
            term_type, term_size: allocate a pseudo-terminal.

        Raises:
            ProcessError: with ``check=True``, for a failed command.
            ConnectionLost, ProtocolError, DisconnectError: the connection broke
                before the command finished; its partial output is not returned.
        """
        async with self.open_process(command, env=env, term_type=term_type, term_size=term_size) as process:
            channel = process.channel
            channel.collect = True  # we keep all output, so grant window as it arrives
            try:
                if input:
                    await process.stdin.send_all(input)
                await process.stdin.send_eof()
            except trio.ClosedResourceError:
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
    ) -> AsyncIterator[Process]:
        """Start ``command`` (or ``subsystem``) and yield a :class:`Process` with Trio streams.

        Leaving the block closes the channel if the command is still running.
        """
        if self._transport.error is not None:
            raise self._transport.error
        channel = self._mux.add(SessionChannel, "session")
        assert isinstance(channel, SessionChannel)
        process = Process(channel, subsystem if subsystem is not None else command)
        try:
            await self._transport.send_packet(channel.open_payload())
            await process.start(
                subsystem=subsystem is not None, env=env, term_type=term_type, term_size=term_size
            )
            yield process
        finally:
            self._abandon(channel)

    def _abandon(self, channel: SessionChannel) -> None:
        """Close a channel we are done with, without waiting (safe under cancellation)."""
        if channel.is_closed or channel.close_sent or self._transport.error is not None:
            return
        if not channel.opened.is_set():
            # Not yet confirmed: CLOSE it as soon as the confirmation comes.
            channel.close_on_open = True
            return
        channel.send_close_nowait()

    async def rekey(self) -> None:
        """Start a new key exchange now and wait for it to complete."""
        await self._transport.rekey()

    async def aclose(self) -> None:
        """Close the connection (``connect()``'s block does this on exit)."""
        await self._transport.aclose()


async def _load_keys(client_keys: object, passphrase: PassphraseSource) -> list[PrivateKey]:
    """Explicit keys load or fail loudly; default key files are skipped when absent or locked."""
    defaults = isinstance(client_keys, _Default)
    items: list[object]
    if defaults:
        ssh_dir = Path.home() / ".ssh"
        items = [ssh_dir / name for name in _DEFAULT_KEY_NAMES if (ssh_dir / name).exists()]
    elif client_keys is None:
        return []
    elif isinstance(client_keys, PrivateKey | str | os.PathLike):
        items = [client_keys]
    else:
        items = list(client_keys)  # type: ignore[call-overload]
    keys: list[PrivateKey] = []
    for item in items:
        if isinstance(item, PrivateKey):
            keys.append(item)
            continue
        path = os.fspath(item)  # type: ignore[call-overload]
        try:
            key = await _load_key_file(path, passphrase, skip_locked=defaults)
        except KeyImportError as exc:
            if not defaults:
                raise
            log.debug("skipping default key %s: %s", path, exc)
            continue
        if key is not None:
            keys.append(key)
    return keys


async def _load_key_file(path: str, passphrase: PassphraseSource, *, skip_locked: bool) -> PrivateKey | None:
    data = read_key_file(path)
    if not is_encrypted(data):
        return load_private_key(path)  # fast: no key derivation, no thread needed
    if passphrase is None:
        if skip_locked:
            log.debug("skipping encrypted default key %s: no passphrase given", path)
            return None
        return load_private_key(path)  # raises KeyImportError: a passphrase is needed
    secret = passphrase if isinstance(passphrase, str | bytes) else await passphrase(path)
    # bcrypt's key derivation is deliberately slow: keep it off the event loop.
    return await trio.to_thread.run_sync(load_private_key, path, secret)


def _known_hosts(known_hosts: object) -> KnownHosts | None:
    if isinstance(known_hosts, _Default):
        return KnownHosts.load(default_known_hosts_paths())
    if known_hosts is None:
        return None
    if isinstance(known_hosts, KnownHosts):
        return known_hosts
    if isinstance(known_hosts, str | os.PathLike):
        return KnownHosts.load([known_hosts])
    return KnownHosts.load(known_hosts)  # type: ignore[arg-type]


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception a nursery of ours wrapped, so the caller never sees a group."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    distinct = list({id(e): e for e in leaves}.values())
    if len(distinct) == 1:
        return distinct[0]
    # Prefer the caller's own error over a cancellation caused by it.
    real = [e for e in distinct if not isinstance(e, trio.Cancelled)]
    if len(real) == 1:
        return real[0]
    return group


@asynccontextmanager
async def connect(
    host: str,
    port: int = 22,
    *,
    username: str | None = None,
    password: PasswordSource = None,
    client_keys: object = _DEFAULT,
    passphrase: PassphraseSource = None,
    known_hosts: object = _DEFAULT,
    host_key_policy: HostKeyPolicy = "strict",
    kex_algs: Sequence[str] | None = None,
    host_key_algs: Sequence[str] | None = None,
    ciphers: Sequence[str] | None = None,
    macs: Sequence[str] | None = None,
    compression: bool | Sequence[str] | None = None,
    gex_bits: GexBits | tuple[int, int, int] | None = None,
    rekey_bytes: int | None = None,
    rekey_seconds: float | None = 3600.0,
    connect_timeout: float | None = 30.0,
    keepalive_interval: float | None = None,
    keepalive_count_max: int = 3,
) -> AsyncIterator[SSHConnection]:
    """Connect, verify the host key, authenticate, and yield an :class:`SSHConnection`.

    Args:
        host, port: where to connect.
        username: default: the local user name.
        password: a password, or an async callable returning one; tried after keys.
        client_keys: private key paths or :class:`PrivateKey` objects; default:
            ``~/.ssh/id_ed25519``, ``id_ecdsa``, ``id_rsa`` where present; ``[]`` for none.
        passphrase: for encrypted keys: a string, or an async callable ``(path) -> str``.
        known_hosts: a path, paths, or a :class:`KnownHosts`; default:
            ``~/.ssh/known_hosts`` and ``/etc/ssh/ssh_known_hosts``. ``None``
            disables host key checking (explicit and insecure).
        host_key_policy: for a host with no known key: ``"strict"`` refuses,
            ``"accept-new"`` records it (in ``known_hosts`` if it is one path),
            or an async callable ``(host, port, key) -> bool`` decides. A changed
            or revoked key is always refused.
        kex_algs, host_key_algs, ciphers, macs: preference lists (most preferred
            first); only supported names are allowed. Defaults follow OpenSSH;
            legacy algorithms (SHA-1, CBC, ``ssh-rsa``) are used only when named.
        compression: True to ask for zlib compression (``zlib@openssh.com``,
            which starts after authentication, then ``zlib``), or a list of
            names; default: none. Worth it on slow links only: it costs CPU on
            every packet.
        gex_bits: for Diffie-Hellman group exchange, the (minimum, preferred,
            maximum) group size in bits; default (2048, 3072, 8192). A server
            offering a group below the minimum is refused.
        rekey_bytes: start a new key exchange after this many bytes either way
            (default 1 GiB); rekey_seconds: ... after this long (default 1 hour).
        connect_timeout: seconds for TCP connect, key exchange and authentication.
        keepalive_interval: after this many seconds with nothing from the server,
            send a ``keepalive@openssh.com`` request (OpenSSH's
            ServerAliveInterval); None: never. keepalive_count_max: end the
            connection with :class:`ConnectionLost` when this many go
            unanswered in a row (ServerAliveCountMax, default 3).

    Raises:
        HostKeyNotVerifiable, PermissionDenied, ConnectTimeout, ConnectionLost,
        ProtocolError, DisconnectError, KeyImportError.
    """
    user = username or getpass.getuser()
    if keepalive_interval is not None and not keepalive_interval > 0:
        raise ValueError(f"keepalive_interval must be positive, got {keepalive_interval}")
    if keepalive_count_max < 0:
        raise ValueError(f"keepalive_count_max must be 0 or more, got {keepalive_count_max}")
    known = _known_hosts(known_hosts)
    prefs = algorithm_preferences(
        kex_algs=kex_algs, host_key_algs=host_key_algs, ciphers=ciphers, macs=macs, compression=compression
    )
    prefs = replace(
        prefs,
        host_key=host_key_preferences(list(prefs.host_key), known, host, port, host_key_algs is not None),
    )
    state = TransportState(
        prefs,
        rekey_bytes=rekey_bytes or DEFAULT_REKEY_BYTES,
        gex_bits=GexBits.of(gex_bits),
    )
    keys = await _load_keys(client_keys, passphrase)
    verifier = make_host_key_verifier(known, host_key_policy, known_hosts, host, port)

    try:
        async with trio.open_nursery() as nursery:
            connection = await _establish(
                nursery,
                host,
                port,
                user,
                state,
                keys,
                password,
                verifier,
                rekey_seconds,
                connect_timeout,
            )
            # Keep nothing alive for the connection's lifetime that it does not need.
            del keys, verifier, known, prefs
            if keepalive_interval is not None:
                nursery.start_soon(
                    keep_alive,
                    connection._transport,
                    connection._mux,
                    keepalive_interval,
                    keepalive_count_max,
                )
            try:
                yield connection
            finally:
                await connection.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise _unwrap(group) from None


async def _establish(
    nursery: trio.Nursery,
    host: str,
    port: int,
    user: str,
    state: TransportState,
    keys: list[PrivateKey],
    password: PasswordSource,
    verifier: Callable[[PublicKey], Awaitable[bool]],
    rekey_seconds: float | None,
    connect_timeout: float | None,
) -> SSHConnection:
    stage = "TCP connect"
    transport: SSHClientTransport | None = None
    try:
        with trio.fail_after(connect_timeout if connect_timeout is not None else float("inf")):
            try:
                stream = await trio.open_tcp_stream(host, port)
            except OSError as exc:
                raise ConnectionLost(f"cannot connect to {host}:{port}: {exc}") from exc
            transport = SSHClientTransport(
                stream, state, host=host, port=port, host_key_verifier=verifier, rekey_seconds=rekey_seconds
            )
            transport.start(nursery)
            stage = "key exchange"
            await transport.wait_secure()
            stage = "authentication"
            auth = await authenticate(transport, user, keys, password)
            return SSHConnection(transport, auth)
    except trio.TooSlowError:
        if transport is not None and transport.state.phase is Phase.VERSION:
            stage = "waiting for the server's version line"
        error = ConnectTimeout(f"timed out after {connect_timeout} s connecting to {host}:{port} ({stage})")
        if transport is not None:
            await transport.aclose()
        raise error from None
    except BaseException:
        if transport is not None:
            with trio.CancelScope(shield=True):
                await transport.aclose()
        raise
