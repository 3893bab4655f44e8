"""The trissh error family and the SSH reason codes they carry.

Whose fault it is decides the type: a peer that breaks the protocol raises
:class:`ProtocolError` (or sends a :class:`DisconnectError`); a caller that asks
for something impossible gets a plain ``ValueError``/``RuntimeError`` or a Trio
stream error, never one of these.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AgentError",
    "ChannelOpenError",
    "ChannelOpenFailureReason",
    "ConnectionLost",
    "DisconnectError",
    "DisconnectReason",
    "ForwardingError",
    "HostKeyNotVerifiable",
    "KeyImportError",
    "PermissionDenied",
    "ProcessError",
    "ProtocolError",
    "SSHError",
]


class DisconnectReason(IntEnum):
    """SSH_MSG_DISCONNECT reason codes (RFC 4250 §4.2.2)."""

    HOST_NOT_ALLOWED_TO_CONNECT = 1
    PROTOCOL_ERROR = 2
    KEY_EXCHANGE_FAILED = 3
    RESERVED = 4
    MAC_ERROR = 5
    COMPRESSION_ERROR = 6
    SERVICE_NOT_AVAILABLE = 7
    PROTOCOL_VERSION_NOT_SUPPORTED = 8
    HOST_KEY_NOT_VERIFIABLE = 9
    CONNECTION_LOST = 10
    BY_APPLICATION = 11
    TOO_MANY_CONNECTIONS = 12
    AUTH_CANCELLED_BY_USER = 13
    NO_MORE_AUTH_METHODS_AVAILABLE = 14
    ILLEGAL_USER_NAME = 15


class ChannelOpenFailureReason(IntEnum):
    """SSH_MSG_CHANNEL_OPEN_FAILURE reason codes (RFC 4250 §4.2.3)."""

    ADMINISTRATIVELY_PROHIBITED = 1
    CONNECT_FAILED = 2
    UNKNOWN_CHANNEL_TYPE = 3
    RESOURCE_SHORTAGE = 4


class SSHError(Exception):
    """Base class of every error trissh raises on behalf of the connection."""


class ProtocolError(SSHError):
    """The server sent something the protocol does not allow.

    The message says what was received and in which state. The connection is
    closed after this error.
    """

    #: The reason code sent to the server in our DISCONNECT, when we send one.
    reason: DisconnectReason = DisconnectReason.PROTOCOL_ERROR

    def __init__(self, message: str, reason: DisconnectReason = DisconnectReason.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.reason = reason


class DisconnectError(SSHError):
    """The connection ended by an SSH_MSG_DISCONNECT, sent by the server or by us.

    Attributes:
        code: the reason code (a :class:`DisconnectReason` when it is a known one).
        reason: the human-readable description that came with it.
    """

    def __init__(self, code: int, reason: str, *, local: bool = False) -> None:
        try:
            self.code: int = DisconnectReason(code)
        except ValueError:
            self.code = code
        self.reason = reason
        self.local = local
        who = "we disconnected" if local else "server disconnected"
        name = self.code.name if isinstance(self.code, DisconnectReason) else str(code)
        super().__init__(f"{who}: {name}: {reason}")


class ConnectionLost(SSHError):
    """The TCP connection broke, or closed without an SSH disconnect."""


class HostKeyNotVerifiable(SSHError):
    """The server's host key is unknown, has changed, or its signature is bad."""


class PermissionDenied(SSHError):
    """Authentication failed: the server accepted none of our credentials.

    Attributes:
        methods: the methods the server said could continue, from its last failure.
    """

    def __init__(self, message: str, methods: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.methods = methods


class ChannelOpenError(SSHError):
    """The server refused to open a channel.

    Attributes:
        code: the reason code (a :class:`ChannelOpenFailureReason` when known).
        reason: the server's description.
    """

    def __init__(self, code: int, reason: str) -> None:
        try:
            self.code: int = ChannelOpenFailureReason(code)
        except ValueError:
            self.code = code
        self.reason = reason
        name = self.code.name if isinstance(self.code, ChannelOpenFailureReason) else str(code)
        super().__init__(f"channel open failed: {name}: {reason}")


class ForwardingError(SSHError):
    """A port forwarding could not be set up: the server refused to listen (``tcpip-forward``,
    ``streamlocal-forward@openssh.com``), or the local address could not be bound."""


class ProcessError(SSHError):
    """A command run with ``check=True`` exited with a non-zero status or a signal.

    Attributes:
        args_: the command line.
        returncode: the exit status, or None when it ended by a signal.
        exit_signal: the signal name, when it ended by one.
        stdout, stderr: everything the command wrote.
    """

    def __init__(
        self,
        command: str,
        returncode: int | None,
        stdout: bytes,
        stderr: bytes,
        exit_signal: str | None = None,
    ) -> None:
        self.command = command
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.exit_signal = exit_signal
        how = f"signal {exit_signal}" if exit_signal else f"status {returncode}"
        super().__init__(f"command {command!r} exited with {how}")


class KeyImportError(SSHError):
    """A private or public key could not be read: bad format, wrong passphrase, unsupported type."""


class AgentError(SSHError):
    """The ssh-agent could not be reached, refused a request, or answered something malformed.

    The message names the agent's socket and the request that failed.
    """


def exception_leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc``, groups opened all the way down (``[exc]`` for a plain one)."""
    if not isinstance(exc, BaseExceptionGroup):
        return [exc]
    return [leaf for inner in exc.exceptions for leaf in exception_leaves(inner)]
