"""The ssh-agent client (draft-miller-ssh-agent) against a real OpenSSH ssh-agent, and against fake agents
that misbehave on purpose.

A real ``ssh-agent -D`` runs per test (the ``agent`` fixture), loaded with ``ssh-add`` from keys made by
``ssh-keygen`` once per module; what the client sees is compared with what ``ssh-add -l`` sees. The fake
agents are Trio tasks serving a unix socket inside the test, so every failure is deterministic.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from agents import TOOL_TIMEOUT, run_agent, ssh_add, ssh_add_listing

from trissh import AgentError, SSHAgentClient
from trissh._algorithms.certificates import Certificate, parse_certificate
from trissh._auth.agent import MAX_AGENT_MESSAGE, AgentIdentity, AgentMessage
from trissh._auth.keys import PrivateKey, load_private_key
from trissh._wire import byte, string, uint32

pytestmark = pytest.mark.skipif(
    not (shutil.which("ssh-agent") and shutil.which("ssh-add") and shutil.which("ssh-keygen")),
    reason="OpenSSH's ssh-agent, ssh-add and ssh-keygen are needed",
)

#: Every test body runs under this deadline: a hang fails the test instead of stalling the run.
TEST_TIMEOUT = 20

# ssh-add -l's type labels.
LABELS = {"ssh-ed25519": "ED25519", "ecdsa-sha2-nistp256": "ECDSA", "ssh-rsa": "RSA"}


# --- real agents and keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySet:
    """Keys made by ssh-keygen: plain ed25519/ecdsa/rsa keys, and an RSA key with a CA-signed certificate."""

    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    def private(self, name: str) -> PrivateKey:
        return load_private_key(self.path(name))

    def certificate(self, name: str) -> Certificate:
        line = self.path(f"{name}-cert.pub").read_text().split()
        return parse_certificate(base64.b64decode(line[1]))


def keygen(*args: str) -> None:
    subprocess.run(["ssh-keygen", "-q", *args], check=True, timeout=TOOL_TIMEOUT, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    directory = tmp_path_factory.mktemp("agent-keys")
    for name, args in {
        "ed25519": ("-t", "ed25519"),
        "ecdsa": ("-t", "ecdsa", "-b", "256"),
        "rsa": ("-t", "rsa", "-b", "2048"),
        "certified": ("-t", "rsa", "-b", "2048"),
        "ca": ("-t", "ed25519"),
    }.items():
        keygen(*args, "-N", "", "-C", f"comment-{name}", "-f", str(directory / name))
    # ssh-add picks up certified-cert.pub next to the key and adds the certificate too.
    keygen(
        "-s",
        str(directory / "ca"),
        "-I",
        "trissh-test-id",
        "-n",
        "principal",
        str(directory / "certified.pub"),
    )
    return KeySet(directory)


def listing_of(identities: list[AgentIdentity]) -> list[tuple[str, str, str]]:
    """Our identities in ssh-add -l's terms."""
    return [
        (
            identity.fingerprint,
            identity.comment,
            LABELS[identity.public_key.key_type] + ("-CERT" if identity.certificate is not None else ""),
        )
        for identity in identities
    ]


@pytest.fixture
def agent() -> Iterator[Path]:
    """An empty real agent's socket."""
    with run_agent() as sock:
        yield sock


@pytest.fixture
def loaded_agent(agent: Path, keys: KeySet) -> Path:
    """A real agent holding ed25519, ecdsa and rsa keys, and an RSA key with its certificate."""
    ssh_add(agent, *(keys.path(name) for name in ("ed25519", "ecdsa", "rsa", "certified")))
    return agent


# --- a real agent ------------------------------------------------------------------------------------------


