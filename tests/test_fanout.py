"""trissh.run_on_hosts and ``trissh run`` against the real sshd, reached as many hosts through proxies.

The session sshd listens on 127.0.0.1 only (other 127/8 addresses are refused), so each "host" is a
loopback proxy of ``tests/proxy.py`` on a port of its own, and one known_hosts text lists the sshd's host
keys under every proxy's ``[127.0.0.1]:port``. Proxies that hold each accepted connection until the test
releases it make concurrency and completion order observable without timing: the number of held
connections, once every task is blocked, is the number of hosts connecting at once.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from proxy import Proxy, ProxyFactory
from test_integration import trissh_tasks

import trissh
from trissh._cli.run_hosts import EXIT_FAILED, EXIT_USAGE, run_hosts_main
from trissh.fanout import HostResult, HostSpec, HostTimeout, parse_host, run_on_hosts
from trissh.testing import SSHServer

#: Every test's own bound (pytest-timeout is the net behind it); only a hang reaches it.
GUARD = 60


def known_hosts_text(server: SSHServer, ports: list[int]) -> str:
    """The server's host key lines, once for each port (the proxies all lead to it)."""
    lines = server.known_hosts.read_text().splitlines()
    return "".join(
        line.replace(f"[{server.host}]:{server.port} ", f"[127.0.0.1]:{port} ") + "\n"
        for port in ports
        for line in lines
    )


def options(server: SSHServer, ports: list[int]) -> dict[str, Any]:
    return {
        "username": server.username,
        "client_keys": [server.client_key],
        "known_hosts": trissh.KnownHosts.from_text(known_hosts_text(server, ports)),
        "agent_path": None,  # the developer's own ssh-agent must not change what a test sees
    }


