"""trissh: a Trio-native SSH client.

Everything runs inside Trio::

    async with trissh.connect("example.com", username="me") as conn:
        result = await conn.run("uname -a")
        print(result.stdout.decode())

See :func:`connect` for the options, and :class:`SSHConnection` for what a
connection can do.
"""

from __future__ import annotations

from ._algorithms.certificates import Certificate
from ._algorithms.hostkeys import PublicKey
from ._algorithms.kex import GexBits
from ._auth.agent import SSHAgentClient
from ._auth.keys import (
    PassphraseRequired,
    PrivateKey,
    import_private_key,
    load_private_key,
    read_private_key,
    read_public_key,
)
from ._auth.known_hosts import HostKeyStatus, KnownHosts
from ._channels.process_io import DEVNULL, PIPE, STDOUT, Redirect
from ._channels.session import CompletedProcess, ExitSignal, Process
from ._connect import ConnectTimeout, connect
from ._driver import SSHClientTransport
from ._errors import (
    AgentError,
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
from .connection import SSHConnection

__version__ = "0.1.0"

__all__ = [
    "AgentError",
    "Certificate",
    "ChannelOpenError",
    "ChannelOpenFailureReason",
    "CompletedProcess",
    "ConnectTimeout",
    "ConnectionLost",
    "DEVNULL",
    "DirectionAlgorithms",
    "DisconnectError",
    "DisconnectReason",
    "ExitSignal",
    "GexBits",
    "HostKeyNotVerifiable",
    "HostKeyStatus",
    "KeyImportError",
    "KnownHosts",
    "Negotiated",
    "PIPE",
    "PassphraseRequired",
    "PermissionDenied",
    "PrivateKey",
    "Process",
    "ProcessError",
    "ProtocolError",
    "PublicKey",
    "Redirect",
    "SSHAgentClient",
    "SSHClientTransport",
    "SSHConnection",
    "SSHError",
    "STDOUT",
    "__version__",
    "connect",
    "import_private_key",
    "load_private_key",
    "read_private_key",
    "read_public_key",
]
