"""From a host's :class:`ResolvedConfig` to ``connect()``'s settings.

The rule: a keyword the caller gave to ``connect()`` always wins; the config fills in the others;
trissh's own defaults fill in the rest. Where the config names something trissh cannot use (a
cipher it does not have, an identity file that does not exist), ssh's choice is followed where it is
safe (skip it, say why at debug level), and never a less safe one (``StrictHostKeyChecking no`` accepts
new keys but, unlike ssh, never a changed one).
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._config import ResolvedConfig

__all__ = ["connect_settings"]

log = logging.getLogger("trissh.config")

# PreferredAuthentications names trissh has, and the option that turns each off.
_METHOD_SWITCHES = {
    "publickey": "pubkey_authentication",
    "password": "password_authentication",
    "keyboard-interactive": "kbd_interactive_authentication",
}
_DEFAULT_METHODS = ("publickey", "keyboard-interactive", "password")


def _policy(value: str) -> str:
    if value in ("accept-new", "false", "no", "off"):
        return "accept-new"  # "no" as accept-new: a changed key is refused all the same
    return "strict"  # yes, and ask (nobody to ask in a library: the CLI asks for itself)


def _supported(names: tuple[str, ...], known: list[str], what: str) -> list[str]:
    usable = [name for name in names if name in known]
    dropped = [name for name in names if name not in known]
    if dropped:
        log.debug("config %s: trissh does not implement %s; skipped", what, ", ".join(dropped))
    if not usable:
        raise ValueError(f"config {what}: none of {', '.join(names)} is implemented by trissh")
    return usable


def connect_settings(r: ResolvedConfig, given: Mapping[str, object]) -> dict[str, object]:
    """The settings the config adds for a connection: connect() keywords (only those ``given`` lacks),
    plus ``host`` (the HostName) and the config-only ones (``proxy_command``, ``host_key_alias``,
    ``address_family``, ``bind_address``, ``session_env``, the forwards)."""
    from ._algorithms import trissh_supported

    out: dict[str, object] = {"host": r.hostname, "port": r.port, "username": r.user}

    def put(key: str, value: object) -> None:
        if value is not None and key not in given:
            out[key] = value

    if r.identity_files is not None:
        files = [path for path in r.identity_files if os.path.exists(path)]
        for path in set(r.identity_files) - set(files):
            log.debug("config IdentityFile %s: no such file; skipped", path)
        put("client_keys", files)
        if r.identities_only:
            put("identities_only", True)  # the agent still signs for the named keys it holds
    if r.identity_agent is not None:
        agent = r.identity_agent
        put(
            "agent_path",
            None
            if agent == "none"
            else os.environ.get("SSH_AUTH_SOCK")
            if agent == "SSH_AUTH_SOCK"
            else agent,
        )
    put("proxy_jump", r.proxy_jump)
    if r.connect_timeout is not None:
        put("connect_timeout", float(r.connect_timeout))
    if r.server_alive_interval:
        put("keepalive_interval", float(r.server_alive_interval))
    put("keepalive_count_max", r.server_alive_count_max)
    if r.strict_host_key_checking is not None:
        put("host_key_policy", _policy(r.strict_host_key_checking))
    files = [*(r.user_known_hosts_files or ()), *(r.global_known_hosts_files or ())]
    if r.user_known_hosts_files is not None or r.global_known_hosts_files is not None:
        from .._auth.known_hosts import KnownHosts

        put("known_hosts", KnownHosts.load(files, required=False) if files else None)
    if r.compression:
        put("compression", True)
    put("rekey_bytes", r.rekey_bytes)
    if r.rekey_seconds is not None:
        put("rekey_seconds", float(r.rekey_seconds) if r.rekey_seconds else None)
    methods = list(r.preferred_authentications or _DEFAULT_METHODS)
    methods = [m for m in methods if m in _METHOD_SWITCHES and getattr(r, _METHOD_SWITCHES[m]) is not False]
    if r.preferred_authentications is not None or len(methods) != len(_DEFAULT_METHODS):
        if not methods:
            raise ValueError("config: every authentication method trissh has is turned off")
        put("preferred_auth", methods)
    if r.forward_agent is True:
        put("forward_agent", True)
    elif isinstance(r.forward_agent, str):  # an agent of its own: a socket path, or $VARIABLE holding one
        lent = r.forward_agent
        socket: str | None = os.environ.get(lent[1:]) if lent.startswith("$") else os.path.expanduser(lent)
        if socket:
            put("forward_agent", True)
            put("forward_agent_path", socket)
        else:
            log.warning("config ForwardAgent %s: the variable is not set; no agent is forwarded", lent)
    known = trissh_supported()
    if r.ciphers is not None:
        put("ciphers", _supported(r.ciphers, known["ciphers"], "Ciphers"))
    if r.macs is not None:
        put("macs", _supported(r.macs, known["macs"], "MACs"))
    if r.kex_algorithms is not None:
        put("kex_algs", _supported(r.kex_algorithms, known["kexalgorithms"], "KexAlgorithms"))
    if r.host_key_algorithms is not None:
        put(
            "host_key_algs",
            _supported(r.host_key_algorithms, known["hostkeyalgorithms"], "HostKeyAlgorithms"),
        )
    # Not connect() keywords: what only the config says.
    out["proxy_command"] = r.proxy_command
    out["host_key_alias"] = r.host_key_alias
    out["address_family"] = r.address_family if r.address_family in ("inet", "inet6") else None
    out["bind_address"] = r.bind_address
    out["session_env"] = _session_env(r)
    out["forwards"] = (r.local_forwards or (), r.remote_forwards or (), r.dynamic_forwards or ())
    return out


def _session_env(r: ResolvedConfig) -> dict[str, str]:
    """SendEnv's local variables (patterns, ``-`` removing), then SetEnv's (which win)."""
    if not r.send_env:
        return dict(r.set_env or {})
    local = list(os.environ.items())  # one pass over the environment (each read decodes it)
    env: dict[str, str] = {}
    for pattern in r.send_env:
        if pattern.startswith("-"):
            matches = _matcher(pattern[1:])
            for name in [n for n in env if matches(n)]:
                del env[name]
            continue
        matches = _matcher(pattern)
        env.update((name, value) for name, value in local if matches(name))
    env.update(r.set_env or {})
    return env


@functools.cache
def _matcher(pattern: str) -> Callable[[str], bool]:
    """ssh's ``*``/``?`` pattern (or a list of them, ``!`` negating) as a fast test of a name."""
    if not any(c in pattern for c in "*?,!"):
        return pattern.__eq__
    if not any(c in pattern for c in ",!"):  # one pattern: as a regular expression, once
        regex = re.compile(fnmatch.translate(pattern.replace("[", "[[]")), re.DOTALL)
        return lambda name: regex.match(name) is not None
    from ._match import match_pattern_list

    return lambda name: match_pattern_list(name, pattern) == 1
