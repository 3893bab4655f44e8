"""Questions asked on the terminal, as ssh asks them: passwords, keyboard-interactive prompts and key
passphrases, read with ``getpass`` (from the terminal itself, never echoed) in a worker thread so that
the connection's tasks keep running while the user types."""

from __future__ import annotations

import getpass
import os
import sys
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from .._algorithms.hostkeys import PublicKey

__all__ = ["ask_host_key", "terminal_prompts"]


def terminal_prompts(host: str, user: str | None = None) -> dict[str, object]:
    """connect() callbacks that ask on the terminal; none when there is no terminal to ask on."""
    if not os.isatty(0) and not os.isatty(2):
        return {}
    try:
        with open("/dev/tty", "rb"):
            pass
    except OSError:
        return {}

    async def ask(prompt: str, echo: bool = False) -> str:
        if echo:
            return await trio.to_thread.run_sync(_ask_echoed, prompt)
        return await trio.to_thread.run_sync(getpass.getpass, prompt)

    async def password() -> str:
        who = f"{user}@{host}" if user else host
        return await ask(f"{who}'s password: ")

    async def kbdint(name: str, instructions: str, prompts: list[tuple[str, bool]]) -> list[str]:
        for line in (name, instructions):
            if line:
                print(line, file=sys.stderr)
        return [await ask(text, echo) for text, echo in prompts]

    async def passphrase(path: str) -> str:
        return await ask(f"Enter passphrase for key '{path}': ")

    return {"password": password, "kbdint_handler": kbdint, "passphrase": passphrase}


def _ask_echoed(prompt: str) -> str:
    """A question whose answer is shown as typed (not a secret), asked on the terminal itself."""
    fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    with open(fd, "rb", buffering=0) as tty:
        os.write(fd, prompt.encode())
        return tty.readline().decode(errors="replace").rstrip("\r\n")


def ask_host_key(record_in: str | None) -> object:
    """A host key policy that asks, as ssh's ``StrictHostKeyChecking ask``: yes (or the key's
    fingerprint typed back) trusts the key and appends it, hashed, to ``record_in``."""

    async def ask(host: str, port: int, key: PublicKey) -> bool:
        where = host if port == 22 else f"[{host}]:{port}"
        kind = key.key_type.removeprefix("ssh-").split("-")[0].upper()
        question = (
            f"The authenticity of host '{where}' can't be established.\n"
            f"{kind} key fingerprint is {key.fingerprint}.\n"
            "This key is not known by any other names.\n"
            "Are you sure you want to continue connecting (yes/no/[fingerprint])? "
        )
        while True:
            answer = (await trio.to_thread.run_sync(_ask_echoed, question)).strip()
            if answer.lower() in ("yes", "no") or answer == key.fingerprint:
                break
            question = "Please type 'yes', 'no' or the fingerprint: "
        if answer.lower() == "no":
            return False
        if record_in is not None:
            from .._auth.known_hosts import KnownHosts

            await trio.to_thread.run_sync(lambda: KnownHosts().add(record_in, host, port, key, hashed=True))
            print(
                f"Warning: Permanently added '{where}' ({key.key_type}) to the list of known hosts.",
                file=sys.stderr,
            )
        return True

    return ask
