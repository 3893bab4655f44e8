"""trissh against servers other than OpenSSH: Dropbear and AsyncSSH (started by ``tests/servers.py``).

Every algorithm trissh has is forced, one at a time, against each server that offers it. trissh's side of the
matrix comes from its registries at collection time, so algorithms added to trissh are tested here without
editing this file. AsyncSSH's side comes from AsyncSSH's own lists (its test server offers all of them);
Dropbear's is read from its KEXINIT when it runs, and what it does not offer is skipped with a reason.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import pytest
import trio
from servers import AsyncSSHServerFactory, InteropServer
from test_integration import connect

import trissh
from trissh._algorithms.ciphers import CIPHERS, MACS
from trissh._algorithms.hostkeys import HOST_KEY_ALGORITHMS
from trissh._algorithms.kex import DEFAULT_KEX_ALGORITHMS, KEX_METHODS
from trissh._errors import DisconnectReason

MiB = 1024 * 1024
SERVERS = ("dropbear", "asyncssh_server")

# trissh's side of the matrix: category -> every name its registries hold, legacy ones included.
TRISSH_ALGORITHMS: dict[str, list[str]] = {
    "kex": list(KEX_METHODS),
    "host_key": list(HOST_KEY_ALGORITHMS),
    "cipher": list(CIPHERS),
    "mac": list(MACS),
}


def _asyncssh_algorithms() -> dict[str, set[str]] | None:
    """What the AsyncSSH test server offers (everything AsyncSSH has, GSS aside); None without AsyncSSH."""
    try:
        from asyncssh.encryption import get_encryption_algs
        from asyncssh.kex import get_kex_algs
        from asyncssh.mac import get_mac_algs
        from asyncssh.public_key import get_public_key_algs
    except ImportError:
        return None

    def names(algs: Sequence[bytes]) -> set[str]:
        return {name.decode() for name in algs if not name.startswith(b"gss-")}

    return {
        "kex": names(get_kex_algs()),
        "host_key": names(get_public_key_algs()),
        "cipher": names(get_encryption_algs()),
        "mac": names(get_mac_algs()),
    }


ASYNCSSH_ALGORITHMS = _asyncssh_algorithms()
COMMON_KEX = [name for name in KEX_METHODS if ASYNCSSH_ALGORITHMS and name in ASYNCSSH_ALGORITHMS["kex"]]
KEX_TRISSH_LACKS = sorted(set(ASYNCSSH_ALGORITHMS["kex"] if ASYNCSSH_ALGORITHMS else ()) - set(KEX_METHODS))


def _matrix() -> list[Any]:
    params = []
    for category, names in TRISSH_ALGORITHMS.items():
        for name in names:
            params.append(pytest.param("dropbear", category, name, id=f"dropbear-{category}-{name}"))
            # Without AsyncSSH every case stays in, and the fixture skips them with its reason.
            if ASYNCSSH_ALGORITHMS is None or name in ASYNCSSH_ALGORITHMS[category]:
                params.append(
                    pytest.param("asyncssh_server", category, name, id=f"asyncssh-{category}-{name}")
                )
    return params


@pytest.fixture
def server(request: pytest.FixtureRequest) -> InteropServer:
    """The server fixture named by the (indirect) parameter: ``dropbear`` or ``asyncssh_server``."""
    found: InteropServer = request.getfixturevalue(request.param)
    return found


async def roundtrip(conn: trissh.SSHConnection, size: int) -> None:
    """Send ``size`` random bytes through ``cat`` and check they come back unchanged."""
    data = os.urandom(size)
    result = await conn.run("cat", input=data)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == size
    assert result.stdout == data


def _mac_cipher(server: InteropServer) -> str | None:
    """A non-AEAD cipher both sides have, so that the MAC under test is used."""
    for name, spec in CIPHERS.items():
        if not spec.aead and server.kexinit.offers("cipher", name):
            return name
    return None


@pytest.fixture
def forced(server: InteropServer, category: str, name: str) -> dict[str, Any]:
    """connect() options that force ``name``; skips what the server does not offer.

    A sync fixture, because pytest-trio drops the reason of a skip raised inside an async test.
    """
    if not server.kexinit.offers(category, name):
        # AsyncSSH's test server offers everything AsyncSSH has, so there it is a harness bug.
        assert server.name != "asyncssh", f"the AsyncSSH server does not offer {category} {name}"
        pytest.skip(f"{server.name} does not offer {category} {name}")
    if category == "kex":
        return {"kex_algs": [name]}
    if category == "host_key":
        return {"host_key_algs": [name]}
    if category == "cipher":
        return {"ciphers": [name]}
    cipher = _mac_cipher(server)
    if cipher is None:
        pytest.skip(f"{server.name} offers no non-AEAD cipher that trissh has, so no MAC is used")
    return {"ciphers": [cipher], "macs": [name]}


def _negotiated(conn: trissh.SSHConnection, category: str) -> set[str | None]:
    n = conn.negotiated
    if category == "kex":
        return {n.kex}
    if category == "host_key":
        return {n.host_key}
    if category == "cipher":
        return {n.client_to_server.cipher, n.server_to_client.cipher}
    return {n.client_to_server.mac, n.server_to_client.mac}


# --- commands and bulk data ---------------------------------------------------------------------------------


@pytest.mark.parametrize("server", SERVERS, indirect=True)
async def test_run_commands(server: InteropServer) -> None:
    """exec, stdout, stderr and exit status, with the defaults on both sides."""
    async with connect(server) as conn:
        expected_banner = {"dropbear": "SSH-2.0-dropbear", "asyncssh": "SSH-2.0-AsyncSSH"}[server.name]
        assert conn.server_version.startswith(expected_banner)
        assert conn.negotiated.strict_kex  # both offer kex-strict-s-v00@openssh.com

        result = await conn.run("echo hello trissh")
        assert (result.stdout, result.stderr, result.returncode) == (b"hello trissh\n", b"", 0)
        assert (await conn.run("exit 3")).returncode == 3
        missing = await conn.run("no-such-command-trissh")
        assert missing.returncode == 127
        assert missing.stderr  # the shell or the AsyncSSH handler says why

        upload = os.urandom(MiB + 5)
        digest = (await conn.run("sha256sum", input=upload)).stdout.split()[0].decode()
        assert digest == hashlib.sha256(upload).hexdigest()
        download = await conn.run(f"head -c {MiB + 7} /dev/zero")
        assert download.returncode == 0
        assert download.stdout == bytes(MiB + 7)


@pytest.mark.parametrize("server", SERVERS, indirect=True)
async def test_8_mib_both_ways(server: InteropServer) -> None:
    """8 MiB up and back down through ``cat``, compared byte for byte: many windows each way."""
    async with connect(server) as conn:
        await roundtrip(conn, 8 * MiB)


@pytest.mark.parametrize("server", SERVERS, indirect=True)
async def test_concurrent_channels(server: InteropServer) -> None:
    """Several sessions on one connection at once, each with its own data."""
    async with connect(server) as conn, trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(roundtrip, conn, 256 * 1024 + 3)


# --- one algorithm at a time --------------------------------------------------------------------------------


@pytest.mark.parametrize(("server", "category", "name"), _matrix(), indirect=["server"])
async def test_algorithm(server: InteropServer, category: str, name: str, forced: dict[str, Any]) -> None:
    """Force one algorithm; check it was chosen, data flows, and a rekey with it works."""
    async with connect(server, **forced) as conn:
        assert _negotiated(conn, category) == {name}
        if category == "host_key":
            assert conn.host_key.key_type == HOST_KEY_ALGORITHMS[name].key_type
        await roundtrip(conn, 64 * 1024 + 1)
        await conn.rekey()  # the same forced algorithm again, with traffic before and after
        assert _negotiated(conn, category) == {name}
        await roundtrip(conn, 4096)


# --- server-side choices (AsyncSSH, whose offer the test sets) ----------------------------------------------


@pytest.mark.skipif(not COMMON_KEX, reason="AsyncSSH is missing or has no key exchange in common with trissh")
async def test_server_offering_one_kex(make_asyncssh_server: AsyncSSHServerFactory) -> None:
    """A server that offers a single key exchange gets it, from trissh's whole list."""
    only = COMMON_KEX[-1]  # the one trissh likes least: negotiation must still find it
    server = make_asyncssh_server(kex_algs=[only])
    assert server.kexinit.kex[0] == only
    async with connect(server, kex_algs=list(KEX_METHODS)) as conn:
        assert conn.negotiated.kex == only
        await roundtrip(conn, 1000)


@pytest.mark.skipif(not KEX_TRISSH_LACKS, reason="AsyncSSH is missing or trissh has all its key exchanges")
async def test_no_common_kex(make_asyncssh_server: AsyncSSHServerFactory) -> None:
    """A server with no key exchange trissh has: KEY_EXCHANGE_FAILED naming both offers, nothing hangs."""
    server = make_asyncssh_server(kex_algs=[KEX_TRISSH_LACKS[0]])
    with pytest.raises(trissh.DisconnectError) as info:
        async with connect(server):
            pass
    assert info.value.code == DisconnectReason.KEY_EXCHANGE_FAILED
    assert KEX_TRISSH_LACKS[0] in info.value.reason  # the server's list
    assert DEFAULT_KEX_ALGORITHMS[0] in info.value.reason  # ours
