"""The connection layer's checks on what the server sends (RFC 4254 §5), fed packets directly.

A stand-in records what the channel layer would send; the channel layer itself is the real one.
"""

from __future__ import annotations

import pytest

from trissh import _messages as msg
from trissh._channels.channel import INITIAL_WINDOW, MAX_PACKET
from trissh._channels.mux import ChannelMux
from trissh._channels.session import SessionChannel
from trissh._errors import ChannelOpenError, ProtocolError
from trissh._wire import boolean, byte, string, uint32


class RecordingTransport:
    """What ChannelMux needs of a transport: somewhere to put packets and callbacks."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.handler: object = None

    def set_packet_handler(self, handler: object) -> None:
        self.handler = handler

    def add_close_callback(self, callback: object) -> None:
        pass

    def send_packet_nowait(self, payload: bytes) -> None:
        self.sent.append(bytes(payload))


def open_channel() -> tuple[ChannelMux, SessionChannel, RecordingTransport]:
    transport = RecordingTransport()
    mux = ChannelMux(transport)  # type: ignore[arg-type]
    channel = mux.add(SessionChannel, "session")
    assert isinstance(channel, SessionChannel)
    confirm = byte(msg.CHANNEL_OPEN_CONFIRMATION) + uint32(channel.local_id) + uint32(7)
    mux.handle_packet(0, confirm + uint32(1 << 20) + uint32(32768))
    assert channel.opened.is_set() and channel.remote_id == 7
    return mux, channel, transport


def data(local_id: int, payload: bytes) -> bytes:
    return byte(msg.CHANNEL_DATA) + uint32(local_id) + string(payload)


def test_data_is_buffered_and_window_granted_back_when_consumed() -> None:
    """RFC 4254 §5.2: we grant window again once the consumer has taken data."""
    mux, channel, transport = open_channel()
    chunk = bytes(MAX_PACKET)
    for _ in range(INITIAL_WINDOW // 2 // MAX_PACKET):
        mux.handle_packet(1, data(channel.local_id, chunk))
    assert channel.buffered[0] == INITIAL_WINDOW // 2
    assert transport.sent == []  # nothing consumed yet: no adjust
    while channel.take(0, None) is not None:
        pass
    adjust = byte(msg.CHANNEL_WINDOW_ADJUST) + uint32(7) + uint32(INITIAL_WINDOW // 2)
    assert transport.sent == [adjust]


def test_data_beyond_the_window_is_refused() -> None:
    """RFC 4254 §5.2: a server may not send more than the window allows; nothing unbounded is buffered."""
    mux, channel, _ = open_channel()
    chunk = bytes(MAX_PACKET)
    for _ in range(INITIAL_WINDOW // MAX_PACKET):
        mux.handle_packet(1, data(channel.local_id, chunk))
    with pytest.raises(ProtocolError, match="window"):
        mux.handle_packet(1, data(channel.local_id, b"x"))


def test_oversized_data_packet_is_refused() -> None:
    mux, channel, _ = open_channel()
    with pytest.raises(ProtocolError, match="exceeds our maximum"):
        mux.handle_packet(1, data(channel.local_id, bytes(MAX_PACKET + 1)))


@pytest.mark.parametrize(
    "payload",
    [
        byte(msg.CHANNEL_DATA) + uint32(0) + uint32(10) + b"short",  # length field larger than the data
        byte(msg.CHANNEL_DATA) + uint32(0) + uint32(1) + b"xy",  # trailing bytes
        byte(msg.CHANNEL_DATA) + uint32(0),  # truncated header
    ],
)
def test_malformed_data_is_refused(payload: bytes) -> None:
    mux, _, _ = open_channel()
    with pytest.raises(ProtocolError):
        mux.handle_packet(1, payload)


@pytest.mark.parametrize(
    "payload",
    [
        data(99, b"x"),
        byte(msg.CHANNEL_WINDOW_ADJUST) + uint32(99) + uint32(1),
        byte(msg.CHANNEL_EOF) + uint32(99),
        byte(msg.CHANNEL_CLOSE) + uint32(99),
        byte(msg.CHANNEL_SUCCESS) + uint32(99),
    ],
)
def test_messages_for_unknown_channels_are_refused(payload: bytes) -> None:
    mux, _, _ = open_channel()
    with pytest.raises(ProtocolError, match="unknown channel 99"):
        mux.handle_packet(1, payload)


def test_window_may_not_grow_past_2_to_the_32() -> None:
    """RFC 4254 §5.2: the window is at most 2^32 - 1 bytes (fast path and slow path alike)."""
    mux, channel, _ = open_channel()
    with pytest.raises(ProtocolError, match="2\\^32"):
        mux.handle_packet(1, byte(msg.CHANNEL_WINDOW_ADJUST) + uint32(channel.local_id) + uint32(0xFFFFFFFF))


def test_data_after_eof_is_refused() -> None:
    mux, channel, _ = open_channel()
    mux.handle_packet(1, byte(msg.CHANNEL_EOF) + uint32(channel.local_id))
    with pytest.raises(ProtocolError, match="after EOF"):
        mux.handle_packet(2, data(channel.local_id, b"late"))


def test_reply_without_a_request_is_refused() -> None:
    mux, channel, _ = open_channel()
    with pytest.raises(ProtocolError, match="no request pending"):
        mux.handle_packet(1, byte(msg.CHANNEL_SUCCESS) + uint32(channel.local_id))


def test_server_close_is_answered_and_frees_the_channel() -> None:
    """RFC 4254 §5.3: we answer CLOSE with CLOSE, then the number is free."""
    mux, channel, transport = open_channel()
    status = byte(msg.CHANNEL_REQUEST) + uint32(channel.local_id) + string("exit-status") + boolean(False)
    mux.handle_packet(1, status + uint32(3))
    mux.handle_packet(2, byte(msg.CHANNEL_CLOSE) + uint32(channel.local_id))
    assert transport.sent == [byte(msg.CHANNEL_CLOSE) + uint32(7)]
    assert channel.is_closed and channel.returncode == 3
    assert channel.local_id not in mux.channels


def test_open_failure_carries_code_and_reason() -> None:
    transport = RecordingTransport()
    mux = ChannelMux(transport)  # type: ignore[arg-type]
    channel = mux.add(SessionChannel, "session")
    failure = byte(msg.CHANNEL_OPEN_FAILURE) + uint32(channel.local_id) + uint32(1)
    mux.handle_packet(0, failure + string("no sessions for you") + string(""))
    assert isinstance(channel.open_error, ChannelOpenError)
    assert channel.open_error.code == 1 and "no sessions" in channel.open_error.reason


def test_requests_from_the_server_are_refused_when_unknown() -> None:
    """Global requests and channel opens from the server get a failure reply, never silence."""
    mux, _, transport = open_channel()
    mux.handle_packet(1, byte(msg.GLOBAL_REQUEST) + string("keepalive@openssh.com") + boolean(True))
    mux.handle_packet(2, byte(msg.GLOBAL_REQUEST) + string("hostkeys-00@openssh.com") + boolean(False))
    opening = byte(msg.CHANNEL_OPEN) + string("x11") + uint32(5) + uint32(1000) + uint32(1000)
    mux.handle_packet(3, opening)
    assert transport.sent[0] == byte(msg.REQUEST_FAILURE)
    assert transport.sent[1][:9] == byte(msg.CHANNEL_OPEN_FAILURE) + uint32(5) + uint32(1)
    assert len(transport.sent) == 2  # hostkeys-00 wanted no reply


def test_global_request_replies_go_to_their_requests_in_order() -> None:
    """RFC 4254 §4: replies come in request order; one without a request is a protocol error."""
    mux, _, transport = open_channel()
    replies: list[tuple[str, bool, bytes]] = []
    mux.send_global_request_nowait("first@example.com", on_reply=lambda ok, d: replies.append(("1", ok, d)))
    mux.send_global_request_nowait("no-reply@example.com")
    mux.send_global_request_nowait(
        "second@example.com", b"\x00\x00\x00\x05", lambda ok, d: replies.append(("2", ok, d))
    )
    assert transport.sent[-3:] == [
        byte(msg.GLOBAL_REQUEST) + string("first@example.com") + boolean(True),
        byte(msg.GLOBAL_REQUEST) + string("no-reply@example.com") + boolean(False),
        byte(msg.GLOBAL_REQUEST) + string("second@example.com") + boolean(True) + b"\x00\x00\x00\x05",
    ]
    mux.handle_packet(1, byte(msg.REQUEST_FAILURE))
    mux.handle_packet(2, byte(msg.REQUEST_SUCCESS) + uint32(2222))
    assert replies == [("1", False, b""), ("2", True, uint32(2222))]
    with pytest.raises(ProtocolError, match="no global request of ours awaits a reply"):
        mux.handle_packet(3, byte(msg.REQUEST_SUCCESS))
