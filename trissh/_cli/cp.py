"""``trissh cp``: scp's command line over SFTP.

    trissh cp [-346BCpqrTv] [-c cipher] [-F config] [-i identity] [-J destination] [-o option]
              [-P port] source ... target

A remote file is ``[user@]host:path`` (a colon before any slash; ``[v6addr]:path``) or
``scp://[user@]host[:port][/path]``; anything else is local. Several sources go into the target
directory; remote to remote goes through this machine (scp's ``-3``, its default since OpenSSH 9).
Progress: see :mod:`trissh._cli.progress`.
"""

from __future__ import annotations

import getopt
import sys
from dataclasses import dataclass

from .common import EXIT_SSH_ERROR, run_main
from .ssh_args import UsageError, option_line, parse_port

__all__ = ["CopyArgs", "Endpoint", "cp_main", "parse_cp_args", "parse_endpoint"]

CP_USAGE = """\
usage: trissh cp [-346BCpqrTv] [-c cipher] [-F config] [-i identity_file] [-J destination]
                 [-o ssh_option] [-P port] source ... target"""


@dataclass(frozen=True)
class Endpoint:
    """A source or the target: ``host`` None for a local path."""

    path: str
    host: str | None = None
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        if self.host is None:
            return self.path
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.path}"


def parse_endpoint(text: str) -> Endpoint:
    if text.startswith("scp://"):
        rest = text[len("scp://") :]
        authority, slash, path = rest.partition("/")
        user, _, hostport = authority.rpartition("@")
        host, port = hostport, None
        if hostport.startswith("["):
            host, _, tail = hostport[1:].partition("]")
            port = parse_port(tail[1:]) if tail.startswith(":") else None
        elif ":" in hostport:
            host, port_text = hostport.split(":", 1)
            port = parse_port(port_text)
        if not host:
            raise UsageError(f"invalid URI {text!r}")
        return Endpoint(path if slash else ".", host, user or None, port)
    if text.startswith(("/", "./", "../")) or ":" not in text:
        return Endpoint(text)
    if text.startswith("[") or (text.find("@") < text.find("[") and "[" in text):
        user, _, rest = text.rpartition("@") if "@" in text.split("]")[0] else ("", "", text)
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or not tail.startswith(":"):
            raise UsageError(f"invalid remote path {text!r}")
        return Endpoint(tail[1:] or ".", host, user or None)
    head, _, path = text.partition(":")
    if "/" in head:
        return Endpoint(text)  # a local path with a colon in it
    user, _, host = head.rpartition("@")
    if not host:
        raise UsageError(f"invalid remote path {text!r}: no host")
    return Endpoint(path or ".", host, user or None)


@dataclass
class CopyArgs:
    sources: list[Endpoint]
    target: Endpoint
    recursive: bool = False
    preserve: bool = False
    quiet: bool = False
    config_file: str | None = None
    lines: list[str] | None = None


def parse_cp_args(argv: list[str]) -> CopyArgs:
    try:
        found, rest = getopt.gnu_getopt(argv, "346BCpqrTvc:F:i:J:l:o:P:S:")
    except getopt.GetoptError as exc:
        raise UsageError(str(exc)) from None
    args = CopyArgs([], Endpoint("."), lines=[])
    lines: list[str] = []
    for option, value in found:
        if option == "-r":
            args.recursive = True
        elif option == "-p":
            args.preserve = True
        elif option == "-q":
            args.quiet = True
        elif option == "-B":
            lines.append("BatchMode yes")
        elif option == "-C":
            lines.append("Compression yes")
        elif option in ("-4", "-6"):
            lines.append(f"AddressFamily {'inet' if option == '-4' else 'inet6'}")
        elif option == "-c":
            lines.append(f"Ciphers {value}")
        elif option == "-F":
            args.config_file = value
        elif option == "-i":
            lines.append(f'IdentityFile "{value}"')
        elif option == "-J":
            lines.append(f"ProxyJump {value}")
        elif option == "-o":
            lines.append(option_line(value))
        elif option == "-P":
            lines.append(f"Port {parse_port(value)}")
        elif option == "-S":
            raise UsageError("-S (another ssh program) is not supported: trissh is the ssh")
        # -3 (through this machine) is how remote to remote always goes; -T, -v, -l: accepted
    if len(rest) < 2:
        raise UsageError("a source and a target are needed")
    args.sources = [parse_endpoint(text) for text in rest[:-1]]
    args.target = parse_endpoint(rest[-1])
    args.lines = lines
    return args


def cp_main(argv: list[str]) -> int:
    try:
        args = parse_cp_args(argv)
    except UsageError as exc:
        print(f"trissh cp: {exc}\n{CP_USAGE}", file=sys.stderr)
        return EXIT_SSH_ERROR
    from .cp_transfers import copy_all  # the network stack, only now that the command line is read

    return run_main(lambda: copy_all(args))
