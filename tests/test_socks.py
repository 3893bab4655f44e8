"""The SOCKS4/4a/5 server handshake for dynamic forwarding: byte-level unit tests and real curl clients."""

from __future__ import annotations

import ipaddress
import logging
import shutil
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from trissh._errors import ChannelOpenError, ChannelOpenFailureReason
from trissh._forwarding.socks import (
    SocksError,
    SocksRequest,
    read_socks_request,
    send_socks_reply,
    serve_socks_client,
)

Opener = Callable[[str, int], Awaitable[trio.abc.HalfCloseableStream]]

S5_GREETING = b"\x05\x01\x00"  # one method: no authentication
S5_CHOSEN = b"\x05\x00"


def socks4(port: int, ip: bytes, user: bytes = b"me", name: bytes | None = None, command: int = 1) -> bytes:
    request = bytes([4, command]) + port.to_bytes(2) + ip + user + b"\0"
    return request if name is None else request + name + b"\0"


def socks5(address_type: int, address: bytes, port: int, command: int = 1) -> bytes:
    return bytes([5, command, 0, address_type]) + address + port.to_bytes(2)


def s5_reply(code: int) -> bytes:
    return bytes([5, code, 0, 1]) + bytes(6)


def s4_reply(code: int) -> bytes:
    return bytes([0, code]) + bytes(6)


async def handshake(data: bytes, *, eof: bool = False) -> tuple[SocksRequest, trio.abc.Stream]:
    client, server = trio.testing.memory_stream_pair()
    await client.send_all(data)
    if eof:
        await client.send_eof()
    return await read_socks_request(server), client


async def rejected(data: bytes, match: str, *, eof: bool = False) -> bytes:
    """Feed ``data``, expect SocksError matching ``match``; return everything the server sent back."""
    client, server = trio.testing.memory_stream_pair()
    await client.send_all(data)
    if eof:
        await client.send_eof()
    with pytest.raises(SocksError, match=match):
        await read_socks_request(server)
    await server.aclose()
    received = b""
    while chunk := await client.receive_some():
        received += chunk
    return received


# --- requests that succeed ---------------------------------------------------------------------------


async def test_socks4_ip() -> None:
    with trio.fail_after(10):
        request, client = await handshake(socks4(8080, bytes([10, 1, 2, 3])))
        assert request == SocksRequest(4, "10.1.2.3", 8080)
        await send_socks_reply(client, request, True)  # any stream will do for the reply itself


async def test_socks4a_name() -> None:
    with trio.fail_after(10):
        request, _ = await handshake(socks4(443, bytes([0, 0, 0, 1]), name=b"example.org"))
        assert request == SocksRequest(4, "example.org", 443)


async def test_socks4_empty_user_id() -> None:
    with trio.fail_after(10):
        request, _ = await handshake(socks4(22, bytes([127, 0, 0, 1]), user=b""))
        assert request == SocksRequest(4, "127.0.0.1", 22)


async def test_socks5_ipv4() -> None:
    with trio.fail_after(10):
        request, client = await handshake(S5_GREETING + socks5(1, bytes([192, 0, 2, 7]), 80))
        assert request == SocksRequest(5, "192.0.2.7", 80)
        assert await client.receive_some() == S5_CHOSEN


async def test_socks5_domain() -> None:
    with trio.fail_after(10):
        name = b"ssh.example.com"
        request, _ = await handshake(S5_GREETING + socks5(3, bytes([len(name)]) + name, 2222))
        assert request == SocksRequest(5, "ssh.example.com", 2222)


async def test_socks5_ipv6_is_canonical_text() -> None:
    with trio.fail_after(10):
        address = ipaddress.IPv6Address("2001:db8:0:0:0:0:0:1").packed
        request, _ = await handshake(S5_GREETING + socks5(4, address, 443))
        assert request == SocksRequest(5, "2001:db8::1", 443)


async def test_socks5_picks_no_auth_among_several_methods() -> None:
    with trio.fail_after(10):
        request, client = await handshake(b"\x05\x03\x02\x01\x00" + socks5(1, bytes(4), 1))
        assert request.host == "0.0.0.0"
        assert await client.receive_some() == S5_CHOSEN


