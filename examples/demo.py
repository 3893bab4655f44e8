"""trissh demo: run a few commands over SSH and show what was negotiated and how long each step took.

Usage::

    python examples/demo.py                                # against a throwaway local sshd
    python examples/demo.py user@host[:port] [command...]  # against a real host

The first form needs OpenSSH's sshd installed (scripts/demo installs it when run as root). The second uses
trissh's defaults: your ~/.ssh/id_ed25519, id_ecdsa or id_rsa key and ~/.ssh/known_hosts; the exit status
is the remote command's.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Sequence
from typing import Any

import trio

import trissh
import trissh.testing

LOCAL_COMMANDS = ["uname -a", "echo hello from $(hostname)", "sh -c 'echo to stderr >&2; exit 3'"]
DEFAULT_COMMAND = "uname -a"


def _since(start: float) -> str:
    return f"{(time.perf_counter() - start) * 1000:.1f} ms"


def _show(label: str, data: bytes) -> None:
    if data:
        text = data.decode("utf-8", errors="replace").rstrip("\n")
        print(f"  {label}: " + text.replace("\n", "\n" + " " * (len(label) + 4)))


async def run_commands(host: str, port: int, commands: Sequence[str], **connect_args: Any) -> int:
    """Connect, print what was agreed, run each command; return the last command's exit status."""
    start = time.perf_counter()
    async with trissh.connect(host, port, **connect_args) as conn:
        print(f"connected and authenticated to {host}:{port} in {_since(start)}")
        print(f"server version: {conn.server_version}")
        print(f"negotiated: {conn.negotiated}")
        returncode = 0
        for command in commands:
            start = time.perf_counter()
            result = await conn.run(command)
            print(f"\n$ {command}    ({_since(start)})")
            _show("stdout", result.stdout)
            _show("stderr", result.stderr)
            if result.exit_signal is not None:
                print(f"  killed by signal: {result.exit_signal}")
            print(f"  exit status: {result.returncode}")
            returncode = result.returncode if result.returncode is not None else 255
    return returncode


def demo_local() -> int:
    """Start a throwaway sshd, run the demo commands against it, and stop it (also on Ctrl-C)."""
    start = time.perf_counter()
    with trissh.testing.start_sshd() as server:
        print(f"sshd started on {server.host}:{server.port} in {_since(start)} (keys in {server.directory})")
        trio.run(
            functools.partial(
                run_commands,
                server.host,
                server.port,
                LOCAL_COMMANDS,
                username=server.username,
                client_keys=[server.client_key],
                known_hosts=server.known_hosts,
            )
        )
    return 0


def parse_destination(destination: str) -> tuple[str | None, str, int]:
    """Split ``[user@]host[:port]`` (IPv6 literals in brackets: ``[::1]:2222``) into (user, host, port)."""
    user, _, address = destination.rpartition("@")
    port = 22
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
    elif address.count(":") == 1:
        host, _, port_text = address.partition(":")
        port = int(port_text)
    else:
        host = address  # a bare IPv6 literal, or a name without a port
    if not host:
        raise ValueError(f"no host in {destination!r}")
    return user or None, host, port


def demo_remote(destination: str, command: Sequence[str]) -> int:
    """Run one command on a real host with the user's own keys and known_hosts; return its exit status."""
    user, host, port = parse_destination(destination)
    connect_args: dict[str, Any] = {} if user is None else {"username": user}
    # Like ssh, join the words with spaces and let the remote shell parse them.
    line = " ".join(command) or DEFAULT_COMMAND
    return trio.run(functools.partial(run_commands, host, port, [line], **connect_args))


def main(argv: Sequence[str]) -> int:
    """Entry point: no arguments for the local demo, else ``user@host[:port] [command...]``."""
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        return demo_remote(argv[0], argv[1:]) if argv else demo_local()
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (trissh.SSHError, ValueError, OSError, RuntimeError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
