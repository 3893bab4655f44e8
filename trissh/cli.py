"""The ``trissh`` command: run one command on a server, like ``ssh host command``.

    trissh [-p PORT] [-l USER] [-i KEY]... [-A] [--batch] [--known-hosts FILE] [--accept-new]
           [user@]host[:port] command...

The command's output streams to ours as it arrives, its standard input is ours
(unless ``-n``), and our exit status is the command's (255 when trissh itself
fails, as with ssh(1)). Keys come from the agent and ``~/.ssh`` as with ssh;
when a terminal is attached, passwords, keyboard-interactive prompts and key
passphrases are asked on it (never with ``--batch``, like ``BatchMode``).
Interactive sessions without a command come later.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shlex
import sys
from collections.abc import Sequence

import trio

from ._channels.session import Process
from ._connect import connect
from ._errors import SSHError

__all__ = ["main"]

#: ssh(1)'s exit status when the connection itself fails.
EXIT_SSH_ERROR = 255


def _parse_destination(text: str, port: int | None, user: str | None) -> tuple[str, int, str | None]:
    if "@" in text:
        user_part, text = text.rsplit("@", 1)
        user = user or user_part
    host = text
    if text.startswith("["):  # [host]:port, as in known_hosts, for IPv6 addresses
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = port or int(rest[1:])
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = port or int(port_text)
    return host, port or 22, user


async def _pump_stdin(process: Process) -> None:
    """Our standard input to the command's, then EOF; stops quietly if the command has gone."""
    stdin = trio.lowlevel.FdStream(os.dup(0))
    async with stdin:
        try:
            while chunk := await stdin.receive_some():
                await process.stdin.send_all(chunk)
            await process.stdin.send_eof()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # the command ended without reading everything, as with ssh(1)


async def _copy(source: trio.abc.ReceiveStream, fd: int) -> None:
    out = trio.lowlevel.FdStream(os.dup(fd))
    async with out:
        async for chunk in source:
            await out.send_all(chunk)


def _terminal_prompts(host: str) -> dict[str, object]:
    """Callbacks that ask on the terminal, as ssh(1) does; none without one."""
    if not os.isatty(0) or not os.isatty(2):
        return {}

    async def ask(prompt: str, echo: bool = False) -> str:
        # getpass and input block: a worker thread keeps the event loop (and keepalives) running.
        if echo:
            return await trio.to_thread.run_sync(input, prompt)
        return await trio.to_thread.run_sync(getpass.getpass, prompt)

    async def password() -> str:
        return await ask(f"{host}'s password: ")

    async def kbdint(name: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        for line in (name, instructions):
            if line:
                print(line, file=sys.stderr)
        return [await ask(text, echo) for text, echo in prompts]

    async def passphrase(path: str) -> str:
        return await ask(f"Enter passphrase for key '{path}': ")

    return {"password": password, "kbdint_handler": kbdint, "passphrase": passphrase}


async def _run(args: argparse.Namespace) -> int:
    host, port, user = _parse_destination(args.destination, args.port, args.login)
    command = shlex.join(args.command) if len(args.command) > 1 else args.command[0]
    options: dict[str, object] = {"username": user}
    if not args.batch:
        options.update(_terminal_prompts(host))
    if args.forward_agent:
        options["forward_agent"] = True
    if args.identity:
        options["client_keys"] = args.identity
    if args.known_hosts:
        options["known_hosts"] = args.known_hosts
    if args.accept_new:
        options["host_key_policy"] = "accept-new"
    async with (
        connect(host, port, **options) as conn,  # type: ignore[arg-type]
        conn.open_process(command) as process,
        trio.open_nursery() as nursery,
    ):
        if args.no_stdin:
            await process.stdin.send_eof()
        else:
            nursery.start_soon(_pump_stdin, process)
        async with trio.open_nursery() as copies:  # ends when both outputs reach EOF
            copies.start_soon(_copy, process.stdout, 1)
            copies.start_soon(_copy, process.stderr, 2)
        returncode = await process.wait()
        nursery.cancel_scope.cancel()  # stop reading our stdin
    if returncode is None:
        return EXIT_SSH_ERROR
    return returncode if returncode >= 0 else 128 - returncode


def _ssh_error(exc: BaseException) -> SSHError | None:
    if isinstance(exc, SSHError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _ssh_error(inner)
            if found is not None:
                return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trissh", description=__doc__.split("\n\n")[0])
    parser.add_argument("destination", help="[user@]host[:port]")
    # Everything after the destination is the command, options included (as with ssh).
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command to run")
    parser.add_argument("-p", "--port", type=int)
    parser.add_argument("-l", "--login", help="user name")
    parser.add_argument("-i", "--identity", action="append", help="private key file (repeatable)")
    parser.add_argument("-n", "--no-stdin", action="store_true", help="do not send our standard input")
    parser.add_argument("-A", "--forward-agent", action="store_true", help="forward the ssh-agent")
    parser.add_argument("--batch", action="store_true", help="never ask for passwords or passphrases")
    parser.add_argument("--known-hosts", help="known_hosts file (default ~/.ssh/known_hosts)")
    parser.add_argument("--accept-new", action="store_true", help="trust and record unknown host keys")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("a command is needed (interactive sessions are not supported yet)")
    try:
        return trio.run(_run, args)
    except KeyboardInterrupt:
        return 130
    except FileNotFoundError as exc:  # e.g. a --known-hosts file that does not exist
        print(f"trissh: {exc.strerror}", file=sys.stderr)
        return EXIT_SSH_ERROR
    except BaseException as exc:
        error = _ssh_error(exc)
        if error is None:
            raise
        print(f"trissh: {error}", file=sys.stderr)
        return EXIT_SSH_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
