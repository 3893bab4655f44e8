"""One directive's value, checked and converted as OpenSSH 9.2's readconf.c does.

ssh checks every line's value whether or not its block applies, so this runs once, at load time,
for every line of every file read: a bad ``Port`` in a block for another host is still an error.
Each parser returns the value the resolver stores; which value wins is not decided here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from . import _values as v
from ._algorithms import ALGORITHM_KEYWORDS, check_names, trissh_supported
from ._lexer import Line

__all__ = ["AgentSetting", "RekeyLimit", "Value", "parse_value"]

_WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class AgentSetting:
    """``ForwardAgent``: ``flag`` (0/1) and, when the argument was not a flag, a socket ``path``."""

    flag: int
    path: str | None


@dataclass(frozen=True)
class RekeyLimit:
    """``RekeyLimit bytes [interval]``: ``interval`` None when absent or ``none``."""

    limit: int
    interval: int | None


Value = str | int | None | tuple[str, ...] | v.Forward | RekeyLimit | AgentSetting


def _one(line: Line) -> str:
    """The single argument of ``line`` (ssh: "Missing argument" / "extra arguments")."""
    if not line.args or not line.args[0]:
        raise line.error("Missing argument.")
    if len(line.args) > 1:
        raise line.error(f"keyword {line.keyword} extra arguments at end of line")
    return line.args[0]


def _string(line: Line) -> str:
    return _one(line)


def _multistate(table: tuple[tuple[str, int], ...]) -> Callable[[Line], int]:
    def parse(line: Line) -> int:
        arg = _one(line)
        try:
            return v.parse_multistate(arg, table)
        except ValueError as exc:
            raise line.error(str(exc)) from None

    return parse


def _time(line: Line) -> int | None:
    arg = _one(line)
    if arg == "none":
        return None  # ssh stores -1, "unset": a later line may still set it
    try:
        return v.convtime(arg)
    except ValueError as exc:
        raise line.error(str(exc)) from None


def _int(line: Line) -> int:
    try:
        return v.atoi(_one(line))
    except ValueError as exc:
        raise line.error(str(exc)) from None


def _port(line: Line) -> int:
    arg = _one(line)
    port = v.a2port(arg)
    if port <= 0:
        raise line.error(f"Bad port '{arg}'.")
    return port


def _file_list(line: Line) -> tuple[str, ...]:
    # GlobalKnownHostsFile / UserKnownHostsFile: several per line, "none" only alone.
    for i, arg in enumerate(line.args):
        if not arg:
            raise line.error(f"keyword {line.keyword} empty argument")
        if arg.lower() == "none" and (i > 0 or len(line.args) > 1):
            raise line.error(f'keyword {line.keyword} "none" argument must appear alone.')
    return line.args


def _raw_rest(line: Line) -> str:
    # ProxyCommand takes the rest of the line as typed (quotes and all), not argv-split.
    return line.rest.lstrip(_WHITESPACE + "=")


def _jump(line: Line) -> str:
    text = _raw_rest(line)
    try:
        v.parse_jump(text)
    except ValueError:
        raise line.error(f'Invalid ProxyJump "{text}"') from None
    return text


def _forward(line: Line) -> v.Forward:
    keyword = line.keyword
    remote, dynamic = keyword == "remoteforward", keyword == "dynamicforward"
    if not line.args or not line.args[0]:
        raise line.error("Missing argument.")
    args = list(line.args)
    spec = args.pop(0)
    if not dynamic:
        target = args.pop(0) if args else ""
        if not target:
            if not remote:
                raise line.error("Missing target argument.")
            dynamic = True
        else:
            spec = f"{spec}:{target}"
    if args:
        raise line.error(f"keyword {keyword} extra arguments at end of line")
    try:
        return v.parse_forward(spec, dynamic, remote)
    except ValueError as exc:
        raise line.error(str(exc)) from None


def _send_env(line: Line) -> tuple[str, ...]:
    for arg in line.args:
        if not arg or "=" in arg:
            raise line.error("Invalid environment name.")
    return line.args


def _set_env(line: Line) -> tuple[str, ...]:
    for arg in line.args:
        if "=" not in arg:
            raise line.error("Invalid SetEnv.")
    return line.args


def _rekey(line: Line) -> RekeyLimit:
    args = list(line.args)
    arg = args.pop(0) if args else ""
    if not arg:
        raise line.error("Missing argument.")
    if arg == "default":
        limit = 0
    else:
        try:
            limit = v.scan_scaled(arg)
        except ValueError as exc:
            raise line.error(f"Bad number '{arg}': {exc}") from None
        if limit != 0 and limit < 16:
            raise line.error("RekeyLimit too small")
    interval = None
    if args:
        second = args.pop(0)
        if second != "none":
            interval = _time(Line(line.path, line.lineno, line.keyword, second, (second,)))
    if args:
        raise line.error(f"keyword {line.keyword} extra arguments at end of line")
    return RekeyLimit(limit, interval)


def _agent_path(line: Line, arg: str) -> str:
    # readconf.c parse_agent_path: ${VAR} must be well formed; "$NAME" must be a valid name.
    if "${" in arg:
        rest = arg
        while "${" in rest:
            rest = rest[rest.index("${") + 2 :]
            end = rest.find("}")
            if end <= 0:
                raise line.error(f"Invalid environment expansion {arg}.")
            rest = rest[end + 1 :]
    if arg.startswith("$") and not arg.startswith("${"):
        name = arg[1:]
        if not name or not all(c.isalnum() or c == "_" for c in name):
            raise line.error(f"Invalid environment name {arg}.")
    return arg


def _identity_agent(line: Line) -> str:
    return _agent_path(line, _one(line))


def _forward_agent(line: Line) -> AgentSetting:
    arg = _one(line)
    try:
        return AgentSetting(v.parse_multistate(arg, v.FLAG), None)
    except ValueError:
        return AgentSetting(1, _agent_path(line, arg))  # not a flag: a socket path


@functools.cache
def _trissh_names(keyword: str) -> frozenset[str]:
    # Names trissh implements that OpenSSH 9.2 does not know (mlkem768x25519-sha256, say) are
    # accepted too: refusing them would make trissh's own algorithms unconfigurable.
    return frozenset(trissh_supported().get(keyword, ()))


def _algorithms(line: Line) -> str:
    arg = _one(line)
    try:
        check_names(line.keyword, arg, _trissh_names(line.keyword))
    except ValueError:
        raise line.error(f"Bad SSH2 algorithm spec '{arg}'.") from None
    return arg


_PARSERS: Final[dict[str, Callable[[Line], Value]]] = {
    "hostname": _string,
    "user": _string,
    "hostkeyalias": _string,
    "preferredauthentications": _string,
    "bindaddress": _string,
    "ignoreunknown": _string,
    "identityfile": _string,
    "certificatefile": _string,
    "port": _port,
    "identitiesonly": _multistate(v.FLAG),
    "checkhostip": _multistate(v.FLAG),
    "passwordauthentication": _multistate(v.FLAG),
    "kbdinteractiveauthentication": _multistate(v.FLAG),
    "batchmode": _multistate(v.FLAG),
    "compression": _multistate(v.COMPRESSION),
    "stricthostkeychecking": _multistate(v.STRICT_HOST_KEY),
    "pubkeyauthentication": _multistate(v.PUBKEY_AUTH),
    "addressfamily": _multistate(v.ADDRESS_FAMILY),
    "canonicalizehostname": _multistate(v.CANONICALIZE_HOSTNAME),
    "connecttimeout": _time,
    "serveraliveinterval": _time,
    "serveralivecountmax": _int,
    "userknownhostsfile": _file_list,
    "globalknownhostsfile": _file_list,
    "proxycommand": _raw_rest,
    "proxyjump": _jump,
    "localforward": _forward,
    "remoteforward": _forward,
    "dynamicforward": _forward,
    "sendenv": _send_env,
    "setenv": _set_env,
    "rekeylimit": _rekey,
    "identityagent": _identity_agent,
    "forwardagent": _forward_agent,
    **dict.fromkeys(ALGORITHM_KEYWORDS, _algorithms),
}


def parse_value(keyword: str, line: Line) -> Value:
    """The checked value of an applied option's line (``keyword`` already canonical).

    Raises:
        ConfigError: the value ssh would refuse, naming the file and line.
    """
    if line.keyword != keyword:
        line = Line(line.path, line.lineno, keyword, line.rest, line.args)
    return _PARSERS[keyword](line)
