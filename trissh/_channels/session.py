"""Session channels as processes (RFC 4254 §6): exec, shell, env, pty, signals, exit status.

Theory of operation
-------------------
A :class:`Process` has Trio streams: ``stdin`` (a :class:`trio.abc.SendStream`
with ``send_eof()``), ``stdout`` and ``stderr`` (:class:`trio.abc.ReceiveStream`).
When the connection breaks, reads raise the connection's error once the data
that did arrive is consumed: a cut-off command never looks like one that ended.

**One window, two streams.** stdout and stderr share the channel's receive
window (RFC 4254 §5.2). A caller that reads only stdout while the command
writes a lot to stderr would otherwise stall both: the window fills with
unread stderr and the server stops sending stdout. The rule here: at most
:data:`MAX_UNREAD_STDERR` bytes of stderr wait unread *while stdout is
starved* (a stdout read found nothing, and no stdout arrived since). Beyond
that the oldest unread stderr is dropped, its window granted back, and the
bytes counted in :attr:`Process.stderr_discarded`. A caller that reads
stderr keeps up and loses nothing; one that reads only stdout never
deadlocks and still finds the last ``MAX_UNREAD_STDERR`` bytes of stderr.
``DEVNULL`` and ``STDOUT`` routing (:mod:`~trissh._channels.process_io`)
happen here too, on arrival.

**How a command ended.** ``exit-status`` or ``exit-signal`` (RFC 4254 §6.10),
once: a second report of either is a :class:`ProtocolError` naming the
channel (OpenSSH's client lets the last one win; a server that reports twice
is broken, and which report is true cannot be known). Without any report the
return code is None, but only for a channel the server closed: when the
connection breaks first, :meth:`Process.wait` (and so ``run()``) raises its
error, even after the server's EOF.

**Signals.** ``send_signal`` sends RFC 4254 §6.9 ``signal`` (no reply:
OpenSSH, which honours it since 7.9 for exec and shell sessions but not
subsystems or forced commands, answers nothing useful). :meth:`Process.stop_nowait`
is what a ``run()``/``open_process()`` block calls when it is left while the
command runs (cancellation included): a ``signal`` and then CLOSE, queued
without waiting, so cleanup never blocks.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import trio

from .. import _messages as msg
from .._auth.agent_forward import AGENT_REQUEST
from .._errors import ChannelOpenError, ChannelOpenFailureReason, ProtocolError
from .._public import public
from .._wire import Reader, boolean, byte, string, uint32
from .channel import EXTENDED_DATA_STDERR, Channel, ChannelState
from .process_io import PIPE, STDOUT, Redirect
from .streams import ChannelReceiveStream, ChannelSendStream
from .terminal import pty_request_fields, window_change_fields

__all__ = [
    "MAX_UNREAD_STDERR",
    "SIGNAL_NAMES",
    "STOP_SIGNAL",
    "CompletedProcess",
    "ExitSignal",
    "Process",
    "ProcessPhase",
    "ProcessReader",
    "ProcessWriter",
    "SessionChannel",
    "check_signal_name",
]

#: The most unread stderr kept while stdout is starved: enough for any error
#: report a command prints, and half the window (INITIAL_WINDOW, 2 MiB), so
#: stderr alone can never hold the whole window.
MAX_UNREAD_STDERR: Final = 1024 * 1024

#: RFC 4254 §6.10: the standard signal names (without "SIG").
SIGNAL_NAMES: Final = frozenset(
    {"ABRT", "ALRM", "FPE", "HUP", "ILL", "INT", "KILL", "PIPE", "QUIT", "SEGV", "TERM", "USR1", "USR2"}
)

#: Sent to a command still running when its block is left (then the channel is closed).
STOP_SIGNAL: Final = "TERM"


def check_signal_name(name: str | signal.Signals) -> str:
    """The RFC 4254 §6.10 name for ``name`` ("TERM", or ``signal.SIGTERM``); ``x@domain`` names pass.

    Raises:
        ValueError: an unknown name, or one with the "SIG" prefix.
        TypeError: neither a str nor a :class:`signal.Signals`.
    """
    if isinstance(name, signal.Signals):
        name = name.name.removeprefix("SIG")
    elif not isinstance(name, str):
        raise TypeError(f"a signal is a name like 'TERM' or a signal.Signals, not {name!r}")
    if name in SIGNAL_NAMES:
        return name
    if "@" in name and name.isprintable() and name.isascii() and " " not in name:
        return name  # a local extension (RFC 4254 §6.10: "name@domain")
    if name.startswith("SIG") and name[3:] in SIGNAL_NAMES:
        raise ValueError(f"signal names have no SIG prefix (RFC 4254 §6.10): use {name[3:]!r}, not {name!r}")
    raise ValueError(f"unknown signal {name!r}; RFC 4254 §6.10 names are {sorted(SIGNAL_NAMES)}")


@public
class ExitSignal(str):
    """The signal that ended a command (RFC 4254 §6.10 ``exit-signal``): a ``str``, its name.

    ``result.exit_signal == "TERM"`` works as before; the rest of the message is in attributes.

    Attributes:
        core_dumped: whether the server said a core was dumped.
        message: the server's error message (often empty).
    """

    core_dumped: bool
    message: str

    def __new__(cls, name: str, core_dumped: bool = False, message: str = "") -> ExitSignal:
        self = super().__new__(cls, name)
        self.core_dumped = core_dumped
        self.message = message
        return self

    @property
    def name(self) -> str:
        return str(self)

    @property
    def number(self) -> int | None:
        """The local signal number of that name, or None if this system has none."""
        try:
            return signal.Signals["SIG" + self].value
        except KeyError:
            return None


class SessionChannel(Channel):
    """A session channel: how its command ended, and where its stderr goes."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.exit_status: int | None = None
        self.exit_signal: ExitSignal | None = None
        self.exit_message: str = ""
        #: Where stderr goes: PIPE (its buffer), DEVNULL (dropped) or STDOUT (into stdout's buffer).
        self.stderr_route: Redirect = PIPE
        #: Unread stderr dropped to keep stdout flowing (see the module docstring).
        self.stderr_discarded = 0
        self._stdout_starved = False
        #: False when a trissh task copies stderr into a target: it is being read, so never dropped.
        self.bound_stderr = True

    def handle_request(self, request: str, want_reply: bool, reader: Reader) -> bool:
        if request == "exit-status":
            status = reader.uint32()
            self._check_first_exit(request)
            self.exit_status = status
            return True
        if request == "exit-signal":
            self._check_first_exit(request)
            name = reader.ascii()
            core_dumped = reader.boolean()
            self.exit_message = reader.text()
            self.exit_signal = ExitSignal(name, core_dumped, self.exit_message)
            return True
        return super().handle_request(request, want_reply, reader)

    def _check_first_exit(self, request: str) -> None:
        """A command ends once (RFC 4254 §6.10): a second exit report is a broken server, not news.

        OpenSSH's client lets the last report win; we refuse it rather than
        silently replace how the command ended.
        """
        if self.exit_status is not None:
            earlier = f"exit-status {self.exit_status}"
        elif self.exit_signal is not None:
            earlier = f"exit-signal {self.exit_signal}"
        else:
            return
        raise ProtocolError(
            f"{request} for channel {self.local_id} after its {earlier}: a command reports how it ended once"
        )

    def handle_data(self, stream: int, data: bytes | memoryview) -> None:
        if stream == EXTENDED_DATA_STDERR and self.stderr_route is STDOUT:
            stream = 0  # 2>&1: one buffer, arrival order
        super().handle_data(stream, data)
        if stream == EXTENDED_DATA_STDERR:
            self._bound_stderr()
        elif stream == 0 and data:
            self._stdout_starved = False

    def take(self, stream: int, max_bytes: int | None) -> bytes | None:
        chunk = super().take(stream, max_bytes)
        if stream == 0:
            self._stdout_starved = chunk is None
            if chunk is None:
                self._bound_stderr()
        return chunk

    def _bound_stderr(self) -> None:
        """While stdout is starved, drop the oldest unread stderr beyond :data:`MAX_UNREAD_STDERR`."""
        buffer = self.buffers.get(EXTENDED_DATA_STDERR)
        if not self._stdout_starved or self.collect or not self.bound_stderr or buffer is None:
            return
        while self.buffered[EXTENDED_DATA_STDERR] > MAX_UNREAD_STDERR:
            size = len(buffer.popleft())
            self.buffered[EXTENDED_DATA_STDERR] -= size
            self.stderr_discarded += size
            self.consumed(size)

    @property
    def returncode(self) -> int | None:
        """The exit status; for a signal, minus its number (as :mod:`subprocess` does)."""
        if self.exit_status is not None:
            return self.exit_status
        if self.exit_signal is not None:
            number = self.exit_signal.number
            return None if number is None else -number
        return None


