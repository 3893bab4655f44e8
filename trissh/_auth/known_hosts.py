"""OpenSSH known_hosts files: is this the key we expected for this host?

Theory of operation
-------------------
A known_hosts line is ``[@marker] host-patterns key-type base64-key [comment]``
(sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"). The host is looked up under the name
OpenSSH uses for it: the bare host name on port 22, ``[host]:port`` otherwise.
(``[host]:22`` is accepted for port 22 too.)

Lookups are cheap for the common case. Each line goes to one of three indexes:

* lines whose patterns are all plain names go into a dict keyed by lower-cased
  name, so a lookup is one dict access however long the file is;
* lines with wildcards (``*``, ``?``) or negations (``!pattern``) are matched one
  by one, as precompiled regular expressions (there are usually few);
* hashed lines (``|1|salt|HMAC-SHA1(salt, name)``, from ``ssh-keygen -H``) can
  only be tested by computing one HMAC per line.

:meth:`KnownHosts.check` then decides, for the key the server presented, as
OpenSSH does: a matching ``@revoked`` entry wins; otherwise an equal key is
TRUSTED; otherwise a different key *of the same type* is CHANGED; otherwise
(no entry, or entries of other key types only) the key is UNKNOWN.

``@cert-authority`` lines are parsed and kept (see :meth:`KnownHosts.lookup`)
but not used: :meth:`KnownHosts.check` handles plain host keys only.

A malformed line is skipped with a warning naming file and line, never fatal,
as in OpenSSH. Lines with key types trissh does not support (``ssh-dss``,
security keys, SSH-1 keys) are skipped at debug level: they are valid, just not
usable. This module reads files with blocking I/O; from Trio, load it in a
worker thread (``trio.to_thread.run_sync``).
"""

from __future__ import annotations

import base64
import binascii
import enum
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from hmac import compare_digest
from pathlib import Path
from typing import Final, final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from .._algorithms.hostkeys import SUPPORTED_KEY_TYPES, PublicKey, decode_public_key
from .._errors import KeyImportError
from .._wire import DecodeError, Reader

__all__ = [
    "HostKeyStatus",
    "KnownHostEntry",
    "KnownHosts",
    "Marker",
    "default_known_hosts_paths",
]

logger: Final = logging.getLogger("trissh.known_hosts")

_SHA1_SIZE: Final = 20
# Characters that make a host pattern more than a plain name.
_PATTERN_CHARS: Final = frozenset("*?!")
# What an SSH algorithm name looks like (RFC 4251 §6), to tell an unsupported
# key type apart from a garbled line.
_ALGORITHM_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9@._+-]{0,63}")


class HostKeyStatus(enum.Enum):
    """The verdict of :meth:`KnownHosts.check` on a host's key."""

    #: An entry for this host holds exactly this key.
    TRUSTED = "trusted"
    #: Entries for this host hold a different key of the same type: the
    #: "REMOTE HOST IDENTIFICATION HAS CHANGED" case; possibly an attack.
    CHANGED = "changed"
    #: No entry for this host with a key of this type (entries of other key
    #: types do not count, as in OpenSSH).
    UNKNOWN = "unknown"
    #: The key is listed with ``@revoked`` for this host: never accept it.
    REVOKED = "revoked"


class Marker(enum.Enum):
    """The optional marker that starts a known_hosts line."""

    #: No marker: a host key.
    NONE = ""
    #: ``@revoked``: the key must never be accepted.
    REVOKED = "@revoked"
    #: ``@cert-authority``: a CA whose certificates are trusted (not used by check()).
    CERT_AUTHORITY = "@cert-authority"


@dataclass(frozen=True, slots=True)
class KnownHostEntry:
    """One parsed known_hosts line.

    Fields:
        marker: the line's :class:`Marker`.
        hosts: the host pattern field as written (hashed lines keep their hash).
        key: the public key.
        comment: the rest of the line, if any.
        source: the file the line came from, or the ``source`` given to ``from_text``.
        lineno: its 1-based line number.
    """

    marker: Marker
    hosts: str
    key: PublicKey
    comment: str
    source: str
    lineno: int
    # Position in load order, so lookups return entries in file order.
    order: int = field(default=0, compare=False, repr=False)


@final
class _PatternMatcher:
    """A comma-separated pattern list with wildcards and negations (OpenSSH match_hostname)."""

    __slots__ = ("_negative", "_positive")

    def __init__(self, patterns: list[str]) -> None:
        self._positive = [_compile(p) for p in patterns if not p.startswith("!")]
        self._negative = [_compile(p[1:]) for p in patterns if p.startswith("!")]

    def matches(self, name: str) -> bool:
        # A matching negated pattern vetoes the line even if a positive one matches.
        if any(pattern.fullmatch(name) for pattern in self._negative):
            return False
        return any(pattern.fullmatch(name) for pattern in self._positive)


