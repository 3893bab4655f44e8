"""Side-by-side benchmarks: trissh against AsyncSSH, Paramiko and OpenSSH's ``ssh``.

Run them with ``scripts/bench`` (or ``python -m benchmarks.run``). The pieces:

* :mod:`benchmarks.run` — the orchestrator: starts one throwaway sshd, runs every case for every client, each
  measurement in a fresh process (:mod:`benchmarks.worker`), the clients interleaved round after round, then
  prints the table and writes the JSON results and the chart.
* :mod:`benchmarks.worker` — one case for one client, in its own process; prints one JSON line.
* :mod:`benchmarks.forward` — the same for the forwarding cases, with :mod:`benchmarks.endpoints`, the app
  and the sink at either end of a forwarded connection (processes of their own).
* :mod:`benchmarks.sftp` — the same for the SFTP cases, against files the orchestrator prepares on tmpfs.
* :mod:`benchmarks.chart` — the PNG chart, drawn from a results JSON file.

This module holds what they share: the names of the clients and cases, the ciphers, and the sizes of the
full and the quick form.
"""

from __future__ import annotations

import dataclasses
from typing import Final

__all__ = [
    "CASES",
    "CIPHERS",
    "CLIENTS",
    "DEFAULT_CASES",
    "ETM_MAC",
    "FORWARD_CASES",
    "FORWARD_CIPHERS",
    "FULL",
    "OPT_IN_CASES",
    "QUICK",
    "SFTP_CASES",
    "TRANSFER_CASES",
    "Sizes",
]

#: Every client, in the order they run within a round and appear in the table.
CLIENTS: Final = ("trissh", "asyncssh", "paramiko", "ssh")

#: Every case, in the order they run within a round.
CASES: Final = (
    "download",
    "upload",
    "handshake",
    "command",
    "fanout",
    "channels",
    "forward",
    "streams",
    "sftp-get",
    "sftp-put",
    "sftp-small-get",
    "sftp-small-put",
)

#: Cases run only when asked for by name (``--cases handshake command``). ``command``: each client's command
#: line runs ``true`` on the server (``trissh host true``, a minimal AsyncSSH script, ``ssh host true``),
#: timed from outside as a whole process, interpreter start-up, imports and connect included.
OPT_IN_CASES: Final = ("command",)

#: What runs when no ``--cases`` are given.
DEFAULT_CASES: Final = tuple(case for case in CASES if case not in OPT_IN_CASES)

#: The bulk-transfer cases: one variant per cipher.
TRANSFER_CASES: Final = ("download", "upload")

#: The TCP forwarding cases (run by :mod:`benchmarks.forward`): a local port forward, its variants the
#: direction of the data ("download": from the sink to the app), and many direct-tcpip streams at once.
FORWARD_CASES: Final = ("forward", "streams")

#: The SFTP cases (run by :mod:`benchmarks.sftp`): one big file, then a tree of small files, downloaded and
#: uploaded with each client's SFTP client.
SFTP_CASES: Final = ("sftp-get", "sftp-put", "sftp-small-get", "sftp-small-put")

#: The MAC paired with every cipher (only the CTR cipher uses it; AEAD ciphers authenticate by themselves).
ETM_MAC: Final = "hmac-sha2-256-etm@openssh.com"

#: The ciphers the transfer cases compare.
CIPHERS: Final = (
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes256-ctr",
)

#: The cipher every client must use in the forwarding and the SFTP cases (a default every client here
#: supports; the clients' own defaults differ, and the comparison would measure that instead). The name
#: predates the SFTP cases; :attr:`benchmarks.worker.Job.cipher` looks every case up here.
FORWARD_CIPHERS: Final = {case: "aes128-gcm@openssh.com" for case in (*FORWARD_CASES, *SFTP_CASES)}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each case is.

    Fields: rounds (how often every measurement is repeated), transfer_bytes (per download or upload),
    handshakes (per handshake worker, after one untimed cold connection), fanout_connections (concurrent
    connections from one process), channels (concurrent sessions on one connection), channel_bytes (output of
    each session), forward_bytes (per forwarded download or upload), streams (concurrent direct-tcpip
    streams on one connection), stream_bytes (sent on each stream), sftp_files (files in the SFTP small-file
    cases' tree; their big file is transfer_bytes), sftp_file_bytes (each of those files), commands (client
    processes per command worker), timeout (seconds a worker may take before it is killed).
    """

    rounds: int
    transfer_bytes: int
    handshakes: int
    fanout_connections: int
    channels: int
    channel_bytes: int
    forward_bytes: int
    streams: int
    stream_bytes: int
    sftp_files: int
    sftp_file_bytes: int
    commands: int
    timeout: float


#: The real benchmark.
FULL: Final = Sizes(
    rounds=5,
    transfer_bytes=256 << 20,
    handshakes=30,
    fanout_connections=1000,
    channels=100,
    channel_bytes=4 << 20,
    forward_bytes=256 << 20,
    streams=100,
    stream_bytes=1 << 20,
    sftp_files=1000,
    sftp_file_bytes=4 << 10,
    commands=10,
    timeout=600.0,
)

#: Every case at a tiny size, so the suite can check that nothing has rotted (``--quick``).
QUICK: Final = Sizes(
    rounds=1,
    transfer_bytes=1 << 20,
    handshakes=3,
    fanout_connections=20,
    channels=5,
    channel_bytes=64 << 10,
    forward_bytes=1 << 20,
    streams=5,
    stream_bytes=64 << 10,
    sftp_files=20,
    sftp_file_bytes=4 << 10,
    commands=2,
    timeout=60.0,
)
