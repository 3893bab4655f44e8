"""An AsyncSSH server for interop tests, run as a script in a subprocess of its own.

The tests are Trio; AsyncSSH needs an asyncio loop, so it lives in its own process (started by
``servers.start_asyncssh_server``). It listens on 127.0.0.1 on a port the kernel picks and writes that port to
``--port-file`` once it accepts connections. It accepts public-key authentication with the keys in
``--authorized-keys`` (for any user name) and runs a few commands itself, in Python, without a shell:

* ``echo ARG...``: the arguments joined by spaces, and a newline;
* ``head -c N /dev/zero``: N zero bytes;
* ``cat``: standard input copied to standard output;
* ``sha256sum``: standard input's SHA-256 in hex, as coreutils prints it (``<hex>  -``);
* ``exit N``: exit status N;
* anything else: a message on stderr and exit status 127.

``--kex-algs``, ``--encryption-algs``, ``--mac-algs`` and ``--signature-algs`` take comma-separated
algorithm lists; ``all`` (the default) means everything this AsyncSSH supports, so that a client can force any
one of them.

Authentication beyond public keys, for the auth tests:

* ``--password PW``: password authentication with PW (for any user name);
* ``--expired-password OLD:NEW``: OLD is accepted only after it is changed to NEW (the server sends
  SSH_MSG_USERAUTH_PASSWD_CHANGEREQ); NEW then works;
* ``--kbdint-prompt PROMPT=ANSWER`` (repeatable; a PROMPT ending in ``+`` is echoed): keyboard-interactive
  with one round holding every prompt, in order;
* ``--banner TEXT``: a USERAUTH_BANNER before authentication.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import asyncssh
from asyncssh.compression import get_compression_algs
from asyncssh.encryption import get_encryption_algs
from asyncssh.kex import get_kex_algs
from asyncssh.mac import get_mac_algs
from asyncssh.public_key import get_public_key_algs

# Output is written in pieces of this size, so a large `head -c` never sits in memory whole.
_CHUNK = 64 * 1024


def _all_names(get_algs: Callable[[], Sequence[bytes]], *, skip_gss: bool = False) -> list[str]:
    names = [name.decode() for name in get_algs()]
    # GSS key exchange needs Kerberos credentials this server does not have.
    return [name for name in names if not (skip_gss and name.startswith("gss-"))]


def _algorithms(value: str, everything: list[str]) -> list[str]:
    return everything if value == "all" else [name for name in value.split(",") if name]


async def _run_command(process: asyncssh.SSHServerProcess[bytes]) -> int:
    argv = shlex.split(process.command or "")
    if argv[:1] == ["echo"]:
        process.stdout.write((" ".join(argv[1:]) + "\n").encode())
        return 0
    if len(argv) == 4 and argv[:2] == ["head", "-c"] and argv[3] == "/dev/zero":
        remaining = int(argv[2])
        while remaining:
            size = min(remaining, _CHUNK)
            process.stdout.write(bytes(size))
            await process.stdout.drain()  # back-pressure: wait for the client's window
            remaining -= size
        return 0
    if argv == ["cat"]:
        while chunk := await process.stdin.read(_CHUNK):
            process.stdout.write(chunk)
            await process.stdout.drain()
        return 0
    if argv == ["sha256sum"]:
        digest = hashlib.sha256()
        while chunk := await process.stdin.read(_CHUNK):
            digest.update(chunk)
        process.stdout.write(f"{digest.hexdigest()}  -\n".encode())
        return 0
    if len(argv) == 2 and argv[0] == "exit" and argv[1].isdigit():
        return int(argv[1])
    process.stderr.write(f"asyncssh_server: unknown command {process.command!r}\n".encode())
    return 127


async def _handle(process: asyncssh.SSHServerProcess[bytes]) -> None:
    try:
        status = await _run_command(process)
    except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged, asyncssh.SignalReceived):
        status = 1
    except (BrokenPipeError, ConnectionError, asyncssh.Error):
        return  # the client went away: nobody to report a status to
    process.exit(status)


class _AuthServer(asyncssh.SSHServer):
    """The password, password-change, keyboard-interactive and banner behaviour of the options above."""

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self._conn: asyncssh.SSHServerConnection | None = None
        self._changed = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        if self._args.banner and self._conn is not None:
            self._conn.send_auth_banner(self._args.banner)
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return bool(self._args.password or self._args.expired_password)

    def validate_password(self, username: str, password: str) -> bool:
        if self._args.expired_password:
            old, new = self._args.expired_password.split(":", 1)
            if password == old and not self._changed:
                raise asyncssh.PasswordChangeRequired("Your password has expired; choose a new one")
            return password == new and self._changed
        return bool(password == self._args.password)

    def change_password(self, username: str, old_password: str, new_password: str) -> bool:
        old, new = self._args.expired_password.split(":", 1)
        if old_password == old and new_password == new:
            self._changed = True
            return True
        raise asyncssh.PasswordChangeRequired("That new password is not allowed; try another")

    def kbdint_auth_supported(self) -> bool:
        return bool(self._args.kbdint_prompt)

    def get_kbdint_challenge(
        self, username: str, lang: str, submethods: str
    ) -> tuple[str, str, str, list[tuple[str, bool]]]:
        prompts = [(text.rstrip("+"), text.endswith("+")) for text, _ in self._kbdint()]
        return ("trissh test", "Answer every prompt.", "", prompts)

    def validate_kbdint_response(self, username: str, responses: list[str]) -> bool:
        return responses == [answer for _, answer in self._kbdint()]

    def _kbdint(self) -> list[tuple[str, str]]:
        return [tuple(item.split("=", 1)) for item in self._args.kbdint_prompt]  # type: ignore[misc]


async def _serve(args: argparse.Namespace) -> None:
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=args.host_key,
        authorized_client_keys=args.authorized_keys,
        process_factory=_handle,
        sftp_factory=True,  # AsyncSSH's own SFTP server on the real file system (the interop tests)
        encoding=None,  # binary stdin/stdout
        kex_algs=_algorithms(args.kex_algs, _all_names(get_kex_algs, skip_gss=True)),
        encryption_algs=_algorithms(args.encryption_algs, _all_names(get_encryption_algs)),
        mac_algs=_algorithms(args.mac_algs, _all_names(get_mac_algs)),
        signature_algs=_algorithms(args.signature_algs, _all_names(get_public_key_algs)),
        compression_algs=_algorithms(args.compression_algs, _all_names(get_compression_algs)),
        server_factory=lambda: _AuthServer(args),
        allow_pty=False,
    )
    port = server.sockets[0].getsockname()[1]
    # Written whole and then renamed, so the parent never reads half a number.
    tmp = Path(f"{args.port_file}.tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, args.port_file)
    await server.wait_closed()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-file", required=True, help="where to write the listening port")
    parser.add_argument("--host-key", action="append", required=True, help="host private key (repeatable)")
    parser.add_argument("--authorized-keys", required=True, help="authorized_keys file")
    parser.add_argument("--kex-algs", default="all")
    parser.add_argument("--encryption-algs", default="all")
    parser.add_argument("--mac-algs", default="all")
    parser.add_argument("--signature-algs", default="all")
    parser.add_argument("--compression-algs", default="all")
    parser.add_argument("--password")
    parser.add_argument("--expired-password")
    parser.add_argument("--kbdint-prompt", action="append", default=[])
    parser.add_argument("--banner")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
