"""The ssh-agent client (draft-miller-ssh-agent), over a Trio unix socket.

Theory of operation
-------------------
The agent protocol is request/response over a stream: every message, both
ways, is ``uint32 length || byte type || contents``, and the agent answers
each request with exactly one message, in order. :class:`SSHAgentClient`
therefore runs one request at a time (a :class:`trio.Lock`) and reads the reply
before the next request goes out.

Three rules keep a bad or dying agent from hurting the caller:

* **Bounded.** A reply longer than :data:`MAX_AGENT_MESSAGE` is refused before
  any of it is read; a list of keys can claim no more keys than its bytes can
  hold.
* **Checked.** Every reply must be the type the request expects
  (``SSH_AGENT_FAILURE`` becomes an :class:`AgentError` naming the request),
  decode completely, and, for a signature, carry the algorithm asked for.
* **Never a hang, never a desynchronised stream.** EOF or a reset in the middle
  of a reply raises :class:`AgentError`: the read on the socket is what ends
  the wait. (An agent that simply never answers is the caller's to time out,
  as with any Trio I/O.) After any failure in the middle of a request,
  including cancellation, the socket is closed and forgotten: its position in
  the message stream is unknown, so the next request connects afresh.

Keys the agent lists are decoded with :func:`decode_public_key` (plain keys)
or :func:`parse_certificate` (OpenSSH certificates). Security keys
(``sk-*@openssh.com``) and other types trissh cannot use are skipped with a
log line, not an error: one odd key must not hide the others.

This module knows nothing of SSH connections; agent forwarding, which relays
the same byte stream over a channel, is :mod:`trissh._auth.agent_forward`.
"""

from __future__ import annotations

import enum
import logging
import os
from types import TracebackType
from typing import Final

import trio
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .._algorithms.certificates import (
    CERT_KEY_TYPES,
    CERT_SIGNATURE_ALGORITHMS,
    Certificate,
    is_certificate_type,
    parse_certificate,
)
from .._algorithms.hostkeys import HOST_KEY_ALGORITHMS, PublicKey, decode_public_key
from .._errors import AgentError, KeyImportError
from .._public import public
from .._wire import DecodeError, Reader, byte, mpint, string, uint32
from .agent_path import AUTH_SOCK_ENV, default_agent_path
from .identity import Identity
from .keys import PrivateKey

__all__ = [
    "MAX_AGENT_MESSAGE",
    "SECURITY_KEY_TYPES",
    "AgentIdentity",
    "AgentMessage",
    "AgentSignFlag",
    "SSHAgentClient",
    "default_agent_path",
]

log = logging.getLogger("trissh.agent")

#: The largest agent message we send or accept. OpenSSH's ssh-agent and ssh-add
#: use the same limit (AGENT_MAX_LEN): it holds hundreds of keys and
#: certificates, and a length beyond it is a broken or hostile agent, not data.
MAX_AGENT_MESSAGE: Final = 256 * 1024

#: FIDO security key types (and their certificates), which trissh cannot use.
SECURITY_KEY_TYPES: Final[frozenset[str]] = frozenset(
    {
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "sk-ssh-ed25519-cert-v01@openssh.com",
    }
)


class AgentMessage(enum.IntEnum):
    """Agent message numbers (draft-miller-ssh-agent §6.1)."""

    FAILURE = 5
    SUCCESS = 6
    REQUEST_IDENTITIES = 11
    IDENTITIES_ANSWER = 12
    SIGN_REQUEST = 13
    SIGN_RESPONSE = 14
    ADD_IDENTITY = 17
    REMOVE_IDENTITY = 18
    REMOVE_ALL_IDENTITIES = 19
    ADD_ID_CONSTRAINED = 25
    EXTENSION_FAILURE = 28


class AgentSignFlag(enum.IntFlag):
    """SIGN_REQUEST flags (draft-miller-ssh-agent §6.7): which hash an RSA signature uses.

    With neither, an RSA key signs ``ssh-rsa`` (SHA-1).
    """

    RSA_SHA2_256 = 2
    RSA_SHA2_512 = 4


class _Constraint(enum.IntEnum):
    """Key constraints of ADD_ID_CONSTRAINED (draft-miller-ssh-agent §6.2)."""

    LIFETIME = 1
    CONFIRM = 2


#: Plain signature algorithm -> the flag that asks the agent for it.
_RSA_FLAGS: Final = {
    "rsa-sha2-256": AgentSignFlag.RSA_SHA2_256,
    "rsa-sha2-512": AgentSignFlag.RSA_SHA2_512,
}

# The smallest key entry in IDENTITIES_ANSWER: two empty strings.
_MIN_KEY_ENTRY: Final = 8
_U32_MAX: Final = 0xFFFFFFFF


