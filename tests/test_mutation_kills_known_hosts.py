"""known_hosts properties the mutation check (mutmut) found untested.

trissh._auth.host_patterns: wildcard matching agrees with a reference (OpenSSH match_pattern: ``*`` any
run, ``?`` one character, the rest literal) for patterns with several wildcards after a prefix, trailing
stars included; a negated pattern is never a positive one. trissh._auth.known_hosts: the warning (or
debug) line that names why a line was skipped, with over-long fields cut to 40 characters; hashed host
names and keys with stray base64 characters or a malformed ``|1|salt|hash`` are refused; comments are kept
whole; files are read as UTF-8 whatever the locale, invalid bytes replaced; the bare-name fallback for
every port but 22; what :meth:`KnownHosts.add` returns (comment, source, line number, file order), its
line number for files larger than one read block, with short reads or a file truncated under it, and the
error for a short write.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import locale
import logging
import os
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from trissh._algorithms.hostkeys import PublicKey, decode_public_key, public_key_from_crypto
from trissh._auth.host_patterns import PatternMatcher, wildcard_match
from trissh._auth.known_hosts import HostKeyStatus, KnownHosts
from trissh._errors import KeyImportError
from trissh._wire import mpint, string

ED_A = public_key_from_crypto(ed25519.Ed25519PrivateKey.generate().public_key())
ED_B = public_key_from_crypto(ed25519.Ed25519PrivateKey.generate().public_key())
EC_A = public_key_from_crypto(ec.generate_private_key(ec.SECP256R1()).public_key())
SOURCE = "/some/known_hosts"


def line(hosts: str, key: PublicKey, marker: str = "") -> str:
    return f"{marker} {hosts} {key.openssh_line()}".strip()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hashed_name(name: str, salt: bytes = b"s" * 20) -> str:
    return f"|1|{b64(salt)}|{b64(hmac.new(salt, name.encode(), hashlib.sha1).digest())}"


def with_junk(text: str) -> str:
    """Base64 text with a stray non-base64 character in the middle (a lenient decoder would drop it)."""
    return text[:8] + "*" + text[8:]


# --- host_patterns ------------------------------------------------------------------------------------


def reference_match(pattern: str, name: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, re.DOTALL) is not None


# Fixed cases first: several of the mutants they kill loop forever on other inputs, which the property
# test below would then find (and time out on) instead of failing.
WILDCARD_CASES = [
    ("*a*a", "aa", True),  # a star, a literal, another star: the walk steps past each star
    ("abc*d", "abcd", True),
    ("aa*ab", "aab", False),  # backtracking resumes one further on, not from the start of the name
    ("ab*ba", "aba", False),
    ("ab**", "ab", True),  # trailing stars match the empty rest
    ("a*", "a", True),
    ("a***", "a", True),
    ("a*?", "a", False),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), WILDCARD_CASES)
def test_wildcard_match_with_several_wildcards_after_a_prefix(
    pattern: str, name: str, expected: bool
) -> None:
    assert reference_match(pattern, name) is expected
    assert wildcard_match(pattern, name) is expected


@settings(max_examples=300, deadline=None)
@given(st.text("ab*?", max_size=8), st.text("ab", max_size=8))
def test_wildcard_match_agrees_with_a_reference_matcher(pattern: str, name: str) -> None:
    assert wildcard_match(pattern, name) is reference_match(pattern, name)


def test_a_negated_pattern_is_never_a_positive_one() -> None:
    """``!x`` only vetoes: it matches no host, not even one literally named ``!x``."""
    assert not PatternMatcher(["!x.test"]).matches(["!x.test"])
    assert PatternMatcher(["*.test", "!x.test"]).matches(["y.test"])
    assert not PatternMatcher(["*.test", "!x.test"]).matches(["x.test"])


# --- why a line is skipped, as the user sees it -------------------------------------------------------

DSS_BLOB = string("ssh-dss") + mpint(23) + mpint(11) + mpint(4) + mpint(8)
ED_B64 = ED_A.openssh_line().split()[1]
TRUNCATED = "AAAAC3NzaC1lZDI1NTE5AAAAIA=="


def _import_error(blob_b64: str) -> str:
    try:
        decode_public_key(base64.b64decode(blob_b64))
    except KeyImportError as exc:
        return str(exc)
    raise AssertionError("the blob decoded")


KEY = ED_A.openssh_line()
SALT = b"\x01" * 20
DIGEST = hmac.new(SALT, b"example.com", hashlib.sha1).digest()
SKIPPED = [
    (f"@bogus example.com {KEY}", logging.WARNING, "unknown marker '@bogus'"),
    (f"@{'m' * 60} example.com {KEY}", logging.WARNING, f"unknown marker '@{'m' * 39}'"),
    ("example.com ssh-ed25519", logging.WARNING, "expected host patterns, key type and base64 key"),
    (f", {KEY}", logging.WARNING, "empty host pattern list"),
    ("example.com 1024 35 1234567", logging.DEBUG, "SSH-1 keys are not supported"),
    ("example.com ssh-ed25519 !!notbase64!!", logging.WARNING, "invalid base64 in 'ssh-ed25519' key"),
    (f"example.com ssh-ed25519 {with_junk(ED_B64)}", logging.WARNING, "invalid base64 in 'ssh-ed25519' key"),
    (f"example.com {'k' * 60} !!", logging.WARNING, f"invalid base64 in '{'k' * 40}' key"),
    (f"example.com ssh-dss {b64(DSS_BLOB)}", logging.DEBUG, "unsupported key type ssh-dss"),
    ("example.com nonsense-type AAAA", logging.WARNING, "unknown key type 'nonsense-type'"),
    (f"example.com {'t' * 60} AAAA", logging.WARNING, f"unknown key type '{'t' * 40}'"),
    (f"example.com ssh-ed25519 {TRUNCATED}", logging.WARNING, _import_error(TRUNCATED)),
    (f"example.com ssh-rsa {ED_B64}", logging.WARNING, "line says 'ssh-rsa' but the key is 'ssh-ed25519'"),
    (f"|2|abc {KEY}", logging.WARNING, "malformed hashed host name (expected |1|salt|hash)"),
    (
        f"|2|{b64(SALT)}|{b64(DIGEST)} {KEY}",
        logging.WARNING,
        "malformed hashed host name (expected |1|salt|hash)",
    ),
    (
        f"|1|{b64(SALT)}|{b64(DIGEST)}|x {KEY}",
        logging.WARNING,
        "malformed hashed host name (expected |1|salt|hash)",
    ),
    (f"|1|bad|hash {KEY}", logging.WARNING, "invalid base64 in hashed host name"),
    (f"|1|{with_junk(b64(SALT))}|{b64(DIGEST)} {KEY}", logging.WARNING, "invalid base64 in hashed host name"),
    (f"|1|{b64(SALT)}|{with_junk(b64(DIGEST))} {KEY}", logging.WARNING, "invalid base64 in hashed host name"),
    (f"|1|AAAA|AAAA {KEY}", logging.WARNING, "hashed host name has a salt or hash of the wrong size"),
    (
        f"|1|{b64(SALT)}|{b64(DIGEST[:16])} {KEY}",
        logging.WARNING,
        "hashed host name has a salt or hash of the wrong size",
    ),
]


@pytest.mark.parametrize(("bad", "level", "reason"), SKIPPED)
def test_a_skipped_line_is_logged_with_its_place_and_reason(
    caplog: pytest.LogCaptureFixture, bad: str, level: int, reason: str
) -> None:
    """Every skipped line is logged once, at its level, as ``file:line: skipping ...: reason``; it adds no
    entry (a hashed name with stray characters, a ``|2|`` format or a wrong-size hash is not accepted)."""
    text = "\n".join(["# header", bad, line("other.test", ED_B)])
    with caplog.at_level(logging.DEBUG, logger="trissh.known_hosts"):
        known_hosts = KnownHosts.from_text(text, source=SOURCE)
    records = [r for r in caplog.records if r.name == "trissh.known_hosts"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (level, f"{SOURCE}:2: skipping known_hosts line: {reason}")
    ]
    assert len(known_hosts) == 1
    assert known_hosts.lookup("example.com") == []


def test_the_default_source_is_named_string_in_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="trissh.known_hosts"):
        KnownHosts.from_text("example.com ssh-ed25519")
    assert [r.getMessage() for r in caplog.records] == [
        "<string>:1: skipping known_hosts line: expected host patterns, key type and base64 key"
    ]


def test_the_comment_is_the_whole_rest_of_the_line() -> None:
    text = "\n".join([line("a.test", ED_A) + "  my  laptop key", line("b.test", ED_A)])
    known_hosts = KnownHosts.from_text(text)
    [with_comment] = known_hosts.lookup("a.test")
    [without] = known_hosts.lookup("b.test")
    assert with_comment.comment == "my  laptop key"
    assert with_comment.key == ED_A
    assert without.comment == ""


# --- files --------------------------------------------------------------------------------------------


def test_a_file_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_bytes((line("a.test", ED_A) + " caf\u00e9\n").encode())
    old = locale.setlocale(locale.LC_CTYPE)
    try:
        locale.setlocale(locale.LC_CTYPE, "C")
        [entry] = KnownHosts.load(path).lookup("a.test")
    finally:
        locale.setlocale(locale.LC_CTYPE, old)
    assert entry.comment == "caf\u00e9"


def test_invalid_utf8_in_a_file_is_replaced_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_bytes(line("a.test", ED_A).encode() + b" caf\xe9\n" + line("b.test", ED_B).encode() + b"\n")
    known_hosts = KnownHosts.load(path)
    assert [e.comment for e in known_hosts.lookup("a.test")] == ["caf\ufffd"]
    assert known_hosts.check("b.test", 22, ED_B) is HostKeyStatus.TRUSTED


def test_a_missing_required_file_is_enoent_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing_known_hosts"
    with pytest.raises(FileNotFoundError) as info:
        KnownHosts.load(missing, required=True)
    assert info.value.errno == errno.ENOENT
    assert info.value.strerror == f"known_hosts file {str(missing)!r} does not exist"
    assert info.value.filename == str(missing)


# --- ports --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("port", [21, 23, 2222])
def test_every_port_but_22_falls_back_to_the_bare_name(port: int) -> None:
    known_hosts = KnownHosts.from_text(line("example.com", ED_A))
    assert known_hosts.check("example.com", port, ED_A) is HostKeyStatus.TRUSTED
    assert known_hosts.known_key_types("example.com", port) == {"ssh-ed25519"}


def test_known_key_types_off_port_22_include_the_bracketed_entries() -> None:
    known_hosts = KnownHosts.from_text("\n".join([line("[h.test]:2222", EC_A), line("h.test", ED_A)]))
    assert known_hosts.known_key_types("h.test", 2222) == {"ecdsa-sha2-nistp256", "ssh-ed25519"}
    assert known_hosts.known_key_types("h.test", 22) == {"ssh-ed25519"}


# --- add ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["a?b", "a#b", "[a]", "a]b", "a\tb", "a|b", "a@b"])
def test_adding_a_host_with_a_pattern_or_separator_character_is_refused(tmp_path: Path, host: str) -> None:
    with pytest.raises(ValueError, match="not a plain host name"):
        KnownHosts().add(tmp_path / "kh", host, 22, ED_A)
    assert not (tmp_path / "kh").exists()


def test_adding_a_plain_name_with_any_letters_is_accepted(tmp_path: Path) -> None:
    entry = KnownHosts().add(tmp_path / "kh", "XenX.Example-1.test", 22, ED_A)
    assert entry.hosts == "xenx.example-1.test"


def test_an_in_memory_entry_is_from_memory_line_0_after_the_loaded_ones() -> None:
    known_hosts = KnownHosts.from_text(line("example.com", ED_B))
    entry = known_hosts.add(None, "example.com", 22, ED_A)
    assert (entry.comment, entry.source, entry.lineno, entry.where) == ("", "<memory>", 0, "<memory>:0")
    assert known_hosts.lookup("example.com") == [known_hosts.lookup("example.com")[0], entry]
    assert [e.key for e in known_hosts.lookup("example.com")] == [ED_B, ED_A]
    assert len(known_hosts) == 2


def test_an_added_entry_has_no_comment_and_comes_after_the_loaded_ones(tmp_path: Path) -> None:
    known_hosts = KnownHosts.from_text(line("example.com", ED_B))
    entry = known_hosts.add(tmp_path / "kh", "example.com", 22, ED_A)
    assert (entry.comment, entry.source, entry.lineno) == ("", str(tmp_path / "kh"), 1)
    assert [e.key for e in known_hosts.lookup("example.com")] == [ED_B, ED_A]
    assert known_hosts.lookup("example.com")[1] is entry


def test_the_line_number_counts_a_file_larger_than_one_read_block(tmp_path: Path) -> None:
    """Files over 64 KiB are counted block by block, up to the old end only (not our new line)."""
    path = tmp_path / "known_hosts"
    lines = [line(f"host{i}.example.com", ED_B) for i in range(1000)]
    text = "\n" + "\n".join(lines)  # a blank first line, and no final newline
    path.write_text(text)
    assert len(text) > 1 << 16
    entry = KnownHosts().add(path, "new.test", 22, ED_A)
    assert entry.lineno == 1002
    assert path.read_text().splitlines()[entry.lineno - 1] == line("new.test", ED_A)


def test_the_line_number_is_right_when_reads_come_back_short(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pread may return fewer bytes than asked: counting goes on from where the last read ended, reading
    each offset once."""
    path = tmp_path / "known_hosts"
    path.write_text("\n# one\n\n" + line("a.test", ED_B) + "\n")
    real_write, real_pread = os.write, os.pread
    written: list[int] = []
    offsets: list[int] = []

    def write(fd: int, data: bytes) -> int:
        written.append(len(data))
        return real_write(fd, data)

    def short_pread(fd: int, length: int, offset: int) -> bytes:
        if written:  # the line count, after our write
            assert offset not in offsets, "re-read an offset"
            offsets.append(offset)
            length = min(length, 3)
        return real_pread(fd, length, offset)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "pread", short_pread)
    entry = KnownHosts().add(path, "new.test", 22, ED_A)
    monkeypatch.undo()
    assert entry.lineno == 5
    assert path.read_text().splitlines()[4] == line("new.test", ED_A)


