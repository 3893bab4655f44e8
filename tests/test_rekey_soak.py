"""Rekey soak: key exchanges started at any time by either side lose, duplicate or reorder no byte.

Every stream runs on its own channel as a duplex "generator + checker" command (:func:`_duplex_script`):
the server generates the download with ``openssl enc -aes-128-ctr`` over zeros and reports its sha256,
and hashes and counts the upload. The client sends the upload from the same keystream construction
(:class:`Keystream`) and checks the download byte by byte as it arrives, so a corruption is reported at its
exact offset; nothing is ever held whole in memory. The short forms run by default; the 1 GiB forms are
``slow`` (``--run-slow``).
"""

from __future__ import annotations

import hashlib
import random
import shlex
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trio
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from test_integration import connect

import trissh
from trissh.testing import SSHServer, start_sshd

MiB = 1024 * 1024
GiB = 1024 * MiB

SIZES = [
    pytest.param(32 * MiB, id="32MiB"),
    pytest.param(GiB, id="1GiB", marks=pytest.mark.slow),
]
DIRECTIONS = ["download", "upload"]
CHANNELS = 6  # concurrent channels in the multi-channel test

_ZEROS = bytes(MiB)


@pytest.fixture(scope="module")
def rekeying_sshd() -> Iterator[SSHServer]:
    """An sshd that starts a key exchange after every MiB in either direction."""
    with start_sshd(extra_config=["RekeyLimit 1M"]) as server:
        yield server


class Keystream:
    """AES-128-CTR over zeros: deterministic, fast, and exactly what ``openssl enc -aes-128-ctr`` prints."""

    def __init__(self, label: str) -> None:
        digest = hashlib.sha256(label.encode()).digest()
        self.key, self.iv = digest[:16], digest[16:]
        self._encryptor = Cipher(algorithms.AES(self.key), modes.CTR(self.iv)).encryptor()

    def read(self, n: int) -> bytes:
        zeros = memoryview(_ZEROS)[:n] if n <= len(_ZEROS) else bytes(n)
        return self._encryptor.update(zeros)

    def openssl_command(self) -> str:
        return f"openssl enc -aes-128-ctr -K {self.key.hex()} -iv {self.iv.hex()} -in /dev/zero"


def _duplex_script(generator: str, down: int) -> str:
    """Print ``down`` bytes of ``generator`` while hashing stdin; report both on stderr, one tagged line each.

    openssl's stderr is dropped: ``head`` closing the pipe makes it complain. sshd closes the channel only
    once every holder of stderr is gone, so the process substitutions' late lines still arrive.
    """
    return (
        f"{{ {generator} 2>/dev/null | head -c {down} | tee >(sha256sum | sed 's/^/sent /' >&2); }} &\n"
        "tee >(wc -c | sed 's/^/received-bytes /' >&2) | sha256sum | sed 's/^/received /' >&2\n"
        "wait\n"
    )


class Progress:
    """Bytes moved so far by every stream of a test, for the rekeyer's marks and for timeout messages."""

    def __init__(self) -> None:
        self.total = 0
        self.streams: dict[str, int] = {}
        self.conn: trissh.SSHConnection | None = None
        self._mark = 0
        self._reached: trio.Event | None = None

    def add(self, stream: str, n: int) -> None:
        self.streams[stream] = self.streams.get(stream, 0) + n
        self.total += n
        if self._reached is not None and self.total >= self._mark:
            self._reached.set()
            self._reached = None

    async def wait_for(self, mark: int) -> None:
        """Return once ``mark`` bytes have moved (one waiter at a time)."""
        if self.total >= mark:
            await trio.lowlevel.checkpoint()
            return
        self._mark, self._reached = mark, trio.Event()
        await self._reached.wait()

    def __str__(self) -> str:
        kex = self.conn.transport.state.kex_count if self.conn is not None else "?"
        moved = ", ".join(f"{name} {n}" for name, n in self.streams.items())
        return f"kex_count={kex}; bytes moved: {moved or 'none'}"


@contextmanager
def soak_deadline(size: int, progress: Progress) -> Iterator[None]:
    """Fail, saying how far the transfer got, rather than hang (generous: ~2 MiB/s plus start-up)."""
    seconds = 60 + size / (2 * MiB)
    try:
        with trio.fail_after(seconds):
            yield
    except trio.TooSlowError:
        pytest.fail(f"not done after {seconds:.0f} s (a hang?): {progress}")


def _write_size(rng: random.Random) -> int:
    # Mostly large writes for speed; some tiny ones so packet and window boundaries fall everywhere.
    return rng.randint(1, 4096) if rng.random() < 0.25 else rng.randint(64 * 1024, 512 * 1024)


