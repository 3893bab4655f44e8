"""The two ends of a forwarded connection, each a small process of plain blocking sockets.

Usage::

    python -m benchmarks.endpoints sink                          # prints its port, serves until killed
    python -m benchmarks.endpoints app download|upload SIZE      # prints "ready", then waits for "go PORT"

Theory of operation
-------------------
The forwarding cases measure what an SSH client costs to carry a TCP connection: app -> the client's local
forward listener -> SSH -> sshd -> the sink. Neither the app nor the sink may be inside the client's process
(their work would be charged to it), so both are processes of their own, with no event loop, and they are
the same for every client.

The *sink* (started once per run by :mod:`benchmarks.run`, one thread per connection) speaks one request
line per connection:

* ``PUT <n>``: it reads exactly ``n`` bytes, hashing them, replies ``<count> <sha256 hex>`` and closes;
* ``GET <n> <seed>``: it sends ``n`` bytes, a 1 MiB block drawn from ``random.Random(seed)`` repeated, then
  closes (EOF ends the stream, so the receiver also checks that nothing more arrives).

The *app* does one transfer through the forward. It prepares first, before it prints ``ready`` (its block
of data and the sha256 it expects, so no hashing of its own data is timed), and starts only when the worker,
its meter running, writes ``go <port>``; then it connects, transfers, checks, and prints one JSON line:
``{"bytes": ..., "sha256": ..., "cpu_seconds": ...}`` (its own CPU, which the orchestrator subtracts from
the worker's whole-process figure) or ``{"error": ...}``. An upload's data is hashed by the sink, a
download's by the app, as it arrives.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import socket
import socketserver
import sys
from typing import Final

__all__ = ["BLOCK", "expected_sha256", "main", "put_request", "read_reply"]

#: The data is this block, repeated: generating it is not what is measured.
BLOCK: Final = 1 << 20
# The most one recv_into() takes.
_RECEIVE: Final = 1 << 20
# sshd opens up to 100 connections to the sink at once (streams); socketserver's default backlog is 5.
_BACKLOG: Final = 512


def put_request(size: int) -> bytes:
    """The request line of an upload of ``size`` bytes."""
    return f"PUT {size}\n".encode()


def read_reply(reply: bytes) -> tuple[int, str]:
    """Parse the sink's ``<count> <sha256>`` reply to a ``PUT``; raise ValueError if it is not one."""
    count, digest = reply.split()
    return int(count), digest.decode()


def expected_sha256(block: bytes, size: int) -> str:
    """The sha256 of ``size`` bytes of ``block`` repeated."""
    digest = hashlib.sha256()
    full, rest = divmod(size, len(block))
    for _ in range(full):
        digest.update(block)
    digest.update(block[:rest])
    return digest.hexdigest()


def _seeded_block(seed: int) -> bytes:
    return random.Random(seed).randbytes(BLOCK)


def _send_repeated(sock: socket.socket, block: bytes, size: int) -> None:
    full, rest = divmod(size, len(block))
    for _ in range(full):
        sock.sendall(block)
    sock.sendall(block[:rest])


def _receive_hashing(sock: socket.socket, limit: int | None) -> tuple[int, str]:
    """Receive until EOF (or ``limit`` bytes); return the count and sha256."""
    digest, count = hashlib.sha256(), 0
    buffer = memoryview(bytearray(_RECEIVE))
    while limit is None or count < limit:
        want = _RECEIVE if limit is None else min(_RECEIVE, limit - count)
        received = sock.recv_into(buffer, want)
        if not received:
            break
        digest.update(buffer[:received])
        count += received
    return count, digest.hexdigest()


def _read_line(sock: socket.socket) -> bytes:
    # Byte by byte: a request line is a few bytes, and nothing after it may be consumed here.
    line = b""
    while not line.endswith(b"\n") and len(line) < 100:
        byte = sock.recv(1)
        if not byte:
            break
        line += byte
    return line


class _SinkHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        words = _read_line(sock).split()
        if len(words) == 2 and words[0] == b"PUT":
            count, digest = _receive_hashing(sock, int(words[1]))
            sock.sendall(f"{count} {digest}\n".encode())
        elif len(words) == 3 and words[0] == b"GET":
            _send_repeated(sock, _seeded_block(int(words[2])), int(words[1]))
        sock.shutdown(socket.SHUT_WR)


class _Sink(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = _BACKLOG


def _serve() -> int:
    with _Sink(("127.0.0.1", 0), _SinkHandler) as server:
        print(server.server_address[1], flush=True)
        server.serve_forever()
    return 0


def _transfer(direction: str, size: int, port: int, block: bytes, seed: int) -> tuple[int, str]:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        if direction == "download":
            sock.sendall(f"GET {size} {seed}\n".encode())
            return _receive_hashing(sock, None)
        sock.sendall(put_request(size))
        _send_repeated(sock, block, size)
        reply = _receive_all(sock)
    return read_reply(reply)


def _receive_all(sock: socket.socket) -> bytes:
    reply = b""
    while chunk := sock.recv(4096):
        reply += chunk
    return reply


def _app(direction: str, size: int) -> int:
    seed = random.SystemRandom().getrandbits(64)
    block = _seeded_block(seed) if direction == "download" else os.urandom(BLOCK)
    expected = expected_sha256(block, size)
    print("ready", flush=True)
    words = sys.stdin.readline().split()
    if len(words) != 2 or words[0] != "go":
        return 1  # the worker gave up before the transfer
    try:
        count, digest = _transfer(direction, size, int(words[1]), block, seed)
        if (count, digest) != (size, expected):
            raise ValueError(f"{direction}: {count} bytes with sha256 {digest}, not {size} with {expected}")
        outcome: dict[str, object] = {"bytes": count, "sha256": digest}
    except (OSError, ValueError) as exc:
        outcome = {"error": f"{type(exc).__name__}: {exc}"}
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({**outcome, "cpu_seconds": usage.ru_utime + usage.ru_stime}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``sink`` or ``app DIRECTION SIZE``; see the module's docstring."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["sink"]:
        return _serve()
    if len(args) == 3 and args[0] == "app" and args[1] in ("download", "upload"):
        return _app(args[1], int(args[2]))
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
