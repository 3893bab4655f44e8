"""trissh: a Trio-native SSH client.

Everything runs inside Trio::

    async with trissh.connect("example.com", username="me") as conn:
        result = await conn.run("uname -a")
        print(result.stdout.decode())

See :func:`connect` for the options, and :class:`SSHConnection` for what a
connection can do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

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
from ._channels.streams import ChannelReceiveStream, ChannelSendStream, ChannelStream
from ._connect import ConnectTimeout, connect
from ._driver import SSHClientTransport
from ._errors import (
    AgentError,
    ChannelOpenError,
    ChannelOpenFailureReason,
    ConnectionLost,
    DisconnectError,
    DisconnectReason,
    ForwardingError,
    HostKeyNotVerifiable,
    KeyImportError,
    PermissionDenied,
    ProcessError,
    ProtocolError,
    SSHError,
)
from ._forwarding.local import LocalForward
from ._forwarding.remote import RemoteForward
from ._transport.negotiate import DirectionAlgorithms, Negotiated
from .connection import SSHConnection

if TYPE_CHECKING:
    from .sftp import SFTPClient, SFTPError, SFTPTransferError

__version__ = "0.1.0"

# SFTP's public names, imported when first used: `import trissh` (the CLI's start-up) does not load SFTP.
_SFTP_NAMES: Final = ("SFTPClient", "SFTPError", "SFTPTransferError")


def __getattr__(name: str) -> Any:
    if name in _SFTP_NAMES:
        from . import sftp

        return getattr(sftp, name)
    raise AttributeError(f"module 'trissh' has no attribute {name!r}")


__all__ = [
    "AgentError",
    "Certificate",
    "ChannelOpenError",
    "ChannelReceiveStream",
    "ChannelSendStream",
    "ChannelStream",
    "ChannelOpenFailureReason",
    "CompletedProcess",
    "ConnectTimeout",
    "ConnectionLost",
    "DEVNULL",
    "DirectionAlgorithms",
    "DisconnectError",
    "DisconnectReason",
    "ExitSignal",
    "ForwardingError",
    "GexBits",
    "HostKeyNotVerifiable",
    "HostKeyStatus",
    "KeyImportError",
    "KnownHosts",
    "LocalForward",
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
    "RemoteForward",
    "SSHAgentClient",
    "SSHClientTransport",
    "SSHConnection",
    "SFTPClient",
    "SFTPError",
    "SFTPTransferError",
    "SSHError",
    "STDOUT",
    "__version__",
    "connect",
    "import_private_key",
    "load_private_key",
    "read_private_key",
    "read_public_key",
]
