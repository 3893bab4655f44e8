"""connect() with ssh_config(5): the config loaded, the host resolved, and its settings merged
under the caller's keywords (which always win). See :mod:`trissh._config.settings` for what each
option becomes."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Final, TypeAlias

import trio

from ._connect_options import ConnectOptions, Default, build_options
from ._jump import MAX_JUMP_HOSTS

if TYPE_CHECKING:
    from ._config import SSHConfig
    from ._jump import JumpHost

__all__ = ["ConfigArg", "configured_hop", "configured_options", "load_config"]

#: What ``connect(config=...)`` takes: an :class:`SSHConfig`, a path or paths (read instead of the
#: default files), None (no config) or the default marker. Exported as ``trissh.ConfigArg``.
ConfigArg: TypeAlias = (
    "SSHConfig | str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Default | None"
)


def load_config(config: ConfigArg) -> SSHConfig:
    """connect()'s ``config``: DEFAULT (``~/.ssh/config`` then ``/etc/ssh/ssh_config``), a path or paths,
    or an :class:`SSHConfig`. Blocking (it reads files): call it in a worker thread."""
    from ._config import SSHConfig

    if isinstance(config, SSHConfig):
        return config
    if isinstance(config, Default):
        return SSHConfig.load()
    if isinstance(config, str | os.PathLike) or (isinstance(config, list | tuple) and config):
        return SSHConfig.load(config)
    raise TypeError(f"config must be None, a path, paths or an SSHConfig, not {config!r}")


async def configured_options(config: SSHConfig, host: str, given: Mapping[str, object]) -> ConnectOptions:
    user, port = given.get("username"), given.get("port")
    resolved = await trio.to_thread.run_sync(
        lambda: config.resolve(
            host, user if isinstance(user, str) else None, port=port if isinstance(port, int) else None
        )
    )
    from ._config.settings import connect_settings

    settings = connect_settings(resolved, given)
    if "tunnel" in given:  # an explicit tunnel is the way there: the config's proxies do not apply
        settings.pop("proxy_jump", None)
        settings["proxy_command"] = None
    settings.update(given)
    return build_options(str(settings.pop("host")), settings, config=config, given=given)


async def configured_hop(options: ConnectOptions, hop: JumpHost) -> ConnectOptions:
    """A jump host's settings as ssh gives them to ``ssh -W``: its own config entry (HostName, User,
    Port, IdentityFile...), the caller's explicit keywords, never the destination's password.

    ssh reaches ``ProxyJump a,b`` by running ``ssh -J a -W host:port b``: the hops after the first come
    from the list, but the first (``ssh -W ... a``) is a plain ssh of its own, so *its* ProxyJump or
    ProxyCommand applies. The first hop is the one with no tunnel yet; a chain of such entries is bounded.
    """
    assert options.config is not None
    given = {k: v for k, v in options.given.items() if k not in _DESTINATION_ONLY}
    if hop.user:
        given["username"] = hop.user
    if hop.port_given:
        given["port"] = hop.port
    hop_options = await configured_options(options.config.for_jump_hosts(), hop.host, given)
    hop_options = replace(hop_options, forwards=((), (), ()), session_env=None, jump_depth=options.jump_depth)
    if options.tunnel is not None:
        return replace(hop_options, proxy_jump=(), proxy_command=None)
    if hop_options.proxy_jump:
        if options.jump_depth >= MAX_JUMP_HOSTS:
            from ._config import ConfigError

            raise ConfigError(
                f"ProxyJump: jump host {hop.where}'s own ProxyJump leads more than {MAX_JUMP_HOSTS} hosts"
                " deep (a loop in the config?)"
            )
        hop_options = replace(hop_options, jump_depth=options.jump_depth + 1)
    return hop_options


# connect() keywords that are the destination's alone: a jump host never gets them.
_DESTINATION_ONLY: Final = frozenset(
    {"username", "port", "password", "forward_agent", "proxy_jump", "tunnel"}
)
