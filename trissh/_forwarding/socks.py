"""The SOCKS side of dynamic port forwarding (``ssh -D``): the server half of the handshake.

Theory of operation: a local application connects to the forwarding listener and says, in SOCKS4,
SOCKS4a or SOCKS5, which host and port it wants. :func:`read_socks_request` reads exactly that one
CONNECT request (answering SOCKS5's method negotiation on the way), the caller opens the destination
(over SSH, a ``direct-tcpip`` channel) and :func:`send_socks_reply` tells the application whether it
worked; from then on the connection is a plain byte pipe. :func:`serve_socks_client` strings these
together for one accepted connection.

Nothing here knows about SSH: the destination is whatever ``open_destination`` returns, which keeps
the protocol testable with in-memory streams and real clients alike.

The request is read through a small buffer because clients may pipeline: curl, for one, can send its
first bytes of payload right behind a SOCKS4a request without waiting for the reply. Whatever arrives
after the request is kept as :attr:`SocksRequest.early_data` and forwarded before the relay starts, so
nothing is lost. Reads are capped (a request is at most a few hundred bytes), so a client cannot make
us buffer without bound, and the whole handshake is bounded in time by :data:`HANDSHAKE_TIMEOUT`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import trio

from trissh._errors import ChannelOpenError

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "SocksError",
    "SocksRequest",
    "read_socks_request",
    "send_socks_reply",
    "serve_socks_client",
]

log = logging.getLogger("trissh.forwarding")

#: Seconds a client gets to send a complete request before we hang up on it.
HANDSHAKE_TIMEOUT: Final = 30.0

# One receive_some never asks for more than this; with the 255-byte field limit it bounds the buffer.
_CHUNK: Final = 1024
_MAX_FIELD: Final = 255  # SOCKS4 user id / SOCKS4a host name; SOCKS5 names are length-prefixed

_CONNECT: Final = 1
_COMMANDS: Final = {1: "CONNECT", 2: "BIND", 3: "UDP ASSOCIATE"}

# SOCKS4 reply codes (the reply's VN byte is 0, not 4).
_S4_GRANTED: Final = 0x5A
_S4_REJECTED: Final = 0x5B

# SOCKS5 (RFC 1928) method and reply codes.
_S5_NO_AUTH: Final = 0x00
_S5_NO_ACCEPTABLE: Final = 0xFF
_S5_SUCCEEDED: Final = 0x00
_S5_GENERAL_FAILURE: Final = 0x01
_S5_REFUSED: Final = 0x05
_S5_BAD_COMMAND: Final = 0x07
_S5_BAD_ADDRESS_TYPE: Final = 0x08


class SocksError(Exception):
    """What was wrong with a client's SOCKS request, in words fit for a log line."""


@dataclass(frozen=True, slots=True)
class SocksRequest:
    """One CONNECT request: where the client wants to go.

    Attributes:
        version: 4 (SOCKS4 and SOCKS4a) or 5.
        host: an IPv4/IPv6 literal as text, or a domain name the client left for us to resolve.
        port: the destination port, never 0.
        early_data: bytes the client sent after the request, to be delivered before anything else.
    """

    version: int
    host: str
    port: int
    early_data: bytes = b""


