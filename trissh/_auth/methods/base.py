"""The interface every authentication method implements, and what the loop hands it.

A method is an object that lives for one :func:`~trissh._auth.userauth.authenticate`
call, so it remembers what it has already tried (the keys offered, the
passwords asked for) across the loop's restarts after a partial success.
:meth:`AuthMethod.run` makes requests until one of the :class:`Outcome` cases
holds and says which; the loop decides what to try next.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

from ..._errors import KeyImportError
from ..exchange import AuthExchange, Failure
from ..identity import Identity

__all__ = [
    "AuthMethod",
    "AuthSettings",
    "KbdintHandler",
    "Outcome",
    "PasswordChangeHandler",
    "PasswordSource",
]

#: A password, or an async callable returning one (asked again for each try).
PasswordSource: TypeAlias = str | Callable[[], Awaitable[str]] | None
#: ``async (name, instructions, prompts) -> answers``; each prompt is ``(text, echo)``.
KbdintHandler: TypeAlias = Callable[[str, str, list[tuple[str, bool]]], Awaitable[list[str]]]
#: ``async (prompt) -> new password``, for SSH_MSG_USERAUTH_PASSWD_CHANGEREQ.
PasswordChangeHandler: TypeAlias = Callable[[str], Awaitable[str]]


@dataclass
class AuthSettings:
    """What the caller gave for authentication. Methods read it; the loop fills ``tried``.

    Fields:
        username: who to authenticate as.
        identities: keys for publickey, in the order to offer them.
        password: for ``password``, and for ``keyboard-interactive`` without a handler.
        kbdint_handler: answers keyboard-interactive prompts.
        password_change_handler: answers a server's demand for a new password.
        allow_sha1: also offer RSA keys as ``ssh-rsa`` (SHA-1); only when asked for.
        no_keys_hint: where trissh looked for keys, for the error when there were none.
        tried: one line per attempt that failed, for the final PermissionDenied.
        key_errors: keys that could not be used for a reason the caller must hear about
            (a wrong passphrase): raised instead of PermissionDenied when nothing else works.
    """

    username: str
    identities: Sequence[Identity] = ()
    password: PasswordSource = None
    kbdint_handler: KbdintHandler | None = None
    password_change_handler: PasswordChangeHandler | None = None
    allow_sha1: bool = False
    no_keys_hint: str = ""
    tried: list[str] = field(default_factory=list)
    key_errors: list[KeyImportError] = field(default_factory=list)


class Outcome(enum.Enum):
    """How :meth:`AuthMethod.run` ended."""

    #: USERAUTH_SUCCESS: authentication is complete.
    SUCCESS = "success"
    #: The server's method list changed (after a partial success, or otherwise):
    #: the loop starts over from the top of the preference list.
    CONTINUE = "continue"
    #: This method has nothing more to try.
    EXHAUSTED = "exhausted"


class AuthMethod(abc.ABC):
    """One authentication method (RFC 4252 §7, §8; RFC 4256)."""

    #: The method name, as in the server's list.
    name: ClassVar[str]

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings

    def can_try(self) -> bool:
        """Whether this method has anything (left) to try with what the caller gave."""
        return True

    @abc.abstractmethod
    async def run(self, exchange: AuthExchange) -> Outcome:
        """Make requests until success, a changed method list, or nothing is left to try."""

    @staticmethod
    def after_failure(failure: Failure, before: tuple[str, ...] | None) -> Outcome | None:
        """CONTINUE when a failure changed what the server allows; None to go on with this method."""
        if failure.partial or failure.methods != before:
            return Outcome.CONTINUE
        return None