async def test_list_keys_matches_ssh_add(loaded_agent: Path, keys: KeySet) -> None:
    """draft-miller-ssh-agent §6.5: every key and the certificate, in the agent's order, as ssh-add
    sees them."""
    with trio.fail_after(TEST_TIMEOUT):
        async with SSHAgentClient(loaded_agent) as client:
            identities = await client.list_keys()
    expected = ssh_add_listing(loaded_agent)
    assert len(expected) == 5  # four keys, and the certificate as an identity of its own
    assert listing_of(identities) == expected
    [cert_identity] = [identity for identity in identities if identity.certificate is not None]
    certificate = cert_identity.certificate
    assert certificate is not None
    assert certificate.blob == keys.certificate("certified").blob
    assert certificate.key_id == "trissh-test-id" and certificate.principals == ("principal",)
    assert cert_identity.public_key == keys.private("certified").public_key
    assert cert_identity.source == "agent comment-certified"


@pytest.mark.parametrize("algorithm", ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-256", "rsa-sha2-512"])
async def test_agent_signatures_verify(loaded_agent: Path, algorithm: str) -> None:
    """§6.6: the agent's signature blob is made with the algorithm asked for, and verifies with the key."""
    key_type = "ssh-rsa" if algorithm.startswith("rsa-") else algorithm
    data = os.urandom(64)
    with trio.fail_after(TEST_TIMEOUT):
        async with SSHAgentClient(loaded_agent) as client:
            identities = await client.list_keys()
            identity = next(
                i for i in identities if i.public_key.key_type == key_type and i.certificate is None
            )
            assert algorithm in identity.algorithms(None)
            signature = await identity.sign(data, algorithm)
    assert identity.public_key.verify(signature, data, algorithm)
    assert not identity.public_key.verify(signature, data + b"x", algorithm)


async def test_sha1_rsa_signature_needs_no_flag(loaded_agent: Path, keys: KeySet) -> None:
    """§6.7: with neither RSA flag the agent signs ssh-rsa (SHA-1); the client checks it got that."""
    public_key = keys.private("rsa").public_key
    data = os.urandom(32)
    with trio.fail_after(TEST_TIMEOUT):
        async with SSHAgentClient(loaded_agent) as client:
            signature = await client.sign(public_key.blob, data)
    assert public_key.verify(signature, data, "ssh-rsa")


async def test_certificate_identity_signs_with_the_plain_algorithm(loaded_agent: Path) -> None:
    """PROTOCOL.certkeys: a certificate request algorithm gets a signature by the plain algorithm, which
    verifies with the certified key; the request carries the certificate blob."""
    data = os.urandom(32)
    with trio.fail_after(TEST_TIMEOUT):
        async with SSHAgentClient(loaded_agent) as client:
            [identity] = [i for i in await client.list_keys() if i.certificate is not None]
            algorithms = identity.algorithms(None)
            assert algorithms == ["rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com"]
            for algorithm in algorithms:
                signature = await identity.sign(data, algorithm)
                plain = algorithm.removesuffix("-cert-v01@openssh.com")
                assert identity.public_key.verify(signature, data, plain)


async def test_signing_with_a_key_the_agent_lacks_is_refused(agent: Path, keys: KeySet) -> None:
    """§6.6: SSH_AGENT_FAILURE becomes an AgentError naming the request."""
    with trio.fail_after(TEST_TIMEOUT):
        async with SSHAgentClient(agent) as client:
            with pytest.raises(AgentError, match="refused the sign request"):
                await client.sign(keys.private("ed25519").public_key.blob, b"data")
            assert await client.list_keys() == []  # a refusal leaves the connection usable


async def test_many_tasks_share_one_client(loaded_agent: Path, keys: KeySet) -> None:
    """One request at a time: concurrent signers each get their own reply, never another's."""
    public_key = keys.private("ed25519").public_key
    results: dict[int, bytes] = {}
    with trio.fail_after(TEST_TIMEOUT):
        async with SSHAgentClient(loaded_agent) as client:

            async def sign(index: int) -> None:
                results[index] = await client.sign(public_key.blob, b"message %d" % index)

            async with trio.open_nursery() as nursery:
                for index in range(20):
                    nursery.start_soon(sign, index)
    assert len(results) == 20
    for index, signature in results.items():
        assert public_key.verify(signature, b"message %d" % index, "ssh-ed25519")


@pytest.mark.parametrize("name", ["ed25519", "ecdsa", "rsa"])
async def test_add_key_is_seen_by_ssh_add_and_signs(agent: Path, keys: KeySet, name: str) -> None:
    """§6.2 / §4.2: ADD_IDENTITY's private key encoding is the agent's: ssh-add lists the key, and the
    agent's signatures with it verify (a wrong private value would make bad signatures)."""
    key = keys.private(name)
    data = os.urandom(32)
    with trio.fail_after(TEST_TIMEOUT):
        async with SSHAgentClient(agent) as client:
            await client.add_key(key, "added by trissh")
            [identity] = await client.list_keys()
            algorithm = identity.algorithms(None)[0]
            signature = await identity.sign(data, algorithm)
    assert ssh_add_listing(agent) == [(key.public_key.fingerprint, "added by trissh", LABELS[key.key_type])]
    assert key.public_key.verify(signature, data, algorithm)


async def test_add_key_with_certificate(agent: Path, keys: KeySet) -> None:
    """§4.2 certificate form: the agent holds the certificate, and signs for it."""
    key = keys.private("certified")
    certificate = keys.certificate("certified")
    data = os.urandom(32)
    with trio.fail_after(TEST_TIMEOUT):
        async with SSHAgentClient(agent) as client:
            await client.add_key(key, "cert by trissh", certificate=certificate)
            [identity] = await client.list_keys()
            assert identity.certificate == certificate
            signature = await identity.sign(data, "rsa-sha2-512-cert-v01@openssh.com")
    assert ssh_add_listing(agent) == [(key.public_key.fingerprint, "cert by trissh", "RSA-CERT")]
    assert key.public_key.verify(signature, data, "rsa-sha2-512")


async def test_add_key_refuses_a_certificate_of_another_key(agent: Path, keys: KeySet) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        async with SSHAgentClient(agent) as client:
            with pytest.raises(ValueError, match="does not belong"):
                await client.add_key(keys.private("rsa"), certificate=keys.certificate("certified"))


async def test_add_key_constraints_reach_the_agent(agent: Path, keys: KeySet) -> None:
    """§6.2 ADD_ID_CONSTRAINED: a lifetime is accepted; with confirm, the agent asks before each use,
    and its (always-denying) askpass makes the signature fail, while an unconstrained key signs."""
    confirmed, free = keys.private("ed25519"), keys.private("ecdsa")
    with trio.fail_after(TEST_TIMEOUT):
        async with SSHAgentClient(agent) as client:
            with pytest.raises(ValueError, match="lifetime"):
                await client.add_key(free, lifetime=0)
            await client.add_key(confirmed, "confirm", lifetime=3600, confirm=True)
            await client.add_key(free, "free", lifetime=3600)
            assert {row[1] for row in ssh_add_listing(agent)} == {"confirm", "free"}
            await client.sign(free.public_key.blob, b"data")
            with pytest.raises(AgentError, match="refused"):
                await client.sign(confirmed.public_key.blob, b"data")


async def test_remove_key_and_remove_all(loaded_agent: Path, keys: KeySet) -> None:
    """§6.3, §6.4: removed keys are gone for ssh-add too; removing a key the agent lacks is refused."""
    with trio.fail_after(TEST_TIMEOUT):
        async with SSHAgentClient(loaded_agent) as client:
            identities = await client.list_keys()
            await client.remove_key(identities[0])
            assert listing_of(identities[1:]) == ssh_add_listing(loaded_agent)
            await client.remove_key(identities[1].public_key)
            with pytest.raises(AgentError, match="refused the remove key request"):
                await client.remove_key(identities[0].blob)
            await client.remove_all()
            assert await client.list_keys() == []
    result = ssh_add(loaded_agent, "-l", check=False)
    assert result.returncode == 1 and "no identities" in result.stdout


async def test_no_agent_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with trio.fail_after(TEST_TIMEOUT):
        with pytest.raises(AgentError, match="SSH_AUTH_SOCK is not set"):
            async with SSHAgentClient():
                pass


async def test_default_path_is_ssh_auth_sock(monkeypatch: pytest.MonkeyPatch, loaded_agent: Path) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", str(loaded_agent))
    with trio.fail_after(TEST_TIMEOUT):
        async with SSHAgentClient() as client:
            assert len(await client.list_keys()) == 5


async def test_unreachable_agent(tmp_path: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        with pytest.raises(AgentError, match=r"cannot connect to the ssh-agent at .*missing"):
            async with SSHAgentClient(tmp_path / "missing"):
                pass


async def test_closed_client_refuses_requests(loaded_agent: Path) -> None:
    with trio.fail_after(TEST_TIMEOUT):
        client = SSHAgentClient(loaded_agent)
        async with client:
            pass
        await client.aclose()  # idempotent
        with pytest.raises(trio.ClosedResourceError):
            await client.list_keys()


# --- fake agents ----------------------------------------------------------------------------------------

#: Serves one accepted connection: (its index, counting from 0; the stream).
Handler = Callable[[int, trio.SocketStream], Awaitable[None]]


async def receive_exactly(stream: trio.SocketStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


async def read_request(stream: trio.SocketStream) -> bytes:
    length = int.from_bytes(await receive_exactly(stream, 4), "big")
    return await receive_exactly(stream, length)


def frame(message: bytes) -> bytes:
    return uint32(len(message)) + message


@contextlib.asynccontextmanager
async def fake_agent(handler: Handler) -> AsyncIterator[Path]:
    """A unix socket served by ``handler``, one task per connection, for the duration of the block."""
    directory = Path(tempfile.mkdtemp(prefix="trissh-fake-agent-"))
    path = directory / "sock"
    listener = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await listener.bind(str(path))
    listener.listen()
    try:
        async with trio.open_nursery() as nursery:

            async def serve() -> None:
                for index in range(1000):
                    conn, _ = await listener.accept()
                    nursery.start_soon(handler, index, trio.SocketStream(conn))

            nursery.start_soon(serve)
            yield path
            nursery.cancel_scope.cancel()
    finally:
        listener.close()
        shutil.rmtree(directory, ignore_errors=True)


def answering(*replies: bytes) -> Handler:
    """A handler that reads one request, writes ``replies`` raw, then closes."""

    async def handle(index: int, stream: trio.SocketStream) -> None:
        async with stream:
            await read_request(stream)
            for reply in replies:
                await stream.send_all(reply)

    return handle


MISBEHAVIOURS = {
    "closes after the request": (answering(), "closed the connection mid-reply \\(0 of 4 bytes"),
    "closes mid-length": (answering(b"\x00\x00"), "mid-reply \\(2 of 4 bytes"),
    "closes mid-reply": (answering(uint32(100) + bytes(10)), "mid-reply \\(10 of 100 bytes"),
    "truncated answer": (answering(frame(byte(12) + b"\x00\x00")), "malformed answer"),
    "trailing bytes": (answering(frame(byte(12) + uint32(0) + b"junk")), "malformed answer"),
    "oversized length": (answering(uint32(0xFFFFFFF0)), f"maximum is {MAX_AGENT_MESSAGE}"),
    "just over the maximum": (answering(uint32(MAX_AGENT_MESSAGE + 1)), "maximum"),
    "empty message": (answering(uint32(0)), "empty message"),
    "wrong reply type": (answering(frame(byte(AgentMessage.SUCCESS))), "SUCCESS, expected IDENTITIES_ANSWER"),
    "unknown reply type": (answering(frame(byte(200))), "message 200"),
    "failure": (answering(frame(byte(AgentMessage.FAILURE))), "refused the key list request"),
    "too many keys claimed": (answering(frame(byte(12) + uint32(1_000_000))), "claims 1000000 keys"),
}


@pytest.mark.parametrize("name", list(MISBEHAVIOURS))
async def test_misbehaving_agent_raises_agent_error(name: str) -> None:
    """Every bad reply (cut off, garbled, oversized, of the wrong type) is an AgentError saying so, never a
    hang: the socket read ends the wait."""
    handler, message = MISBEHAVIOURS[name]
    with trio.fail_after(TEST_TIMEOUT):
        async with fake_agent(handler) as path, SSHAgentClient(path) as client:
            with pytest.raises(AgentError, match=message):
                await client.list_keys()


async def test_signature_with_another_algorithm_is_refused(keys: KeySet) -> None:
    """The client checks the returned blob's algorithm is the one its flags asked for."""
    key = keys.private("rsa")
    wrong = key.sign(b"data", "rsa-sha2-256")
    handler = answering(frame(byte(AgentMessage.SIGN_RESPONSE) + string(wrong)))
    with trio.fail_after(TEST_TIMEOUT):
        async with fake_agent(handler) as path, SSHAgentClient(path) as client:
            with pytest.raises(AgentError, match="signed with 'rsa-sha2-256' instead"):
                await client.sign(key.public_key.blob, b"data", flags=4)


async def test_after_a_broken_reply_the_next_request_reconnects() -> None:
    """A reply cut short leaves the stream's position unknown: that socket is dropped, and the next request
    uses a fresh connection (here, to an agent that answers properly)."""

    async def handle(index: int, stream: trio.SocketStream) -> None:
        async with stream:
            await read_request(stream)
            if index == 0:
                await stream.send_all(uint32(50) + b"partial")
                return
            await stream.send_all(frame(byte(AgentMessage.IDENTITIES_ANSWER) + uint32(0)))

    with trio.fail_after(TEST_TIMEOUT):
        async with fake_agent(handle) as path, SSHAgentClient(path) as client:
            with pytest.raises(AgentError, match="7 of 50"):
                await client.list_keys()
            assert await client.list_keys() == []


async def test_cancelled_request_drops_the_connection() -> None:
    """Cancelled between request and reply: the late reply must not be taken for the next request's."""
    request_seen = trio.Event()
    release_reply = trio.Event()
    late = frame(byte(AgentMessage.FAILURE))

    async def handle(index: int, stream: trio.SocketStream) -> None:
        async with stream:
            await read_request(stream)
            if index == 0:
                request_seen.set()
                await release_reply.wait()
                with contextlib.suppress(trio.BrokenResourceError):
                    await stream.send_all(late)  # too late: the client gave up on this socket
                return
            await stream.send_all(frame(byte(AgentMessage.IDENTITIES_ANSWER) + uint32(0)))

    with trio.fail_after(TEST_TIMEOUT):
        async with fake_agent(handle) as path, SSHAgentClient(path) as client:
            async with trio.open_nursery() as nursery:
                with trio.CancelScope() as scope:
                    nursery.start_soon(_cancel_when, request_seen, scope)
                    await client.list_keys()
            assert scope.cancelled_caught
            release_reply.set()
            assert await client.list_keys() == []


async def _cancel_when(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()


async def test_unusable_keys_are_skipped_with_a_log(keys: KeySet, caplog: pytest.LogCaptureFixture) -> None:
    """Security keys are skipped saying they are unsupported; other unknown or broken blobs at debug level;
    the usable key among them is still returned."""
    good = keys.private("ed25519").public_key
    entries = [
        (string("sk-ssh-ed25519@openssh.com") + string(bytes(32)) + string("ssh:"), "yubikey"),
        (string("sk-ecdsa-sha2-nistp256-cert-v01@openssh.com") + string(bytes(40)), "sk cert"),
        (string("ssh-dss") + string(bytes(20)), "old dsa"),
        (string("ssh-ed25519") + string(bytes(5)), "broken"),
        (b"\xff\xff", "garbage"),
        (good.blob, "good"),
    ]
    answer = byte(AgentMessage.IDENTITIES_ANSWER) + uint32(len(entries))
    answer += b"".join(string(blob) + string(comment) for blob, comment in entries)
    caplog.set_level(logging.DEBUG, logger="trissh.agent")
    with trio.fail_after(TEST_TIMEOUT):
        async with fake_agent(answering(frame(answer))) as path, SSHAgentClient(path) as client:
            [identity] = await client.list_keys()
    assert identity.public_key == good and identity.comment == "good"
    unsupported = [r for r in caplog.records if "security keys are not supported" in r.getMessage()]
    assert len(unsupported) == 2 and all(r.levelno == logging.INFO for r in unsupported)
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any("ssh-dss" in m for m in skipped) and any("broken" in m for m in skipped)
