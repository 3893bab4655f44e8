"""The pytest plugin: a real, throwaway OpenSSH server for a test suite, with no ``conftest.py``.

Registered through the ``pytest11`` entry point, so it is active wherever trissh is installed
(``pip install "trissh[test]"`` adds pytest and pytest-trio). Fixtures:

``ssh_server``
    One sshd for the whole session (:class:`~trissh.testing.SSHServer`): fresh host keys (ed25519 and
    ECDSA: RSA would take up to seconds to generate) and user keys, a free port on 127.0.0.1, the
    current user as the login, a clean ``HOME`` for commands. It starts in about 0.1 s.
``ssh_server_factory``
    More servers for one test, each with its own ``sshd_config`` lines, and optionally a throwaway account
    with a password; all are stopped and their directories removed when the test ends, pass or fail.
``ssh_connection``
    For pytest-trio tests: an open :class:`trissh.SSHConnection` to ``ssh_server``.

Where sshd or ssh-keygen is not installed, the fixtures skip the test, saying which package to install; a
server that cannot start (its config refused, no free port) fails the test with the tail of sshd's log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Final

import pytest

from ._accounts import password_user
from ._sshd import SSHServer, ToolMissing, start_sshd

if TYPE_CHECKING:
    from trissh import SSHConnection

__all__ = ["SSHServerFactory", "ssh_connection", "ssh_server", "ssh_server_factory"]

#: Host keys of the plugin's servers: no RSA, whose generation alone can take over a second.
_HOST_KEY_TYPES: Final = ("ssh-ed25519", "ecdsa-sha2-nistp256")

# The Host names (SSHServer.alias) of the servers this process makes: ssh-server, then -2, -3...
_numbers = itertools.count(2)


@contextlib.contextmanager
def _server_or_skip(
    *, sshd_config: Sequence[str], user_key_types: Sequence[str], alias: str
) -> Iterator[SSHServer]:
    """:func:`start_sshd`, with a missing tool as a skip and a failed start as a plain failure."""
    started = False
    try:
        with start_sshd(
            extra_config=sshd_config, user_key_types=user_key_types, host_key_types=_HOST_KEY_TYPES
        ) as server:
            started = True
            yield dataclasses.replace(server, alias=alias)
    except ToolMissing as exc:
        pytest.skip(f"trissh.testing: {exc}")
    except RuntimeError as exc:
        if started:
            raise
        pytest.fail(f"trissh.testing: could not start sshd: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def ssh_server() -> Iterator[SSHServer]:
    """A throwaway OpenSSH sshd for the whole test session; ``.connect()`` logs in to it."""
    with _server_or_skip(sshd_config=(), user_key_types=("ed25519",), alias="ssh-server") as server:
        yield server


class SSHServerFactory:
    """Starts servers for one test (the ``ssh_server_factory`` fixture); each stops when the test ends."""

    def __init__(self, stack: contextlib.ExitStack) -> None:
        self._stack = stack

    def __call__(
        self,
        sshd_config: Sequence[str] = (),
        *,
        password: bool = False,
        user_key_types: Sequence[str] = ("ed25519",),
    ) -> SSHServer:
        """Start another throwaway sshd and return it, running.

        Args:
            sshd_config: ``sshd_config`` lines, which win over the harness's defaults (``ForceCommand``,
                ``Subsystem``, ``AllowTcpForwarding no``, ``Match`` blocks...). ``ListenAddress``, ``Port``,
                ``PidFile`` and ``AuthorizedKeysFile`` are the harness's own.
            password: log in as a throwaway local account with a generated password (:attr:`SSHServer.user`,
                :attr:`SSHServer.password`) and turn on ``PasswordAuthentication``; ``.connect()`` then
                offers the password and no key. Only root can make accounts: the test is skipped otherwise.
            user_key_types: the user keys to generate (``"ed25519"``, ``"ecdsa"``, ``"rsa"``,
                ``"ed25519-encrypted"``); all are authorized, and :attr:`SSHServer.client_keys` has them.
        """
        alias = f"ssh-server-{next(_numbers)}"
        if not password:
            return self._stack.enter_context(
                _server_or_skip(sshd_config=sshd_config, user_key_types=user_key_types, alias=alias)
            )
        if os.geteuid() != 0:
            pytest.skip("trissh.testing: ssh_server_factory(password=True) needs root to make an account")
        # A name per server: password_user() serialises runs that use one name, and two servers of one
        # test must not wait for each other.
        account = self._stack.enter_context(password_user(f"trissh-pw-{alias.rsplit('-', 1)[1]}"))
        server = self._stack.enter_context(
            _server_or_skip(
                sshd_config=[*sshd_config, "PasswordAuthentication yes"],
                user_key_types=user_key_types,
                alias=alias,
            )
        )
        # sshd reads authorized_keys as the user, who cannot enter the harness's private directory: this
        # account logs in by password only.
        return dataclasses.replace(server, username=account.name, password=account.password)


@pytest.fixture
def ssh_server_factory() -> Iterator[SSHServerFactory]:
    """Call it to start more throwaway servers in a test: ``ssh_server_factory(["ForceCommand echo hi"])``."""
    with contextlib.ExitStack() as stack:
        yield SSHServerFactory(stack)


@pytest.fixture
async def ssh_connection(ssh_server: SSHServer) -> AsyncIterator[SSHConnection]:
    """An open :class:`trissh.SSHConnection` to ``ssh_server``, for pytest-trio tests; closed afterwards."""
    async with ssh_server.connect() as conn:
        yield conn