async def test_socks5_request_in_pieces() -> None:
    """A request trickling in one byte at a time is assembled the same."""
    with trio.fail_after(10):
        client, server = trio.testing.memory_stream_pair()
        data = S5_GREETING + socks5(3, b"\x04host", 7)

        async def trickle() -> None:
            for i in range(len(data)):
                await client.send_all(data[i : i + 1])
                await trio.sleep(0)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trickle)
            assert await read_socks_request(server) == SocksRequest(5, "host", 7)


@pytest.mark.parametrize(
    "request_bytes",
    [
        socks4(80, bytes([0, 0, 0, 9]), name=b"web"),
        socks4(80, bytes([10, 0, 0, 1])),
        S5_GREETING + socks5(3, b"\x03web", 80),
    ],
    ids=["socks4a", "socks4", "socks5"],
)
async def test_early_data_kept_and_rest_left_unread(request_bytes: bytes) -> None:
    """Bytes pipelined behind the request come back as early_data; later bytes stay in the stream."""
    with trio.fail_after(10):
        client, server = trio.testing.memory_stream_pair()
        await client.send_all(request_bytes + b"GET / HTTP/1.0\r\n\r\n")
        request = await read_socks_request(server)
        assert request.early_data == b"GET / HTTP/1.0\r\n\r\n"
        await client.send_all(b"later")
        assert await server.receive_some() == b"later"


# --- requests that are refused -----------------------------------------------------------------------


async def test_wrong_version_byte() -> None:
    with trio.fail_after(10):
        assert await rejected(b"GET / HTTP/1.1\r\n\r\n", "first byte 0x47") == b""


async def test_wrong_version_in_socks5_request() -> None:
    with trio.fail_after(10):
        sent = await rejected(S5_GREETING + b"\x04\x01\x00\x01" + bytes(6), "version byte 0x04")
        assert sent == S5_CHOSEN


@pytest.mark.parametrize(("command", "name"), [(2, "BIND"), (3, "UDP ASSOCIATE")])
async def test_socks5_unsupported_command(command: int, name: str) -> None:
    with trio.fail_after(10):
        sent = await rejected(S5_GREETING + socks5(1, bytes([10, 0, 0, 1]), 80, command=command), name)
        assert sent == S5_CHOSEN + s5_reply(0x07)


async def test_socks4_bind_rejected() -> None:
    with trio.fail_after(10):
        sent = await rejected(socks4(80, bytes([10, 0, 0, 1]), command=2), "BIND")
        assert sent == s4_reply(0x5B)


async def test_socks5_no_acceptable_method() -> None:
    with trio.fail_after(10):
        sent = await rejected(b"\x05\x02\x01\x02", "no 'no authentication' method")
        assert sent == b"\x05\xff"


async def test_socks5_no_methods_at_all() -> None:
    with trio.fail_after(10):
        assert await rejected(b"\x05\x00", "no 'no authentication'") == b"\x05\xff"


async def test_socks5_bad_address_type() -> None:
    with trio.fail_after(10):
        sent = await rejected(S5_GREETING + socks5(2, bytes(4), 80), "address type 2")
        assert sent == S5_CHOSEN + s5_reply(0x08)


@pytest.mark.parametrize(
    "data",
    [
        b"\x04",
        socks4(80, bytes([10, 0, 0, 1]))[:5],
        socks4(80, bytes([10, 0, 0, 1]))[:-1],  # user id without its NUL
        socks4(80, bytes([0, 0, 0, 1]), name=b"host")[:-1],  # SOCKS4a name without its NUL
        b"\x05\x02\x00",
        S5_GREETING + socks5(3, b"\x0bexample.org", 80)[:-1],
        S5_GREETING + socks5(4, bytes(16), 80)[:10],
    ],
)
async def test_truncated_request(data: bytes) -> None:
    with trio.fail_after(10):
        await rejected(data, "in the middle of the request", eof=True)


async def test_socks4_user_id_too_long() -> None:
    with trio.fail_after(10):
        await rejected(socks4(80, bytes([10, 0, 0, 1]), user=b"u" * 256), "user id longer than 255")


async def test_socks4a_name_too_long() -> None:
    with trio.fail_after(10):
        await rejected(socks4(80, bytes([0, 0, 0, 1]), name=b"h" * 300), "host name longer than 255")


