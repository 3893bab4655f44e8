"""The front door: :func:`connect`.

``connect()`` opens the TCP stream, starts the transport's reader and writer
tasks in a nursery of its own, checks the host key, authenticates, and yields
an :class:`~trissh.SSHConnection`. Leaving the ``async with`` block (normally,
by an exception, or by cancellation) closes the connection: queued data is
flushed (when cancelled, only what the socket takes at once), a DISCONNECT
sent, the socket closed, and every task of ours has ended before the block
exits. Errors come out as the trissh error they are, never wrapped in an
ExceptionGroup of our tasks.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import AsyncIterator, Generator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, NoReturn

import trio

from ._algorithms.hostkeys import PublicKey
from ._algorithms.kex import GexBits
from ._auth.exchange import BannerHandler
from ._auth.host_key_check import (
    HostKeyPolicy,
    KnownHostsArg,
    host_key_preferences,
    load_known_hosts,
    make_host_key_verifier,
)
from ._auth.key_sources import ClientKeysArg, KeySources, open_key_sources
from ._auth.known_hosts import KnownHosts
from ._auth.methods import AuthSettings, KbdintHandler, PasswordChangeHandler, PasswordSource
from ._auth.userauth import AuthResult, authenticate
from ._configured import ConfigArg, configured_hop, configured_options, load_config
from ._connect_options import DEFAULT, ConnectOptions, Default, PassphraseSource, build_options
from ._driver import HostKeyVerifier, SSHClientTransport
from ._errors import (
    ChannelOpenError,
    ConnectionLost,
    DisconnectError,
    ProtocolError,
    SSHError,
    exception_leaves,
)
from ._jump import jump_chain
from ._keepalive import keep_alive
from ._public import public
from ._transport.state import DEFAULT_REKEY_BYTES, Phase, TransportState
from .connection import SSHConnection

if TYPE_CHECKING:
    from ._algorithms.certificates import Certificate

__all__ = ["HANDSHAKE_TIMEOUT", "ConnectTimeout", "connect"]

log = logging.getLogger("trissh.connection")
log_auth = logging.getLogger("trissh.auth")

#: Seconds the version exchange and the first key exchange may take when ``connect_timeout`` is None, so
#: that a server which never sends its version line (or stalls the key exchange) cannot hang connect()
#: forever. Generous (a slow link does both in well under a second; sshd's LoginGraceTime is 120 s for all
#: of login); the host key check's own time is not counted, since a policy callback may ask a person.
HANDSHAKE_TIMEOUT: Final = 60.0


@public
class ConnectTimeout(ConnectionLost):
    """``connect()`` did not finish within ``connect_timeout``; the message says at which step."""


def _known_hosts(known_hosts: KnownHostsArg, policy: HostKeyPolicy) -> KnownHosts | None:
    # Explicit files must exist unless policy is accept-new (see load_known_hosts).
    return load_known_hosts(known_hosts, policy, default=isinstance(known_hosts, Default))


def _unwrap(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception a nursery of ours wrapped, so the caller never sees a group."""
    distinct = list({id(e): e for e in exception_leaves(group)}.values())
    if len(distinct) == 1:
        return distinct[0]
    # Prefer the caller's own error over a cancellation caused by it.
    real = [e for e in distinct if not isinstance(e, trio.Cancelled)]
    if len(real) == 1:
        return real[0]
    return group


def _connect_error(options: ConnectOptions, exc: OSError) -> ConnectionLost:
    """What ssh(1) would say: the reason of each failed attempt, not Trio's "all attempts failed"."""
    causes = exc.__cause__.exceptions if isinstance(exc.__cause__, BaseExceptionGroup) else ()
    # Trio words each attempt's error "Error connecting to (addr): Connection refused"; ssh(1) says only
    # the last part, which errno gives.
    reasons = [
        os.strerror(cause.errno) if cause.errno else str(cause)
        for cause in causes
        if isinstance(cause, OSError)
    ]
    reason = "; ".join(dict.fromkeys(reasons)) or (os.strerror(exc.errno) if exc.errno else str(exc))
    return ConnectionLost(f"cannot connect to {options.where}: {reason}")


class _AwaitedConnect:
    """What ``connect()`` returns: usable only with ``async with``; awaiting it says so."""

    __slots__ = ("_manager",)

    def __init__(self, manager: AbstractAsyncContextManager[SSHConnection]) -> None:
        self._manager = manager

    async def __aenter__(self) -> SSHConnection:
        return await self._manager.__aenter__()

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        return await self._manager.__aexit__(*exc_info)

    def __await__(self) -> Generator[Any, None, NoReturn]:
        raise TypeError(
            "trissh.connect() is an async context manager: use 'async with trissh.connect(...) as conn:' "
            "(the connection lives inside the block, and its tasks end when the block does)"
        )
        yield  # pragma: no cover  (makes this a generator)


