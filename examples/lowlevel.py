"""Drive trissh's low-level transport yourself, as Twisted Conch users subclass SSHClientTransport.

Usage::

    python examples/lowlevel.py                    # against a throwaway local sshd
    python examples/lowlevel.py [user@]host[:port] --key PATH [--known-hosts PATH | --fingerprint SHA256:...]

The host key is checked against --known-hosts, or else compared with --fingerprint; with neither it is
printed and accepted (trust on first use: fine for a demo, not for real use). The key file must not be
encrypted. Steps, each marked in the code:

1. subclass ``trissh.SSHClientTransport`` and override its two awaitable hooks (Conch: Deferreds);
2. start its reader and writer tasks in a nursery and wait for the first key exchange;
3. ``request_service("ssh-userauth")``, then a public key USERAUTH_REQUEST built by hand and sent with
   ``send_packet`` / ``receive_packet`` (what Conch's SSHUserAuthClient does);
4. hand the authenticated transport to trissh's connection layer and run one command;
5. ``aclose()``: DISCONNECT, close the socket, end the tasks.

See docs/conch-mapping.md for every Conch method and its trissh counterpart.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Sequence
from pathlib import Path

import trio
from demo import parse_destination  # examples/demo.py, next to this file

import trissh
import trissh.testing

# RFC 4252 message numbers (trissh's own table, trissh._messages, is private).
USERAUTH_REQUEST, USERAUTH_FAILURE, USERAUTH_SUCCESS, USERAUTH_BANNER = 50, 51, 52, 53


def ssh_string(value: str | bytes) -> bytes:
    """An SSH ``string``: uint32 length, then the bytes (RFC 4251 §5)."""
    data = value.encode() if isinstance(value, str) else value
    return len(data).to_bytes(4, "big") + data


# --- 1. the subclass: Conch's verifyHostKey / connectionSecure, as coroutines ---------------------


class LowLevelClient(trissh.SSHClientTransport):
    def __init__(
        self,
        stream: trio.SocketStream,
        host: str,
        port: int,
        known_hosts: trissh.KnownHosts | None,
        fingerprint: str | None,
    ) -> None:
        # Algorithm lists as trissh.connect() takes them (kex_algs=, ciphers=, ...); None: OpenSSH's defaults.
        super().__init__(stream, host=host, port=port)
        self.known_hosts = known_hosts
        self.expected_fingerprint = fingerprint

    async def verify_host_key(self, host_key: trissh.PublicKey, fingerprint: str) -> bool:
        # Awaited by the reader task once the server has proved it holds host_key (its signature over
        # the exchange hash checked out). True goes on; False ends the connection with
        # HOST_KEY_NOT_VERIFIABLE, and wait_secure() raises trissh.HostKeyNotVerifiable.
        print(f"host key: {host_key.key_type} {fingerprint}")
        if self.known_hosts is not None:
            status = self.known_hosts.check(self.host, self.port, host_key)
            print(f"  known_hosts: {status.value}")
            return status is trissh.HostKeyStatus.TRUSTED
        if self.expected_fingerprint is not None:
            return fingerprint == self.expected_fingerprint
        print("  accepted unchecked (give --known-hosts or --fingerprint to check it)")
        return True

    async def connection_secure(self) -> None:
        # Runs in a task of its own after the first NEWKEYS, so, as in Conch, it could request a service
        # and authenticate right here. This example only prints what was agreed; session() below goes
        # on once wait_secure() returns.
        agreed = self.negotiated
        assert agreed is not None and self.session_id is not None
        print(f"key exchange: {agreed.kex}, host key algorithm: {agreed.host_key}")
        print(f"strict kex (Terrapin countermeasure): {agreed.strict_kex}")
        for label, way in (
            ("client to server", agreed.client_to_server),
            ("server to client", agreed.server_to_client),
        ):
            mac = way.mac or "none (the cipher is an AEAD)"
            print(f"{label}: cipher {way.cipher}, MAC {mac}, compression {way.compression}")
        print(f"session id: {self.session_id.hex()}")


# --- 3. user authentication by hand, over the transport's packet API -----------------------------


async def authenticate_publickey(
    transport: trissh.SSHClientTransport, user: str, key: trissh.PrivateKey
) -> None:
    await transport.request_service("ssh-userauth")  # SERVICE_REQUEST, then waits for SERVICE_ACCEPT
    assert transport.session_id is not None
    # An RSA key may sign with rsa-sha2-512 or rsa-sha2-256; try each until the server accepts one.
    for algorithm in key.signature_algorithms():
        request = (
            bytes([USERAUTH_REQUEST])
            + ssh_string(user)
            + ssh_string("ssh-connection")  # the service to start once authenticated
            + ssh_string("publickey")
            + b"\x01"  # TRUE: a signature follows
            + ssh_string(algorithm)
            + ssh_string(key.public_key.blob)
        )
        # RFC 4252 §7: sign the session id followed by the request itself.
        signature = key.sign(ssh_string(transport.session_id) + request, algorithm)
        await transport.send_packet(request + ssh_string(signature))
        reply = await transport.receive_packet()
        while reply[0] == USERAUTH_BANNER:  # a banner may come first; a real client would show it
            reply = await transport.receive_packet()
        if reply[0] == USERAUTH_SUCCESS:
            return
        if reply[0] != USERAUTH_FAILURE:
            raise trissh.ProtocolError(f"unexpected message {reply[0]} in reply to USERAUTH_REQUEST")
    raise trissh.PermissionDenied(
        f"{user!r} may not log in with {key.key_type} key {key.public_key.fingerprint}"
    )


async def session(transport: LowLevelClient, user: str, key: trissh.PrivateKey) -> None:
    await transport.wait_secure()  # verify_host_key has accepted the key by now
    print(f"server version: {transport.server_version}")
    await authenticate_publickey(transport, user, key)
    print(f"authenticated as {user} with {key.key_type} key {key.public_key.fingerprint}")
    # --- 4. the connection layer (RFC 4254) takes over the transport's packets from here.
    conn = trissh.SSHConnection(transport)
    result = await conn.run("uname -a")
    print(f"$ uname -a -> exit status {result.returncode}: {result.stdout.decode(errors='replace').strip()}")


async def run(
    host: str,
    port: int,
    user: str,
    key: trissh.PrivateKey,
    known_hosts: trissh.KnownHosts | None,
    fingerprint: str | None,
) -> None:
    stream = await trio.open_tcp_stream(host, port)
    transport = LowLevelClient(stream, host, port, known_hosts, fingerprint)
    error: trissh.SSHError | None = None
    async with trio.open_nursery() as nursery:
        # --- 2. sends our version line and KEXINIT, and starts the reader and writer tasks in nursery.
        transport.start(nursery)
        try:
            await session(transport, user, key)
        except trissh.SSHError as exc:
            # Raised again below, outside the nursery, so that it does not come wrapped in an ExceptionGroup.
            error = exc
        finally:
            # --- 5. flush, DISCONNECT, close the socket, and wait for the two tasks to end.
            await transport.aclose()
    if error is not None:
        raise error


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description="Drive trissh's low-level SSH transport, Conch style.")
    parser.add_argument("destination", nargs="?", help="[user@]host[:port]; none: start a throwaway sshd")
    parser.add_argument("--key", type=Path, help="private key file (not encrypted)")
    parser.add_argument("--known-hosts", type=Path, help="check the host key against this known_hosts file")
    parser.add_argument("--fingerprint", help="expected host key fingerprint, SHA256:...")
    args = parser.parse_args(argv)
    try:
        if args.destination is None:
            with trissh.testing.start_sshd() as server:
                print(f"throwaway sshd on {server.host}:{server.port}")
                key = trissh.load_private_key(server.client_key)
                trusted = trissh.KnownHosts.load([server.known_hosts])
                trio.run(run, server.host, server.port, server.username, key, trusted, None)
            return 0
        if args.key is None:
            parser.error("--key is required with a destination")
        user, host, port = parse_destination(args.destination)
        known = trissh.KnownHosts.load([args.known_hosts]) if args.known_hosts else None
        key = trissh.load_private_key(args.key)
        trio.run(run, host, port, user or getpass.getuser(), key, known, args.fingerprint)
        return 0
    except (trissh.SSHError, OSError, ValueError, RuntimeError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