def closed_port() -> int:
    """A loopback port nothing listens on (bound and closed: refused until someone takes it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def forwarding_proxies(make_proxy: ProxyFactory, server: SSHServer, count: int) -> list[Proxy]:
    return [await make_proxy((server.host, server.port)) for _ in range(count)]


@dataclass
class Gate:
    """Proxies that hold every accepted connection until :meth:`release`, then forward it to the sshd."""

    target: tuple[str, int]
    waiting: list[tuple[int, trio.Event]] = field(default_factory=list)  # (proxy port, its release)
    accepted: int = 0
    changed: trio.Event = field(default_factory=trio.Event)

    def handler(self, port: int) -> Callable[[trio.SocketStream], Awaitable[None]]:
        async def hold(client: trio.SocketStream) -> None:
            release = trio.Event()
            self.waiting.append((port, release))
            self.accepted += 1
            self.changed.set()
            await release.wait()
            async with await trio.open_tcp_stream(*self.target) as upstream, trio.open_nursery() as nursery:

                async def pump(source: trio.abc.Stream, sink: trio.abc.Stream) -> None:
                    try:
                        async for chunk in source:
                            await sink.send_all(chunk)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        pass
                    nursery.cancel_scope.cancel()  # one side is done: so is the connection

                nursery.start_soon(pump, client, upstream)
                nursery.start_soon(pump, upstream, client)

        return hold

    async def wait_accepted(self, count: int) -> None:
        """Wait until ``count`` connections were accepted, then until everything else has settled."""
        while self.accepted < count:
            self.changed = trio.Event()
            await self.changed.wait()
        await trio.testing.wait_all_tasks_blocked()

    def release(self, port: int) -> None:
        for i, (held_port, event) in enumerate(self.waiting):
            if held_port == port:
                del self.waiting[i]
                event.set()
                return
        raise AssertionError(f"no connection held on port {port}")


async def gated_proxies(make_proxy: ProxyFactory, server: SSHServer, count: int) -> tuple[Gate, list[int]]:
    gate = Gate((server.host, server.port))
    ports = []
    for _ in range(count):
        # The port is known only once the proxy listens: the handler looks it up through a cell.
        cell: list[int] = []

        async def handler(client: trio.SocketStream, cell: list[int] = cell) -> None:
            await gate.handler(cell[0])(client)

        proxy = await make_proxy(handler=handler)
        cell.append(proxy.port)
        ports.append(proxy.port)
    return gate, ports


@pytest.fixture
async def hang_port(make_proxy: ProxyFactory) -> AsyncIterator[int]:
    """A listener that accepts and never says anything (no SSH version line, ever)."""

    async def silent(client: trio.SocketStream) -> None:
        await trio.sleep_forever()

    proxy = await make_proxy(handler=silent)
    yield proxy.port


# --- host strings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("web1", HostSpec("web1")),
        ("web1:2222", HostSpec("web1", 2222)),
        ("admin@web1", HostSpec("web1", None, "admin")),
        ("admin@web1:22", HostSpec("web1", 22, "admin")),
        ("a@b@web1", HostSpec("web1", None, "a@b")),
        ("[::1]:2200", HostSpec("::1", 2200)),
        ("root@[fe80::1%eth0]", HostSpec("fe80::1%eth0", None, "root")),
        ("::1", HostSpec("::1")),
        (" web1 ", HostSpec("web1")),
    ],
)
def test_parse_host(text: str, spec: HostSpec) -> None:
    assert parse_host(text) == spec


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "no host name"),
        ("web1:", "port must be"),
        ("web1:0", "port must be"),
        ("web1:65536", "port must be"),
        ("web1:ssh", "port must be"),
        ("web1:+22", "port must be"),
        ("@web1", "empty user name"),
        ("user@", "no host name"),
        ("[::1", "'[' without ']'"),
        ("[::1]x", "only ':port'"),
        (":22", "no host name"),
        ("we b1", "space"),
    ],
)
def test_parse_host_refuses(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_host(text)


async def test_bad_host_string_raises_before_anything_connects(
    sshd: SSHServer, make_proxy: ProxyFactory
) -> None:
    (proxy,) = await forwarding_proxies(make_proxy, sshd, 1)
    for hosts, kwargs in [
        ([f"127.0.0.1:{proxy.port}", "web1:99999"], {}),
        ([f"127.0.0.1:{proxy.port}"], {"limit": 0}),
        ([f"127.0.0.1:{proxy.port}"], {"timeout": -1}),
        ([f"127.0.0.1:{proxy.port}"], {"keepalive_interval": -1}),  # connect()'s own check, up front
    ]:
        with trio.fail_after(GUARD), pytest.raises(ValueError):
            async with run_on_hosts(hosts, "true", **options(sshd, [proxy.port]), **kwargs):
                pytest.fail("the block must not run")
    assert proxy.connections == 0


# --- the library ---------------------------------------------------------------------------------------


async def test_fifty_hosts_one_hanging_one_refused(
    sshd: SSHServer, make_proxy: ProxyFactory, hang_port: int
) -> None:
    """Every good host answers; the silent one times out in connect, the closed port is refused, and
    neither stops the others. limit=10: the test sshd's MaxStartups is raised, but 10 keeps 2 cores calm."""
    proxies = await forwarding_proxies(make_proxy, sshd, 50)
    refused = closed_port()
    good = [f"127.0.0.1:{proxy.port}" for proxy in proxies]
    hosts = [f"127.0.0.1:{hang_port}", *good, f"127.0.0.1:{refused}"]
    with trio.fail_after(GUARD):
        async with run_on_hosts(
            hosts,
            "echo $((6 * 7)) from $USER",
            limit=10,
            connect_timeout=5,
            **options(sshd, [p.port for p in proxies]),
        ) as results:
            assert len(results) == 52
            seen = [item async for item in results]
    outcomes = dict(seen)
    assert sorted(outcomes) == sorted(hosts) and len(seen) == 52
    for host in good:
        result = outcomes[host]
        assert isinstance(result, trissh.CompletedProcess), (host, result)
        assert (result.returncode, result.stdout, result.stderr) == (
            0,
            f"42 from {sshd.username}\n".encode(),
            b"",
        )
    hang = outcomes[f"127.0.0.1:{hang_port}"]
    assert isinstance(hang, HostTimeout)
    assert (hang.phase, hang.bound, hang.seconds) == ("connect", "connect_timeout", 5)
    assert str(hang).startswith("connect timed out after 5 s")
    assert "version line" in str(hang)  # the step connect() was at
    assert isinstance(hang.__cause__, trissh.ConnectTimeout)
    closed = outcomes[f"127.0.0.1:{refused}"]
    assert isinstance(closed, trissh.ConnectionLost) and "Connection refused" in str(closed)
    assert all(proxy.connections == 1 for proxy in proxies)
    assert trissh_tasks() == []


