"""Real, throwaway SSH servers for tests: a pytest plugin and the functions under it.

* :func:`start_sshd` runs the system's OpenSSH sshd on a free port of 127.0.0.1 with fresh host and user keys
  in a temporary directory, and yields a :class:`SSHServer`; everything goes away at the end of the block.
* :func:`password_user` makes a throwaway local account with a password (root only).
* :mod:`trissh.testing.plugin` is a pytest plugin, registered through the ``pytest11`` entry point, so it is
  active wherever trissh is installed: fixtures ``ssh_server``, ``ssh_server_factory`` and ``ssh_connection``.

This package imports nothing else from trissh at import time, so it works even when the client is broken.
"""

from __future__ import annotations

from ._accounts import PasswordUser, password_user
from ._sshd import (
    ENCRYPTED_KEY_PASSPHRASE,
    HOST_KEY_TYPES,
    USER_KEY_TYPES,
    SSHServer,
    ToolMissing,
    sshd_path,
    start_sshd,
)

__all__ = [
    "ENCRYPTED_KEY_PASSPHRASE",
    "HOST_KEY_TYPES",
    "USER_KEY_TYPES",
    "PasswordUser",
    "SSHServer",
    "ToolMissing",
    "password_user",
    "sshd_path",
    "start_sshd",
]