class _Reader:
    """Buffered exact reads over ``receive_some``; whatever is read past the request stays in ``buffer``."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self.buffer = bytearray()

    async def _fill(self) -> None:
        try:
            data = await self._stream.receive_some(_CHUNK)
        except trio.BrokenResourceError as exc:
            raise SocksError(f"connection lost in the middle of the request: {exc}") from exc
        if not data:
            raise SocksError("client closed the connection in the middle of the request")
        self.buffer += data

    async def exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            await self._fill()
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    async def byte(self) -> int:
        return (await self.exactly(1))[0]

    async def until_nul(self, what: str) -> bytes:
        """A NUL-terminated field of at most 255 bytes (the NUL is consumed, not returned)."""
        while (end := self.buffer.find(0, 0, _MAX_FIELD + 1)) < 0:
            if len(self.buffer) > _MAX_FIELD:
                raise SocksError(f"{what} longer than {_MAX_FIELD} bytes")
            await self._fill()
        data = bytes(self.buffer[:end])
        del self.buffer[: end + 1]
        return data


def _reply(version: int, code: int) -> bytes:
    # The bound address and port carry no meaning for CONNECT through a tunnel: zeros.
    if version == 4:
        return bytes([0, code]) + bytes(6)
    return bytes([5, code, 0, 1]) + bytes(6)


async def _send_quietly(stream: trio.abc.Stream, data: bytes) -> None:
    """Send an error reply; a client that already left cannot be told, and that is no new error."""
    with contextlib.suppress(trio.BrokenResourceError):
        await stream.send_all(data)


def _domain(raw: bytes) -> str:
    if not raw:
        raise SocksError("empty destination host name")
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        raise SocksError(f"destination host name is not ASCII: {raw!r}") from None
    # Spaces and control characters are never part of a host name, and would garble our log lines.
    if any(not "!" <= char <= "~" for char in name):
        raise SocksError(f"destination host name has a space or control character: {raw!r}")
    return name


def _command_name(command: int) -> str:
    return f"{command} ({_COMMANDS[command]})" if command in _COMMANDS else str(command)


async def _read_socks4(reader: _Reader, stream: trio.abc.Stream) -> tuple[str, int]:
    header = await reader.exactly(7)
    command, port, ip = header[0], int.from_bytes(header[1:3]), header[3:]
    if command != _CONNECT:
        await _send_quietly(stream, _reply(4, _S4_REJECTED))
        raise SocksError(f"SOCKS4 command {_command_name(command)} not supported")
    await reader.until_nul("SOCKS4 user id")  # meant for identd checks; nothing to do with it here
    if ip[:3] == bytes(3) and ip[3] != 0:
        # SOCKS4a: 0.0.0.x (x != 0) is a placeholder, and the name follows the user id.
        raw = await reader.until_nul("SOCKS4a host name")
        try:
            return _domain(raw), port
        except SocksError:
            await _send_quietly(stream, _reply(4, _S4_REJECTED))
            raise
    return str(ipaddress.IPv4Address(ip)), port


async def _read_socks5(reader: _Reader, stream: trio.abc.Stream) -> tuple[str, int]:
    methods = await reader.exactly(await reader.byte())
    if _S5_NO_AUTH not in methods:
        await _send_quietly(stream, bytes([5, _S5_NO_ACCEPTABLE]))
        raise SocksError(f"SOCKS5 client offers no 'no authentication' method, only {methods.hex(' ')}")
    try:
        await stream.send_all(bytes([5, _S5_NO_AUTH]))
    except trio.BrokenResourceError as exc:
        raise SocksError(f"connection lost during SOCKS5 method negotiation: {exc}") from exc
    version, command, _reserved, address_type = await reader.exactly(4)
    if version != 5:
        raise SocksError(f"SOCKS5 request has version byte 0x{version:02x}")
    if command != _CONNECT:
        await _send_quietly(stream, _reply(5, _S5_BAD_COMMAND))
        raise SocksError(f"SOCKS5 command {_command_name(command)} not supported")
    if address_type == 1:
        host = str(ipaddress.IPv4Address(await reader.exactly(4)))
    elif address_type == 3:
        raw = await reader.exactly(await reader.byte())
        try:
            host = _domain(raw)
        except SocksError:
            await _send_quietly(stream, _reply(5, _S5_GENERAL_FAILURE))
            raise
    elif address_type == 4:
        # Canonical text (RFC 5952), so equal addresses compare and log equal.
        host = str(ipaddress.IPv6Address(await reader.exactly(16)))
    else:
        await _send_quietly(stream, _reply(5, _S5_BAD_ADDRESS_TYPE))
        raise SocksError(f"SOCKS5 address type {address_type} not supported")
    return host, int.from_bytes(await reader.exactly(2))


async def read_socks_request(stream: trio.abc.Stream) -> SocksRequest:
    """Read one CONNECT request: SOCKS4, SOCKS4a, or SOCKS5 with the 'no authentication' method.

    SOCKS5's method negotiation is answered here. Bytes the client sent after the request are not
    lost: they come back as :attr:`SocksRequest.early_data`.

    Raises:
        SocksError: anything but a well-formed CONNECT request. Where the protocol has a way to say
            no (an unsupported command, method or address type, a bad host name, port 0), that
            reply is sent first; an unknown version byte or a truncated request gets none.
    """
    reader = _Reader(stream)
    version = await reader.byte()
    if version == 4:
        host, port = await _read_socks4(reader, stream)
    elif version == 5:
        host, port = await _read_socks5(reader, stream)
    else:
        raise SocksError(f"not a SOCKS4 or SOCKS5 request: first byte 0x{version:02x}")
    if port == 0:
        await _send_quietly(stream, _reply(version, _S4_REJECTED if version == 4 else _S5_GENERAL_FAILURE))
        raise SocksError(f"SOCKS{version} request for port 0 on {host}")
    return SocksRequest(version, host, port, bytes(reader.buffer))


async def send_socks_reply(stream: trio.abc.Stream, request: SocksRequest, success: bool) -> None:
    """Tell the client whether the destination could be reached.

    SOCKS4 says granted (0x5A) or rejected (0x5B); SOCKS5 says succeeded (0x00) or connection
    refused (0x05). The bound address is always 0.0.0.0 port 0.
    """
    if request.version == 4:
        code = _S4_GRANTED if success else _S4_REJECTED
    else:
        code = _S5_SUCCEEDED if success else _S5_REFUSED
    await stream.send_all(_reply(request.version, code))


def _peer(stream: trio.abc.Stream) -> str:
    """The client's address for log lines, when the stream is a socket that can tell."""
    if isinstance(stream, trio.SocketStream):
        try:
            address = stream.socket.getpeername()
        except OSError:
            pass
        else:
            if isinstance(address, tuple) and len(address) >= 2:
                return f"SOCKS client {address[0]}:{address[1]}"
    return "SOCKS client"


