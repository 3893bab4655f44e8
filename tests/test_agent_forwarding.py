"""Agent forwarding (OpenSSH PROTOCOL §2.2: ``auth-agent-req@openssh.com`` and ``auth-agent@openssh.com``
channels) against a real sshd, whose commands use the forwarded agent with the real ``ssh-add``; and the
channel layer's refusal of agent channels nobody asked for, fed packets directly.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from agents import TOOL_TIMEOUT, run_agent, ssh_add, ssh_add_listing
from test_agent import fake_agent, frame, read_request, receive_exactly

import trissh
from trissh import _messages as msg
from trissh._auth.agent import AgentMessage
from trissh._channels.channel import INITIAL_WINDOW, MAX_PACKET, ServerOpenedChannel
from trissh._channels.incoming import MAX_AGENT_CHANNELS
from trissh._channels.mux import ChannelMux
from trissh._errors import AgentError, ProtocolError
from trissh._wire import byte, string, uint32
from trissh.testing import SSHServer

pytestmark = pytest.mark.skipif(
    not (shutil.which("ssh-agent") and shutil.which("ssh-add") and shutil.which("ssh-keygen")),
    reason="OpenSSH's ssh-agent, ssh-add and ssh-keygen are needed",
)

TEST_TIMEOUT = 30
# The remote helper scripts need only the standard library.
REMOTE_PYTHON = "/usr/bin/python3"


@asynccontextmanager
async def connect(server: SSHServer, **kwargs: Any) -> AsyncIterator[trissh.SSHConnection]:
    options: dict[str, Any] = {
        "username": server.username,
        "client_keys": [server.client_key],
        "known_hosts": server.known_hosts,
        "connect_timeout": 10,
    }
    options.update(kwargs)
    async with trissh.connect(server.host, server.port, **options) as conn:
        yield conn


@pytest.fixture
def agent(sshd: SSHServer, tmp_path: Path) -> Iterator[Path]:
    """A real agent holding the server's client key (so that authenticating through it succeeds at once,
    whatever order keys are offered in) and an RSA key of its own."""
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "rsa",
            "-b",
            "2048",
            "-N",
            "",
            "-C",
            "extra",
            "-f",
            str(tmp_path / "extra"),
        ],
        check=True,
        timeout=TOOL_TIMEOUT,
    )
    with run_agent() as sock:
        ssh_add(sock, sshd.client_key, tmp_path / "extra")
        yield sock


def agent_channels(conn: trissh.SSHConnection) -> list[ServerOpenedChannel]:
    return [c for c in conn._mux.channels.values() if isinstance(c, ServerOpenedChannel)]


async def wait_agent_channels_closed(conn: trissh.SSHConnection) -> None:
    while agent_channels(conn):
        await trio.sleep(0.01)


def listing_lines(sock: Path) -> list[str]:
    return [f"{fingerprint} {comment} ({label})" for fingerprint, comment, label in ssh_add_listing(sock)]


def remote_listing(stdout: bytes) -> list[str]:
    return [line.split(" ", 1)[1] for line in stdout.decode().splitlines()]


EMPTY_ANSWER = frame(byte(AgentMessage.IDENTITIES_ANSWER) + uint32(0))
LIST_REQUEST = frame(byte(AgentMessage.REQUEST_IDENTITIES))


async def answer_key_lists(stream: trio.SocketStream) -> bytes | None:
    """Serve an agent holding no keys while the requests are key lists (as when connect() asks the agent
    for keys to authenticate with); return the first other request, or None at end-of-file."""
    while True:
        try:
            request = await read_request(stream)
        except EOFError:
            return None
        if request != LIST_REQUEST[4:]:
            return request
        await stream.send_all(EMPTY_ANSWER)


# --- against sshd -------------------------------------------------------------------------------------------


async def test_forwarded_agent_lists_the_local_keys(sshd: SSHServer, agent: Path) -> None:
    """PROTOCOL §2.2: with forwarding, the server's ssh-add reaches our agent through an
    auth-agent@openssh.com channel and lists exactly its keys; the channel then closes."""
    with trio.fail_after(TEST_TIMEOUT):
        async with connect(sshd, agent_path=agent, forward_agent=True) as conn:
            result = await conn.run("ssh-add -l -E sha256")
            assert result.returncode == 0, result.stderr
            assert remote_listing(result.stdout) == listing_lines(agent)
            await wait_agent_channels_closed(conn)


async def test_without_forwarding_the_server_has_no_agent(sshd: SSHServer, agent: Path) -> None:
    """No auth-agent-req: the server sets no SSH_AUTH_SOCK, and ssh-add says it cannot reach an agent."""
    with trio.fail_after(TEST_TIMEOUT):
        async with connect(sshd, agent_path=agent) as conn:
            result = await conn.run("ssh-add -l")
    assert result.returncode == 2
    assert b"Could not open a connection to your authentication agent" in result.stderr


async def test_forward_agent_needs_forwarding_enabled(sshd: SSHServer, agent: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with connect(sshd, agent_path=agent) as conn:
            with pytest.raises(RuntimeError, match="agent forwarding enabled"):
                await conn.run("true", forward_agent=True)
            assert (await conn.run("true")).returncode == 0


async def test_many_agent_connections_come_and_go(sshd: SSHServer, agent: Path) -> None:
    """One channel per agent connection, each closed cleanly both ways when its client is done."""
    command = "for i in 1 2 3 4 5 6 7 8; do ssh-add -l >/dev/null || exit 1; done; echo done"
    with trio.fail_after(TEST_TIMEOUT):
        async with connect(sshd, agent_path=agent, forward_agent=True) as conn:
            result = await conn.run(command)
            assert result.returncode == 0 and result.stdout == b"done\n", result.stderr
            await wait_agent_channels_closed(conn)
            assert conn._mux.channels == {}


async def test_server_side_ssh_add_reaches_the_local_agent(
    sshd: SSHServer, agent: Path, tmp_path: Path
) -> None:
    """Requests travel the other way too: a key added on the server ends up in our agent."""
    key = tmp_path / "remote_added"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-C", "added remotely", "-f", str(key)],
        check=True,
        timeout=TOOL_TIMEOUT,
    )
    with trio.fail_after(TEST_TIMEOUT):
        async with connect(sshd, agent_path=agent, forward_agent=True) as conn:
            result = await conn.run(f"ssh-add {shlex.quote(str(key))}")
            assert result.returncode == 0, result.stderr
    assert "added remotely" in {comment for _, comment, _ in ssh_add_listing(agent)}


@pytest.mark.skipif(not os.path.exists(REMOTE_PYTHON), reason=f"{REMOTE_PYTHON} is needed on the server")
async def test_relay_moves_more_than_a_window_both_ways(sshd: SSHServer) -> None:
    """The relay keeps flow control both ways: 5 MiB (over two channel windows) through a forwarded
    connection to an echoing local "agent" comes back intact."""

    async def echo(index: int, stream: trio.SocketStream) -> None:
        async with stream:
            head = await receive_exactly(stream, len(LIST_REQUEST))
            if head == LIST_REQUEST:  # connect() asking for keys, not the remote script
                await stream.send_all(EMPTY_ANSWER)
                await answer_key_lists(stream)
                return
            await stream.send_all(head)
            while data := await stream.receive_some(65536):
                await stream.send_all(data)

    script = (
        "import hashlib, os, socket, threading\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(os.environ['SSH_AUTH_SOCK'])\n"
        "data = os.urandom(5 * 1024 * 1024)\n"
        "t = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR))); t.start()\n"
        "got = bytearray()\n"
        "while chunk := s.recv(65536): got += chunk\n"
        "t.join(); print(len(got), hashlib.sha256(got).digest() == hashlib.sha256(data).digest())\n"
    )
    with trio.fail_after(TEST_TIMEOUT):
        async with fake_agent(echo) as path, connect(sshd, agent_path=path, forward_agent=True) as conn:
            result = await conn.run(f"{REMOTE_PYTHON} -c {shlex.quote(script)}")
            assert result.stdout == b"5242880 True\n", result.stderr
            await wait_agent_channels_closed(conn)


async def test_local_agent_dying_mid_request(sshd: SSHServer) -> None:
    """An agent that closes after reading a request: the server's client sees the failure, the channel
    closes, and the connection goes on working. (Key lists are answered, for connect()'s own use.)"""

    async def dies(index: int, stream: trio.SocketStream) -> None:
        async with stream:
            await answer_key_lists(stream)  # returns after reading the first other request

    with trio.fail_after(TEST_TIMEOUT):
        async with fake_agent(dies) as path, connect(sshd, agent_path=path, forward_agent=True) as conn:
            result = await conn.run("ssh-add -D")  # REMOVE_ALL_IDENTITIES
            assert result.returncode == 1, result  # 2 would be "no agent at all"
            assert b"Failed to remove all identities" in result.stderr
            await wait_agent_channels_closed(conn)
            assert (await conn.run("echo still here")).stdout == b"still here\n"


async def test_unreachable_local_agent_refuses_the_channel(
    sshd: SSHServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """ssh does the same: when the local agent cannot be reached, the channel open fails (CONNECT_FAILED)."""
    caplog.set_level(logging.WARNING, logger="trissh.agent")
    missing = tmp_path / "no-agent.sock"
    with trio.fail_after(TEST_TIMEOUT):
        async with connect(sshd, agent_path=missing, forward_agent=True) as conn:
            result = await conn.run("ssh-add -l")
            # sshd closes ssh-add's socket on our refusal; if that beats ssh-add's write, it dies of SIGPIPE.
            failed = result.returncode == 1 and b"communication with agent failed" in result.stderr
            assert failed or result.exit_signal == "PIPE", result
            assert conn._mux.channels == {}
            assert (await conn.run("echo still here")).stdout == b"still here\n"
    assert any("cannot connect to the local agent" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(not os.path.exists(REMOTE_PYTHON), reason=f"{REMOTE_PYTHON} is needed on the server")
async def test_relay_tasks_end_with_the_connection(sshd: SSHServer) -> None:
    """No relay task outlives its connection, even with an agent connection still open on the server."""

    async def hold(index: int, stream: trio.SocketStream) -> None:
        async with stream:
            await answer_key_lists(stream)  # the remote script sends nothing: this waits forever

    script = (
        "import os, socket, sys, time\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(os.environ['SSH_AUTH_SOCK'])\n"
        "print('connected', flush=True); time.sleep(60)\n"
    )
    with trio.fail_after(TEST_TIMEOUT):
        async with fake_agent(hold) as path:
            async with connect(sshd, agent_path=path, forward_agent=True) as conn:
                async with conn.open_process(f"{REMOTE_PYTHON} -c {shlex.quote(script)}") as process:
                    assert await process.stdout.receive_some() == b"connected\n"
                    while not any(channel.opened.is_set() for channel in agent_channels(conn)):
                        await trio.sleep(0.01)  # until the relay has reached the local agent
                    assert len(agent_channels(conn)) == 1
                    assert relay_tasks() != []
            assert relay_tasks() == []


def relay_tasks() -> list[str]:
    found: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        if task.name.startswith("trissh._auth.agent_forward."):
            found.append(task.name)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    walk(trio.lowlevel.current_root_task())
    return found


# --- the channel layer, fed packets directly ---------------------------------------------------------------


class RecordingTransport:
    """What ChannelMux needs of a transport: somewhere to put packets, and callbacks."""

    error = None

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def set_packet_handler(self, handler: object) -> None:
        pass

    def add_close_callback(self, callback: object) -> None:
        pass

    def send_packet_nowait(self, payload: bytes) -> None:
        self.sent.append(bytes(payload))

    async def send_packet(self, payload: bytes) -> None:
        self.sent.append(bytes(payload))
        await trio.lowlevel.checkpoint()

    queue_space = 1 << 20

    def send_channel_data(self, headers: list[bytes], data: memoryview, packet_size: int) -> None:
        for index, header in enumerate(headers):
            self.sent.append(header + bytes(data[index * packet_size :][:packet_size]))

    async def wait_sent(self, packet: bytes) -> None:
        while packet not in self.sent:
            await trio.sleep(0.01)


def agent_open(sender: int = 5) -> bytes:
    return (
        byte(msg.CHANNEL_OPEN)
        + string("auth-agent@openssh.com")
        + uint32(sender)
        + uint32(65536)
        + uint32(16384)
    )


def test_agent_channel_refused_when_not_requested() -> None:
    """PROTOCOL §2.2: without forwarding asked for, the server's agent channel is refused
    (ADMINISTRATIVELY_PROHIBITED), and no channel number is used up."""
    transport = RecordingTransport()
    mux = ChannelMux(transport)  # type: ignore[arg-type]
    mux.handle_packet(0, agent_open())
    expected = byte(msg.CHANNEL_OPEN_FAILURE) + uint32(5) + uint32(1)
    assert transport.sent == [expected + string("agent forwarding was not requested") + string("")]
    assert mux.channels == {}


async def test_agent_channel_connect_failure_is_reported(tmp_path: Path) -> None:
    """The relay refuses the open with CONNECT_FAILED when the local agent is not there."""
    transport = RecordingTransport()
    mux = ChannelMux(transport)  # type: ignore[arg-type]
    with trio.fail_after(TEST_TIMEOUT):
        async with trio.open_nursery() as nursery:
            mux.enable_agent_forwarding(nursery, tmp_path / "missing.sock")
            mux.handle_packet(0, agent_open(9))
            assert len(mux.channels) == 1
    [failure] = transport.sent
    assert failure.startswith(byte(msg.CHANNEL_OPEN_FAILURE) + uint32(9) + uint32(2))
    assert mux.channels == {}


async def test_agent_channel_is_confirmed_and_relays(tmp_path: Path) -> None:
    """With forwarding on, the open is confirmed once the local agent answers, naming the server's
    channel, our number, window and packet size; an agent request on it reaches the agent."""
    requests: list[bytes] = []

    async def handle(index: int, stream: trio.SocketStream) -> None:
        async with stream:
            requests.append(await read_request(stream))
            await trio.sleep_forever()

    transport = RecordingTransport()
    mux = ChannelMux(transport)  # type: ignore[arg-type]
    with trio.fail_after(TEST_TIMEOUT):
        async with fake_agent(handle) as path, trio.open_nursery() as nursery:
            mux.enable_agent_forwarding(nursery, path)
            mux.handle_packet(0, agent_open(9))
            [channel] = mux.channels.values()
            await channel.opened.wait()
            [confirmation] = transport.sent
            expected = byte(msg.CHANNEL_OPEN_CONFIRMATION) + uint32(9) + uint32(channel.local_id)
            assert confirmation == expected + uint32(INITIAL_WINDOW) + uint32(MAX_PACKET)
            request = frame(byte(AgentMessage.REQUEST_IDENTITIES))
            mux.handle_packet(1, byte(msg.CHANNEL_DATA) + uint32(channel.local_id) + string(request))
            while not requests:
                await trio.sleep(0.01)
            assert requests == [byte(AgentMessage.REQUEST_IDENTITIES)]
            mux.handle_packet(2, byte(msg.CHANNEL_CLOSE) + uint32(channel.local_id))  # ends the relay
    assert transport.sent[-1] == byte(msg.CHANNEL_CLOSE) + uint32(9)
    assert mux.channels == {}


async def test_server_may_not_confirm_its_own_channel(tmp_path: Path) -> None:
    """An OPEN_CONFIRMATION for a channel the server opened is a protocol violation (RFC 4254 §5.1)."""
    transport = RecordingTransport()
    mux = ChannelMux(transport)  # type: ignore[arg-type]
    with trio.fail_after(TEST_TIMEOUT):
        async with trio.open_nursery() as nursery:
            mux.enable_agent_forwarding(nursery, tmp_path / "missing.sock")
            mux.handle_packet(0, agent_open(9))
            [local_id] = mux.channels
            confirm = byte(msg.CHANNEL_OPEN_CONFIRMATION) + uint32(local_id) + uint32(3)
            with pytest.raises(ProtocolError, match="which the server opened itself"):
                mux.handle_packet(1, confirm + uint32(1000) + uint32(1000))
            nursery.cancel_scope.cancel()


async def test_enable_without_an_agent() -> None:
    mux = ChannelMux(RecordingTransport())  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        with pytest.raises(AgentError, match="SSH_AUTH_SOCK is not set"):
            mux.enable_agent_forwarding(nursery, None)
    assert not mux.agent_forwarding


async def test_forwarding_without_an_agent_fails_clearly(
    sshd: SSHServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """connect(forward_agent=True) with no agent anywhere is refused before connecting, not an agentless
    session."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with trio.fail_after(TEST_TIMEOUT):
        with pytest.raises(ValueError, match="forward_agent=True needs an ssh-agent"):
            async with connect(sshd, forward_agent=True):
                pass


async def test_agent_channel_half_closes_both_ways() -> None:
    """The agent's reply goes out as channel data; its end-of-file becomes our CHANNEL_EOF, and once the
    server's EOF has come too, our CLOSE (both directions done); the server's CLOSE then ends the relay."""
    answer = frame(byte(AgentMessage.IDENTITIES_ANSWER) + uint32(0))

    async def handle(index: int, stream: trio.SocketStream) -> None:
        async with stream:
            await read_request(stream)
            await stream.send_all(answer)

    transport = RecordingTransport()
    mux = ChannelMux(transport)  # type: ignore[arg-type]
    eof, close = byte(msg.CHANNEL_EOF) + uint32(9), byte(msg.CHANNEL_CLOSE) + uint32(9)
    with trio.fail_after(TEST_TIMEOUT):
        async with fake_agent(handle) as path, trio.open_nursery() as nursery:
            mux.enable_agent_forwarding(nursery, path)
            mux.handle_packet(0, agent_open(9))
            [channel] = mux.channels.values()
            await channel.opened.wait()
            request = frame(byte(AgentMessage.REQUEST_IDENTITIES))
            mux.handle_packet(1, byte(msg.CHANNEL_DATA) + uint32(channel.local_id) + string(request))
            await transport.wait_sent(eof)
            assert transport.sent[1:] == [byte(msg.CHANNEL_DATA) + uint32(9) + string(answer), eof]
            mux.handle_packet(2, byte(msg.CHANNEL_EOF) + uint32(channel.local_id))
            await transport.wait_sent(close)
            mux.handle_packet(3, byte(msg.CHANNEL_CLOSE) + uint32(channel.local_id))
    assert transport.sent[-1] == close and transport.sent.count(close) == 1
    assert mux.channels == {}


async def test_agent_channels_are_bounded(tmp_path: Path) -> None:
    """A server opening agent channels without end gets RESOURCE_SHORTAGE past MAX_AGENT_CHANNELS."""
    transport = RecordingTransport()
    mux = ChannelMux(transport)  # type: ignore[arg-type]
    with trio.fail_after(TEST_TIMEOUT):
        async with trio.open_nursery() as nursery:
            mux.enable_agent_forwarding(nursery, tmp_path / "missing.sock")
            for sender in range(MAX_AGENT_CHANNELS + 1):
                mux.handle_packet(sender, agent_open(sender))
            assert len(mux.channels) == MAX_AGENT_CHANNELS
            [refusal] = transport.sent
            assert refusal.startswith(byte(msg.CHANNEL_OPEN_FAILURE) + uint32(MAX_AGENT_CHANNELS) + uint32(4))
            nursery.cancel_scope.cancel()
