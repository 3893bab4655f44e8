"""OpenSSH certificates (trissh._algorithms.certificates), checked against ``ssh-keygen -s``.

The format is PROTOCOL.certkeys: every certificate below is made by the real
``ssh-keygen``, or, for shapes ssh-keygen will not make (critical options on a
host certificate, duplicate options, a certificate as CA...), by :func:`build`.
"""

from __future__ import annotations

import base64
import random
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sshserver_script import ScriptedServer

from trissh._algorithms.certificates import (
    CERT_HOST_KEY_ALGORITHMS,
    CERT_KEY_TYPES,
    CERT_SIGNATURE_ALGORITHMS,
    FOREVER,
    MAX_CERTIFICATE_SIZE,
    MAX_PRINCIPALS,
    CertCheck,
    Certificate,
    CertType,
    cert_algorithm,
    check_certificate,
    is_certificate_type,
    parse_certificate,
    parse_openssh_certificate_line,
)
from trissh._algorithms.hostkeys import (
    DEFAULT_HOST_KEY_ALGORITHMS,
    PublicKey,
    parse_openssh_public_key,
    public_key_from_crypto,
)
from trissh._errors import HostKeyNotVerifiable, KeyImportError
from trissh._options import algorithm_preferences
from trissh._transport.events import NEED_DATA, Event, HostKeyReceived, KexComplete
from trissh._transport.host_key import decode_host_key
from trissh._transport.negotiate import AlgorithmPreferences
from trissh._transport.state import TransportState
from trissh._wire import Reader, string, uint32, uint64

SUBJECT_KEYS = {
    "ed25519": ("-t", "ed25519"),
    "ecdsa256": ("-t", "ecdsa", "-b", "256"),
    "ecdsa384": ("-t", "ecdsa", "-b", "384"),
    "ecdsa521": ("-t", "ecdsa", "-b", "521"),
    "rsa": ("-t", "rsa", "-b", "2048"),
}
# CA name -> (key generation args, ssh-keygen -t signature algorithm or None, the algorithm expected)
CAS = {
    "ed25519": (("-t", "ed25519"), None, "ssh-ed25519"),
    "ecdsa": (("-t", "ecdsa", "-b", "384"), None, "ecdsa-sha2-nistp384"),
    "rsa-sha2-512": (("-t", "rsa", "-b", "2048"), "rsa-sha2-512", "rsa-sha2-512"),
    "rsa-sha2-256": (("-t", "rsa", "-b", "2048"), "rsa-sha2-256", "rsa-sha2-256"),
}


