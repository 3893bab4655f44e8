"""Forwards written as ssh writes them (``-L``, ``-R``, ``-D`` and the config's LocalForward,
RemoteForward, DynamicForward), opened on a connection for as long as a block runs.

As with ssh (``ExitOnForwardFailure no``), a forward that cannot be set up is reported and the others
go on; a spec that cannot be parsed is an error before anything is opened.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from .._errors import SSHError

if TYPE_CHECKING:
    from .._config._values import Forward
    from ..connection import SSHConnection

__all__ = ["open_forwards", "parse_forwards"]

log = logging.getLogger("trissh.forwarding")


class ForwardSpecError(SSHError, ValueError):
    """A forward spec ssh would refuse."""


def parse_forwards(specs: Sequence[str], *, remote: bool = False, dynamic: bool = False) -> list[Forward]:
    from .._config._values import parse_forward

    forwards = []
    for spec in specs:
        try:
            forwards.append(parse_forward(spec, dynamic, remote))
        except ValueError as exc:
            kind = "-D" if dynamic else "-R" if remote else "-L"
            raise ForwardSpecError(f"bad forwarding specification {kind} {spec!r}: {exc}") from None
    return forwards


def _listen_host(host: str | None) -> str:
    # No address: the loopback interface only (ssh's GatewayPorts no); "*": every interface.
    if host is None:
        return "localhost"
    return "" if host == "*" else host


@contextlib.asynccontextmanager
async def open_forwards(
    conn: SSHConnection,
    local: Sequence[str | Forward] = (),
    remote: Sequence[str | Forward] = (),
    dynamic: Sequence[str | Forward] = (),
) -> AsyncIterator[None]:
    """Open every forward for the block; one that fails is logged as a warning (ssh's default)."""

    def parsed(items: Sequence[str | Forward], **kind: bool) -> list[Forward]:
        return [
            f for item in items for f in (parse_forwards([item], **kind) if isinstance(item, str) else [item])
        ]

    locals_, remotes, dynamics = parsed(local), parsed(remote, remote=True), parsed(dynamic, dynamic=True)
    async with contextlib.AsyncExitStack() as stack:
        for forward in locals_:
            await _open(stack, conn, forward, "local")
        for forward in remotes:
            await _open(stack, conn, forward, "remote")
        for forward in dynamics:
            await _open(stack, conn, forward, "dynamic")
        yield


async def _open(stack: contextlib.AsyncExitStack, conn: SSHConnection, f: Forward, kind: str) -> None:
    try:
        if kind == "dynamic":
            if f.listen_path is not None:
                raise ForwardSpecError("a SOCKS forward listens on a port, not a unix socket")
            await stack.enter_async_context(conn.forward_socks(_listen_host(f.listen_host), f.listen_port))
        elif kind == "local":
            if f.listen_path is not None and f.connect_path is not None:
                await stack.enter_async_context(conn.forward_local_unix(f.listen_path, f.connect_path))
            elif f.listen_path is None and f.connect_path is None and f.connect_host is not None:
                await stack.enter_async_context(
                    conn.forward_local_port(
                        _listen_host(f.listen_host), f.listen_port, f.connect_host, f.connect_port
                    )
                )
            else:
                raise ForwardSpecError("forwarding between a port and a unix socket is not supported")
        else:
            if f.connect_path is not None:
                destination: object = f.connect_path
            elif f.connect_host is not None and f.connect_host != "socks":
                destination = (f.connect_host, f.connect_port)
            else:
                raise ForwardSpecError("remote dynamic (SOCKS) forwarding is not supported")
            if f.listen_path is not None:
                await stack.enter_async_context(conn.forward_remote_unix(f.listen_path, destination))  # type: ignore[arg-type]
            else:
                await stack.enter_async_context(
                    conn.forward_remote_port(_listen_host(f.listen_host), f.listen_port, destination)  # type: ignore[arg-type]
                )
    except SSHError as exc:
        log.warning("%s forwarding %s failed: %s", kind, f.format(kind == "dynamic"), exc)