async def test_socks4a_longest_name_accepted() -> None:
    with trio.fail_after(10):
        request, _ = await handshake(socks4(80, bytes([0, 0, 0, 1]), user=b"u" * 255, name=b"h" * 255))
        assert request.host == "h" * 255


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (S5_GREETING + socks5(3, b"\x00", 80), S5_CHOSEN + s5_reply(0x01)),
        (socks4(80, bytes([0, 0, 0, 1]), name=b""), s4_reply(0x5B)),
    ],
    ids=["socks5", "socks4a"],
)
async def test_empty_domain(data: bytes, reply: bytes) -> None:
    with trio.fail_after(10):
        assert await rejected(data, "empty destination host name") == reply


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (S5_GREETING + socks5(3, b"\x06b\xc3\xbccher", 80), S5_CHOSEN + s5_reply(0x01)),
        (socks4(80, bytes([0, 0, 0, 1]), name="bücher".encode()), s4_reply(0x5B)),
    ],
    ids=["socks5", "socks4a"],
)
async def test_non_ascii_domain(data: bytes, reply: bytes) -> None:
    with trio.fail_after(10):
        assert await rejected(data, "not ASCII") == reply


async def test_control_characters_in_domain() -> None:
    with trio.fail_after(10):
        await rejected(S5_GREETING + socks5(3, b"\x08evil\nlog", 80), "control character")


@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (socks4(0, bytes([10, 0, 0, 1])), s4_reply(0x5B)),
        (S5_GREETING + socks5(1, bytes([10, 0, 0, 1]), 0), S5_CHOSEN + s5_reply(0x01)),
    ],
    ids=["socks4", "socks5"],
)
async def test_port_zero(data: bytes, reply: bytes) -> None:
    with trio.fail_after(10):
        assert await rejected(data, "port 0") == reply


# --- serve_socks_client ------------------------------------------------------------------------------


async def copy(source: trio.abc.ReceiveStream, sink: trio.abc.SendStream) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
        if isinstance(sink, trio.abc.HalfCloseableStream):
            await sink.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the other side is gone; the other direction ends the relay


async def relay(client: trio.abc.Stream, destination: trio.abc.HalfCloseableStream) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(copy, client, destination)
        nursery.start_soon(copy, destination, client)