@public
@dataclass(frozen=True)
class CompletedProcess:
    """A finished command, as :meth:`SSHConnection.run` returns it.

    Attributes:
        args: the command line as sent (a sequence given to ``run()`` is joined with
            :func:`shlex.join`).
        returncode: the exit status the server reported (``exit-status``); for a command
            ended by a signal (``exit-signal``), minus its number, as :mod:`subprocess` does.
            None when the server closed the channel without reporting either, or reported a
            signal this system has no number for (``exit_signal`` then names it).
        stdout: everything the command wrote to its standard output; ``b""`` when
            ``stdout=`` was :data:`DEVNULL` or a stream (the output went there). Never None.
        stderr: the same for standard error; also ``b""`` with ``stderr=STDOUT`` (it is in
            ``stdout``) and on a terminal (``term_type``), where the server sends both as one
            stream. Never None.
        exit_signal: the :class:`ExitSignal` (a ``str`` such as ``"TERM"``) that ended the
            command; None when it exited by itself or the server reported nothing.
    """

    args: str
    returncode: int | None
    stdout: bytes
    stderr: bytes
    exit_signal: ExitSignal | None = None

    def __repr__(self) -> str:
        # Output can be megabytes: a log line gets its start and its size.
        how = f", exit_signal={str(self.exit_signal)!r}" if self.exit_signal is not None else ""
        return (
            f"trissh.CompletedProcess(args={self.args!r}, returncode={self.returncode!r}, "
            f"stdout={_brief(self.stdout)}, stderr={_brief(self.stderr)}{how})"
        )


