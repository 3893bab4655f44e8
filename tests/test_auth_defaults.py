"""``trissh.connect(host)`` with nothing else, as ``ssh host``: the agent at ``$SSH_AUTH_SOCK``, the keys in
``~/.ssh`` and ``~/.ssh/known_hosts``, in OpenSSH's order; and an agent that dies mid-request handing over to
the next key source.

HOME points at a temporary directory for these tests, so the machine's own ``~/.ssh`` never counts.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from agents import run_agent, ssh_add

import trissh
from trissh._wire import byte, string, uint32
from trissh.testing import SSHServer

pytestmark = pytest.mark.skipif(
    not (shutil.which("ssh-agent") and shutil.which("ssh-add")),
    reason="OpenSSH's ssh-agent and ssh-add are needed",
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sshd: SSHServer) -> Path:
    """A HOME whose ~/.ssh/known_hosts knows the test server, and no keys or agent yet."""
    ssh_dir = tmp_path / ".ssh"
    ssh_dir.mkdir(mode=0o700)
    shutil.copy(sshd.known_hosts, ssh_dir / "known_hosts")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return tmp_path


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real ssh-agent, as $SSH_AUTH_SOCK."""
    with run_agent() as sock:
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        yield sock


async def test_agent_and_known_hosts_are_enough(home: Path, agent: Path, sshd: SSHServer) -> None:
    """The issue's promise: a user with only an agent and ~/.ssh/known_hosts needs no other argument."""
    ssh_add(agent, sshd.client_keys["ecdsa"])
    with trio.fail_after(20):
        async with trissh.connect(sshd.host, sshd.port) as conn:
            assert (await conn.run("echo ok")).stdout == b"ok\n"
    assert conn.auth.method == "publickey"


async def test_default_key_files_are_enough(home: Path, sshd: SSHServer) -> None:
    shutil.copy(sshd.client_keys["rsa"], home / ".ssh" / "id_rsa")
    with trio.fail_after(20):
        async with trissh.connect(sshd.host, sshd.port) as conn:
            assert (await conn.run("echo ok")).stdout == b"ok\n"


async def test_no_key_anywhere_says_where_trissh_looked(home: Path, sshd: SSHServer) -> None:
    with trio.fail_after(20), pytest.raises(trissh.PermissionDenied) as caught:
        async with trissh.connect(sshd.host, sshd.port):
            pass
    text = str(caught.value)
    assert "SSH_AUTH_SOCK is unset" in text
    assert str(home / ".ssh" / "id_ed25519") in text
    assert "client_keys" in text


async def test_unknown_host_is_refused_by_default(home: Path, agent: Path, sshd: SSHServer) -> None:
    (home / ".ssh" / "known_hosts").write_text("")
    ssh_add(agent, sshd.client_key)
    with trio.fail_after(20), pytest.raises(trissh.HostKeyNotVerifiable, match="not known"):
        async with trissh.connect(sshd.host, sshd.port):
            pass


@asynccontextmanager
async def dying_agent(listed: trissh.PublicKey, directory: Path) -> AsyncIterator[Path]:
    """An agent that lists ``listed`` and hangs up on the first signature request."""
    sock = directory / "dying.sock"
    requests: list[int] = []

    async def serve(stream: trio.SocketStream) -> None:
        async with stream:
            buffer = b""
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buffer += data
                while len(buffer) >= 4 and len(buffer) >= 4 + int.from_bytes(buffer[:4], "big"):
                    size = int.from_bytes(buffer[:4], "big")
                    kind = buffer[4]
                    buffer = buffer[4 + size :]
                    requests.append(kind)
                    if kind != 11:  # anything but REQUEST_IDENTITIES: die mid-request
                        return
                    answer = byte(12) + uint32(1) + string(listed.blob) + string("dying")
                    await stream.send_all(uint32(len(answer)) + answer)

    raw = trio.socket.socket(trio.socket.AF_UNIX)
    await raw.bind(str(sock))
    raw.listen()
    listener = trio.SocketListener(raw)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, serve, [listener])
        yield sock
        nursery.cancel_scope.cancel()
    assert 13 in requests, "the agent was never asked to sign"


async def test_an_agent_dying_mid_request_hands_over_to_the_key_files(
    home: Path, sshd: SSHServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(sshd.client_key, home / ".ssh" / "id_ed25519")
    listed = trissh.read_private_key(
        sshd.client_keys["ecdsa"]
    ).public_key  # authorized, so it gets signed for
    directory = Path(tempfile.mkdtemp(prefix="trissh-dying-"))
    try:
        with trio.fail_after(20):
            async with dying_agent(listed, directory) as sock:
                monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
                async with trissh.connect(sshd.host, sshd.port) as conn:
                    assert (await conn.run("echo ok")).stdout == b"ok\n"
    finally:
        shutil.rmtree(directory, ignore_errors=True)
