"""known_hosts checking (trissh._auth.known_hosts), cross-checked with the real ``ssh-keygen``.

The format is OpenSSH's, described in sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT".
"""

from __future__ import annotations

import base64
import logging
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from trissh._algorithms.hostkeys import PublicKey, public_key_from_crypto
from trissh._auth.known_hosts import (
    HostKeyStatus,
    KnownHosts,
    Marker,
    default_known_hosts_paths,
)
from trissh._wire import mpint, string

TRUSTED = HostKeyStatus.TRUSTED
CHANGED = HostKeyStatus.CHANGED
UNKNOWN = HostKeyStatus.UNKNOWN
REVOKED = HostKeyStatus.REVOKED


def ed_key() -> PublicKey:
    return public_key_from_crypto(ed25519.Ed25519PrivateKey.generate().public_key())


ED_A = ed_key()
ED_B = ed_key()
ED_C = ed_key()
EC_A = public_key_from_crypto(ec.generate_private_key(ec.SECP256R1()).public_key())
EC384 = public_key_from_crypto(ec.generate_private_key(ec.SECP384R1()).public_key())
RSA_A = public_key_from_crypto(rsa.generate_private_key(65537, 1024).public_key())


def line(hosts: str, key: PublicKey, marker: str = "") -> str:
    return f"{marker} {hosts} {key.openssh_line()}".strip()


# --- matching rules, as a table: (file lines, host, port, key, expected) ----------------------

