"""Host certificates against a real OpenSSH sshd (PROTOCOL.certkeys; sshd(8) SSH_KNOWN_HOSTS).

One sshd, the "zoo", holds one host key per type, each with its own certificate
made by ``ssh-keygen -s``, so that choosing the host key algorithm chooses the
certificate the server presents:

=========================================  =========================================
algorithm                                  certificate
=========================================  =========================================
ssh-ed25519-cert-v01@openssh.com           good: host, principal 127.0.0.1, ed25519 CA
ecdsa-sha2-nistp256-cert-v01@openssh.com   expired (valid in January 2020 only)
ecdsa-sha2-nistp384-cert-v01@openssh.com   wrong principal (other.example)
ecdsa-sha2-nistp521-cert-v01@openssh.com   a *user* certificate
rsa-sha2-512/256-cert-v01@openssh.com      good, RSA CA signing with rsa-sha2-512
=========================================  =========================================
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
from test_integration import connect as connect_to

import trissh
from trissh._algorithms.certificates import CertType
from trissh._algorithms.hostkeys import parse_openssh_public_key
from trissh.testing import SSHServer, start_sshd

ED_CERT = "ssh-ed25519-cert-v01@openssh.com"
EXPIRED_CERT = "ecdsa-sha2-nistp256-cert-v01@openssh.com"
WRONG_NAME_CERT = "ecdsa-sha2-nistp384-cert-v01@openssh.com"
USER_CERT = "ecdsa-sha2-nistp521-cert-v01@openssh.com"


def keygen(*args: str | Path) -> None:
    subprocess.run(["ssh-keygen", "-q", *map(str, args)], check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Zoo:
    server: SSHServer
    directory: Path
    ca_ed: str  # the CA public key lines
    ca_rsa: str
    other_ca: str
    host_ed25519: str  # the ed25519 host public key line

    @property
    def name(self) -> str:
        return f"[127.0.0.1]:{self.server.port}"

    def known_hosts(self, *lines: str) -> Path:
        path = self.directory / f"known_hosts_{abs(hash(lines))}"
        path.write_text("".join(line + "\n" for line in lines))
        return path


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zoo]:
    d = tmp_path_factory.mktemp("zoo")
    keygen("-t", "ed25519", "-N", "", "-f", d / "ca_ed")
    keygen("-t", "rsa", "-b", "2048", "-N", "", "-f", d / "ca_rsa")
    keygen("-t", "ed25519", "-N", "", "-f", d / "other_ca")
    hosts = {
        "ed25519": ("-t", "ed25519"),
        "ecdsa256": ("-t", "ecdsa", "-b", "256"),
        "ecdsa384": ("-t", "ecdsa", "-b", "384"),
        "ecdsa521": ("-t", "ecdsa", "-b", "521"),
        "rsa": ("-t", "rsa", "-b", "2048"),
    }
    for name, args in hosts.items():
        keygen(*args, "-N", "", "-f", d / f"hk_{name}")
    ca_ed = d / "ca_ed"
    keygen("-s", ca_ed, "-h", "-I", "good", "-n", "127.0.0.1,localhost", d / "hk_ed25519.pub")
    keygen(
        "-s",
        ca_ed,
        "-h",
        "-I",
        "expired",
        "-n",
        "127.0.0.1",
        "-V",
        "20200101:20200102",
        d / "hk_ecdsa256.pub",
    )
    keygen("-s", ca_ed, "-h", "-I", "wrong-name", "-n", "other.example", d / "hk_ecdsa384.pub")
    keygen("-s", ca_ed, "-I", "user-cert", "-n", "127.0.0.1", d / "hk_ecdsa521.pub")  # no -h: a user cert
    keygen("-s", d / "ca_rsa", "-t", "rsa-sha2-512", "-h", "-I", "rsa", "-n", "127.0.0.1", d / "hk_rsa.pub")
    config = [f"HostKey {d / f'hk_{name}'}" for name in hosts]
    config += [f"HostCertificate {d / f'hk_{name}-cert.pub'}" for name in hosts]
    with start_sshd(extra_config=config) as server:
        yield Zoo(
            server,
            d,
            ca_ed=(d / "ca_ed.pub").read_text().strip(),
            ca_rsa=(d / "ca_rsa.pub").read_text().strip(),
            other_ca=(d / "other_ca.pub").read_text().strip(),
            host_ed25519=(d / "hk_ed25519.pub").read_text().strip(),
        )


@asynccontextmanager
async def connect(zoo: Zoo, known_hosts: Any, **kwargs: Any) -> AsyncIterator[trissh.SSHConnection]:
    server = zoo.server
    async with trissh.connect(
        server.host,
        server.port,
        username=server.username,
        client_keys=[server.client_key],
        known_hosts=known_hosts,
        connect_timeout=10,
        agent_path=None,
        **kwargs,
    ) as conn:
        yield conn


async def refused(zoo: Zoo, known_hosts: Any, **kwargs: Any) -> str:
    with trio.fail_after(20), pytest.raises(trissh.HostKeyNotVerifiable) as info:
        async with connect(zoo, known_hosts, **kwargs):
            pass
    return str(info.value)


# --- trusted certificates ------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["[127.0.0.1]:{port}", "*", "127.0.0.1"])
async def test_trusted_host_certificate_connects(zoo: Zoo, pattern: str) -> None:
    """A CA line matching the host (by ``[host]:port``, by ``*``, or by bare name) makes its certificates
    trusted, and certificate algorithms are offered first (OpenSSH order_hostkeyalgs)."""
    known = zoo.known_hosts(f"@cert-authority {pattern.format(port=zoo.server.port)} {zoo.ca_ed}")
    with trio.fail_after(20):
        async with connect(zoo, known) as conn:
            assert conn.negotiated.host_key == ED_CERT
            cert = conn.host_certificate
            assert cert is not None
            assert cert.cert_type is CertType.HOST and cert.key_id == "good"
            assert cert.signature_key == parse_openssh_public_key(zoo.ca_ed)
            assert conn.host_key == cert.key == parse_openssh_public_key(zoo.host_ed25519)
            assert (await conn.run("echo ok")).stdout == b"ok\n"


async def test_rekey_with_host_certificate(zoo: Zoo) -> None:
    """A rekey presents the same certificate again; the state accepts it (OpenSSH kex.c initial_hostkey)."""
    known = zoo.known_hosts(f"@cert-authority * {zoo.ca_ed}")
    with trio.fail_after(20):
        async with connect(zoo, known) as conn:
            cert = conn.host_certificate
            await conn.rekey()
            assert conn.transport.state.kex_count == 2
            assert conn.host_certificate == cert
            assert (await conn.run("echo ok")).stdout == b"ok\n"


@pytest.mark.parametrize(
    "algorithm", ["rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com"]
)
async def test_rsa_host_certificate(zoo: Zoo, algorithm: str) -> None:
    """The RSA certificate algorithms sign the exchange hash with the plain rsa-sha2-* algorithm."""
    known = zoo.known_hosts(f"@cert-authority * {zoo.ca_rsa}")
    with trio.fail_after(20):
        async with connect(zoo, known, host_key_algs=[algorithm]) as conn:
            assert conn.negotiated.host_key == algorithm
            assert conn.host_certificate is not None
            assert conn.host_certificate.signature_algorithm == "rsa-sha2-512"
            assert conn.host_key.key_type == "ssh-rsa"


async def test_plain_key_still_preferred_without_a_ca_line(zoo: Zoo) -> None:
    """No CA line: no certificate algorithm is offered by default, the plain key is used as before."""
    known = zoo.known_hosts(f"{zoo.name} {zoo.host_ed25519}")
    with trio.fail_after(20):
        async with connect(zoo, known) as conn:
            assert conn.negotiated.host_key == "ssh-ed25519"
            assert conn.host_certificate is None


async def test_hashed_known_hosts_with_certificate(zoo: Zoo) -> None:
    """``ssh-keygen -H`` hashes the plain host line (not the @cert-authority line); both still work."""
    known = zoo.known_hosts(f"@cert-authority * {zoo.ca_ed}", f"{zoo.name} {zoo.host_ed25519}")
    keygen("-H", "-f", known)
    text = known.read_text()
    assert "|1|" in text and "@cert-authority * " in text and zoo.name not in text
    with trio.fail_after(20):
        async with connect(zoo, known) as conn:
            assert conn.host_certificate is not None
        async with connect(zoo, known, host_key_algs=["ssh-ed25519"]) as conn:
            assert conn.host_certificate is None


# --- refused certificates ------------------------------------------------------------------------


async def test_expired_certificate_is_refused(zoo: Zoo) -> None:
    known = zoo.known_hosts(f"@cert-authority * {zoo.ca_ed}")
    message = await refused(zoo, known, host_key_algs=[EXPIRED_CERT])
    assert "failed the expired check" in message
    assert "'expired'" in message  # the key id
    assert f"{known}:1" in message  # where the CA line is


async def test_wrong_principal_is_refused(zoo: Zoo) -> None:
    known = zoo.known_hosts("# header", f"@cert-authority [127.0.0.1]:{zoo.server.port} {zoo.ca_ed}")
    message = await refused(zoo, known, host_key_algs=[WRONG_NAME_CERT])
    assert "failed the principal check" in message
    assert "'127.0.0.1'" in message and "other.example" in message
    assert f"{known}:2" in message


async def test_user_certificate_as_host_certificate_is_refused(zoo: Zoo) -> None:
    known = zoo.known_hosts(f"@cert-authority * {zoo.ca_ed}")
    message = await refused(zoo, known, host_key_algs=[USER_CERT])
    assert "failed the certificate type check" in message
    assert "is a user certificate, not a host certificate" in message


async def test_revoked_ca_is_refused(zoo: Zoo) -> None:
    known = zoo.known_hosts(f"@cert-authority * {zoo.ca_ed}", f"@revoked * {zoo.ca_ed}")
    message = await refused(zoo, known)
    assert "revoked" in message and "its CA key" in message and f"{known}:2" in message


async def test_revoked_certified_key_is_refused(zoo: Zoo) -> None:
    """Revoking the host key itself also revokes its certificates, and there is no plain-key fallback."""
    known = zoo.known_hosts(
        f"@cert-authority * {zoo.ca_ed}", f"@revoked * {zoo.host_ed25519}", f"{zoo.name} {zoo.host_ed25519}"
    )
    message = await refused(zoo, known)
    assert "its certified key" in message and f"{known}:2" in message


async def test_ca_line_for_another_host_is_not_used(zoo: Zoo) -> None:
    """A CA line whose patterns do not match: certificates are not offered, and the plain key is unknown."""
    known = zoo.known_hosts(f"@cert-authority other.example,!127.0.0.1 {zoo.ca_ed}")
    message = await refused(zoo, known)
    assert "is not known" in message
    # Forced to present its certificate, the server is still refused: no CA line for it.
    message = await refused(zoo, known, host_key_algs=[ED_CERT])
    assert "no @cert-authority line for" in message and "127.0.0.1" in message


async def test_other_ca_is_not_trusted(zoo: Zoo) -> None:
    known = zoo.known_hosts(f"@cert-authority * {zoo.other_ca}")
    message = await refused(zoo, known)
    assert "no @cert-authority line" in message


async def test_untrusted_certificate_falls_back_to_known_plain_key(zoo: Zoo) -> None:
    """OpenSSH "No matching CA found. Retry with plain key": a known certified key is enough."""
    known = zoo.known_hosts(f"@cert-authority * {zoo.other_ca}", f"{zoo.name} {zoo.host_ed25519}")
    with trio.fail_after(20):
        async with connect(zoo, known) as conn:
            assert conn.negotiated.host_key == ED_CERT
            assert conn.host_certificate is not None


async def test_failed_certificate_is_not_rescued_by_accept_new(zoo: Zoo) -> None:
    known = zoo.known_hosts(f"@cert-authority * {zoo.ca_ed}")
    before = known.read_bytes()
    message = await refused(zoo, known, host_key_algs=[EXPIRED_CERT], host_key_policy="accept-new")
    assert "expired" in message
    assert known.read_bytes() == before


async def test_openssh_agrees(zoo: Zoo) -> None:
    """The same known_hosts files give the same verdicts with OpenSSH's own client."""
    good = zoo.known_hosts(f"@cert-authority * {zoo.ca_ed}")
    revoked = zoo.known_hosts(f"@cert-authority * {zoo.ca_ed}", f"@revoked * {zoo.ca_ed}")
    for known, algorithm, ok in [
        (good, ED_CERT, True),
        (good, EXPIRED_CERT, False),
        (good, WRONG_NAME_CERT, False),
        (good, USER_CERT, False),
        (revoked, ED_CERT, False),
    ]:
        command = zoo.server.ssh_command("true")
        command[1:1] = ["-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null"]
        command[1:1] = ["-o", f"HostKeyAlgorithms={algorithm}"]
        result = subprocess.run(command, capture_output=True, timeout=30)
        assert (result.returncode == 0) is ok, (algorithm, result.stderr)


