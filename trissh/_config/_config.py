"""The public face: :class:`SSHConfig` (load once, look up many hosts) and :class:`ResolvedConfig`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias, final

from .._public import public
from ._algorithms import ALGORITHM_KEYWORDS, trissh_defaults, trissh_supported
from ._errors import ConfigError
from ._reader import ConfigFile, read_config, read_text
from ._resolve import Resolution, resolve
from ._tokens import PROXY_COMMAND_TOKENS, home_of, local_user_name
from ._values import Forward

__all__ = ["AlgorithmLists", "ResolvedConfig", "SSHConfig", "StrPath"]

StrPath: TypeAlias = "str | os.PathLike[str]"
#: Per-option algorithm lists (keys: ``ciphers``, ``macs``, ``kexalgorithms``, ``hostkeyalgorithms``,
#: ``pubkeyacceptedalgorithms``), or a callable returning them.
AlgorithmLists: TypeAlias = "Mapping[str, Sequence[str]] | Callable[[], Mapping[str, Sequence[str]]]"

SYSTEM_CONFIG = "/etc/ssh/ssh_config"


def _lists(
    source: AlgorithmLists | None, fallback: Callable[[], Mapping[str, Sequence[str]]]
) -> dict[str, list[str]]:
    if source is None:
        source = fallback
    table = source() if callable(source) else source
    return {key: list(table.get(key, ())) for key in ALGORITHM_KEYWORDS}


def _check_arguments(host: str, user: str | None) -> None:
    """ssh.c ``valid_hostname``/``valid_ruser``: names from the caller (not from the config) may not
    carry shell metacharacters, since they end up in ProxyCommand and Match exec."""
    if (
        not host
        or host.startswith("-")
        or any(c in "'`\"$\\;&<>|(){}," or c.isspace() or ord(c) < 32 for c in host)
    ):
        raise ValueError(f"hostname contains invalid characters: {host!r}")
    if user is None:
        return
    bad = (
        not user
        or user.startswith("-")
        or user.endswith("\\")
        or any(c in "'`\";&<>|(){}" or ord(c) < 32 or ord(c) == 127 for c in user)
        or any(c.isspace() and user[i + 1 : i + 2] == "-" for i, c in enumerate(user))
    )
    if bad:
        raise ValueError(f"remote username contains invalid characters: {user!r}")


@public
@final
class SSHConfig:
    """ssh_config(5) files, read and checked once, resolved per host as OpenSSH 9.2's ``ssh -G`` does.

    Build one with :meth:`load` or :meth:`from_text`.
    """

    def __init__(
        self, files: Sequence[ConfigFile], *, allow_exec: bool = False, destination_only: int = 0
    ) -> None:
        self._files = tuple(files)
        self._allow_exec = allow_exec
        self._destination_only = destination_only  # leading files that jump hosts do not see (with_options)
        self._logged_unknown: set[str] = set()  # each unknown keyword is logged once per config

    @classmethod
    def load(cls, paths: StrPath | Sequence[StrPath] | None = None, *, allow_exec: bool = False) -> SSHConfig:
        """Read config files: ``paths`` in order (like ``ssh -F``, each a user config), or by default
        ``~/.ssh/config`` then ``/etc/ssh/ssh_config``, skipping whichever is missing.

        Args:
            allow_exec: run ``Match exec`` commands (through ``/bin/sh -c``). Off by default: a
                Match exec line then never matches, and no command is run.

        Raises:
            ConfigError: an explicit path that cannot be read, or anything ssh would refuse.
        """
        files: list[ConfigFile] = []
        if paths is None:
            for path, user in ((os.path.join(home_of(), ".ssh", "config"), True), (SYSTEM_CONFIG, False)):
                try:
                    files.append(read_config(path, user=user, check_permissions=user))
                except FileNotFoundError:
                    continue
            return cls(files, allow_exec=allow_exec)
        for item in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
            name = os.fspath(item)
            try:
                files.append(read_config(name, user=True))
            except FileNotFoundError:
                raise ConfigError(f"Can't open user config file {name}: No such file or directory") from None
        return cls(files, allow_exec=allow_exec)

    @classmethod
    def from_text(cls, text: str, name: str = "<string>", *, allow_exec: bool = False) -> SSHConfig:
        """A config given as text (a user config named ``name`` in messages); mainly for tests."""
        return cls([read_text(text, name)], allow_exec=allow_exec)

    def with_options(self, lines: Sequence[str], name: str = "command line") -> SSHConfig:
        """This config with ``lines`` (``Keyword value`` each) in front, as ssh's command-line options:
        they win over the files, and apply to the destination only. ssh reaches a jump host by running
        ``ssh -W`` for it, which gets the ``-F`` files but not the ``-o`` options (:meth:`for_jump_hosts`).
        """
        options = read_text("\n".join(lines), name)
        return SSHConfig(
            [options, *self._files],
            allow_exec=self._allow_exec,
            destination_only=self._destination_only + 1,
        )

    def for_jump_hosts(self) -> SSHConfig:
        """The config jump hosts are resolved with: this one without its :meth:`with_options` lines."""
        if not self._destination_only:
            return self
        return SSHConfig(self._files[self._destination_only :], allow_exec=self._allow_exec)

    @property
    def allow_exec(self) -> bool:
        """Whether ``Match exec`` commands run (:meth:`load`)."""
        return self._allow_exec

    def _resolve(
        self,
        host: str,
        user: str | None,
        port: int | None,
        local_user: str | None,
        defaults: AlgorithmLists | None,
        supported: AlgorithmLists | None,
    ) -> Resolution:
        _check_arguments(host, user)
        base = _lists(defaults, trissh_defaults)
        known = _lists(supported, trissh_supported)
        for key, names in base.items():  # a default name is always one that can be chosen
            known[key] = [*known[key], *(n for n in names if n not in known[key])]
        return resolve(
            self._files,
            host,
            user=user,
            port=port,
            local_user=local_user if local_user is not None else local_user_name(),
            allow_exec=self._allow_exec,
            defaults=base,
            supported=known,
            logged_unknown=self._logged_unknown,
        )

    def lookup(
        self,
        host: str,
        user: str | None = None,
        *,
        port: int | None = None,
        local_user: str | None = None,
        defaults: AlgorithmLists | None = None,
        supported: AlgorithmLists | None = None,
    ) -> dict[str, str | list[str]]:
        """The options for ``host``, keyed and formatted as ``ssh -G`` prints them.

        Always has ``hostname``, ``port`` and ``user``; otherwise only the options the config set.
        ``identityfile``, ``certificatefile``, the forwards, ``sendenv``, ``setenv`` and the
        known-hosts files are lists; everything else is a string.

        Args:
            host: the host as typed (what ``Host`` patterns see first).
            user, port: what ``ssh -l`` / ``-p`` would give; they win over the config.
            local_user: the local account name (``%u``, ``Match localuser``, default user).
            defaults: base lists for ``+``/``-``/``^`` algorithm options (default: trissh's own).
            supported: every usable name, what patterns expand to (default: trissh's registries).

        Raises:
            ConfigError: a token that cannot be expanded, a failed Match exec, an empty
                algorithm list.
            ValueError: ``host`` or ``user`` with shell metacharacters (ssh refuses them too).
        """
        return self._resolve(host, user, port, local_user, defaults, supported).as_dict()

    def resolve(
        self,
        host: str,
        user: str | None = None,
        *,
        port: int | None = None,
        local_user: str | None = None,
        defaults: AlgorithmLists | None = None,
        supported: AlgorithmLists | None = None,
    ) -> ResolvedConfig:
        """:meth:`lookup` as a typed :class:`ResolvedConfig`, with the connect-time expansions done."""
        return ResolvedConfig.from_resolution(
            self._resolve(host, user, port, local_user, defaults, supported)
        )


def _flag(value: object) -> bool | None:
    return None if value is None else bool(value)


@public
@final
@dataclass(frozen=True)
class ResolvedConfig:
    """The options of one host, typed for ``connect()``; None where the config set nothing.

    Paths are expanded as ssh expands them when it uses them: IdentityFile and CertificateFile get
    ``~``, the %-tokens and ``${VAR}`` (entries ``none`` dropped); ProxyCommand its five tokens
    (%h %k %n %p %r); known-hosts files ``~`` (and tokens for the user ones); ``none`` for a
    known-hosts option gives an empty tuple. ``proxy_jump`` is in ``ssh -G`` form
    (``[extra,][user@]host[:port]``); ProxyJump/ProxyCommand ``none`` come out as None, as in ssh.
    """

    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...] | None = None
    certificate_files: tuple[str, ...] | None = None
    identities_only: bool | None = None
    identity_agent: str | None = None
    proxy_jump: str | None = None
    proxy_command: str | None = None
    connect_timeout: int | None = None
    server_alive_interval: int | None = None
    server_alive_count_max: int | None = None
    strict_host_key_checking: str | None = None
    user_known_hosts_files: tuple[str, ...] | None = None
    global_known_hosts_files: tuple[str, ...] | None = None
    host_key_alias: str | None = None
    check_host_ip: bool | None = None
    compression: bool | None = None
    rekey_bytes: int | None = None
    rekey_seconds: int | None = None
    preferred_authentications: tuple[str, ...] | None = None
    pubkey_authentication: bool | None = None
    password_authentication: bool | None = None
    kbd_interactive_authentication: bool | None = None
    forward_agent: bool | str | None = None
    send_env: tuple[str, ...] | None = None
    set_env: Mapping[str, str] | None = None
    local_forwards: tuple[Forward, ...] | None = None
    remote_forwards: tuple[Forward, ...] | None = None
    dynamic_forwards: tuple[Forward, ...] | None = None
    batch_mode: bool | None = None
    address_family: str | None = None
    bind_address: str | None = None
    ciphers: tuple[str, ...] | None = None
    macs: tuple[str, ...] | None = None
    kex_algorithms: tuple[str, ...] | None = None
    host_key_algorithms: tuple[str, ...] | None = None
    pubkey_accepted_algorithms: tuple[str, ...] | None = None

    @classmethod
    def from_resolution(cls, r: Resolution) -> ResolvedConfig:
        """Build from a lookup's :class:`~trissh._config._resolve.Resolution`."""
        d = r.as_dict()
        single = r.state.single

        def seq(key: str) -> tuple[str, ...] | None:
            value = d.get(key)
            return None if value is None else tuple(value if isinstance(value, list) else [value])

        def files(key: str) -> tuple[str, ...] | None:
            items = seq(key)
            if items is None:
                return None
            return tuple(r.expand(p) for p in items if p.lower() != "none")

        def known(key: str) -> tuple[str, ...] | None:
            items = seq(key)
            if items is None:
                return None
            if items == ("none",):
                return ()
            # ssh -G already shows the user files expanded; the global ones get only "~" later
            return (
                items if key == "userknownhostsfile" else tuple(r.expand(p, "", dollar=False) for p in items)
            )

        proxy = d.get("proxycommand")
        algos = {k: tuple(str(d[k]).split(",")) if k in d else None for k in ALGORITHM_KEYWORDS}
        agent = d.get("forwardagent")
        pubkey = single.get("pubkeyauthentication")
        return cls(
            hostname=r.host,
            port=r.port,
            user=r.user,
            identity_files=files("identityfile"),
            certificate_files=files("certificatefile"),
            identities_only=_flag(single.get("identitiesonly")),
            identity_agent=str(d["identityagent"]) if "identityagent" in d else None,
            proxy_jump=str(d["proxyjump"]) if "proxyjump" in d else None,
            proxy_command=None
            if proxy is None
            else r.expand(str(proxy), PROXY_COMMAND_TOKENS, dollar=False, tilde=False),
            connect_timeout=_int(single.get("connecttimeout")),
            server_alive_interval=_int(single.get("serveraliveinterval")),
            server_alive_count_max=_int(single.get("serveralivecountmax")),
            strict_host_key_checking=str(d["stricthostkeychecking"])
            if "stricthostkeychecking" in d
            else None,
            user_known_hosts_files=known("userknownhostsfile"),
            global_known_hosts_files=known("globalknownhostsfile"),
            host_key_alias=str(d["hostkeyalias"]) if "hostkeyalias" in d else None,
            check_host_ip=_flag(single.get("checkhostip")),
            compression=_flag(single.get("compression")),
            rekey_bytes=r.state.rekey_limit,
            rekey_seconds=r.state.rekey_interval,
            preferred_authentications=tuple(str(single["preferredauthentications"]).split(","))
            if "preferredauthentications" in single
            else None,
            pubkey_authentication=None if pubkey is None else pubkey != 0,
            password_authentication=_flag(single.get("passwordauthentication")),
            kbd_interactive_authentication=_flag(single.get("kbdinteractiveauthentication")),
            forward_agent=None
            if agent is None
            else (agent == "yes" if agent in ("yes", "no") else str(agent)),
            send_env=seq("sendenv"),
            set_env={k: val for k, _, val in (e.partition("=") for e in r.state.set_env)} or None,
            local_forwards=tuple(f for f in r.state.local_forwards if not f.is_dynamic) or None,
            remote_forwards=tuple(r.state.remote_forwards) or None,
            dynamic_forwards=tuple(f for f in r.state.local_forwards if f.is_dynamic) or None,
            batch_mode=_flag(single.get("batchmode")),
            address_family=str(d["addressfamily"]) if "addressfamily" in d else None,
            bind_address=str(d["bindaddress"]) if "bindaddress" in d else None,
            ciphers=algos["ciphers"],
            macs=algos["macs"],
            kex_algorithms=algos["kexalgorithms"],
            host_key_algorithms=algos["hostkeyalgorithms"],
            pubkey_accepted_algorithms=algos["pubkeyacceptedalgorithms"],
        )


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))
