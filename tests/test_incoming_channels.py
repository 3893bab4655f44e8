"""The channels a server may open to us (trissh._channels.incoming), fed to the dispatcher as packets:
only what was asked for is accepted, everything else refused, and the number open is bounded."""

from __future__ import annotations

import trio
from test_agent_forwarding import RecordingTransport

from trissh import _messages as msg
from trissh._channels.channel import ServerOpenedChannel
from trissh._channels.incoming import MAX_SERVER_OPENED_CHANNELS, Listening, Origin
from trissh._channels.mux import ChannelMux
from trissh._errors import ChannelOpenFailureReason, ConnectionLost
from trissh._wire import Reader, byte, string, uint32

PROHIBITED = ChannelOpenFailureReason.ADMINISTRATIVELY_PROHIBITED
SHORTAGE = ChannelOpenFailureReason.RESOURCE_SHORTAGE


def open_packet(kind: str, sender: int, fields: bytes = b"") -> bytes:
    return byte(msg.CHANNEL_OPEN) + string(kind) + uint32(sender) + uint32(1 << 20) + uint32(32768) + fields


def forwarded_tcpip(sender: int, address: str, port: int) -> bytes:
    return open_packet(
        "forwarded-tcpip", sender, string(address) + uint32(port) + string("10.0.0.9") + uint32(555)
    )


def refusal(packet: bytes) -> tuple[int, int, str]:
    """(recipient, reason, description) of a CHANNEL_OPEN_FAILURE."""
    reader = Reader(packet)
    assert reader.byte() == msg.CHANNEL_OPEN_FAILURE
    return reader.uint32(), reader.uint32(), reader.text()


def make_mux() -> tuple[RecordingTransport, ChannelMux]:
    transport = RecordingTransport()
    return transport, ChannelMux(transport)  # type: ignore[arg-type]


async def test_opens_nobody_asked_for_are_refused() -> None:
    transport, mux = make_mux()
    mux.handle_packet(0, forwarded_tcpip(1, "127.0.0.1", 8080))
    mux.handle_packet(1, open_packet("x11", 2, string("127.0.0.1") + uint32(6000)))
    mux.handle_packet(2, open_packet("forwarded-streamlocal@openssh.com", 3, string("/tmp/s") + string("")))
    mux.handle_packet(3, open_packet("auth-agent@openssh.com", 4))
    mux.handle_packet(4, open_packet("session", 5))
    answers = [refusal(packet) for packet in transport.sent]
    assert [(recipient, reason) for recipient, reason, _ in answers] == [(n, PROHIBITED) for n in range(1, 6)]
    assert "8080" in answers[0][2] and "'x11'" in answers[1][2] and "agent forwarding" in answers[3][2]
    assert mux.channels == {}


async def test_forwarded_tcpip_goes_to_its_forwarding_with_its_origin() -> None:
    transport, mux = make_mux()
    served: list[tuple[ServerOpenedChannel, Origin]] = []

    async def serve(channel: ServerOpenedChannel, origin: Origin) -> None:
        served.append((channel, origin))
        channel.confirm()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            mux.incoming.tcp[("localhost", 8080)] = Listening(nursery, serve, "test")
            mux.handle_packet(0, forwarded_tcpip(7, "localhost", 8080))
            # A server reporting the address it bound rather than ours: matched by the port alone.
            mux.handle_packet(1, forwarded_tcpip(8, "127.0.0.1", 8080))
            mux.handle_packet(2, forwarded_tcpip(9, "localhost", 8081))  # not forwarded
            await trio.testing.wait_all_tasks_blocked()
    assert sorted((channel.remote_id, origin) for channel, origin in served) == [
        (7, ("10.0.0.9", 555)),
        (8, ("10.0.0.9", 555)),
    ]
    confirmations = [p for p in transport.sent if p[0] == msg.CHANNEL_OPEN_CONFIRMATION]
    assert len(confirmations) == 2
    [refused] = [refusal(p) for p in transport.sent if p[0] == msg.CHANNEL_OPEN_FAILURE]
    assert refused[:2] == (9, PROHIBITED)


async def test_a_flood_of_opens_is_bounded() -> None:
    """Thousands of opens for a real forwarding: at most MAX_SERVER_OPENED_CHANNELS live, the rest refused."""
    transport, mux = make_mux()

    async def serve_slowly(channel: ServerOpenedChannel, origin: Origin) -> None:
        await trio.sleep_forever()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            mux.incoming.tcp[("", 2222)] = Listening(nursery, serve_slowly, "test")
            for sender in range(5000):
                mux.handle_packet(sender, forwarded_tcpip(sender, "", 2222))
            assert len(mux.channels) == MAX_SERVER_OPENED_CHANNELS
            refusals = [refusal(packet) for packet in transport.sent]
            assert len(refusals) == 5000 - MAX_SERVER_OPENED_CHANNELS
            assert {reason for _, reason, _ in refusals} == {SHORTAGE}
            nursery.cancel_scope.cancel()


async def test_a_pending_global_request_raises_when_the_connection_ends() -> None:
    transport, mux = make_mux()
    lost = ConnectionLost("gone for the test")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            outcome: list[BaseException | bytes | None] = []

            async def ask() -> None:
                try:
                    outcome.append(await mux.global_request("tcpip-forward", string("") + uint32(0)))
                except ConnectionLost as exc:
                    outcome.append(exc)

            nursery.start_soon(ask)
            await trio.testing.wait_all_tasks_blocked()
            transport.error = lost  # type: ignore[assignment]
            mux._connection_lost(lost)
    assert outcome == [lost]


async def test_global_request_replies_in_order() -> None:
    """RFC 4254 §4: replies come in the order of the requests."""
    _, mux = make_mux()
    results: dict[str, bytes | None] = {}

    async def ask(name: str) -> None:
        results[name] = await mux.global_request(name)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for name in ("first", "second"):
                nursery.start_soon(ask, name)
                await trio.testing.wait_all_tasks_blocked()  # "first" is sent first
            mux.handle_packet(0, byte(msg.REQUEST_SUCCESS) + uint32(4242))
            mux.handle_packet(1, byte(msg.REQUEST_FAILURE))
    assert results == {"first": uint32(4242), "second": None}
