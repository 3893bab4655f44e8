"""OpenSSH certificates (PROTOCOL.certkeys): names, parsing and checks.

Theory of operation
-------------------
An OpenSSH certificate is a public key blob of its own type
(``ssh-ed25519-cert-v01@openssh.com``...) that carries the certified
("subject") key's fields, then who it is for (type, key id, principals),
when it is valid, options and extensions, the CA's public key and, last, the
CA's signature over every byte before the signature field::

    string  key type            (one of CERT_KEY_TYPES)
    string  nonce
    ...     the subject key's fields, as in its plain blob minus the type name
    uint64  serial              uint32 type (1 user, 2 host)
    string  key id              string principals (a packed list of strings)
    uint64  valid after         uint64 valid before
    string  critical options    string extensions (packed (name, data) pairs)
    string  reserved            string signature key (the CA)
    string  signature           (over everything above)

:func:`parse_certificate` decodes all of it, rebuilds the subject key as a
plain :class:`PublicKey` (so every rule of :func:`decode_public_key` applies to
it), and verifies the CA signature; a :class:`Certificate` therefore always
has a good CA signature. Two names must stay apart, as for plain keys: the
certificate *key type* (there is one RSA cert type, ``ssh-rsa-cert-v01``) and
the certificate *signature algorithm* negotiated or named in a request
(``rsa-sha2-512-cert-v01@openssh.com``): :data:`CERT_SIGNATURE_ALGORITHMS`
maps the latter to the plain algorithm its signatures are made with.

Whether a certificate is *acceptable* is a separate, pure question of type,
principal, validity window and critical options, answered by
:func:`check_certificate` with the time passed in. Which CA to trust is not
known here: that is known_hosts' business (:mod:`trissh._auth.host_key_check`).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from .._errors import KeyImportError
from .._public import public
from .._wire import DecodeError, Reader, string
from .cert_names import (
    CERT_HOST_KEY_ALGORITHMS,
    CERT_KEY_TYPES,
    CERT_SIGNATURE_ALGORITHMS,
    LEGACY_CERT_HOST_KEY_ALGORITHMS,
    cert_algorithm,
    is_certificate_type,
)
from .hostkeys import HOST_KEY_ALGORITHMS, PublicKey, decode_public_key

__all__ = [
    "CA_SIGNATURE_ALGORITHMS",
    "CERT_HOST_KEY_ALGORITHMS",
    "CERT_KEY_TYPES",
    "CERT_SIGNATURE_ALGORITHMS",
    "FOREVER",
    "LEGACY_CERT_HOST_KEY_ALGORITHMS",
    "MAX_CERTIFICATE_SIZE",
    "MAX_PRINCIPALS",
    "CertCheck",
    "CertProblem",
    "CertType",
    "Certificate",
    "cert_algorithm",
    "check_certificate",
    "is_certificate_type",
    "parse_certificate",
    "parse_openssh_certificate_line",
]

#: Signature algorithms a CA may sign certificates with. Not ``ssh-rsa``
#: (SHA-1): OpenSSH 8.2 dropped it from its default CASignatureAlgorithms, and
#: so refuses such certificates; so do we.
CA_SIGNATURE_ALGORITHMS: Final[frozenset[str]] = frozenset(
    name for name, row in HOST_KEY_ALGORITHMS.items() if not row.legacy
)

#: ``valid_before`` of a certificate that never expires.
FOREVER: Final = 2**64 - 1

#: Largest certificate blob accepted. A certificate with a 16384-bit RSA
#: subject and CA (OpenSSH's maximum) is about 4.5 KiB; 64 KiB leaves room for
#: MAX_PRINCIPALS long names and generous options while bounding the work an
#: attacker-supplied blob can cause.
MAX_CERTIFICATE_SIZE: Final = 64 * 1024
#: At most this many principals, OpenSSH's SSHKEY_CERT_MAX_PRINCIPALS.
MAX_PRINCIPALS: Final = 256

# Certificate types of security keys (FIDO): recognised, so the error says why.
_SK_CERT_TYPES: Final = frozenset(
    {"sk-ssh-ed25519-cert-v01@openssh.com", "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com"}
)
# Plain key type -> how many string (or mpint) fields follow the nonce before the serial.
_SUBJECT_FIELDS: Final[Mapping[str, int]] = {
    "ssh-ed25519": 1,  # string pk
    "ecdsa-sha2-nistp256": 2,  # string curve, string Q
    "ecdsa-sha2-nistp384": 2,
    "ecdsa-sha2-nistp521": 2,
    "ssh-rsa": 2,  # mpint e, mpint n
}


@public
class CertType(enum.IntEnum):
    """PROTOCOL.certkeys ``type`` field."""

    USER = 1
    HOST = 2


@public
@dataclass(frozen=True, slots=True, eq=False)
class Certificate:
    """A parsed OpenSSH certificate. Its CA signature is checked by :func:`parse_certificate`.

    Attributes:
        blob: the whole certificate as it travels on the wire.
        key_type: the certificate key type, e.g. ``"ssh-ed25519-cert-v01@openssh.com"``.
        key: the certified (subject) public key.
        serial, cert_type, key_id, principals, valid_after, valid_before: as in PROTOCOL.certkeys
            (``valid_before`` 2**64-1, :data:`FOREVER`, means forever).
        critical_options, extensions: name -> data (raw bytes of the inner string, b"" when empty),
            read-only, in certificate order.
        signature_key: the CA's public key.
        signature_algorithm: the algorithm the CA signed with, e.g. ``"rsa-sha2-512"``.
        nonce: the CA's random nonce.
    """

    blob: bytes
    key_type: str
    key: PublicKey
    serial: int
    cert_type: CertType
    key_id: str
    principals: tuple[str, ...]
    valid_after: int
    valid_before: int
    critical_options: Mapping[str, bytes]
    extensions: Mapping[str, bytes]
    signature_key: PublicKey
    signature_algorithm: str = ""
    nonce: bytes = field(default=b"", repr=False)

    @property
    def fingerprint(self) -> str:
        """The subject key's fingerprint (as ``ssh-keygen -l`` shows for a certificate)."""
        return self.key.fingerprint

    # Every field is decoded from the blob: two certificates are equal when their blobs are
    # (and the option mappings, being read-only views, could not be hashed anyway).
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Certificate):
            return NotImplemented
        return self.blob == other.blob

    def __hash__(self) -> int:
        return hash(self.blob)

    def openssh_line(self, comment: str = "") -> str:
        """The certificate as one ``*-cert.pub`` line: ``"<cert type> <base64 blob>[ <comment>]"``."""
        line = f"{self.key_type} {base64.b64encode(self.blob).decode('ascii')}"
        return f"{line} {comment}" if comment else line

    def describe(self) -> str:
        """A short description for messages: type, key id, serial and CA fingerprint."""
        kind = "host" if self.cert_type is CertType.HOST else "user"
        return (
            f"{kind} certificate {self.key_id!r} serial {self.serial} "
            f"({self.key.key_type} {self.key.fingerprint}, signed by CA {self.signature_key.fingerprint})"
        )


