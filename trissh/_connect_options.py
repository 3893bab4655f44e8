"""connect()'s settings, checked once and passed down as one :class:`ConnectOptions`."""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from ._algorithms.kex import GexBits
from ._auth.agent_path import default_agent_path
from ._auth.exchange import BannerHandler
from ._auth.host_key_check import HostKeyPolicy, KnownHostsArg
from ._auth.key_sources import DEFAULT_KEYS, ClientKeysArg, Default
from ._auth.key_sources import PassphraseSource as PassphraseSource
from ._auth.methods import DEFAULT_PREFERRED_AUTH, KbdintHandler, PasswordChangeHandler, PasswordSource
from ._auth.userauth import check_preferred_auth
from ._jump import parse_proxy_jump
from ._options import algorithm_preferences
from ._transport.negotiate import AlgorithmPreferences

if TYPE_CHECKING:
    from ._config import SSHConfig
    from ._config._values import Forward
    from ._jump import JumpHost
    from .connection import SSHConnection

__all__ = ["DEFAULT", "ConnectOptions", "Default", "PassphraseSource", "build_options"]

#: Marks a keyword left at its default where None means something else (``client_keys``, ``agent_path``,
#: ``known_hosts``); the key sources' own marker, so one value means "default" everywhere.
DEFAULT: Final = DEFAULT_KEYS


@dataclass(frozen=True, kw_only=True)
class ConnectOptions:
    """Every setting of :func:`trissh.connect`, checked once and passed down as one object.

    Fields are connect()'s keywords (see its docstring); ``DEFAULT`` marks those
    left at their default where None has a meaning of its own.
    """

    host: str
    port: int = 22
    username: str
    password: PasswordSource = None
    client_keys: ClientKeysArg = DEFAULT
    passphrase: PassphraseSource = None
    agent_path: str | os.PathLike[str] | Default | None = DEFAULT
    forward_agent: bool = False
    known_hosts: KnownHostsArg = DEFAULT
    host_key_policy: HostKeyPolicy = "strict"
    preferred_auth: tuple[str, ...] = DEFAULT_PREFERRED_AUTH
    kbdint_handler: KbdintHandler | None = None
    password_change_handler: PasswordChangeHandler | None = None
    banner_handler: BannerHandler | None = None
    algorithms: AlgorithmPreferences
    host_key_algs_given: bool = False
    gex_bits: GexBits = field(default_factory=lambda: GexBits.of(None))
    rekey_bytes: int | None = None
    rekey_seconds: float | None = 3600.0
    connect_timeout: float | None = 30.0
    keepalive_interval: float | None = None
    keepalive_count_max: int = 3
    #: Run over a ``direct-tcpip`` channel of this connection instead of TCP (``connect(tunnel=...)``).
    tunnel: SSHConnection | None = None
    #: Jump hosts to go through, first hop first (``connect(proxy_jump=...)``, parsed).
    proxy_jump: tuple[JumpHost, ...] = ()
    # From ssh_config only (see trissh._config.settings):
    #: A shell command whose stdin and stdout are the connection (ProxyCommand).
    proxy_command: str | None = None
    #: The name the host key is looked up and recorded under instead of ``host`` (HostKeyAlias).
    host_key_alias: str | None = None
    address_family: str | None = None  # "inet" or "inet6" (AddressFamily); None: either
    bind_address: str | None = None  # the local address to connect from (BindAddress)
    #: Offer only the configured keys, the agent's copies of them included (IdentitiesOnly).
    identities_only: bool = False
    #: The agent to forward when it is not the one used to log in (``ForwardAgent /path`` or ``$VAR``).
    forward_agent_path: str | None = None
    #: Environment variables every session of the connection gets (SendEnv, SetEnv).
    session_env: Mapping[str, str] | None = None
    #: The config's (LocalForward, RemoteForward, DynamicForward), open as long as the connection.
    forwards: tuple[tuple[Forward, ...], tuple[Forward, ...], tuple[Forward, ...]] = ((), (), ())
    #: The config the connection was resolved with (jump hosts are resolved with it too), and the
    #: keywords the caller gave (which win over it).
    config: SSHConfig | None = None
    given: Mapping[str, object] = field(default_factory=dict)
    #: How many jump hosts' own ProxyJump entries led to this connection (bounded: a config can loop).
    jump_depth: int = 0

    def __post_init__(self) -> None:
        if self.tunnel is not None and self.proxy_jump:
            raise ValueError(
                "give tunnel= or proxy_jump=, not both: a chain of jump hosts makes its own tunnels"
            )
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValueError(f"port must be 1..65535, got {self.port!r}")
        if self.keepalive_interval is not None and not self.keepalive_interval > 0:
            raise ValueError(f"keepalive_interval must be positive, got {self.keepalive_interval}")
        if self.keepalive_count_max < 0:
            raise ValueError(f"keepalive_count_max must be 0 or more, got {self.keepalive_count_max}")
        if self.forward_agent and self.forwarded_agent_path is None:
            raise ValueError(
                "forward_agent=True needs an ssh-agent: SSH_AUTH_SOCK is not set and agent_path gives none"
            )
        if self.host_key_policy not in ("strict", "accept-new") and not callable(self.host_key_policy):
            raise ValueError(
                "host_key_policy must be 'strict', 'accept-new' or an async callable, "
                f"got {self.host_key_policy!r}"
            )

    @property
    def forwarded_agent_path(self) -> str | None:
        """The agent ``forward_agent`` lends the server: the config's own, else the one used to log in."""
        return self.forward_agent_path or self.resolved_agent_path

    @property
    def resolved_agent_path(self) -> str | None:
        """The agent socket to use: ``agent_path``, else ``$SSH_AUTH_SOCK``; None for no agent."""
        if isinstance(self.agent_path, Default):
            return default_agent_path()
        return os.fspath(self.agent_path) if self.agent_path is not None else None

    @property
    def where(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port}"


