"""Private keys and key files: one import for the names of the modules that do the work.

Theory of operation
-------------------
Keys are split by job, and this module only gathers their names, so that
``from trissh._auth.keys import X`` keeps working for every caller:

* :mod:`trissh._auth.private_key`: :class:`PrivateKey`, the key in memory,
  and signing in the SSH formats;
* :mod:`trissh._auth.key_files`: private key files (OpenSSH, PEM, PKCS#8):
  recognising the format, :func:`inspect_private_key` before any passphrase,
  and importing;
* :mod:`trissh._auth.public_key_files`: public key files (``.pub``,
  RFC 4716, PEM);
* :mod:`trissh._auth.key_file_reading`: bounded file reading
  (:func:`read_key_file`) and what all the formats share.

It must hold no code of its own: a rule added here would be a rule no job owns.
"""

from __future__ import annotations

from .key_file_reading import MAX_KEY_FILE_SIZE as MAX_KEY_FILE_SIZE
from .key_file_reading import read_key_file
from .key_files import (
    KeyFileInfo,
    PassphraseRequired,
    import_private_key,
    inspect_private_key,
    is_encrypted,
    load_private_key,
    read_private_key,
)
from .private_key import CryptoPrivateKey, PrivateKey
from .public_key_files import load_public_key_file, read_public_key

__all__ = [
    "CryptoPrivateKey",
    "KeyFileInfo",
    "PassphraseRequired",
    "PrivateKey",
    "import_private_key",
    "inspect_private_key",
    "is_encrypted",
    "load_private_key",
    "load_public_key_file",
    "read_key_file",
    "read_private_key",
    "read_public_key",
]
