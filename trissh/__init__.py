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

if TYPE_CHECKING:
    from ._algorithms.certificates import CertCheck, Certificate, CertProblem, CertType
    from ._algorithms.hostkeys import PublicKey
    from ._algorithms.kex import GexBits
    from ._auth.agent import AgentIdentity, SSHAgentClient
    from ._auth.host_key_check import HostKeyPolicy, KnownHostsArg
    from ._auth.key_sources import ClientKeysArg
    from ._auth.keys import (
        PassphraseRequired,
        PrivateKey,
        import_private_key,
        load_private_key,
        read_private_key,
        read_public_key,
    )
    from ._auth.known_hosts import (
        CertificateStatus,
        CertificateVerdict,
        HostKeyStatus,
        KnownHostEntry,
        KnownHosts,
    )
    from ._auth.userauth import AuthResult
    from ._channels.process_io import DEVNULL, PIPE, STDOUT, OutputTarget, Redirect
    from ._channels.session import CompletedProcess, ExitSignal, Process, ProcessPhase
    from ._channels.streams import ChannelReceiveStream, ChannelSendStream, ChannelStream
    from ._config import ConfigError, ResolvedConfig, SSHConfig
    from ._configured import ConfigArg
    from ._connect import ConnectTimeout, connect
    from ._driver import SSHClientTransport
    from ._forwarding.local import LocalForward
    from ._forwarding.remote import RemoteForward
    from ._transport.negotiate import DirectionAlgorithms, Negotiated
    from .connection import SSHConnection
    from .fanout import (
        FanoutConnectOptions,
        HostResult,
        HostResults,
        HostSpec,
        HostTimeout,
        for_each_host,
        run_on_hosts,
    )
    from .sftp import (
        SFTPAttributes,
        SFTPClient,
        SFTPError,
        SFTPFile,
        SFTPLimits,
        SFTPName,
        SFTPStatVFS,
        SFTPTransferError,
    )

__version__ = "0.1.0"

# Every public name but the errors is imported when first used, from the module that defines it: so
# `import trissh` costs almost nothing (the `trissh` command answers --help and parses its command line
# before loading the network stack), and a program loads only what it touches (SFTP, the certificate
# parser, the ssh-agent client...). Each class and function here is marked ``@public`` where it is
# defined (trissh._public), so that it shows as ``trissh.X`` however it was reached.
_LAZY_NAMES: Final = {
    "AgentIdentity": "._auth.agent",
    "AuthResult": "._auth.userauth",
    "CertCheck": "._algorithms.certificates",
    "CertProblem": "._algorithms.certificates",
    "CertType": "._algorithms.certificates",
    "Certificate": "._algorithms.certificates",
    "CertificateStatus": "._auth.known_hosts",
    "CertificateVerdict": "._auth.known_hosts",
    "ChannelReceiveStream": "._channels.streams",
    "ChannelSendStream": "._channels.streams",
    "ChannelStream": "._channels.streams",
    "ClientKeysArg": "._auth.key_sources",
    "CompletedProcess": "._channels.session",
    "ConfigArg": "._configured",
    "ConfigError": "._config",
    "ConnectTimeout": "._connect",
    "DEVNULL": "._channels.process_io",
    "DirectionAlgorithms": "._transport.negotiate",
    "ExitSignal": "._channels.session",
    "FanoutConnectOptions": ".fanout",
    "GexBits": "._algorithms.kex",
    "HostKeyPolicy": "._auth.host_key_check",
    "HostResult": ".fanout",
    "HostResults": ".fanout",
    "HostSpec": ".fanout",
    "HostTimeout": ".fanout",
    "HostKeyStatus": "._auth.known_hosts",
    "KnownHostEntry": "._auth.known_hosts",
    "KnownHosts": "._auth.known_hosts",
    "KnownHostsArg": "._auth.host_key_check",
    "LocalForward": "._forwarding.local",
    "Negotiated": "._transport.negotiate",
    "OutputTarget": "._channels.process_io",
    "PIPE": "._channels.process_io",
    "PassphraseRequired": "._auth.keys",
    "PrivateKey": "._auth.keys",
    "Process": "._channels.session",
    "ProcessPhase": "._channels.session",
    "PublicKey": "._algorithms.hostkeys",
    "Redirect": "._channels.process_io",
    "RemoteForward": "._forwarding.remote",
    "ResolvedConfig": "._config",
    "SFTPAttributes": ".sftp",
    "SFTPClient": ".sftp",
    "SFTPError": ".sftp",
    "SFTPFile": ".sftp",
    "SFTPLimits": ".sftp",
    "SFTPName": ".sftp",
    "SFTPStatVFS": ".sftp",
    "SFTPTransferError": ".sftp",
    "SSHAgentClient": "._auth.agent",
    "SSHClientTransport": "._driver",
    "SSHConfig": "._config",
    "SSHConnection": ".connection",
    "STDOUT": "._channels.process_io",
    "connect": "._connect",
    "for_each_host": ".fanout",
    "import_private_key": "._auth.keys",
    "load_private_key": "._auth.keys",
    "read_private_key": "._auth.keys",
    "read_public_key": "._auth.keys",
    "run_on_hosts": ".fanout",
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
    "AgentIdentity",
    "AuthResult",
    "CertCheck",
    "CertProblem",
    "CertType",
    "Certificate",
    "CertificateStatus",
    "CertificateVerdict",
    "ChannelOpenError",
    "ChannelReceiveStream",
    "ChannelSendStream",
    "ChannelStream",
    "ChannelOpenFailureReason",
    "ClientKeysArg",
    "CompletedProcess",
    "ConfigArg",
    "ConfigError",
    "ConnectTimeout",
    "ConnectionLost",
    "DEVNULL",
    "DirectionAlgorithms",
    "DisconnectError",
    "DisconnectReason",
    "ExitSignal",
    "FanoutConnectOptions",
    "ForwardingError",
    "GexBits",
    "HostKeyNotVerifiable",
    "HostKeyPolicy",
    "HostResult",
    "HostResults",
    "HostSpec",
    "HostTimeout",
    "HostKeyStatus",
    "KeyImportError",
    "KnownHostEntry",
    "KnownHosts",
    "KnownHostsArg",
    "LocalForward",
    "Negotiated",
    "OutputTarget",
    "PIPE",
    "PassphraseRequired",
    "PermissionDenied",
    "PrivateKey",
    "Process",
    "ProcessError",
    "ProcessPhase",
    "ProtocolError",
    "PublicKey",
    "Redirect",
    "ResolvedConfig",
    "RemoteForward",
    "SFTPAttributes",
    "SFTPFile",
    "SFTPLimits",
    "SFTPName",
    "SFTPStatVFS",
    "SSHAgentClient",
    "SSHClientTransport",
    "SSHConfig",
    "SSHConnection",
    "SFTPClient",
    "SFTPError",
    "SFTPTransferError",
    "SSHError",
    "STDOUT",
    "__version__",
    "connect",
    "for_each_host",
    "import_private_key",
    "load_private_key",
    "read_private_key",
    "read_public_key",
    "run_on_hosts",
]