@public
def connect(
    host: str,
    port: int | None = None,
    *,
    username: str | None = None,
    password: PasswordSource = None,
    client_keys: ClientKeysArg = DEFAULT,
    passphrase: PassphraseSource = None,
    agent_path: str | os.PathLike[str] | Default | None = DEFAULT,
    forward_agent: bool | None = None,
    known_hosts: KnownHostsArg = DEFAULT,
    host_key_policy: HostKeyPolicy | None = None,
    preferred_auth: Sequence[str] | str | None = None,
    kbdint_handler: KbdintHandler | None = None,
    password_change_handler: PasswordChangeHandler | None = None,
    banner_handler: BannerHandler | None = None,
    kex_algs: Sequence[str] | None = None,
    host_key_algs: Sequence[str] | None = None,
    ciphers: Sequence[str] | None = None,
    macs: Sequence[str] | None = None,
    compression: bool | Sequence[str] | None = None,
    gex_bits: GexBits | tuple[int, int, int] | None = None,
    rekey_bytes: int | None = None,
    rekey_seconds: float | Default | None = DEFAULT,
    connect_timeout: float | Default | None = DEFAULT,
    keepalive_interval: float | None = None,
    keepalive_count_max: int | None = None,
    tunnel: SSHConnection | None = None,
    proxy_jump: str | None = None,
    config: ConfigArg = DEFAULT,
) -> AbstractAsyncContextManager[SSHConnection]:
    """Connect, verify the host key, authenticate, and yield an :class:`SSHConnection`.

    Use it as ``async with trissh.connect(host) as conn:``.

    Args:
        host, port: where to connect: a name, an address or an ssh_config alias (its HostName is
            used); port default: the config's Port, else 22.
        username: default: the config's User, else the local user name.
        password: a password, or an async callable returning one (asked up to
            3 times); used by ``password`` and, without a ``kbdint_handler``,
            to answer a single hidden ``keyboard-interactive`` prompt.
        client_keys: private key paths, :class:`PrivateKey` objects, or
            ``(key, certificate)`` pairs; default: ``~/.ssh/id_ed25519``,
            ``id_ecdsa``, ``id_rsa`` where present; ``[]`` for none. Keys in
            the agent are offered first either way (``agent_path=None`` to not).
        passphrase: for encrypted keys: a string, or an async callable
            ``(path) -> str``, asked only when the server accepts the key.
        agent_path: the ssh-agent socket; default ``$SSH_AUTH_SOCK``; None: no agent.
        forward_agent: let the server's commands use the local agent
            (``ssh -A``); refused unless asked for.
        known_hosts: a path, paths, or a :class:`KnownHosts`; default:
            ``~/.ssh/known_hosts`` and ``/etc/ssh/ssh_known_hosts`` (which may
            be missing). Files named here must exist (FileNotFoundError), except
            with ``"accept-new"``. ``None`` disables host key checking (explicit
            and insecure). ``@cert-authority`` lines make host certificates
            from that CA trusted (see :attr:`SSHConnection.host_certificate`).
        host_key_policy: for a host with no known key: ``"strict"`` refuses,
            ``"accept-new"`` appends one hashed line for it to the first
            known_hosts file (creating it), or an async callable
            ``(host, port, key) -> bool`` decides. A changed or revoked key, or
            a certificate from a trusted CA that fails its checks, is always refused.
        preferred_auth: methods in the order to try them (OpenSSH's
            PreferredAuthentications); default ``publickey``,
            ``keyboard-interactive``, ``password``.
        kbdint_handler: ``async (name, instructions, prompts) -> answers`` for
            keyboard-interactive; ``prompts`` is a list of ``(text, echo)``.
        password_change_handler: ``async (prompt) -> new password``, when the
            server says the password has expired; without one that is a
            :class:`PermissionDenied`.
        banner_handler: ``async (text) -> None``, for the server's login banner
            (also logged at INFO on ``trissh.auth``).
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
            None: no overall bound, but the version and key exchange must still
            finish within ``trissh._connect.HANDSHAKE_TIMEOUT`` (60 s, the host
            key check's own time aside).
        keepalive_interval: after this many seconds with nothing from the server,
            send a ``keepalive@openssh.com`` request (OpenSSH's
            ServerAliveInterval); None: never. keepalive_count_max: end the
            connection with :class:`ConnectionLost` when this many go
            unanswered in a row (ServerAliveCountMax, default 3).
        tunnel: an open :class:`SSHConnection` to reach ``host:port`` through:
            the new connection runs over its ``direct-tcpip`` channel
            (:meth:`SSHConnection.open_tcp_stream`) instead of TCP. The host
            key is checked as usual, under ``host`` and ``port``. Leaving the
            block closes the channel, not ``tunnel``.
        proxy_jump: jump hosts, as OpenSSH's ``ProxyJump`` / ``ssh -J``:
            ``"user@jump1:22,jump2"`` (also ``ssh://user@host:port``; ``"none"``:
            no jump). Each hop is connected through the previous one and closed
            in reverse order when the block ends. Jump hosts use their own
            ``user@`` or the local user name (not ``username``), and the same
            keys, agent, known_hosts and policy; ``password`` and
            ``forward_agent`` are for the destination only. An error while
            connecting a hop says which (``"at jump host jump1:22 (hop 1 of
            2): ..."``) and has it in its ``hop`` attribute (``"jump1:22"``).

        config: ssh_config(5) to apply (see docs/config.md): by default ``~/.ssh/config`` then
            ``/etc/ssh/ssh_config``; a path or paths (instead of those); an :class:`SSHConfig`;
            None for none. Every keyword given here wins over it; it fills in the others (HostName,
            Port, User, IdentityFile, ProxyJump, ProxyCommand, HostKeyAlias, known-hosts files,
            StrictHostKeyChecking, algorithms, timeouts, keepalives, SendEnv/SetEnv, forwards).
            Where a keyword's default is shown above (``connect_timeout`` 30 s, ``rekey_seconds``
            1 hour, ``host_key_policy`` strict...), it is the default when the config sets nothing.

    Raises:
        HostKeyNotVerifiable, PermissionDenied, ConnectTimeout, ConnectionLost,
        ProtocolError, DisconnectError, KeyImportError, ChannelOpenError (the
        tunnel's server refused to connect to ``host:port``); ConfigError (a config line ssh
        would refuse, naming file and line); ValueError for
        settings that make no sense (checked before anything is sent), such as
        ``tunnel`` with ``proxy_jump``.
    """
    if tunnel is not None and not isinstance(tunnel, SSHConnection):
        raise TypeError(f"tunnel must be an SSHConnection, got {type(tunnel).__name__}")
    arguments: dict[str, object] = {
        "port": port,
        "username": username,
        "password": password,
        "client_keys": client_keys,
        "passphrase": passphrase,
        "agent_path": agent_path,
        "forward_agent": forward_agent,
        "known_hosts": known_hosts,
        "host_key_policy": host_key_policy,
        "preferred_auth": preferred_auth,
        "kbdint_handler": kbdint_handler,
        "password_change_handler": password_change_handler,
        "banner_handler": banner_handler,
        "kex_algs": kex_algs,
        "host_key_algs": host_key_algs,
        "ciphers": ciphers,
        "macs": macs,
        "compression": compression,
        "gex_bits": gex_bits,
        "rekey_bytes": rekey_bytes,
        "rekey_seconds": rekey_seconds,
        "connect_timeout": connect_timeout,
        "keepalive_interval": keepalive_interval,
        "keepalive_count_max": keepalive_count_max,
        "tunnel": tunnel,
        "proxy_jump": proxy_jump,
    }
    # What the caller gave wins over the config. "Not given" is DEFAULT where None means something
    # (no agent, no host key checking, no timeout), None elsewhere.
    given = {
        key: value
        for key, value in arguments.items()
        if not isinstance(value, Default) and (value is not None or key in _NONE_IS_A_VALUE)
    }
    options = build_options(host, given)  # checked now, before anything is read or sent
    if config is None:
        return _AwaitedConnect(_connect_options(options))
    return _AwaitedConnect(_configured(host, given, config))


