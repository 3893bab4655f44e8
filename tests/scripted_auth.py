"""A scripted server over real TCP for authentication tests: the key exchange done, then a test's script.

:func:`serve_scripted` listens on 127.0.0.1 and, for each connection, runs the
transport handshake with :class:`~sshserver_script.ScriptedServer` (which shares
no negotiation or key exchange code with trissh), accepts the ``ssh-userauth``
service, and hands a :class:`ScriptedLink` to the test's ``script``, which then
plays the server's side of user authentication message by message: the place
to be a hostile server (endless banners, thousands of prompts) that no real
server can be made into.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio
from sshserver_script import ScriptedServer

from trissh._wire import Reader, byte, string

__all__ = ["Listening", "ScriptedLink", "serve_scripted"]

SERVICE_REQUEST = 5
SERVICE_ACCEPT = 6


class ScriptedLink:
    """One client connection, after the key exchange: read its payloads, send ours."""

    def __init__(self, stream: trio.SocketStream, server: ScriptedServer) -> None:
        self.stream = stream
        self.server = server
        self._pending: deque[bytes] = deque()

    async def receive(self) -> bytes:
        """The client's next packet payload; b"" when it has closed the connection."""
        while not self._pending:
            data = await self.stream.receive_some(65536)
            if not data:
                return b""
            self._pending.extend(packet.payload for packet in self.server.feed(data))
        return self._pending.popleft()

    async def send(self, *payloads: bytes) -> None:
        await self.stream.send_all(b"".join(self.server.packet(p) for p in payloads))


@dataclass(frozen=True)
class Listening:
    host: str
    port: int


async def _handshake(stream: trio.SocketStream) -> ScriptedLink:
    server = ScriptedServer(seed=7)
    link = ScriptedLink(stream, server)
    await stream.send_all(server.version() + server.kexinit())
    packets = []
    while not any(p.type == 30 for p in packets):  # KEX_ECDH_INIT
        data = await stream.receive_some(65536)
        assert data, "the client closed during the key exchange"
        packets.extend(server.feed(data))
    await stream.send_all(server.handshake_reply(packets))
    request = await link.receive()
    while request and request[0] == 21:  # the client's NEWKEYS
        request = await link.receive()
    reader = Reader(request, "SERVICE_REQUEST")
    assert reader.byte() == SERVICE_REQUEST and reader.ascii() == "ssh-userauth", request
    await link.send(byte(SERVICE_ACCEPT) + string("ssh-userauth"))
    return link


async def serve_scripted(
    script: Callable[[ScriptedLink], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[Listening] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``script`` to every connection until cancelled (start it with ``nursery.start``)."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            try:
                link = await _handshake(stream)
                await script(link)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the client went away, which is what many of these tests expect

    async with trio.open_nursery() as nursery:
        task_status.started(Listening("127.0.0.1", port))
        await trio.serve_listeners(handle, listeners, handler_nursery=nursery)