async def test_limit_bounds_hosts_at_once_and_results_come_as_they_complete(
    sshd: SSHServer, make_proxy: ProxyFactory
) -> None:
    """With limit=3 and 8 held hosts, exactly 3 are ever connecting; each released host is the next result."""
    gate, ports = await gated_proxies(make_proxy, sshd, 8)
    hosts = [f"127.0.0.1:{port}" for port in ports]
    order = []
    with trio.fail_after(GUARD):
        async with run_on_hosts(hosts, "echo ok", limit=3, **options(sshd, ports)) as results:
            for done in range(8):
                await gate.wait_accepted(min(8, 3 + done))
                assert len(gate.waiting) == min(3, 8 - done), gate.waiting
                assert gate.accepted == min(8, 3 + done)
                # The newest held host goes first: completion order, not the order given.
                port = gate.waiting[-1][0]
                gate.release(port)
                host, result = await results.__anext__()
                assert host == f"127.0.0.1:{port}"
                assert isinstance(result, trissh.CompletedProcess) and result.stdout == b"ok\n"
                order.append(hosts.index(host))
            with pytest.raises(StopAsyncIteration):
                await results.__anext__()
    assert order != sorted(order)  # hosts started in order, finished in another
    assert trissh_tasks() == []


async def test_breaking_out_cancels_the_rest_cleanly(sshd: SSHServer, make_proxy: ProxyFactory) -> None:
    gate, ports = await gated_proxies(make_proxy, sshd, 6)
    hosts = [f"127.0.0.1:{port}" for port in ports]
    with trio.fail_after(GUARD):
        async with run_on_hosts(hosts, "echo ok", limit=3, **options(sshd, ports)) as results:
            await gate.wait_accepted(3)
            gate.release(gate.waiting[0][0])
            async for _, result in results:
                assert isinstance(result, trissh.CompletedProcess)
                await gate.wait_accepted(4)  # the freed slot went to the fourth host
                break
        # Out of the block: the two held hosts were cancelled, the other three never started.
        assert trissh_tasks() == []
        await trio.testing.wait_all_tasks_blocked()
        assert gate.accepted == 4  # none started after the break


async def test_an_error_in_the_block_comes_out_as_itself(sshd: SSHServer, make_proxy: ProxyFactory) -> None:
    gate, ports = await gated_proxies(make_proxy, sshd, 3)
    with trio.fail_after(GUARD), pytest.raises(KeyError, match="mine"):
        async with run_on_hosts([f"127.0.0.1:{p}" for p in ports], "true", **options(sshd, ports)):
            await gate.wait_accepted(3)
            raise KeyError("mine")
    assert trissh_tasks() == []


async def test_overall_deadline_cancels_the_whole_run(sshd: SSHServer, make_proxy: ProxyFactory) -> None:
    """A cancel scope around the run bounds it all: no per-host timeout here, every host held forever."""
    gate, ports = await gated_proxies(make_proxy, sshd, 4)
    received = []
    with trio.fail_after(GUARD):
        with trio.move_on_after(GUARD / 2) as deadline:
            async with run_on_hosts(
                [f"127.0.0.1:{p}" for p in ports],
                "true",
                limit=2,
                connect_timeout=None,
                **options(sshd, ports),
            ) as results:
                await gate.wait_accepted(2)
                # The overall deadline, brought forward now that two hosts are held (and two wait for a slot).
                deadline.deadline = trio.current_time() + 0.2
                async for item in results:
                    received.append(item)
        assert deadline.cancelled_caught
        assert received == [] and gate.accepted == 2
        assert trissh_tasks() == []


