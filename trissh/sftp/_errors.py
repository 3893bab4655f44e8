"""SFTP errors: a server's STATUS as an exception, and the server's protocol faults.

A failed request is the server's normal answer (``STATUS`` with a non-OK code),
so :class:`SFTPError` is not a protocol error; :func:`error_from_status` picks
the subclass. The common codes map onto Python's own ``OSError`` subclasses
too, so code written for local files (``except FileNotFoundError``) keeps
working on remote ones. A server that breaks SFTP itself raises
:class:`SFTPProtocolError`, and the SFTP session is over.
"""

from __future__ import annotations

import errno as _errno
from typing import ClassVar, Final

from .._errors import ProtocolError, SSHError
from .._public import public
from ._constants import StatusCode

__all__ = [
    "SFTPDirNotEmpty",
    "SFTPError",
    "SFTPFailure",
    "SFTPFileExists",
    "SFTPIsADirectory",
    "SFTPNoSuchFile",
    "SFTPNotADirectory",
    "SFTPOpUnsupported",
    "SFTPPermissionDenied",
    "SFTPProtocolError",
    "SFTPTransferError",
    "error_from_status",
]


@public
class SFTPError(SSHError):
    """The server answered a request with a failure STATUS.

    Attributes:
        code: the status code (a :class:`StatusCode` when it is a known one).
        message: the server's description, possibly empty.
        path: the path the request was about, when the caller said.

    The subclasses that are also ``OSError`` set ``errno``, ``strerror`` and
    ``filename`` as a local failure would.
    """

    #: The errno an ``OSError`` subclass reports; None for the others.
    os_errno: ClassVar[int | None] = None

    def __init__(self, code: int, message: str, path: str | None = None) -> None:
        # Not super().__init__: for the OSError mixes that would reach
        # OSError.__init__ and take the SFTP code for an errno.
        Exception.__init__(self, code, message, path)
        try:
            self.code: int = StatusCode(code)
        except ValueError:
            self.code = code
        self.message = message
        self.path = path
        if isinstance(self, OSError):
            _set_os_fields(self, self.os_errno, message or _describe(self.code), path)

    def __str__(self) -> str:
        name = f"SSH_FX_{self.code.name}" if isinstance(self.code, StatusCode) else f"status {self.code}"
        text = f"{self.message or _describe(self.code)} ({name})"
        return f"{self.path}: {text}" if self.path is not None else text

    def __repr__(self) -> str:
        cls = type(self)
        return f"{cls.__module__}.{cls.__qualname__}({int(self.code)!r}, {self.message!r}, {self.path!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Through __init__ again, which sets the OSError fields (errno, strerror, filename) as it did.
        return (type(self), (self.code, self.message, self.path), self.__dict__)


def _set_os_fields(error: OSError, errno: int | None, strerror: str, filename: str | None) -> None:
    error.errno = errno
    error.strerror = strerror
    error.filename = filename


def _describe(code: int) -> str:
    """A fallback text for servers that send an empty message: "No such file"."""
    if isinstance(code, StatusCode):
        return code.name.replace("_", " ").capitalize()
    return "Unknown SFTP status"


class SFTPNoSuchFile(SFTPError, FileNotFoundError):
    """NO_SUCH_FILE or NO_SUCH_PATH: the path does not exist."""

    os_errno = _errno.ENOENT


class SFTPPermissionDenied(SFTPError, PermissionError):
    """PERMISSION_DENIED or WRITE_PROTECT."""

    os_errno = _errno.EACCES


class SFTPFileExists(SFTPError, FileExistsError):
    """FILE_ALREADY_EXISTS (also what an exclusive create meets)."""

    os_errno = _errno.EEXIST


class SFTPNotADirectory(SFTPError, NotADirectoryError):
    """NOT_A_DIRECTORY: a path component, or an OPENDIR target, is not a directory."""

    os_errno = _errno.ENOTDIR


class SFTPIsADirectory(SFTPError, IsADirectoryError):
    """FILE_IS_A_DIRECTORY: a file operation on a directory."""

    os_errno = _errno.EISDIR


class SFTPDirNotEmpty(SFTPError, OSError):
    """DIR_NOT_EMPTY: RMDIR of a directory that still has entries."""

    os_errno = _errno.ENOTEMPTY


class SFTPOpUnsupported(SFTPError):
    """OP_UNSUPPORTED: the server does not implement the request."""


class SFTPFailure(SFTPError):
    """FAILURE, and every code without a more specific class.

    Version 3 servers report most errors (a non-empty RMDIR, say) as plain
    FAILURE; the message is then all there is to go on.
    """


@public
class SFTPTransferError(SFTPError):
    """A transfer failed part-way, or its source changed size while it was copied.

    Attributes:
        bytes_confirmed: for an upload, the bytes of the file the server acknowledged (from the
            start of the file, a resumed part included); for a download, the bytes received.

    ``__cause__`` holds the error underneath (a lost connection, a server STATUS) when there is one.
    """

    def __init__(self, code: int, message: str, path: str | None = None, *, bytes_confirmed: int = 0) -> None:
        super().__init__(code, message, path)
        self.bytes_confirmed = bytes_confirmed


_CLASSES: Final[dict[int, type[SFTPError]]] = {
    StatusCode.NO_SUCH_FILE: SFTPNoSuchFile,
    StatusCode.NO_SUCH_PATH: SFTPNoSuchFile,
    StatusCode.PERMISSION_DENIED: SFTPPermissionDenied,
    StatusCode.WRITE_PROTECT: SFTPPermissionDenied,
    StatusCode.FILE_ALREADY_EXISTS: SFTPFileExists,
    StatusCode.NOT_A_DIRECTORY: SFTPNotADirectory,
    StatusCode.FILE_IS_A_DIRECTORY: SFTPIsADirectory,
    StatusCode.DIR_NOT_EMPTY: SFTPDirNotEmpty,
    StatusCode.OP_UNSUPPORTED: SFTPOpUnsupported,
}


def error_from_status(code: int, message: str, path: str | None = None) -> SFTPError:
    """The exception for a failure STATUS: the matching subclass, else :class:`SFTPFailure`.

    Callers should not pass OK or EOF; those are answers, not failures, and get
    :class:`SFTPFailure` like any unmapped code.
    """
    return _CLASSES.get(code, SFTPFailure)(code, message, path)


class SFTPProtocolError(ProtocolError):
    """The SFTP server broke the protocol: malformed or oversized packet, wrong
    version, an answer to a request never made, or an answer of the wrong type.

    The SFTP session cannot continue after this; the message says what arrived.
    """