def keygen(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh-keygen", "-q", *map(str, args)], check=True, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("certs")
    for name, args in SUBJECT_KEYS.items():
        keygen(*args, "-N", "", "-f", d / f"key_{name}")
    for name, (args, _sig, _expected) in CAS.items():
        if name != "rsa-sha2-256":  # shares the RSA CA key
            keygen(*args, "-N", "", "-f", d / f"ca_{name}")
    return d


def ca_path(keys: Path, ca: str) -> Path:
    return keys / ("ca_rsa-sha2-512" if ca.startswith("rsa") else f"ca_{ca}")


def sign(keys: Path, subject: str, ca: str, *options: str, name: str = "") -> Path:
    """``ssh-keygen -s`` a copy of ``key_<subject>.pub``; returns the -cert.pub path."""
    copy = keys / f"{name or subject}-{ca}-{abs(hash(options))}.pub"
    copy.write_text((keys / f"key_{subject}.pub").read_text())
    sig = CAS[ca][1]
    keygen("-s", ca_path(keys, ca), *(("-t", sig) if sig else ()), *options, copy)
    return copy.with_name(copy.name.removesuffix(".pub") + "-cert.pub")


# --- parsing what ssh-keygen makes -----------------------------------------------------------------


@pytest.mark.parametrize("ca", list(CAS))
@pytest.mark.parametrize("subject", list(SUBJECT_KEYS))
def test_parse_every_type(keys: Path, subject: str, ca: str) -> None:
    """Every supported subject key type, signed by every supported CA type (PROTOCOL.certkeys)."""
    path = sign(keys, subject, ca, "-I", "my id", "-n", "alice,bob", "-z", "42", "-V", "20200101:20300101")
    cert = parse_openssh_certificate_line(path.read_text())
    subject_key = parse_openssh_public_key((keys / f"key_{subject}.pub").read_text())
    assert cert.key == subject_key
    assert CERT_KEY_TYPES[cert.key_type] == subject_key.key_type
    assert cert.signature_key == parse_openssh_public_key((ca_path(keys, ca).with_suffix(".pub")).read_text())
    assert cert.signature_algorithm == CAS[ca][2]
    assert cert.cert_type is CertType.USER
    assert (cert.serial, cert.key_id, cert.principals) == (42, "my id", ("alice", "bob"))
    assert (cert.valid_after, cert.valid_before) == (
        1577836800,
        1893456000,
    )  # ssh-keygen uses local time: UTC here
    assert set(cert.extensions) == {
        "permit-X11-forwarding",
        "permit-agent-forwarding",
        "permit-port-forwarding",
        "permit-pty",
        "permit-user-rc",
    }
    assert dict(cert.critical_options) == {}
    # ssh-keygen -l shows a certificate by its subject key's fingerprint
    assert cert.fingerprint in keygen("-l", "-f", path).stdout
    assert cert.openssh_line() == " ".join(path.read_text().split()[:2])
    assert parse_certificate(cert.blob) == cert


def test_host_certificate_fields(keys: Path) -> None:
    path = sign(keys, "ed25519", "ed25519", "-h", "-I", "web", "-n", "*.example.com,10.0.0.1")
    cert = parse_openssh_certificate_line(path.read_text().encode())
    assert cert.cert_type is CertType.HOST
    assert cert.principals == ("*.example.com", "10.0.0.1")
    assert (cert.valid_after, cert.valid_before) == (0, FOREVER)
    assert not cert.extensions and not cert.critical_options  # host certificates carry none


def test_options_are_raw_inner_strings(keys: Path) -> None:
    path = sign(
        keys, "ed25519", "ed25519", "-I", "x", "-O", "force-command=ls -l", "-O", "source-address=10.0.0.0/8"
    )
    cert = parse_openssh_certificate_line(path.read_text())
    assert dict(cert.critical_options) == {
        "force-command": string("ls -l"),
        "source-address": string("10.0.0.0/8"),
    }
    assert cert.extensions["permit-pty"] == b""


def test_ssh_rsa_sha1_ca_signature_is_refused(keys: Path) -> None:
    """OpenSSH (8.2+) refuses certificates a CA signed with ssh-rsa (SHA-1); so does trissh."""
    copy = keys / "sha1.pub"
    copy.write_text((keys / "key_ed25519.pub").read_text())
    keygen("-s", ca_path(keys, "rsa-sha2-512"), "-t", "ssh-rsa", "-I", "old", copy)
    with pytest.raises(KeyImportError, match=r"ssh-rsa \(RSA/SHA-1\)"):
        parse_openssh_certificate_line((keys / "sha1-cert.pub").read_text())


# --- damaged certificates --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_blob(keys: Path) -> bytes:
    path = sign(keys, "ecdsa256", "ed25519", "-h", "-I", "damaged", "-n", "a,b")
    return parse_openssh_certificate_line(path.read_text()).blob


def test_every_flipped_bit_is_refused(good_blob: bytes) -> None:
    """The CA signature covers every byte before it, and the signature itself is checked: a flipped
    bit anywhere is caught (as a bad signature, or as a malformed field)."""
    failures = []
    for offset in range(len(good_blob)):
        damaged = bytearray(good_blob)
        damaged[offset] ^= 0x01
        try:
            parse_certificate(bytes(damaged))
        except KeyImportError:
            continue
        failures.append(offset)
    assert not failures, f"tampered certificates accepted at offsets {failures}"


def test_tampered_field_says_bad_ca_signature(good_blob: bytes) -> None:
    # Change one letter of a principal ("a" -> "c"): still well formed, the signature no longer matches.
    index = good_blob.index(string("a") + string("b"))
    damaged = good_blob[: index + 4] + b"c" + good_blob[index + 5 :]
    with pytest.raises(KeyImportError, match="CA signature does not verify"):
        parse_certificate(damaged)


def test_every_truncation_is_refused(good_blob: bytes) -> None:
    for length in range(len(good_blob)):
        with pytest.raises(KeyImportError):
            parse_certificate(good_blob[:length])


def test_trailing_bytes_are_refused(good_blob: bytes) -> None:
    with pytest.raises(KeyImportError, match="1 unexpected bytes at end"):
        parse_certificate(good_blob + b"\x00")


def test_oversized_blob_is_refused(good_blob: bytes) -> None:
    with pytest.raises(KeyImportError, match="too large"):
        parse_certificate(good_blob + b"\x00" * MAX_CERTIFICATE_SIZE)
    line = (
        "ssh-ed25519-cert-v01@openssh.com " + base64.b64encode(b"\x00" * (MAX_CERTIFICATE_SIZE + 10)).decode()
    )
    with pytest.raises(KeyImportError, match="too large"):
        parse_openssh_certificate_line(line)


# --- shapes ssh-keygen does not make: built here ---------------------------------------------------

CA_PRIVATE = ed25519.Ed25519PrivateKey.generate()
CA_KEY = public_key_from_crypto(CA_PRIVATE.public_key())
SUBJECT = public_key_from_crypto(ed25519.Ed25519PrivateKey.generate().public_key())


def packed(*names: str) -> bytes:
    return b"".join(string(n) for n in names)


def options(*pairs: tuple[str, bytes]) -> bytes:
    return b"".join(string(name) + string(value) for name, value in pairs)


def build(
    *,
    key_type: str = "ssh-ed25519-cert-v01@openssh.com",
    subject: PublicKey = SUBJECT,
    cert_type: int = 2,
    principals: bytes = packed("host.example.com"),
    valid_after: int = 0,
    valid_before: int = FOREVER,
    critical: bytes = b"",
    extensions: bytes = b"",
    ca_blob: bytes | None = None,
    sig_alg: str = "ssh-ed25519",
) -> bytes:
    """A certificate per PROTOCOL.certkeys, signed by CA_PRIVATE."""
    fields = Reader(subject.blob)
    fields.string()  # drop the plain type name; the rest are the key's fields
    data = (
        string(key_type)
        + string(b"n" * 32)
        + fields.rest()
        + uint64(7)
        + uint32(cert_type)
        + string("built")
        + string(principals)
        + uint64(valid_after)
        + uint64(valid_before)
        + string(critical)
        + string(extensions)
        + string(b"")
        + string(CA_KEY.blob if ca_blob is None else ca_blob)
    )
    return data + string(string(sig_alg) + string(CA_PRIVATE.sign(data)))


def test_built_certificate_parses() -> None:
    cert = parse_certificate(build())
    assert (cert.key, cert.signature_key, cert.serial, cert.key_id) == (SUBJECT, CA_KEY, 7, "built")
    assert cert.nonce == b"n" * 32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"key_type": "sk-ssh-ed25519-cert-v01@openssh.com"}, "security keys are not supported"),
        ({"key_type": "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com"}, "security keys are not supported"),
        ({"key_type": "ssh-dss-cert-v01@openssh.com"}, "unsupported certificate type"),
        ({"key_type": "ssh-ed25519"}, "unsupported certificate type"),
        ({"cert_type": 3}, "unknown type 3"),
        ({"critical": options(("a", b""), ("a", b""))}, "names 'a' twice"),
        ({"extensions": options(("x", b""), ("x", b"1"))}, "names 'x' twice"),
        ({"principals": packed(*(f"p{i}" for i in range(MAX_PRINCIPALS + 1)))}, "more than 256 principals"),
        ({"principals": b"\x00\x00\x00\x05ab"}, "truncated"),
        ({"critical": b"\x00\x00\x00\x01a"}, "truncated"),
        ({"ca_blob": build()}, "CA key is itself a certificate"),
        ({"ca_blob": b"garbage"}, "CA key"),
        ({"sig_alg": "ecdsa-sha2-nistp256"}, "does not match CA key"),
        ({"sig_alg": "ssh-ed448"}, "unsupported algorithm"),
        ({"subject": SUBJECT, "key_type": "ecdsa-sha2-nistp256-cert-v01@openssh.com"}, "malformed|curve"),
    ],
)
def test_bad_built_certificates(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(KeyImportError, match=message):
        parse_certificate(build(**kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "line, message",
    [
        ("", "not an OpenSSH certificate line"),
        (SUBJECT.openssh_line(), "is not a certificate type"),
        ("ssh-ed25519-cert-v01@openssh.com !!!", "invalid base64"),
        (
            "ecdsa-sha2-nistp256-cert-v01@openssh.com " + base64.b64encode(build()).decode(),
            "line says 'ecdsa-sha2-nistp256-cert-v01@openssh.com'",
        ),
    ],
)
def test_bad_certificate_lines(line: str, message: str) -> None:
    with pytest.raises(KeyImportError, match=message):
        parse_openssh_certificate_line(line)


# --- acceptance checks -----------------------------------------------------------------------------


def host_cert(**kwargs: object) -> Certificate:
    return parse_certificate(build(**kwargs))  # type: ignore[arg-type]


NOW = 1_700_000_000

CHECK_CASES: list[tuple[dict[str, object], str, CertType, CertCheck | None]] = [
    ({}, "host.example.com", CertType.HOST, None),
    ({}, "other.example.com", CertType.HOST, CertCheck.PRINCIPAL),
    ({}, "HOST.example.com", CertType.HOST, CertCheck.PRINCIPAL),  # principals are case-sensitive
    ({}, "host.example.com", CertType.USER, CertCheck.TYPE),
    ({"cert_type": 1, "principals": packed("alice")}, "alice", CertType.HOST, CertCheck.TYPE),
    ({"cert_type": 1, "principals": packed("alice")}, "alice", CertType.USER, None),
    ({"principals": b""}, "host.example.com", CertType.HOST, CertCheck.PRINCIPAL),  # empty list: refused
    ({"principals": packed("*.example.com")}, "a.example.com", CertType.HOST, None),  # host: patterns
    ({"principals": packed("*.example.com")}, "example.com", CertType.HOST, CertCheck.PRINCIPAL),
    ({"principals": packed("web?")}, "web1", CertType.HOST, None),
    (
        {"cert_type": 1, "principals": packed("a*")},
        "alice",
        CertType.USER,
        CertCheck.PRINCIPAL,
    ),  # user: literal
    ({"valid_after": NOW}, "host.example.com", CertType.HOST, None),  # valid_after is inclusive
    ({"valid_after": NOW + 1}, "host.example.com", CertType.HOST, CertCheck.NOT_YET_VALID),
    ({"valid_before": NOW + 1}, "host.example.com", CertType.HOST, None),
    (
        {"valid_before": NOW},
        "host.example.com",
        CertType.HOST,
        CertCheck.EXPIRED,
    ),  # valid_before is exclusive
    (
        {"critical": options(("force-command", string("ls")))},
        "host.example.com",
        CertType.HOST,
        CertCheck.CRITICAL_OPTIONS,
    ),
    ({"extensions": options(("whatever@example.com", b""))}, "host.example.com", CertType.HOST, None),
]


@pytest.mark.parametrize("kwargs, principal, cert_type, expected", CHECK_CASES)
def test_check_certificate(
    kwargs: dict[str, object], principal: str, cert_type: CertType, expected: CertCheck | None
) -> None:
    """sshkey.c sshkey_cert_check_authority / sshkey_cert_check_host, one rule per row."""
    problem = check_certificate(host_cert(**kwargs), cert_type=cert_type, principal=principal, now=NOW)
    assert (problem.check if problem else None) is expected
    if problem:
        assert "built" in problem.message  # names the certificate


def test_known_critical_options_are_accepted() -> None:
    cert = host_cert(
        cert_type=1, principals=packed("alice"), critical=options(("force-command", string("ls")))
    )
    assert check_certificate(cert, cert_type=CertType.USER, principal="alice", now=NOW) is not None
    known = frozenset({"force-command"})
    assert (
        check_certificate(
            cert, cert_type=CertType.USER, principal="alice", now=NOW, known_critical_options=known
        )
        is None
    )


def test_expired_message_names_the_time() -> None:
    problem = check_certificate(
        host_cert(valid_before=0), cert_type=CertType.HOST, principal="host.example.com", now=NOW
    )
    assert problem is not None and "1970-01-01 00:00:00 UTC" in problem.message


def test_many_star_principal_is_fast() -> None:
    """The principal pattern is attacker-chosen: matching must not backtrack exponentially."""
    cert = host_cert(principals=packed("*a" * 200 + "b"))
    problem = check_certificate(cert, cert_type=CertType.HOST, principal="a" * 250, now=NOW)
    assert problem is not None and problem.check is CertCheck.PRINCIPAL


# --- the name tables -------------------------------------------------------------------------------


def test_name_tables() -> None:
    assert cert_algorithm("rsa-sha2-512") == "rsa-sha2-512-cert-v01@openssh.com"
    assert all(
        CERT_SIGNATURE_ALGORITHMS[cert_algorithm(name)] == name for name in DEFAULT_HOST_KEY_ALGORITHMS
    )
    assert [cert_algorithm(name) for name in DEFAULT_HOST_KEY_ALGORITHMS] == list(CERT_HOST_KEY_ALGORITHMS)
    assert "ssh-rsa-cert-v01@openssh.com" not in CERT_HOST_KEY_ALGORITHMS
    assert is_certificate_type("ssh-rsa-cert-v01@openssh.com") and not is_certificate_type("ssh-rsa")


def test_certificate_is_frozen() -> None:
    cert = host_cert()
    with pytest.raises(AttributeError):
        cert.serial = 1  # type: ignore[misc]
    assert replace(cert, serial=8).serial == 8


# --- the transport's host key decode (trissh._transport.state) ------------------------------------


def test_transport_decodes_a_certificate_for_a_certificate_algorithm() -> None:
    """PROTOCOL.certkeys: the blob is a certificate; H is signed by its key with the plain algorithm."""
    blob = build()
    key, cert, algorithm = decode_host_key(blob, "ssh-ed25519-cert-v01@openssh.com")
    assert cert is not None and cert.blob == blob and key == SUBJECT and algorithm == "ssh-ed25519"
    key, cert, algorithm = decode_host_key(SUBJECT.blob, "ssh-ed25519")
    assert (key, cert, algorithm) == (SUBJECT, None, "ssh-ed25519")


@pytest.mark.parametrize(
    "blob, algorithm, message",
    [
        (SUBJECT.blob, "ssh-ed25519-cert-v01@openssh.com", "cannot be used.*unsupported certificate type"),
        (build(), "ssh-ed25519", "cannot be used"),
        (
            build(),
            "ecdsa-sha2-nistp256-cert-v01@openssh.com",
            "sent a ssh-ed25519-cert-v01@openssh.com certificate",
        ),
        (build()[:-1], "ssh-ed25519-cert-v01@openssh.com", "cannot be used.*truncated"),
    ],
)
def test_transport_refuses_a_host_key_blob_of_the_wrong_kind(
    blob: bytes, algorithm: str, message: str
) -> None:
    with pytest.raises(HostKeyNotVerifiable, match=message):
        decode_host_key(blob, algorithm)


def test_certificate_algorithms_are_negotiable_by_name_only() -> None:
    """Certificate algorithms can be named (even legacy ssh-rsa-cert-v01); the default list has none,
    so hosts known by plain key see exactly the offer they saw before (see host_key_check)."""
    prefs = algorithm_preferences(
        host_key_algs=["ssh-rsa-cert-v01@openssh.com", "rsa-sha2-512-cert-v01@openssh.com"]
    )
    assert list(prefs.host_key) == ["ssh-rsa-cert-v01@openssh.com", "rsa-sha2-512-cert-v01@openssh.com"]
    assert not any(is_certificate_type(name) for name in algorithm_preferences().host_key)
    with pytest.raises(ValueError, match="unsupported host key"):
        algorithm_preferences(host_key_algs=["ssh-dss-cert-v01@openssh.com"])


def test_certificates_compare_and_hash_by_blob() -> None:
    first, again, other = (
        parse_certificate(build()),
        parse_certificate(build()),
        parse_certificate(build(cert_type=1)),
    )
    assert first == again and hash(first) == hash(again) and len({first, again, other}) == 2
    with pytest.raises(TypeError):
        first.critical_options["x"] = b""  # type: ignore[index]


# --- the transport state with a scripted server presenting a certificate ------------------------------


class CertLink:
    """A TransportState and a ScriptedServer (tests/sshserver_script.py) whose K_S is a certificate."""

    def __init__(self) -> None:
        algorithm = "ssh-ed25519-cert-v01@openssh.com"
        self.server = ScriptedServer(seed=11, host_key_algorithms=[algorithm])
        self.host_key = public_key_from_crypto(self.server.host_key.public_key())
        prefs = AlgorithmPreferences(
            kex=["curve25519-sha256"],
            host_key=[algorithm],
            ciphers=["chacha20-poly1305@openssh.com"],
            macs=["hmac-sha2-256"],
        )
        self.state = TransportState(prefs, random=random.Random(12).randbytes)

    def events(self, data: bytes) -> list[Event]:
        self.state.receive_data(data)
        events = []
        while (event := self.state.next_event()) is not NEED_DATA:
            assert isinstance(event, Event)
            events.append(event)
            if isinstance(event, HostKeyReceived):
                self.state.accept_host_key()
        return events

    def exchange(self, certificate: bytes, *, first: bool) -> list[Event]:
        if first:
            self.state.start()
            self.server.feed(bytes(self.state.data_to_send()))
            assert self.events(self.server.version() + self.server.kexinit()) == []
        else:
            assert self.state.start_rekey()
            self.server.feed(bytes(self.state.data_to_send()))
            assert self.events(self.server.kexinit()) == []
        init = next(p.payload for p in self.server.feed(bytes(self.state.data_to_send())) if p.type == 30)
        return self.events(self.server.ecdh_reply(init, k_s=certificate) + self.server.newkeys())


def test_state_hands_over_the_certificate_and_rekeys_with_it() -> None:
    """The exchange hash covers the certificate blob as K_S and is signed by the certified key
    (PROTOCOL.certkeys); a rekey must present the very same certificate (OpenSSH kex.c)."""
    link = CertLink()
    certificate = build(subject=link.host_key)
    events = link.exchange(certificate, first=True)
    received = events[0]
    assert isinstance(received, HostKeyReceived)
    assert received.key == link.host_key and received.certificate == parse_certificate(certificate)
    assert link.state.server_host_certificate == parse_certificate(certificate)
    assert link.state.server_host_key == link.host_key
    assert [type(e) for e in link.exchange(certificate, first=False)] == [KexComplete]
    renewed = build(subject=link.host_key, valid_after=1)  # same key, another certificate
    with pytest.raises(HostKeyNotVerifiable, match="different host key during a rekey"):
        link.exchange(renewed, first=False)


def test_state_refuses_a_certificate_for_another_key() -> None:
    """The signature over H is checked with the certified key: a certificate for another key fails."""
    link = CertLink()
    with pytest.raises(HostKeyNotVerifiable, match="does not verify"):
        link.exchange(build(), first=True)  # certifies SUBJECT, but the server signs with its own key