async def transfer(
    conn: trissh.SSHConnection, name: str, *, down: int, up: int, seed: int, progress: Progress
) -> None:
    """Move ``down`` bytes from and ``up`` bytes to the server on one channel, and check every byte."""
    down_stream = Keystream(f"{name} down {seed}")
    up_stream = Keystream(f"{name} up {seed}")
    rng = random.Random(f"{name} {seed}")
    sent_hash, received_hash = hashlib.sha256(), hashlib.sha256()
    received = 0
    stderr = bytearray()
    command = "bash -c " + shlex.quote(_duplex_script(down_stream.openssl_command(), down))

    async with conn.open_process(command) as proc:

        async def send() -> None:
            remaining = up
            while remaining:
                data = up_stream.read(min(remaining, _write_size(rng)))
                sent_hash.update(data)
                await proc.stdin.send_all(data)
                remaining -= len(data)
                progress.add(f"{name} up", len(data))
            await proc.stdin.send_eof()

        async def receive() -> None:
            nonlocal received
            while True:
                # Now and then a small read, so the reader's buffers are split at odd places too.
                max_bytes = rng.randint(1, 65536) if rng.random() < 0.1 else None
                chunk = await proc.stdout.receive_some(max_bytes)
                if not chunk:
                    return
                expected = down_stream.read(len(chunk))
                if chunk != expected:
                    first = next(i for i, (a, b) in enumerate(zip(chunk, expected, strict=True)) if a != b)
                    pytest.fail(
                        f"{name}: download differs at byte {received + first} (chunk of {len(chunk)} at "
                        f"{received}; seed {seed}); {progress}"
                    )
                received_hash.update(chunk)
                received += len(chunk)
                progress.add(f"{name} down", len(chunk))
                assert received <= down, f"{name}: more than the {down} bytes sent arrived; {progress}"

        async def read_stderr() -> None:
            while chunk := await proc.stderr.receive_some():
                stderr.extend(chunk)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            nursery.start_soon(receive)
            nursery.start_soon(read_stderr)
        status = await proc.wait()

    text = stderr.decode(errors="replace")
    assert status == 0, f"{name}: exit status {status}; stderr: {text!r}"
    report = dict(line.split(maxsplit=2)[:2] for line in text.splitlines() if line.strip())
    assert received == down, f"{name}: {received} of {down} bytes arrived; {progress}"
    assert report.get("sent") == received_hash.hexdigest(), f"{name}: download hash differs: {text!r}"
    assert report.get("received-bytes") == str(up), (
        f"{name}: server got {report.get('received-bytes')} of {up}"
    )
    assert report.get("received") == sent_hash.hexdigest(), f"{name}: upload hash differs: {text!r}"


async def rekey_at_random_moments(
    conn: trissh.SSHConnection, progress: Progress, total: int, count: int, rng: random.Random
) -> None:
    """Call ``conn.rekey()`` ``count`` times, each once a random number of the ``total`` bytes has moved."""
    for mark in sorted(rng.randrange(total) for _ in range(count)):
        await progress.wait_for(mark)
        await conn.rekey()


def _directional(direction: str, size: int) -> dict[str, int]:
    return {"down": size, "up": 0} if direction == "download" else {"down": 0, "up": size}


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("size", SIZES)
async def test_server_initiated_rekeys(rekeying_sshd: SSHServer, size: int, direction: str) -> None:
    """sshd's RekeyLimit 1M: a key exchange about every MiB, all started by the server."""
    progress = Progress()
    with soak_deadline(size, progress):
        async with connect(rekeying_sshd) as conn:
            progress.conn = conn
            await transfer(conn, direction, seed=1, progress=progress, **_directional(direction, size))
            assert conn.transport.state.kex_count >= size // MiB // 2, str(progress)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("size", SIZES)
async def test_client_initiated_rekeys(sshd: SSHServer, size: int, direction: str) -> None:
    """rekey_bytes=8 MiB plus explicit rekey() calls from another task at random points of the transfer."""
    progress = Progress()
    rng = random.Random(2)
    explicit = max(8, size // (4 * MiB))  # on average every 4 MiB; longer gaps leave room for byte-based ones
    with soak_deadline(size, progress):
        async with connect(sshd, rekey_bytes=8 * MiB) as conn:
            progress.conn = conn
            async with trio.open_nursery() as nursery:
                nursery.start_soon(rekey_at_random_moments, conn, progress, size, explicit, rng)
                await transfer(conn, direction, seed=2, progress=progress, **_directional(direction, size))
            # Each rekey() waited for a key exchange of its own (sequential calls never share one).
            assert conn.transport.state.kex_count >= 1 + explicit, str(progress)


@pytest.mark.parametrize("size", SIZES)
async def test_rekeys_under_many_busy_channels(rekeying_sshd: SSHServer, size: int) -> None:
    """Several channels at full speed both ways while both sides start key exchanges (sometimes at once)."""
    progress = Progress()
    rng = random.Random(3)
    share = size // CHANNELS  # ``size`` each way in all
    explicit = max(8, size // (4 * MiB))
    with soak_deadline(size, progress):
        async with connect(rekeying_sshd) as conn:
            progress.conn = conn
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    rekey_at_random_moments, conn, progress, 2 * share * CHANNELS, explicit, rng
                )
                for i in range(CHANNELS):
                    nursery.start_soon(
                        lambda i=i: transfer(conn, f"ch{i}", down=share, up=share, seed=3, progress=progress)
                    )
            kex_count = conn.transport.state.kex_count
            assert kex_count >= 1 + explicit and kex_count >= size // MiB // 2, str(progress)
