"""Resolving the options for one host, in the order of OpenSSH 9.2's ssh.c ``main``.

Theory of operation:

1. Read every file once (``ssh -F`` files, or ~/.ssh/config then /etc/ssh/ssh_config) with the host
   as typed. ``Host`` and ``Match`` switch blocks on and off; an Include in a block that is off is
   still walked, but nothing in it applies ("parse only"). The first value obtained for an option
   wins; IdentityFile, CertificateFile and the forwards accumulate without duplicates, SendEnv
   accumulates (and ``-pattern`` removes), SetEnv and the known-hosts lists are taken whole from the
   first line that sets them.
2. Apply HostName (``%h`` expanded) and lower-case the result unless it is an address.
3. If any ``Match final``/``canonical`` was seen, or CanonicalizeHostname is on, read everything a
   second time with the new host name (``Host`` now matches it) and ``final`` true. Values from the
   first reading are kept: this pass only fills what is still unset (and accumulates again).
4. Fill the host, port and user, then expand tokens where ``ssh -G`` shows them expanded.

:func:`resolve` returns a :class:`Resolution`; its :meth:`~Resolution.as_dict` is what ``ssh -G``
prints for the options the config set. This module does not read files.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from .._auth.host_patterns import wildcard_match
from . import _values as v
from ._algorithms import ALGORITHM_KEYWORDS, assemble
from ._errors import ConfigError
from ._lexer import Line
from ._match import MatchContext, host_matches, match_line, match_pattern_list
from ._parse import AgentSetting, RekeyLimit
from ._reader import ConfigFile, Entry
from ._tokens import DEFAULT_TOKENS, TokenContext, percent_expand, tilde_expand

__all__ = ["Resolution", "resolve"]

logger = logging.getLogger("trissh.config")

# Options printed as ssh -G formats one multistate value.
_MULTISTATE = {
    "identitiesonly": v.FLAG,
    "checkhostip": v.FLAG,
    "passwordauthentication": v.FLAG,
    "kbdinteractiveauthentication": v.FLAG,
    "batchmode": v.FLAG,
    "compression": v.COMPRESSION,
    "stricthostkeychecking": v.STRICT_HOST_KEY,
    "pubkeyauthentication": v.PUBKEY_AUTH,
    "addressfamily": v.ADDRESS_FAMILY,
    "canonicalizehostname": v.CANONICALIZE_HOSTNAME,
}
_SINGLE_STRINGS = ("preferredauthentications", "bindaddress", "ignoreunknown", "identityagent")
_SINGLE_INTS = ("connecttimeout", "serveraliveinterval", "serveralivecountmax")


@dataclass
class _State:
    """What the readings have set so far (readconf.c ``Options``; None = unset)."""

    single: dict[str, object] = field(default_factory=dict)
    origin: dict[str, Line] = field(default_factory=dict)  # where each single value came from
    identity_files: list[tuple[str, bool]] = field(default_factory=list)
    certificate_files: list[tuple[str, bool]] = field(default_factory=list)
    local_forwards: list[v.Forward] = field(default_factory=list)
    remote_forwards: list[v.Forward] = field(default_factory=list)
    send_env: list[str] = field(default_factory=list)
    set_env: list[str] = field(default_factory=list)
    known_hosts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    proxy_command: str | None = None
    jump: str | None = None
    rekey_limit: int | None = None
    rekey_interval: int | None = None
    forward_agent: int | None = None
    forward_agent_path: str | None = None
    want_final: bool = False


@dataclass
class _Pass:
    """One reading: the host ``Host`` lines see, and how Match lines are judged."""

    host: str
    host_arg: str
    final: bool
    local_user: str
    allow_exec: bool
    logged_unknown: set[str]


def _set_once(st: _State, key: str, value: object) -> None:
    if value is not None and key not in st.single:
        st.single[key] = value


def _apply(st: _State, entry: Entry, user_file: bool) -> None:
    """An applying option line (readconf.c ``process_config_line_depth`` with ``*activep``)."""
    key, value = entry.keyword, entry.value
    if key in ("identityfile", "certificatefile"):
        files = st.identity_files if key == "identityfile" else st.certificate_files
        path = (str(value), user_file)
        if path not in files:  # the same path from a user and a system file is kept twice
            files.append(path)
    elif key in ("localforward", "dynamicforward", "remoteforward"):
        assert isinstance(value, v.Forward)
        forwards = st.remote_forwards if key == "remoteforward" else st.local_forwards
        if value not in forwards:
            forwards.append(value)
    elif key == "sendenv":
        assert isinstance(value, tuple)
        for name in value:
            if name.startswith("-"):
                # readconf.c rm_env: one pattern (match_pattern), not a comma list
                st.send_env = [n for n in st.send_env if not wildcard_match(name[1:], n)]
            else:
                st.send_env.append(name)
    elif key == "setenv":
        assert isinstance(value, tuple)
        if not st.set_env:
            for assignment in value:
                variable = assignment.split("=", 1)[0]
                if not any(e.split("=", 1)[0] == variable for e in st.set_env):
                    st.set_env.append(assignment)
    elif key in ("userknownhostsfile", "globalknownhostsfile"):
        assert isinstance(value, tuple)
        st.known_hosts.setdefault(key, value)
    elif key == "proxycommand":
        if st.jump is None and st.proxy_command is None:  # a ProxyJump seen first wins
            st.proxy_command = str(value)
    elif key == "proxyjump":
        if st.proxy_command is None and st.jump is None:
            st.jump = str(value)
            if str(value).lower() != "none":
                st.proxy_command = "none"
    elif key == "rekeylimit":
        assert isinstance(value, RekeyLimit)
        if st.rekey_limit is None:
            st.rekey_limit = value.limit
        if st.rekey_interval is None and value.interval is not None:
            st.rekey_interval = value.interval
    elif key == "forwardagent":
        assert isinstance(value, AgentSetting)
        if st.forward_agent is None:
            st.forward_agent = value.flag
        if value.path is not None and st.forward_agent_path is None:
            st.forward_agent_path = value.path
    else:
        if key not in st.single:
            st.origin[key] = entry.line
        _set_once(st, key, value)


def _match_host(st: _State, p: _Pass) -> str:
    if p.final:
        return str(st.single["hostname"])
    hostname = st.single.get("hostname")
    if hostname is None:
        return p.host
    try:
        return percent_expand(str(hostname), {"h": p.host})
    except ValueError as exc:
        origin = st.origin.get("hostname")
        if origin is None:
            raise ConfigError(f"HostName: {exc}") from None
        raise origin.error(f"HostName {hostname}: {exc}") from None


def _exec_tokens(st: _State, p: _Pass, host: str) -> dict[str, str]:
    user = str(st.single.get("user", p.local_user))
    alias = st.single.get("hostkeyalias")
    ctx = TokenContext.local(
        host_arg=p.host_arg,
        host=host,
        port=int(str(st.single.get("port", 22))),
        user=user,
        local_user=p.local_user,
        keyalias=str(alias) if alias is not None else host,
    )
    return ctx.values(DEFAULT_TOKENS)


def _walk(st: _State, f: ConfigFile, p: _Pass, active: list[bool], never: bool) -> None:
    for entry in f.entries:
        kind = entry.kind
        if kind == "host":
            active[0] = False if never else host_matches(entry.patterns, p.host)
        elif kind == "match":
            if any(c.attribute == "final" for c in entry.criteria) and not p.final:
                st.want_final = True
            host = _match_host(st, p)
            ctx = MatchContext(
                host=host,
                original_host=p.host_arg,
                user=str(st.single.get("user", p.local_user)),
                local_user=p.local_user,
                final_pass=p.final,
                exec_tokens=_LazyTokens(functools.partial(_exec_tokens, st, p, host)),
                allow_exec=p.allow_exec,
            )
            result = match_line(entry.line, entry.criteria, ctx)
            active[0] = False if never else result
        elif kind == "include":
            outer = active[0]
            for included in entry.files:
                _walk(st, included, p, active, never or not outer)
                active[0] = outer  # an included file's Match state must not leak out
        elif kind == "option":
            if active[0]:
                _apply(st, entry, f.user)
        elif kind == "unknown":
            _unknown(st, entry.line, p)


def _unknown(st: _State, line: Line, p: _Pass) -> None:
    patterns = st.single.get("ignoreunknown")
    if patterns is not None and match_pattern_list(line.keyword, str(patterns), lower=True) == 1:
        return
    if line.keyword not in p.logged_unknown:
        p.logged_unknown.add(line.keyword)
        logger.warning("%s line %d: unknown keyword %r ignored", line.path, line.lineno, line.keyword)


class _LazyTokens(Mapping[str, str]):
    """Token values computed on first use: only ``Match exec`` needs them (gethostname, pwd)."""

    def __init__(self, make: Callable[[], dict[str, str]]) -> None:
        self._make = make
        self._values: dict[str, str] | None = None

    def _get(self) -> dict[str, str]:
        if self._values is None:
            self._values = self._make()
        return self._values

    def __getitem__(self, key: str) -> str:
        return self._get()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Resolution:
    """The outcome of one lookup: the final ``host``, ``port``, ``user``, the token ``context`` and
    the raw ``state`` of what the config set."""

    host: str
    port: int
    user: str
    context: TokenContext
    state: _State
    algorithms: Mapping[str, list[str]]

    def expand(
        self, text: str, tokens: str = DEFAULT_TOKENS, *, dollar: bool = True, tilde: bool = True
    ) -> str:
        """``text`` with ``~`` and the given tokens expanded (ssh's tilde + percent_dollar_expand)."""
        try:
            if tilde:
                text = tilde_expand(text)
            return percent_expand(text, self.context.values(tokens), dollar=dollar)
        except ValueError as exc:
            raise ConfigError(f"cannot expand {text!r}: {exc}") from None

    def as_dict(self) -> dict[str, str | list[str]]:
        """What ``ssh -G`` prints, for the three always-present keys and each option set."""
        st = self.state
        out: dict[str, str | list[str]] = {"hostname": self.host, "port": str(self.port), "user": self.user}
        for key, value in st.single.items():
            if value is None:
                continue  # a default put in place only to block later lines
            if key in _MULTISTATE:
                assert isinstance(value, int)
                out[key] = v.format_multistate(value, _MULTISTATE[key])
            elif key in _SINGLE_INTS:
                out[key] = str(value)
            elif key == "hostkeyalias":
                out[key] = str(value).lower()
            elif key == "identityagent":
                out[key] = self.expand(str(value))
            elif key in _SINGLE_STRINGS:
                out[key] = str(value)
        for key, names in self.algorithms.items():
            out[key] = ",".join(names)
        if st.identity_files:
            out["identityfile"] = [path for path, _ in st.identity_files]
        if st.certificate_files:
            out["certificatefile"] = [path for path, _ in st.certificate_files]
        # As ssh -G prints them: its dump counts a forward with no connect host (a unix socket
        # target) as dynamic too; ResolvedConfig uses Forward.is_dynamic, what ssh acts on.
        dynamic = [f.format(True) for f in st.local_forwards if f.connect_host in (None, "socks")]
        local = [f.format(False) for f in st.local_forwards if f.connect_host != "socks"]
        remote = [f.format(False) for f in st.remote_forwards]
        for key, items in (("dynamicforward", dynamic), ("localforward", local), ("remoteforward", remote)):
            if items:
                out[key] = items
        if st.send_env:
            out["sendenv"] = list(st.send_env)
        if st.set_env:
            out["setenv"] = list(st.set_env)
        for key, files in st.known_hosts.items():
            if files[0].lower() == "none":
                out[key] = ["none"]
            elif key == "userknownhostsfile":
                out[key] = [self.expand(name) for name in files]
            else:
                out[key] = list(files)
        if st.rekey_limit is not None or st.rekey_interval is not None:
            out["rekeylimit"] = f"{st.rekey_limit or 0} {st.rekey_interval or 0}"
        if st.forward_agent_path is not None:
            out["forwardagent"] = self.expand(st.forward_agent_path)
        elif st.forward_agent is not None:
            out["forwardagent"] = v.format_multistate(st.forward_agent, v.FLAG)
        jump = v.parse_jump(st.jump) if st.jump is not None else None
        if jump is not None:
            out["proxyjump"] = jump.format()
        elif st.proxy_command is not None and st.proxy_command.lower() != "none":
            out["proxycommand"] = st.proxy_command
        return out


def resolve(
    files: Sequence[ConfigFile],
    host_arg: str,
    *,
    user: str | None,
    port: int | None,
    local_user: str,
    allow_exec: bool,
    defaults: Mapping[str, Sequence[str]],
    supported: Mapping[str, Sequence[str]],
    logged_unknown: set[str],
) -> Resolution:
    """The options for ``host_arg`` (see the module docstring for the order of steps).

    Raises:
        ConfigError: a token ssh cannot expand, a Match exec that crashed, an empty algorithm list.
    """
    st = _State()
    _set_once(st, "user", user)  # like ssh -l / -p: set before any file, so they win
    _set_once(st, "port", port)
    first = _Pass(host_arg, host_arg, False, local_user, allow_exec, logged_unknown)
    for f in files:
        _walk(st, f, first, [True], False)
    # ssh.c fill_default_options_for_canonicalization: CanonicalizeHostname gets its default now,
    # so a line met only in the second reading cannot set it any more.
    st.single.setdefault("canonicalizehostname", None)
    host = _match_host(st, first)
    if "hostname" in st.single:
        st.single["hostname"] = host
    if not _is_address(host):
        host = host.lower()
    if st.single["canonicalizehostname"] not in (None, 0):
        st.want_final = True  # no DNS here: without CanonicalDomains ssh keeps the name as well
    if st.want_final:
        st.single["hostname"] = host
        final = _Pass(host, host_arg, True, local_user, allow_exec, logged_unknown)
        for f in files:
            _walk(st, f, final, [True], False)
    final_user = str(st.single.get("user", local_user))
    final_port = int(str(st.single.get("port", 22)))
    algorithms: dict[str, list[str]] = {}
    for key in ALGORITHM_KEYWORDS:
        if key in st.single:
            try:
                algorithms[key] = assemble(str(st.single[key]), defaults.get(key, ()), supported.get(key, ()))
            except ValueError as exc:
                raise st.origin[key].error(f"{key} {st.single[key]}: {exc}") from None
    alias = st.single.get("hostkeyalias")
    context = TokenContext.local(
        host_arg=host_arg,
        host=host,
        port=final_port,
        user=final_user,
        local_user=local_user,
        keyalias=str(alias).lower() if alias is not None else None,
    )
    return Resolution(host, final_port, final_user, context, st, algorithms)
