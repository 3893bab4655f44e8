"""A port-forwarding helper: fetch a status line from a service that only the SSH server can reach.

The code under test in ``test_tunnel.py``. It forwards a local port (``ssh -L``), lets the system pick it,
and speaks a line-based protocol to the service through it.
"""

from __future__ import annotations

import trio

import trissh


async def service_status(conn: trissh.SSHConnection, host: str, port: int) -> str:
    """Send ``STATUS`` to ``host:port`` (as seen from the server) and return the reply's first line."""
    async with conn.forward_local_port("127.0.0.1", 0, host, port) as forward:
        stream = await trio.open_tcp_stream("127.0.0.1", forward.port)
        async with stream:
            await stream.send_all(b"STATUS\n")
            reply = b""
            while b"\n" not in reply:
                chunk = await stream.receive_some(1024)
                if not chunk:
                    raise ConnectionError(f"{host}:{port} closed the connection before answering")
                reply += chunk
    return reply.split(b"\n", 1)[0].decode()
