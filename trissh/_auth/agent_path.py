"""Where the ssh-agent is: ``$SSH_AUTH_SOCK``.

Apart from :mod:`trissh._auth.agent` (which re-exports both names) so that
deciding whether there is an agent at all does not import the agent client.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ["AUTH_SOCK_ENV", "default_agent_path"]

#: The environment variable naming the agent's socket.
AUTH_SOCK_ENV: Final = "SSH_AUTH_SOCK"


def default_agent_path() -> str | None:
    """The agent socket named by ``$SSH_AUTH_SOCK``, or None when it is unset or empty."""
    return os.environ.get(AUTH_SOCK_ENV) or None
