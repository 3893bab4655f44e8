"""known_hosts checking (trissh._auth.known_hosts), cross-checked with the real ``ssh-keygen``.

The format is OpenSSH's, described in sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT".
"""

from __future__ import annotations

import base64
import functools
import logging
import os
import stat
import subprocess
from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from trissh._algorithms.certificates import CertCheck, Certificate, parse_openssh_certificate_line
from trissh._algorithms.hostkeys import PublicKey, public_key_from_crypto
from trissh._auth.host_key_check import host_key_preferences, load_known_hosts, make_host_key_verifier
from trissh._auth.known_hosts import (
    CertificateStatus,
    HostKeyStatus,
    KnownHosts,
    Marker,
    default_known_hosts_paths,
)
from trissh._errors import HostKeyNotVerifiable
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
    # off port 22, the bare name is tried when [host]:port knows nothing (OpenSSH "checking without port
    # identifier"): an equal key there is trusted, a different one is not "changed" but unknown
    ([line("example.com", ED_A)], "example.com", 2222, ED_A, TRUSTED),
    ([line("example.com", ED_B)], "example.com", 2222, ED_A, UNKNOWN),
    ([line("*.com", ED_A)], "example.com", 2222, ED_A, TRUSTED),
    ([line("[example.com]:2222", EC_A), line("example.com", ED_A)], "example.com", 2222, ED_A, TRUSTED),
    (
        [line("example.com", ED_A, "@revoked"), line("[example.com]:2222", ED_A)],
        "example.com",
        2222,
        ED_A,
        REVOKED,
    ),
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
    # the negation sees the host under every name it is looked up by ("h" and "[h]:22")
    ([line("*,!example.com", ED_A)], "example.com", 22, ED_A, UNKNOWN),
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