@public
class SSHAgentClient:
    """A connection to an ssh-agent: list, use, add and remove its keys.

    Use as an async context manager (which connects at once, so a missing
    agent is reported there)::

        async with SSHAgentClient() as agent:
            for identity in await agent.list_keys():
                print(identity.describe())

    Requests from several tasks are served one at a time.

    Args:
        path: the agent's unix socket; None: ``$SSH_AUTH_SOCK``.

    Raises:
        AgentError (from every request, and from ``async with``): no socket
            path is known, the agent cannot be reached, refuses the request,
            or answers something malformed, oversized or cut short.
        trio.ClosedResourceError: a request after :meth:`aclose`.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self._path = os.fspath(path) if path is not None else default_agent_path()
        self._stream: trio.SocketStream | None = None
        self._closed = False
        self._lock = trio.Lock()

    @property
    def path(self) -> str | None:
        """The agent socket's path (None: ``$SSH_AUTH_SOCK`` was unset)."""
        return self._path

    def __repr__(self) -> str:
        return f"<SSHAgentClient {self._path!r}>"

    # --- life ------------------------------------------------------------------------

    async def __aenter__(self) -> SSHAgentClient:
        async with self._lock:
            await self._connected()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection to the agent. Idempotent; identities listed by it can no longer sign."""
        self._closed = True
        self._drop()
        await trio.lowlevel.checkpoint()

    def _drop(self) -> None:
        # Synchronous, so that it is safe in cleanup under cancellation.
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.socket.close()

    async def _connected(self) -> trio.SocketStream:
        if self._closed:
            raise trio.ClosedResourceError("the agent client is closed")
        if self._stream is not None:
            await trio.lowlevel.checkpoint()
            return self._stream
        if self._path is None:
            raise AgentError(f"no ssh-agent: ${AUTH_SOCK_ENV} is not set and no agent path was given")
        try:
            self._stream = await trio.open_unix_socket(self._path)
        except OSError as exc:
            raise AgentError(
                f"cannot connect to the ssh-agent at {self._path}: {exc.strerror or exc}"
            ) from exc
        return self._stream

    # --- one request -----------------------------------------------------------------

    async def _request(self, what: str, message: bytes, expect: AgentMessage) -> Reader:
        """Send ``message`` (type byte and contents) and return a reader over the reply's contents.

        ``what`` names the request in errors ("sign request", ...).
        """
        if len(message) > MAX_AGENT_MESSAGE:
            raise AgentError(f"{what}: request of {len(message)} bytes exceeds {MAX_AGENT_MESSAGE}")
        async with self._lock:
            stream = await self._connected()
            try:
                await stream.send_all(uint32(len(message)) + message)
                reply = await self._receive_message(stream, what)
            except (trio.BrokenResourceError, OSError) as exc:
                self._drop()
                cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ else exc
                raise AgentError(
                    f"{what}: the connection to the ssh-agent at {self._path} broke: {cause}"
                ) from exc
            except BaseException:
                # Cancelled, or an AgentError below: the stream's position is unknown.
                self._drop()
                raise
        kind = reply[0]
        if kind in (AgentMessage.FAILURE, AgentMessage.EXTENSION_FAILURE):
            raise AgentError(f"the ssh-agent refused the {what}")
        if kind != expect:
            try:
                name = AgentMessage(kind).name
            except ValueError:
                name = str(kind)
            raise AgentError(f"{what}: the ssh-agent answered with message {name}, expected {expect.name}")
        return Reader(reply[1:], f"ssh-agent {expect.name}")

    async def _receive_message(self, stream: trio.SocketStream, what: str) -> bytes:
        header = await self._receive_exactly(stream, 4, what)
        length = int.from_bytes(header, "big")
        if length == 0:
            raise AgentError(f"{what}: the ssh-agent sent an empty message")
        if length > MAX_AGENT_MESSAGE:
            raise AgentError(
                f"{what}: the ssh-agent announced a reply of {length} bytes "
                f"(the maximum is {MAX_AGENT_MESSAGE})"
            )
        return await self._receive_exactly(stream, length, what)

    async def _receive_exactly(self, stream: trio.SocketStream, size: int, what: str) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = await stream.receive_some(size - len(data))
            if not chunk:
                raise AgentError(
                    f"{what}: the ssh-agent at {self._path} closed the connection mid-reply "
                    f"({len(data)} of {size} bytes received)"
                )
            data += chunk
        return bytes(data)

    # --- requests --------------------------------------------------------------------

    async def list_keys(self) -> list[AgentIdentity]:
        """The keys and certificates the agent holds, in its order (REQUEST_IDENTITIES, §6.5).

        Keys trissh cannot use (security keys, DSA, unknown types, certificates
        that do not parse) are skipped with a log message.
        """
        what = "key list request"
        reader = await self._request(
            what, byte(AgentMessage.REQUEST_IDENTITIES), AgentMessage.IDENTITIES_ANSWER
        )
        try:
            count = reader.uint32()
            if count > reader.remaining // _MIN_KEY_ENTRY:
                raise AgentError(
                    f"{what}: the ssh-agent claims {count} keys in a {reader.remaining}-byte answer"
                )
            entries = [(reader.string(), reader.text()) for _ in range(count)]
            reader.check_end()
        except DecodeError as exc:
            raise AgentError(f"{what}: malformed answer from the ssh-agent: {exc}") from None
        identities = []
        for blob, comment in entries:
            identity = self._identity(blob, comment)
            if identity is not None:
                identities.append(identity)
        return identities

    def _identity(self, blob: bytes, comment: str) -> AgentIdentity | None:
        try:
            key_type = Reader(blob, "agent key").ascii()
        except DecodeError:
            log.debug("skipping an agent key with a malformed blob (%r)", comment)
            return None
        if key_type in SECURITY_KEY_TYPES:
            log.info("skipping agent key %s (%r): security keys are not supported", key_type, comment)
            return None
        try:
            if is_certificate_type(key_type):
                certificate = parse_certificate(blob)
                return AgentIdentity(self, certificate.key, certificate, comment)
            return AgentIdentity(self, decode_public_key(blob), None, comment)
        except KeyImportError as exc:
            log.debug("skipping agent key %s (%r): %s", key_type[:64], comment, exc)
            return None

    async def sign(self, key_blob: bytes, data: bytes, flags: int = 0) -> bytes:
        """Ask the agent to sign ``data`` with the key (or certificate) ``key_blob`` (SIGN_REQUEST, §6.6).

        Args:
            key_blob: the blob as the agent listed it.
            flags: :class:`AgentSignFlag` bits; for RSA keys, RSA_SHA2_256 or
                RSA_SHA2_512 (not both) choose rsa-sha2-256/512 over ``ssh-rsa``.

        Returns:
            The SSH signature blob, ``string algorithm || string signature``.

        Raises:
            AgentError: the agent refused (it does not hold the key, or its
                user declined a confirmation), or its answer is malformed or
                names another algorithm than the one asked for.
            ValueError: ``key_blob`` is not a key blob, or both RSA flags are set.
        """
        expected = _expected_signature_algorithm(key_blob, flags)
        what = f"sign request ({expected})"
        message = byte(AgentMessage.SIGN_REQUEST) + string(key_blob) + string(data) + uint32(flags)
        reader = await self._request(what, message, AgentMessage.SIGN_RESPONSE)
        try:
            signature = reader.string()
            reader.check_end()
            inner = Reader(signature, "agent signature")
            algorithm = inner.ascii()
            inner.string()
            inner.check_end()
        except DecodeError as exc:
            raise AgentError(f"{what}: malformed signature from the ssh-agent: {exc}") from None
        if algorithm != expected:
            raise AgentError(f"{what}: the ssh-agent signed with {algorithm[:64]!r} instead")
        return signature

    async def add_key(
        self,
        key: PrivateKey,
        comment: str = "",
        *,
        certificate: Certificate | None = None,
        lifetime: int | None = None,
        confirm: bool = False,
    ) -> None:
        """Give the agent a private key, optionally with its certificate (ADD_IDENTITY, §6.2).

        Args:
            comment: shown by ``ssh-add -l``; default: the key's own comment.
            certificate: an OpenSSH certificate for ``key``: the agent then
                holds the certificate form (as ``ssh-add`` adds ``key-cert.pub``).
            lifetime: seconds after which the agent forgets the key.
            confirm: the agent asks its user before each use of the key.

        Raises:
            ValueError: a certificate of another key, or a lifetime out of range.
            AgentError: the agent refused the key.
        """
        if certificate is not None and certificate.key != key.public_key:
            raise ValueError(
                f"certificate for {certificate.key.fingerprint} does not belong to "
                f"key {key.public_key.fingerprint}"
            )
        constraints = b""
        if lifetime is not None:
            if not 0 < lifetime <= _U32_MAX:
                raise ValueError(f"lifetime must be 1 to {_U32_MAX} seconds, got {lifetime}")
            constraints += byte(_Constraint.LIFETIME) + uint32(lifetime)
        if confirm:
            constraints += byte(_Constraint.CONFIRM)
        kind = AgentMessage.ADD_ID_CONSTRAINED if constraints else AgentMessage.ADD_IDENTITY
        body = _private_key_fields(key, certificate)
        message = byte(kind) + body + string(comment or key.comment) + constraints
        await self._request(f"add key request ({key.key_type})", message, AgentMessage.SUCCESS)

    async def remove_key(self, key: PublicKey | Certificate | Identity | bytes) -> None:
        """Make the agent forget one key or certificate (REMOVE_IDENTITY, §6.3).

        Raises:
            AgentError: the agent refused (it does not hold that key).
        """
        blob = key if isinstance(key, bytes) else key.blob
        message = byte(AgentMessage.REMOVE_IDENTITY) + string(blob)
        await self._request("remove key request", message, AgentMessage.SUCCESS)

    async def remove_all(self) -> None:
        """Make the agent forget every key (REMOVE_ALL_IDENTITIES, §6.4)."""
        message = byte(AgentMessage.REMOVE_ALL_IDENTITIES)
        await self._request("remove all keys request", message, AgentMessage.SUCCESS)


@public
class AgentIdentity(Identity):
    """A key held by an ssh-agent, as :meth:`SSHAgentClient.list_keys` returns it.

    Attributes:
        public_key, certificate: as for every :class:`Identity`.
        comment: the agent's comment for it (often the key file's path).
        source: ``"agent"``, or ``"agent <comment>"``.
        client: the :class:`SSHAgentClient` that signs with it.
    """

    def __init__(
        self, client: SSHAgentClient, public_key: PublicKey, certificate: Certificate | None, comment: str
    ) -> None:
        self.client = client
        self.public_key = public_key
        self.certificate = certificate
        self.comment = comment
        self.source = f"agent {comment}" if comment else "agent"

    async def sign(self, data: bytes, algorithm: str) -> bytes:
        """Sign through the agent, asking for the hash the algorithm names (RSA: by flag)."""
        plain = CERT_SIGNATURE_ALGORITHMS.get(algorithm, algorithm)
        row = HOST_KEY_ALGORITHMS.get(plain)
        if row is None or row.key_type != self.public_key.key_type:
            raise ValueError(f"signature algorithm {algorithm!r} cannot be used with {self.describe()}")
        return await self.client.sign(self.blob, data, _RSA_FLAGS.get(plain, 0))


def _expected_signature_algorithm(key_blob: bytes, flags: int) -> str:
    """The signature algorithm an agent must use for ``key_blob`` with ``flags``."""
    try:
        key_type = Reader(key_blob, "key blob").ascii()
    except DecodeError as exc:
        raise ValueError(f"not an SSH key blob: {exc}") from None
    plain = CERT_KEY_TYPES.get(key_type, key_type)
    if plain != "ssh-rsa":
        return plain
    sha2 = flags & (AgentSignFlag.RSA_SHA2_256 | AgentSignFlag.RSA_SHA2_512)
    if sha2 == AgentSignFlag.RSA_SHA2_256 | AgentSignFlag.RSA_SHA2_512:
        raise ValueError("ask for one of RSA_SHA2_256 and RSA_SHA2_512, not both")
    if sha2 == AgentSignFlag.RSA_SHA2_512:
        return "rsa-sha2-512"
    if sha2 == AgentSignFlag.RSA_SHA2_256:
        return "rsa-sha2-256"
    return "ssh-rsa"


def _private_key_fields(key: PrivateKey, certificate: Certificate | None) -> bytes:
    """The key fields of ADD_IDENTITY (draft-miller-ssh-agent §4.2), plain or certificate form.

    Plain: the key type, its public values, then its private values.
    Certificate: the certificate key type and blob, then the private values
    (for Ed25519 these repeat the public value, as in the plain form).
    """
    crypto = key.crypto_key
    if isinstance(crypto, ed25519.Ed25519PrivateKey):
        # §4.2.3: string ENC(A) || string k || ENC(A), the 64-byte form OpenSSH keeps.
        public = crypto.public_key().public_bytes_raw()
        seed = crypto.private_bytes_raw()
        public_fields = b""
        private_fields = string(public) + string(seed + public)
    elif isinstance(crypto, ec.EllipticCurvePrivateKey):
        # §4.2.2: string curve name || string Q || mpint d; the public part is the key blob's.
        reader = Reader(key.public_key.blob, "public key blob")
        reader.string()  # the key type
        public_fields = reader.rest()
        private_fields = mpint(crypto.private_numbers().private_value)
    elif isinstance(crypto, rsa.RSAPrivateKey):
        # §4.2.1: mpint n || mpint e || mpint d || mpint iqmp || mpint p || mpint q (n before e,
        # unlike the public key blob).
        numbers = crypto.private_numbers()
        public_fields = mpint(numbers.public_numbers.n) + mpint(numbers.public_numbers.e)
        private_fields = mpint(numbers.d) + mpint(numbers.iqmp) + mpint(numbers.p) + mpint(numbers.q)
    else:  # PrivateKey wraps nothing else
        raise KeyImportError(f"cannot give a {key.key_type} key to an agent")
    if certificate is None:
        return string(key.key_type) + public_fields + private_fields
    return string(certificate.key_type) + string(certificate.blob) + private_fields