MATCH_CASES = [
    # plain names, case-insensitive, comma-separated lists
    ([line("example.com", ED_A)], "example.com", 22, ED_A, TRUSTED),
    ([line("example.com", ED_A)], "EXAMPLE.com", 22, ED_A, TRUSTED),
    ([line("Example.COM", ED_A)], "example.com", 22, ED_A, TRUSTED),
    ([line("a.test,example.com,10.0.0.1", ED_A)], "example.com", 22, ED_A, TRUSTED),
    ([line("a.test,example.com,10.0.0.1", ED_A)], "10.0.0.1", 22, ED_A, TRUSTED),
    ([line("example.com", ED_A)], "other.com", 22, ED_A, UNKNOWN),
    ([line("example.com", ED_A)], "example.co", 22, ED_A, UNKNOWN),
    # a different key of the same type: changed; of another type only: unknown
    ([line("example.com", ED_A)], "example.com", 22, ED_B, CHANGED),
    ([line("example.com", EC_A)], "example.com", 22, ED_A, UNKNOWN),
    ([line("example.com", RSA_A), line("example.com", EC_A)], "example.com", 22, ED_A, UNKNOWN),
    ([line("example.com", EC_A)], "example.com", 22, EC384, UNKNOWN),  # curves are distinct types
    # several keys of one type: any equal one is trusted
    ([line("example.com", ED_B), line("example.com", ED_A)], "example.com", 22, ED_A, TRUSTED),
    ([line("example.com", ED_B), line("example.com", ED_C)], "example.com", 22, ED_A, CHANGED),
    # ports: [host]:port for non-22 ports; the bare name is port 22 only
    ([line("[example.com]:2222", ED_A)], "example.com", 2222, ED_A, TRUSTED),
    ([line("[example.com]:2222", ED_A)], "example.com", 22, ED_A, UNKNOWN),
    ([line("[example.com]:2222", ED_A)], "example.com", 2223, ED_A, UNKNOWN),
    ([line("example.com", ED_A)], "example.com", 2222, ED_A, UNKNOWN),
    ([line("[example.com]:22", ED_A)], "example.com", 22, ED_A, TRUSTED),
    ([line("[example.com]:2222", ED_B), line("example.com", ED_A)], "example.com", 2222, ED_A, CHANGED),
    ([line("[::1]:2222", ED_A)], "::1", 2222, ED_A, TRUSTED),
    # wildcards
    ([line("*.example.com", ED_A)], "a.example.com", 22, ED_A, TRUSTED),
    ([line("*.example.com", ED_A)], "a.b.example.com", 22, ED_A, TRUSTED),
    ([line("*.example.com", ED_A)], "example.com", 22, ED_A, UNKNOWN),
    ([line("host?", ED_A)], "host1", 22, ED_A, TRUSTED),
    ([line("host?", ED_A)], "host12", 22, ED_A, UNKNOWN),
    ([line("192.168.1.*", ED_A)], "192.168.1.77", 22, ED_A, TRUSTED),
    ([line("[*.example.com]:2222", ED_A)], "a.example.com", 2222, ED_A, TRUSTED),
    ([line("[*.example.com]:2222", ED_A)], "a.example.com", 22, ED_A, UNKNOWN),
    ([line("*", ED_A)], "anything", 22, ED_B, CHANGED),
    # "[" is literal, not a character class as in fnmatch
    ([line("[ab]", ED_A)], "a", 22, ED_A, UNKNOWN),
    # negation vetoes the whole line
    ([line("*.example.com,!bad.example.com", ED_A)], "good.example.com", 22, ED_A, TRUSTED),
    ([line("*.example.com,!bad.example.com", ED_A)], "bad.example.com", 22, ED_A, UNKNOWN),
    ([line("*.example.com,!bad.example.com", ED_A)], "bad.example.com", 22, ED_B, UNKNOWN),
    ([line("!example.com", ED_A)], "example.com", 22, ED_A, UNKNOWN),
    ([line("!example.com", ED_A)], "other.com", 22, ED_A, UNKNOWN),
    ([line("example.com,!*.test", ED_A)], "example.com", 22, ED_A, TRUSTED),
    # markers
    ([line("example.com", ED_A, "@revoked")], "example.com", 22, ED_A, REVOKED),
    ([line("example.com", ED_A), line("example.com", ED_A, "@revoked")], "example.com", 22, ED_A, REVOKED),
    ([line("*", ED_A, "@revoked"), line("example.com", ED_A)], "example.com", 22, ED_A, REVOKED),
    ([line("other.com", ED_A, "@revoked"), line("example.com", ED_A)], "example.com", 22, ED_A, TRUSTED),
    ([line("example.com", ED_B, "@revoked")], "example.com", 22, ED_A, UNKNOWN),
    ([line("example.com", ED_A, "@cert-authority")], "example.com", 22, ED_A, UNKNOWN),
    ([line("*", ED_B, "@cert-authority"), line("example.com", ED_A)], "example.com", 22, ED_A, TRUSTED),
    # comments, blank lines, trailing comments, tabs
    (["# a comment", "", "   ", line("example.com", ED_A) + " root@host"], "example.com", 22, ED_A, TRUSTED),
    ([line("example.com", ED_A).replace(" ", "\t")], "example.com", 22, ED_A, TRUSTED),
]


@pytest.mark.parametrize("lines, host, port, key, expected", MATCH_CASES)
def test_check(lines: list[str], host: str, port: int, key: PublicKey, expected: HostKeyStatus) -> None:
    known_hosts = KnownHosts.from_text("\n".join(lines) + "\n")
    assert known_hosts.check(host, port, key) is expected


@pytest.mark.parametrize("lines, host, port, key, expected", MATCH_CASES)
def test_check_hashed_by_ssh_keygen(
    tmp_path: Path, lines: list[str], host: str, port: int, key: PublicKey, expected: HostKeyStatus
) -> None:
    """After ``ssh-keygen -H`` hashes the plain names, every verdict is the same.

    ssh-keygen leaves wildcard and negated patterns and marker lines unhashed,
    so those cases also test a file that mixes both kinds of line.
    """
    path = tmp_path / "known_hosts"
    path.write_text("\n".join(lines) + "\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    hashable = [
        entry
        for entry in lines
        if entry.strip() and entry[0] not in "#@" and not any(c in entry.split()[0] for c in "*?!")
    ]
    assert ("|1|" in path.read_text()) is bool(hashable)
    assert KnownHosts.load([path]).check(host, port, key) is expected


