"""Reading key files, and what every key file reader shares.

Theory of operation
-------------------
Private keys, public keys and certificates are all read from small files.
This module owns the rules common to them all: a file is read whole but
bounded (:data:`MAX_KEY_FILE_SIZE`), and errors name the path and say what
kind of file was expected; a PEM armor's label says what a PEM file holds;
FIDO security keys (``sk-*@openssh.com``, PROTOCOL.u2f) are refused by name
wherever they turn up, since they sign on a hardware token, which trissh does
not drive.

What it must not know: any one file format (:mod:`trissh._auth.key_files`,
:mod:`trissh._auth.public_key_files`).
"""

from __future__ import annotations

import os
import re
from typing import Final

from .._errors import KeyImportError

__all__ = ["MAX_KEY_FILE_SIZE", "SECURITY_KEY_HINT", "pem_label", "read_key_file"]

# Key files are a few kilobytes; refusing anything over this keeps a mistaken
# path (a disk image, /dev/zero) from being read into memory.
MAX_KEY_FILE_SIZE: Final = 1024 * 1024
_READ_CHUNK: Final = 16 * 1024

_PEM_BEGIN: Final = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
#: What follows a security key's type name in the error that refuses it.
SECURITY_KEY_HINT: Final = (
    "is a FIDO security key (it signs on a hardware token); security keys are not supported by trissh"
)


def pem_label(data: bytes) -> bytes | None:
    """The label of the first PEM armor line (``b"PRIVATE KEY"``), or None if there is none."""
    match = _PEM_BEGIN.search(data)
    return match.group(1) if match else None


def read_key_file(path: str | os.PathLike[str], what: str = "key file") -> bytes:
    """A key file's bytes, refusing one over :data:`MAX_KEY_FILE_SIZE` without reading it all."""
    chunks: list[bytes] = []
    total = 0
    try:
        with open(path, "rb") as file:
            # In small reads: one read of the whole limit would allocate it
            # (1 MiB) for every key loaded, and keys are loaded per connection.
            while total <= MAX_KEY_FILE_SIZE:
                chunk = file.read(_READ_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
    except FileNotFoundError as exc:
        raise KeyImportError(f"{what} {os.fspath(path)} not found") from exc
    except OSError as exc:
        raise KeyImportError(f"cannot read {what} {os.fspath(path)}: {exc.strerror or exc}") from exc
    if total > MAX_KEY_FILE_SIZE:
        raise KeyImportError(f"{what} {os.fspath(path)} is larger than {MAX_KEY_FILE_SIZE} bytes")
    return b"".join(chunks)
