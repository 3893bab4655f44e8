"""Jump hosts: OpenSSH's ``ProxyJump`` syntax, and the chain of connections it describes.

Theory of operation
-------------------
``connect(host, proxy_jump="alice@jump1:2222,jump2")`` reaches ``host`` the way
``ssh -J`` does: connect to ``jump1``; through it, open a ``direct-tcpip``
channel to ``jump2:22`` and run a second SSH connection over that channel
(``connect(..., tunnel=...)``); through that one, reach ``host``. Each hop is a
complete connection of its own: its own key exchange, its host key checked
against known_hosts under *its* name and port, its own authentication. A
compromised jump host can therefore refuse to carry the traffic, but cannot
read or change it, nor impersonate the next hop.

This module owns two rules and nothing else:

1. **Parsing** (:func:`parse_proxy_jump`): a comma-separated list of
   ``[user@]host[:port]`` or ``ssh://[user@]host[:port]`` (IPv6 addresses in
   brackets), or ``none`` for no jump, as ssh_config(5) ``ProxyJump`` reads it.
2. **The chain** (:func:`jump_chain`): hops are connected in order, each
   through the previous one, and closed in reverse order when the block ends,
   also on errors and cancellation (an :class:`~contextlib.AsyncExitStack`
   gives exactly that). An error while connecting a hop keeps its type and
   gets the hop named in its message and in its ``hop`` attribute.

What each hop uses, following ssh(1): the jump hosts use their own ``user@``
or else the *local* user name, never the destination's ``username`` (ssh's
``-l`` applies to the destination only). Keys, agent, passphrase source,
known_hosts and host key policy, algorithms and timeouts are the caller's, for
every hop. Two things are the destination's alone: ``password`` (a password
meant for the destination must not be handed to an intermediate host, which
may belong to someone else) and ``forward_agent`` (a jump host gets no access
to the local agent). How one hop is connected is not known here: the caller
passes ``connect_one`` (``trissh._connect._connected``).
"""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final

from ._errors import SSHError

if TYPE_CHECKING:
    from ._connect_options import ConnectOptions
    from .connection import SSHConnection

__all__ = ["MAX_JUMP_HOSTS", "JumpHost", "jump_chain", "parse_proxy_jump"]

#: The most jump hosts one ``proxy_jump`` may name. Each hop is a full SSH
#: connection (tasks, buffers, a channel in the previous hop); real chains
#: have one to three, so a longer list is a mistake rather than a need.
MAX_JUMP_HOSTS: Final = 16


@dataclass(frozen=True, slots=True)
class JumpHost:
    """One hop of a ``proxy_jump`` list.

    Attributes:
        host: the host name or address, as the previous hop resolves it.
        port: the SSH port (22 when not given).
        user: the user name from ``user@``, or None (then the local user name).
    """

    host: str
    port: int = 22
    user: str | None = None
    #: Whether the port was written (``host:2222``); if not, a jump host's config may give one.
    port_given: bool = field(default=False, compare=False)

    @property
    def where(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port}"


def _parse_hop(text: str, spec: str) -> JumpHost:
    def bad(why: str) -> ValueError:
        return ValueError(f"proxy_jump {spec!r}: {why} in {text!r} (expected [user@]host[:port])")

    rest = text
    if rest.startswith("ssh://"):
        rest = rest[len("ssh://") :].removesuffix("/")
    user: str | None = None
    if "@" in rest:
        # The last '@' ends the user name, as ssh(1) reads it (user names may contain '@').
        user, rest = rest.rsplit("@", 1)
        if not user:
            raise bad("empty user name")
    port_text: str | None = None
    if rest.startswith("["):
        host, bracket, after = rest[1:].partition("]")
        if not bracket:
            raise bad("unclosed '['")
        if after:
            if not after.startswith(":"):
                raise bad(f"unexpected {after!r} after ']'")
            port_text = after[1:]
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    elif ":" in rest:
        raise bad("an IPv6 address with a port must be in brackets")
    else:
        host = rest
    if not host:
        raise bad("empty host")
    if any(c.isspace() or c in "/?#" for c in host):
        raise bad(f"invalid host {host!r}")
    port = 22
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise bad(f"port must be 1..65535, got {port_text!r}")
        port = int(port_text)
    return JumpHost(host, port, user, port_given=port_text is not None)


