"""Payload compression: ``zlib`` (RFC 4253 §6.2) and ``zlib@openssh.com`` (OpenSSH PROTOCOL §2.2).

Both are one deflate stream per direction, flushed at the end of every packet
(a partial flush, as OpenSSH does) so that each packet can be inflated as soon
as it arrives, and started afresh after every key exchange that selects them
(RFC 4253 §6.2: the context is initialised after each key exchange). The MAC
and padding apply to the compressed payload. ``zlib`` starts with the new
keys; ``zlib@openssh.com`` waits until authentication has succeeded, so that
nothing an unauthenticated client sends reaches the server's zlib.

A small packet may inflate to far more than it was on the wire: inflation is
bounded by :data:`MAX_INFLATED_PAYLOAD` per packet (OpenSSH's own packet size
limit), and a packet that would inflate past it ends the connection.

This module holds the names and the rules of when a stream starts; the deflate
streams themselves are :mod:`trissh._algorithms.zlib_streams`, imported when a
connection first compresses (most never do; :class:`Compressor` and
:class:`Decompressor` are importable from here too, loading it then).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .zlib_streams import Compressor, Decompressor

__all__ = [
    "COMPRESSION_METHODS",
    "COMPRESSION_WHEN_ASKED",
    "DEFAULT_COMPRESSION",
    "DELAYED",
    "MAX_INFLATED_PAYLOAD",
    "Compressor",
    "Decompressor",
    "compressor_for",
    "decompressor_for",
]

#: Every method we speak; "none" first.
COMPRESSION_METHODS: Final = ("none", "zlib@openssh.com", "zlib")
#: What is offered when the caller does not ask for compression (as OpenSSH's ``Compression no``).
DEFAULT_COMPRESSION: Final = ("none",)
#: What ``compression=True`` offers: OpenSSH's ``Compression yes`` list.
COMPRESSION_WHEN_ASKED: Final = ("zlib@openssh.com", "zlib", "none")
#: Methods that start only after authentication succeeds.
DELAYED: Final = frozenset({"zlib@openssh.com"})
#: The most one packet's payload may inflate to.
MAX_INFLATED_PAYLOAD: Final = 256 * 1024


def _starts_now(method: str, authenticated: bool) -> bool:
    return method == "zlib" or (method in DELAYED and authenticated)


def compressor_for(method: str, authenticated: bool) -> Compressor | None:
    """The stream to start for ``method`` now (None: not compressing yet, or at all)."""
    if not _starts_now(method, authenticated):
        return None
    from .zlib_streams import Compressor

    return Compressor()


def decompressor_for(method: str, authenticated: bool) -> Decompressor | None:
    """As :func:`compressor_for`, for the receiving direction."""
    if not _starts_now(method, authenticated):
        return None
    from .zlib_streams import Decompressor

    return Decompressor()


def __getattr__(name: str) -> Any:
    if name in ("Compressor", "Decompressor"):
        from . import zlib_streams

        return getattr(zlib_streams, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