def test_hashed_entry_format(tmp_path: Path) -> None:
    """``|1|base64(salt)|base64(HMAC-SHA1(salt, name))``, one host per hashed line."""
    path = tmp_path / "known_hosts"
    path.write_text(line("example.com,[example.com]:2200,10.1.2.3", ED_A) + "\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    assert path.read_text().count("|1|") == 3
    known_hosts = KnownHosts.load(path)
    assert len(known_hosts) == 3
    assert known_hosts.check("example.com", 22, ED_A) is TRUSTED
    assert known_hosts.check("example.com", 2200, ED_A) is TRUSTED
    assert known_hosts.check("10.1.2.3", 22, ED_B) is CHANGED
    assert known_hosts.check("10.1.2.4", 22, ED_A) is UNKNOWN
    entry = known_hosts.lookup("example.com", 2200)[0]
    assert entry.hosts.startswith("|1|")
    assert (entry.source, entry.lineno) == (str(path), 2)


def test_lookup_returns_entries_in_file_order() -> None:
    text = "\n".join(
        [
            line("*", ED_C, "@cert-authority"),
            line("example.com", ED_A),
            line("*.com", EC_A),
            line("example.com", ED_A, "@revoked"),
        ]
    )
    entries = KnownHosts.from_text(text, source="mine").lookup("example.com")
    assert [e.lineno for e in entries] == [1, 2, 3, 4]
    assert [e.marker for e in entries] == [Marker.CERT_AUTHORITY, Marker.NONE, Marker.NONE, Marker.REVOKED]
    assert {e.source for e in entries} == {"mine"}


# --- malformed lines --------------------------------------------------------------------------

MALFORMED = [
    "example.com",
    "example.com ssh-ed25519",
    "example.com ssh-ed25519 !!notbase64!!",
    "example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA==",  # truncated key
    f"example.com ssh-rsa {ED_A.openssh_line().split()[1]}",  # type word and blob differ
    "example.com nonsense-type AAAA",
    "@bogus example.com " + ED_A.openssh_line(),
    "@revoked",
    "|1|bad|hash " + ED_A.openssh_line(),
    "|1|AAAA|AAAA " + ED_A.openssh_line(),  # salt and hash of the wrong size
    "|2|abc " + ED_A.openssh_line(),
    ", " + ED_A.openssh_line(),
]


@pytest.mark.parametrize("bad", MALFORMED)
def test_malformed_lines_are_skipped_with_a_warning(caplog: pytest.LogCaptureFixture, bad: str) -> None:
    text = "\n".join(["# header", bad, line("example.com", ED_A)])
    with caplog.at_level(logging.DEBUG, logger="trissh.known_hosts"):
        known_hosts = KnownHosts.from_text(text, source="/some/known_hosts")
    assert known_hosts.check("example.com", 22, ED_A) is TRUSTED
    assert len(known_hosts) == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].name == "trissh.known_hosts"
    assert "/some/known_hosts:2:" in warnings[0].getMessage()


def test_unsupported_key_types_are_skipped_quietly(caplog: pytest.LogCaptureFixture) -> None:
    """ssh-dss and SSH-1 lines are valid known_hosts content, just unusable: no warning."""
    dss_blob = string("ssh-dss") + mpint(23) + mpint(11) + mpint(4) + mpint(8)
    dss_line = "ssh-dss " + base64.b64encode(dss_blob).decode()
    text = "\n".join([f"example.com {dss_line}", "example.com 1024 35 1234567", line("example.com", ED_A)])
    with caplog.at_level(logging.DEBUG, logger="trissh.known_hosts"):
        known_hosts = KnownHosts.from_text(text)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([r for r in caplog.records if r.levelno == logging.DEBUG]) == 2
    assert known_hosts.check("example.com", 22, ED_A) is TRUSTED


# --- files ------------------------------------------------------------------------------------


def test_load_skips_missing_files(tmp_path: Path) -> None:
    real = tmp_path / "known_hosts"
    real.write_text(line("example.com", ED_A) + "\n")
    known_hosts = KnownHosts.load([tmp_path / "missing", real, str(tmp_path / "missing2")])
    assert known_hosts.check("example.com", 22, ED_A) is TRUSTED
    assert len(KnownHosts.load([])) == 0
    assert len(KnownHosts.load(tmp_path / "missing")) == 0


