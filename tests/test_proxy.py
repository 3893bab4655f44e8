"""Tests of the fault-injecting proxy in ``tests/proxy.py``, against a Trio echo server (no SSH involved)."""

from __future__ import annotations

import functools
import math
import os

import pytest
import trio
import trio.testing
from proxy import (
    CutAfter,
    Delay,
    Fault,
    FlipBit,
    Proxy,
    ProxyFactory,
    ReplaceAfter,
    _FaultRunner,
    _Sleep,
    open_proxy,
)

DATA = os.urandom(300_000)


async def _echo(stream: trio.SocketStream) -> None:
    """Echo until EOF, then half-close, so that a test can read everything back."""
    async with stream:
        try:
            while data := await stream.receive_some(65536):
                await stream.send_all(data)
            await stream.send_eof()
        except trio.BrokenResourceError:
            pass  # the proxy cut the connection: expected in fault tests


@pytest.fixture
async def echo(nursery: trio.Nursery) -> tuple[str, int]:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, _echo, 0, host="127.0.0.1"))
    host, port = listeners[0].socket.getsockname()[:2]
    return host, port


async def _exchange(address: tuple[str, int], data: bytes = DATA) -> bytes:
    """Send ``data`` and EOF through ``address`` while reading the reply until EOF."""
    received = bytearray()
    async with await trio.open_tcp_stream(*address) as stream:

        async def send() -> None:
            try:
                await stream.send_all(data)
                await stream.send_eof()
            except trio.BrokenResourceError:
                pass  # the proxy cut us off mid-send

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            while chunk := await stream.receive_some(65536):
                received += chunk
    return bytes(received)


def _flip(data: bytes, offset: int, bit: int) -> bytes:
    flipped = bytearray(data)
    flipped[offset] ^= 1 << bit
    return bytes(flipped)


async def test_forwards_both_directions_and_half_close(echo: tuple[str, int]) -> None:
    async with open_proxy(echo) as proxy:
        assert await _exchange(proxy) == DATA
        assert await _exchange(proxy, b"again") == b"again"
    assert proxy.connections == 2
    assert proxy.bytes_up == proxy.bytes_down == len(DATA) + 5


async def test_unpacks_as_host_and_port(echo: tuple[str, int]) -> None:
    async with open_proxy(echo) as (host, port):
        assert host == "127.0.0.1"
        assert await _exchange((host, port), b"x") == b"x"


async def test_cut_after_closes_after_exactly_n_bytes(echo: tuple[str, int]) -> None:
    """The client gets N bytes and then a clean EOF, even while it is still sending."""
    async with open_proxy(echo, fault=CutAfter(100_000)) as proxy:
        assert await _exchange(proxy) == DATA[:100_000]
        assert await _exchange(proxy, DATA * 10) == DATA[:100_000]


async def test_cut_after_zero_closes_at_once(echo: tuple[str, int]) -> None:
    async with open_proxy(echo, fault=CutAfter(0)) as proxy, await trio.open_tcp_stream(*proxy) as stream:
        assert await stream.receive_some() == b""


async def test_cut_after_with_reset_sends_rst(echo: tuple[str, int]) -> None:
    async with open_proxy(echo, fault=CutAfter(1000, reset=True)) as proxy:
        async with await trio.open_tcp_stream(*proxy) as stream:
            # Only this task touches the socket: a concurrent send could consume the reset error (a socket
            # reports ECONNRESET once), leaving a plain EOF for the receiver.
            await stream.send_all(DATA[:5000])
            received = b""
            with pytest.raises(trio.BrokenResourceError):
                while chunk := await stream.receive_some():
                    received += chunk
                pytest.fail(f"clean EOF after {len(received)} bytes instead of a reset")
        assert len(received) <= 1000


async def test_flip_bit(echo: tuple[str, int]) -> None:
    async with open_proxy(echo, fault=FlipBit(123_456, bit=7)) as proxy:
        assert await _exchange(proxy) == _flip(DATA, 123_456, 7)


async def test_upstream_fault_applies_to_client_to_server(echo: tuple[str, int]) -> None:
    async with open_proxy(echo, upstream_fault=FlipBit(3)) as proxy:
        assert await _exchange(proxy) == _flip(DATA, 3, 0)


async def test_replace_after(echo: tuple[str, int]) -> None:
    async with open_proxy(echo, fault=ReplaceAfter(1000, b"SSH-2.0-junk\r\n")) as proxy:
        assert await _exchange(proxy) == DATA[:1000] + b"SSH-2.0-junk\r\n"


async def test_delay_holds_the_rest_of_the_stream(
    echo: tuple[str, int], mock_clock: trio.testing.MockClock
) -> None:
    """The first ``after`` bytes pass at once, the rest only once ``seconds`` have passed on Trio's
    clock. The clock is a MockClock moved by hand, so what is checked is the order of events (the rest
    is held at 9.9 of 10 s and comes after 10.1), not a wall-clock figure."""
    rest: list[bytes] = []

    async def read_rest() -> None:
        rest.append(await stream.receive_some())

    with trio.fail_after(60):
        async with (
            open_proxy(echo, fault=Delay(10, after=5)) as proxy,
            await trio.open_tcp_stream(*proxy) as stream,
        ):
            await stream.send_all(b"0123456789")
            assert await stream.receive_some() == b"01234"  # the clock has not moved
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read_rest)
                mock_clock.jump(9.9)
                await trio.testing.wait_all_tasks_blocked()
                assert rest == []
                mock_clock.jump(0.2)
                mock_clock.autojump_threshold = 0.5  # from here a hang runs the clock to fail_after
            assert rest == [b"56789"]


