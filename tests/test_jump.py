"""``connect(tunnel=...)`` and ``connect(proxy_jump=...)`` through real sshd instances on 127.0.0.1.

Three servers: ``jump1`` and ``jump2`` (started here) and the session's ``sshd`` as the destination.
Each has its own host keys and accepts only its own client key, so every test passes all three keys
and a KnownHosts holding all three servers' known_hosts lines.
"""

from __future__ import annotations

import getpass
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from test_integration import trissh_tasks

import trissh
from trissh._channels.streams import ChannelStream
from trissh._connect_options import ConnectOptions
from trissh._driver import SSHClientTransport
from trissh._jump import MAX_JUMP_HOSTS, JumpHost, _hop_options, parse_proxy_jump
from trissh._options import algorithm_preferences
from trissh.testing import SSHServer, start_sshd

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def jump1() -> Iterator[SSHServer]:
    with start_sshd() as server:
        yield server


@pytest.fixture(scope="module")
def jump2() -> Iterator[SSHServer]:
    with start_sshd() as server:
        yield server


def known(*servers: SSHServer, text: str = "") -> trissh.KnownHosts:
    return trissh.KnownHosts.from_text(text + "".join(s.known_hosts.read_text() for s in servers))


def options(*servers: SSHServer, **kwargs: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "username": servers[-1].username,
        "client_keys": [s.client_key for s in servers],
        "known_hosts": known(*servers),
        "connect_timeout": 10,
        "agent_path": None,
    }
    settings.update(kwargs)
    return settings


def hop(server: SSHServer, user: bool = True) -> str:
    return f"{server.username}@{server.host}:{server.port}" if user else f"{server.host}:{server.port}"


def where(server: SSHServer) -> str:
    return f"{server.host}:{server.port}"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def closes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The port of each transport, in the order their first aclose() began."""
    order: list[int] = []
    original = SSHClientTransport.aclose

    async def aclose(self: SSHClientTransport, **kwargs: Any) -> None:
        if self.port not in order:
            order.append(self.port)
        await original(self, **kwargs)

    monkeypatch.setattr(SSHClientTransport, "aclose", aclose)
    return order


# --- parsing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "hops"),
    [
        (None, ()),
        ("none", ()),
        ("", ()),
        ("jump", (JumpHost("jump", 22, None),)),
        ("alice@jump1:2222,jump2", (JumpHost("jump1", 2222, "alice"), JumpHost("jump2", 22, None))),
        ("ssh://bob@j:23, ssh://k/", (JumpHost("j", 23, "bob"), JumpHost("k", 22, None))),
        ("a@b@host:1", (JumpHost("host", 1, "a@b"),)),  # the last '@' ends the user, as in ssh(1)
        ("[::1]:2200,u@[fe80::1]", (JumpHost("::1", 2200, None), JumpHost("fe80::1", 22, "u"))),
    ],
)
def test_parse_proxy_jump(spec: str | None, hops: tuple[JumpHost, ...]) -> None:
    assert parse_proxy_jump(spec) == hops


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("jump:0", "port must be 1..65535"),
        ("jump:99999", "port must be 1..65535"),
        ("jump:ssh", "port must be 1..65535"),
        ("@jump", "empty user name"),
        ("user@", "empty host"),
        ("a,,b", "empty entry"),
        ("::1", "in brackets"),
        ("[::1", "unclosed"),
        ("[::1]x", "after ']'"),
        ("ho st", "invalid host"),
        (",".join(["j"] * (MAX_JUMP_HOSTS + 1)), "more than"),
    ],
)
def test_parse_proxy_jump_rejects(spec: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint) as info:
        parse_proxy_jump(spec)
    assert repr(spec) in str(info.value) or len(spec) > 40


def test_jump_hosts_use_their_own_user_and_not_the_password() -> None:
    """ssh(1): -l and the password are the destination's; a jump host gets its user@ or the local user."""
    base = ConnectOptions(
        host="dest", username="dest-user", password="secret", algorithms=algorithm_preferences()
    )
    first = _hop_options(base, JumpHost("j1", 2222, "alice"), None)
    assert (first.host, first.port, first.username, first.password) == ("j1", 2222, "alice", None)
    assert first.proxy_jump == () and first.tunnel is None and not first.forward_agent
    assert _hop_options(base, JumpHost("j2"), None).username == getpass.getuser()