def test_add_is_one_append_only_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The new line goes in with a single write() on an O_APPEND descriptor: the existing bytes (and the
    file itself: same inode) are untouched, and a reader never sees half a line."""
    path = tmp_path / "known_hosts"
    original = (line("a.test", ED_B) + "\n# a comment, kept as is\n").encode()
    path.write_bytes(original)
    inode = path.stat().st_ino
    writes: list[bytes] = []
    real_write, real_open = os.write, os.open
    flags_seen: list[int] = []

    def counting_write(fd: int, data: bytes) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    def recording_open(file: object, flags: int, *args: object) -> int:
        flags_seen.append(flags)
        return real_open(file, flags, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "write", counting_write)
    monkeypatch.setattr(os, "open", recording_open)
    entry = KnownHosts().add(path, "b.test", 2222, ED_A, hashed=True)
    monkeypatch.undo()
    assert len(writes) == 1 and writes[0].count(b"\n") == 1 and writes[0].startswith(b"|1|")
    assert flags_seen and all(flags & os.O_APPEND and not flags & os.O_TRUNC for flags in flags_seen)
    assert path.read_bytes() == original + writes[0]
    assert path.stat().st_ino == inode
    assert entry.lineno == 3 and entry.where == f"{path}:3"
    assert KnownHosts.load(path).check("b.test", 2222, ED_A) is TRUSTED


def test_add_in_memory_only() -> None:
    known_hosts = KnownHosts()
    known_hosts.add(None, "example.com", 22, ED_A)
    assert known_hosts.check("example.com", 22, ED_A) is TRUSTED


def test_load_required(tmp_path: Path) -> None:
    """Files a user names must exist (``required=True``); the default files may be missing."""
    real = tmp_path / "known_hosts"
    real.write_text(line("example.com", ED_A) + "\n")
    missing = tmp_path / "missing_known_hosts"
    with pytest.raises(FileNotFoundError, match="missing_known_hosts") as info:
        KnownHosts.load([real, missing], required=True)
    assert info.value.filename == str(missing)
    known_hosts = KnownHosts.load([real], required=True)
    assert known_hosts.check("example.com", 22, ED_A) is TRUSTED
    assert KnownHosts.load([missing, real]).paths == [missing, real]  # kept, in order, even if missing


# --- host certificates against @cert-authority lines --------------------------------------------------


NOW = 1_700_000_000


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """ssh-keygen-made CAs and host certificates for example.com."""
    d = tmp_path_factory.mktemp("kh_certs")

    def keygen(*args: str | Path) -> None:
        subprocess.run(["ssh-keygen", "-q", *map(str, args)], check=True, capture_output=True, timeout=60)

    for name in ("ca", "other_ca", "host"):
        keygen("-t", "ed25519", "-N", "", "-f", d / name)

    def cert(name: str, *options: str) -> Certificate:
        pub = d / f"{name}.pub"
        pub.write_text((d / "host.pub").read_text())
        keygen("-s", d / "ca", "-I", name, *options, pub)
        return parse_openssh_certificate_line((d / f"{name}-cert.pub").read_text())

    return {
        "ca": (d / "ca.pub").read_text().strip(),
        "other_ca": (d / "other_ca.pub").read_text().strip(),
        "host": (d / "host.pub").read_text().strip(),
        "good": cert("good", "-h", "-n", "example.com,*.example.org"),
        "expired": cert("expired", "-h", "-n", "example.com", "-V", "20200101:20200102"),
        "user": cert("user", "-n", "example.com"),
        "no_principals": cert("noprincipals", "-h"),
    }


def ca_line(hosts: str, key_line: str, marker: str = "@cert-authority") -> str:
    return f"{marker} {hosts} {key_line}"


CERT_CASES = [
    # (lines, host, port, certificate, expected status, failed check, deciding line)
    ([ca_line("example.com", "{ca}")], "example.com", 22, "good", CertificateStatus.TRUSTED, None, 1),
    ([ca_line("*", "{ca}")], "example.com", 22, "good", CertificateStatus.TRUSTED, None, 1),
    (
        [ca_line("[example.com]:2222", "{ca}")],
        "example.com",
        2222,
        "good",
        CertificateStatus.TRUSTED,
        None,
        1,
    ),
    ([ca_line("example.com", "{ca}")], "example.com", 2222, "good", CertificateStatus.TRUSTED, None, 1),
    ([ca_line("*.example.org", "{ca}")], "www.example.org", 2222, "good", CertificateStatus.TRUSTED, None, 1),
    ([ca_line("[example.com]:2222", "{ca}")], "example.com", 22, "good", CertificateStatus.NO_CA, None, None),
    ([ca_line("other.com", "{ca}")], "example.com", 22, "good", CertificateStatus.NO_CA, None, None),
    ([ca_line("*,!example.com", "{ca}")], "example.com", 22, "good", CertificateStatus.NO_CA, None, None),
    ([ca_line("*", "{other_ca}")], "example.com", 22, "good", CertificateStatus.NO_CA, None, None),
    (
        [line("example.com", ED_A), ca_line("*", "{other_ca}")],
        "example.com",
        22,
        "good",
        CertificateStatus.NO_CA,
        None,
        None,
    ),
    # A plain host line holding the CA key is not a CA line.
    (["example.com {ca}"], "example.com", 22, "good", CertificateStatus.NO_CA, None, None),
    # trusted CA, failing certificate: the check and the CA line
    (
        ["# c", ca_line("*", "{ca}")],
        "www.example.com",
        22,
        "good",
        CertificateStatus.INVALID,
        CertCheck.PRINCIPAL,
        2,
    ),
    ([ca_line("*", "{ca}")], "example.com", 22, "expired", CertificateStatus.INVALID, CertCheck.EXPIRED, 1),
    ([ca_line("*", "{ca}")], "example.com", 22, "user", CertificateStatus.INVALID, CertCheck.TYPE, 1),
    (
        [ca_line("*", "{ca}")],
        "example.com",
        22,
        "no_principals",
        CertificateStatus.INVALID,
        CertCheck.PRINCIPAL,
        1,
    ),
    # revocation of the CA or of the certified key, under any matching pattern, wins
    (
        [ca_line("*", "{ca}"), ca_line("*", "{ca}", "@revoked")],
        "example.com",
        22,
        "good",
        CertificateStatus.REVOKED,
        None,
        2,
    ),
    (
        [ca_line("*", "{ca}"), ca_line("example.com", "{host}", "@revoked")],
        "example.com",
        2222,
        "good",
        CertificateStatus.REVOKED,
        None,
        2,
    ),
    (
        [ca_line("*", "{ca}"), ca_line("other.com", "{ca}", "@revoked")],
        "example.com",
        22,
        "good",
        CertificateStatus.TRUSTED,
        None,
        1,
    ),
]


@pytest.mark.parametrize("hashed", [False, True])
@pytest.mark.parametrize("lines, host, port, cert_name, status, check, lineno", CERT_CASES)
def test_check_certificate(
    tmp_path: Path,
    certs: dict[str, object],
    hashed: bool,
    lines: list[str],
    host: str,
    port: int,
    cert_name: str,
    status: CertificateStatus,
    check: CertCheck | None,
    lineno: int | None,
) -> None:
    """sshd(8) SSH_KNOWN_HOSTS @cert-authority / @revoked, and sshconnect.c check_host_key; also after
    ``ssh-keygen -H`` hashes what it hashes."""
    text = "\n".join(entry.format(**certs) for entry in lines) + "\n"
    path = tmp_path / "known_hosts"
    path.write_text(text)
    if hashed:
        subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True, timeout=30)
    certificate = certs[cert_name]
    assert isinstance(certificate, Certificate)
    verdict = KnownHosts.load(path, required=True).check_certificate(host, port, certificate, now=NOW)
    assert verdict.status is status
    assert (verdict.problem.check if verdict.problem else None) is check
    assert (verdict.entry.lineno if verdict.entry else None) == lineno
    if verdict.entry:
        assert verdict.entry.source == str(path)


def test_hashed_cert_authority_line(certs: dict[str, object]) -> None:
    """A @cert-authority line may carry a hashed host name too (OpenSSH matches it like any other)."""
    plain = KnownHosts()
    entry = plain.add(None, "example.com", 22, ED_A, hashed=True)  # only to make a |1| name
    text = f"@cert-authority {entry.hosts} {certs['ca']}\n"
    good = certs["good"]
    assert isinstance(good, Certificate)
    known_hosts = KnownHosts.from_text(text)
    assert known_hosts.check_certificate("example.com", 22, good, now=NOW).status is CertificateStatus.TRUSTED
    assert known_hosts.check_certificate("example.net", 22, good, now=NOW).status is CertificateStatus.NO_CA
    assert known_hosts.has_cert_authority("example.com", 22)
    assert not known_hosts.has_cert_authority("example.net", 22)


# --- the verifier and the algorithm order (trissh._auth.host_key_check) --------------------------------


PLAIN = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]
CERTS = [
    "ssh-ed25519-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "rsa-sha2-512-cert-v01@openssh.com",
    "rsa-sha2-256-cert-v01@openssh.com",
]


@pytest.mark.parametrize(
    "lines, explicit, expected",
    [
        ([], False, PLAIN),
        (
            [line("example.com", RSA_A)],
            False,
            ["rsa-sha2-512", "rsa-sha2-256", "ssh-ed25519", "ecdsa-sha2-nistp256"],
        ),
        ([line("example.com", EC_A), line("example.com", RSA_A)], False, [*PLAIN[1:], PLAIN[0]]),
        ([line("other.com", RSA_A)], False, PLAIN),
        ([ca_line("*", ED_C.openssh_line())], False, [*CERTS, *PLAIN]),
        (
            [ca_line("*.com", ED_C.openssh_line()), line("example.com", RSA_A)],
            False,
            [*CERTS, "rsa-sha2-512", "rsa-sha2-256", "ssh-ed25519", "ecdsa-sha2-nistp256"],
        ),
        ([ca_line("other.com", ED_C.openssh_line())], False, PLAIN),
        # an explicit list is offered verbatim, as OpenSSH does for an explicit HostKeyAlgorithms
        ([line("example.com", RSA_A), ca_line("*", ED_C.openssh_line())], True, PLAIN),
    ],
)
def test_host_key_preferences(lines: list[str], explicit: bool, expected: list[str]) -> None:
    """OpenSSH sshconnect2.c order_hostkeyalgs: certificates first if a CA line matches, then known types."""
    known_hosts = KnownHosts.from_text("\n".join(lines))
    assert host_key_preferences(list(PLAIN), known_hosts, "example.com", 22, explicit) == expected
    assert host_key_preferences(list(PLAIN), None, "example.com", 22, explicit) == PLAIN


def test_load_known_hosts_rules(tmp_path: Path) -> None:
    """Explicit files must exist, except under accept-new (which creates the first on its first key)."""
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError, match="missing"):
        load_known_hosts(missing, "strict")
    with pytest.raises(FileNotFoundError, match="missing"):
        load_known_hosts([str(missing)], lambda h, p, k: trio.sleep(0))  # type: ignore[arg-type, return-value]
    accepting = load_known_hosts(missing, "accept-new")
    assert accepting is not None and accepting.paths == [missing] and len(accepting) == 0
    assert load_known_hosts(None, "strict") is None
    known_hosts = KnownHosts()
    assert load_known_hosts(known_hosts, "strict") is known_hosts
    with pytest.raises(ValueError, match="empty list"):
        load_known_hosts([], "strict")
    with pytest.raises(TypeError):
        load_known_hosts(42, "strict")
    with pytest.raises(ValueError, match="host_key_policy"):
        load_known_hosts(None, "yes")  # type: ignore[arg-type]


async def test_verifier_certificate_checks_use_the_given_clock(certs: dict[str, object]) -> None:
    good = certs["expired"]  # valid on 2020-01-01 only
    assert isinstance(good, Certificate)
    known_hosts = KnownHosts.from_text(ca_line("*", str(certs["ca"])), source="/kh")
    for now, ok in [(1577836800, True), (1577836799, False), (1577923200, False)]:
        clock = functools.partial(float, now)
        verify = make_host_key_verifier(known_hosts, "strict", None, "example.com", 22, clock=clock)
        with trio.fail_after(5):
            if ok:
                assert await verify(good.key, good) is True
            else:
                with pytest.raises(
                    HostKeyNotVerifiable, match=r"failed the (not yet valid|expired) check.*/kh:1"
                ):
                    await verify(good.key, good)


async def test_verifier_plain_key_messages(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"# first\n{line('[example.com]:2222', ED_B)}\n{line('*', ED_C, '@revoked')}\n")
    known_hosts = KnownHosts.load(path)
    verify = make_host_key_verifier(known_hosts, "strict", None, "example.com", 2222)
    with trio.fail_after(5):
        with pytest.raises(HostKeyNotVerifiable, match=f"HAS CHANGED.*{path}:2"):
            await verify(ED_A)
        with pytest.raises(HostKeyNotVerifiable, match=f"revoked.*{path}:3"):
            await verify(ED_C)
        assert await verify(ED_B) is True
        with pytest.raises(HostKeyNotVerifiable, match="not known"):
            await verify(EC_A)


async def test_verifier_accept_new_and_callable(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    known_hosts = KnownHosts.load([path, tmp_path / "system"])
    verify = make_host_key_verifier(known_hosts, "accept-new", None, "example.com", 22)
    with trio.fail_after(5):
        assert await verify(ED_A) is True
        assert await verify(ED_A) is True  # now known: nothing more written
        with pytest.raises(HostKeyNotVerifiable, match="HAS CHANGED"):
            await verify(ED_B)  # accept-new never accepts a changed key
    text = path.read_text()
    assert text.count("\n") == 1 and text.startswith("|1|")
    assert not (tmp_path / "system").exists()

    asked: list[tuple[str, int, PublicKey]] = []

    async def policy(host: str, port: int, key: PublicKey) -> bool:
        asked.append((host, port, key))
        return False

    verify = make_host_key_verifier(KnownHosts(), policy, None, "example.com", 2200)
    with trio.fail_after(5):
        assert await verify(ED_A) is False
    assert asked == [("example.com", 2200, ED_A)]


async def test_verifier_accept_new_without_a_file_is_in_memory() -> None:
    known_hosts = KnownHosts.from_text("")
    verify = make_host_key_verifier(known_hosts, "accept-new", None, "example.com", 22)
    with trio.fail_after(5):
        assert await verify(ED_A) is True
    assert known_hosts.check("example.com", 22, ED_A) is TRUSTED
