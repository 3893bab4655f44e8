"""Regression tests for what the fuzzer found (fuzz/, issue 12 item 1), one minimal input each.

Each failed until trissh was fixed (the commit that fixed it removed its xfail marker).
"""

from __future__ import annotations

import base64
import sys

import pytest
import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from test_agent_forwarding import RecordingTransport

from fuzz import targets as fuzz_targets
from fuzz.targets import FUZZ_MAX_KDF_ROUNDS
from trissh import KeyImportError, KnownHosts, PrivateKey, import_private_key
from trissh import _messages as msg
from trissh._auth import key_files
from trissh._channels.mux import ChannelMux
from trissh._channels.session import SessionChannel
from trissh._errors import ProtocolError
from trissh._wire import boolean, byte, mpint, string, uint32

TIMEOUT = 10


async def test_a_request_for_an_unconfirmed_channel_is_a_protocol_error() -> None:
    """RFC 4254 §5.1: until the server confirms the open, the channel has no remote id, so no
    channel message but CHANNEL_OPEN_CONFIRMATION/FAILURE may name it. Found by the channels target."""
    with trio.fail_after(TIMEOUT):
        transport = RecordingTransport()
        mux = ChannelMux(transport)  # type: ignore[arg-type]
        channel = mux.add(SessionChannel, "session")  # sent CHANNEL_OPEN, not confirmed
        request = (
            byte(msg.CHANNEL_REQUEST)
            + uint32(channel.local_id)
            + string("keepalive@openssh.com")
            + boolean(True)
        )
        with pytest.raises(ProtocolError):
            mux.handle_packet(3, request)
        assert transport.sent == []


# --- known_hosts (fuzz target known_hosts) -------------------------------------------------------

KEY_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


async def run_isolated(code: str) -> str:
    """Run ``code`` in a fresh interpreter and return its output; the process is killed if it
    is still running at the test's fail_after (a CPU-bound hang cannot be cancelled in-process)."""
    result = await trio.run_process([sys.executable, "-c", code], capture_stdout=True, capture_stderr=True)
    return result.stdout.decode().strip()


async def test_a_hashed_entry_with_a_non_ascii_salt_is_skipped() -> None:
    with trio.fail_after(TIMEOUT):
        hosts = KnownHosts.from_text(f"|1|\u00e9|AAAA {KEY_LINE}\nexample.com {KEY_LINE}\n")
        assert len(hosts) == 1


async def test_a_pattern_of_many_wildcards_is_matched_in_linear_time() -> None:
    code = f"""
from trissh import KnownHosts
from trissh._algorithms.hostkeys import parse_openssh_public_key
hosts = KnownHosts.from_text("{"*" * 40}x {KEY_LINE}")
print(hosts.check("example.com", 22, parse_openssh_public_key("{KEY_LINE}")).name)
"""
    with trio.fail_after(TIMEOUT):
        assert await run_isolated(code) == "UNKNOWN"


# --- private keys (fuzz target private_key) ------------------------------------------------------


def _encrypted_openssh_key() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    encryption = serialization.BestAvailableEncryption(b"fuzzing")
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)


def _openssh_armor(blob: bytes) -> bytes:
    body = base64.b64encode(blob)
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    return b"\n".join(
        [b"-----BEGIN OPENSSH PRIVATE KEY-----", *lines, b"-----END OPENSSH PRIVATE KEY-----", b""]
    )


async def test_an_empty_passphrase_for_an_encrypted_key_is_a_key_import_error() -> None:
    with trio.fail_after(TIMEOUT):
        data = _encrypted_openssh_key()
        with pytest.raises(KeyImportError):
            import_private_key(data, b"")


async def test_an_ecdsa_key_with_a_compressed_point_is_a_key_import_error() -> None:
    with trio.fail_after(TIMEOUT):
        key = ec.generate_private_key(ec.SECP256R1())
        numbers = serialization.Encoding.X962, serialization.PublicFormat
        uncompressed = key.public_key().public_bytes(numbers[0], numbers[1].UncompressedPoint)
        compressed = key.public_key().public_bytes(numbers[0], numbers[1].CompressedPoint)
        header = string("ecdsa-sha2-nistp256") + string("nistp256")
        # The public section is well-formed; only the copy in the private section is compressed.
        private = uint32(7) + uint32(7) + header + string(compressed)
        private += mpint(key.private_numbers().private_value) + string("comment")
        private += bytes(range(1, 1 + (-len(private)) % 8))
        blob = b"openssh-key-v1\x00" + string("none") + string("none") + string("") + uint32(1)
        blob += string(header + string(uncompressed)) + string(private)
        with pytest.raises(KeyImportError):
            import_private_key(_openssh_armor(blob))


def _with_kdf_rounds(data: bytes, rounds: int) -> bytes:
    """The OpenSSH key file ``data`` with its bcrypt round count replaced."""
    raw = base64.b64decode(b"".join(data.splitlines()[1:-1]))
    options = raw.index(b"\x00\x00\x00\x06bcrypt") + 10  # string(salt) + uint32(rounds)
    salt_size = int.from_bytes(raw[options + 4 : options + 8], "big")
    rounds_at = options + 8 + salt_size
    return _openssh_armor(raw[:rounds_at] + uint32(rounds) + raw[rounds_at + 4 :])


async def test_an_absurd_bcrypt_round_count_is_refused() -> None:
    tampered = _with_kdf_rounds(_encrypted_openssh_key(), 1 << 31)
    code = f"""
from trissh import KeyImportError, import_private_key
try:
    import_private_key({tampered!r}, "fuzzing")
except KeyImportError:
    print("KeyImportError")
"""
    with trio.fail_after(TIMEOUT):
        assert await run_isolated(code) == "KeyImportError"


@pytest.mark.parametrize(
    ("rounds", "outcome"),
    [(FUZZ_MAX_KDF_ROUNDS, "loaded"), (FUZZ_MAX_KDF_ROUNDS + 1, f"MAX_KDF_ROUNDS = {FUZZ_MAX_KDF_ROUNDS};")],
)
async def test_the_private_key_target_runs_no_kdf_above_its_own_bound(
    monkeypatch: pytest.MonkeyPatch, rounds: int, outcome: str
) -> None:
    """The long run's private_key timeout (115,193 inputs): a mutated round count under MAX_KDF_ROUNDS
    (16384, minutes of bcrypt) is a slow KDF, not a parser hang; the target refuses rounds above its own
    small bound before any KDF runs, so the fuzzer's time goes to parsing. trissh's own bound is back
    after each input."""
    outcomes: list[str] = []

    def recording_import(data: bytes, passphrase: str | bytes | None) -> PrivateKey:
        try:
            key = import_private_key(data, passphrase)
        except KeyImportError as exc:
            outcomes.append(str(exc))
            raise
        outcomes.append("loaded")
        return key

    monkeypatch.setattr(fuzz_targets, "import_private_key", recording_import)
    encryption = serialization.PrivateFormat.OpenSSH.encryption_builder().kdf_rounds(rounds).build(b"fuzzing")
    key = ed25519.Ed25519PrivateKey.generate()
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
    with trio.fail_after(TIMEOUT):
        fuzz_targets.private_key(b"\x01" + data)  # passphrase "fuzzing"
    assert len(outcomes) == 1
    assert outcome in outcomes[0]
    assert key_files.MAX_KDF_ROUNDS == 16384