# connect() keywords whose default is DEFAULT: passing None is a choice of its own.
_NONE_IS_A_VALUE: Final = frozenset(
    {"client_keys", "agent_path", "known_hosts", "rekey_seconds", "connect_timeout"}
)


def _connect_options(options: ConnectOptions) -> AbstractAsyncContextManager[SSHConnection]:
    if options.proxy_jump:
        # Hops connect through this function too: a first hop's own ProxyJump (from the config) nests.
        return jump_chain(options, _connect_options, prepare_hop=configured_hop if options.config else None)
    return _connected(options)


@asynccontextmanager
async def _configured(host: str, given: dict[str, object], config: ConfigArg) -> AsyncIterator[SSHConnection]:
    """connect() with ssh_config applied: the files read and the host resolved in a worker thread
    (disk, and ``Match exec`` when allowed), then connect as usual."""
    loaded = await trio.to_thread.run_sync(load_config, config)
    options = await configured_options(loaded, host, given)
    async with _connect_options(options) as connection:
        yield connection


@asynccontextmanager
async def _connected(options: ConnectOptions) -> AsyncIterator[SSHConnection]:
    known = _known_hosts(options.known_hosts, options.host_key_policy)
    key_name = options.host_key_alias or options.host  # what known_hosts knows the host as
    prefs = replace(
        options.algorithms,
        host_key=host_key_preferences(
            list(options.algorithms.host_key), known, key_name, options.port, options.host_key_algs_given
        ),
    )
    state = TransportState(
        prefs, rekey_bytes=options.rekey_bytes or DEFAULT_REKEY_BYTES, gex_bits=options.gex_bits
    )
    verifier = make_host_key_verifier(
        known, options.host_key_policy, options.known_hosts, key_name, options.port
    )
    try:
        async with trio.open_nursery() as nursery:
            connection = await _establish(nursery, options, state, verifier)
            # Keep nothing alive for the connection's lifetime that it does not need.
            del verifier, known, prefs
            if options.keepalive_interval is not None:
                nursery.start_soon(
                    keep_alive,
                    connection._transport,
                    connection._mux,
                    options.keepalive_interval,
                    options.keepalive_count_max,
                )
            try:
                if options.forward_agent:
                    connection._mux.enable_agent_forwarding(nursery, options.forwarded_agent_path)
                connection.session_env = dict(options.session_env or {})
                async with _config_forwards(connection, options):
                    yield connection
            finally:
                await connection.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        error = _unwrap(group)
        # Hide the group, keep the error's own cause (the OSError behind a refused connection).
        raise error from error.__cause__