def parse_proxy_jump(spec: str | None) -> tuple[JumpHost, ...]:
    """Parse an OpenSSH ``ProxyJump`` value into its hops, first hop first.

    ``None``, ``""`` and ``"none"`` mean no jump host.

    Raises:
        ValueError: a malformed hop (the message quotes it), an empty entry, or
            more than :data:`MAX_JUMP_HOSTS` hops.
    """
    if spec is None:
        return ()
    if not isinstance(spec, str):
        raise TypeError(f"proxy_jump must be a string like 'user@jump1:22,jump2', got {type(spec).__name__}")
    stripped = spec.strip()
    if stripped in ("", "none"):
        return ()
    parts = [part.strip() for part in stripped.split(",")]
    if any(not part for part in parts):
        raise ValueError(f"proxy_jump {spec!r}: empty entry in the list")
    if len(parts) > MAX_JUMP_HOSTS:
        raise ValueError(f"proxy_jump {spec!r}: {len(parts)} jump hosts, more than {MAX_JUMP_HOSTS}")
    return tuple(_parse_hop(part, spec) for part in parts)


def _hop_options(options: ConnectOptions, hop: JumpHost, tunnel: SSHConnection | None) -> ConnectOptions:
    return replace(
        options,
        host=hop.host,
        port=hop.port,
        username=hop.user or getpass.getuser(),
        password=None,
        forward_agent=False,
        tunnel=tunnel,
        proxy_jump=(),
    )


def name_hop(exc: SSHError, hop: str, label: str) -> None:
    """Put ``label`` in front of ``exc``'s message and record ``hop`` (``host:port``) on it.

    The exception keeps its type and attributes; only its message (``args``)
    changes, so ``except PermissionDenied`` still catches it. An error named already keeps its name:
    a jump host's own ProxyJump chain (from the config) names the hop where it failed, innermost first.
    """
    if hasattr(exc, "hop"):
        return
    exc.hop = hop  # type: ignore[attr-defined]
    message = str(exc)
    exc.args = (f"{label}: {message}",)


@asynccontextmanager
async def jump_chain(
    options: ConnectOptions,
    connect_one: Callable[[ConnectOptions], AbstractAsyncContextManager[SSHConnection]],
    *,
    prepare_hop: Callable[[ConnectOptions, JumpHost], Awaitable[ConnectOptions]] | None = None,
) -> AsyncIterator[SSHConnection]:
    """Connect through ``options.proxy_jump`` hop by hop and yield the connection to the destination.

    Leaving the block closes the destination's connection first, then each
    jump host's, last hop first.

    Raises:
        whatever connecting a hop raises, its message starting with which hop
        (``"at jump host 10.0.0.1:22 (hop 1 of 3): "``) and with a ``hop``
        attribute holding that hop's ``host:port``.
    """
    hops = options.proxy_jump
    total = len(hops) + 1
    async with AsyncExitStack() as stack:
        previous: SSHConnection | None = None
        previous_where = ""
        for number, hop in enumerate(hops, 1):
            try:
                hop_options = _hop_options(options, hop, previous)
                if prepare_hop is not None:  # e.g. the hop's own ssh_config entry
                    hop_options = replace(await prepare_hop(hop_options, hop), tunnel=previous)
                previous = await stack.enter_async_context(connect_one(hop_options))
            except SSHError as exc:
                name_hop(exc, hop.where, f"at jump host {hop.where} (hop {number} of {total})")
                raise
            previous_where = hop.where
        try:
            target = await stack.enter_async_context(
                connect_one(replace(options, tunnel=previous, proxy_jump=()))
            )
        except SSHError as exc:
            name_hop(
                exc,
                options.where,
                f"at {options.where} (hop {total} of {total}, via jump host {previous_where})",
            )
            raise
        yield target
