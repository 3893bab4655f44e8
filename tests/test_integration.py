"""trissh against a real OpenSSH sshd on 127.0.0.1 (the session-scoped ``sshd`` fixture)."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import trio
from proxy import CutAfter, Delay, FlipBit
from servers import InteropServer

import trissh
from trissh._algorithms.ciphers import CIPHERS, MACS
from trissh.testing import SSHServer, start_sshd

MiB = 1024 * 1024
#: Close tests give closing this long to flush; a close that waited that out would overrun the tests'
#: ``fail_after(CLOSE_GUARD)`` (which only a hang reaches), so they need no figure of their own.
SLOW_FLUSH = 40.0
CLOSE_GUARD = SLOW_FLUSH / 2


@asynccontextmanager
async def connect(server: SSHServer | InteropServer, **kwargs: Any) -> AsyncIterator[trissh.SSHConnection]:
    options: dict[str, Any] = {
        "username": server.username,
        "client_keys": [server.client_key],
        "known_hosts": server.known_hosts,
        "connect_timeout": 10,
        "agent_path": None,  # the developer's own ssh-agent must not change what a test sees
    }
    options.update(kwargs)
    host = options.pop("host", server.host)
    port = options.pop("port", server.port)
    if port != server.port and options["known_hosts"] == server.known_hosts:
        # Through a proxy: the same host keys, known under the proxy's port.
        text = server.known_hosts.read_text().replace(f"]:{server.port} ", f"]:{port} ")
        options["known_hosts"] = trissh.KnownHosts.from_text(text)
    async with trissh.connect(host, port, **options) as conn:
        yield conn


def trissh_tasks() -> list[str]:
    """Names of the live tasks running trissh code, anywhere in the task tree."""
    found: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        if task.name.startswith("trissh"):  # "trissh.module.function", or "trissh transport reader"
            found.append(task.name)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    walk(trio.lowlevel.current_root_task())
    return found


async def trissh_tasks_once_idle() -> list[str]:
    """:func:`trissh_tasks`, sorted, once the writer is done (it runs only while there is data to send)."""
    while "trissh transport writer" in (tasks := sorted(trissh_tasks())):
        await trio.sleep(0.01)
    return tasks


def _cipher_mac_pairs() -> Iterator[tuple[str, str | None]]:
    # Legacy algorithms need a server that enables them: tests/test_legacy_algorithms.py.
    for cipher, spec in CIPHERS.items():
        if spec.legacy:
            continue
        if spec.aead:
            yield cipher, None
        else:
            for mac, mac_spec in MACS.items():
                if not mac_spec.legacy:
                    yield cipher, mac


# --- running commands -----------------------------------------------------------------------


async def test_run_echo_exit_status_and_stderr(sshd: SSHServer) -> None:
    """RFC 4254 §6.5 exec, §6.10 exit-status, §5.2 extended data (stderr)."""
    async with connect(sshd) as conn:
        result = await conn.run("echo hello; echo oops >&2; exit 3")
        assert result.args == "echo hello; echo oops >&2; exit 3"
        assert result.stdout == b"hello\n"
        assert result.stderr == b"oops\n"
        assert result.returncode == 3
        assert result.exit_signal is None
        assert (await conn.run("true")).returncode == 0
        assert conn.server_version.startswith("SSH-2.0-OpenSSH")
        assert conn.negotiated.strict_kex
        assert conn.host_key.key_type == "ssh-ed25519"


async def test_run_check_raises_process_error(sshd: SSHServer) -> None:
    async with connect(sshd) as conn:
        with pytest.raises(trissh.ProcessError) as info:
            await conn.run("echo out; echo err >&2; exit 7", check=True)
        assert info.value.returncode == 7
        assert info.value.stdout == b"out\n"
        assert info.value.stderr == b"err\n"
        assert (await conn.run("exit 0", check=True)).returncode == 0


async def test_exit_signal(sshd: SSHServer) -> None:
    """RFC 4254 §6.10: exit-signal is reported with the signal name; returncode is minus its number."""
    async with connect(sshd) as conn:
        result = await conn.run("kill -TERM $$")
        assert result.exit_signal == "TERM"
        assert result.returncode == -15


async def test_stdin_input(sshd: SSHServer) -> None:
    data = os.urandom(3 * MiB + 17)
    async with connect(sshd) as conn:
        result = await conn.run("sha256sum", input=data)
        assert result.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
        assert (await conn.run("cat", input=b"abc")).stdout == b"abc"
        assert (await conn.run("wc -c")).stdout.strip() == b"0"


async def test_input_to_a_command_that_does_not_read_it(sshd: SSHServer) -> None:
    """A command that exits without reading stdin must not make run() hang or fail."""
    async with connect(sshd) as conn:
        result = await conn.run("exit 4", input=os.urandom(8 * MiB))
        assert result.returncode == 4


async def test_64_mib_of_output(sshd: SSHServer) -> None:
    """Window flow control (RFC 4254 §5.2) over many windows' worth of data, checked by sha256."""
    size = 64 * MiB
    async with connect(sshd) as conn:
        result = await conn.run(f"head -c {size} /dev/urandom | tee >(sha256sum >&2)")
        assert len(result.stdout) == size
        assert result.stderr.split()[0].decode() == hashlib.sha256(result.stdout).hexdigest()