def _config_forwards(connection: SSHConnection, options: ConnectOptions) -> AbstractAsyncContextManager[None]:
    """The config's LocalForward, RemoteForward and DynamicForward, open as long as the connection."""
    if not any(options.forwards):
        return nullcontext()
    from ._forwarding.specs import open_forwards

    local, remote, dynamic = options.forwards
    return open_forwards(connection, local, remote, dynamic)


class _HandshakeBound:
    """:data:`HANDSHAKE_TIMEOUT` as a cancel scope, paused while the host key is being judged."""

    def __init__(self, verifier: HostKeyVerifier) -> None:
        self.scope = trio.CancelScope()  # its deadline is set when the handshake is awaited
        self._verifier = verifier

    async def __call__(self, key: PublicKey, certificate: Certificate | None = None, /) -> bool:
        left = self.scope.deadline - trio.current_time()
        self.scope.deadline = math.inf
        try:
            if certificate is None:  # the verifier may take one argument only (see verify_host_key)
                return await self._verifier(key)
            return await self._verifier(key, certificate)
        finally:
            self.scope.deadline = trio.current_time() + left


async def _establish(
    nursery: trio.Nursery,
    options: ConnectOptions,
    state: TransportState,
    verifier: HostKeyVerifier,
) -> SSHConnection:
    stage = "loading keys"
    transport: SSHClientTransport | None = None
    timeout = options.connect_timeout
    # Without connect_timeout, the handshake still gets a bound of its own (authentication does not: its
    # prompts may wait on a person).
    bound = _HandshakeBound(verifier) if timeout is None else None
    try:
        with trio.fail_after(timeout if timeout is not None else float("inf")):
            # Keys first: a broken explicit key fails before anything is sent. The agent connection
            # stays open until authentication is over (agent keys sign through it).
            async with open_key_sources(
                agent_path=options.agent_path,
                client_keys=options.client_keys,
                passphrase=options.passphrase,
                identities_only=options.identities_only,
            ) as sources:
                stage = "TCP connect" if options.tunnel is None else "opening the tunnel"
                log.info("connecting to %s%s", options.where, _via(options))
                stream = await _open_stream(options)
                log.info("connected to %s%s", options.where, _peer(stream, options.host))
                transport = SSHClientTransport(
                    stream,
                    state,
                    host=options.host,
                    port=options.port,
                    host_key_verifier=verifier if bound is None else bound,
                    rekey_seconds=options.rekey_seconds,
                )
                transport.start(nursery)
                stage = "key exchange"
                if bound is None:
                    await transport.wait_secure()
                else:
                    await _bounded_handshake(transport, bound, options)
                stage = "authentication"
                auth = await _authenticate(transport, options, sources)
                log_auth.info(
                    "authenticated to %s as %r (%s)", options.where, auth.username, " + ".join(auth.methods)
                )
            return SSHConnection(transport, auth)
    except trio.TooSlowError:
        if transport is not None and transport.state.phase is Phase.VERSION:
            stage = "waiting for the server's version line"
        error = ConnectTimeout(f"timed out after {timeout} s connecting to {options.where} ({stage})")
        if transport is not None:
            await transport.aclose()
        raise error from None
    except BaseException as exc:
        if transport is not None:
            with trio.CancelScope(shield=True):
                await transport.aclose()
        if options.proxy_command is not None and isinstance(exc, SSHError) and "ProxyCommand" not in str(exc):
            exc.args = (f"{exc} (through ProxyCommand {options.proxy_command!r})",)
        raise


