"""What the ``trissh`` commands share: the connection set-up from the command line and the config,
copying output to our descriptors, and the exit statuses and messages of ssh."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import SSHError
from .ssh_args import Invocation, UsageError

if TYPE_CHECKING:
    import trio

    from .._config import ResolvedConfig, SSHConfig
    from ..connection import SSHConnection

__all__ = ["EXIT_SSH_ERROR", "SSHSetup", "StdoutClosed", "copy_out", "run_main", "ssh_error"]

#: ssh(1)'s exit status when the connection itself fails or the command line is wrong.
EXIT_SSH_ERROR = 255


class StdoutClosed(Exception):
    """Whoever reads our output has gone (``trissh host cmd | head -1``): stop quietly."""


async def copy_out(source: trio.abc.ReceiveStream, fd: int) -> None:
    """``source`` to our descriptor ``fd`` until EOF."""
    import trio

    out = trio.lowlevel.FdStream(os.dup(fd))
    async with out:
        try:
            async for chunk in source:
                await out.send_all(chunk)
        except trio.BrokenResourceError as exc:
            raise StdoutClosed from exc


@dataclass
class SSHSetup:
    """The connection a command line asks for: its host, and the config it is resolved with (the
    command line's own options first, then ``-F`` or the default files)."""

    host: str
    config: SSHConfig
    resolved: ResolvedConfig  # the host's settings, resolved once for the prompts and BatchMode

    @classmethod
    def from_invocation(cls, inv: Invocation) -> SSHSetup:
        return cls.create(inv.destination.host, inv.config_file, inv.config_lines)

    @classmethod
    def create(cls, host: str, config_file: str | None, lines: list[str]) -> SSHSetup:
        config = load_config(config_file, lines)
        return cls(host, config, config.resolve(host))

    def lookup(self) -> dict[str, str | list[str]]:
        return self.config.lookup(self.host)

    def connect(self) -> contextlib.AbstractAsyncContextManager[SSHConnection]:
        from .._connect import connect
        from .prompts import ask_host_key, terminal_prompts

        resolved = self.resolved
        prompts = {} if resolved.batch_mode else terminal_prompts(self.host, resolved.user)
        if prompts and resolved.strict_host_key_checking in (None, "ask"):
            # ssh's default: ask whether to trust an unknown host, and remember it if so.
            files = resolved.user_known_hosts_files or (os.path.expanduser("~/.ssh/known_hosts"),)
            prompts["host_key_policy"] = ask_host_key(files[0] if files else None)
        return connect(self.host, config=self.config, **prompts)  # type: ignore[arg-type]

    @contextlib.asynccontextmanager
    async def forwards(self, conn: SSHConnection, inv: Invocation) -> AsyncIterator[None]:
        """The command line's -L, -R and -D forwards, open while the block runs (the config's are
        opened by connect itself)."""
        from .._forwarding.specs import open_forwards

        async with open_forwards(conn, inv.local_forwards, inv.remote_forwards, inv.dynamic_forwards):
            yield


def load_config(config_file: str | None, lines: list[str]) -> SSHConfig:
    """The command line's config lines, then ``config_file`` (``-F``; ``none``: no file) or the default
    files, as one config."""
    from .._config import SSHConfig

    files = SSHConfig.from_text("", name="none") if config_file == "none" else SSHConfig.load(config_file)
    return files.with_options(lines)  # the command line's options: for the destination, not jump hosts


def ssh_error(exc: BaseException) -> BaseException | None:
    """The error to report for ``exc``: an SSHError or usage error, also from inside a group."""
    if isinstance(exc, SSHError | UsageError | StdoutClosed):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = ssh_error(inner)
            if found is not None:
                return found
    return None


def run_main(body: Callable[[], int]) -> int:
    """Run a command's body with ssh's exit statuses: 130 on Ctrl-C, 255 and one line on stderr for a
    connection error or a bad command line, and no traceback when our output pipe is closed."""
    try:
        return body()
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_SSH_ERROR
    except FileNotFoundError as exc:  # e.g. an identity or known_hosts file that does not exist
        print(f"trissh: {exc.filename or ''}: {exc.strerror}", file=sys.stderr)
        return EXIT_SSH_ERROR
    except BaseException as exc:
        error = ssh_error(exc)
        if error is None:
            raise
        if isinstance(error, StdoutClosed):
            _silence_stdout()
            return EXIT_SSH_ERROR
        print(f"trissh: {error}", file=sys.stderr)
        return EXIT_SSH_ERROR


def _silence_stdout() -> None:
    # Python flushes sys.stdout at exit; into a closed pipe that prints a second error.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
