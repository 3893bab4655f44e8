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

from .._auth.agent_forward import AGENT_REQUEST
from .._errors import ChannelOpenError, ChannelOpenFailureReason
from .._wire import Reader, string, uint32
from .channel import EXTENDED_DATA_STDERR, Channel
from .streams import ChannelReceiveStream, ChannelSendStream

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


#: The names these streams had before they served every channel kind.
ProcessWriter = ChannelSendStream
ProcessReader = ChannelReceiveStream


class Process:
    """A command running on the server. Use via ``SSHConnection.open_process``.

    Attributes:
        command: the command line (or subsystem name).
        stdin: a :class:`ChannelSendStream`; stdout, stderr: :class:`ChannelReceiveStream`.
    """

    def __init__(self, channel: SessionChannel, command: str) -> None:
        self.channel = channel
        self.command = command
        self.stdin = ChannelSendStream(channel)
        self.stdout = ChannelReceiveStream(channel, 0)
        self.stderr = ChannelReceiveStream(channel, EXTENDED_DATA_STDERR)

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
