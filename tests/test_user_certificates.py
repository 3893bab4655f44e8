"""OpenSSH user certificates in publickey authentication (PROTOCOL.certkeys), against sshd with
``TrustedUserCAKeys``: from a ``(key, certificate)`` pair, from a ``-cert.pub`` beside the key, and from the
agent; and the certificates sshd must refuse (expired, wrong principal). The user keys here are in no
authorized_keys file, so only the certificate can let them in."""

from __future__ import annotations

import getpass
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from agents import run_agent, ssh_add

import trissh
from trissh.testing import SSHServer, start_sshd

KEY_TYPES = {
    "ed25519": ["-t", "ed25519"],
    "ecdsa": ["-t", "ecdsa", "-b", "384"],
    "rsa": ["-t", "rsa", "-b", "2048"],
}


def keygen(*args: str | Path) -> None:
    subprocess.run(["ssh-keygen", "-q", *map(str, args)], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, and per key type a key with a valid certificate for the current user."""
    directory = tmp_path_factory.mktemp("pki")
    keygen("-t", "ed25519", "-N", "", "-f", directory / "ca")
    for name, args in KEY_TYPES.items():
        keygen(*args, "-N", "", "-f", directory / f"id_{name}")
        keygen(
            "-s",
            directory / "ca",
            "-I",
            f"trissh-{name}",
            "-n",
            getpass.getuser(),
            directory / f"id_{name}.pub",
        )
    return directory


def certify(pki: Path, name: str, *options: str) -> Path:
    """A fresh key of type ``name`` with a certificate made with extra ssh-keygen ``options``."""
    directory = Path(tempfile.mkdtemp(dir=pki))
    key = directory / "id"
    keygen(*KEY_TYPES[name], "-N", "", "-f", key)
    keygen("-s", pki / "ca", "-I", "odd", *options, f"{key}.pub")
    return key


@pytest.fixture(scope="module")
def ca_sshd(pki: Path) -> Iterator[SSHServer]:
    with start_sshd(extra_config=[f"TrustedUserCAKeys {pki / 'ca.pub'}"]) as server:
        yield server


async def login(server: SSHServer, **kwargs: Any) -> trissh.SSHConnection:
    options: dict[str, Any] = {
        "username": server.username,
        "known_hosts": server.known_hosts,
        "agent_path": None,
        "connect_timeout": 10,
    }
    options.update(kwargs)
    async with trissh.connect(server.host, server.port, **options) as conn:
        assert (await conn.run("echo in")).stdout == b"in\n"
        return conn


@pytest.mark.parametrize("name", KEY_TYPES)
async def test_certificate_beside_the_key(ca_sshd: SSHServer, pki: Path, name: str) -> None:
    """``id-cert.pub`` next to ``id`` is picked up, as OpenSSH does."""
    with trio.fail_after(20):
        await login(ca_sshd, client_keys=[pki / f"id_{name}"])
    assert f"trissh-{name}" in ca_sshd.read_log()  # sshd logs the certificate's key id when it accepts it


@pytest.mark.parametrize("name", KEY_TYPES)
async def test_key_and_certificate_pair(ca_sshd: SSHServer, pki: Path, name: str, tmp_path: Path) -> None:
    key = tmp_path / "elsewhere"
    shutil.copy(pki / f"id_{name}", key)  # no -cert.pub beside this copy: the pair must carry it
    pair = (trissh.read_private_key(key), pki / f"id_{name}-cert.pub")
    with trio.fail_after(20):
        await login(ca_sshd, client_keys=[pair])


@pytest.mark.parametrize("name", KEY_TYPES)
async def test_certificate_in_the_agent(ca_sshd: SSHServer, pki: Path, name: str) -> None:
    with run_agent() as sock:
        ssh_add(sock, pki / f"id_{name}")  # adds the key and its -cert.pub
        with trio.fail_after(20):
            await login(ca_sshd, client_keys=[], agent_path=sock)


@pytest.mark.parametrize(
    ("options", "why"),
    [
        (("-n", getpass.getuser(), "-V", "20200101:20200102"), "expired"),
        (("-n", "somebody-else"), "wrong principal"),
    ],
    ids=["expired", "wrong-principal"],
)
async def test_certificates_sshd_refuses(
    ca_sshd: SSHServer, pki: Path, options: tuple[str, ...], why: str
) -> None:
    key = certify(pki, "ed25519", *options)
    with trio.fail_after(20), pytest.raises(trissh.PermissionDenied) as caught:
        await login(ca_sshd, client_keys=[key])
    assert "ssh-ed25519-cert" in str(caught.value) or "-cert" in str(caught.value), str(caught.value)
