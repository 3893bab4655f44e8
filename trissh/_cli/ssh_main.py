"""``trissh [options] destination [command ...]``: ssh's everyday uses.

A command runs with its output streaming to ours and our exit status its own; with no command and a
terminal, an interactive shell on a pseudo-terminal (raw mode, the window size sent and kept up to date,
``~.`` and ``~?``); ``-L``/``-R``/``-D`` forwards, ``-N`` for forwards only, ``-W`` for a stdio forward.
Exit status as ssh's: the remote command's, 255 when the connection fails or the command line is wrong.
"""

from __future__ import annotations

import logging
import sys

from .common import EXIT_SSH_ERROR, SSHSetup, run_main
from .ssh_args import USAGE, Invocation, UsageError, parse_ssh_args

__all__ = ["ssh_main"]


def ssh_main(argv: list[str]) -> int:
    try:
        parsed = parse_ssh_args(argv)
    except UsageError as exc:
        print(f"trissh: {exc}\n{USAGE}", file=sys.stderr)
        return EXIT_SSH_ERROR
    if parsed == "help":
        print(USAGE)
        return 0
    if parsed == "version":
        from .. import __version__

        print(f"trissh {__version__}")
        return 0
    assert isinstance(parsed, Invocation)
    inv = parsed
    _configure_logging(inv)
    return run_main(lambda: _run(inv))


def _run(inv: Invocation) -> int:
    setup = SSHSetup.from_invocation(inv)  # a bad config file: one line and 255, as from ssh
    if inv.print_config:
        return _print_config(setup)
    from .session import run_session  # the network stack, only now that the command line is read

    return run_session(inv, setup)


def _configure_logging(inv: Invocation) -> None:
    if inv.quiet or not (inv.verbosity or inv.log_file):
        level = logging.ERROR if inv.quiet else logging.WARNING
    else:
        level = logging.INFO if inv.verbosity <= 1 else logging.DEBUG
    handler: logging.Handler = logging.FileHandler(inv.log_file) if inv.log_file else logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root = logging.getLogger("trissh")
    root.addHandler(handler)
    root.setLevel(level)


def _print_config(setup: SSHSetup) -> int:
    for key, value in setup.lookup().items():
        for item in value if isinstance(value, list) else [value]:
            print(f"{key} {item}")
    return 0
