"""The low-level API, Conch style: a subclassed SSHClientTransport driven by hand against a real sshd."""

from __future__ import annotations

import contextlib

import pytest
import trio
import trio.testing

import trissh
from trissh.testing import SSHServer


class Client(trissh.SSHClientTransport):
    def __init__(self, stream: trio.SocketStream, server: SSHServer, **kwargs: object) -> None:
        super().__init__(stream, host=server.host, port=server.port, **kwargs)  # type: ignore[arg-type]
        self.known = trissh.KnownHosts.load([server.known_hosts])
        self.service_started = trio.Event()
        self.hook_error: BaseException | None = None

    async def verify_host_key(self, host_key: trissh.PublicKey, fingerprint: str) -> bool:
        return self.known.check(self.host, self.port, host_key) is trissh.HostKeyStatus.TRUSTED

    async def connection_secure(self) -> None:
        # As in Conch: start the service from the hook (it runs in a task of its own).
        await self.request_service("ssh-userauth")
        self.service_started.set()


async def test_a_service_requested_from_connection_secure(sshd: SSHServer) -> None:
    stream = await trio.open_tcp_stream(sshd.host, sshd.port)
    transport = Client(stream, sshd, kex_algs=["ecdh-sha2-nistp256"], ciphers="aes128-gcm@openssh.com")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            transport.start(nursery)
            await transport.wait_secure()
            await transport.service_started.wait()
            assert transport.negotiated is not None
            assert transport.negotiated.kex == "ecdh-sha2-nistp256"
            assert transport.negotiated.client_to_server.cipher == "aes128-gcm@openssh.com"
            assert transport.session_id is not None
            await transport.aclose()


class FailingHook(Client):
    async def connection_secure(self) -> None:
        raise ValueError("the application refuses")


async def test_an_error_in_the_hook_ends_the_connection_and_is_named(
    sshd: SSHServer, caplog: pytest.LogCaptureFixture
) -> None:
    stream = await trio.open_tcp_stream(sshd.host, sshd.port)
    transport = FailingHook(stream, sshd)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            transport.start(nursery)
            with contextlib.suppress(trissh.SSHError):  # the hook may have failed first
                await transport.wait_secure()
            while not transport.is_closed:
                await trio.sleep(0.01)
            await transport.aclose()
    assert isinstance(transport.error, trissh.SSHError)
    assert "connection_secure() raised ValueError('the application refuses')" in str(transport.error)
    assert "internal error" not in caplog.text


def test_settings_for_a_transport_built_from_algorithm_lists() -> None:
    a, _ = trio.testing.memory_stream_pair()
    transport = trissh.SSHClientTransport(
        a, rekey_bytes=1 << 20, gex_bits=(3072, 4096, 8192), macs=["hmac-sha1"]
    )
    assert transport.state.rekey_bytes == 1 << 20
    with pytest.raises(ValueError, match="unsupported MAC algorithm"):
        trissh.SSHClientTransport(a, macs=["hmac-md5"])
    with pytest.raises(ValueError, match="go to the TransportState"):
        trissh.SSHClientTransport(a, transport.state, rekey_bytes=5)


# --- stopping: the tasks end however the connection ends, over a socket or any other stream --------------


async def _open(sshd: SSHServer, over_socket: bool) -> trio.abc.Stream:
    stream = await trio.open_tcp_stream(sshd.host, sshd.port)
    # A StapledStream is not a SocketStream: the transport then stops its tasks with cancel scopes.
    return stream if over_socket else trio.StapledStream(stream, stream)


STREAM_KINDS = pytest.mark.parametrize("over_socket", [True, False], ids=["socket", "other-stream"])


class HangingVerifier(Client):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.asked = trio.Event()

    async def verify_host_key(self, host_key: trissh.PublicKey, fingerprint: str) -> bool:
        self.asked.set()
        await trio.sleep_forever()  # a prompt nobody answers
        raise AssertionError("unreachable")

    async def connection_secure(self) -> None:
        pass


@STREAM_KINDS
async def test_close_while_the_host_key_hook_waits(sshd: SSHServer, over_socket: bool) -> None:
    transport = HangingVerifier(await _open(sshd, over_socket), sshd)  # type: ignore[arg-type]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            transport.start(nursery)
            await transport.asked.wait()
            await transport.aclose()
    assert isinstance(transport.error, trissh.ConnectionLost)
    with pytest.raises(trissh.ConnectionLost):
        await transport.wait_secure()


@STREAM_KINDS
async def test_cancelling_the_nursery_ends_the_connection(sshd: SSHServer, over_socket: bool) -> None:
    transport = Client(await _open(sshd, over_socket), sshd)  # type: ignore[arg-type]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            transport.start(nursery)
            await transport.service_started.wait()
            nursery.cancel_scope.cancel()
    with trio.fail_after(1):
        await transport.aclose()  # closing after that neither waits nor fails
    assert isinstance(transport.error, trissh.ConnectionLost)


@STREAM_KINDS
async def test_a_failed_connection_stops_its_tasks_without_aclose(sshd: SSHServer, over_socket: bool) -> None:
    transport = FailingHook(await _open(sshd, over_socket), sshd)  # type: ignore[arg-type]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:  # exits only once every task of the transport has ended
            transport.start(nursery)
    assert transport.is_closed
    assert "the application refuses" in str(transport.error)
