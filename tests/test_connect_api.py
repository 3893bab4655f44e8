"""connect() as an API: how it must be used, what it checks before connecting, and the errors of a TCP
connection that never happens."""

from __future__ import annotations

import socket

import pytest
import trio

import trissh


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_awaiting_connect_says_to_use_async_with() -> None:
    with pytest.raises(TypeError, match=r"async with trissh\.connect\(\.\.\.\) as conn"):
        await trissh.connect("127.0.0.1", 1)  # type: ignore[misc]


async def test_refused_connection_keeps_its_cause() -> None:
    """As ssh(1) says "Connection refused", not only "all attempts failed"."""
    port = _closed_port()
    with trio.fail_after(10), pytest.raises(trissh.ConnectionLost) as caught:
        async with trissh.connect("127.0.0.1", port, known_hosts=None, agent_path=None, client_keys=[]):
            pass
    assert str(caught.value) == f"cannot connect to 127.0.0.1:{port}: Connection refused"
    assert isinstance(caught.value.__cause__, OSError)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"preferred_auth": ["hostbased"]}, "unsupported authentication method"),
        ({"preferred_auth": "publickey,gssapi-with-mic"}, "gssapi-with-mic"),
        ({"host_key_policy": "trust-everyone"}, "host_key_policy must be"),
        ({"keepalive_interval": 0}, "keepalive_interval must be positive"),
        ({"port": 0}, "port must be 1..65535"),
    ],
)
async def test_bad_settings_are_refused_before_connecting(options: dict[str, object], message: str) -> None:
    port = options.pop("port", _closed_port())
    with pytest.raises(ValueError, match=message):
        trissh.connect("127.0.0.1", port, **options)  # type: ignore[arg-type]
