"""Value syntaxes of ssh_config, parsed and printed as OpenSSH 9.2 does (readconf.c, misc.c).

Each parser takes one argument string and returns a Python value or raises ``ValueError`` with
ssh's wording; the caller adds the file and line. Printing follows ``dump_client_config`` (what
``ssh -G`` shows), so ``format_*`` here and ``parse_*`` stay side by side.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "ADDRESS_FAMILY",
    "FLAG",
    "PUBKEY_AUTH",
    "STRICT_HOST_KEY",
    "Forward",
    "Jump",
    "a2port",
    "atoi",
    "convtime",
    "format_multistate",
    "parse_forward",
    "parse_jump",
    "parse_multistate",
    "scan_scaled",
]

# readconf.c multistate tables: (name, value) in ssh's order, because ssh -G prints the *first*
# name that has the value ("yes" is read, "true" is printed).
FLAG: Final = (("true", 1), ("false", 0), ("yes", 1), ("no", 0))
STRICT_HOST_KEY: Final = (
    ("true", 2),
    ("false", 0),
    ("yes", 2),
    ("no", 0),
    ("ask", 3),
    ("off", 0),
    ("accept-new", 1),
)
PUBKEY_AUTH: Final = (("true", 3), ("false", 0), ("yes", 3), ("no", 0), ("unbound", 1), ("host-bound", 2))
ADDRESS_FAMILY: Final = (("inet", 2), ("inet6", 10), ("any", 0))
COMPRESSION: Final = (("yes", 1), ("no", 0))
CANONICALIZE_HOSTNAME: Final = (("true", 1), ("false", 0), ("yes", 1), ("no", 0), ("always", 2))

_INT_MAX: Final = 2**31 - 1


def parse_multistate(arg: str, table: tuple[tuple[str, int], ...]) -> int:
    """The value of ``arg`` (case-insensitive) in ``table``."""
    for name, value in table:
        if name == arg.lower():
            return value
    raise ValueError(f'unsupported option "{arg}".')


def format_multistate(value: int, table: tuple[tuple[str, int], ...]) -> str:
    """How ssh -G prints ``value``: flags as yes/no (``fmt_intarg``'s default), others by table."""
    if table is FLAG or table is COMPRESSION:
        return {0: "no", 1: "yes"}[value]
    return next(name for name, v in table if v == value)


def _strtonum(s: str, low: int, high: int) -> int:
    # OpenBSD strtonum: strtoll base 10 (leading blanks and one sign allowed), whole string.
    m = re.fullmatch(r"[ \t\n\r\f\v]*([+-]?[0-9]+)", s)
    if not m:
        raise ValueError("invalid")
    value = int(m.group(1))
    if not low <= value <= high:
        raise ValueError("too large" if value > high else "too small")
    return value


def a2port(s: str) -> int:
    """A port number (0..65535) or a TCP service name; -1 when neither (misc.c ``a2port``)."""
    try:
        return _strtonum(s, 0, 65535)
    except ValueError:
        pass
    try:
        return int(socket.getservbyname(s, "tcp"))
    except OSError:
        return -1


def atoi(arg: str) -> int:
    """misc.c ``atoi_err``: 0..INT_MAX."""
    if not arg:
        raise ValueError("integer value missing.")
    try:
        return _strtonum(arg, 0, _INT_MAX)
    except ValueError as exc:
        raise ValueError(f"integer value {exc}.") from None


_TIME_UNITS: Final[Mapping[str, int]] = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def convtime(s: str) -> int:
    """misc.c ``convtime``: ``90``, ``1h30m``, ``2d`` ... in seconds (int range)."""
    if not s:
        raise ValueError("invalid time value.")
    total, pos = 0, 0
    while pos < len(s):
        # strtol: blanks and a sign may precede the digits; negatives are refused below.
        m = re.compile(r"[ \t\n\r\f\v]*([+-]?[0-9]+)").match(s, pos)
        if not m:
            raise ValueError("invalid time value.")
        secs = int(m.group(1))
        pos = m.end()
        unit = s[pos : pos + 1].lower()
        if unit not in _TIME_UNITS:
            raise ValueError("invalid time value.")
        pos += len(unit)
        if secs < 0 or secs > _INT_MAX // _TIME_UNITS[unit]:
            raise ValueError("invalid time value.")
        total += secs * _TIME_UNITS[unit]
        if total > _INT_MAX:
            raise ValueError("invalid time value.")
    return total


_SCALE: Final = "BKMGTPE"
_MAX_DIGITS: Final = 21  # openbsd-compat fmt_scaled.c: SCALE_LENGTH * 3


def scan_scaled(s: str) -> int:
    """openbsd-compat ``scan_scaled``: ``1G`` = 2**30, ``1.5K`` = 1536; a fraction without a unit
    is dropped. Used by RekeyLimit."""
    m = re.fullmatch(r"[ \t\n\r\f\v]*([+-]?)([0-9]*)(?:\.([0-9]*))?(.*)", s, re.DOTALL)
    if not m:
        raise ValueError("Invalid argument")
    sign, whole_s, fract_s, unit = m.group(1), m.group(2), m.group(3), m.group(4)
    if len(whole_s) >= _MAX_DIGITS:
        raise ValueError("Numerical result out of range")
    whole = int(whole_s or "0")
    negative = sign == "-"
    if not unit:
        return -whole if negative else whole
    if unit[0].upper() not in _SCALE or (len(unit) > 1 and unit[1].isalnum()):
        raise ValueError("Invalid argument")
    factor: int = 1 << (10 * _SCALE.index(unit[0].upper()))
    fract_digits = (fract_s or "")[: _MAX_DIGITS - 2]  # ssh ignores digits past 19
    # The C code truncates the fraction digit by digit: fpart * factor / 10**digits, rounded down.
    fpart = int(fract_digits or "0") * factor // (10 ** len(fract_digits)) if fract_digits else 0
    value = whole * factor + fpart
    if value >= 2**63:
        raise ValueError("Numerical result out of range")
    return -value if negative else value


@dataclass(frozen=True)
class Forward:
    """One LocalForward/RemoteForward/DynamicForward spec (readconf.c ``struct Forward``).

    A port of -1 is "a path" (OpenSSH's PORT_STREAMLOCAL); ``connect_host`` is ``"socks"`` for a
    dynamic forward.
    """

    listen_host: str | None
    listen_port: int
    listen_path: str | None
    connect_host: str | None
    connect_port: int
    connect_path: str | None

    @property
    def is_dynamic(self) -> bool:
        """A SOCKS forward (DynamicForward, or RemoteForward with no target)."""
        return self.connect_host == "socks"

    def format(self, dynamic: bool) -> str:
        """The spec as ssh -G prints it (``dump_cfg_forwards``)."""

        def side(host: str | None, port: int, path: str | None) -> str:
            if path is not None:
                return path
            return str(port) if host is None else f"[{host}]:{port}"

        listen = side(self.listen_host, self.listen_port, self.listen_path)
        if dynamic:
            return listen
        return f"{listen} {side(self.connect_host, self.connect_port, self.connect_path)}"


def _fwd_fields(spec: str) -> list[tuple[str, bool]] | None:
    """readconf.c ``parse_fwd_field`` repeated: (text, looks like a path) per field; None when the
    spec has trailing garbage (a bad bracket, a lone backslash, a fifth field)."""
    fields: list[tuple[str, bool]] = []
    i, n = 0, len(spec)
    while len(fields) < 4:
        if i >= n:
            return fields
        if spec[i] == "[":  # a bracketed field is literal
            end = spec.find("]", i + 1)
            if end < 0 or (end + 1 < n and spec[end + 1] != ":"):
                return None
            fields.append((spec[i + 1 : end], "/" in spec[i + 1 : end]))
            i = end + 2
            continue
        out: list[str] = []
        is_path = False
        while i < n:
            c = spec[i]
            if c == "\\":  # the escaped character is taken as it is, never as ":" or "/"
                if i + 1 >= n:
                    return None
                out.append(spec[i + 1])
                i += 2
                continue
            i += 1
            if c == ":":
                break
            is_path = is_path or c == "/"
            out.append(c)
        fields.append(("".join(out), is_path))
    return fields if i >= n else None


def parse_forward(spec: str, dynamic: bool, remote: bool) -> Forward:
    """readconf.c ``parse_forward`` (without ${VAR} expansion); ValueError when ssh refuses it."""
    fields = _fwd_fields(spec.lstrip())
    bad = ValueError("Bad forwarding specification.")
    if fields is None:
        raise bad
    a = [f for f, _ in fields]
    p = [is_path for _, is_path in fields]
    lh = lpath = ch = cpath = None
    lp = cp = 0
    n = len(fields)
    if n == 1:
        if p[0]:
            lpath, lp = a[0], -1
        else:
            lp = a2port(a[0])
        ch = "socks"
    elif n == 2:
        if p[0] and p[1]:
            lpath, lp, cpath, cp = a[0], -1, a[1], -1
        elif p[1]:
            lp, cpath, cp = a2port(a[0]), a[1], -1
        else:
            lh, lp, ch = a[0], a2port(a[1]), "socks"
    elif n == 3:
        if p[0]:
            lpath, lp, ch, cp = a[0], -1, a[1], a2port(a[2])
        elif p[2]:
            lh, lp, cpath, cp = a[0], a2port(a[1]), a[2], -1
        else:
            lp, ch, cp = a2port(a[0]), a[1], a2port(a[2])
    elif n == 4:
        lh, lp, ch, cp = a[0], a2port(a[1]), a[2], a2port(a[3])
    else:
        raise bad
    if dynamic:
        if n not in (1, 2):
            raise bad
    else:
        if n not in (3, 4) and cpath is None and lpath is None:
            raise bad
        if cp <= 0 and cpath is None:
            raise bad
    if (lp < 0 and lpath is None) or (not remote and lp == 0):
        raise bad
    return Forward(lh, lp, lpath, ch, cp, cpath)


@dataclass(frozen=True)
class Jump:
    """A ProxyJump value: the last hop split out, the earlier ones kept as text (``jump_extra``)."""

    user: str | None
    host: str
    port: int
    extra: str | None

    def format(self) -> str:
        """As ssh -G prints ``proxyjump``: ``extra,user@[host]:port`` with brackets for numeric hosts."""
        numeric = ":" in self.host or all(c in "1234567890." for c in self.host)
        host = f"[{self.host}]" if numeric else self.host
        return "".join(
            (
                f"{self.extra}," if self.extra is not None else "",
                f"{self.user}@" if self.user is not None else "",
                host,
                f":{self.port}" if self.port > 0 else "",
            )
        )


def _hpdelim(s: str) -> tuple[str, str | None] | None:
    """misc.c ``hpdelim``: (host part, rest after ':'); None on a bad bracket or a '/'."""
    if s.startswith("["):
        end = s.find("]")
        if end < 0:
            return None
        cut = end + 1
    else:
        m = re.search(r"[:/]", s)
        cut = m.start() if m else len(s)
    if cut == len(s):
        return s, None
    if s[cut] == ":":
        return s[:cut], s[cut + 1 :]
    return None


def _user_host_port(s: str) -> tuple[str | None, str, int]:
    """misc.c ``parse_user_host_port`` (and the ssh:// form of ``parse_ssh_uri``)."""
    bad = ValueError("invalid")
    uri = s.startswith("ssh://")
    if uri:
        s = s[len("ssh://") :]
    user = None
    at = s.find("@") if uri else s.rfind("@")
    if at >= 0:
        user = s[:at]
        if uri:
            user = user.split(";", 1)[0]
        if not user:
            raise bad
        s = s[at + 1 :]
    if uri and "/" in s.split("]")[-1]:
        raise bad  # a path is not allowed in a jump host
    parts = _hpdelim(s)
    if parts is None or not parts[0]:
        raise bad
    host = parts[0][1:-1] if parts[0].startswith("[") and parts[0].endswith("]") else parts[0]
    port = -1
    if parts[1]:
        port = a2port(parts[1])
        if port <= 0:
            raise bad
    return user, host, port


def parse_jump(text: str) -> Jump | None:
    """readconf.c ``parse_jump``: None for ``none``; every hop's syntax is checked."""
    if text.lower() == "none":
        return None
    body = text.split("#", 1)[0].rstrip()
    hops = body.split(",")
    parsed = [_user_host_port(hop) for hop in reversed(hops)]
    user, host, port = parsed[0]
    comma = text.rfind(",")
    extra = text[:comma] if comma > 0 else None
    return Jump(user, host, port, extra)
