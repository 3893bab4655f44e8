"""trissh: a Trio-native SSH client.

Everything runs inside Trio::

    async with trissh.connect("example.com", username="me") as conn:
        result = await conn.run("uname -a")
        print(result.stdout.decode())

See :func:`connect` for the options, and :class:`SSHConnection` for what a
connection can do.
"""

from __future__ import annotations

from ._algorithms.hostkeys import PublicKey
from ._algorithms.kex import GexBits
from ._auth.keys import PrivateKey, import_private_key, load_private_key
from ._auth.known_hosts import HostKeyStatus, KnownHosts
from ._channels.session import CompletedProcess, Process
from ._driver import SSHClientTransport
from ._errors import (
    ChannelOpenError,
    ChannelOpenFailureReason,
    ConnectionLost,
    DisconnectError,
    DisconnectReason,
    HostKeyNotVerifiable,
    KeyImportError,
    PermissionDenied,
    ProcessError,
    ProtocolError,
    SSHError,
)
from ._transport.negotiate import DirectionAlgorithms, Negotiated
from .connection import ConnectTimeout, SSHConnection, connect

__version__ = "0.1.0"

__all__ = [
    "ChannelOpenError",
    "ChannelOpenFailureReason",
    "CompletedProcess",
    "ConnectTimeout",
    "ConnectionLost",
    "DirectionAlgorithms",
    "DisconnectError",
    "DisconnectReason",
    "GexBits",
    "HostKeyNotVerifiable",
    "HostKeyStatus",
    "KeyImportError",
    "KnownHosts",
    "Negotiated",
    "PermissionDenied",
    "PrivateKey",
    "Process",
    "ProcessError",
    "ProtocolError",
    "PublicKey",
    "SSHClientTransport",
    "SSHConnection",
    "SSHError",
    "__version__",
    "connect",
    "import_private_key",
    "load_private_key",
]
