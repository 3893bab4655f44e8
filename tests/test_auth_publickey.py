"""The publickey method against sshd (RFC 4252 §7): the unsigned query first, a signature only for a key the
server accepts, each key offered once, and a key that cannot sign skipped for the next."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

import trissh
from trissh._auth.identity import KeyIdentity
from trissh.testing import SSHServer


class Recording(KeyIdentity):
    """A key that notes each signature asked of it, and can be told to fail."""

    def __init__(self, path: Path, log: list[str], *, broken: bool = False) -> None:
        super().__init__(trissh.load_private_key(path), source=f"test {path.name}")
        self.log = log
        self.broken = broken

    async def sign(self, data: bytes, algorithm: str) -> bytes:
        self.log.append(f"{self.source} {algorithm}")
        if self.broken:
            raise trissh.KeyImportError(f"{self.source} cannot sign today")
        return await super().sign(data, algorithm)


@pytest.fixture(scope="module")
def stranger_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key the server has never heard of."""
    path = tmp_path_factory.mktemp("stranger") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)
    return path


async def login(sshd: SSHServer, keys: list[Any]) -> trissh.SSHConnection:
    async with trissh.connect(
        sshd.host,
        sshd.port,
        username=sshd.username,
        client_keys=keys,
        known_hosts=sshd.known_hosts,
        agent_path=None,
        connect_timeout=10,
    ) as conn:
        return conn


async def test_only_an_accepted_key_is_asked_to_sign(sshd: SSHServer, stranger_key: Path) -> None:
    signed: list[str] = []
    keys = [Recording(stranger_key, signed), Recording(sshd.client_keys["rsa"], signed)]
    with trio.fail_after(20):
        conn = await login(sshd, keys)
    # The stranger was refused at the query, so it never signed; RSA signs with SHA-512 (RFC 8332).
    assert signed == ["test user_rsa rsa-sha2-512"]
    assert conn.auth.method == "publickey"


async def test_the_same_key_from_two_sources_is_offered_once(sshd: SSHServer, stranger_key: Path) -> None:
    signed: list[str] = []
    keys = [Recording(stranger_key, signed), Recording(stranger_key, signed)]
    with trio.fail_after(20), pytest.raises(trissh.PermissionDenied) as caught:
        await login(sshd, keys)
    assert str(caught.value).count("refused") == 1
    assert signed == []


async def test_a_key_that_cannot_sign_is_skipped(sshd: SSHServer) -> None:
    signed: list[str] = []
    keys = [Recording(sshd.client_keys["ecdsa"], signed, broken=True), Recording(sshd.client_key, signed)]
    with trio.fail_after(20):
        await login(sshd, keys)
    assert signed == ["test user_ecdsa ecdsa-sha2-nistp256", "test user_ed25519 ssh-ed25519"]


async def test_two_keys_required(sshd: SSHServer) -> None:
    """``AuthenticationMethods publickey,publickey``: the first key's partial success leaves the list as it
    was, and the second factor must be another key (RFC 4252 §5.1; sshd refuses the same key twice)."""
    from trissh.testing import start_sshd

    signed: list[str] = []
    with start_sshd(
        extra_config=["AuthenticationMethods publickey,publickey"], user_key_types=["ed25519", "ecdsa"]
    ) as server:
        keys = [
            Recording(server.client_key, signed),
            Recording(server.client_key, signed),  # the same key again: offered once only
            Recording(server.client_keys["ecdsa"], signed),
        ]
        with trio.fail_after(20):
            conn = await login(server, keys)
    assert conn.auth.methods == ["publickey", "publickey"]
    assert signed == ["test user_ed25519 ssh-ed25519", "test user_ecdsa ecdsa-sha2-nistp256"]
