"""trissh run: one command on many hosts, each output line prefixed with its host.

    trissh run -H host1,host2 | --hosts-file FILE [-j N] [--timeout S] [--connect-timeout S] [--group]
               [-l USER] [-p PORT] [-i KEY]... [-A] [--known-hosts FILE] [--accept-new] [-F CONFIG]
               -- command...

Without ``--group``, every line a command writes is printed as it arrives, as ``host: line`` (its stdout
on ours, its stderr on ours); with ``--group``, each host's output is printed as one block under a
``=== host ===`` header when the host finishes. A summary table (host, status, seconds) follows on
stderr. Exit status: 0 when every host's command exited 0, 1 otherwise, 255 for a bad command line.

Host strings are ``[user@]host[:port]`` (``[host]:port`` for IPv6); their own user and port win over
``-l`` and ``-p``. A hosts file has one host per line; blank lines and ``#`` comments are skipped. The
command's standard input is empty (``ssh -n``), and nothing is ever asked on the terminal: with many
hosts at once a prompt could not say whose it is (``--batch`` of ``trissh`` is implied).

Theory of operation: :func:`trissh.fanout.for_each_host` does the concurrency, limits and timeouts;
this module only turns options into its arguments and results into lines and a table. ``rich`` is
imported when the summary is printed, not at start-up.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from typing import IO, Any, Final, NoReturn

import trio

from .._channels.session import CompletedProcess
from .._errors import SSHError
from ..connection import SSHConnection
from ..fanout import DEFAULT_LIMIT, HostResult, Job, for_each_host, parse_host

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "run_hosts_main"]

#: Some host failed: a non-zero exit, a signal, or an error.
EXIT_FAILED: Final = 1
#: The command line itself is wrong (as ssh(1)'s 255 for its own failures).
EXIT_USAGE: Final = 255
# Bytes of a line without a newline that are kept before they are printed anyway (a bound on memory).
_MAX_LINE: Final = 64 * 1024


class _UsageError(Exception):
    pass


class _Exit(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse that reports instead of calling ``sys.exit`` (this runs inside a Trio program)."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise _Exit(status)


def _parser() -> _Parser:
    parser = _Parser(prog="trissh run", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("-H", "--hosts", action="append", default=[], help="comma-separated hosts")
    parser.add_argument("--hosts-file", action="append", default=[], help="a file of hosts, one a line")
    parser.add_argument("-j", "--jobs", type=int, default=DEFAULT_LIMIT, help="hosts at once")
    parser.add_argument("--timeout", type=float, help="seconds per host for everything")
    parser.add_argument("--connect-timeout", type=float, default=30.0, help="seconds per host to connect")
    parser.add_argument("--group", action="store_true", help="print each host's output as one block")
    parser.add_argument("-l", "--login", help="user name for hosts without user@")
    parser.add_argument("-p", "--port", type=int, help="port for hosts without :port")
    parser.add_argument("-i", "--identity", action="append", help="private key file (repeatable)")
    parser.add_argument("-A", "--forward-agent", action="store_true", help="forward the ssh-agent")
    parser.add_argument("--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)")
    parser.add_argument("--accept-new", action="store_true", help="trust and record unknown host keys")
    parser.add_argument("-F", "--config", help="ssh_config file for HostName, Port, User, IdentityFile")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command (after --)")
    return parser


def _read_hosts_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as exc:
        raise _UsageError(f"cannot read hosts file {path}: {exc.strerror or exc}") from None
    hosts = []
    for line in lines:
        text = line.split("#", 1)[0].strip()
        if text:
            hosts.append(text)
    return hosts


def _hosts(args: argparse.Namespace) -> list[str]:
    hosts = [host.strip() for option in args.hosts for host in option.split(",") if host.strip()]
    for path in args.hosts_file:
        hosts += _read_hosts_file(path)
    if not hosts:
        raise _UsageError("no hosts: give -H host1,host2 or --hosts-file FILE")
    for host in hosts:
        try:
            parse_host(host)
        except ValueError as exc:
            raise _UsageError(str(exc)) from None
    return hosts


def _connect_options(args: argparse.Namespace) -> dict[str, Any]:
    """connect() keywords, as trissh's own command maps the same options."""
    options: dict[str, Any] = {}
    if args.login:
        options["username"] = args.login
    if args.port is not None:
        options["port"] = args.port
    if args.forward_agent:
        options["forward_agent"] = True
    if args.identity:
        options["client_keys"] = args.identity
    if args.known_hosts:
        options["known_hosts"] = args.known_hosts
    if args.accept_new:
        options["host_key_policy"] = "accept-new"
    return options


def _write(stream: IO[str], data: bytes) -> None:
    stream.flush()  # keep our earlier text writes in order with these byte writes
    stream.buffer.write(data)  # type: ignore[attr-defined]
    stream.buffer.flush()  # type: ignore[attr-defined]


async def _print_lines(source: trio.abc.ReceiveStream, prefix: bytes, stream: IO[str]) -> None:
    """Copy ``source`` to ``stream`` one ``prefix``-ed line at a time, as lines complete."""
    pending = b""
    async for chunk in source:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if len(pending) > _MAX_LINE:  # a very long line: print it in pieces rather than hold it
            lines.append(pending)
            pending = b""
        if lines:
            _write(stream, b"".join(prefix + line + b"\n" for line in lines))
    if pending:
        _write(stream, prefix + pending + b"\n")


