"""The ``keyboard-interactive`` method (RFC 4256): the server asks, the caller answers.

The server sends SSH_MSG_USERAUTH_INFO_REQUEST rounds (a name, instructions
and prompts, each with an echo flag) until it says SUCCESS or FAILURE. The
caller's ``kbdint_handler(name, instructions, prompts)`` answers them. Without
a handler, a given ``password`` answers a round of exactly one non-echoed
prompt, the shape of every "Password:" prompt (as OpenSSH users see it), and
a round of no prompts (PAM's informational messages) gets an empty answer.

The server controls everything here, so each round is bounded: at most
:data:`MAX_PROMPTS` prompts and :data:`MAX_PROMPT_TEXT` characters of text,
and at most :data:`MAX_ROUNDS` rounds per attempt.
"""

from __future__ import annotations

import logging
from typing import Final

from ... import _messages as msg
from ..._errors import ProtocolError
from ..._wire import Reader, byte, string, uint32
from ..exchange import AuthExchange, MethodMessage, Success
from .base import AuthMethod, AuthSettings, Outcome
from .password import PASSWORD_TRIES, resolve_password

__all__ = ["MAX_PROMPTS", "MAX_PROMPT_TEXT", "MAX_ROUNDS", "KeyboardInteractiveMethod"]

log = logging.getLogger("trissh.auth")

#: Prompts in one INFO_REQUEST (OpenSSH's client refuses more than 100 too).
MAX_PROMPTS: Final = 100
#: Characters of name, instructions and prompts in one INFO_REQUEST: a login
#: prompt is a line; this leaves room for long PAM instructions.
MAX_PROMPT_TEXT: Final = 64 * 1024
#: INFO_REQUEST rounds in one attempt (a two-factor PAM stack needs a few).
MAX_ROUNDS: Final = 32


class KeyboardInteractiveMethod(AuthMethod):
    name = "keyboard-interactive"

    def __init__(self, settings: AuthSettings) -> None:
        super().__init__(settings)
        if settings.kbdint_handler is not None:
            self._attempts_left = PASSWORD_TRIES
        else:
            self._attempts_left = 1 if settings.password is not None else 0
        self._unanswered = False  # a round came that we had no answers for: give up after it
        self._password_given = False

    def can_try(self) -> bool:
        return self._attempts_left > 0

    async def run(self, exchange: AuthExchange) -> Outcome:
        while self._attempts_left > 0:
            self._attempts_left -= 1
            before = exchange.methods
            # RFC 4256 §3.1: language tag and submethods, both empty.
            await exchange.send(exchange.request(self.name, string(""), string("")))
            reply = await exchange.reply()
            rounds = 0
            self._password_given = False
            while isinstance(reply, MethodMessage):
                if self._unanswered:
                    # We could not answer the last round; a new request (the next method's) ends this one.
                    return Outcome.EXHAUSTED
                rounds += 1
                if rounds > MAX_ROUNDS:
                    raise ProtocolError(
                        f"keyboard-interactive: the server sent over {MAX_ROUNDS} rounds of prompts"
                    )
                answers = await self._answer(reply)
                await exchange.send(
                    byte(msg.USERAUTH_INFO_RESPONSE)
                    + uint32(len(answers))
                    + b"".join(string(a) for a in answers)
                )
                reply = await exchange.reply()
            if isinstance(reply, Success):
                return Outcome.SUCCESS
            if not self._unanswered:
                self.settings.tried.append(
                    "keyboard-interactive: refused" + (" (partial success)" if reply.partial else "")
                )
            outcome = self.after_failure(reply, before)
            if outcome is not None:
                return outcome
        return Outcome.EXHAUSTED

    async def _answer(self, reply: MethodMessage) -> list[str]:
        if reply.kind != msg.USERAUTH_INFO_REQUEST:
            raise ProtocolError(f"unexpected {msg.message_name(reply.kind)} during keyboard-interactive")
        name, instructions, prompts = _parse_info_request(reply.payload)
        handler = self.settings.kbdint_handler
        if handler is not None:
            answers = list(await handler(name, instructions, prompts))
            if len(answers) != len(prompts) or not all(isinstance(a, str) for a in answers):
                raise TypeError(
                    f"kbdint_handler must return a list of {len(prompts)} strings, one per prompt; "
                    f"got {answers!r:.80}"
                )
            return answers
        if not prompts:
            return []
        if len(prompts) == 1 and not prompts[0][1] and not self._password_given:
            password = await resolve_password(self.settings)
            if password is not None:
                self._password_given = True  # once per attempt: asking again means it was wrong
                return [password]
        note = (
            f"keyboard-interactive: {len(prompts)} prompt(s) "
            f"({', '.join(repr(text) for text, _ in prompts)[:200]}) and no kbdint_handler to answer them"
        )
        log.info("%s", note)
        self.settings.tried.append(note)
        self._unanswered = True
        self._attempts_left = 0
        return [""] * len(prompts)


def _parse_info_request(payload: bytes) -> tuple[str, str, list[tuple[str, bool]]]:
    reader = Reader(payload, "USERAUTH_INFO_REQUEST")
    reader.byte()
    name = reader.text()
    instructions = reader.text()
    reader.string()  # language tag, deprecated (RFC 4256 §3.2)
    count = reader.uint32()
    if count > MAX_PROMPTS:
        raise ProtocolError(f"keyboard-interactive: the server sent {count} prompts (at most {MAX_PROMPTS})")
    prompts = []
    for _ in range(count):
        prompts.append((reader.text(), reader.boolean()))
    reader.check_end()
    size = len(name) + len(instructions) + sum(len(text) for text, _ in prompts)
    if size > MAX_PROMPT_TEXT:
        raise ProtocolError(
            f"keyboard-interactive: the server sent {size} characters of prompts (at most {MAX_PROMPT_TEXT})"
        )
    return name, instructions, prompts
