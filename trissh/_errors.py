"""The trissh error family and the SSH reason codes they carry.

Whose fault it is decides the type: a peer that breaks the protocol raises
:class:`ProtocolError` (or sends a :class:`DisconnectError`); a caller that asks
for something impossible gets a plain ``ValueError``/``RuntimeError`` or a Trio
stream error, never one of these.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

from ._public import public

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


@public
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


@public
class ChannelOpenFailureReason(IntEnum):
    """SSH_MSG_CHANNEL_OPEN_FAILURE reason codes (RFC 4250 §4.2.3)."""

    ADMINISTRATIVELY_PROHIBITED = 1
    CONNECT_FAILED = 2
    UNKNOWN_CHANNEL_TYPE = 3
    RESOURCE_SHORTAGE = 4


@public
class SSHError(Exception):
    """Base class of every error trissh raises on behalf of the connection."""

    #: Attributes :meth:`__repr__` shows after the message (subclasses name theirs).
    _repr_fields: ClassVar[tuple[str, ...]] = ()

    def __repr__(self) -> str:
        """``trissh.PermissionDenied('...', methods=('publickey',))``: the public name, the message,
        and the attributes a handler reads (never output or credentials)."""
        cls = type(self)
        shown = [repr(arg) for arg in self.args]
        shown += [f"{name}={getattr(self, name, None)!r}" for name in cls._repr_fields]
        return f"{cls.__module__}.{cls.__qualname__}({', '.join(shown)})"

    def __reduce__(self) -> tuple[object, ...]:
        # Pickle (for a process pool, multiprocessing...) by message and attributes: the subclasses'
        # constructors take other arguments than the message they build from them.
        return (_rebuild, (type(self), self.args), self.__dict__)


def _rebuild(cls: type[SSHError], args: tuple[object, ...]) -> SSHError:
    """An error of class ``cls`` with ``args``, without its ``__init__`` (pickle sets the attributes)."""
    return cls.__new__(cls, *args)


@public
class ProtocolError(SSHError):
    """The server sent something the protocol does not allow.

    The message says what was received and in which state. The connection is
    closed after this error.
    """

    #: The reason code sent to the server in our DISCONNECT, when we send one.
    reason: DisconnectReason = DisconnectReason.PROTOCOL_ERROR
    _repr_fields = ("reason",)

    def __init__(self, message: str, reason: DisconnectReason = DisconnectReason.PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.reason = reason


@public
class DisconnectError(SSHError):
    """The connection ended by an SSH_MSG_DISCONNECT, sent by the server or by us.

    Attributes:
        code: the reason code (a :class:`DisconnectReason` when it is a known one).
        reason: the human-readable description that came with it.
        local: True when we sent the DISCONNECT, False when the server did.
    """

    _repr_fields = ("code", "reason", "local")

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


@public
class ConnectionLost(SSHError):
    """The TCP connection broke, or closed without an SSH disconnect."""


@public
class HostKeyNotVerifiable(SSHError):
    """The server's host key is unknown, has changed, or its signature is bad."""


@public
class PermissionDenied(SSHError):
    """Authentication failed: the server accepted none of our credentials.

    Attributes:
        methods: the methods the server said could continue, from its last failure.
    """

    _repr_fields = ("methods",)

    def __init__(self, message: str, methods: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.methods = methods


@public
class ChannelOpenError(SSHError):
    """The server refused to open a channel.

    Attributes:
        code: the reason code (a :class:`ChannelOpenFailureReason` when known).
        reason: the server's description.
    """

    _repr_fields = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        try:
            self.code: int = ChannelOpenFailureReason(code)
        except ValueError:
            self.code = code
        self.reason = reason
        name = self.code.name if isinstance(self.code, ChannelOpenFailureReason) else str(code)
        super().__init__(f"channel open failed: {name}: {reason}")


@public
class ForwardingError(SSHError):
    """A port forwarding could not be set up: the server refused to listen (``tcpip-forward``,
    ``streamlocal-forward@openssh.com``), or the local address could not be bound."""


@public
class ProcessError(SSHError):
    """A command run with ``check=True`` exited with a non-zero status or a signal.

    Attributes:
        command: the command line.
        returncode: the exit status, or None when it ended by a signal.
        exit_signal: the signal name, when it ended by one.
        stdout, stderr: everything the command wrote.
    """

    _repr_fields = ("returncode", "exit_signal")  # not the output: it may be long

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


@public
class KeyImportError(SSHError):
    """A private or public key could not be read: bad format, wrong passphrase, unsupported type."""


@public
class AgentError(SSHError):
    """The ssh-agent could not be reached, refused a request, or answered something malformed.

    The message names the agent's socket and the request that failed.
    """


def exception_leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc``, groups opened all the way down (``[exc]`` for a plain one)."""
    if not isinstance(exc, BaseExceptionGroup):
        return [exc]
    return [leaf for inner in exc.exceptions for leaf in exception_leaves(inner)]
