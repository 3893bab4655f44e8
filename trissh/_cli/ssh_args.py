"""The ``trissh`` command line as ``ssh`` reads it: options, the destination, then the command.

Options are parsed the way ssh(1) parses them (``getopt``: ``-p22`` and ``-p 22``, ``-tt``, ``-vvv``,
``-oKey=Value``), before the destination and again after it, up to the first word that is not an
option: that word and everything after it are the command, options included (``trissh host ls -l``).
Pure: no I/O, no Trio, so that ``trissh --help`` and a usage error cost nothing.
"""

from __future__ import annotations

import getopt
import re
from dataclasses import dataclass, field

__all__ = [
    "option_line",
    "Destination",
    "Invocation",
    "UsageError",
    "parse_destination",
    "parse_ssh_args",
    "USAGE",
]

USAGE = """\
usage: trissh [-46AaCGNnqTtVvx] [-b bind_address] [-c cipher_spec] [-D [bind_address:]port]
              [-E log_file] [-e escape_char] [-F configfile] [-i identity_file] [-J destination]
              [-L address] [-l login_name] [-m mac_spec] [-o option] [-p port] [-R address]
              [-W host:port] [--accept-new] [--known-hosts FILE] [--batch]
              destination [command [argument ...]]
       trissh cp [-rpq] [-J destination] [-P port] [-i identity_file] [-F configfile] [-o option]
              source ... target
       trissh run (-H host,... | --hosts-file FILE) [-j N] [--timeout S] [--group] -- command ..."""

# ssh(1)'s option letters (OpenSSH 9): those taking an argument are followed by ":".
_SHORT = "46AaCGNnqsTtVvxb:c:D:E:e:F:i:J:L:l:m:o:p:R:W:"
_LONG = ["accept-new", "known-hosts=", "batch", "help", "version"]
# Options ssh has that trissh does not (yet): refused by name rather than misread.
_UNSUPPORTED = {
    "-f": "going to the background",
    "-g": "remote hosts connecting to local forwards (use -L with an address)",
    "-K": "GSSAPI",
    "-k": "GSSAPI",
    "-M": "connection sharing",
    "-O": "connection sharing",
    "-S": "connection sharing",
    "-X": "X11 forwarding",
    "-Y": "X11 forwarding",
    "-w": "tunnel devices",
    "-I": "PKCS#11",
    "-Q": "queries",
    "-B": "binding to an interface",
    "-P": "tags",
}
_HOST = re.compile(r"[^\s@/\\'\"`;&|<>()$]+")


class UsageError(Exception):
    """A command line that cannot be run: the message for the user (exit status 255, as ssh)."""


@dataclass(frozen=True)
class Destination:
    host: str
    user: str | None = None
    port: int | None = None


@dataclass
class Invocation:
    """What the command line asks for.

    Everything ssh_config(5) has a keyword for (``-p``, ``-l``, ``-i``, ``-J``, ``-A``, ``-C``, ``-c``,
    ``-o`` ...) is kept as config lines, in the order given: they are read before the config files,
    and the first value obtained wins, exactly as ssh applies its command line. The rest are fields.
    """

    destination: Destination
    command: list[str] = field(default_factory=list)
    config_lines: list[str] = field(default_factory=list)
    config_file: str | None = None  # -F
    local_forwards: list[str] = field(default_factory=list)
    remote_forwards: list[str] = field(default_factory=list)
    dynamic_forwards: list[str] = field(default_factory=list)
    stdio_forward: str | None = None  # -W host:port
    no_command: bool = False  # -N
    no_stdin: bool = False  # -n
    subsystem: bool = False  # -s
    tty: int = 0  # -t count; -1 for -T
    verbosity: int = 0
    quiet: bool = False
    log_file: str | None = None
    escape_char: str | None = "~"  # None: "-e none"
    print_config: bool = False  # -G


def parse_destination(text: str) -> Destination:
    """``[user@]host[:port]``, ``[user@][v6addr]:port``, a bare IPv6 address, or ``ssh://[user@]host[:port]``.

    Raises:
        UsageError: anything else (an empty or odd host name, a port that is not 1-65535).
    """
    original = text
    uri = text.startswith("ssh://")
    if uri:
        text = text[len("ssh://") :].rstrip("/")
    user = None
    if "@" in text:
        user, text = text.rsplit("@", 1)
        if not user:
            raise UsageError(f"invalid destination {original!r}: empty user name")
    port_text = None
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise UsageError(f"invalid destination {original!r}")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text  # a name, or an IPv6 address with its colons
    if not host or not _HOST.fullmatch(host) or host.startswith("-"):
        raise UsageError(f"invalid destination {original!r}: not a host name")
    port = None
    if port_text is not None:
        port = parse_port(port_text, f"destination {original!r}")
    return Destination(host, user, port)


