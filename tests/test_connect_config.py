"""connect() with ssh_config(5), against a real sshd: an alias alone is enough, explicit keywords win,
jump hosts and ProxyCommand come from the config, and what the config opens (forwards) is open."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from agents import TOOL_TIMEOUT, run_agent, ssh_add

import trissh
from trissh._channels.streams import ChannelStream
from trissh._config import ConfigError, SSHConfig
from trissh.testing import SSHServer

pytestmark = pytest.mark.timeout(60)
TIMEOUT = 30


def alias_config(sshd: SSHServer, extra: str = "", name: str = "alias") -> str:
    return f"""
Host {name}
  HostName 127.0.0.1
  Port {sshd.port}
  User {sshd.username}
  IdentityFile {sshd.client_key}
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile {sshd.known_hosts}
{extra}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config"
    path.write_text(text)
    return path


async def echo(conn: trissh.SSHConnection, text: str = "ok") -> bytes:
    return (await conn.run(f"echo {text}", check=True)).stdout


async def test_an_alias_alone_connects_with_the_configs_host_port_user_and_key(
    sshd: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``trissh.connect("alias")`` with no other argument: ~/.ssh/config read by default (~ is the
    password database's home, as for ssh: pointed at a temporary one here)."""
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text(alias_config(sshd))
    (tmp_path / ".ssh" / "config").chmod(0o600)
    monkeypatch.setattr("trissh._config._config.home_of", lambda: str(tmp_path))
    with trio.fail_after(TIMEOUT):
        async with trissh.connect("alias") as conn:
            assert await echo(conn) == b"ok\n"
            assert conn.transport.port == sshd.port


async def test_explicit_keywords_win_over_the_config(sshd: SSHServer, tmp_path: Path) -> None:
    config = write(
        tmp_path,
        alias_config(sshd)
        .replace(f"Port {sshd.port}", "Port 1")
        .replace(f"User {sshd.username}", "User nobody-here"),
    )
    with trio.fail_after(TIMEOUT):
        async with trissh.connect("alias", sshd.port, username=sshd.username, config=config) as conn:
            assert await echo(conn) == b"ok\n"
        # The config's port, when none is given:
        with pytest.raises(trissh.ConnectionLost, match=r"127\.0\.0\.1:1\b"):
            async with trissh.connect("alias", config=config):
                pass


async def test_config_none_reads_no_config(
    sshd: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host *\n  ProxyCommand false\n")  # would break it
    monkeypatch.setattr("trissh._config._config.home_of", lambda: str(tmp_path))
    with trio.fail_after(TIMEOUT):
        async with trissh.connect(
            sshd.host,
            sshd.port,
            username=sshd.username,
            client_keys=[sshd.client_key],
            known_hosts=sshd.known_hosts,
            agent_path=None,
            config=None,
        ) as conn:
            assert await echo(conn) == b"ok\n"


async def test_proxy_jump_names_another_alias(sshd: SSHServer, tmp_path: Path) -> None:
    text = alias_config(sshd, name="bastion") + alias_config(sshd, "  ProxyJump bastion", name="inner")
    with trio.fail_after(TIMEOUT):
        async with trissh.connect("inner", config=write(tmp_path, text)) as conn:
            assert await echo(conn) == b"ok\n"
            assert isinstance(conn.transport.stream, ChannelStream)  # it runs over the bastion's channel


def _logins(sshd: SSHServer) -> int:
    return sshd.read_log().count("Accepted publickey")


async def _logins_for(sshd: SSHServer, host: str, config: Path) -> int:
    """How many logins sshd saw for one connect() to ``host`` (every hop logs in to the same sshd)."""
    before = _logins(sshd)
    with trio.fail_after(TIMEOUT):
        async with trissh.connect(host, config=config) as conn:
            assert await echo(conn) == b"ok\n"
    return _logins(sshd) - before  # sshd logs each login before it answers it


async def test_a_first_jump_hosts_own_proxy_jump_is_followed(sshd: SSHServer, tmp_path: Path) -> None:
    """inner -> ProxyJump outer -> ProxyJump edge, as ssh goes (its ``ssh -W`` for the first hop reads
    that hop's entry): three logins. Hops after the first come from the list alone."""
    text = (
        alias_config(sshd, name="edge")
        + alias_config(sshd, "  ProxyJump edge", name="outer")
        + alias_config(sshd, "  ProxyJump outer", name="inner")
        + alias_config(sshd, "  ProxyJump edge,outer", name="listed")
    )
    config = write(tmp_path, text)
    assert await _logins_for(sshd, "inner", config) == 3
    assert await _logins_for(sshd, "listed", config) == 3  # outer's own ProxyJump is not followed again


async def test_a_first_jump_hosts_own_proxy_command_is_used(sshd: SSHServer, tmp_path: Path) -> None:
    path = tmp_path / "config"
    marker = tmp_path / "proxy-command-ran"
    proxy = f"ProxyCommand sh -c 'touch {marker}; exec {sys.executable} -m trissh -q -F {path} -W %h:%p edge'"
    path.write_text(
        alias_config(sshd, name="edge")
        + alias_config(sshd, "  " + proxy, name="outer")
        + alias_config(sshd, "  ProxyJump outer", name="inner")
    )
    with trio.fail_after(TIMEOUT):
        async with trissh.connect("inner", config=path) as conn:
            assert await echo(conn) == b"ok\n"
    assert marker.exists()


async def test_a_proxy_jump_loop_in_the_config_is_an_error(sshd: SSHServer, tmp_path: Path) -> None:
    config = write(tmp_path, alias_config(sshd, "  ProxyJump alias"))
    with trio.fail_after(TIMEOUT), pytest.raises(ConfigError, match=r"loop in the config") as caught:
        async with trissh.connect("alias", config=config):
            pass
    assert str(caught.value).count("at jump host") == 1  # named once, not once per level


async def test_proxy_command_carries_the_connection(sshd: SSHServer, tmp_path: Path) -> None:
    """ProxyCommand: here trissh's own ``-W``, through the same config's other alias."""
    path = tmp_path / "config"
    proxy = f"ProxyCommand {sys.executable} -m trissh -q -F {path} -W %h:%p bastion"
    path.write_text(alias_config(sshd, name="bastion") + alias_config(sshd, "  " + proxy, name="inner"))
    with trio.fail_after(TIMEOUT):
        async with trissh.connect("inner", config=path) as conn:
            assert await echo(conn) == b"ok\n"
            assert not isinstance(conn.transport.stream, trio.SocketStream)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        # It exits at once: whether trissh's read or its write finds that first is a race.
        ("false", r"ProxyCommand 'false' (closed its output|stopped reading) \(exited with status 1\)"),
        ("echo garbage", r"ProxyCommand 'echo garbage'"),
    ],
)
async def test_a_proxy_command_that_fails_is_named(
    sshd: SSHServer, tmp_path: Path, command: str, expected: str
) -> None:
    config = write(tmp_path, alias_config(sshd, f"  ProxyCommand {command}"))
    with (
        trio.fail_after(TIMEOUT),
        pytest.raises((trissh.ConnectionLost, trissh.ProtocolError), match=expected),
    ):
        async with trissh.connect("alias", config=config):
            pass


async def test_config_forwards_are_open_while_connected(sshd: SSHServer, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = write(tmp_path, alias_config(sshd, f"  LocalForward 127.0.0.1:{port} 127.0.0.1:{sshd.port}"))
    with trio.fail_after(TIMEOUT):
        async with trissh.connect("alias", config=config):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                assert (await stream.receive_some(100)).startswith(b"SSH-2.0-")  # sshd, through the forward
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)  # closed with the connection


async def test_config_ciphers_and_host_key_alias_apply(sshd: SSHServer, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    line = sshd.known_hosts.read_text().splitlines()[0]
    known.write_text("other-name " + line.split(" ", 1)[1] + "\n")  # the key known under another name only
    text = alias_config(
        sshd, "  Ciphers aes128-ctr\n  MACs hmac-sha2-256-etm@openssh.com\n  HostKeyAlias other-name"
    )
    config = write(tmp_path, text.replace(str(sshd.known_hosts), str(known)))
    with trio.fail_after(TIMEOUT):
        async with trissh.connect("alias", config=config) as conn:
            assert conn.negotiated.client_to_server.cipher == "aes128-ctr"
            assert await echo(conn) == b"ok\n"


async def test_accept_new_from_the_config_learns_the_key(sshd: SSHServer, tmp_path: Path) -> None:
    known = tmp_path / "learned"
    text = alias_config(sshd, "  StrictHostKeyChecking accept-new").replace(str(sshd.known_hosts), str(known))
    config = write(tmp_path, text)
    with trio.fail_after(TIMEOUT):
        async with trissh.connect("alias", config=config) as conn:
            assert await echo(conn) == b"ok\n"
    assert known.read_text().count("\n") == 1
    strict = write(tmp_path, alias_config(sshd).replace(str(sshd.known_hosts), str(tmp_path / "empty")))
    (tmp_path / "empty").write_text("")
    with trio.fail_after(TIMEOUT), pytest.raises(trissh.HostKeyNotVerifiable):
        async with trissh.connect("alias", config=strict):
            pass


async def test_set_env_reaches_the_command(tmp_path: Path) -> None:
    from trissh.testing import start_sshd

    with start_sshd(extra_config=["AcceptEnv TRISSH_*"]) as server:
        config = write(tmp_path, alias_config(server, "  SetEnv TRISSH_ONE=1 TRISSH_TWO=two"))
        with trio.fail_after(TIMEOUT):
            async with trissh.connect("alias", config=config) as conn:
                result = await conn.run("echo $TRISSH_ONE-$TRISSH_TWO", check=True)
                assert result.stdout == b"1-two\n"
                result = await conn.run("echo $TRISSH_ONE", env={"TRISSH_ONE": "mine"}, check=True)
                assert result.stdout == b"mine\n"  # a call's own env wins


async def test_a_bad_config_line_names_file_and_line(tmp_path: Path) -> None:
    config = write(tmp_path, "Host x\n  Port 22\n  Port banana\n")
    with trio.fail_after(TIMEOUT), pytest.raises(ConfigError, match=r"config line 3"):
        async with trissh.connect("x", config=config):
            pass


def test_an_sshconfig_object_is_accepted() -> None:
    assert isinstance(SSHConfig.from_text("Host a\n HostName b\n").lookup("a")["hostname"], str)


async def test_bind_address_and_address_family(sshd: SSHServer, tmp_path: Path) -> None:
    """BindAddress: the connection comes from that address (sshd logs it); AddressFamily inet6 for an
    IPv4-only name finds no address."""
    config = write(tmp_path, alias_config(sshd, "  BindAddress 127.0.0.2\n  AddressFamily inet"))
    with trio.fail_after(TIMEOUT):
        async with trissh.connect("alias", config=config) as conn:
            assert await echo(conn, "from-bound") == b"from-bound\n"
            peer = await conn.run("echo $SSH_CLIENT", check=True)
    assert peer.stdout.split()[0] == b"127.0.0.2"
    v6 = write(tmp_path, alias_config(sshd, "  AddressFamily inet6"))
    with trio.fail_after(TIMEOUT), pytest.raises(trissh.ConnectionLost, match=r"127\.0\.0\.1"):
        async with trissh.connect("alias", config=v6):
            pass


def _encrypted_copy(key: Path, tmp_path: Path) -> Path:
    """The key in a passphrase-protected file of its own (nobody gives the passphrase here)."""
    copy = tmp_path / "id_locked"
    copy.write_bytes(key.read_bytes())
    copy.chmod(0o600)
    subprocess.run(
        ["ssh-keygen", "-q", "-p", "-P", "", "-N", "not given", "-f", str(copy)],
        check=True,
        timeout=TOOL_TIMEOUT,
    )
    return copy


def _identities_only_config(sshd: SSHServer, identity: Path, agent: Path) -> str:
    return (
        alias_config(sshd)
        .replace(f"IdentityFile {sshd.client_key}", f"IdentityFile {identity}")
        .replace("IdentityAgent none", f"IdentityAgent {agent}")
    )


async def test_identities_only_signs_through_the_agent_for_the_named_key(
    sshd: SSHServer, tmp_path: Path
) -> None:
    """As ssh does: the named file is locked, but the agent holds its key, so the agent signs. (Giving up
    the agent for IdentitiesOnly would leave an encrypted file with no passphrase: nothing to offer.)"""
    locked = _encrypted_copy(sshd.client_key, tmp_path)
    with run_agent() as agent:
        ssh_add(agent, sshd.client_key)
        config = write(tmp_path, _identities_only_config(sshd, locked, agent))
        with trio.fail_after(TIMEOUT):
            async with trissh.connect("alias", config=config) as conn:
                assert await echo(conn) == b"ok\n"


async def test_identities_only_offers_none_of_the_agents_other_keys(sshd: SSHServer, tmp_path: Path) -> None:
    """The agent's ECDSA key would be accepted by the server, but it is not the named one."""
    locked = _encrypted_copy(sshd.client_key, tmp_path)
    with run_agent() as agent:
        ssh_add(agent, sshd.client_keys["ecdsa"])
        config = write(tmp_path, _identities_only_config(sshd, locked, agent))
        with trio.fail_after(TIMEOUT), pytest.raises(trissh.PermissionDenied):
            async with trissh.connect("alias", config=config):
                pass
        # The same set-up without IdentitiesOnly gets in with the agent's key:
        config.write_text(config.read_text().replace("IdentitiesOnly yes", "IdentitiesOnly no"))
        with trio.fail_after(TIMEOUT):
            async with trissh.connect("alias", config=config) as conn:
                assert await echo(conn) == b"ok\n"


@pytest.mark.parametrize("spelling", ["path", "variable"])
async def test_forward_agent_naming_an_agent_forwards_that_one(
    sshd: SSHServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    """``ForwardAgent /socket`` or ``$VAR``: that agent is lent to the server, though the login itself
    uses no agent (``IdentityAgent none``)."""
    with run_agent() as agent:
        ssh_add(agent, sshd.client_keys["ecdsa"])
        monkeypatch.setenv("TRISSH_TEST_AGENT", str(agent))
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
        value = str(agent) if spelling == "path" else "$TRISSH_TEST_AGENT"
        config = write(tmp_path, alias_config(sshd, f"  ForwardAgent {value}"))
        with trio.fail_after(TIMEOUT):
            async with trissh.connect("alias", config=config) as conn:
                listed = await conn.run("ssh-add -l -E sha256", check=True)
    fingerprint = trissh.read_public_key(f"{sshd.client_keys['ecdsa']}.pub").fingerprint
    assert fingerprint in listed.stdout.decode()
