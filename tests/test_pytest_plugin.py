"""The pytest plugin (``trissh.testing.plugin``): its fixtures used here, and users' suites run by pytester.

The plugin is active here as in any project with trissh installed (the ``pytest11`` entry point), so the
fixtures are used directly; pytester runs small user suites for what only a whole run shows: no conftest
needed, servers cleaned up after a failing test, a skip when sshd is missing, a refused config explained.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import trio

import trissh
import trissh.testing._sshd
from trissh.testing import SSHServer, password_user
from trissh.testing.plugin import SSHServerFactory

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(120)
TIMEOUT = 30
INI = "[pytest]\ntrio_mode = true\naddopts = -p no:cacheprovider\n"


def _alive(pid: int) -> bool:
    return trissh.testing._sshd._alive(pid)


# --- the fixtures, used as a user would ---------------------------------------------------------------------


async def test_ssh_connection_runs_commands_on_the_session_server(
    ssh_connection: trissh.SSHConnection, ssh_server: SSHServer
) -> None:
    with trio.fail_after(TIMEOUT):
        result = await ssh_connection.run("echo hello; id -un", check=True)
    assert result.stdout.decode().split() == ["hello", ssh_server.user]
    assert ssh_connection.transport.port == ssh_server.port


async def test_connect_options_override_the_filled_in_ones(ssh_server: SSHServer) -> None:
    with trio.fail_after(TIMEOUT):
        async with ssh_server.connect(compression=True, ciphers=["aes256-gcm@openssh.com"]) as conn:
            assert conn.negotiated.client_to_server.cipher == "aes256-gcm@openssh.com"
            assert conn.negotiated.client_to_server.compression != "none"
        # A wrong key given as an override is really used: the login fails.
        with pytest.raises(trissh.PermissionDenied):
            async with ssh_server.connect(client_keys=[]):
                pass


def test_ssh_config_text_works_with_openssh_and_trissh(ssh_server: SSHServer, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(ssh_server.ssh_config)
    done = subprocess.run(
        ["ssh", "-F", str(config), ssh_server.alias, "echo", "via-ssh"], capture_output=True, timeout=TIMEOUT
    )
    assert done.stdout == b"via-ssh\n", done.stderr

    async def with_trissh() -> bytes:
        async with trissh.connect(ssh_server.alias, config=config) as conn:
            return (await conn.run("echo via-trissh", check=True)).stdout

    assert trio.run(with_trissh) == b"via-trissh\n"


async def test_factory_servers_take_their_own_sshd_config(
    ssh_server_factory: SSHServerFactory, ssh_server: SSHServer
) -> None:
    forced = ssh_server_factory(["ForceCommand echo forced"])
    assert forced.port != ssh_server.port and forced.alias != ssh_server.alias
    no_sftp = ssh_server_factory(["Subsystem sftp /bin/false"], user_key_types=("ecdsa",))
    assert set(no_sftp.client_keys) == {"ed25519", "ecdsa"}
    with trio.fail_after(TIMEOUT):
        async with forced.connect() as conn:
            assert (await conn.run("echo not this")).stdout == b"forced\n"
        async with no_sftp.connect(client_keys=[no_sftp.client_keys["ecdsa"]]) as conn:
            with pytest.raises(trissh.SSHError):
                async with conn.open_sftp():
                    pass


async def test_a_killed_server_drops_its_connections(ssh_server_factory: SSHServerFactory) -> None:
    server = ssh_server_factory()
    with trio.fail_after(TIMEOUT):
        async with server.connect() as conn:
            async with conn.open_process("sleep 60") as proc:
                server.kill()
                assert not server.alive()
                with pytest.raises(trissh.ConnectionLost):
                    await proc.wait()
        with pytest.raises(trissh.ConnectionLost):
            async with server.connect():
                pass


@pytest.mark.skipif(os.geteuid() != 0, reason="password=True needs root (it makes an account)")
async def test_a_password_server_logs_in_its_own_account_by_password(
    ssh_server_factory: SSHServerFactory,
) -> None:
    server = ssh_server_factory(password=True)
    assert server.password and server.user.startswith("trissh-pw-")
    with trio.fail_after(TIMEOUT):
        async with server.connect() as conn:
            assert (await conn.run("id -un", check=True)).stdout.decode().strip() == server.user
            assert conn.auth.method == "password"
        with pytest.raises(trissh.PermissionDenied):
            async with server.connect(password="wrong " + server.password):
                pass


# --- whole user suites, run by pytester ---------------------------------------------------------------------

USER_SUITE = """
import subprocess
import trissh

def test_sync_with_openssh(ssh_server):
    out = subprocess.run(ssh_server.ssh_command("echo", "hi"), capture_output=True, timeout=30).stdout
    assert out == b"hi\\n"

async def test_connection(ssh_connection):
    assert (await ssh_connection.run("echo hi", check=True)).stdout == b"hi\\n"

