"""SFTP (version 3, as OpenSSH speaks it) over a trissh connection: ``conn.open_sftp()``.

The protocol lives in sans-IO modules: ``_codec`` frames requests and parses
responses, ``_attributes`` is the ATTRS structure, ``_errors`` turns a
failure STATUS into an exception that is also the matching ``OSError``.
The Trio side: ``_session`` (requests and their responses, on the channel),
``_client`` (the operations; ``_types`` the values it hands out), ``_file``
(open files), ``_pipeline`` (many READs/WRITEs in flight), ``_download``,
``_upload`` and ``_remote_copy`` (get, put, copy; ``_transfer`` what they
share, ``_local`` the local disk side), ``_open`` (``conn.open_sftp()``).
"""

from __future__ import annotations

from ._attributes import SFTPAttributes
from ._client import SFTPClient
from ._errors import (
    SFTPDirNotEmpty,
    SFTPError,
    SFTPFailure,
    SFTPFileExists,
    SFTPIsADirectory,
    SFTPNoSuchFile,
    SFTPNotADirectory,
    SFTPOpUnsupported,
    SFTPPermissionDenied,
    SFTPProtocolError,
    SFTPTransferError,
)
from ._file import SFTPFile
from ._types import SFTPLimits, SFTPName, SFTPStatVFS

__all__ = [
    "SFTPAttributes",
    "SFTPClient",
    "SFTPDirNotEmpty",
    "SFTPError",
    "SFTPFailure",
    "SFTPFile",
    "SFTPFileExists",
    "SFTPIsADirectory",
    "SFTPLimits",
    "SFTPName",
    "SFTPNoSuchFile",
    "SFTPNotADirectory",
    "SFTPOpUnsupported",
    "SFTPPermissionDenied",
    "SFTPProtocolError",
    "SFTPStatVFS",
    "SFTPTransferError",
]

# What only this package exports shows as ``trissh.sftp.X`` (in reprs, tracebacks, pickles); the names
# that ``trissh`` exports too are already ``trissh.X`` (see trissh._public).
for _name in __all__:
    _obj = globals()[_name]
    if _obj.__module__.startswith(__name__ + "._"):
        _obj.__module__ = __name__
del _name, _obj
