"""A channel's life as one ChannelState (channel.py): each transition driven by packets fed to the real
ChannelMux, with a stand-in for the transport, plus one run against sshd."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from test_integration import connect

from trissh import _messages as msg
from trissh._channels.channel import Channel, ChannelState, ServerOpenedChannel
from trissh._channels.mux import ChannelMux
from trissh._channels.session import SessionChannel
from trissh._channels.streams import ChannelStream
from trissh._errors import ChannelOpenError, ChannelOpenFailureReason, ConnectionLost, ProtocolError, SSHError
from trissh._wire import byte, string, uint32
from trissh.testing import SSHServer

TIMEOUT = 20
REMOTE_ID = 7


class FakeTransport:
    """What ChannelMux and Channel need of a transport: packets are recorded, the close callback kept."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.error: SSHError | None = None
        self.queue_space = 1 << 20
        self._close_callbacks: list[object] = []

    def set_packet_handler(self, handler: object) -> None:
        pass

    def add_close_callback(self, callback: object) -> None:
        self._close_callbacks.append(callback)

    def send_packet_nowait(self, payload: bytes) -> None:
        if self.error is None:
            self.sent.append(bytes(payload))

    async def send_packet(self, payload: bytes) -> None:
        self.send_packet_nowait(payload)
        await trio.lowlevel.checkpoint()

    def send_channel_data(self, headers: list[bytes], data: memoryview, packet_size: int) -> None:
        for index, header in enumerate(headers):
            self.sent.append(header + bytes(data[index * packet_size :][:packet_size]))

    def die(self, error: SSHError) -> None:
        """As the real transport does: the error first, then the close callbacks."""
        self.error = error
        for callback in self._close_callbacks:
            callback(error)  # type: ignore[operator]


def state(channel: Channel) -> ChannelState:
    """The channel's state, read afresh (so that type checkers do not narrow it across actions)."""
    return channel.state


CLOSE_OURS = byte(msg.CHANNEL_CLOSE) + uint32(REMOTE_ID)


def new_channel() -> tuple[ChannelMux, SessionChannel, FakeTransport]:
    transport = FakeTransport()
    mux = ChannelMux(transport)  # type: ignore[arg-type]
    channel = mux.add(SessionChannel, "session")
    assert isinstance(channel, SessionChannel)
    return mux, channel, transport


def confirm(mux: ChannelMux, channel: SessionChannel) -> None:
    confirmation = byte(msg.CHANNEL_OPEN_CONFIRMATION) + uint32(channel.local_id) + uint32(REMOTE_ID)
    mux.handle_packet(0, confirmation + uint32(1 << 20) + uint32(32768))


def open_channel() -> tuple[ChannelMux, SessionChannel, FakeTransport]:
    mux, channel, transport = new_channel()
    confirm(mux, channel)
    return mux, channel, transport


def server_close(mux: ChannelMux, channel: SessionChannel) -> None:
    mux.handle_packet(9, byte(msg.CHANNEL_CLOSE) + uint32(channel.local_id))


async def test_opening_becomes_open_on_confirmation() -> None:
    with trio.fail_after(TIMEOUT):
        mux, channel, transport = new_channel()
        assert state(channel) is ChannelState.OPENING
        assert not channel.opened.is_set() and not channel.is_closed and not channel.close_sent
        confirm(mux, channel)
        assert state(channel) is ChannelState.OPEN
        assert channel.remote_id == REMOTE_ID
        await channel.wait_opened()  # returns at once: the open succeeded
        assert not channel.finished.is_set() and channel.error is None and channel.open_error is None
        channel.check_sendable()  # nothing to raise
        assert transport.sent == []


async def test_open_failure_is_refused() -> None:
    with trio.fail_after(TIMEOUT):
        mux, channel, _ = new_channel()
        failure = byte(msg.CHANNEL_OPEN_FAILURE) + uint32(channel.local_id) + uint32(2)
        mux.handle_packet(0, failure + string("connect failed") + string(""))
        assert state(channel) is ChannelState.REFUSED
        assert channel.opened.is_set() and channel.finished.is_set() and channel.is_closed
        assert not channel.close_sent and channel.error is None
        with pytest.raises(ChannelOpenError, match="connect failed"):
            await channel.wait_opened()
        assert channel.local_id not in mux.channels
        channel.close_locally()  # what open_channel does on the way out: nothing to send
        assert state(channel) is ChannelState.REFUSED


async def test_our_close_is_closing_until_the_server_answers() -> None:
    with trio.fail_after(TIMEOUT):
        mux, channel, transport = open_channel()
        channel.close_locally()
        assert state(channel) is ChannelState.CLOSING
        assert transport.sent == [CLOSE_OURS]
        assert channel.close_sent and channel.closed_locally and not channel.is_closed
        assert not channel.finished.is_set()
        with pytest.raises(trio.ClosedResourceError):
            channel.check_sendable()
        # The server may still send data until it sees our CLOSE: accepted (and dropped: nobody reads).
        mux.handle_packet(1, byte(msg.CHANNEL_DATA) + uint32(channel.local_id) + string(b"late"))
        channel.close_locally()  # a second close sends nothing more
        assert transport.sent == [CLOSE_OURS]


async def test_both_closes_make_it_closed() -> None:
    with trio.fail_after(TIMEOUT):
        mux, channel, transport = open_channel()
        channel.close_locally()
        server_close(mux, channel)
        assert state(channel) is ChannelState.CLOSED
        assert transport.sent == [CLOSE_OURS]  # their CLOSE answered ours: no second one
        assert channel.is_closed and channel.finished.is_set() and channel.close_sent
        assert channel.local_id not in mux.channels
        with pytest.raises(trio.ClosedResourceError):
            channel.check_sendable()