@pytest.mark.parametrize(("cipher", "mac"), list(_cipher_mac_pairs()))
async def test_every_cipher_and_mac(sshd: SSHServer, cipher: str, mac: str | None) -> None:
    """Each cipher/MAC pair forced in turn, both directions, against OpenSSH."""
    data = os.urandom(300_000)
    async with connect(sshd, ciphers=[cipher], macs=[mac] if mac else None) as conn:
        assert conn.negotiated.client_to_server.cipher == cipher
        assert conn.negotiated.server_to_client.cipher == cipher
        assert conn.negotiated.client_to_server.mac == mac
        result = await conn.run("cat; echo done >&2", input=data)
        assert result.stdout == data
        assert result.stderr == b"done\n"


@pytest.mark.parametrize("kex", ["curve25519-sha256", "curve25519-sha256@libssh.org"])
async def test_kex_names(sshd: SSHServer, kex: str) -> None:
    async with connect(sshd, kex_algs=[kex]) as conn:
        assert conn.negotiated.kex == kex
        assert (await conn.run("echo ok")).stdout == b"ok\n"


@pytest.mark.parametrize(
    "host_key_alg",
    [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "rsa-sha2-512",
        "rsa-sha2-256",
    ],
)
async def test_host_key_algorithms(sshd: SSHServer, host_key_alg: str) -> None:
    """RFC 8709, RFC 5656 §3, RFC 8332: every host key type sshd offers, forced one at a time."""
    async with connect(sshd, host_key_algs=[host_key_alg]) as conn:
        assert conn.negotiated.host_key == host_key_alg
        assert (await conn.run("echo ok")).stdout == b"ok\n"


async def test_open_process_streams(sshd: SSHServer) -> None:
    async with connect(sshd) as conn, conn.open_process("cat; echo bye >&2; exit 5") as proc:
        assert isinstance(proc.stdin, trio.abc.SendStream)
        assert isinstance(proc.stdout, trio.abc.ReceiveStream)
        for i in range(5):
            line = f"line {i}\n".encode()
            await proc.stdin.send_all(line)
            assert await proc.stdout.receive_some() == line
        await proc.stdin.send_eof()
        assert await proc.stdout.receive_some() == b""
        assert await proc.stderr.receive_some() == b"bye\n"
        assert await proc.wait() == 5
        assert proc.returncode == 5


async def test_many_processes_at_once(sshd: SSHServer) -> None:
    """Several channels on one connection, each with its own flow control."""
    results: dict[int, bytes] = {}
    async with connect(sshd) as conn:

        async def one(i: int) -> None:
            results[i] = (await conn.run(f"head -c {MiB} /dev/zero | tr '\\0' '{chr(97 + i)}'")).stdout

        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(one, i)
    for i in range(8):
        assert results[i] == bytes([97 + i]) * MiB