async def test_tunnel_and_proxy_jump_together_is_refused(jump1: SSHServer) -> None:
    with trio.fail_after(20):
        async with trissh.connect(jump1.host, jump1.port, **options(jump1)) as conn:
            with pytest.raises(ValueError, match="not both"):
                trissh.connect("x", tunnel=conn, proxy_jump="j")
            with pytest.raises(TypeError, match="SSHConnection"):
                trissh.connect("x", tunnel="j")  # type: ignore[arg-type]


# --- tunnel= -------------------------------------------------------------------------------------


async def test_tunnel_runs_a_connection_over_a_channel(jump1: SSHServer, sshd: SSHServer) -> None:
    """The inner connection checks the *target's* host key and leaves the outer one working;
    closing it closes its channel in the outer connection."""
    with trio.fail_after(30):
        async with trissh.connect(jump1.host, jump1.port, **options(jump1, sshd)) as outer:
            async with trissh.connect(sshd.host, sshd.port, tunnel=outer, **options(jump1, sshd)) as inner:
                assert (await inner.run("echo inner")).stdout == b"inner\n"
                assert inner.host_key != outer.host_key
                assert known(sshd).check(sshd.host, sshd.port, inner.host_key) is trissh.HostKeyStatus.TRUSTED
                assert len(outer._mux.channels) == 1
            while outer._mux.channels:  # our CLOSE, then the server's
                await trio.sleep(0.01)
            assert (await outer.run("echo outer")).stdout == b"outer\n"
        assert trissh_tasks() == []


async def test_tunnel_checks_the_host_key_under_the_targets_name(jump1: SSHServer, sshd: SSHServer) -> None:
    """Known only under jump1's name, the target's key is not trusted through jump1."""
    with trio.fail_after(30):
        async with trissh.connect(jump1.host, jump1.port, **options(jump1, sshd)) as outer:
            with pytest.raises(trissh.HostKeyNotVerifiable, match=re.escape(f"[{sshd.host}]:{sshd.port}")):
                async with trissh.connect(
                    sshd.host, sshd.port, tunnel=outer, **options(jump1, sshd, known_hosts=known(jump1))
                ):
                    pass
            assert (await outer.run("true")).returncode == 0
        assert trissh_tasks() == []


async def test_tunnel_refused_names_target_and_tunnel(jump1: SSHServer) -> None:
    port = closed_port()
    with trio.fail_after(30):
        async with trissh.connect(jump1.host, jump1.port, **options(jump1)) as outer:
            with pytest.raises(trissh.ChannelOpenError) as info:
                async with trissh.connect("127.0.0.1", port, tunnel=outer, **options(jump1)):
                    pass
            assert info.value.code == trissh.ChannelOpenFailureReason.CONNECT_FAILED
            assert f"127.0.0.1:{port}" in str(info.value) and where(jump1) in str(info.value)
            assert "tunnel" in str(info.value)
        # A closed tunnel: ConnectionLost, saying it was the tunnel.
        with pytest.raises(trissh.ConnectionLost, match="via the tunnel"):
            async with trissh.connect("127.0.0.1", port, tunnel=outer, **options(jump1)):
                pass
        assert trissh_tasks() == []


# --- proxy_jump= -------------------------------------------------------------------------------------


async def test_one_jump_host(jump1: SSHServer, sshd: SSHServer, closes: list[int]) -> None:
    with trio.fail_after(30):
        async with trissh.connect(
            sshd.host, sshd.port, proxy_jump=hop(jump1), **options(jump1, sshd)
        ) as conn:
            assert (await conn.run("echo through")).stdout == b"through\n"
            assert isinstance(conn.transport.stream, ChannelStream)  # not a TCP socket of its own
            assert known(sshd).check(sshd.host, sshd.port, conn.host_key) is trissh.HostKeyStatus.TRUSTED
            assert trissh_tasks() != []
        assert trissh_tasks() == []
    assert closes == [sshd.port, jump1.port]


async def test_two_jump_hosts_closed_in_reverse(
    jump1: SSHServer, jump2: SSHServer, sshd: SSHServer, closes: list[int]
) -> None:
    spec = f"{hop(jump1)},ssh://{hop(jump2, user=False)}"
    with trio.fail_after(40):
        async with trissh.connect(
            sshd.host, sshd.port, proxy_jump=spec, **options(jump1, jump2, sshd)
        ) as conn:
            assert (await conn.run("echo far")).stdout == b"far\n"
            assert isinstance(conn.transport.stream, ChannelStream)
        assert trissh_tasks() == []
    assert closes == [sshd.port, jump2.port, jump1.port]