# --- known_hosts files through connect() ----------------------------------------------------------


async def test_accept_new_appends_one_hashed_line(sshd: SSHServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    original = b"# my hosts\nexample.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHu0\n"  # no key for this host
    known.write_bytes(original)
    with trio.fail_after(20):
        async with connect_to(sshd, known_hosts=known, host_key_policy="accept-new") as conn:
            key = conn.host_key
    data = known.read_bytes()
    assert data.startswith(original)
    added = data[len(original) :].decode()
    assert added.count("\n") == 1 and added.startswith("|1|")
    assert added.endswith(f" {key.openssh_line()}\n")
    assert trissh.KnownHosts.load(known).check(sshd.host, sshd.port, key) is trissh.HostKeyStatus.TRUSTED
    found = subprocess.run(
        ["ssh-keygen", "-F", f"[{sshd.host}]:{sshd.port}", "-f", str(known)], capture_output=True, timeout=30
    )
    assert found.returncode == 0


async def test_accept_new_creates_a_missing_explicit_file(sshd: SSHServer, tmp_path: Path) -> None:
    known = tmp_path / "new" / "known_hosts"
    with trio.fail_after(20):
        async with connect_to(sshd, known_hosts=known, host_key_policy="accept-new"):
            pass
    assert known.read_text().count("\n") == 1


async def test_missing_explicit_known_hosts_is_an_error(sshd: SSHServer, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "known_hosts"
    with trio.fail_after(20), pytest.raises(FileNotFoundError, match="nope/known_hosts"):
        async with trissh.connect(
            sshd.host, sshd.port, username=sshd.username, client_keys=[sshd.client_key], known_hosts=missing
        ):
            pass
    assert not missing.exists()
