"""Running a command on the first of several servers that answers, and moving on when one dies.

The code under test in ``test_failover.py``: the kind of code that must cope with a server going away in
the middle of a command, which the fixture's ``.kill()`` makes easy to test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager

import trissh

Connector = Callable[[], AbstractAsyncContextManager[trissh.SSHConnection]]


class AllServersFailed(Exception):
    """No server ran the command; ``errors`` has each server's error, in order."""

    def __init__(self, errors: Sequence[trissh.SSHError]) -> None:
        super().__init__(f"all {len(errors)} servers failed: " + "; ".join(map(str, errors)))
        self.errors = list(errors)


async def run_with_failover(servers: Sequence[Connector], command: str) -> tuple[int, bytes]:
    """Run ``command`` on ``servers[0]``; if that server cannot be reached or dies during the command,
    on the next one. Returns the index of the server that ran it, and its output."""
    errors: list[trissh.SSHError] = []
    for index, connect in enumerate(servers):
        try:
            async with connect() as conn:
                result = await conn.run(command, check=True)
        except (trissh.ConnectionLost, trissh.DisconnectError) as exc:
            errors.append(exc)  # unreachable, or gone mid-command: try the next
            continue
        return index, result.stdout
    raise AllServersFailed(errors)