async def test_the_same_server_twice(jump1: SSHServer, sshd: SSHServer) -> None:
    spec = f"{hop(jump1)},{hop(jump1)}"
    with trio.fail_after(40):
        async with trissh.connect(sshd.host, sshd.port, proxy_jump=spec, **options(jump1, sshd)) as conn:
            assert (await conn.run("echo ok")).returncode == 0
        assert trissh_tasks() == []


async def test_wrong_host_key_at_the_last_hop(jump1: SSHServer, sshd: SSHServer, closes: list[int]) -> None:
    """Hop 2's known_hosts entry holds jump1's keys: refused, naming hop 2; the jump host is closed."""
    lying = jump1.known_hosts.read_text().replace(f"]:{jump1.port} ", f"]:{sshd.port} ")
    settings = options(jump1, sshd, known_hosts=known(jump1, text=lying))
    with trio.fail_after(30):
        with pytest.raises(trissh.HostKeyNotVerifiable) as info:
            async with trissh.connect(sshd.host, sshd.port, proxy_jump=hop(jump1), **settings):
                pytest.fail("connected despite a changed host key")
        assert trissh_tasks() == []
    message = str(info.value)
    assert message.startswith(f"at {where(sshd)} (hop 2 of 2, via jump host {where(jump1)}): ")
    assert "HAS CHANGED" in message
    assert info.value.hop == where(sshd)  # type: ignore[attr-defined]
    assert closes[-1] == jump1.port


async def test_unknown_host_key_at_a_middle_hop(jump1: SSHServer, jump2: SSHServer, sshd: SSHServer) -> None:
    spec = f"{hop(jump1)},{hop(jump2)}"
    settings = options(jump1, jump2, sshd, known_hosts=known(jump1, sshd))
    with trio.fail_after(30):
        with pytest.raises(trissh.HostKeyNotVerifiable) as info:
            async with trissh.connect(sshd.host, sshd.port, proxy_jump=spec, **settings):
                pytest.fail("connected through an unknown jump host")
        assert trissh_tasks() == []
    assert str(info.value).startswith(f"at jump host {where(jump2)} (hop 2 of 3): ")
    assert info.value.hop == where(jump2)  # type: ignore[attr-defined]


async def test_permission_denied_at_the_first_hop_keeps_its_type(jump1: SSHServer, sshd: SSHServer) -> None:
    settings = options(jump1, sshd, client_keys=[sshd.client_key])  # jump1 accepts none of these
    with trio.fail_after(30):
        with pytest.raises(trissh.PermissionDenied) as info:
            async with trissh.connect(sshd.host, sshd.port, proxy_jump=hop(jump1), **settings):
                pass
        assert trissh_tasks() == []
    assert str(info.value).startswith(f"at jump host {where(jump1)} (hop 1 of 2): ")
    assert info.value.methods  # the original error's attributes are kept


async def test_unreachable_next_hop_names_it(jump1: SSHServer) -> None:
    port = closed_port()
    with trio.fail_after(30):
        with pytest.raises(trissh.ChannelOpenError) as info:
            async with trissh.connect("127.0.0.1", port, proxy_jump=hop(jump1), **options(jump1)):
                pass
        assert trissh_tasks() == []
    assert str(info.value).startswith(f"at 127.0.0.1:{port} (hop 2 of 2, via jump host {where(jump1)}): ")


async def test_cancelled_mid_transfer_through_the_chain(
    jump1: SSHServer, jump2: SSHServer, sshd: SSHServer
) -> None:
    """Cancellation while data flows through two jump hosts ends every task of the chain."""
    spec = f"{hop(jump1)},{hop(jump2)}"
    chunk = b"x" * 64 * 1024
    sent = 0
    transports: list[SSHClientTransport] = []
    with trio.fail_after(40):
        with trio.CancelScope() as scope:
            async with trissh.connect(
                sshd.host, sshd.port, proxy_jump=spec, **options(jump1, jump2, sshd)
            ) as conn:
                transports.append(conn.transport)
                async with conn.open_process("cat > /dev/null") as process:
                    while True:
                        await process.stdin.send_all(chunk)
                        sent += len(chunk)
                        if sent >= 4 * MiB:
                            scope.cancel()
        assert scope.cancelled_caught
        assert sent >= 4 * MiB
        assert trissh_tasks() == []
    assert transports[0].is_closed