def _compile(pattern: str) -> re.Pattern[str]:
    # Not fnmatch: in known_hosts, "[" and "]" are literal (as in "[host]:2222"),
    # and only "*" and "?" are wildcards.
    parts = (".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern.lower())
    return re.compile("".join(parts), re.DOTALL)


def _hmac_sha1(salt: bytes, name: str) -> bytes:
    mac = crypto_hmac.HMAC(salt, hashes.SHA1())
    mac.update(name.encode("utf-8"))
    return mac.finalize()


def _host_names(host: str, port: int) -> list[str]:
    """The names a (host, port) is listed under, lower-cased, as OpenSSH writes them."""
    host = host.lower()
    if port == 22:
        return [host, f"[{host}]:22"]
    return [f"[{host}]:{port}"]


def default_known_hosts_paths() -> list[Path]:
    """OpenSSH's default user and system known_hosts files, in the order it reads them."""
    ssh_dir = Path("~/.ssh").expanduser()
    return [
        ssh_dir / "known_hosts",
        ssh_dir / "known_hosts2",
        Path("/etc/ssh/ssh_known_hosts"),
        Path("/etc/ssh/ssh_known_hosts2"),
    ]


@final
class KnownHosts:
    """The entries of one or more known_hosts files, indexed for lookup by host.

    Build one with :meth:`load` or :meth:`from_text`; ``KnownHosts()`` is empty.
    Ask :meth:`check` about a server's key; :meth:`add` appends a new one.
    """

    __slots__ = ("_by_name", "_count", "_hashed", "_patterned")

    def __init__(self) -> None:
        self._by_name: dict[str, list[KnownHostEntry]] = {}
        self._patterned: list[tuple[_PatternMatcher, KnownHostEntry]] = []
        self._hashed: list[tuple[bytes, bytes, KnownHostEntry]] = []
        self._count = 0

    @classmethod
    def load(cls, paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> KnownHosts:
        """Read known_hosts files; files that do not exist are skipped silently.

        Raises:
            OSError: a file exists but cannot be read (the error names the file).
        """
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        known_hosts = cls()
        for path in paths:
            known_hosts.load_file(path)
        return known_hosts

    @classmethod
    def from_text(cls, text: str, source: str = "<string>") -> KnownHosts:
        """Parse known_hosts lines from a string; ``source`` names it in warnings."""
        known_hosts = cls()
        known_hosts._parse(text, source)
        return known_hosts

    def load_file(self, path: str | os.PathLike[str]) -> bool:
        """Add the entries of one file; returns False if the file does not exist.

        Raises:
            OSError: the file exists but cannot be read.
        """
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return False
        self._parse(text, os.fspath(path))
        return True

    def __len__(self) -> int:
        """The number of usable entries (all markers)."""
        return self._count

    # --- parsing -------------------------------------------------------------------------------

    def _parse(self, text: str, source: str) -> None:
        for lineno, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                self._index(self._parse_line(line, source, lineno))
            except _SkipLine as skip:
                logger.log(skip.level, "%s:%d: skipping known_hosts line: %s", source, lineno, skip)

    def _parse_line(self, line: str, source: str, lineno: int) -> KnownHostEntry:
        fields = line.split(maxsplit=1)
        marker = Marker.NONE
        if fields[0].startswith("@"):
            try:
                marker = Marker(fields[0])
            except ValueError:
                raise _SkipLine(f"unknown marker {fields[0][:40]!r}") from None
            fields = fields[1].split(maxsplit=1) if len(fields) > 1 else []
        rest = fields[1].split(maxsplit=2) if len(fields) > 1 else []
        if len(rest) < 2:
            raise _SkipLine("expected host patterns, key type and base64 key")
        hosts, key_type, b64 = fields[0], rest[0], rest[1]
        comment = rest[2] if len(rest) > 2 else ""
        key = _parse_key(key_type, b64)
        return KnownHostEntry(marker, hosts, key, comment, source, lineno, order=self._count)

    def _index(self, entry: KnownHostEntry) -> None:
        hosts = entry.hosts
        if hosts.startswith("|"):  # "|1|..." or a hash format we do not know
            salt, digest = _parse_hashed(hosts)
            self._hashed.append((salt, digest, entry))
        else:
            patterns = [p for p in hosts.split(",") if p]
            if not patterns:
                raise _SkipLine("empty host pattern list")
            if any(char in _PATTERN_CHARS for char in hosts):
                self._patterned.append((_PatternMatcher(patterns), entry))
            else:
                for name in patterns:
                    self._by_name.setdefault(name.lower(), []).append(entry)
        self._count += 1

    # --- lookup --------------------------------------------------------------------------------

    def lookup(self, host: str, port: int = 22) -> list[KnownHostEntry]:
        """Every entry whose host patterns match ``host`` on ``port``, in file order.

        Includes ``@revoked`` and ``@cert-authority`` entries; see :attr:`KnownHostEntry.marker`.
        """
        names = _host_names(host, port)
        found: dict[int, KnownHostEntry] = {}
        for name in names:
            for entry in self._by_name.get(name, ()):
                found[entry.order] = entry
        for matcher, entry in self._patterned:
            if any(matcher.matches(name) for name in names):
                found[entry.order] = entry
        for salt, digest, entry in self._hashed:
            if any(compare_digest(_hmac_sha1(salt, name), digest) for name in names):
                found[entry.order] = entry
        return [found[order] for order in sorted(found)]

    def check(self, host: str, port: int, key: PublicKey) -> HostKeyStatus:
        """Judge the host key ``key`` presented by ``host`` on ``port``.

        Returns:
            REVOKED if an ``@revoked`` entry for the host holds this key; else
            TRUSTED if an entry holds it; else CHANGED if an entry holds another
            key of the same type; else UNKNOWN. ``@cert-authority`` entries are
            ignored (certificates are not supported yet).
        """
        entries = self.lookup(host, port)
        if any(e.marker is Marker.REVOKED and e.key == key for e in entries):
            return HostKeyStatus.REVOKED
        host_keys = [e.key for e in entries if e.marker is Marker.NONE]
        if key in host_keys:
            return HostKeyStatus.TRUSTED
        if any(k.key_type == key.key_type for k in host_keys):
            return HostKeyStatus.CHANGED
        return HostKeyStatus.UNKNOWN

    # --- adding --------------------------------------------------------------------------------

    def add(
        self, path: str | os.PathLike[str], host: str, port: int, key: PublicKey, hashed: bool = False
    ) -> KnownHostEntry:
        """Append an entry for ``key`` at ``host``/``port`` to the file ``path``, and to this object.

        The file and its directory are created if missing, with modes 0600 and
        0700. With ``hashed=True`` the host name is stored as ``|1|salt|hmac``,
        as ``ssh-keygen -H`` writes it.

        Raises:
            ValueError: ``host`` is not a plain host name (empty, or containing
                whitespace, commas or pattern characters).
            OSError: the file cannot be written.
        """
        if not host or any(c.isspace() or c in ",*?!#|@" for c in host):
            raise ValueError(f"cannot add known_hosts entry for host {host!r}: not a plain host name")
        name = _host_names(host, port)[0]
        if hashed:
            salt = os.urandom(_SHA1_SIZE)
            hosts = "|1|{}|{}".format(
                base64.b64encode(salt).decode("ascii"),
                base64.b64encode(_hmac_sha1(salt, name)).decode("ascii"),
            )
        else:
            hosts = name
        line = f"{hosts} {key.openssh_line()}\n".encode("ascii")

        file_path = Path(path)
        file_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(file_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+b") as file:
            existing = file.read()
            # Never glue our line onto a last line that lacks its newline.
            prefix = b"\n" if existing and not existing.endswith(b"\n") else b""
            file.write(prefix + line)
        lineno = existing.count(b"\n") + (1 if prefix else 0) + 1
        entry = KnownHostEntry(Marker.NONE, hosts, key, "", os.fspath(path), lineno, order=self._count)
        self._index(entry)
        return entry


class _SkipLine(Exception):
    """Why a line is skipped; ``level`` is the logging level to report it at."""

    def __init__(self, message: str, level: int = logging.WARNING) -> None:
        super().__init__(message)
        self.level = level


def _parse_key(key_type: str, b64: str) -> PublicKey:
    try:
        blob = base64.b64decode(b64.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        if key_type.isdigit():  # an SSH-1 RSA key: "bits exponent modulus"
            raise _SkipLine("SSH-1 keys are not supported", logging.DEBUG) from None
        raise _SkipLine(f"invalid base64 in {key_type[:40]!r} key") from None
    if key_type not in SUPPORTED_KEY_TYPES:
        # A well-formed key of a type we cannot use (ssh-dss, sk-*, ...) is
        # valid known_hosts content, not an error worth a warning.
        try:
            blob_type = Reader(blob, "public key blob").ascii()
        except DecodeError:
            blob_type = None
        if blob_type == key_type and _ALGORITHM_NAME.fullmatch(key_type):
            raise _SkipLine(f"unsupported key type {key_type}", logging.DEBUG)
        raise _SkipLine(f"unknown key type {key_type[:40]!r}")
    try:
        key = decode_public_key(blob)
    except KeyImportError as exc:
        raise _SkipLine(str(exc)) from None
    if key.key_type != key_type:
        raise _SkipLine(f"line says {key_type!r} but the key is {key.key_type!r}")
    return key


def _parse_hashed(hosts: str) -> tuple[bytes, bytes]:
    parts = hosts.split("|")
    # "|1|salt|hash".split("|") == ["", "1", salt, hash]
    if len(parts) != 4 or parts[1] != "1":
        raise _SkipLine("malformed hashed host name (expected |1|salt|hash)")
    try:
        salt = base64.b64decode(parts[2], validate=True)
        digest = base64.b64decode(parts[3], validate=True)
    except binascii.Error:
        raise _SkipLine("invalid base64 in hashed host name") from None
    # ssh-keygen writes a 20-byte salt and a 20-byte HMAC-SHA1; OpenSSH rejects other sizes.
    if len(salt) != _SHA1_SIZE or len(digest) != _SHA1_SIZE:
        raise _SkipLine("hashed host name has a salt or hash of the wrong size")
    return salt, digest