def parse_port(text: str, what: str = "port") -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"invalid {what}: bad port {text!r}")
    return int(text)


def option_line(value: str) -> str:
    """``-o Key=Value`` or ``-o "Key Value"`` as a config line."""
    key, sep, rest = value.partition("=")
    if sep and " " not in key.strip():
        return f"{key.strip()} {rest.strip()}"
    return value.strip()


# Flags that are config lines: (keyword, value or None for the option's argument).
_AS_CONFIG: dict[str, tuple[str, str | None]] = {
    "-4": ("AddressFamily", "inet"),
    "-6": ("AddressFamily", "inet6"),
    "-A": ("ForwardAgent", "yes"),
    "-a": ("ForwardAgent", "no"),
    "-C": ("Compression", "yes"),
    "-b": ("BindAddress", None),
    "-c": ("Ciphers", None),
    "-m": ("MACs", None),
    "-i": ("IdentityFile", None),
    "-J": ("ProxyJump", None),
    "-l": ("User", None),
    "-p": ("Port", None),
    "--accept-new": ("StrictHostKeyChecking", "accept-new"),
    "--batch": ("BatchMode", "yes"),
    "--known-hosts": ("UserKnownHostsFile", None),
}
_FLAGS = {"-G": "print_config", "-N": "no_command", "-n": "no_stdin", "-q": "quiet", "-s": "subsystem"}
_LISTS = {"-L": "local_forwards", "-R": "remote_forwards", "-D": "dynamic_forwards"}


def _quoted(value: str) -> str:
    return f'"{value}"' if any(c.isspace() for c in value) else value


def _apply(
    fields: dict[str, object], lines: list[str], lists: dict[str, list[str]], option: str, value: str
) -> None:
    if option in _UNSUPPORTED:
        raise UsageError(f"option {option} ({_UNSUPPORTED[option]}) is not supported by trissh")
    if option in _AS_CONFIG:
        keyword, fixed = _AS_CONFIG[option]
        if option == "-p":
            parse_port(value)
        lines.append(f"{keyword} {fixed if fixed is not None else _quoted(value)}")
    elif option == "-o":
        lines.append(option_line(value))
    elif option in _FLAGS:
        fields[_FLAGS[option]] = True
    elif option in _LISTS:
        lists[_LISTS[option]].append(value)
    elif option == "-t":
        fields["tty"] = max(0, int(fields.get("tty", 0))) + 1  # type: ignore[call-overload]
    elif option == "-T":
        fields["tty"] = -1
    elif option == "-v":
        fields["verbosity"] = int(fields.get("verbosity", 0)) + 1  # type: ignore[call-overload]
    elif option == "-F":
        fields["config_file"] = value
    elif option == "-W":
        fields["stdio_forward"] = value
    elif option == "-E":
        fields["log_file"] = value
    elif option == "-e":
        fields["escape_char"] = _escape_char(value)
    # -x: no X11 forwarding, the only kind trissh has


def _escape_char(value: str) -> str | None:
    if value == "none":
        return None
    if len(value) == 1:
        return value
    if len(value) == 2 and value[0] == "^":
        return chr(ord(value[1].upper()) & 0x1F)
    raise UsageError(f"bad escape character {value!r}")


def parse_ssh_args(argv: list[str]) -> Invocation | str:
    """An :class:`Invocation`, or ``"help"`` / ``"version"`` when those were asked for.

    Raises:
        UsageError: an unknown option, a missing argument, no destination, a bad destination.
    """
    fields: dict[str, object] = {}
    lines: list[str] = []
    lists: dict[str, list[str]] = {name: [] for name in _LISTS.values()}
    rest = argv
    destination: Destination | None = None
    while True:
        try:
            found, rest = getopt.getopt(rest, _SHORT, _LONG)
        except getopt.GetoptError as exc:
            unsupported = f"-{exc.opt}"
            if unsupported in _UNSUPPORTED:
                raise UsageError(
                    f"option {unsupported} ({_UNSUPPORTED[unsupported]}) is not supported by trissh"
                ) from None
            raise UsageError(str(exc)) from None
        for option, value in found:
            if option == "--help":
                return "help"
            if option in ("--version", "-V"):
                return "version"
            _apply(fields, lines, lists, option, value)
        if destination is not None or not rest:
            break
        destination = parse_destination(rest[0])
        # Its user and port count where it stands: after the options before it, as with ssh.
        if destination.user is not None:
            lines.append(f"User {_quoted(destination.user)}")
        if destination.port is not None:
            lines.append(f"Port {destination.port}")
        rest = rest[1:]  # options may follow the destination, as with ssh; then the command
    if destination is None:
        raise UsageError("a destination is needed")
    invocation = Invocation(destination=destination, command=list(rest), config_lines=lines)
    for name, setting in fields.items():
        setattr(invocation, name, setting)
    for name, items in lists.items():
        setattr(invocation, name, items)
    return invocation