async def test_leaving_open_process_early_keeps_connection_usable(sshd: SSHServer) -> None:
    async with connect(sshd) as conn:
        async with conn.open_process("yes") as proc:
            assert (await proc.stdout.receive_some(10))[:2] == b"y\n"
        assert (await conn.run("echo still here")).stdout == b"still here\n"


async def test_client_initiated_rekey(sshd: SSHServer) -> None:
    """RFC 4253 §9: a rekey mid-connection keeps the data flowing."""
    async with connect(sshd) as conn:
        session_id = conn.transport.session_id
        async with conn.open_process("cat") as proc:
            data = os.urandom(MiB)
            received = bytearray()

            async def reader() -> None:
                while len(received) < len(data):
                    chunk = await proc.stdout.receive_some()
                    assert chunk
                    received.extend(chunk)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader)
                await proc.stdin.send_all(data[: MiB // 2])
                await conn.rekey()
                await proc.stdin.send_all(data[MiB // 2 :])
            assert bytes(received) == data
        assert conn.transport.session_id == session_id  # the session id never changes


async def test_time_based_rekey(sshd: SSHServer) -> None:
    """rekey_seconds: a connection in use is rekeyed once the interval has passed (RFC 4253 §9)."""
    async with connect(sshd, rekey_seconds=0.3) as conn:
        assert conn.transport.state.kex_count == 1
        for _ in range(3):
            await trio.sleep(0.35)
            assert (await conn.run("echo ok")).stdout == b"ok\n"
        assert conn.transport.state.kex_count >= 3


async def test_byte_based_rekey(sshd: SSHServer) -> None:
    """rekey_bytes: data keeps flowing, intact, across many client-initiated rekeys."""
    async with connect(sshd, rekey_bytes=256 * 1024) as conn:
        data = os.urandom(4 * MiB)
        assert (await conn.run("cat", input=data)).stdout == data
        assert conn.transport.state.kex_count >= 16


# --- authentication and host keys ------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa", "rsa"])
async def test_user_key_types(sshd: SSHServer, key_type: str) -> None:
    async with connect(sshd, client_keys=[sshd.client_keys[key_type]]) as conn:
        assert conn.auth.method == "publickey"
        assert (await conn.run("echo ok")).stdout == b"ok\n"


async def test_encrypted_user_key(sshd: SSHServer) -> None:
    from trissh.testing import ENCRYPTED_KEY_PASSPHRASE

    path = sshd.client_keys["ed25519-encrypted"]
    async with connect(sshd, client_keys=[path], passphrase=ENCRYPTED_KEY_PASSPHRASE) as conn:
        assert (await conn.run("echo ok")).stdout == b"ok\n"

    asked: list[str] = []

    async def ask(p: str) -> str:
        asked.append(p)
        return ENCRYPTED_KEY_PASSPHRASE

    async with connect(sshd, client_keys=[path], passphrase=ask) as conn:
        assert (await conn.run("echo ok")).stdout == b"ok\n"
    assert asked == [str(path)]

    with pytest.raises(trissh.KeyImportError, match="passphrase"):
        async with connect(sshd, client_keys=[path], passphrase="wrong"):
            pass


async def test_wrong_user_key_is_refused(sshd: SSHServer, tmp_path: Path) -> None:
    """RFC 4252 §7: a key the server does not know ends in PermissionDenied, naming the methods."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    stranger = trissh.PrivateKey.from_crypto(ed25519.Ed25519PrivateKey.generate())
    with pytest.raises(trissh.PermissionDenied) as info:
        async with connect(sshd, client_keys=[stranger]):
            pass
    assert "publickey" in info.value.methods


async def test_unknown_host_key_is_refused(sshd: SSHServer, tmp_path: Path) -> None:
    """Secure by default: an unknown key fails before authentication, naming host and fingerprint."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(trissh.HostKeyNotVerifiable) as info:
        async with connect(sshd, known_hosts=empty):
            pass
    assert "SHA256:" in str(info.value)
    assert "127.0.0.1" in str(info.value)
    # Authentication never started: sshd logs no publickey attempt for this connection... and the
    # strict default also holds when known_hosts is a KnownHosts object.
    with pytest.raises(trissh.HostKeyNotVerifiable):
        async with connect(sshd, known_hosts=trissh.KnownHosts()):
            pass


async def test_changed_host_key_is_refused(sshd: SSHServer, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from trissh._algorithms.hostkeys import public_key_from_crypto

    other = public_key_from_crypto(ed25519.Ed25519PrivateKey.generate().public_key())
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {other.openssh_line()}\n")
    with pytest.raises(trissh.HostKeyNotVerifiable, match="CHANGED"):
        async with connect(sshd, known_hosts=known, host_key_algs=["ssh-ed25519"]):
            pass


async def test_accept_new_records_the_key(sshd: SSHServer, tmp_path: Path) -> None:
    known = tmp_path / "sub" / "known_hosts"
    async with connect(sshd, known_hosts=known, host_key_policy="accept-new") as conn:
        key = conn.host_key
    assert key.openssh_line() in known.read_text()
    async with connect(sshd, known_hosts=known) as conn:  # now trusted under "strict"
        assert conn.host_key == key


async def test_known_hosts_none_disables_checking(sshd: SSHServer) -> None:
    async with connect(sshd, known_hosts=None) as conn:
        assert (await conn.run("echo ok")).stdout == b"ok\n"


async def test_hashed_known_hosts(sshd: SSHServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(sshd.known_hosts.read_text())
    trio_proc = await trio.run_process(["ssh-keygen", "-H", "-f", str(known)], capture_stdout=True)
    assert trio_proc.returncode == 0
    assert known.read_text().startswith("|1|")
    async with connect(sshd, known_hosts=known) as conn:
        assert (await conn.run("echo ok")).stdout == b"ok\n"


# --- failures: nothing hangs, nothing is silently truncated -------------------------------------


async def test_connection_cut_mid_transfer_raises(sshd: SSHServer, make_proxy: Any) -> None:
    """A broken connection makes run() raise; partial output is never returned as a result."""
    proxy = await make_proxy((sshd.host, sshd.port), fault=CutAfter(2 * MiB))
    async with connect(sshd, host=proxy.host, port=proxy.port) as conn:
        with pytest.raises(trissh.ConnectionLost):
            await conn.run("head -c 67108864 /dev/zero")


async def test_connection_reset_mid_stream_raises_on_read(sshd: SSHServer, make_proxy: Any) -> None:
    """proc.stdout raises instead of ending as if at EOF."""
    proxy = await make_proxy((sshd.host, sshd.port), fault=CutAfter(MiB, reset=True))
    async with connect(sshd, host=proxy.host, port=proxy.port) as conn:
        async with conn.open_process("head -c 67108864 /dev/zero") as proc:
            total = 0
            with pytest.raises(trissh.ConnectionLost):
                while True:
                    chunk = await proc.stdout.receive_some()
                    assert chunk, "stream ended as if at EOF"
                    total += len(chunk)
            assert total < 64 * MiB
            with pytest.raises(trissh.ConnectionLost):
                await proc.wait()


@pytest.mark.parametrize("offset", [100_000, MiB + 7])
async def test_tampered_stream_raises_protocol_error(sshd: SSHServer, make_proxy: Any, offset: int) -> None:
    """One flipped bit in the server's stream fails the MAC/tag check: ProtocolError, not data."""
    proxy = await make_proxy((sshd.host, sshd.port), fault=FlipBit(offset, bit=3))
    async with connect(sshd, host=proxy.host, port=proxy.port) as conn:
        with pytest.raises(trissh.ProtocolError, match=r"tag|MAC"):
            await conn.run("head -c 8388608 /dev/zero")
        with pytest.raises(trissh.ProtocolError):
            await conn.run("true")  # the error is sticky


async def test_server_killed_mid_transfer(tmp_path: Path) -> None:
    """sshd and its session killed with SIGKILL while a command streams: ConnectionLost, no hang."""
    from trissh.testing._sshd import _descendants

    with start_sshd() as server:
        async with connect(server) as conn, conn.open_process("head -c 1073741824 /dev/zero") as proc:
            assert await proc.stdout.receive_some()
            for pid in [*_descendants(server.pid), server.pid]:
                with suppress(ProcessLookupError):
                    os.kill(pid, 9)
            with trio.fail_after(10):
                with pytest.raises(trissh.ConnectionLost):
                    while await proc.stdout.receive_some():
                        pass


async def _junk_lines(stream: trio.SocketStream) -> None:
    while True:
        await stream.send_all(b"junk line that is not a version\r\n" * 100)


async def _endless_line(stream: trio.SocketStream) -> None:
    while True:
        await stream.send_all(b"x" * 4096)


async def _silent(stream: trio.SocketStream) -> None:
    await trio.sleep_forever()


async def _version_then_silent(stream: trio.SocketStream) -> None:
    await stream.send_all(b"SSH-2.0-Fake\r\n")
    await trio.sleep_forever()


async def _huge_packet(stream: trio.SocketStream) -> None:
    await stream.send_all(b"SSH-2.0-Fake\r\n" + (0x7FFFFFFF).to_bytes(4, "big") + b"\x04")
    await trio.sleep_forever()


@pytest.mark.parametrize(
    ("handler", "error", "match"),
    [
        (_junk_lines, trissh.ProtocolError, "no SSH version line"),
        (_endless_line, trissh.ProtocolError, "longer than"),
        (_silent, trissh.ConnectTimeout, "version line"),
        (_version_then_silent, trissh.ConnectTimeout, "key exchange"),
        (_huge_packet, trissh.ProtocolError, "exceeds the maximum"),
    ],
)
async def test_bad_servers_end_with_clear_errors(
    make_proxy: Any, handler: Any, error: type, match: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RFC 4253 §4.2 and §6.1 bounds: junk, endless lines, silence, absurd lengths.

    The error comes when it happens: closing does not then wait the flush timeout to send a
    DISCONNECT that a key exchange in progress would hold back. That timeout is made longer than
    the test's fail_after (the wait is shielded, so it would run to its end, then fail_after fires),
    so such a wait fails the test without a wall-clock figure to meet.
    """
    monkeypatch.setattr("trissh._supervision.CLOSE_FLUSH_TIMEOUT", SLOW_FLUSH)
    proxy = await make_proxy(handler=handler)
    with trio.fail_after(CLOSE_GUARD):
        with pytest.raises(error, match=match):
            async with trissh.connect(
                proxy.host, proxy.port, known_hosts=None, client_keys=[], connect_timeout=1
            ):
                pass
        await trio.lowlevel.checkpoint()  # had closing overrun the guard, it fires here


async def test_connect_refused() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(trissh.ConnectionLost, match="cannot connect"):
        async with trissh.connect("127.0.0.1", port, known_hosts=None, client_keys=[]):
            pass


# --- cancellation ---------------------------------------------------------------------------------


async def test_cancel_connect_leaves_no_task(sshd: SSHServer, make_proxy: Any) -> None:
    """A cancel scope around connect(): the connection is closed and no task is left running."""
    proxy = await make_proxy((sshd.host, sshd.port), fault=Delay(math.inf, after=200))
    with trio.move_on_after(0.3) as scope:
        async with connect(sshd, host=proxy.host, port=proxy.port):
            pytest.fail("connected through a stalled proxy")
    assert scope.cancelled_caught
    assert trissh_tasks() == []


# Cancelling connect(), a command and the close at each of their steps (rather than after wall-clock
# delays, which hit the phases by luck): tests/test_cancel_sweep.py.


async def _expect_disconnect_in_log(sshd: SSHServer, port: int) -> None:
    """sshd logs our DISCONNECT (11: by application) from client port ``port`` within 5 s."""
    expected = f"Received disconnect from 127.0.0.1 port {port}:11:"
    with trio.move_on_after(5):
        while expected not in sshd.read_log():
            await trio.sleep(0.02)
    assert expected in sshd.read_log(), sshd.read_log()[-3000:]


async def test_cancel_around_an_open_connection_closes_it_at_once(
    sshd: SSHServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scope cancels the transport's tasks too: closing must not wait for them to flush.

    The flush timeout is made longer than the test's fail_after, so a close that waited for
    cancelled tasks fails the test (as in test_bad_servers_end_with_clear_errors). The cancel
    comes once the connection is idle (its writer done), as the DISCONNECT check at the end needs.
    """
    monkeypatch.setattr("trissh._supervision.CLOSE_FLUSH_TIMEOUT", SLOW_FLUSH)
    with trio.fail_after(CLOSE_GUARD):
        with trio.CancelScope() as scope:
            async with connect(sshd) as conn:
                await conn.run("true")
                port = conn._transport.stream.socket.getsockname()[1]  # type: ignore[attr-defined]
                assert await trissh_tasks_once_idle() == ["trissh transport reader"]
                scope.cancel()
                await trio.sleep_forever()
    assert scope.cancelled_caught
    assert trissh_tasks() == []
    with pytest.raises(trissh.ConnectionLost):
        await conn.run("true")
    # And the server was told, as far as the socket took it at once (here: all of it).
    await _expect_disconnect_in_log(sshd, port)


async def test_close_tells_the_server(sshd: SSHServer) -> None:
    """Leaving the block sends DISCONNECT (by application) before closing the socket.

    (Only when the server is not writing at that moment does its log show it for sure: a
    socket closed while data arrives is reset, and sshd may die on the broken pipe first.)
    """
    async with connect(sshd) as conn:
        await conn.run("true")
        port = conn._transport.stream.socket.getsockname()[1]  # type: ignore[attr-defined]
    await _expect_disconnect_in_log(sshd, port)


async def test_an_idle_connection_runs_no_writer_task(sshd: SSHServer) -> None:
    """The writer runs while there is something to send: an idle connection is its reader alone."""
    async with connect(sshd) as conn:
        await conn.run("true")
        with trio.fail_after(5):
            while trissh_tasks() != ["trissh transport reader"]:
                await trio.sleep(0.01)
        for _ in range(3):  # and it comes back whenever there is something to send
            assert (await conn.run("echo again")).stdout == b"again\n"


async def test_cancel_running_command_keeps_connection_usable(sshd: SSHServer) -> None:
    async with connect(sshd) as conn:
        with trio.move_on_after(0.3) as scope:
            await conn.run("sleep 10")
        assert scope.cancelled_caught
        with trio.move_on_after(0.3):
            await conn.run("head -c 100000000 /dev/zero")
        result = await conn.run("echo usable")
        assert result.stdout == b"usable\n"


async def test_error_inside_block_is_not_wrapped(sshd: SSHServer) -> None:
    """The caller's own exception comes out bare, not in an ExceptionGroup."""
    with pytest.raises(KeyError):
        async with connect(sshd):
            raise KeyError("mine")


async def test_without_direct_socket_io(sshd: SSHServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where sockets are not descriptors (Windows), the transport uses the stream's own methods."""
    monkeypatch.setattr("trissh._socket_io.AVAILABLE", False)
    async with connect(sshd) as conn:
        assert conn._transport._socket is None
        result = await conn.run("sha256sum", input=bytes(3000000))
        assert result.stdout.split()[0].decode() == hashlib.sha256(bytes(3000000)).hexdigest()
        out = await conn.run("head -c 3000000 /dev/zero")
        assert out.stdout == bytes(3000000)
        await conn.rekey()
        assert (await conn.run("echo still")).stdout == b"still\n"