def test_add_survives_the_file_being_truncated_under_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process truncating the file mid-add leaves a best-effort line number, not a crash."""
    path = tmp_path / "known_hosts"
    path.write_text(line("a.test", ED_B) + "\n" + line("b.test", ED_B) + "\n")
    real_write = os.write

    def write_then_truncate(fd: int, data: bytes) -> int:
        n = real_write(fd, data)
        os.truncate(path, 0)
        return n

    monkeypatch.setattr(os, "write", write_then_truncate)
    entry = KnownHosts().add(path, "new.test", 22, ED_A)
    monkeypatch.undo()
    assert entry.lineno == 1  # nothing left to count
    assert entry.source == str(path)


def test_a_short_write_is_an_eio_naming_the_file_and_sizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "known_hosts"
    real_write = os.write
    sizes: list[int] = []

    def short_write(fd: int, data: bytes) -> int:
        sizes.append(len(data))
        return real_write(fd, data[:5])

    monkeypatch.setattr(os, "write", short_write)
    known_hosts = KnownHosts()
    with pytest.raises(OSError) as info:
        known_hosts.add(path, "new.test", 22, ED_A)
    monkeypatch.undo()
    assert info.value.errno == errno.EIO
    assert info.value.strerror == f"short write to {str(path)!r} (5 of {sizes[0]} bytes)"
    assert len(known_hosts) == 0