async def read_all(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data


def refusing(exc: Exception) -> Opener:
    async def open_destination(host: str, port: int) -> trio.abc.HalfCloseableStream:
        raise exc

    return open_destination


async def never_relay(client: trio.abc.Stream, destination: trio.abc.HalfCloseableStream) -> None:
    raise AssertionError("relay must not run")


@pytest.mark.parametrize(
    "exc",
    [
        ChannelOpenError(ChannelOpenFailureReason.CONNECT_FAILED, "refused"),
        ConnectionRefusedError(111, "Connection refused"),
    ],
    ids=["ChannelOpenError", "OSError"],
)
@pytest.mark.parametrize(
    ("data", "reply"),
    [
        (socks4(80, bytes([10, 0, 0, 1])), s4_reply(0x5B)),
        (S5_GREETING + socks5(3, b"\x04host", 80), S5_CHOSEN + s5_reply(0x05)),
    ],
    ids=["socks4", "socks5"],
)
async def test_failure_reply(
    data: bytes, reply: bytes, exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(10):
        client, server = trio.testing.memory_stream_pair()
        await client.send_all(data)
        with caplog.at_level(logging.INFO, logger="trissh.forwarding"):
            await serve_socks_client(server, refusing(exc), never_relay)
        await server.aclose()  # the caller's job
        assert await read_all(client) == reply
        assert "cannot connect to" in caplog.text
        assert "refused" in caplog.text.lower()


async def test_bad_request_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    with trio.fail_after(10):
        client, server = trio.testing.memory_stream_pair()
        await client.send_all(b"\x05\x01\x02")
        with caplog.at_level(logging.INFO, logger="trissh.forwarding"):
            await serve_socks_client(server, refusing(AssertionError("must not connect")), never_relay)
        assert await client.receive_some() == b"\x05\xff"
        assert "no 'no authentication' method" in caplog.text


async def test_handshake_timeout(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that never finishes its request is dropped (virtual time: no real waiting)."""
    with trio.fail_after(10):
        client, server = trio.testing.memory_stream_pair()
        await client.send_all(b"\x04\x01")
        with caplog.at_level(logging.INFO, logger="trissh.forwarding"):
            await serve_socks_client(
                server, refusing(AssertionError("must not connect")), never_relay, handshake_timeout=1
            )
        assert "no complete request within 1 s" in caplog.text


async def test_success_relays_both_ways_with_early_data() -> None:
    with trio.fail_after(10):
        client, server = trio.testing.memory_stream_pair()
        near, far = trio.testing.memory_stream_pair()
        opened: list[tuple[str, int]] = []

        async def open_destination(host: str, port: int) -> trio.abc.HalfCloseableStream:
            opened.append((host, port))
            return near

        async def far_end() -> None:
            # The destination sees the pipelined bytes first, then what followed the reply.
            assert await read_all(far) == b"early;late"
            await far.send_all(b"answer")
            await far.send_eof()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(far_end)
            nursery.start_soon(serve_socks_client, server, open_destination, relay)
            await client.send_all(socks4(80, bytes([0, 0, 0, 1]), name=b"dest.example") + b"early;")
            assert await client.receive_some() == s4_reply(0x5A)
            await client.send_all(b"late")
            await client.send_eof()
            assert await read_all(client) == b"answer"
        assert opened == [("dest.example", 80)]
        with pytest.raises(trio.ClosedResourceError):  # serve_socks_client closed the destination
            await near.receive_some()


async def test_socks5_success_reply() -> None:
    with trio.fail_after(10):
        client, server = trio.testing.memory_stream_pair()
        near, far = trio.testing.memory_stream_pair()

        async def open_destination(host: str, port: int) -> trio.abc.HalfCloseableStream:
            assert (host, port) == ("::1", 22)
            return near

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_socks_client, server, open_destination, relay)
            await client.send_all(S5_GREETING + socks5(4, ipaddress.IPv6Address("::1").packed, 22))
            assert await client.receive_some() == S5_CHOSEN
            reply = b""
            while len(reply) < 10:
                reply += await client.receive_some()
            assert reply == s5_reply(0x00)
            await far.send_all(b"SSH-2.0-x\r\n")
            await far.send_eof()
            await client.send_eof()
            assert await read_all(client) == b"SSH-2.0-x\r\n"
            assert await read_all(far) == b""


# --- real clients ------------------------------------------------------------------------------------

BODY = b"hello through socks\n"


async def http_handler(stream: trio.SocketStream) -> None:
    async with stream:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = await stream.receive_some()
            if not chunk:
                return
            request += chunk
        await stream.send_all(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize(
    ("option", "host"),
    [
        ("--socks5-hostname", "localhost"),
        ("--socks5", "127.0.0.1"),
        ("--socks4a", "localhost"),
        ("--socks4", "127.0.0.1"),
    ],
)
async def test_curl(option: str, host: str) -> None:
    with trio.fail_after(10):
        requests: list[tuple[str, int]] = []

        async def open_destination(dest_host: str, port: int) -> trio.abc.HalfCloseableStream:
            requests.append((dest_host, port))
            return await trio.open_tcp_stream(dest_host, port)

        async def socks_handler(stream: trio.SocketStream) -> None:
            async with stream:
                await serve_socks_client(stream, open_destination, relay)

        async with trio.open_nursery() as nursery:
            http_listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            http_port = http_listeners[0].socket.getsockname()[1]
            nursery.start_soon(trio.serve_listeners, http_handler, http_listeners)
            socks_listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
            socks_port = socks_listeners[0].socket.getsockname()[1]
            nursery.start_soon(trio.serve_listeners, socks_handler, socks_listeners)
            result = await trio.run_process(
                [
                    "curl", "-q", "--silent", "--show-error", "--max-time", "8",
                    option, f"127.0.0.1:{socks_port}", f"http://{host}:{http_port}/",
                ],
                capture_stdout=True,
            )  # fmt: skip
            nursery.cancel_scope.cancel()
        assert result.stdout == BODY
        assert requests == [(host, http_port)]