async def test_factory(ssh_server_factory):
    server = ssh_server_factory(["ForceCommand echo forced"])
    async with server.connect() as conn:
        assert (await conn.run("true")).stdout == b"forced\\n"
"""


def test_a_users_suite_needs_no_conftest(pytester: pytest.Pytester) -> None:
    """A fresh pytest process, as a user's: the entry point alone brings the fixtures."""
    pytester.makeini(INI)
    pytester.makepyfile(test_user=USER_SUITE)
    assert not list(pytester.path.glob("conftest.py"))
    result = pytester.runpytest_subprocess("-q", timeout=90)
    result.assert_outcomes(passed=3)


def test_servers_are_stopped_and_removed_when_a_test_fails(pytester: pytest.Pytester) -> None:
    """A factory server goes at the end of its test (the next test sees it gone), the session server at the
    end of the run; a failing test changes neither."""
    record = pytester.path / "servers.json"
    pytester.makeini(INI)
    pytester.makepyfile(
        test_fails=f"""
import json
from trissh.testing._sshd import _alive

def test_fails(ssh_server, ssh_server_factory):
    extra = ssh_server_factory()
    with open({str(record)!r}, "w") as f:
        json.dump([[str(s.directory), s.pid] for s in (ssh_server, extra)], f)
    assert False, "the user's test fails"

def test_after(ssh_server):
    (session_dir, session_pid), (extra_dir, extra_pid) = json.load(open({str(record)!r}))
    assert _alive(session_pid)
    import os
    assert not os.path.exists(extra_dir) and not _alive(extra_pid)
"""
    )
    result = pytester.runpytest_subprocess("-q", "-p", "no:randomly", timeout=90)
    result.assert_outcomes(failed=1, passed=1)
    servers = json.loads(record.read_text())
    assert len(servers) == 2
    for directory, pid in servers:
        assert not Path(directory).exists(), directory
        assert not _alive(pid), pid


def test_a_missing_sshd_skips_with_the_install_hint(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trissh.testing._sshd, "_SSHD_FIXED_PATH", "/nonexistent/sshd")
    monkeypatch.setattr(trissh.testing._sshd, "_SBIN_DIRS", "/nonexistent")
    monkeypatch.setenv("PATH", str(pytester.path))
    pytester.makeini(INI)
    pytester.makepyfile(test_skips="def test_it(ssh_server):\n    raise AssertionError('ran')\n")
    result = pytester.runpytest("-q", "-rs")  # in-process, so the patched lookup applies
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*sshd was not found*apt-get install -y openssh-server*"])


def test_a_refused_sshd_config_fails_with_sshds_log(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        test_refused="def test_it(ssh_server_factory):\n    ssh_server_factory(['NoSuchKeyword yes'])\n"
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*could not start sshd*", "*Bad configuration option: NoSuchKeyword*"])


def test_no_free_port_fails_with_a_message(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    with trissh.testing.start_sshd() as busy:  # a port some sshd already holds
        monkeypatch.setattr(trissh.testing._sshd, "_free_port", lambda: busy.port)
        pytester.makeini(INI)
        pytester.makepyfile(test_busy="def test_it(ssh_server_factory):\n    ssh_server_factory()\n")
        result = pytester.runpytest("-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*could not start sshd*could not bind a free port*"])


def _runs_for(account: str, path: str) -> bool:
    """Whether ``account`` can execute ``path`` (every directory above it must be enterable)."""
    done = subprocess.run(["runuser", "-u", account, "--", "test", "-x", path], timeout=TIMEOUT, check=False)
    return done.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root to make an account")
def test_the_fixtures_work_for_a_user_who_is_not_root() -> None:
    """sshd runs as that user, with no privilege separation; the login is the user's own."""
    with password_user("trissh-nonroot") as account:
        if not _runs_for(account.name, sys.executable):
            pytest.skip(f"{account.name} cannot run this interpreter ({sys.executable}): a parent is private")
        suite = Path(tempfile.mkdtemp(prefix="trissh-nonroot-suite-"))
        try:
            (suite / "pytest.ini").write_text(INI)
            (suite / "test_user.py").write_text(
                USER_SUITE + "\nasync def test_uid(ssh_connection):\n"
                "    import os\n"
                "    out = (await ssh_connection.run('id -u', check=True)).stdout\n"
                "    assert int(out) == os.getuid() != 0\n"
            )
            shutil.chown(suite, user=account.name)
            for path in suite.iterdir():
                shutil.chown(path, user=account.name)
            done = subprocess.run(
                ["runuser", "-u", account.name, "--", sys.executable, "-m", "pytest", "-q", str(suite)],
                capture_output=True,
                text=True,
                timeout=90,
                cwd=suite,
                check=False,
            )
        finally:
            shutil.rmtree(suite, ignore_errors=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout
