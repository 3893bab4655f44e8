"""Authentication methods, one module each; :data:`METHODS` is the table the loop chooses from.

Adding a method is one module with an :class:`AuthMethod` subclass and one
line here. Host-based authentication is deliberately absent: it needs the
client host's private key, which only a setuid ssh-keysign may read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from .base import AuthMethod, AuthSettings, KbdintHandler, Outcome, PasswordChangeHandler, PasswordSource
from .kbdint import KeyboardInteractiveMethod
from .none import NoneMethod
from .password import PasswordMethod
from .publickey import PublicKeyMethod

__all__ = [
    "DEFAULT_PREFERRED_AUTH",
    "METHODS",
    "AuthMethod",
    "AuthSettings",
    "KbdintHandler",
    "NoneMethod",
    "Outcome",
    "PasswordChangeHandler",
    "PasswordSource",
]

#: Method name -> class. ``none`` is not listed: the loop always sends it first.
METHODS: Final[Mapping[str, type[AuthMethod]]] = {
    cls.name: cls for cls in (PublicKeyMethod, KeyboardInteractiveMethod, PasswordMethod)
}

#: OpenSSH's PreferredAuthentications default, less gssapi-with-mic and hostbased.
DEFAULT_PREFERRED_AUTH: Final = ("publickey", "keyboard-interactive", "password")