async def test_timeouts_nest_and_say_which_ran_out(
    sshd: SSHServer, make_proxy: ProxyFactory, hang_port: int
) -> None:
    (proxy,) = await forwarding_proxies(make_proxy, sshd, 1)
    good, hang = f"127.0.0.1:{proxy.port}", f"127.0.0.1:{hang_port}"
    with trio.fail_after(GUARD):
        # The host's timeout is the sooner bound: it fires in connect for the silent host, and in the
        # command for the good one (connect_timeout, the later one, never fires). 5 s: ample for the
        # good host's connect (~0.1 s) even on a busy machine, so its timeout lands in the command.
        async with run_on_hosts(
            [hang, good], "sleep 60", timeout=5, connect_timeout=30, **options(sshd, [proxy.port])
        ) as results:
            outcomes = dict(await results.collect())
    late, slow = outcomes[hang], outcomes[good]
    assert isinstance(late, HostTimeout) and isinstance(slow, HostTimeout)
    assert (late.phase, late.bound, late.seconds, str(late)) == (
        "connect",
        "timeout",
        5,
        "connect timed out after 5 s",
    )
    assert (slow.phase, slow.bound, str(slow)) == ("command", "timeout", "command timed out after 5 s")


async def test_collect_gives_input_order(sshd: SSHServer, make_proxy: ProxyFactory) -> None:
    proxies = await forwarding_proxies(make_proxy, sshd, 4)
    hosts = [f"127.0.0.1:{p.port}" for p in proxies]
    with trio.fail_after(GUARD):
        async with run_on_hosts(
            hosts, ["printf", "%s", "a b"], **options(sshd, [p.port for p in proxies])
        ) as r:
            items = await r.collect()
    assert [item.host for item in items] == hosts and [item.position for item in items] == [0, 1, 2, 3]
    assert all(
        isinstance(item.result, trissh.CompletedProcess) and item.result.stdout == b"a b" for item in items
    )


async def test_errors_not_of_a_host_end_the_run_bare(sshd: SSHServer, tmp_path: Path) -> None:
    """A known_hosts file named but missing is the caller's mistake: FileNotFoundError, not a group."""
    outcomes: list[HostResult] = []
    with trio.fail_after(GUARD):
        try:
            async with run_on_hosts(
                [f"{sshd.host}:{sshd.port}"] * 3,
                "true",
                username=sshd.username,
                client_keys=[sshd.client_key],
                known_hosts=tmp_path / "missing",
                agent_path=None,
            ) as results:
                outcomes = await results.collect()
        except FileNotFoundError as exc:
            assert "missing" in str(exc)
        else:
            pytest.fail(f"no FileNotFoundError; the hosts' results: {outcomes!r}")
    assert trissh_tasks() == []


# --- the command line ----------------------------------------------------------------------------------


async def cli_setup(
    sshd: SSHServer, make_proxy: ProxyFactory, tmp_path: Path, count: int
) -> tuple[list[str], list[str]]:
    """``count`` host strings and the common options (key, known_hosts written for them, user)."""
    proxies = await forwarding_proxies(make_proxy, sshd, count)
    known = tmp_path / "known_hosts"
    known.write_text(known_hosts_text(sshd, [p.port for p in proxies]))
    base = ["-i", str(sshd.client_key), "--known-hosts", str(known), "-l", sshd.username]
    return [f"127.0.0.1:{p.port}" for p in proxies], base