async def test_server_closes_first() -> None:
    """Their CLOSE is answered at once, so OPEN goes straight to CLOSED; our handle is still usable
    until we close it: sends are broken, reads see the end."""
    with trio.fail_after(TIMEOUT):
        mux, channel, transport = open_channel()
        mux.handle_packet(1, byte(msg.CHANNEL_DATA) + uint32(channel.local_id) + string(b"last"))
        server_close(mux, channel)
        assert state(channel) is ChannelState.CLOSED
        assert transport.sent == [CLOSE_OURS]
        assert channel.is_closed and channel.close_sent and not channel.closed_locally
        stream = ChannelStream(channel)
        with pytest.raises(trio.BrokenResourceError):
            await stream.send_all(b"x")
        assert await stream.receive_some() == b"last"
        assert await stream.receive_some() == b""
        await stream.aclose()
        assert state(channel) is ChannelState.CLOSED and channel.closed_locally
        assert transport.sent == [CLOSE_OURS]  # nothing more sent
        with pytest.raises(trio.ClosedResourceError):
            await stream.receive_some()


async def test_close_before_confirmation_closes_on_confirmation() -> None:
    with trio.fail_after(TIMEOUT):
        mux, channel, transport = new_channel()
        channel.close_locally()
        assert state(channel) is ChannelState.OPENING and transport.sent == []
        confirm(mux, channel)
        assert state(channel) is ChannelState.CLOSING
        assert transport.sent == [CLOSE_OURS]
        server_close(mux, channel)
        assert state(channel) is ChannelState.CLOSED


@pytest.mark.parametrize("closing", [False, True])
async def test_connection_death_fails_the_channel(closing: bool) -> None:
    """Tasks waiting on the channel wake and raise the connection's error; FAILED is final."""
    with trio.fail_after(TIMEOUT):
        _, channel, transport = open_channel()
        if closing:
            channel.send_close_nowait()
            assert state(channel) is ChannelState.CLOSING
        lost = ConnectionLost("the connection was reset")
        raised: list[BaseException] = []

        async def read() -> None:
            with pytest.raises(ConnectionLost) as info:
                await ChannelStream(channel).receive_some()
            raised.append(info.value)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read)
            nursery.start_soon(channel.finished.wait)
            await trio.testing.wait_all_tasks_blocked()
            transport.die(lost)
        assert raised == [lost]
        assert state(channel) is ChannelState.FAILED
        assert channel.error is lost and channel.is_closed and not channel.close_sent
        with pytest.raises(ConnectionLost):
            channel.check_sendable()
        channel.fail(ConnectionLost("a second error"))  # the first one wins
        assert channel.error is lost
        channel.close_locally()
        assert state(channel) is ChannelState.FAILED


async def test_connection_death_while_opening() -> None:
    with trio.fail_after(TIMEOUT):
        _, channel, transport = new_channel()
        lost = ConnectionLost("gone")
        transport.die(lost)
        assert state(channel) is ChannelState.FAILED and channel.opened.is_set()
        with pytest.raises(ConnectionLost):
            await channel.wait_opened()


async def test_server_opened_channel_confirm_and_refuse() -> None:
    with trio.fail_after(TIMEOUT):
        transport = FakeTransport()
        mux = ChannelMux(transport)  # type: ignore[arg-type]
        confirmed = mux.add(ServerOpenedChannel, "auth-agent@openssh.com")
        refused = mux.add(ServerOpenedChannel, "auth-agent@openssh.com")
        assert isinstance(confirmed, ServerOpenedChannel) and isinstance(refused, ServerOpenedChannel)
        confirmed.set_remote(3, 65536, 16384)
        refused.set_remote(4, 65536, 16384)
        assert state(confirmed) is ChannelState.OPENING
        assert confirmed.confirm()
        assert state(confirmed) is ChannelState.OPEN and confirmed.opened.is_set()
        assert not confirmed.confirm()  # only once
        refused.refuse(ChannelOpenFailureReason.CONNECT_FAILED, "no agent")
        assert state(refused) is ChannelState.REFUSED and refused.finished.is_set()
        assert refused.local_id not in mux.channels
        assert not refused.confirm()


async def test_illegal_transitions_are_bugs() -> None:
    with trio.fail_after(TIMEOUT):
        mux, channel, _ = open_channel()
        server_close(mux, channel)
        with pytest.raises(AssertionError, match="CLOSED -> OPEN"):
            channel._set_state(ChannelState.OPEN)
        _, opening, _ = new_channel()
        with pytest.raises(AssertionError, match="OPENING -> CLOSING"):
            opening._set_state(ChannelState.CLOSING)


async def test_states_against_sshd(sshd: SSHServer) -> None:
    """A real session: OPEN while the command runs, CLOSED once it exits (sshd closes first)."""
    with trio.fail_after(TIMEOUT):
        async with connect(sshd) as conn, conn.open_process("read line; echo $line") as process:
            channel = process.channel
            assert state(channel) is ChannelState.OPEN and process.running
            await process.stdin.send_all(b"hello\n")
            assert await process.wait() == 0
            assert state(channel) is ChannelState.CLOSED and not process.running
            assert not channel.closed_locally
        assert channel.closed_locally and state(channel) is ChannelState.CLOSED


async def test_close_for_an_unconfirmed_open_of_ours_is_a_protocol_error() -> None:
    """CLOSE before the server confirmed our open: we have no remote id to answer with."""
    with trio.fail_after(TIMEOUT):
        mux, channel, transport = new_channel()
        with pytest.raises(ProtocolError, match=f"channel {channel.local_id}, never confirmed"):
            server_close(mux, channel)
        assert transport.sent == []
