"""trissh: a Trio-native SSH client.

Everything runs inside Trio::

    async with trissh.connect("example.com", username="me") as conn:
        result = await conn.run("uname -a")
        print(result.stdout.decode())

See :func:`connect` for the options, and :class:`SSHConnection` for what a
connection can do.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final

from ._algorithms.hostkeys import PublicKey
from ._algorithms.kex import GexBits
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
    from ._algorithms.certificates import Certificate
    from ._auth.agent import SSHAgentClient
    from .sftp import SFTPClient, SFTPError, SFTPTransferError

__version__ = "0.1.0"

# Public names whose modules a typical connection never needs, by the module that defines them: imported
# when first used, so that `import trissh` (the CLI's start-up) loads neither SFTP, nor the certificate
# parser (until a certificate appears), nor the ssh-agent client (until an agent is used).
_LAZY_NAMES: Final = {
    "Certificate": "._algorithms.certificates",
    "SSHAgentClient": "._auth.agent",
    "SFTPClient": ".sftp",
    "SFTPError": ".sftp",
    "SFTPTransferError": ".sftp",
}


def __getattr__(name: str) -> Any:
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'trissh' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