async def test_infinite_delay_is_a_black_hole(echo: tuple[str, int]) -> None:
    async with (
        open_proxy(echo, fault=Delay(math.inf, after=2)) as proxy,
        await trio.open_tcp_stream(*proxy) as stream,
    ):
        await stream.send_all(b"abcdef")
        assert await stream.receive_some() == b"ab"
        with trio.move_on_after(0.2) as scope:
            await stream.receive_some()
        assert scope.cancelled_caught


async def test_fake_server_handler() -> None:
    """A scripted server that sends junk lines forever; the client hanging up must not fail the proxy."""

    async def endless_junk(stream: trio.SocketStream) -> None:
        while True:
            await stream.send_all(b"not an ssh banner\r\n" * 100)

    async with open_proxy(handler=endless_junk) as proxy:
        for _ in range(2):
            async with await trio.open_tcp_stream(*proxy) as stream:
                received = b""
                while len(received) < 100_000:
                    received += await stream.receive_some()
                assert received.startswith(b"not an ssh banner\r\n")
    assert proxy.connections == 2


async def test_fake_server_errors_propagate() -> None:
    async def broken(stream: trio.SocketStream) -> None:
        raise ZeroDivisionError

    with pytest.RaisesGroup(ZeroDivisionError, flatten_subgroups=True):
        async with open_proxy(handler=broken) as proxy, await trio.open_tcp_stream(*proxy) as stream:
            await stream.receive_some()
            await trio.sleep_forever()


async def test_exit_closes_open_connections(echo: tuple[str, int]) -> None:
    async with open_proxy(echo) as proxy:
        stream = await trio.open_tcp_stream(*proxy)
        await stream.send_all(b"ping")
        assert await stream.receive_some() == b"ping"
    with trio.fail_after(5):
        assert await stream.receive_some() == b""  # the proxy's side is gone
    await stream.aclose()


async def test_unreachable_target_closes_client() -> None:
    async with open_proxy(("127.0.0.1", 1)) as proxy, await trio.open_tcp_stream(*proxy) as stream:
        with trio.fail_after(5):
            assert await stream.receive_some() == b""


async def test_body_exception_is_not_wrapped(echo: tuple[str, int]) -> None:
    with pytest.raises(KeyError):
        async with open_proxy(echo):
            raise KeyError("from the body")


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"target": ("127.0.0.1", 1), "handler": _echo}, {"handler": _echo, "fault": CutAfter(1)}],
)
async def test_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        async with open_proxy(**kwargs):  # type: ignore[arg-type]
            pass


@pytest.mark.parametrize(
    ("fault_type", "args"),
    [(CutAfter, (-1,)), (FlipBit, (0, 8)), (ReplaceAfter, (-1, b"")), (Delay, (math.nan,)), (Delay, (-1.0,))],
)
def test_fault_constructors_validate(fault_type: type[Fault], args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError):
        fault_type(*args)  # type: ignore[arg-type]


async def test_make_proxy_fixture(echo: tuple[str, int], make_proxy: ProxyFactory) -> None:
    cut: Proxy = await make_proxy(echo, fault=CutAfter(10))
    plain = await make_proxy(echo)
    assert await _exchange(cut) == DATA[:10]
    assert await _exchange(plain) == DATA


def _run(fault: Fault | None, chunks: list[bytes]) -> tuple[bytes, int, bool]:
    """Feed chunks to a runner: (bytes sent, sleeps, cut?), stopping at a cut as the pump does."""
    runner = _FaultRunner(fault)
    sent = b""
    sleeps = 0
    for chunk in [None, *chunks]:
        for step in runner.start() if chunk is None else runner.feed(chunk):
            if isinstance(step, bytes):
                sent += step
            elif isinstance(step, _Sleep):
                sleeps += 1
            else:
                return sent, sleeps, True
    return sent, sleeps, False


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (None, (DATA[:1000], 0, False)),
        (CutAfter(0), (b"", 0, True)),
        (CutAfter(500), (DATA[:500], 0, True)),
        (CutAfter(1000), (DATA[:1000], 0, True)),
        (CutAfter(1001), (DATA[:1000], 0, False)),
        (FlipBit(0), (_flip(DATA[:1000], 0, 0), 0, False)),
        (FlipBit(999, bit=5), (_flip(DATA[:1000], 999, 5), 0, False)),
        (FlipBit(1000), (DATA[:1000], 0, False)),
        (ReplaceAfter(0, b"junk"), (b"junk", 0, False)),
        (ReplaceAfter(400, b"junk"), (DATA[:400] + b"junk", 0, False)),
        (Delay(1.0), (DATA[:1000], 1, False)),
        (Delay(1.0, after=999), (DATA[:1000], 1, False)),
        (Delay(1.0, after=1001), (DATA[:1000], 0, False)),
    ],
    ids=repr,
)
@pytest.mark.parametrize("split", ["whole", "bytewise", "uneven"])
def test_fault_runner(fault: Fault | None, expected: tuple[bytes, int, bool], split: str) -> None:
    """The plan depends on byte offsets only, not on how the stream was chunked."""
    data = DATA[:1000]
    if split == "whole":
        chunks = [data]
    elif split == "bytewise":
        chunks = [data[i : i + 1] for i in range(len(data))]
    else:
        chunks = [data[:1], data[1:400], data[400:401], data[401:999], data[999:]]
    assert _run(fault, chunks) == expected
