"""The reader task: the transport's one reader of the socket, for the connection's whole life.

It reads only when the state needs bytes, and handles each event: it awaits
the host-key hook, marks the connection secure (and starts the
``connection_secure`` hook in a task of its own), and hands service packets
up: to the packet handler once one is installed, to the pre-auth inbox
before. This is the throughput path: no await, no allocation per packet
beyond the state's own, and what the loop reads kept in local variables.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Final

import trio

from ._algorithms.hostkeys import PublicKey
from ._errors import ConnectionLost, HostKeyNotVerifiable
from ._socket_io import receive_into, receive_some
from ._supervision import stoppable
from ._sync import Latch
from ._transport.events import NEED_DATA, HostKeyReceived, KexComplete, PacketReceived
from ._transport.negotiate import DirectionAlgorithms

if TYPE_CHECKING:
    from ._driver import SSHClientTransport

__all__ = ["MIN_RECEIVE_SIZE", "RECEIVE_SIZE", "run_reader"]

log = logging.getLogger("trissh.transport")

#: The largest read: large reads mean fewer trips through the event loop on bulk data.
RECEIVE_SIZE: Final = 256 * 1024
#: The smallest read: enough for a handshake's packets.
MIN_RECEIVE_SIZE: Final = 16 * 1024

# Linux only: acknowledge received segments at once. sshd leaves Nagle on for
# sessions without a terminal, so a small reply written while its previous
# segment is unacknowledged waits for our delayed ACK: 40 ms, on the first
# command of most connections, without this.
_TCP_QUICKACK: Final = getattr(socket, "TCP_QUICKACK", None)


async def run_reader(transport: SSHClientTransport) -> None:
    """Read and handle events until the connection ends (by raising: the task's guard reports it)."""
    state = transport.state
    stream = transport.stream
    sock = transport._socket
    quickack = sock is not None and _TCP_QUICKACK is not None
    read_size = MIN_RECEIVE_SIZE
    # Once a connection moves bulk data, it reads into two reused buffers in
    # turn instead of a fresh 256 KiB allocation per read. Two, because the
    # packet reader may still hold the previous read (it never keeps views
    # into one beyond the next read).
    bulk_buffers: list[bytearray] = []
    turn = 0
    data: bytes | memoryview
    while True:
        event = state.next_event()
        if state.has_data_to_send:
            transport._kick_writer()
        if event is NEED_DATA:
            if bulk_buffers:
                assert sock is not None
                buffer = bulk_buffers[turn]
                turn ^= 1
                size = await receive_into(sock, buffer)
                data = memoryview(buffer)[:size]
            else:
                if sock is not None:
                    data = await receive_some(sock, read_size)
                else:
                    data = await stream.receive_some(read_size)
                # Adapt the read size: big reads for bulk data (fewer trips
                # through the event loop), small ones for chatty connections
                # (each read allocates its full size first).
                if len(data) == read_size:
                    read_size = min(read_size * 2, RECEIVE_SIZE)
                    if read_size == RECEIVE_SIZE and sock is not None:
                        bulk_buffers = [bytearray(RECEIVE_SIZE), bytearray(RECEIVE_SIZE)]
                elif len(data) < read_size // 4:
                    read_size = max(read_size // 2, MIN_RECEIVE_SIZE)
            if not data:
                raise ConnectionLost(f"{transport._where} closed the connection")
            transport.bytes_received += len(data)
            if quickack:
                assert sock is not None and _TCP_QUICKACK is not None
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            state.receive_data(data)
            del data  # the packet reader drops it once read: an idle connection holds no read
        elif type(event) is PacketReceived:
            handler = transport._packet_handler
            if handler is not None:
                handler(event.seq, event.payload)  # the hot path: no await per packet
            else:
                await transport._dispatch(event)
        elif isinstance(event, HostKeyReceived):
            await _check_host_key(transport, event.key)
        elif isinstance(event, KexComplete):
            _kex_complete(transport, event)


async def _check_host_key(transport: SSHClientTransport, key: PublicKey) -> None:
    # The hook may wait on anything (a prompt, say): closing the socket would
    # not wake it, so it runs in a scope that shutting down cancels.
    with stoppable(transport) as scope:
        trusted = await transport.verify_host_key(key, key.fingerprint)
    if scope.cancelled_caught:
        raise ConnectionLost(
            f"the connection to {transport._where} was closed while its host key was checked"
        )
    if not trusted:
        raise HostKeyNotVerifiable(
            f"host key for {transport._where} is not trusted: {key.key_type} {key.fingerprint}"
        )
    transport.state.accept_host_key()
    transport._kick_writer()
    transport._host_key_verifier = None  # only the first exchange asks; later ones must match it


def _kex_complete(transport: SSHClientTransport, event: KexComplete) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info(
            "%s: %s: kex %s, host key %s %s, out %s, in %s%s",
            transport._where,
            "key exchange done" if event.initial else "rekey done",
            event.negotiated.kex,
            event.negotiated.host_key,
            key.fingerprint if (key := transport.host_key) is not None else "?",
            _protection(event.negotiated.client_to_server),
            _protection(event.negotiated.server_to_client),
            ", strict kex" if event.negotiated.strict_kex else "",
        )
    if transport._rekey_seconds:
        transport._rekey_deadline = trio.current_time() + transport._rekey_seconds
    transport._kick_writer()
    if event.initial:
        transport._secure.set()
        # In a task of its own, so that the hook may use the connection
        # (request a service, as Conch's connectionSecure does) while
        # this task goes on reading.
        transport._start_connection_secure()
    transport._kex_done.set()
    transport._kex_done = Latch()


def _protection(direction: DirectionAlgorithms) -> str:
    """``cipher + mac`` (the cipher alone for an AEAD), and the compression when there is one."""
    mac = f" + {direction.mac}" if direction.mac else ""
    compression = f" + {direction.compression}" if direction.compression != "none" else ""
    return f"{direction.cipher}{mac}{compression}"
