"""The ``trissh`` command: ``trissh [options] destination [command]`` as ssh, ``trissh cp`` as scp,
``trissh run`` for many hosts at once. Each subcommand's module is imported only when used, and none
imports the network stack before its command line has been read (``trissh --help`` answers at once)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "cp":
        from .cp import cp_main

        return cp_main(args[1:])
    if args and args[0] == "run":
        import trio

        from .common import run_main
        from .run_hosts import run_hosts_main

        return run_main(lambda: trio.run(run_hosts_main, args[1:]))
    from .ssh_main import ssh_main

    return ssh_main(args)