async def test_cli_prefixes_each_line_with_its_host(
    sshd: SSHServer, make_proxy: ProxyFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts, base = await cli_setup(sshd, make_proxy, tmp_path, 3)
    with trio.fail_after(GUARD):
        status = await run_hosts_main(
            [*base, "-H", ",".join(hosts), "-j", "2", "--", "echo one; echo err >&2; printf two"]
        )
    out, err = capsys.readouterr()
    assert status == 0
    assert sorted(out.splitlines()) == sorted(f"{h}: {w}" for h in hosts for w in ("one", "two"))
    for host in hosts:  # each host's lines in its own order
        assert out.index(f"{host}: one") < out.index(f"{host}: two")
        assert f"{host}: err\n" in err
    assert "exit 0" in err and "status" in err
    assert "\x1b" not in out + err  # not a terminal: no ANSI codes


async def test_cli_group_prints_blocks_and_exit_status(
    sshd: SSHServer, make_proxy: ProxyFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts, base = await cli_setup(sshd, make_proxy, tmp_path, 2)
    with trio.fail_after(GUARD):
        status = await run_hosts_main(
            [*base, "--group", "-H", ",".join(hosts), "--", "echo a; echo b; exit 3"]
        )
    out, err = capsys.readouterr()
    assert status == EXIT_FAILED
    for host in hosts:
        assert f"=== {host} ===\na\nb\n" in out
    assert err.count("exit 3") == 2
    assert "\x1b" not in out + err


async def test_cli_hosts_file_and_a_failing_host(
    sshd: SSHServer, make_proxy: ProxyFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hosts, base = await cli_setup(sshd, make_proxy, tmp_path, 2)
    refused = f"127.0.0.1:{closed_port()}"
    listing = tmp_path / "hosts"
    listing.write_text(f"# web servers\n{hosts[0]}\n\n   {hosts[1]}  # the second\n#{refused}\n")
    with trio.fail_after(GUARD):
        status = await run_hosts_main([*base, "--hosts-file", str(listing), "--", "echo hi"])
    out, err = capsys.readouterr()
    assert status == 0
    assert sorted(out.splitlines()) == sorted(f"{h}: hi" for h in hosts)
    listing.write_text(f"{hosts[0]}\n{refused}\n")
    with trio.fail_after(GUARD):
        status = await run_hosts_main([*base, "--hosts-file", str(listing), "--", "echo hi"])
    out, err = capsys.readouterr()
    assert status == EXIT_FAILED
    assert out == f"{hosts[0]}: hi\n"
    # The summary, plain text in a pipe: one line per host, its error whole.
    assert any(
        line.split()[:2] == [refused, "error:"] and "Connection refused" in line for line in err.splitlines()
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--", "true"], "no hosts"),
        (["-H", "web1"], "a command is needed"),
        (["-H", "web1", "--"], "a command is needed"),
        (["-H", "web1:x", "--", "true"], "port must be"),
        (["-H", "web1", "-j", "0", "--", "true"], "-j must be"),
        (["-H", "web1", "--timeout", "0", "--", "true"], "--timeout must be"),
        (["-H", "web1", "--no-such-option", "--", "true"], "unrecognized"),
        (["--hosts-file", "/nonexistent/hosts", "--", "true"], "cannot read hosts file"),
    ],
)
async def test_cli_usage_errors_exit_255(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with trio.fail_after(GUARD):
        status = await run_hosts_main(argv)
    out, err = capsys.readouterr()
    assert status == EXIT_USAGE
    assert says in err and "usage: trissh run" in err and out == ""


async def test_cli_config_file_gives_hostname_port_and_user(
    sshd: SSHServer, make_proxy: ProxyFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """-F: host aliases resolved by the ssh_config (HostName, Port, User); output labelled by the alias."""
    hosts, _ = await cli_setup(sshd, make_proxy, tmp_path, 2)
    config = tmp_path / "ssh_config"
    config.write_text(
        "".join(
            f"Host web{i}\n  HostName 127.0.0.1\n  Port {host.rsplit(':', 1)[1]}\n  User {sshd.username}\n"
            for i, host in enumerate(hosts)
        )
    )
    argv = ["-i", str(sshd.client_key), "--known-hosts", str(tmp_path / "known_hosts"), "-F", str(config)]
    with trio.fail_after(GUARD):
        status = await run_hosts_main([*argv, "-H", "web0,web1", "--", "echo hi"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert sorted(out.splitlines()) == ["web0: hi", "web1: hi"]
