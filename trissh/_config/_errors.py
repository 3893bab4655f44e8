"""The one error type of the ssh_config reader."""

from __future__ import annotations

from .._errors import SSHError
from .._public import public

__all__ = ["ConfigError"]


@public
class ConfigError(SSHError):
    """An ssh_config(5) file that OpenSSH's ``ssh`` would refuse to use.

    The message names the file and line (``path line N: ...``), as ssh's own does; ``path`` and
    ``lineno`` carry them for handlers (``lineno`` is 0 when no single line is to blame).
    """

    def __init__(self, message: str, path: str = "", lineno: int = 0) -> None:
        if path:
            message = f"{path} line {lineno}: {message}" if lineno else f"{path}: {message}"
        super().__init__(message)
        self.path = path
        self.lineno = lineno