# --- parsing -----------------------------------------------------------------------------------


def _offset(blob: bytes, reader: Reader) -> int:
    return len(blob) - reader.remaining


def _packed_strings(data: bytes, what: str) -> tuple[str, ...]:
    reader = Reader(data, what)
    names: list[str] = []
    while reader.remaining:
        if len(names) == MAX_PRINCIPALS:
            raise KeyImportError(f"certificate has more than {MAX_PRINCIPALS} principals")
        names.append(reader.text())
    return tuple(names)


def _options(data: bytes, what: str) -> Mapping[str, bytes]:
    # PROTOCOL.certkeys: a sequence of (string name, string data); each name at most once.
    reader = Reader(data, what)
    options: dict[str, bytes] = {}
    while reader.remaining:
        name = reader.text()
        value = reader.string()
        if name in options:
            raise KeyImportError(f"certificate {what} list names {name[:64]!r} twice")
        options[name] = value
    return MappingProxyType(options)


def parse_certificate(blob: bytes) -> Certificate:
    """Decode a certificate blob and verify the CA's signature over it.

    The subject key and the CA key are validated as :func:`decode_public_key`
    does; the CA key may not itself be a certificate, and must have signed
    with one of :data:`CA_SIGNATURE_ALGORITHMS`.

    Raises:
        KeyImportError: malformed (truncated, trailing bytes, over
            :data:`MAX_CERTIFICATE_SIZE` or :data:`MAX_PRINCIPALS`, an unknown
            certificate type number), an unsupported type (security keys,
            DSA), or a bad CA signature; the message says which.
    """
    blob = bytes(blob)
    if len(blob) > MAX_CERTIFICATE_SIZE:
        raise KeyImportError(
            f"certificate of {len(blob)} bytes is too large (maximum {MAX_CERTIFICATE_SIZE})"
        )
    try:
        return _parse(blob)
    except DecodeError as exc:
        raise KeyImportError(f"malformed certificate: {exc}") from None


