"""OpenSSH known_hosts files: is this the key (or certificate) we expected for this host?

Theory of operation
-------------------
A known_hosts line is ``[@marker] host-patterns key-type base64-key [comment]``
(sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"). The host is looked up under the name
OpenSSH uses for it: the bare host name on port 22, ``[host]:port`` otherwise.
(``[host]:22`` is accepted for port 22 too.) As OpenSSH does (sshconnect.c,
"checking without port identifier"), a host on another port that its
``[host]:port`` entries say nothing about is looked up again under its bare
name, so that ``*.example.com`` lines serve every port.

Lookups are cheap for the common case. Each line goes to one of three indexes:

* lines whose patterns are all plain names go into a dict keyed by lower-cased
  name, so a lookup is one dict access however long the file is;
* lines with wildcards (``*``, ``?``) or negations (``!pattern``) are matched one
  by one, with host_patterns' wildcard walk (there are usually few);
* hashed lines (``|1|salt|HMAC-SHA1(salt, name)``, from ``ssh-keygen -H``) can
  only be tested by computing one HMAC per line.

:meth:`KnownHosts.check` then decides, for a plain key the server presented,
as OpenSSH does (hostfile.c ``check_hostkeys_by_key_or_type``): a matching
``@revoked`` entry wins; otherwise an equal key is TRUSTED; otherwise a
different key *of the same type* is CHANGED; otherwise (no entry, or entries of
other key types only) the key is UNKNOWN.

:meth:`KnownHosts.check_certificate` decides for a host certificate: the
certified key or its CA listed ``@revoked`` for the host is REVOKED; a
``@cert-authority`` line for the host holding the certificate's CA makes the
CA trusted, and the certificate is then TRUSTED or INVALID according to
:func:`~trissh._algorithms.certificates.check_certificate` (type host, the
host name among the principals, the validity window, no critical options);
no such line is NO_CA, and the caller falls back to judging the certified key
as a plain host key, as OpenSSH does ("No matching CA found. Retry with plain
key"). The clock is an argument, never read here.

A malformed line is skipped with a warning naming file and line, never fatal,
as in OpenSSH. Lines with key types trissh does not support (``ssh-dss``,
security keys, SSH-1 keys) are skipped at debug level: they are valid, just not
usable. Adding a line (:meth:`KnownHosts.add`) is one ``O_APPEND`` write: the
file is never rewritten or truncated. This module does blocking file I/O; from
Trio, call it in a worker thread (``trio.to_thread.run_sync``) where that matters.
"""

from __future__ import annotations

import base64
import binascii
import enum
import errno
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from hmac import compare_digest
from pathlib import Path
from typing import TYPE_CHECKING, Final, final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from .._algorithms.hostkeys import SUPPORTED_KEY_TYPES, PublicKey, decode_public_key
from .._errors import KeyImportError
from .._public import public
from .._wire import DecodeError, Reader
from .host_patterns import PatternMatcher

if TYPE_CHECKING:
    from .._algorithms.certificates import Certificate, CertProblem

