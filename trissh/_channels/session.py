"""Session channels as processes (RFC 4254 §6): exec, env, pty, exit status.

A :class:`Process` has Trio streams: ``stdin`` (a :class:`trio.abc.SendStream`
with ``send_eof()``), ``stdout`` and ``stderr`` (:class:`trio.abc.ReceiveStream`).
When the connection breaks, reads raise the connection's error once the data
that did arrive is consumed: a cut-off command never looks like one that ended.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import final

import trio

from .._auth.agent_forward import AGENT_REQUEST
from .._errors import ChannelOpenError, ChannelOpenFailureReason
from .._wire import Reader, string, uint32
from .channel import EXTENDED_DATA_STDERR, Channel

__all__ = ["CompletedProcess", "Process", "ProcessReader", "ProcessWriter", "SessionChannel"]


class SessionChannel(Channel):
    """A session channel that records how its command ended."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        self.exit_message: str = ""

    def handle_request(self, request: str, want_reply: bool, reader: Reader) -> bool:
        if request == "exit-status":
            self.exit_status = reader.uint32()
            return True
        if request == "exit-signal":
            self.exit_signal = reader.ascii()
            reader.boolean()  # core dumped
            self.exit_message = reader.text()
            return True
        return super().handle_request(request, want_reply, reader)

    @property
    def returncode(self) -> int | None:
        """The exit status; for a signal, minus its number (as :mod:`subprocess` does)."""
        if self.exit_status is not None:
            return self.exit_status
        if self.exit_signal is not None:
            try:
                return -signal.Signals["SIG" + self.exit_signal].value
            except KeyError:
                return None
        return None


@dataclass(frozen=True)
class CompletedProcess:
    """A finished command.

    Fields: args (the command line), returncode (exit status; minus the signal
    number if a signal ended it; None if the server reported neither), stdout,
    stderr (bytes), exit_signal (the signal name, e.g. ``"TERM"``, or None).
    """

    args: str
    returncode: int | None
    stdout: bytes
    stderr: bytes
    exit_signal: str | None = None


@final
class ProcessWriter(trio.abc.SendStream):
    """A process's standard input."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._sending = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is already sending on this stream")
        self._sending = True
        try:
            if self._channel.error is not None:
                raise self._channel.error
            if not data:
                # An empty write still checks the stream is usable and is a checkpoint.
                self._channel._check_sendable()
                await trio.lowlevel.checkpoint()
                return
            await self._channel.send_data(data)
        finally:
            self._sending = False

    async def wait_send_all_might_not_block(self) -> None:
        await self._channel.wait_send_window()
        await trio.lowlevel.checkpoint()

    async def send_eof(self) -> None:
        """Close standard input: the command reads end-of-file."""
        if self._channel.error is not None:
            raise self._channel.error
        await self._channel.send_eof()

    async def aclose(self) -> None:
        if self._channel.error is None:
            await self._channel.send_eof()
        else:
            await trio.lowlevel.checkpoint()


@final
class ProcessReader(trio.abc.ReceiveStream):
    """A process's standard output or standard error."""

    def __init__(self, channel: Channel, stream: int) -> None:
        self._channel = channel
        self._stream = stream
        self._closed = False
        self._receiving = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        if max_bytes is not None and max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is already receiving on this stream")
        self._receiving = True
        try:
            channel = self._channel
            while True:
                chunk = channel.take(self._stream, max_bytes)
                if chunk is not None:
                    await trio.lowlevel.checkpoint()
                    return chunk
                if channel.error is not None:
                    raise channel.error
                if channel.eof_received:
                    await trio.lowlevel.checkpoint()
                    return b""
                await channel.wait_data()
        finally:
            self._receiving = False

    async def aclose(self) -> None:
        """Stop reading: what is buffered, and what arrives later, is discarded."""
        if not self._closed:
            self._closed = True
            channel = self._channel
            channel.consumed(channel.buffered[self._stream])
            channel.take_all(self._stream)
            del channel.buffers[self._stream]  # further data on this stream is dropped
        await trio.lowlevel.checkpoint()


class Process:
    """A command running on the server. Use via ``SSHConnection.open_process``.

    Attributes:
        command: the command line (or subsystem name).
        stdin: :class:`ProcessWriter`; stdout, stderr: :class:`ProcessReader`.
    """

    def __init__(self, channel: SessionChannel, command: str) -> None:
        self.channel = channel
        self.command = command
        self.stdin = ProcessWriter(channel)
        self.stdout = ProcessReader(channel, 0)
        self.stderr = ProcessReader(channel, EXTENDED_DATA_STDERR)

    @property
    def returncode(self) -> int | None:
        """The exit status once the command has ended, else None."""
        return self.channel.returncode if self.channel.is_closed else None

    @property
    def exit_signal(self) -> str | None:
        return self.channel.exit_signal

    async def wait(self) -> int | None:
        """Wait for the command to end and return its exit status.

        Raises:
            ConnectionLost, ProtocolError, ...: the connection broke first.
        """
        await self.channel.close_received.wait()
        if self.channel.error is not None:
            raise self.channel.error
        return self.channel.returncode

    async def start(
        self,
        *,
        subsystem: bool,
        env: Mapping[str, str] | None,
        term_type: str | None,
        term_size: tuple[int, ...] | None,
        forward_agent: bool = False,
    ) -> None:
        """Open the session and start the command, after its env, pty and agent requests.

        Args:
            forward_agent: ask the server to forward agent connections back to
                us (``auth-agent-req@openssh.com``, OpenSSH PROTOCOL §2.2); the
                connection must have agent forwarding enabled
                (:meth:`ChannelMux.enable_agent_forwarding`).

        Raises:
            RuntimeError: ``forward_agent`` on a connection without agent forwarding.
        """
        channel = self.channel
        if forward_agent and not channel.mux.agent_forwarding:
            raise RuntimeError("forward_agent needs a connection with agent forwarding enabled")
        await channel.wait_opened()
        for name, value in (env or {}).items():
            await channel.request("env", string(name), string(value), want_reply=False)
        if term_type is not None:
            cols, rows, width, height = (*(term_size or (80, 24)), 0, 0)[:4]
            modes = b"\x00"  # TTY_OP_END: the server's defaults (RFC 4254 §8)
            ok = await channel.request(
                "pty-req",
                string(term_type),
                uint32(cols),
                uint32(rows),
                uint32(width),
                uint32(height),
                string(modes),
            )
            if not ok:
                raise ChannelOpenError(
                    ChannelOpenFailureReason.ADMINISTRATIVELY_PROHIBITED, "pty request refused"
                )
        if forward_agent:
            # As ssh does: no reply wanted. A server that refuses simply opens no agent channels.
            await channel.request(AGENT_REQUEST, want_reply=False)
        if subsystem:
            ok = await channel.request("subsystem", string(self.command))
        else:
            ok = await channel.request("exec", string(self.command))
        if not ok:
            if channel.error is not None:
                raise channel.error
            what = "subsystem" if subsystem else "command"
            raise ChannelOpenError(
                ChannelOpenFailureReason.ADMINISTRATIVELY_PROHIBITED,
                f"the server refused to start {what} {self.command!r}",
            )
