"""SSH message numbers (RFC 4250 §4.1, RFC 8308, RFC 5656/8731 for ECDH).

Plain ``int`` constants rather than an enum: they are compared on every packet.
:func:`message_name` gives the readable name for errors and logs.
"""

from __future__ import annotations

from typing import Final

# Transport layer generic (RFC 4253)
DISCONNECT: Final = 1
IGNORE: Final = 2
UNIMPLEMENTED: Final = 3
DEBUG: Final = 4
SERVICE_REQUEST: Final = 5
SERVICE_ACCEPT: Final = 6
EXT_INFO: Final = 7  # RFC 8308
# Algorithm negotiation
KEXINIT: Final = 20
NEWKEYS: Final = 21
# Key exchange method specific (30-49): each method gives the numbers its own
# meaning, so these overlap; message_name() shows the ECDH names for 30 and 31.
KEX_ECDH_INIT: Final = 30  # RFC 5656; also KEXDH_INIT (RFC 4253), KEX_HYBRID_INIT
KEX_ECDH_REPLY: Final = 31  # also KEXDH_REPLY, KEX_HYBRID_REPLY, KEX_DH_GEX_GROUP
KEXDH_INIT: Final = 30
KEXDH_REPLY: Final = 31
KEX_HYBRID_INIT: Final = 30  # mlkem768x25519-sha256
KEX_HYBRID_REPLY: Final = 31
KEX_DH_GEX_GROUP: Final = 31  # RFC 4419
KEX_DH_GEX_INIT: Final = 32
KEX_DH_GEX_REPLY: Final = 33
KEX_DH_GEX_REQUEST: Final = 34
# User authentication (RFC 4252)
USERAUTH_REQUEST: Final = 50
USERAUTH_FAILURE: Final = 51
USERAUTH_SUCCESS: Final = 52
USERAUTH_BANNER: Final = 53
USERAUTH_PK_OK: Final = 60  # in reply to a publickey query
USERAUTH_PASSWD_CHANGEREQ: Final = 60  # the same number, in reply to a password request (RFC 4252 §8)
USERAUTH_INFO_REQUEST: Final = 60  # the same number, during keyboard-interactive (RFC 4256 §3.2)
USERAUTH_INFO_RESPONSE: Final = 61
# Connection protocol (RFC 4254)
GLOBAL_REQUEST: Final = 80
REQUEST_SUCCESS: Final = 81
REQUEST_FAILURE: Final = 82
CHANNEL_OPEN: Final = 90
CHANNEL_OPEN_CONFIRMATION: Final = 91
CHANNEL_OPEN_FAILURE: Final = 92
CHANNEL_WINDOW_ADJUST: Final = 93
CHANNEL_DATA: Final = 94
CHANNEL_EXTENDED_DATA: Final = 95
CHANNEL_EOF: Final = 96
CHANNEL_CLOSE: Final = 97
CHANNEL_REQUEST: Final = 98
CHANNEL_SUCCESS: Final = 99
CHANNEL_FAILURE: Final = 100

_NAMES: Final = {
    value: name
    for name, value in reversed(list(globals().items()))  # the first name given to a number wins
    if name.isupper() and isinstance(value, int) and not name.startswith("_")
}


def message_name(number: int) -> str:
    """``'KEXINIT (20)'`` for a known number, ``'message 42'`` otherwise."""
    name = _NAMES.get(number)
    return f"{name} ({number})" if name else f"message {number}"