def build_options(
    host: str,
    settings: Mapping[str, Any],
    *,
    config: SSHConfig | None = None,
    given: Mapping[str, object] | None = None,
) -> ConnectOptions:
    """:class:`ConnectOptions` from connect()'s keywords (``settings``; missing ones at their defaults)."""
    get = settings.get
    return ConnectOptions(
        host=host,
        port=get("port", 22),
        username=get("username") or getpass.getuser(),
        password=get("password"),
        client_keys=get("client_keys", DEFAULT),
        passphrase=get("passphrase"),
        agent_path=get("agent_path", DEFAULT),
        forward_agent=bool(get("forward_agent", False)),
        known_hosts=get("known_hosts", DEFAULT),
        host_key_policy=get("host_key_policy", "strict"),
        preferred_auth=check_preferred_auth(get("preferred_auth")),
        kbdint_handler=get("kbdint_handler"),
        password_change_handler=get("password_change_handler"),
        banner_handler=get("banner_handler"),
        algorithms=algorithm_preferences(
            kex_algs=get("kex_algs"),
            host_key_algs=get("host_key_algs"),
            ciphers=get("ciphers"),
            macs=get("macs"),
            compression=get("compression"),
        ),
        host_key_algs_given=get("host_key_algs") is not None,
        gex_bits=GexBits.of(get("gex_bits")),
        rekey_bytes=get("rekey_bytes"),
        rekey_seconds=get("rekey_seconds", 3600.0),
        connect_timeout=get("connect_timeout", 30.0),
        keepalive_interval=get("keepalive_interval"),
        keepalive_count_max=get("keepalive_count_max", 3),
        tunnel=get("tunnel"),
        proxy_jump=parse_proxy_jump(get("proxy_jump")),
        proxy_command=get("proxy_command"),
        host_key_alias=get("host_key_alias"),
        address_family=get("address_family"),
        bind_address=get("bind_address"),
        identities_only=bool(get("identities_only", False)),
        forward_agent_path=get("forward_agent_path"),
        session_env=get("session_env") or None,
        forwards=get("forwards", ((), (), ())),
        config=config,
        given=dict(given or {}),
    )
