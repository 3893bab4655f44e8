"""Which transport message may come when, and the small transport messages read on their own.

RFC 4253 §7.1 says what may be sent between our KEXINIT and our NEWKEYS; OpenSSH's strict key exchange
(PROTOCOL, "kex-strict") narrows the *first* exchange to its own messages, so that nothing can be slipped
in before the keys protect the sequence numbers (the Terrapin attack, CVE-2023-48795). DEBUG (§11.3) and
EXT_INFO (RFC 8308 §2.3) carry no state of the machine's and are parsed here.
"""

from __future__ import annotations

import logging
from typing import Final

from .. import _messages as msg
from .._errors import ProtocolError
from .._wire import Reader

__all__ = [
    "MAX_EXTENSIONS",
    "allowed_during_kex",
    "check_strict_initial_kex",
    "log_debug_message",
    "parse_ext_info",
]

log = logging.getLogger("trissh.transport")

#: The most extensions an EXT_INFO may announce; OpenSSH sends a handful.
MAX_EXTENSIONS: Final = 1024

_KEX_MESSAGE_TYPES: Final = frozenset({msg.KEXINIT, msg.NEWKEYS, *range(30, 50)})


def allowed_during_kex(message_type: int) -> bool:
    """May this message be sent between our KEXINIT and our NEWKEYS? (RFC 4253 §7.1)

    Transport generic messages (1-19) except the service messages, and key
    exchange messages (20-49) except a further KEXINIT.
    """
    if 1 <= message_type <= 19:
        return message_type not in (msg.SERVICE_REQUEST, msg.SERVICE_ACCEPT)
    return 20 <= message_type <= 49 and message_type != msg.KEXINIT


def check_strict_initial_kex(kind: int) -> None:
    """Under strict KEX, the initial key exchange admits its own messages only (a DISCONNECT is read
    before this check): anything else ends the connection."""
    if kind not in _KEX_MESSAGE_TYPES:
        raise ProtocolError(
            f"strict key exchange: unexpected {msg.message_name(kind)} during the initial key exchange"
        )


def log_debug_message(payload: bytes | memoryview) -> None:
    """SSH_MSG_DEBUG: logged, at INFO when the server says it should always be shown."""
    reader = Reader(payload, "DEBUG")
    reader.byte()
    always = reader.boolean()
    text = reader.text()
    log.log(logging.INFO if always else logging.DEBUG, "server debug message: %s", text)


def parse_ext_info(payload: bytes | memoryview) -> dict[str, bytes]:
    """SSH_MSG_EXT_INFO: the extensions by name, with their values (RFC 8308 §2.3)."""
    reader = Reader(payload, "EXT_INFO")
    reader.byte()
    count = reader.uint32()
    if count > MAX_EXTENSIONS:
        raise ProtocolError(f"EXT_INFO announces {count} extensions")
    extensions = {}
    for _ in range(count):
        name = reader.ascii()
        extensions[name] = reader.string()
    reader.check_end()
    log.debug("server extensions: %s", ", ".join(extensions))
    return extensions