#: How much of an output a repr shows.
_REPR_BYTES: Final = 48


def _brief(data: bytes) -> str:
    if len(data) <= _REPR_BYTES:
        return repr(data)
    return f"{data[:_REPR_BYTES]!r}... ({len(data)} bytes)"


#: The names these streams had before they served every channel kind.
ProcessWriter = ChannelSendStream
ProcessReader = ChannelReceiveStream


@public
class ProcessPhase(enum.Enum):
    """How far :meth:`Process.start` got."""

    #: Requests (env, pty) are being sent; no command runs yet.
    STARTING = "starting"
    #: The server accepted exec/shell/subsystem: a command runs (until the channel closes).
    STARTED = "started"


@public
class Process:
    """A command running on the server. Use via ``SSHConnection.open_process`` or ``open_shell``.

    Attributes:
        command: the command line (or subsystem name; ``""`` for a shell).
        stdin: a :class:`ChannelSendStream` (``send_eof()`` closes the command's input).
        stdout: a :class:`ChannelReceiveStream`. Never None: when ``stdout=`` sent the output
            elsewhere (:data:`DEVNULL`, a stream), reading it gives end-of-file at once.
        stderr: the same for standard error; also end-of-file at once with ``stderr=STDOUT``
            (it arrives in ``stdout``) and on a terminal, where the server sends both as one.
        returncode: None until the command has ended and its channel closed (so also between
            the server's exit report and its close); then the exit status, minus the signal
            number for a signal, or None when the server reported neither. :meth:`wait`
            returns it, and raises instead when the connection broke first.
        exit_signal: the :class:`ExitSignal` that ended the command, from the moment the
            server reports it; None while it runs and when it exited by itself.
        running: whether the command was started and its channel is still open.
        phase: how far :meth:`start` got (:class:`ProcessPhase`).
        has_terminal: whether a pseudo-terminal was granted (``term_type`` given).
        stderr_discarded: bytes of unread stderr dropped to keep stdout flowing (0 unless
            stderr was left unread while reading stdout: see ``MAX_UNREAD_STDERR``).
        channel: the session channel underneath (low-level).
    """

    def __init__(self, channel: SessionChannel, command: str) -> None:
        self.channel = channel
        self.command = command
        self.stdin = ChannelSendStream(channel)
        self.stdout = ChannelReceiveStream(channel, 0)
        self.stderr = ChannelReceiveStream(channel, EXTENDED_DATA_STDERR)
        self.phase = ProcessPhase.STARTING
        self.has_terminal = False

    def __repr__(self) -> str:
        # For a log line: which command, and where it is in its life (never its output).
        channel = self.channel
        if channel.exit_signal is not None:
            how = f"killed by signal {channel.exit_signal}"
        elif channel.exit_status is not None:
            how = f"exited {channel.exit_status}"
        elif channel.error is not None:
            how = f"failed: {type(channel.error).__name__}"
        elif self.running:
            how = "running"
        elif self.phase is ProcessPhase.STARTING and not channel.is_closed:
            how = "starting"
        else:
            how = "closed without an exit status"
        what = repr(self.command) if self.command else "shell"
        return f"<trissh.Process {what} {how}, channel {channel.local_id}>"

    @property
    def returncode(self) -> int | None:
        """The exit status once the command has ended (minus the signal number for a signal), else None."""
        return self.channel.returncode if self.channel.is_closed else None

    @property
    def exit_signal(self) -> ExitSignal | None:
        """The signal that ended the command (a ``str``, with ``core_dumped`` and ``message``), or None."""
        return self.channel.exit_signal

    @property
    def stderr_discarded(self) -> int:
        """Bytes of unread stderr dropped so that stdout kept flowing (see the module docstring)."""
        return self.channel.stderr_discarded

    @property
    def running(self) -> bool:
        """Whether the command was started and its channel is still open."""
        return self.phase is ProcessPhase.STARTED and self.channel.state is ChannelState.OPEN

    async def wait(self) -> int | None:
        """Wait for the command to end and return its exit status.

        Raises:
            ConnectionLost, ProtocolError, ...: the connection broke first.
        """
        await self.channel.finished.wait()
        if self.channel.error is not None:
            raise self.channel.error
        return self.channel.returncode

    async def send_signal(self, sig: str | signal.Signals) -> None:
        """Deliver ``sig`` to the command (RFC 4254 §6.9), e.g. ``"INT"`` or ``signal.SIGINT``.

        Nothing is sent once the command has ended (as :mod:`subprocess` does).
        OpenSSH's sshd accepts HUP, INT, KILL, QUIT, TERM, USR1 and USR2 for
        exec and shell sessions (not subsystems) and ignores the rest; the
        protocol has no reply, so a refusal is silent.

        Raises:
            ValueError, TypeError: not a signal name (the message says which names exist).
            ConnectionLost, ...: the connection is gone.
        """
        name = check_signal_name(sig)
        if self.channel.error is not None:
            raise self.channel.error
        if not self.running:
            await trio.lowlevel.checkpoint()
            return
        await self.channel.request("signal", string(name), want_reply=False)

    async def terminate(self) -> None:
        """Send ``TERM``."""
        await self.send_signal("TERM")

    async def kill(self) -> None:
        """Send ``KILL``."""
        await self.send_signal("KILL")

    async def resize_terminal(self, cols: int, rows: int, width: int = 0, height: int = 0) -> None:
        """Tell the command its terminal is now ``cols`` x ``rows`` (RFC 4254 §6.7 ``window-change``).

        Raises:
            RuntimeError: the process has no terminal (``term_type`` was not given).
            ValueError, TypeError: a size that is not a uint32.
        """
        fields = window_change_fields(cols, rows, width, height)
        if not self.has_terminal:
            raise RuntimeError("resize_terminal: this process has no terminal (pass term_type to get one)")
        if self.channel.error is not None:
            raise self.channel.error
        if not self.running:
            await trio.lowlevel.checkpoint()
            return
        await self.channel.request("window-change", *fields, want_reply=False)

    def stop_nowait(self, sig: str = STOP_SIGNAL) -> None:
        """If the command still runs, queue ``signal`` then CLOSE, without waiting (safe when cancelled)."""
        channel = self.channel
        if self.running and channel.transport.error is None:
            channel.transport.send_packet_nowait(
                byte(msg.CHANNEL_REQUEST)
                + uint32(channel.remote_id)
                + string("signal")
                + boolean(False)
                + string(sig)
            )
        channel.close_locally()

    async def start(
        self,
        *,
        subsystem: bool = False,
        shell: bool = False,
        env: Mapping[str, str] | None,
        term_type: str | None,
        term_size: tuple[int, ...] | None,
        term_modes: Mapping[str | int, int] | None = None,
        forward_agent: bool = False,
    ) -> None:
        """Open the session and start the command, after its env, pty and agent requests.

        Args:
            subsystem: ``command`` names a subsystem (``subsystem`` request).
            shell: start the user's login shell (``shell`` request); ``command`` is ignored.
            term_type, term_size, term_modes: ask for a pseudo-terminal (``pty-req``, RFC 4254 §6.2, §8).
            forward_agent: ask the server to forward agent connections back to
                us (``auth-agent-req@openssh.com``, OpenSSH PROTOCOL §2.2); the
                connection must have agent forwarding enabled
                (:meth:`ChannelMux.enable_agent_forwarding`).

        Raises:
            RuntimeError: ``forward_agent`` on a connection without agent forwarding.
            ValueError, TypeError: bad terminal arguments (checked before anything is sent).
            ChannelOpenError: the server refused the pty or the command.
        """
        channel = self.channel
        if forward_agent and not channel.mux.agent_forwarding:
            raise RuntimeError("forward_agent needs a connection with agent forwarding enabled")
        if term_type is None and (term_modes or term_size is not None):
            raise ValueError("term_size and term_modes need a term_type (they describe a terminal)")
        pty_fields = pty_request_fields(term_type, term_size, term_modes) if term_type is not None else None
        await channel.wait_opened()
        for name, value in (env or {}).items():
            await channel.request("env", string(name), string(value), want_reply=False)
        if pty_fields is not None:
            ok = await channel.request("pty-req", *pty_fields)
            if not ok:
                raise ChannelOpenError(
                    ChannelOpenFailureReason.ADMINISTRATIVELY_PROHIBITED, "pty request refused"
                )
            self.has_terminal = True
        if forward_agent:
            # As ssh does: no reply wanted. A server that refuses simply opens no agent channels.
            await channel.request(AGENT_REQUEST, want_reply=False)
        # Sent now, the command may run before the reply comes: a cancellation while we wait must stop it.
        self.phase = ProcessPhase.STARTED
        if shell:
            what = "a shell"
            ok = await channel.request("shell")
        elif subsystem:
            what = f"subsystem {self.command!r}"
            ok = await channel.request("subsystem", string(self.command))
        else:
            what = f"command {self.command!r}"
            ok = await channel.request("exec", string(self.command))
        if not ok:
            if channel.error is not None:
                raise channel.error
            raise ChannelOpenError(
                ChannelOpenFailureReason.ADMINISTRATIVELY_PROHIBITED, f"the server refused to start {what}"
            )
