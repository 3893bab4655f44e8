"""Shared fixtures: OpenSSH, Dropbear and AsyncSSH servers, fault-injecting proxies, and ``--run-slow``."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
import trio
from hypothesis import settings
from proxy import Fault, Handler, Proxy, ProxyFactory, serve_proxy
from servers import (
    AsyncSSHServerFactory,
    InteropServer,
    ServerUnavailable,
    start_asyncssh_server,
    start_dropbear,
)

from trissh.testing import SSHServer, start_sshd

# Timing belongs in benchmarks, not tests: no per-example deadline, so a busy
# machine cannot fail a property test.
settings.register_profile("trissh", deadline=None)
settings.load_profile("trissh")

# Every user key type, so auth tests can pick one; generated once per session.
SESSION_USER_KEY_TYPES = ("ed25519", "ecdsa", "rsa", "ed25519-encrypted")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow", action="store_true", default=False, help="also run @pytest.mark.slow tests"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip_slow = pytest.mark.skip(reason="slow test: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def sshd() -> Iterator[SSHServer]:
    """A throwaway OpenSSH server on 127.0.0.1, shared by the whole session (keys: every user key type)."""
    with start_sshd(user_key_types=SESSION_USER_KEY_TYPES) as server:
        yield server


@pytest.fixture(scope="session")
def dropbear() -> Iterator[InteropServer]:
    """A throwaway Dropbear on 127.0.0.1 for the session (``tests/servers.py``); skips where it cannot run.

    It finds its user's home through a bind mount over /etc/passwd, which ``password_user()`` (useradd
    replaces the file) detaches: tests that may run after those start a Dropbear of their own."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(start_dropbear())
        except ServerUnavailable as exc:
            pytest.skip(str(exc))
        yield server


@pytest.fixture(scope="session")
def asyncssh_server() -> Iterator[InteropServer]:
    """An AsyncSSH server offering every algorithm AsyncSSH has (GSS aside), shared by the session."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(start_asyncssh_server())
        except ServerUnavailable as exc:
            pytest.skip(str(exc))
        yield server


@pytest.fixture
def make_asyncssh_server() -> Iterator[AsyncSSHServerFactory]:
    """Start AsyncSSH servers with chosen algorithms that live until the end of the test.

    Example::

        def test_x(make_asyncssh_server):
            server = make_asyncssh_server(kex_algs=["curve25519-sha256"])
    """
    with contextlib.ExitStack() as stack:

        def make(
            *,
            kex_algs: Sequence[str] | None = None,
            encryption_algs: Sequence[str] | None = None,
            mac_algs: Sequence[str] | None = None,
            signature_algs: Sequence[str] | None = None,
            compression_algs: Sequence[str] | None = None,
            auth_args: Sequence[str] = (),
        ) -> InteropServer:
            try:
                return stack.enter_context(
                    start_asyncssh_server(
                        kex_algs=kex_algs,
                        encryption_algs=encryption_algs,
                        mac_algs=mac_algs,
                        signature_algs=signature_algs,
                        compression_algs=compression_algs,
                        auth_args=auth_args,
                    )
                )
            except ServerUnavailable as exc:
                pytest.skip(str(exc))

        yield make


@pytest.fixture
async def make_proxy() -> AsyncIterator[ProxyFactory]:
    """Start loopback proxies (see ``tests/proxy.py``) that live until the end of the test.

    Example::

        async def test_cut(sshd, make_proxy):
            proxy = await make_proxy((sshd.host, sshd.port), fault=CutAfter(65536))
            ... connect to proxy.host, proxy.port ...
    """
    async with trio.open_nursery() as nursery:

        async def make(
            target: tuple[str, int] | None = None,
            *,
            fault: Fault | None = None,
            upstream_fault: Fault | None = None,
            handler: Handler | None = None,
        ) -> Proxy:
            # The proxy runs in this fixture's nursery (not the caller's task), so it outlives the call and
            # stops when the fixture is torn down.
            proxy: Proxy = await nursery.start(
                functools.partial(
                    serve_proxy, target, fault=fault, upstream_fault=upstream_fault, handler=handler
                )
            )
            return proxy

        yield make
        nursery.cancel_scope.cancel()
