"""The fuzz targets: each ``target(data: bytes) -> None`` feeds ``data`` to one parser or state machine.

The contract every target checks: whatever the bytes, trissh answers with one of its own
:class:`~trissh.SSHError` subclasses or nothing, never another exception, and quickly
(:func:`run_one` counts an input that takes over :data:`MAX_SECONDS` as a finding). Exceptions
are let through on purpose: the fuzz engine reports them with the input that caused them.

Inputs with structure (a sequence of packets, a sequence of reads) are split by :func:`records`:
``<u16 length><bytes>`` repeated, the last record taking whatever is left, so that mutating one
record leaves the others in place. Everything is deterministic (seeded randomness), so an input
replays the same way every time, and the seed corpus (``fuzz/make_corpus.py``) can carry whole
key exchanges that verify.

The transport targets use the scripted server of the test suite (``tests/sshserver_script.py``):
its half of the key exchange is written independently of trissh's, and sealing the fuzzer's
payloads with the keys it negotiated is how mutated messages get past the MAC to the layers above.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import trio

from trissh import _messages as msg
from trissh._algorithms import ciphers
from trissh._algorithms.certificates import parse_certificate, parse_openssh_certificate_line
from trissh._algorithms.hostkeys import decode_public_key, parse_openssh_public_key
from trissh._algorithms.kex import KEX_METHODS
from trissh._auth import key_files
from trissh._auth.agent import SSHAgentClient
from trissh._auth.keys import import_private_key, read_public_key
from trissh._auth.known_hosts import KnownHosts
from trissh._auth.methods.base import AuthSettings
from trissh._auth.userauth import authenticate
from trissh._channels.mux import ChannelMux
from trissh._channels.session import SessionChannel
from trissh._errors import SSHError
from trissh._forwarding.socks import SocksError, read_socks_request
from trissh._options import algorithm_preferences
from trissh._transport.events import NEED_DATA, HostKeyReceived, PacketReceived
from trissh._transport.state import TransportState
from trissh._wire import DecodeError, Reader, byte, uint32
from trissh.sftp._attributes import SFTPAttributes
from trissh.sftp._codec import SFTPCodec
from trissh.sftp._constants import OpenFlag

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from sshserver_script import ScriptedServer  # type: ignore[import-not-found]

__all__ = ["MAX_SECONDS", "TARGETS", "Hang", "ScriptedServer", "records", "run_one"]

#: The issue's bound: every input answered within one second.
MAX_SECONDS: Final = 1.0

#: Seeds of the client's and the scripted server's randomness (the corpus depends on them).
CLIENT_SEED: Final = 1
SERVER_SEED: Final = 2

assert issubclass(DecodeError, SSHError)

Target = Callable[[bytes], None]

#: The TransportState the last transport target drove, and the message types it passed up to the
#: layers above (the tests check with them that the seeds reach as deep as they should).
last_state: TransportState | None = None
delivered: list[int] = []


class Hang(Exception):
    """An input took longer than :data:`MAX_SECONDS` (a finding, like a crash)."""


def records(data: bytes) -> Iterator[bytes]:
    """Split ``data`` into ``<u16 length><bytes>`` records; the last one takes what is left."""
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            yield data[pos:]
            return
        size = int.from_bytes(data[pos : pos + 2], "big")
        yield data[pos + 2 : pos + 2 + size]
        pos += 2 + size


def pack_records(items: list[bytes]) -> bytes:
    """The inverse of :func:`records` (for building the seed corpus)."""
    return b"".join(len(item).to_bytes(2, "big") + item for item in items)


# --- 1. the transport state -----------------------------------------------------------------


def _client() -> TransportState:
    """A client offering every algorithm trissh knows (so the fuzzer can steer negotiation anywhere)."""
    global last_state
    delivered.clear()
    prefs = algorithm_preferences(kex_algs=list(KEX_METHODS), compression=True)
    last_state = TransportState(prefs, random=random.Random(CLIENT_SEED).randbytes)
    return last_state


def _drain(state: TransportState) -> None:
    """Pull events until NEED_DATA, trusting any host key (as a caller with no known_hosts check would)."""
    for _ in range(10_000):
        event = state.next_event()
        if event is NEED_DATA:
            return
        if isinstance(event, HostKeyReceived):
            state.accept_host_key()
        elif isinstance(event, PacketReceived):
            delivered.append(event.payload[0])
    raise AssertionError("next_event() returned 10,000 events for one input")


def transport_version(data: bytes) -> None:
    """The server's byte stream from its very first byte: version exchange, then anything after it."""
    state = _client()
    state.start()
    state.data_to_send()
    try:
        # Two feeds: the split point is the first byte, so lines split across reads are tried too.
        cut = data[0] if data else 0
        for piece in (data[1 : 1 + cut], data[1 + cut :]):
            state.receive_data(piece)
            _drain(state)
    except SSHError:
        pass