def test_load_merges_files(tmp_path: Path) -> None:
    user, system = tmp_path / "user", tmp_path / "system"
    user.write_text(line("example.com", ED_A) + "\n")
    system.write_text(line("example.com", EC_A) + "\n" + line("other.com", ED_B) + "\n")
    known_hosts = KnownHosts.load([user, system])
    assert known_hosts.check("example.com", 22, EC_A) is TRUSTED
    assert known_hosts.check("other.com", 22, ED_B) is TRUSTED
    assert len(known_hosts) == 3


def test_unreadable_file_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        KnownHosts.load([tmp_path])  # a directory


@pytest.mark.parametrize("hashed", [False, True])
@pytest.mark.parametrize("port", [22, 2222])
def test_add_then_check(tmp_path: Path, hashed: bool, port: int) -> None:
    """add() writes a line that trissh, a fresh load, and OpenSSH's ``ssh-keygen -F`` all find."""
    path = tmp_path / "new" / ".ssh" / "known_hosts"
    known_hosts = KnownHosts()
    assert known_hosts.check("Example.com", port, ED_A) is UNKNOWN
    entry = known_hosts.add(path, "Example.com", port, ED_A, hashed=hashed)
    assert entry.lineno == 1
    assert known_hosts.check("example.com", port, ED_A) is TRUSTED
    assert KnownHosts.load([path]).check("example.com", port, ED_A) is TRUSTED
    assert KnownHosts.load([path]).check("example.com", port, ED_B) is CHANGED
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert text.startswith("|1|") is hashed
    assert text.endswith(ED_A.openssh_line() + "\n")
    name = "example.com" if port == 22 else f"[example.com]:{port}"
    found = subprocess.run(["ssh-keygen", "-F", name, "-f", str(path)], capture_output=True, text=True)
    assert found.returncode == 0
    assert ED_A.openssh_line() in found.stdout


def test_add_appends_after_missing_newline(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(line("a.test", ED_B))  # no final newline
    os.chmod(path, 0o644)
    entry = KnownHosts().add(path, "b.test", 22, ED_A)
    assert entry.lineno == 2
    assert path.read_text().splitlines() == [line("a.test", ED_B), line("b.test", ED_A)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # an existing file keeps its mode
    known_hosts = KnownHosts.load([path])
    assert known_hosts.check("a.test", 22, ED_B) is TRUSTED
    assert known_hosts.check("b.test", 22, ED_A) is TRUSTED


@pytest.mark.parametrize("host", ["", "a b", "a,b", "*.test", "!a", "@revoked", "|1|x"])
def test_add_refuses_patterns(tmp_path: Path, host: str) -> None:
    with pytest.raises(ValueError, match="not a plain host name"):
        KnownHosts().add(tmp_path / "kh", host, 22, ED_A)
    assert not (tmp_path / "kh").exists()


def test_default_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_known_hosts_paths() == [
        tmp_path / ".ssh" / "known_hosts",
        tmp_path / ".ssh" / "known_hosts2",
        Path("/etc/ssh/ssh_known_hosts"),
        Path("/etc/ssh/ssh_known_hosts2"),
    ]


def test_many_plain_entries_are_indexed() -> None:
    """Plain names are a dict lookup: 20,000 lines parse once, then checks are instant."""
    keys = [ed_key() for _ in range(5)]
    text = "\n".join(line(f"host{i}.example.com", keys[i % 5]) for i in range(20_000))
    known_hosts = KnownHosts.from_text(text)
    assert len(known_hosts) == 20_000
    for i in range(0, 20_000, 997):
        assert known_hosts.check(f"host{i}.example.com", 22, keys[i % 5]) is TRUSTED
        assert known_hosts.check(f"host{i}.example.com", 22, keys[(i + 1) % 5]) is CHANGED