def _streaming_job(command: str) -> Job:
    async def job(conn: SSHConnection, host: str) -> CompletedProcess:
        prefix = f"{host}: ".encode()
        try:
            async with conn.open_process(command) as process:
                await process.stdin.send_eof()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_print_lines, process.stdout, prefix, sys.stdout)
                    nursery.start_soon(_print_lines, process.stderr, prefix, sys.stderr)
                returncode = await process.wait()
                return CompletedProcess(command, returncode, b"", b"", process.exit_signal)
        except BaseExceptionGroup as group:  # our nursery's: a broken connection in one of the copies
            ssh_error = group.subgroup(SSHError)
            if ssh_error is not None:
                first = ssh_error.exceptions[0]
                while isinstance(first, BaseExceptionGroup):
                    first = first.exceptions[0]
                raise first from None
            raise

    return job


def _grouped_job(command: str) -> Job:
    async def job(conn: SSHConnection, host: str) -> CompletedProcess:
        return await conn.run(command)  # the whole output, printed as one block when the host is done

    return job


def _print_block(item: HostResult) -> None:
    host, result = item
    if not isinstance(result, CompletedProcess):
        return
    header = f"=== {host} ===\n".encode()
    for data, stream in ((result.stdout, sys.stdout), (result.stderr, sys.stderr)):
        if data:
            _write(stream, header + data + (b"" if data.endswith(b"\n") else b"\n"))


def _status(result: CompletedProcess | SSHError) -> tuple[str, bool]:
    """What the summary says about a host, and whether it succeeded."""
    if isinstance(result, SSHError):
        return f"error: {result}", False
    if result.exit_signal is not None:
        return f"signal {result.exit_signal}", False
    if result.returncode is None:
        return "no exit status", False
    return f"exit {result.returncode}", result.returncode == 0


def _print_summary(items: Sequence[HostResult]) -> None:
    rows = [(item.host, _status(item.result)[0], f"{item.elapsed:.2f}") for item in items]
    try:
        from rich import box
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # rich is optional: the same table in plain text
        width = max(len(host) for host, _, _ in rows)
        lines = [f"{'host':<{width}}  status  time (s)"]
        lines += [f"{host:<{width}}  {status}  {seconds}" for host, status, seconds in rows]
        sys.stderr.write("\n".join(lines) + "\n")
        return
    console = Console(file=sys.stderr, stderr=True, highlight=False)
    terminal = console.is_terminal
    if not terminal:
        # A pipe or file: plain text, no ANSI codes (rich adds none there) and no box drawing; and one
        # row per host, however long its error, for grep and friends.
        console = Console(file=sys.stderr, stderr=True, highlight=False, width=10_000, no_color=True)
    table = Table("host", "status", "time (s)", box=box.HEAVY_HEAD if terminal else None)
    for host, status, seconds in rows:
        table.add_row(host, status, seconds, style=None if status == "exit 0" or not terminal else "red")
    console.print(table)


async def run_hosts_main(argv: list[str]) -> int:
    """Run ``trissh run`` with ``argv`` (the arguments after ``run``); return the exit status.

    To be awaited inside Trio (``trio.run(run_hosts_main, argv)``).
    """
    parser = _parser()
    try:
        if "--" in argv:
            cut = argv.index("--")
            args = parser.parse_args(argv[:cut])
            if args.command:
                raise _UsageError(f"unexpected arguments before '--': {shlex.join(args.command)}")
            args.command = argv[cut + 1 :]
        else:
            args = parser.parse_args(argv)
        if not args.command:
            raise _UsageError("a command is needed after --")
        if args.jobs < 1:
            raise _UsageError(f"-j must be at least 1, got {args.jobs}")
        for name in ("timeout", "connect_timeout"):
            value = getattr(args, name)
            if value is not None and not value > 0:
                raise _UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
        hosts = _hosts(args)
        options = _connect_options(args)
        if args.config:  # read now, so that a bad file is a usage error; connect() applies it per host
            from .._config import SSHConfig

            options["config"] = SSHConfig.load(args.config)
    except _Exit as done:
        return done.status
    except (_UsageError, SSHError) as exc:  # SSHError: a ConfigError in the -F file
        parser.print_usage(sys.stderr)
        sys.stderr.write(f"trissh run: {exc}\n")
        return EXIT_USAGE
    command = shlex.join(args.command) if len(args.command) > 1 else args.command[0]
    job = _grouped_job(command) if args.group else _streaming_job(command)
    items: list[HostResult] = []
    try:
        async with for_each_host(
            hosts,
            job,
            limit=args.jobs,
            connect_timeout=args.connect_timeout,
            timeout=args.timeout,
            **options,
        ) as results:
            async for item in results:
                items.append(item)
                if args.group:
                    _print_block(item)
    except (ValueError, TypeError, OSError) as exc:  # a bad option value, a missing known_hosts file
        sys.stderr.write(f"trissh run: {exc}\n")
        return EXIT_USAGE
    items.sort(key=lambda item: item.position)
    _print_summary(items)
    return 0 if all(_status(item.result)[1] for item in items) else EXIT_FAILED