def transport_kex(data: bytes) -> None:
    """The first key exchange: each record is one server payload, framed as a plaintext packet.

    The server's version line is fixed. The seed corpus holds a genuine KEXINIT, KEX_ECDH_REPLY and
    NEWKEYS (the client's randomness is seeded, so the recorded reply verifies), which the fuzzer
    mutates; a record starting with 0xFF instead goes onto the wire unframed (raw bytes).
    """
    state = _client()
    state.start()
    state.data_to_send()
    sealer = ciphers.plain_sealer(random.Random(SERVER_SEED).randbytes)
    try:
        state.receive_data(b"SSH-2.0-ScriptedServer_1.0\r\n")  # the scripted server's, as the corpus
        _drain(state)
        for seq, record in enumerate(records(data)):
            if record[:1] == b"\xff":
                state.receive_data(record[1:])
            else:
                state.receive_data(sealer.seal(seq, record))
            _drain(state)
            state.data_to_send()
    except SSHError:
        pass


class _HarnessStop(Exception):
    """The scripted server could not do what a record asked (the input is then simply over)."""


def established() -> tuple[TransportState, Any]:
    """A client and a scripted server after a complete first key exchange (strict KEX)."""
    state = _client()
    server = ScriptedServer(seed=SERVER_SEED)
    state.start()
    server.feed(bytes(state.data_to_send()))
    state.receive_data(server.version() + server.kexinit())
    _drain(state)
    init = server.feed(bytes(state.data_to_send()))
    state.receive_data(server.handshake_reply(init))
    _drain(state)
    server.feed(bytes(state.data_to_send()))
    return state, server


def _server_rekey(state: TransportState, server: Any) -> None:
    """The scripted server runs a genuine rekey (the fuzzer places it between its own packets)."""
    try:
        state.receive_data(server.kexinit())
        _drain(state)
        packets = server.feed(bytes(state.data_to_send()))
        if not any(p.type == msg.KEX_ECDH_INIT for p in packets):
            raise _HarnessStop
        state.receive_data(server.handshake_reply(packets))
    except (AssertionError, StopIteration, SSHError) as exc:
        if isinstance(exc, SSHError) and not isinstance(exc, DecodeError):
            raise
        raise _HarnessStop from exc


def transport_post_kex(data: bytes) -> None:
    """After a real key exchange: each record is sealed with the negotiated keys, so it reaches the
    transport's handling of IGNORE, DEBUG, DISCONNECT, EXT_INFO, UNIMPLEMENTED, KEXINIT (rekeys) and
    service messages. The record's first byte chooses: 0-63 seal the rest, 64-127 seal the rest with
    a wrong sequence number, 128-191 put the rest on the wire raw, 192-255 run a genuine rekey."""
    state, server = established()
    try:
        for record in records(data):
            if not record:
                continue
            op, body = record[0] >> 6, record[1:]
            if op == 0:
                state.receive_data(server.packet(body))
            elif op == 1:
                state.receive_data(server.packet(body, seq=server.send_seq + 1 + record[0]))
            elif op == 2:
                state.receive_data(body)
            else:
                _server_rekey(state, server)
            _drain(state)
            try:
                server.feed(bytes(state.data_to_send()))
            except (AssertionError, SSHError) as exc:
                raise _HarnessStop from exc
    except (SSHError, _HarnessStop):
        pass


