"""Every key exchange method OpenSSH's sshd speaks, with every host key type, forced one pair at a time.

The sshd here also enables the legacy SHA-1 methods (``KexAlgorithms +...``) so that they can be asked for by
name; they are never offered unless asked for. mlkem768x25519-sha256 needs OpenSSH 9.9 (this Debian has 9.2):
it is run against AsyncSSH's server in tests/test_interop.py, and here only when the local sshd has it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from test_integration import connect

from trissh._algorithms.kex import DEFAULT_KEX_ALGORITHMS, KEX_METHODS, LEGACY_KEX_ALGORITHMS
from trissh.testing import SSHServer, start_sshd

HOST_KEY_ALGORITHMS = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
]


def _sshd_kex_methods() -> set[str]:
    try:
        out = subprocess.run(["ssh", "-Q", "kex"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return set()
    return set(out.split())


SSHD_KEX = _sshd_kex_methods()
METHODS = [name for name in KEX_METHODS if name in SSHD_KEX]


@pytest.fixture(scope="module")
def legacy_sshd() -> Iterator[SSHServer]:
    legacy = ",".join(sorted(LEGACY_KEX_ALGORITHMS & SSHD_KEX))
    with start_sshd(extra_config=[f"KexAlgorithms +{legacy}"] if legacy else []) as server:
        yield server


def test_openssh_methods_are_all_covered() -> None:
    """Every method this OpenSSH has, bar sntrup761 (see trissh/_algorithms/kex), is one of ours."""
    missing = {name for name in SSHD_KEX if not name.startswith("sntrup761")} - set(KEX_METHODS)
    assert not missing
    assert len(METHODS) >= 12


@pytest.mark.parametrize("host_key_alg", HOST_KEY_ALGORITHMS)
@pytest.mark.parametrize("kex", METHODS)
async def test_kex_with_host_key(legacy_sshd: SSHServer, kex: str, host_key_alg: str) -> None:
    async with connect(legacy_sshd, kex_algs=[kex], host_key_algs=[host_key_alg]) as conn:
        assert conn.negotiated.kex == kex
        assert conn.negotiated.host_key == host_key_alg
        assert (await conn.run("echo ok")).stdout == b"ok\n"
        await conn.rekey()  # a second exchange with the same method, checked against the same host key
        assert conn._transport.state.kex_count == 2
        assert (await conn.run("echo again")).stdout == b"again\n"


async def test_defaults_pick_the_best_common_method(legacy_sshd: SSHServer) -> None:
    expected = next(name for name in DEFAULT_KEX_ALGORITHMS if name in SSHD_KEX)
    async with connect(legacy_sshd) as conn:
        assert conn.negotiated.kex == expected


async def test_legacy_methods_are_not_offered_unless_named(legacy_sshd: SSHServer) -> None:
    """Even with a server that prefers nothing else, a SHA-1 method is used only when asked for."""
    with start_sshd(extra_config=["KexAlgorithms diffie-hellman-group14-sha1"]) as sha1_only:
        with pytest.raises(Exception, match="no key exchange algorithm in common"):
            async with connect(sha1_only):
                pass
        async with connect(sha1_only, kex_algs=["diffie-hellman-group14-sha1"]) as conn:
            assert conn.negotiated.kex == "diffie-hellman-group14-sha1"


@pytest.mark.parametrize("bits", [(2048, 3072, 8192), (4096, 4096, 4096), (8192, 8192, 8192)])
async def test_group_exchange_sizes(legacy_sshd: SSHServer, bits: tuple[int, int, int]) -> None:
    """sshd picks a group from /etc/ssh/moduli (or a fixed group) within what we ask for."""
    async with connect(legacy_sshd, kex_algs=["diffie-hellman-group-exchange-sha256"], gex_bits=bits) as conn:
        assert conn.negotiated.kex == "diffie-hellman-group-exchange-sha256"
        assert (await conn.run("echo ok")).stdout == b"ok\n"
