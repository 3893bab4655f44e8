"""ProxyCommand: a local command's standard input and output as the connection's byte stream.

The command runs through ``/bin/sh -c`` (as ssh runs it, with ``exec`` so that the shell does not
stay in between) in its own process; its stderr is ours, so that what it says reaches the user.
When the connection ends its pipes are closed and it is given a moment to exit before it is killed;
a command that ends by itself ends the connection with an error naming it and its exit status.
"""

from __future__ import annotations

import subprocess

import trio

from ._errors import ConnectionLost

__all__ = ["ProxyCommandStream", "open_proxy_command"]

#: Seconds a proxy command may take to exit once its pipes are closed, before it is killed.
EXIT_GRACE = 2.0


class ProxyCommandStream(trio.abc.Stream):
    """The stream of a running ProxyCommand (see :func:`open_proxy_command`)."""

    def __init__(self, command: str, process: trio.Process) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.command = command
        self._process = process
        self._stdin = process.stdin
        self._stdout = process.stdout

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._stdin.send_all(memoryview(data))
        except trio.BrokenResourceError:
            raise ConnectionLost(await self._ended("stopped reading")) from None

    async def wait_send_all_might_not_block(self) -> None:
        await self._stdin.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        data = await self._stdout.receive_some(max_bytes)
        if not data:
            raise ConnectionLost(await self._ended("closed its output"))
        return bytes(data)

    async def _ended(self, what: str) -> str:
        with trio.move_on_after(EXIT_GRACE):
            await self._process.wait()
        status = self._process.returncode
        how = f"exited with status {status}" if status is not None else "is still running"
        return f"ProxyCommand {self.command!r} {what} ({how})"

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self._stdin.aclose()
            await self._stdout.aclose()
            with trio.move_on_after(EXIT_GRACE):
                await self._process.wait()
            if self._process.returncode is None:
                self._process.kill()
                await self._process.wait()


async def open_proxy_command(command: str) -> ProxyCommandStream:
    """Start ``command`` (already %-expanded) and return its stream."""
    try:
        process = await trio.lowlevel.open_process(
            ["/bin/sh", "-c", f"exec {command}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
    except OSError as exc:
        raise ConnectionLost(f"cannot run ProxyCommand {command!r}: {exc}") from exc
    return ProxyCommandStream(command, process)