def _parse(blob: bytes) -> Certificate:
    reader = Reader(blob, "certificate")
    key_type = reader.ascii()
    if key_type in _SK_CERT_TYPES:
        raise KeyImportError(f"{key_type} certificate: security keys are not supported")
    plain_type = CERT_KEY_TYPES.get(key_type)
    if plain_type is None:
        raise KeyImportError(f"unsupported certificate type {key_type[:64]!r}")
    nonce = reader.string()
    start = _offset(blob, reader)
    for _ in range(_SUBJECT_FIELDS[plain_type]):
        reader.string_view()
    try:
        key = decode_public_key(string(plain_type) + blob[start : _offset(blob, reader)])
    except KeyImportError as exc:
        raise KeyImportError(f"certificate's subject key: {exc}") from None

    serial = reader.uint64()
    type_number = reader.uint32()
    try:
        cert_type = CertType(type_number)
    except ValueError:
        raise KeyImportError(
            f"certificate has unknown type {type_number} (expected 1 user or 2 host)"
        ) from None
    key_id = reader.text()
    principals = _packed_strings(reader.string(), "certificate principals")
    valid_after = reader.uint64()
    valid_before = reader.uint64()
    critical_options = _options(reader.string(), "critical options")
    extensions = _options(reader.string(), "extensions")
    reader.string()  # reserved; PROTOCOL.certkeys says to ignore its contents
    ca_blob = reader.string()
    signed_end = _offset(blob, reader)
    signature = reader.string()
    reader.check_end()

    ca_type = Reader(ca_blob, "certificate CA key").ascii() if ca_blob else ""
    if is_certificate_type(ca_type) or ca_type in _SK_CERT_TYPES:
        raise KeyImportError("certificate's CA key is itself a certificate")
    try:
        ca_key = decode_public_key(ca_blob)
    except KeyImportError as exc:
        raise KeyImportError(f"certificate's CA key: {exc}") from None
    sig_reader = Reader(signature, "certificate signature")
    algorithm = sig_reader.ascii()
    if algorithm not in CA_SIGNATURE_ALGORITHMS:
        if algorithm == "ssh-rsa":
            raise KeyImportError(
                "certificate is signed with ssh-rsa (RSA/SHA-1), which is refused as OpenSSH does"
            )
        raise KeyImportError(f"certificate is signed with unsupported algorithm {algorithm[:64]!r}")
    if HOST_KEY_ALGORITHMS[algorithm].key_type != ca_key.key_type:
        raise KeyImportError(
            f"certificate signature algorithm {algorithm} does not match CA key {ca_key.key_type}"
        )
    if not ca_key.verify(signature, blob[:signed_end], algorithm):
        raise KeyImportError(
            f"certificate's CA signature does not verify (CA {ca_key.key_type} {ca_key.fingerprint})"
        )
    return Certificate(
        blob=blob,
        key_type=key_type,
        key=key,
        serial=serial,
        cert_type=cert_type,
        key_id=key_id,
        principals=principals,
        valid_after=valid_after,
        valid_before=valid_before,
        critical_options=critical_options,
        extensions=extensions,
        signature_key=ca_key,
        signature_algorithm=algorithm,
        nonce=nonce,
    )


