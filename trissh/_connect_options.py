"""connect()'s settings, checked once and passed down as one :class:`ConnectOptions`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from ._algorithms.kex import GexBits
from ._auth.agent_path import default_agent_path
from ._auth.exchange import BannerHandler
from ._auth.host_key_check import HostKeyPolicy
from ._auth.key_sources import DEFAULT_KEYS, ClientKeys, Default
from ._auth.key_sources import PassphraseSource as PassphraseSource
from ._auth.methods import DEFAULT_PREFERRED_AUTH, KbdintHandler, PasswordChangeHandler, PasswordSource
from ._transport.negotiate import AlgorithmPreferences

if TYPE_CHECKING:
    from ._jump import JumpHost
    from .connection import SSHConnection

__all__ = ["DEFAULT", "ConnectOptions", "Default", "PassphraseSource"]

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
    client_keys: ClientKeys = DEFAULT
    passphrase: PassphraseSource = None
    agent_path: str | os.PathLike[str] | Default | None = DEFAULT
    forward_agent: bool = False
    known_hosts: object = DEFAULT
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
        if self.forward_agent and self.resolved_agent_path is None:
            raise ValueError(
                "forward_agent=True needs an ssh-agent: SSH_AUTH_SOCK is not set and agent_path gives none"
            )
        if self.host_key_policy not in ("strict", "accept-new") and not callable(self.host_key_policy):
            raise ValueError(
                "host_key_policy must be 'strict', 'accept-new' or an async callable, "
                f"got {self.host_key_policy!r}"
            )

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
