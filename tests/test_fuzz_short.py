"""The short fuzz run of the suite: every target of ``fuzz/targets.py`` under hypothesis.

The long, coverage-guided run is ``python -m fuzz`` (atheris; see ``fuzz/README.md``). Here each
target gets a few hundred inputs: its seed corpus as explicit examples, then seeds mutated by
hypothesis (bits flipped, bytes replaced, cut short, spliced) and plain random bytes. The property is
the fuzz contract: nothing but trissh's own ``SSHError`` subclasses comes out, and no input takes
over a second. The harness itself is checked too: that the seeds really reach the layers they are
meant for (a corpus that stopped verifying would leave the long run fuzzing the first packet
only), and that a foreign exception or a slow input is reported, not swallowed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fuzz import targets as fuzz_targets
from fuzz.targets import TARGETS, Hang, records, run_one
from trissh import _messages as msg
from trissh._wire import Reader

CORPUS = Path(__file__).resolve().parent.parent / "fuzz" / "corpus"
EXAMPLES_PER_TARGET = 150
TIMEOUT = 120


# Known findings not yet fixed (each then a strict xfail test in tests/test_fuzz_findings.py): an input
# that hits one is not a new failure here. (target, exception type, trissh function it comes out of.)
KNOWN_FINDINGS: set[tuple[str, str, str]] = set()


def seeds(target: str) -> list[bytes]:
    return [path.read_bytes() for path in sorted((CORPUS / target).iterdir())]


def known_finding(target: str, exc: Exception) -> bool:
    tb = exc.__traceback__
    functions = []
    while tb is not None:
        if f"{os.sep}trissh{os.sep}" in tb.tb_frame.f_code.co_filename:
            functions.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    return bool(functions) and (target, type(exc).__name__, functions[-1]) in KNOWN_FINDINGS


@st.composite
def mutated(draw: st.DrawFn, corpus: list[bytes]) -> bytes:
    """A seed with a few mutations, the kind libFuzzer makes: flip, set, cut, insert, splice."""
    data = bytearray(draw(st.sampled_from(corpus)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "cut", "insert", "splice"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFF]))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        else:
            other = draw(st.sampled_from(corpus))
            data[at:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


def short_run(name: str) -> Callable[[], None]:
    """The hypothesis test for one target, with every seed as an @example."""
    corpus = seeds(name)
    target = TARGETS[name]

    @settings(
        max_examples=EXAMPLES_PER_TARGET,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.one_of(mutated(seeds(name)), st.binary(max_size=300)))
    def run(data: bytes) -> None:
        try:
            run_one(target, data)
        except Exception as exc:
            if not known_finding(name, exc):
                raise

    for seed in corpus:
        run = example(seed)(run)
    return run


@pytest.mark.parametrize("name", list(TARGETS))
async def test_target_answers_only_with_ssh_errors(name: str) -> None:
    """Seeds, mutated seeds and random bytes: no exception but an SSHError, none slower than 1 s.

    A worker thread, because several targets run their own trio.run per input."""
    with trio.fail_after(TIMEOUT):
        await trio.to_thread.run_sync(short_run(name), abandon_on_cancel=True)


async def test_every_target_has_seeds() -> None:
    assert {path.name for path in CORPUS.iterdir()} == set(TARGETS)
    assert all(seeds(name) for name in TARGETS)


def _replay(target: str, seed: str) -> None:
    TARGETS[target]((CORPUS / target / seed).read_bytes())


async def test_the_kex_seed_completes_a_key_exchange() -> None:
    """The recorded KEX_ECDH_REPLY still verifies for the seeded client, so mutations start from a
    whole exchange (if trissh's use of its randomness changes, rebuild with fuzz/make_corpus.py)."""
    with trio.fail_after(TIMEOUT):
        _replay("transport_kex", "full-kex")
        state = fuzz_targets.last_state
        assert state is not None and state.kex_count == 1 and state.session_id is not None


async def test_post_kex_payloads_get_past_the_mac() -> None:
    """Payloads sealed with the negotiated keys reach the transport's handlers and the layers above;
    the genuine rekey op completes a second exchange."""
    with trio.fail_after(TIMEOUT):
        _replay("transport_post_kex", "service-traffic")
        state = fuzz_targets.last_state
        assert state is not None
        assert state.extensions == {"server-sig-algs": b"ssh-ed25519,rsa-sha2-256"}  # EXT_INFO handled
        assert fuzz_targets.delivered == [msg.SERVICE_ACCEPT]
        _replay("transport_post_kex", "server-rekey")
        state = fuzz_targets.last_state
        assert state is not None and state.kex_count == 2


async def test_the_auth_seed_reaches_success(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keyboard-interactive seed is answered and ends in USERAUTH_SUCCESS, not in a refusal."""
    outcomes: list[Any] = []
    real = fuzz_targets.authenticate

    async def recording(*args: Any, **kwargs: Any) -> Any:
        result = await real(*args, **kwargs)
        outcomes.append(result)
        return result

    monkeypatch.setattr(fuzz_targets, "authenticate", recording)
    with trio.fail_after(TIMEOUT):
        await trio.to_thread.run_sync(_replay, "auth", "kbdint-then-success")
    assert [result.method for result in outcomes] == ["keyboard-interactive"]


async def test_a_foreign_exception_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness lets anything but SSHError out, so the engine reports it with the input."""

    def broken(self: Reader) -> int:
        raise IndexError("a decoder bug")

    monkeypatch.setattr(Reader, "byte", broken)
    with trio.fail_after(TIMEOUT), pytest.raises(IndexError, match="a decoder bug"):
        run_one(TARGETS["wire"], b"\x01\x00payload")


async def test_a_slow_input_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    """An input answered after more than a second raises Hang (the clock is faked: 1.5 s pass)."""
    clock = iter([100.0, 101.5])
    monkeypatch.setattr(fuzz_targets.time, "perf_counter", lambda: next(clock))
    with trio.fail_after(TIMEOUT), pytest.raises(Hang, match=r"1\.50 s"):
        run_one(TARGETS["wire"], b"")


async def test_records_split_and_keep_the_tail() -> None:
    """<u16 length><bytes> records; a length past the end takes the rest, a lone byte is a record."""
    assert list(records(b"\x00\x02ab\x00\x01cXYZ")) == [b"ab", b"c", b"Z"]
    assert list(records(b"\x00\x02ab\x00\x05cd")) == [b"ab", b"cd"]
    assert list(records(b"\x00\x02ab\x07")) == [b"ab", b"\x07"]
    assert list(records(b"")) == []