def parse_openssh_certificate_line(line: str | bytes) -> Certificate:
    """Parse one ``*-cert.pub`` line, ``"<cert type> <base64 blob> [comment]"``.

    Raises:
        KeyImportError: not of that form, bad base64, an invalid certificate
            (see :func:`parse_certificate`), or a type word that differs from
            the type inside the blob.
    """
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    fields = text.split(maxsplit=2)
    if len(fields) < 2:
        raise KeyImportError("not an OpenSSH certificate line (expected '<type> <base64>')")
    type_word, b64 = fields[0], fields[1]
    if type_word not in CERT_KEY_TYPES and type_word not in _SK_CERT_TYPES:
        raise KeyImportError(f"{type_word[:64]!r} is not a certificate type")
    if len(b64) > MAX_CERTIFICATE_SIZE * 4 // 3 + 4:
        raise KeyImportError(f"certificate of over {MAX_CERTIFICATE_SIZE} bytes is too large")
    try:
        blob = base64.b64decode(b64.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise KeyImportError(f"{type_word[:64]} certificate: invalid base64") from None
    cert = parse_certificate(blob)
    if cert.key_type != type_word:
        raise KeyImportError(
            f"certificate line says {type_word[:64]!r} but the certificate is {cert.key_type!r}"
        )
    return cert


# --- checks ------------------------------------------------------------------------------------


@public
class CertCheck(enum.Enum):
    """Which acceptance check a certificate failed (see :func:`check_certificate`)."""

    #: A user certificate where a host certificate is needed, or the reverse.
    TYPE = "certificate type"
    #: The name is not among the principals, or there are none.
    PRINCIPAL = "principal"
    #: ``now`` is before ``valid_after``.
    NOT_YET_VALID = "not yet valid"
    #: ``now`` is at or after ``valid_before``.
    EXPIRED = "expired"
    #: The certificate carries critical options we do not understand.
    CRITICAL_OPTIONS = "critical options"


@public
@dataclass(frozen=True, slots=True)
class CertProblem:
    """Why :func:`check_certificate` refused a certificate.

    Fields:
        check: the failed :class:`CertCheck`.
        message: a sentence saying what was wrong, naming the values involved.
    """

    check: CertCheck
    message: str


def check_certificate(
    cert: Certificate,
    *,
    cert_type: CertType,
    principal: str,
    now: int,
    known_critical_options: frozenset[str] = frozenset(),
) -> CertProblem | None:
    """Is ``cert`` acceptable as a ``cert_type`` certificate for ``principal`` at time ``now``?

    The checks and their order are OpenSSH's (sshkey.c
    ``sshkey_cert_check_authority``, ``sshkey_cert_check_host``): the type must
    match; ``valid_after <= now < valid_before``; the principal list must not
    be empty (OpenSSH accepts an empty list as "anyone" only for user
    certificates on a server, which trissh never is); ``principal`` must be
    listed, and for host certificates the listed principals are patterns
    with ``*`` and ``?`` (OpenSSH match_pattern, case-sensitive); and every
    critical option must be one the caller understands (host certificates
    define none, so for them any is refused). The CA is not judged here.

    Args:
        now: seconds since the epoch (passed in, so tests can choose it).
        known_critical_options: option names the caller will enforce.

    Returns:
        None when acceptable, else the first :class:`CertProblem` found.
    """
    if cert.cert_type is not cert_type:
        return CertProblem(
            CertCheck.TYPE,
            f"{cert.describe()} is a {cert.cert_type.name.lower()} certificate, "
            f"not a {cert_type.name.lower()} certificate",
        )
    if now < cert.valid_after:
        return CertProblem(
            CertCheck.NOT_YET_VALID, f"{cert.describe()} is not valid before {_when(cert.valid_after)}"
        )
    if now >= cert.valid_before:
        return CertProblem(CertCheck.EXPIRED, f"{cert.describe()} expired at {_when(cert.valid_before)}")
    if not cert.principals:
        return CertProblem(CertCheck.PRINCIPAL, f"{cert.describe()} lists no principals")
    wildcard = cert_type is CertType.HOST
    if not any(_principal_matches(principal, p, wildcard) for p in cert.principals):
        listed = ", ".join(repr(p[:64]) for p in cert.principals[:8])
        if len(cert.principals) > 8:
            listed += ", ..."
        return CertProblem(
            CertCheck.PRINCIPAL, f"{cert.describe()} is not valid for {principal!r} (principals: {listed})"
        )
    unknown = sorted(set(cert.critical_options) - known_critical_options)
    if unknown:
        names = ", ".join(repr(n[:64]) for n in unknown[:8])
        return CertProblem(
            CertCheck.CRITICAL_OPTIONS, f"{cert.describe()} has unsupported critical options: {names}"
        )
    return None


def _principal_matches(name: str, principal: str, wildcard: bool) -> bool:
    if not wildcard:
        return name == principal
    # "*" and "?" glob, in O(len(name) * len(principal)) at worst: the greedy
    # match that backtracks only to the last "*" (no regex, whose backtracking
    # on a pattern with many stars an attacker's certificate could choose).
    n = p = 0
    star_p, star_n = -1, 0
    while n < len(name):
        if p < len(principal) and principal[p] in ("?", name[n]):
            n += 1
            p += 1
        elif p < len(principal) and principal[p] == "*":
            star_p, star_n = p, n
            p += 1
        elif star_p >= 0:
            star_n += 1
            n, p = star_n, star_p + 1
        else:
            return False
    return all(c == "*" for c in principal[p:])


def _when(timestamp: int) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return f"{timestamp} (seconds since the epoch)"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