async def serve_socks_client(
    stream: trio.abc.Stream,
    open_destination: Callable[[str, int], Awaitable[trio.abc.HalfCloseableStream]],
    relay: Callable[[trio.abc.Stream, trio.abc.HalfCloseableStream], Awaitable[None]],
    *,
    handshake_timeout: float = HANDSHAKE_TIMEOUT,
) -> None:
    """Serve one accepted SOCKS connection: handshake, connect, then ``relay`` until it returns.

    A bad request, a too slow client, or a destination that cannot be opened (``ChannelOpenError``
    or ``OSError`` from ``open_destination``) is logged at INFO on ``trissh.forwarding`` and ends
    the call quietly, after the failure reply where there is one. The destination is closed before
    returning; ``stream`` is the caller's to close.
    """
    peer = _peer(stream)
    try:
        try:
            with trio.fail_after(handshake_timeout):
                request = await read_socks_request(stream)
        except trio.TooSlowError:
            raise SocksError(f"no complete request within {handshake_timeout:g} s") from None
    except SocksError as exc:
        log.info("%s: %s", peer, exc)
        return
    target = f"[{request.host}]:{request.port}" if ":" in request.host else f"{request.host}:{request.port}"
    try:
        destination = await open_destination(request.host, request.port)
    except (ChannelOpenError, OSError) as exc:
        log.info("%s: cannot connect to %s: %s", peer, target, exc)
        # A client that gave up waiting cannot be told; that is no new error.
        with contextlib.suppress(trio.BrokenResourceError):
            await send_socks_reply(stream, request, success=False)
        return
    try:
        try:
            await send_socks_reply(stream, request, success=True)
        except trio.BrokenResourceError:
            log.info("%s: left before the reply for %s", peer, target)
            return
        if request.early_data:
            await destination.send_all(request.early_data)
        await relay(stream, destination)
    finally:
        await destination.aclose()