def _via(options: ConnectOptions) -> str:
    """How the connection gets there, for the log: `` via jump host j:22`` (a tunnel), a ProxyCommand."""
    if options.tunnel is not None:
        return f" via {options.tunnel.transport._where}"
    if options.proxy_command is not None:
        return f" via ProxyCommand {options.proxy_command!r}"
    return ""


def _peer(stream: trio.abc.Stream, host: str) -> str:
    """The address a name reached, for the log (it may resolve to several); nothing for a tunnel."""
    if not isinstance(stream, trio.SocketStream):
        return ""
    try:
        address = stream.socket.getpeername()
    except OSError:
        return ""
    if not isinstance(address, tuple) or address[0] == host:
        return ""
    return f" (address {address[0]})"


async def _bounded_handshake(
    transport: SSHClientTransport, bound: _HandshakeBound, options: ConnectOptions
) -> None:
    """Wait for the first key exchange within :data:`HANDSHAKE_TIMEOUT` (counted once TCP is connected)."""
    with bound.scope:
        bound.scope.deadline = trio.current_time() + HANDSHAKE_TIMEOUT
        await transport.wait_secure()
    if bound.scope.cancelled_caught:
        phase = "version exchange" if transport.state.phase is Phase.VERSION else "key exchange"
        raise ConnectTimeout(
            f"{options.where} did not complete the {phase} within {HANDSHAKE_TIMEOUT:g} s "
            "(HANDSHAKE_TIMEOUT, the bound of the version and key exchange when connect_timeout is None)"
        )


async def _open_stream(options: ConnectOptions) -> trio.abc.Stream:
    """The byte stream the transport runs over: TCP, or a ``direct-tcpip`` channel of ``options.tunnel``."""
    tunnel = options.tunnel
    if tunnel is None and options.proxy_command is not None:
        from ._proxy_command import open_proxy_command

        return await open_proxy_command(options.proxy_command)
    if tunnel is None:
        try:
            return await _open_tcp(options)
        except OSError as exc:
            raise _connect_error(options, exc) from exc
    via = f"{tunnel.transport.host}:{tunnel.transport.port}"
    try:
        return await tunnel.open_tcp_stream(options.host, options.port)
    except ChannelOpenError as exc:
        raise ChannelOpenError(
            exc.code, f"{via} could not connect to {options.where} for us (tunnel): {exc.reason}"
        ) from exc
    except (ConnectionLost, ProtocolError, DisconnectError) as exc:
        # A new error: the tunnel's own (stored on its transport) must stay as it was.
        raise ConnectionLost(
            f"cannot connect to {options.where} via the tunnel through {via}: {exc}"
        ) from exc


async def _open_tcp(options: ConnectOptions) -> trio.SocketStream:
    """TCP to the host, from ``bind_address`` and over ``address_family`` when the config says so."""
    host: str | bytes = options.host
    if options.address_family is not None:  # resolve here, keeping only that family's addresses
        family = trio.socket.AF_INET if options.address_family == "inet" else trio.socket.AF_INET6
        found = await trio.socket.getaddrinfo(options.host, options.port, family, trio.socket.SOCK_STREAM)
        if not found:
            raise OSError(f"no {options.address_family} address for {options.host}")
        host = str(found[0][4][0])
    return await trio.open_tcp_stream(host, options.port, local_address=options.bind_address)


async def _authenticate(
    transport: SSHClientTransport, options: ConnectOptions, sources: KeySources
) -> AuthResult:
    settings = AuthSettings(
        username=options.username,
        identities=sources.identities,
        password=options.password,
        kbdint_handler=options.kbdint_handler,
        password_change_handler=options.password_change_handler,
        allow_sha1="ssh-rsa" in options.algorithms.host_key,
        no_keys_hint=sources.describe(),
    )
    return await authenticate(transport, settings, options.preferred_auth, options.banner_handler)