__all__ = [
    "CertificateStatus",
    "CertificateVerdict",
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


@public
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
    #: ``@cert-authority``: a CA whose host certificates are trusted for the line's hosts.
    CERT_AUTHORITY = "@cert-authority"


@public
class CertificateStatus(enum.Enum):
    """The verdict of :meth:`KnownHosts.check_certificate` on a host certificate."""

    #: A ``@cert-authority`` line for this host holds the certificate's CA,
    #: and the certificate passes every check.
    TRUSTED = "trusted"
    #: The CA is trusted for this host, but the certificate fails a check
    #: (:attr:`CertificateVerdict.problem` says which).
    INVALID = "invalid"
    #: The CA key or the certified key is listed ``@revoked`` for this host.
    REVOKED = "revoked"
    #: No ``@cert-authority`` line for this host holds this CA: judge the
    #: certified key as a plain host key instead, as OpenSSH does.
    NO_CA = "no CA"


@public
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

    @property
    def where(self) -> str:
        """``file:line``, for messages."""
        return f"{self.source}:{self.lineno}"


@public
@dataclass(frozen=True, slots=True)
class CertificateVerdict:
    """What :meth:`KnownHosts.check_certificate` found.

    Attributes:
        status: the :class:`CertificateStatus`.
        entry: the line that decided: the ``@cert-authority`` line trusting the CA
            (TRUSTED, INVALID) or the ``@revoked`` line (REVOKED); None for NO_CA.
        problem: for INVALID, which check failed and why.
    """

    status: CertificateStatus
    entry: KnownHostEntry | None = None
    problem: CertProblem | None = None


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


@public
@final
class KnownHosts:
    """The entries of one or more known_hosts files, indexed for lookup by host.

    Build one with :meth:`load` or :meth:`from_text`; ``KnownHosts()`` is empty.
    Ask :meth:`check` about a server's key and :meth:`check_certificate` about
    its host certificate; :meth:`add` appends a new key.

    Attributes:
        paths: the files given to :meth:`load` / :meth:`load_file`, in order,
            including those that did not exist (``accept-new`` writes to the first).
    """

    __slots__ = ("_by_name", "_count", "_hashed", "_patterned", "paths")

    def __init__(self) -> None:
        self._by_name: dict[str, list[KnownHostEntry]] = {}
        self._patterned: list[tuple[PatternMatcher, KnownHostEntry]] = []
        self._hashed: list[tuple[bytes, bytes, KnownHostEntry]] = []
        self._count = 0
        self.paths: list[Path] = []

    @classmethod
    def load(
        cls,
        paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
        *,
        required: bool = False,
    ) -> KnownHosts:
        """Read known_hosts files, in order.

        Args:
            paths: a file or files.
            required: when True, every file must exist (use it for files a user
                named explicitly); when False, missing files are skipped silently
                (use it for the default files, which often do not exist).

        Raises:
            FileNotFoundError: ``required`` and a file does not exist; the error names it.
            OSError: a file exists but cannot be read (the error names the file).
        """
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        known_hosts = cls()
        for path in paths:
            if not known_hosts.load_file(path) and required:
                raise FileNotFoundError(
                    errno.ENOENT, f"known_hosts file {os.fspath(path)!r} does not exist", os.fspath(path)
                )
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
        self.paths.append(Path(path))
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
                self._patterned.append((PatternMatcher(patterns), entry))
            else:
                for name in patterns:
                    self._by_name.setdefault(name.lower(), []).append(entry)
        self._count += 1

    # --- lookup --------------------------------------------------------------------------------

    def lookup(self, host: str, port: int = 22) -> list[KnownHostEntry]:
        """Every entry whose host patterns match ``host`` on ``port``, in file order.

        Includes ``@revoked`` and ``@cert-authority`` entries; see :attr:`KnownHostEntry.marker`.
        Only the name for this port (``[host]:port`` off port 22) is looked up;
        the checks add the bare-name fallback.
        """
        return self._entries(_host_names(host, port))

    def _entries(self, names: list[str]) -> list[KnownHostEntry]:
        found: dict[int, KnownHostEntry] = {}
        for name in names:
            for entry in self._by_name.get(name, ()):
                found[entry.order] = entry
        for matcher, entry in self._patterned:
            if matcher.matches(names):
                found[entry.order] = entry
        for salt, digest, entry in self._hashed:
            if any(compare_digest(_hmac_sha1(salt, name), digest) for name in names):
                found[entry.order] = entry
        return [found[order] for order in sorted(found)]

    def _name_sets(self, host: str, port: int) -> list[list[KnownHostEntry]]:
        """The entries for ``[host]:port``, then (off port 22) those for the bare name."""
        sets = [self.lookup(host, port)]
        if port != 22:
            sets.append(self._entries([host.lower()]))
        return sets

    def check(self, host: str, port: int, key: PublicKey) -> HostKeyStatus:
        """Judge the plain host key ``key`` presented by ``host`` on ``port``.

        Returns:
            REVOKED if an ``@revoked`` entry for the host holds this key; else
            TRUSTED if an entry holds it; else CHANGED if an entry holds another
            key of the same type; else UNKNOWN. Off port 22, when the
            ``[host]:port`` entries give UNKNOWN, an entry for the bare host
            name holding this key makes it TRUSTED (OpenSSH does the same).
            ``@cert-authority`` entries play no part: see :meth:`check_certificate`.
        """
        return self.explain(host, port, key)[0]

    def explain(self, host: str, port: int, key: PublicKey) -> tuple[HostKeyStatus, KnownHostEntry | None]:
        """Like :meth:`check`, also returning the entry that decided (``@revoked``, equal or other key)."""
        sets = self._name_sets(host, port)
        for entries in sets:  # revocation under any name wins
            for entry in entries:
                if entry.marker is Marker.REVOKED and entry.key == key:
                    return HostKeyStatus.REVOKED, entry
        status, found = _judge_plain(sets[0], key)
        if status is HostKeyStatus.UNKNOWN and len(sets) > 1:
            bare_status, bare_found = _judge_plain(sets[1], key)
            if bare_status is HostKeyStatus.TRUSTED:
                return bare_status, bare_found
        return status, found

    def check_certificate(
        self, host: str, port: int, certificate: Certificate, *, now: int
    ) -> CertificateVerdict:
        """Judge the host certificate ``certificate`` presented by ``host`` on ``port`` at time ``now``.

        Args:
            now: seconds since the epoch.

        Returns:
            REVOKED when an ``@revoked`` entry for the host holds the certified
            key or the CA key; else, when an ``@cert-authority`` entry for the
            host holds the CA key (looked up under ``[host]:port``, then the bare
            name), TRUSTED or INVALID as :func:`check_certificate` finds the
            certificate for principal ``host``; else NO_CA.
        """
        sets = self._name_sets(host, port)
        revoked = (certificate.key, certificate.signature_key)
        for entries in sets:
            for entry in entries:
                if entry.marker is Marker.REVOKED and entry.key in revoked:
                    return CertificateVerdict(CertificateStatus.REVOKED, entry)
        for entries in sets:
            for entry in entries:
                if entry.marker is Marker.CERT_AUTHORITY and entry.key == certificate.signature_key:
                    # Imported here: only a host certificate gets this far (see user_certificates too).
                    from .._algorithms.certificates import CertType, check_certificate

                    problem = check_certificate(
                        certificate, cert_type=CertType.HOST, principal=host.lower(), now=now
                    )
                    if problem is None:
                        return CertificateVerdict(CertificateStatus.TRUSTED, entry)
                    return CertificateVerdict(CertificateStatus.INVALID, entry, problem)
        return CertificateVerdict(CertificateStatus.NO_CA)

    def known_key_types(self, host: str, port: int) -> set[str]:
        """The plain key types known for ``host`` on ``port`` (including the bare-name fallback)."""
        return {
            e.key.key_type
            for entries in self._name_sets(host, port)
            for e in entries
            if e.marker is Marker.NONE
        }

    def has_cert_authority(self, host: str, port: int) -> bool:
        """Whether any ``@cert-authority`` line covers ``host`` on ``port`` (or its bare name)."""
        return any(
            e.marker is Marker.CERT_AUTHORITY for entries in self._name_sets(host, port) for e in entries
        )

    # --- adding --------------------------------------------------------------------------------

    def add(
        self, path: str | os.PathLike[str] | None, host: str, port: int, key: PublicKey, hashed: bool = False
    ) -> KnownHostEntry:
        """Append an entry for ``key`` at ``host``/``port`` to the file ``path``, and to this object.

        With ``path`` None the entry is added to this object only.

        The file and its directory are created if missing, with modes 0600 and
        0700. The line goes in with one ``write`` on a descriptor opened with
        ``O_APPEND``: existing bytes are never rewritten or truncated, and a
        concurrent writer's line cannot be interleaved with ours. With
        ``hashed=True`` the host name is stored as ``|1|salt|hmac``, as
        ``ssh-keygen -H`` writes it.

        Raises:
            ValueError: ``host`` is not a plain host name (empty, or containing
                whitespace, commas or pattern characters).
            OSError: the file cannot be written (also for a short write).
        """
        if not host or any(c.isspace() or c in ",*?!#|@[]" for c in host):
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
        if path is None:
            entry = KnownHostEntry(Marker.NONE, hosts, key, "", "<memory>", 0, order=self._count)
            self._index(entry)
            return entry
        line = f"{hosts} {key.openssh_line()}\n".encode("ascii")

        file_path = Path(path)
        file_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(file_path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            size = os.fstat(fd).st_size
            # Never glue our line onto a last line that lacks its newline.
            prefix = b"\n" if size and os.pread(fd, 1, size - 1) != b"\n" else b""
            data = prefix + line
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(
                    errno.EIO, f"short write to {os.fspath(path)!r} ({written} of {len(data)} bytes)"
                )
            lineno = _count_lines(fd, size) + (1 if prefix else 0) + 1
        finally:
            os.close(fd)
        entry = KnownHostEntry(Marker.NONE, hosts, key, "", os.fspath(path), lineno, order=self._count)
        self._index(entry)
        return entry


def _judge_plain(
    entries: list[KnownHostEntry], key: PublicKey
) -> tuple[HostKeyStatus, KnownHostEntry | None]:
    host_entries = [e for e in entries if e.marker is Marker.NONE]
    for entry in host_entries:
        if entry.key == key:
            return HostKeyStatus.TRUSTED, entry
    for entry in host_entries:
        if entry.key.key_type == key.key_type:
            return HostKeyStatus.CHANGED, entry
    return HostKeyStatus.UNKNOWN, None


def _count_lines(fd: int, size: int) -> int:
    """Newlines in the first ``size`` bytes of ``fd`` (read in blocks; only for the line number)."""
    count = 0
    offset = 0
    while offset < size:
        block = os.pread(fd, min(1 << 16, size - offset), offset)
        if not block:
            break
        count += block.count(b"\n")
        offset += len(block)
    return count


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
    except (binascii.Error, ValueError):  # ValueError: characters outside ASCII
        raise _SkipLine("invalid base64 in hashed host name") from None
    # ssh-keygen writes a 20-byte salt and a 20-byte HMAC-SHA1; OpenSSH rejects other sizes.
    if len(salt) != _SHA1_SIZE or len(digest) != _SHA1_SIZE:
        raise _SkipLine("hashed host name has a salt or hash of the wrong size")
    return salt, digest
