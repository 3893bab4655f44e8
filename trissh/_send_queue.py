"""Sending: the send queue and its back-pressure, and the writer task that drains it.

A service packet is sealed into the state's output at once, in the sender's
task, when nothing is queued ahead of it and no key exchange holds packets
back (``state.can_send``); otherwise it waits in the :class:`SendQueue` (a
deque), in order, and the writer seals it after NEWKEYS. Either way the order
is the same. Channel data takes the same path, sealed straight from the
sender's buffer.

Senders are back-pressured by the bytes queued or sealed and not yet written
(:data:`QUEUE_HIGH_WATER`). Packets the reader itself must send in reply
(window adjusts, request failures) never wait: a task that waits on the queue
while a rekey holds it would stop the very reads that finish the rekey.

The writer (:func:`run_writer`) is the one task that writes to the socket,
started when there is something to send and ending when all of it is sent.
This is the throughput path: no allocation nor await per packet here.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Final

import trio

from . import _messages as msg
from ._errors import ProtocolError
from ._life_cycle import ENDED
from ._socket_io import send_all, send_now
from ._transport.state import TransportState
from ._wire import byte, string

if TYPE_CHECKING:
    from ._driver import SSHClientTransport

__all__ = ["MAX_REPLY_BACKLOG", "QUEUE_HIGH_WATER", "SEND_BATCH", "SendQueue", "run_writer"]

#: Service packets waiting for the writer, in bytes, beyond which senders wait.
#: A few channel windows' worth: enough to keep the socket busy, small enough
#: that a stalled server cannot make us buffer without bound.
QUEUE_HIGH_WATER: Final = 4 * 1024 * 1024
#: The writer sends once it has sealed this much, so sealing and sending overlap.
SEND_BATCH: Final = 256 * 1024
#: Packets the reader may queue in reply (window adjusts, request failures)
#: before we decide the server is flooding us with requests it never reads.
MAX_REPLY_BACKLOG: Final = 16384


class SendQueue:
    """Service packets for the writer, in order, with the byte count senders are back-pressured by.

    It seals nothing it need not hold: :meth:`submit` seals at once when it
    may. It starts no task either: the transport kicks the writer after each
    submission.
    """

    __slots__ = ("_space", "_state", "packets", "queued_bytes", "reply_backlog")

    def __init__(self, state: TransportState) -> None:
        self._state = state
        # None while empty (a deque allocates a 64-slot block, and most
        # connections are idle most of the time).
        self.packets: deque[bytes] | None = None
        self.queued_bytes = 0
        self._space: trio.lowlevel.ParkingLot | None = None  # made when a sender first waits
        #: Replies queued by the reader since the writer last ran (see MAX_REPLY_BACKLOG).
        self.reply_backlog = 0

    @property
    def full(self) -> bool:
        """Whether queued and sealed-but-unsent bytes have reached :data:`QUEUE_HIGH_WATER`."""
        return self.queued_bytes + self._state.pending_output_size >= QUEUE_HIGH_WATER

    @property
    def space(self) -> int:
        """Bytes that may be queued or sealed before senders must wait (0 when full)."""
        return max(QUEUE_HIGH_WATER - self.queued_bytes - self._state.pending_output_size, 0)

    async def park(self) -> None:
        """Wait until the writer makes room (or :meth:`wake_senders`); the caller checks again."""
        if self._space is None:
            self._space = trio.lowlevel.ParkingLot()
        await self._space.park()

    def wake_senders(self) -> None:
        """Wake every sender waiting for room (the connection is ending)."""
        if self._space is not None:
            self._space.unpark_all()

    def submit(self, payload: bytes) -> None:
        """Seal ``payload`` at once when nothing waits ahead of it and no key
        exchange holds packets back, else queue it (the order is the same either
        way). Sealing at once spares an idle connection a queue, and the writer
        a round trip through it."""
        state = self._state
        if self.packets is None and state.can_send:
            state.send(payload)
        else:
            self.append(payload)

    def submit_reply(self, payload: bytes) -> None:
        """:meth:`submit` for a reply the reader task sends, counted against :data:`MAX_REPLY_BACKLOG`.

        Raises:
            ProtocolError: the server has made us queue too many replies.
        """
        self.reply_backlog += 1
        if self.reply_backlog > MAX_REPLY_BACKLOG:
            raise ProtocolError(f"the server provoked over {MAX_REPLY_BACKLOG} replies it does not read")
        self.submit(payload)

    def submit_channel_data(self, headers: list[bytes], data: memoryview, packet_size: int) -> None:
        """Channel data packets ``headers[i] + data[i * packet_size:][:packet_size]``.

        When nothing is queued ahead of them and no key exchange holds packets
        back, they are sealed at once, straight from the caller's buffer: no
        queue round trip and one copy less. Otherwise they join the queue (as
        copies: the caller may reuse its buffer). Order is kept either way.
        """
        sealed = 0
        if self.packets is None and self._state.can_send:
            sealed = self._state.send_channel_data(headers, data, packet_size)
        for i in range(sealed, len(headers)):  # what a starting rekey holds back
            self.append(headers[i] + data[i * packet_size : (i + 1) * packet_size])

    def submit_disconnect(self, reason: int, description: str) -> None:
        """A DISCONNECT, behind whatever is queued."""
        payload = byte(msg.DISCONNECT) + _u32(int(reason)) + string(description) + string(b"")
        if self.packets is None:
            # Nothing waits ahead of it, so it need not wait for a key exchange
            # in progress either (DISCONNECT is allowed during one).
            self._state.send(payload)
        else:
            self.append(payload)

    def append(self, payload: bytes) -> None:
        queue = self.packets
        if queue is None:
            queue = self.packets = deque()
        queue.append(payload)
        self.queued_bytes += len(payload)

    def release(self) -> memoryview:
        """Seal what the queue may release now (up to :data:`SEND_BATCH`) and take the state's output.

        Wakes waiting senders when that makes room below the high-water mark.
        """
        state = self._state
        queue = self.packets
        if queue is not None:
            while queue and state.can_send:
                payload = queue.popleft()
                self.queued_bytes -= len(payload)
                state.send(payload)
                if state.pending_output_size >= SEND_BATCH:
                    break
            if not queue:
                self.packets = None
        self.reply_backlog = 0
        data = state.data_to_send()
        if self._space and not self.full:  # (an empty ParkingLot is false)
            self._space.unpark_all()
        return data


async def write(transport: SSHClientTransport, data: memoryview) -> None:
    """Write ``data`` (the state's output) to the transport's socket, or its stream when it is not a socket.

    ``_writing`` is set while it runs. When a write to the socket is
    interrupted, what it did not write goes back in front of the state's
    output, so the byte stream stays whole for whoever writes next. A stream
    that is not a socket cannot say how much of an interrupted ``send_all`` it
    took: after one, ``_writing`` stays set and nothing more is written.
    """
    transport._writing = True
    if transport._socket is None:
        await transport.stream.send_all(data)
        transport._writing = False
        transport.bytes_sent += len(data)
        return

    def keep_unsent(rest: memoryview) -> None:
        transport.bytes_sent += len(data) - len(rest)
        transport.state.put_back_unsent(rest)

    try:
        await send_all(transport._socket, data, keep_unsent)
    finally:
        transport._writing = False
    transport.bytes_sent += len(data)


async def run_writer(transport: SSHClientTransport) -> None:
    """The writer task: send what is sealed and what the queue may release, until there is nothing left.

    The transport sets ``_writer_running`` before starting it; it clears it
    when it ends.
    """
    release = transport._send_queue.release
    try:
        while transport._status not in ENDED:
            if trio.current_time() >= transport._rekey_deadline:
                # Checked when there is something to send, as OpenSSH does: an
                # idle connection is rekeyed when it is next used.
                transport._rekey_deadline = math.inf
                transport.state.start_rekey()
            if transport._writing:
                return  # a write to the stream was cut short at an unknown point: nothing may follow it
            data = release()
            if not data:
                return  # anything still queued waits for a key exchange, which kicks us again
            await write(transport, data)
    finally:
        transport._writer_running = False
        if transport._writer_idle is not None:
            transport._writer_idle.set()


def disconnect_now(transport: SSHClientTransport, reason: int, description: str) -> None:
    """Seal a DISCONNECT behind what is queued, and write what the socket takes at once.

    The usual close: a DISCONNECT to a socket with room for it, sent
    without starting a task or waiting (a thousand connections closing at
    once then hold nothing more than they did while open).
    """
    transport._send_queue.submit_disconnect(reason, description)
    send_at_once(transport)


def send_at_once(transport: SSHClientTransport) -> None:
    """Write what is sealed now, without waiting, unless the writer is part way through a batch."""
    sock = transport._socket
    state = transport.state
    if sock is None or transport._writing or not state.has_data_to_send:
        return
    data = state.data_to_send()
    try:
        sent = send_now(sock, data)
    except (trio.ClosedResourceError, OSError):
        sent = 0  # the writer's next attempt meets the same error and reports it
    transport.bytes_sent += sent
    state.put_back_unsent(data[sent:])


def _u32(value: int) -> bytes:
    return value.to_bytes(4, "big")