# --- 2. the wire decoders -------------------------------------------------------------------


def wire(data: bytes) -> None:
    """A Reader over the input after a script: the first bytes choose a sequence of reads."""
    if not data:
        return
    count = min(data[0], 32)
    script, message = data[1 : 1 + count], data[1 + count :]
    reader = Reader(message, "fuzz")
    reads: list[Callable[[], object]] = [
        reader.byte,
        reader.boolean,
        reader.uint32,
        reader.uint64,
        reader.string,
        reader.string_view,
        reader.text,
        reader.ascii,
        reader.mpint,
        reader.name_list,
        reader.rest,
        reader.check_end,
        lambda: reader.raw(reader.remaining // 2),
        lambda: reader.remaining,
    ]
    try:
        for op in script:
            reads[op % len(reads)]()
    except SSHError:
        pass


# --- 3. key parsers -------------------------------------------------------------------------

_TMP = Path(tempfile.gettempdir()) / f"trissh-fuzz-{os.getpid()}"


def _temp_file(data: bytes) -> Path:
    """A file with ``data`` in it, for the parsers that read paths (one file, rewritten)."""
    _TMP.mkdir(exist_ok=True)
    path = _TMP / "input"
    path.write_bytes(data)
    return path


#: The bcrypt rounds a key file may ask for while fuzzing. trissh's own bound (MAX_KDF_ROUNDS, 16384) is
#: minutes of CPU by design, so a mutated round count inside it would be a "hang" that is only a slow,
#: legitimate KDF; the corpus's encrypted key uses 1 round. Above this the parser's refusal is what runs.
FUZZ_MAX_KDF_ROUNDS: Final = 4


def private_key(data: bytes) -> None:
    """import_private_key: OpenSSH, PEM (PKCS#1, SEC1, PKCS#8), encrypted or not. The first byte
    chooses the passphrase: none, the corpus's ``fuzzing``, or empty."""
    if not data:
        return
    passphrase = (None, "fuzzing", b"")[data[0] % 3]
    limit = key_files.MAX_KDF_ROUNDS
    key_files.MAX_KDF_ROUNDS = FUZZ_MAX_KDF_ROUNDS  # type: ignore[misc]
    try:
        key = import_private_key(data[1:], passphrase)
        key.public_key.openssh_line()
    except SSHError:
        pass
    finally:
        key_files.MAX_KDF_ROUNDS = limit  # type: ignore[misc]


def public_key(data: bytes) -> None:
    """Public keys and certificates: the first byte chooses the form (blob, ``.pub`` line,
    a file through read_public_key with its RFC 4716 and PEM forms, certificate blob or line)."""
    if not data:
        return
    form, body = data[0] % 5, data[1:]
    try:
        if form == 0:
            decode_public_key(body).fingerprint  # noqa: B018 (computed: it hashes the blob)
        elif form == 1:
            parse_openssh_public_key(body)
        elif form == 2:
            read_public_key(_temp_file(body))
        elif form == 3:
            parse_certificate(body).describe()
        else:
            parse_openssh_certificate_line(body)
    except SSHError:
        pass


# --- 4. known_hosts -------------------------------------------------------------------------

_PROBE_KEY_LINE: Final = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def known_hosts(data: bytes) -> None:
    """KnownHosts parsing (plain, hashed ``|1|`` entries, ``@cert-authority``/``@revoked`` markers,
    patterns and negations) from a file, then every lookup against a fixed host and key."""
    probe = parse_openssh_public_key(_PROBE_KEY_LINE)
    try:
        hosts = KnownHosts()
        hosts.load_file(_temp_file(data))
        for host, port in (("example.com", 22), ("10.0.0.1", 2222), ("[::1]", 22)):
            hosts.lookup(host, port)
            hosts.check(host, port, probe)
            hosts.explain(host, port, probe)
            hosts.known_key_types(host, port)
            hosts.has_cert_authority(host, port)
    except SSHError:
        pass


# --- 5. the channel layer, the agent client, the SOCKS reader ------------------------------------


class _FakeTransport:
    """What ChannelMux needs of a transport: packets are recorded (and dropped), callbacks kept."""

    error: SSHError | None = None
    queue_space = 1 << 20

    def __init__(self) -> None:
        self.sent = 0
        self.close_callbacks: list[Callable[[SSHError], None]] = []

    def set_packet_handler(self, handler: object) -> None:
        pass

    def add_close_callback(self, callback: Callable[[SSHError], None]) -> None:
        self.close_callbacks.append(callback)

    def send_packet_nowait(self, payload: bytes) -> None:
        self.sent += 1

    async def send_packet(self, payload: bytes) -> None:
        self.sent += 1
        await trio.lowlevel.checkpoint()

    def send_channel_data(self, headers: list[bytes], data: memoryview, packet_size: int) -> None:
        self.sent += len(headers)


def channels(data: bytes) -> None:
    """ChannelMux.handle_packet fed one packet per record, with channels 0 and 1 open (remote ids 7
    and 8) and channel 2 still opening: data, window, requests (exit-status, signals), EOF, CLOSE,
    confirmations, server opens, global requests. Empty records are skipped (the transport refuses
    empty packets before they get here)."""

    async def main() -> None:
        transport = _FakeTransport()
        mux = ChannelMux(transport)  # type: ignore[arg-type]
        for remote in (7, 8):
            channel = mux.add(SessionChannel, "session")
            confirm = byte(msg.CHANNEL_OPEN_CONFIRMATION) + uint32(channel.local_id) + uint32(remote)
            mux.handle_packet(0, confirm + uint32(1 << 20) + uint32(32768))
        mux.add(SessionChannel, "session")
        try:
            for seq, record in enumerate(records(data)):
                if record:
                    mux.handle_packet(seq, record)
        except SSHError as exc:
            for callback in transport.close_callbacks:
                callback(exc)

    trio.run(main)


class _AgentSocket:
    """A stand-in for the agent's socket: replies come from the fuzzer, requests go nowhere."""

    class socket:
        @staticmethod
        def close() -> None:
            pass

    def __init__(self, replies: Iterator[bytes]) -> None:
        self._replies = replies

    async def send_all(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int) -> bytes:
        await trio.lowlevel.checkpoint()
        return next(self._replies, b"")[:max_bytes]


class _FuzzAgent(SSHAgentClient):
    def __init__(self, replies: Iterator[bytes]) -> None:
        super().__init__("/nonexistent/fuzz-agent.sock")
        self._socket = _AgentSocket(replies)

    async def _connected(self) -> trio.SocketStream:
        await trio.lowlevel.checkpoint()
        return self._socket  # type: ignore[return-value]


def agent(data: bytes) -> None:
    """The ssh-agent client's reply decoding: list_keys, then sign, answered from the records
    (each record is what one receive_some returns, so replies may come in pieces)."""

    async def main() -> None:
        client = _FuzzAgent(records(data))
        try:
            identities = await client.list_keys()
            for identity in identities[:2]:
                await identity.sign(b"data to sign", identity.algorithms(None)[0])
            await client.sign(b"\x00\x00\x00\x0bssh-ed25519" + b"\x00" * 36, b"data")
        except SSHError:
            pass

    trio.run(main)


class _ScriptedStream(trio.abc.Stream):
    """A stream whose reads are the fuzzer's records; writes are counted and dropped."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return next(self._chunks, b"")

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def socks(data: bytes) -> None:
    """read_socks_request (SOCKS4, 4a, 5) over a stream whose reads are the records. Its refusals
    are SocksError (a local client's mistake, not an SSHError), so that is allowed here too."""

    async def main() -> None:
        with contextlib.suppress(SocksError):
            await read_socks_request(_ScriptedStream(records(data)))

    trio.run(main)


# --- 6. the auth layer ------------------------------------------------------------------------


class _AuthTransport:
    """What authenticate() needs of a transport: the server's packets are the fuzzer's records."""

    authenticated = False
    session_id = b"\x42" * 32
    server_sig_algs = None
    extensions: dict[str, bytes] = {}  # noqa: RUF012

    def __init__(self, packets: Iterator[bytes]) -> None:
        self._packets = (packet for packet in packets if packet)  # the transport refuses empty ones
        self.sent = 0

    def __getattr__(self, name: str) -> Any:
        raise _HarnessStop(f"the auth fake transport has no {name}")

    async def send_packet(self, payload: bytes) -> None:
        self.sent += 1
        await trio.lowlevel.checkpoint()

    async def receive_packet(self) -> bytes:
        await trio.lowlevel.checkpoint()
        packet = next(self._packets, None)
        if packet is None:
            raise _Disconnected("the fuzz input ended")
        return packet

    async def request_service(self, name: str) -> None:
        # The real one (SSHClientTransport.request_service) is tested by transport_post_kex's
        # SERVICE_ACCEPT; here the first record stands for it only when it is one.
        await trio.lowlevel.checkpoint()


class _Disconnected(SSHError):
    """The fuzz input ran out (as a connection that closes would end authentication)."""


async def _answer_prompts(name: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
    await trio.lowlevel.checkpoint()
    return ["answer"] * len(prompts)


async def _new_password(prompt: str) -> str:
    await trio.lowlevel.checkpoint()
    return "new password"


def auth(data: bytes) -> None:
    """authenticate() against a server whose packets are the records: banners, FAILURE lists,
    partial success, keyboard-interactive INFO_REQUESTs, password change requests, SUCCESS."""

    async def main() -> None:
        settings = AuthSettings(
            username="fuzz",
            password="secret",
            kbdint_handler=_answer_prompts,
            password_change_handler=_new_password,
        )
        transport = _AuthTransport(records(data))
        with contextlib.suppress(SSHError, _HarnessStop):
            await authenticate(transport, settings, ("keyboard-interactive", "password"))  # type: ignore[arg-type]

    trio.run(main)


# --- 7. the SFTP codec -----------------------------------------------------------------------


def sftp_requests(codec: SFTPCodec) -> list[tuple[int, bytes]]:
    """The requests the sftp target has outstanding when the server's bytes arrive (the corpus's
    recorded answers are for exactly these, in this order): one of each kind of answer."""
    file, directory = b"\x00\x00\x00\x00", b"\x00\x00\x00\x01"  # OpenSSH's first two handles
    return [
        codec.open(b"fuzz", int(OpenFlag.READ), SFTPAttributes()),
        codec.read(file, 0, 32768),
        codec.stat(b"."),
        codec.opendir(b"."),
        codec.readdir(directory),
        codec.realpath(b"."),
        codec.extended("limits@openssh.com"),
        codec.write(file, 0, b"data"),
        codec.close(file),
    ]


def sftp(data: bytes) -> None:
    """SFTPCodec.next_response on the server's side of a session: VERSION, then the answers to
    :func:`sftp_requests`. Records are fed as separate chunks (split reads)."""
    codec = SFTPCodec()
    codec.init()
    sftp_requests(codec)
    try:
        for record in records(data):
            codec.receive_data(record)
            while codec.next_response() is not None:
                pass
    except SSHError:
        pass


TARGETS: Final[dict[str, Target]] = {
    "transport_version": transport_version,
    "transport_kex": transport_kex,
    "transport_post_kex": transport_post_kex,
    "wire": wire,
    "private_key": private_key,
    "public_key": public_key,
    "known_hosts": known_hosts,
    "channels": channels,
    "agent": agent,
    "socks": socks,
    "auth": auth,
    "sftp": sftp,
}


def run_one(target: Target, data: bytes) -> None:
    """Run ``target`` on ``data``; raise :class:`Hang` when it took over :data:`MAX_SECONDS`."""
    start = time.perf_counter()
    target(data)
    elapsed = time.perf_counter() - start
    if elapsed > MAX_SECONDS:
        raise Hang(f"{target.__name__}: {elapsed:.2f} s for a {len(data)}-byte input (limit {MAX_SECONDS} s)")
