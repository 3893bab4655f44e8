"""The client transport as a sans-IO state machine (RFC 4253, RFC 8308, OpenSSH strict KEX).

Theory of operation
-------------------
:class:`TransportState` is the "shared transport state object" of the design:
it owns the version exchange, the packet layer, algorithm negotiation and the
key exchange, and nothing else. It does no I/O, reads no clock, and imports no
Trio. The driver feeds it bytes with :meth:`receive_data`, pulls events with
:meth:`next_event`, hands it service payloads with :meth:`send`, and writes
whatever :meth:`data_to_send` returns to the socket.

The connection goes through three phases (:class:`Phase`): waiting for the
server's version line, open, and closed. While open, :class:`KexState` tracks a
key exchange, the first one or a rekey started by either side::

    IDLE --(we send KEXINIT)--> KEXINIT_SENT --(their KEXINIT)--> EXCHANGING
    IDLE --(their KEXINIT; we answer with ours)----------------> EXCHANGING
    EXCHANGING --(reply checked, first kex)--> VERIFYING --(accept_host_key)--> NEWKEYS_SENT
    EXCHANGING --(reply checked, rekey, same host key)--> NEWKEYS_SENT
    NEWKEYS_SENT --(their NEWKEYS)--> IDLE

Two rules follow from the state, and are the only places they are decided:

* Sending (RFC 4253 §7.1): from our KEXINIT until our NEWKEYS, only the
  messages :func:`allowed_during_kex` admits may go out. :attr:`can_send` says
  whether a service packet may be sent now; the driver holds service packets
  back (in order, in its queue) until it is True again.
* Receiving: from their KEXINIT until their NEWKEYS, a service message is a
  protocol violation. During the first key exchange under strict KEX
  (OpenSSH PROTOCOL, "kex-strict"), *anything* but KEXINIT, the method's
  messages, NEWKEYS and DISCONNECT is a violation, the server's KEXINIT must
  be its very first packet, and every NEWKEYS resets the sequence numbers.

Errors are sticky: after one, every call raises it again.

Two jobs of the key exchange live in pure modules of their own, called from
here: checking the server's host key and its signature, and that a rekey keeps
the first host key (:mod:`trissh._transport.host_key`); deriving the new keys
(:mod:`trissh._transport.key_derivation`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import replace
from enum import Enum
from typing import TYPE_CHECKING, Final

from .. import _messages as msg
from .._algorithms import ciphers
from .._algorithms.compression import compressor_for, decompressor_for
from .._algorithms.hostkeys import PublicKey
from .._algorithms.kex import KEX_METHODS, GexBits, KexMethod, KexResult, KexSetup
from .._errors import DisconnectError, ProtocolError, SSHError
from .._wire import Reader, byte, string, uint32
from .events import NEED_DATA, Event, HostKeyReceived, KexComplete, PacketReceived
from .host_key import check_rekey_host_key, verified_host_key
from .key_derivation import derive_keys
from .message_rules import allowed_during_kex, check_strict_initial_kex, log_debug_message, parse_ext_info
from .negotiate import AlgorithmPreferences, KexInit, Negotiated, negotiate
from .packets import PacketReader, PacketWriter, packet_debug_enabled
from .version import CLIENT_VERSION, VersionParser, version_line

if TYPE_CHECKING:
    from .._algorithms.certificates import Certificate

__all__ = ["KexState", "Phase", "TransportState", "allowed_during_kex"]

log = logging.getLogger("trissh.transport")

# Rekey after this many bytes in either direction unless told otherwise.
# RFC 4344 §3.2 allows 2**(L/4) blocks of an L-bit block cipher under one key:
# 2**32 blocks (64 GiB) for AES, far above this cap; OpenSSH counts
# chacha20-poly1305 as 8-byte blocks and allows it 2**30 bytes. So every
# cipher we speak gets OpenSSH's effective default: 1 GiB.
DEFAULT_REKEY_BYTES: Final = 1 << 30

# RFC 4344 §3.1 asks for a new key before 2**32 packets under one key (the
# sequence number is chacha20-poly1305's nonce); OpenSSH rekeys at 2**31.
MAX_PACKETS_PER_KEY: Final = 1 << 31

_AEAD_CIPHERS: Final = frozenset(name for name, spec in ciphers.CIPHERS.items() if spec.aead)


class Phase(Enum):
    """Where the connection is in its life."""

    #: Our version line is out; the server's has not arrived.
    VERSION = "version exchange"
    #: Packets are flowing (a key exchange may be in progress: see KexState).
    OPEN = "open"
    #: A DISCONNECT was sent or received, or an error ended the connection.
    CLOSED = "closed"


class KexState(Enum):
    """Progress of the current key exchange."""

    #: No key exchange in progress; service packets flow both ways.
    IDLE = "idle"
    #: We sent KEXINIT and wait for the server's.
    KEXINIT_SENT = "KEXINIT sent"
    #: Both KEXINITs are out; the method's messages are being exchanged.
    EXCHANGING = "exchanging"
    #: The first exchange is done; the driver is deciding whether to trust the host key.
    VERIFYING = "verifying host key"
    #: We sent NEWKEYS and wait for the server's.
    NEWKEYS_SENT = "NEWKEYS sent"


class TransportState:
    """The sans-IO client transport. See the module docstring for the rules it owns.

    Args:
        preferences: our algorithm lists.
        random: source of random bytes (cookies, padding, ephemeral keys).
        rekey_bytes: start a new key exchange after this many bytes in a direction.
        version: our version string, without CR LF.
        gex_bits: group sizes for Diffie-Hellman group exchange (default: OpenSSH's).
    """

    # One per connection, kept for its life: slots, not a dictionary per instance.
    __slots__ = (
        "_error",
        "_ext_info_allowed",
        "_gex_bits",
        "_kex",
        "_our_kexinit",
        "_pending_host_certificate",
        "_pending_host_key",
        "_pending_keys",
        "_pending_negotiated",
        "_prefs",
        "_random",
        "_reader",
        "_skip_guessed_packet",
        "_version_buffer",
        "_version_parser",
        "_writer",
        "authenticated",
        "client_version",
        "extensions",
        "kex_count",
        "kex_state",
        "negotiated",
        "phase",
        "rekey_bytes",
        "server_host_certificate",
        "server_host_key",
        "server_version",
        "session_id",
        "strict_kex",
    )

    def __init__(
        self,
        preferences: AlgorithmPreferences,
        *,
        random: Callable[[int], bytes] = os.urandom,
        rekey_bytes: int = DEFAULT_REKEY_BYTES,
        version: str = CLIENT_VERSION,
        gex_bits: GexBits | None = None,
    ) -> None:
        self._prefs = preferences
        self._gex_bits = gex_bits or GexBits()
        self._random = random
        self.rekey_bytes = rekey_bytes
        self.client_version = version
        self.server_version: str | None = None
        self.phase = Phase.VERSION
        self.kex_state = KexState.IDLE
        self.session_id: bytes | None = None
        self.negotiated: Negotiated | None = None
        self.server_host_key: PublicKey | None = None
        #: The server's host certificate, when a certificate host key algorithm was
        #: negotiated (``server_host_key`` is then the key it certifies).
        self.server_host_certificate: Certificate | None = None
        self.strict_kex = False
        #: Key exchanges completed so far (the first one included).
        self.kex_count = 0
        #: Whether the server has sent USERAUTH_SUCCESS (delayed compression starts then).
        self.authenticated = False
        #: Extensions from the server's EXT_INFO (RFC 8308), name -> raw value.
        self.extensions: dict[str, bytes] = {}
        self._reader = PacketReader()
        self._writer = PacketWriter()
        # Asked once: the packet loop then pays one boolean test per packet (see packet_debug_enabled).
        self._reader.debug = self._writer.debug = packet_debug_enabled()
        self._version_parser = VersionParser()
        self._version_buffer = bytearray()
        self._our_kexinit: KexInit | None = None
        self._pending_negotiated: Negotiated | None = None
        self._kex: KexMethod | None = None
        self._pending_keys: tuple[ciphers.Sealer, ciphers.Opener] | None = None
        self._pending_host_key: PublicKey | None = None
        self._pending_host_certificate: Certificate | None = None
        self._skip_guessed_packet = False
        self._ext_info_allowed = False
        self._error: SSHError | None = None

    # --- the driver's calls ------------------------------------------------------

    def set_log_label(self, where: str) -> None:
        """Start this connection's packet log lines with ``where`` (``host:port``)."""
        self._reader.log_label = self._writer.log_label = f"{where}: "

    def start(self) -> None:
        """Queue our version line and our first KEXINIT (we need not wait for theirs)."""
        self._writer.write_raw(version_line(self.client_version))
        self._send_kexinit()

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Take bytes from the server; ``data`` must not be modified afterwards.

        Never decodes: see :meth:`next_event`.
        """
        if self.phase is Phase.VERSION:
            self._version_buffer += data
        else:
            self._reader.feed(data)

    @property
    def bytes_wanted(self) -> int:
        """A hint of how many more bytes the packet in progress needs."""
        return self._reader.wanted

    def next_event(self) -> Event:
        """Decode and handle buffered data until something happens.

        Returns:
            :data:`NEED_DATA`, :class:`HostKeyReceived`, :class:`KexComplete`, or
            :class:`PacketReceived` for the layers above.

        Raises:
            ProtocolError: the server broke the protocol (the message says how).
            DisconnectError: the server sent DISCONNECT, or negotiation failed.
            HostKeyNotVerifiable: the server's host key signature is bad, or it
                changed during a rekey.
        """
        if self._error is not None:
            raise self._error
        if self.kex_state is KexState.VERIFYING:
            raise RuntimeError("next_event() called while a host key verdict is pending")
        try:
            return self._next_event()
        except SSHError as exc:
            self._error = exc
            self.phase = Phase.CLOSED
            raise

    @property
    def can_send(self) -> bool:
        """Whether a service packet may be sent now (no key exchange is holding them back)."""
        return self.phase is Phase.OPEN and self.kex_state in (KexState.IDLE, KexState.NEWKEYS_SENT)

    def send(
        self, payload: bytes | bytearray | memoryview, tail: bytes | bytearray | memoryview = b""
    ) -> None:
        """Seal one payload (``payload + tail``: see ``PacketWriter.write``) for sending.

        Raises:
            RuntimeError: the caller tried to send a service packet while a key
                exchange forbids it (check :attr:`can_send`), or after close.
        """
        if self.phase is Phase.CLOSED:
            raise RuntimeError("the transport is closed")
        if not self.can_send and not allowed_during_kex(payload[0]):
            raise RuntimeError(
                f"{msg.message_name(payload[0])} may not be sent now "
                f"(phase {self.phase.value}, key exchange {self.kex_state.value})"
            )
        self._writer.write(payload, tail)
        self._check_rekey_limits()

    def send_channel_data(self, headers: list[bytes], data: memoryview, packet_size: int) -> int:
        """Seal consecutive slices of ``data`` as packets ``headers[i] + slice i``.

        The bulk path: one call per batch instead of per packet. Only while
        :attr:`can_send`. Stops early when a rekey limit is reached (the rekey
        starts, and channel data may not follow until it is done).

        Returns:
            How many of the packets were sealed.
        """
        if not self.can_send:
            raise RuntimeError(f"channel data may not be sent now (key exchange {self.kex_state.value})")
        writer = self._writer
        limit = self.rekey_bytes  # the receive side's limit is checked as packets arrive
        start = 0
        for count, header in enumerate(headers, 1):
            writer.write(header, data[start : start + packet_size])
            start += packet_size
            if writer.bytes_since_rekey >= limit or writer.packets_since_rekey >= MAX_PACKETS_PER_KEY:
                self._check_rekey_limits()
                return count
        return len(headers)

    def data_to_send(self) -> memoryview:
        """Everything sealed since the last call, in order.

        A view into the packet writer's buffer, without a copy: it stays valid
        until the next call but one, which is all a writer that sends it
        before asking for more needs.
        """
        return self._writer.take()

    def put_back_unsent(self, rest: memoryview) -> None:
        """Return the unsent end of the last :meth:`data_to_send` (a partial write), to be sent first."""
        self._writer.put_back(rest)

    @property
    def has_data_to_send(self) -> bool:
        return self._writer.pending > 0

    @property
    def packets_received_mark(self) -> tuple[int, int]:
        """A value that changes whenever a complete packet has been read: (key exchanges, packets
        since the last key change). Keepalive's sign of life: a partial packet does not count."""
        return self.kex_count, self._reader.packets_since_rekey

    @property
    def pending_output_size(self) -> int:
        return self._writer.pending

    @property
    def pending_host_certificate(self) -> Certificate | None:
        """The host certificate awaiting the driver's verdict (with :class:`HostKeyReceived`), if any."""
        return self._pending_host_certificate

    def accept_host_key(self) -> None:
        """The driver trusts the host key of the first exchange: continue with NEWKEYS."""
        if self.kex_state is not KexState.VERIFYING or self._pending_host_key is None:
            raise RuntimeError(f"no host key is waiting for a verdict (key exchange {self.kex_state.value})")
        self.server_host_key = self._pending_host_key
        self.server_host_certificate = self._pending_host_certificate
        self._send_newkeys()

    def start_rekey(self) -> bool:
        """Begin a key exchange now. Returns False when one is already in progress."""
        if self.phase is not Phase.OPEN or self.kex_state is not KexState.IDLE or self.session_id is None:
            return False
        self._send_kexinit()
        return True

    def send_disconnect(self, reason: int, description: str) -> None:
        """Queue a DISCONNECT and close. Allowed in any state but closed."""
        if self.phase is Phase.CLOSED and not self._writer.pending and self._error is None:
            return
        payload = byte(msg.DISCONNECT) + uint32(int(reason)) + string(description) + string(b"")
        try:
            self._writer.write(payload)
        except Exception:  # a broken sealer must not hide the original error
            log.debug("could not seal DISCONNECT", exc_info=True)
        self.phase = Phase.CLOSED

    def send_unimplemented(self, seq: int) -> None:
        """Tell the server we do not know the message it sent as packet ``seq``."""
        self._writer.write(byte(msg.UNIMPLEMENTED) + uint32(seq))

    # --- decoding -----------------------------------------------------------------

    def _next_event(self) -> Event:
        if self.phase is Phase.VERSION:
            version = self._version_parser.feed(self._version_buffer)
            if version is None:
                return NEED_DATA
            self.server_version = version
            log.info("%sserver version %r", self._reader.log_label, version)
            self.phase = Phase.OPEN
            self._reader.feed(bytes(self._version_buffer))  # the first packets may have come with it
            self._version_buffer.clear()
            for line in self._version_parser.pre_banner_lines:
                log.debug("server pre-banner line: %s", line)
        if self.phase is Phase.CLOSED:
            raise RuntimeError("the transport is closed")
        while True:
            packet = self._reader.next_packet()
            if packet is None:
                return NEED_DATA
            seq, payload = packet
            if self.session_id is None and (self._reader.wrapped or self._writer.wrapped):
                raise ProtocolError("sequence number wrapped around during the initial key exchange")
            event = self._handle(seq, payload)
            self._check_rekey_limits()
            if event is not None:
                return event

    def _handle(self, seq: int, payload: bytes | memoryview) -> Event | None:
        if not payload:
            raise ProtocolError(f"packet {seq} has an empty payload")
        kind = payload[0]
        if kind >= 50 and self.kex_state is KexState.IDLE and self.negotiated is not None:
            # The common case, first: a service message outside any key exchange.
            if self._ext_info_allowed:
                self._ext_info_allowed = False
            return self._service_packet(kind, seq, payload)
        if self._ext_info_allowed:
            # RFC 8308 §2.4: EXT_INFO may only be the first packet after the first NEWKEYS.
            self._ext_info_allowed = False
            if kind == msg.EXT_INFO:
                self.extensions.update(parse_ext_info(payload))
                return None
        if kind == msg.DISCONNECT:
            reader = Reader(payload, "DISCONNECT")
            reader.byte()
            code = reader.uint32()
            text = reader.text()
            self.phase = Phase.CLOSED
            raise DisconnectError(code, text)
        if self.strict_kex and self.negotiated is None:
            check_strict_initial_kex(kind)
        if kind == msg.KEXINIT:
            self._handle_kexinit(seq, payload)
            return None
        if 30 <= kind <= 49:
            return self._handle_kex_message(payload)
        if kind == msg.NEWKEYS:
            return self._handle_newkeys(payload)
        if kind == msg.IGNORE:
            return None
        if kind == msg.DEBUG:
            log_debug_message(payload)
            return None
        if kind == msg.UNIMPLEMENTED:
            reader = Reader(payload, "UNIMPLEMENTED")
            reader.byte()
            raise ProtocolError(f"server replied UNIMPLEMENTED to our packet {reader.uint32()}")
        if kind == msg.EXT_INFO:
            raise ProtocolError("EXT_INFO received other than right after the first NEWKEYS (RFC 8308 §2.4)")
        if self.session_id is None or self.kex_state in (
            KexState.EXCHANGING,
            KexState.VERIFYING,
            KexState.NEWKEYS_SENT,
        ):
            raise ProtocolError(
                f"{msg.message_name(kind)} received during key exchange "
                f"({self.kex_state.value}{', before any keys' if self.session_id is None else ''})"
            )
        if kind in (msg.SERVICE_ACCEPT,) or kind >= 50:
            return self._service_packet(kind, seq, payload)
        # An unknown transport-level message: RFC 4253 §11.4.
        log.debug("server sent unknown %s; replying UNIMPLEMENTED", msg.message_name(kind))
        self.send_unimplemented(seq)
        return None

    def _service_packet(self, kind: int, seq: int, payload: bytes | memoryview) -> PacketReceived:
        """A packet for the layers above; USERAUTH_SUCCESS also starts delayed compression."""
        if kind == msg.USERAUTH_SUCCESS and not self.authenticated:
            self._authentication_succeeded()
        return PacketReceived(seq, payload)

    def _authentication_succeeded(self) -> None:
        """Start delayed compression (zlib@openssh.com) in both directions, from the next packet."""
        self.authenticated = True
        negotiated = self.negotiated
        assert negotiated is not None
        if self._writer.compressor is None:
            self._writer.compressor = compressor_for(negotiated.client_to_server.compression, True)
        if self._reader.decompressor is None:
            self._reader.decompressor = decompressor_for(negotiated.server_to_client.compression, True)

    # --- key exchange ---------------------------------------------------------------

    def _send_kexinit(self) -> None:
        self._our_kexinit = KexInit.build(self._prefs, self._random, initial=self.session_id is None)
        self._writer.write(self._our_kexinit.payload)
        self.kex_state = KexState.KEXINIT_SENT

    def _handle_kexinit(self, seq: int, view: bytes | memoryview) -> None:
        payload = bytes(view)  # kept for the exchange hash
        if self.kex_state is KexState.IDLE:
            self._send_kexinit()  # the server started a rekey
        elif self.kex_state is not KexState.KEXINIT_SENT:
            raise ProtocolError(f"KEXINIT received during key exchange ({self.kex_state.value})")
        assert self._our_kexinit is not None
        theirs = KexInit.parse(payload)
        initial = self.session_id is None
        negotiated = negotiate(self._our_kexinit, theirs, _AEAD_CIPHERS, initial=initial)
        if initial:
            self.strict_kex = negotiated.strict_kex
            if self.strict_kex and seq != 0:
                raise ProtocolError(
                    f"strict key exchange: the server's KEXINIT was packet {seq}, not its first packet"
                )
        else:
            negotiated = replace(negotiated, strict_kex=self.strict_kex)
        self._pending_negotiated = negotiated
        self._skip_guessed_packet = negotiated.guess_was_wrong
        prefix = (
            string(self.client_version)
            + string(self.server_version or "")
            + string(self._our_kexinit.payload)
            + string(payload)
        )
        self._kex = KEX_METHODS[negotiated.kex](
            KexSetup(negotiated.kex, prefix, self._random, self._gex_bits)
        )
        self._writer.write(self._kex.start())
        self.kex_state = KexState.EXCHANGING

    def _handle_kex_message(self, payload: bytes | memoryview) -> Event | None:
        if self.kex_state is not KexState.EXCHANGING or self._kex is None:
            raise ProtocolError(
                f"key exchange message {msg.message_name(payload[0])} received "
                f"outside a key exchange ({self.kex_state.value})"
            )
        if self._skip_guessed_packet:
            self._skip_guessed_packet = False  # RFC 4253 §7: a wrong guess is ignored
            return None
        outcome = self._kex.receive(payload)
        if not isinstance(outcome, KexResult):
            self._writer.write(outcome)
            return None
        return self._finish_exchange(outcome)

    def _finish_exchange(self, result: KexResult) -> Event | None:
        negotiated = self._pending_negotiated
        assert negotiated is not None and self._kex is not None
        key, certificate = verified_host_key(result, negotiated.host_key)
        if self.session_id is None:
            self.session_id = result.exchange_hash
        self._pending_keys = derive_keys(
            negotiated,
            result,
            session_id=self.session_id,
            hash_function=self._kex.hash,
            random=self._random,
        )
        if self.server_host_key is None:
            self._pending_host_key = key
            self._pending_host_certificate = certificate
            self.kex_state = KexState.VERIFYING
            return HostKeyReceived(key, certificate)
        check_rekey_host_key(
            key,
            certificate,
            first_key=self.server_host_key,
            first_certificate=self.server_host_certificate,
        )
        self._send_newkeys()
        return None

    def _send_newkeys(self) -> None:
        assert self._pending_keys is not None
        self._writer.write(byte(msg.NEWKEYS))
        self._writer.set_sealer(self._pending_keys[0], reset_seq=self.strict_kex)
        assert self._pending_negotiated is not None
        method = self._pending_negotiated.client_to_server.compression
        self._writer.compressor = compressor_for(method, self.authenticated)
        self.kex_state = KexState.NEWKEYS_SENT

    def _handle_newkeys(self, payload: bytes | memoryview) -> Event:
        if self.kex_state is not KexState.NEWKEYS_SENT or self._pending_keys is None:
            raise ProtocolError(f"NEWKEYS received out of order (key exchange {self.kex_state.value})")
        if len(payload) != 1:
            raise ProtocolError(f"NEWKEYS has {len(payload) - 1} unexpected bytes")
        self._reader.set_opener(self._pending_keys[1], reset_seq=self.strict_kex)
        initial = self.negotiated is None
        negotiated = self._pending_negotiated
        assert negotiated is not None
        self._reader.decompressor = decompressor_for(
            negotiated.server_to_client.compression, self.authenticated
        )
        self.negotiated = negotiated
        self._pending_keys = None
        self._pending_negotiated = None
        self._kex = None
        self._our_kexinit = None
        self.kex_count += 1
        self.kex_state = KexState.IDLE
        if initial:
            self._ext_info_allowed = True
            self._pending_host_key = None
            self._pending_host_certificate = None
        log.debug("key exchange complete: %s", negotiated)
        return KexComplete(negotiated, initial)

    def _check_rekey_limits(self) -> None:
        if self.kex_state is KexState.IDLE and (
            self._writer.bytes_since_rekey >= self.rekey_bytes
            or self._reader.bytes_since_rekey >= self.rekey_bytes
            or self._writer.packets_since_rekey >= MAX_PACKETS_PER_KEY
            or self._reader.packets_since_rekey >= MAX_PACKETS_PER_KEY
        ):
            self.start_rekey()
