"""Run the benchmark suite: trissh against AsyncSSH, Paramiko and OpenSSH's ``ssh``, side by side.

Usage::

    python -m benchmarks.run [--quick] [--rounds N] [--cases CASE ...] [--clients CLIENT ...]
                             [--ciphers CIPHER ...] [--out DIR] [--timeout SECONDS]

(``scripts/bench`` installs what is needed and then runs this.)

Theory of operation
-------------------
One throwaway sshd (:func:`trissh.testing.start_sshd`, with a clean ``HOME`` and ``MaxStartups`` /
``MaxSessions`` raised for the fan-out cases) serves the whole run. Every measurement is a fresh process,
``python -m benchmarks.worker``, so no client benefits from another's warm state, and start-up costs can be
measured too. Round after round, every (case, variant) runs for every client in turn (A B C D A B C D ...),
so a drift of the machine (another process, thermal throttling) hits all clients alike; the table shows the
median and the min-max over the rounds.

Two kinds of figures, as both matter to users:

* *in-process* ("transfer only", "warm"), measured inside the worker around the work itself, once connected;
* *whole process*, measured here around the worker: its wall time and its CPU time (``RUSAGE_CHILDREN`` before
  and after waiting for it), so interpreter start-up, imports and the connection count.

Every worker checks its data (lengths, ``sha256``, exit statuses, the negotiated cipher), so a fast wrong
answer never counts. A worker that fails or times out is reported at once (case, variant, client, error) and
marked FAILED in the table; the run goes on with the rest and exits with status 1 at the end.

Results: the table on stdout, ``<out>/<timestamp>.json`` and ``<out>/latest.json`` (every run's raw figures,
the summary, the machine and the command), and the chart ``<out>/latest.png``. The quick form writes
``<timestamp>-quick.json``, ``latest-quick.json`` and ``latest-quick.png`` instead, so it never replaces the
results of a real run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from benchmarks import (
    CASES,
    CIPHERS,
    CLIENTS,
    DEFAULT_CASES,
    ETM_MAC,
    FORWARD_CASES,
    FORWARD_CIPHERS,
    FULL,
    OPT_IN_CASES,
    QUICK,
    SFTP_CASES,
    TRANSFER_CASES,
    Sizes,
)

__all__ = ["METRICS", "Metric", "main"]

Record = dict[str, Any]

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_OUT: Final = ROOT / "benchmarks" / "results"

#: sshd settings on top of trissh.testing's defaults (which raise the limits too, but we must not rely on it).
SSHD_CONFIG: Final = (
    "MaxStartups 2000:30:4000",  # fan-out: up to 1000 connections are unauthenticated at once
    "MaxSessions 1000",  # channels: many sessions on one connection
    "Compression no",
    "LogLevel ERROR",  # a per-connection log line costs the server time the clients would be charged for
)

#: Cases a client does not run, and why (shown under the table).
NOT_RUN: Final = {
    ("fanout", "ssh"): "fan-out from one process: 1000 ssh processes would measure process start-up, not a "
    "client library",
    ("channels", "ssh"): "many sessions on one connection: an ssh process runs one session (ControlMaster "
    "multiplexing would measure something else)",
    ("streams", "ssh"): "many direct-tcpip streams on one connection: an ssh process carries one (-W), or a "
    "listener (-L: the forward case)",
    ("forward", "paramiko"): "no local port forwarding in paramiko's API (only its demos/forward.py)",
    ("command", "paramiko"): "no command-line client (paramiko is a library only)",
}

#: The Python package behind each client (None: a program).
PACKAGES: Final = {"trissh": "trissh", "asyncssh": "asyncssh", "paramiko": "paramiko", "ssh": None}

_MB: Final = 1e6
_GIB: Final = float(1 << 30)
# Under this much wall time, the progress line does not bother with seconds.
_OUTPUT_TAIL: Final = 2000


@dataclasses.dataclass(frozen=True)
class Metric:
    """One figure the table shows for a case.

    Fields: case, key (stable name in the JSON), label (for the table), unit, better ("higher" or "lower"),
    scope ("in-process" or "whole process"), extract (a successful run record -> the figure).
    """

    case: str
    key: str
    label: str
    unit: str
    better: str
    scope: str
    extract: Callable[[Record], float]


def _per_gib(cpu: float, size: int) -> float:
    return cpu / (size / _GIB)


def _process_wall(r: Record) -> float:
    # sftp: the worker's check of the copy (hashing it, removing it) is harness, not client.
    wall: float = r["wall_seconds"] - r["result"].get("check_seconds", 0.0)
    return wall


def _process_cpu(r: Record) -> float:
    # forward: without the app's CPU (a process of its own, the same for every client); sftp: without the
    # worker's check of the copy.
    result = r["result"]
    cpu: float = r["cpu_seconds"] - result.get("app_cpu_seconds", 0.0) - result.get("check_cpu_seconds", 0.0)
    return cpu


METRICS: Final = (
    *(
        metric
        for case in (*TRANSFER_CASES, "forward", *SFTP_CASES)
        for metric in (
            *(
                [Metric(case, "files_per_second", "files/s, transfer", "files/s", "higher", "in-process",
                        lambda r: r["result"]["files"] / r["result"]["seconds"])]
                if case.startswith("sftp-small-")
                else []
            ),
            Metric(case, "mbps", "MB/s, transfer", "MB/s", "higher", "in-process",
                   lambda r: r["result"]["bytes"] / _MB / r["result"]["seconds"]),
            Metric(case, "cpu_per_gib", "CPU/GiB, transfer", "s", "lower", "in-process",
                   lambda r: _per_gib(r["result"]["cpu_seconds"], r["result"]["bytes"])),
            Metric(case, "mbps_process", "MB/s, process", "MB/s", "higher", "whole process",
                   lambda r: r["result"]["bytes"] / _MB / _process_wall(r)),
            Metric(case, "cpu_per_gib_process", "CPU/GiB, process", "s", "lower", "whole process",
                   lambda r: _per_gib(_process_cpu(r), r["result"]["bytes"])),
        )
    ),
    Metric("handshake", "median", "median, warm", "ms", "lower", "in-process",
           lambda r: r["result"]["median"] * 1e3),
    Metric("handshake", "p90", "p90, warm", "ms", "lower", "in-process", lambda r: r["result"]["p90"] * 1e3),
    Metric("handshake", "cpu", "CPU/handshake", "ms", "lower", "in-process",
           lambda r: r["result"]["cpu_per_handshake"] * 1e3),
    Metric("handshake", "cold", "cold, process", "ms", "lower", "whole process",
           lambda r: r["result"]["cold"] * 1e3),
    Metric("command", "wall", "`true`, process", "ms", "lower", "whole process",
           lambda r: r["result"]["median"] * 1e3),
    Metric("command", "cpu", "CPU, process", "ms", "lower", "whole process",
           lambda r: r["result"]["cpu_median"] * 1e3),
    *(
        metric
        for case in ("fanout", "channels", "streams")
        for metric in (
            Metric(case, "wall", "wall", "s", "lower", "in-process", lambda r: r["result"]["seconds"]),
            Metric(case, "cpu", "CPU", "s", "lower", "in-process", lambda r: r["result"]["cpu_seconds"]),
            Metric(case, "rss", "peak RSS", "MiB", "lower", "in-process",
                   lambda r: r["result"]["maxrss_kib"] / 1024),
            Metric(case, "wall_process", "wall, process", "s", "lower", "whole process",
                   lambda r: r["wall_seconds"]),
        )
    ),
)  # fmt: skip


# --- the plan -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Plan:
    """What to run. Fields: sizes, cases, clients (in run order), ciphers (transfer variants), quick."""

    sizes: Sizes
    cases: tuple[str, ...]
    clients: tuple[str, ...]
    ciphers: tuple[str, ...]
    quick: bool

    def variants(self, case: str) -> tuple[str, ...]:
        """The variants of ``case``: one per cipher for transfers, else a description of its size."""
        s = self.sizes
        if case in TRANSFER_CASES:
            return self.ciphers
        if case == "handshake":
            return (f"{s.handshakes}x ed25519",)
        if case == "command":
            return (f"{s.commands}x host true",)
        if case == "fanout":
            return (f"{s.fanout_connections} conns",)
        if case == "forward":
            return ("download", "upload")
        if case == "streams":
            return (f"{s.streams}x {_size(s.stream_bytes)}",)
        if case in ("sftp-get", "sftp-put"):
            return (_size(s.transfer_bytes),)
        if case in SFTP_CASES:
            return (f"{s.sftp_files}x {_size(s.sftp_file_bytes)}",)
        return (f"{s.channels}x {_size(s.channel_bytes)}",)

    def size_and_count(self, case: str) -> tuple[int, int]:
        s = self.sizes
        return {
            "download": (s.transfer_bytes, 1),
            "upload": (s.transfer_bytes, 1),
            "handshake": (0, s.handshakes),
            "command": (0, s.commands),
            "fanout": (0, s.fanout_connections),
            "channels": (s.channel_bytes, s.channels),
            "forward": (s.forward_bytes, 1),
            "streams": (s.stream_bytes, s.streams),
            "sftp-get": (s.transfer_bytes, 1),
            "sftp-put": (s.transfer_bytes, 1),
            "sftp-small-get": (s.sftp_file_bytes, s.sftp_files),
            "sftp-small-put": (s.sftp_file_bytes, s.sftp_files),
        }[case]


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def _short(variant: str) -> str:
    """A cipher's name without the vendor suffix, and the MAC noted for CTR (for the table)."""
    name = variant.removesuffix("@openssh.com")
    return f"{name}+etm" if name.endswith("-ctr") else name


def _client_status(client: str) -> str | None:
    """None if the client can run here, else why not."""
    if client == "ssh":
        return None if shutil.which("ssh") else "not installed (OpenSSH's ssh is not on PATH)"
    package = PACKAGES[client]
    assert package is not None
    return None if importlib.util.find_spec(package) else f"not installed (pip install {package})"


# --- running workers ----------------------------------------------------------------------------------------


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclasses.dataclass(frozen=True)
class Fixtures:
    """What the orchestrator runs or prepares for the whole run, for the cases that need it.

    Fields: sink_port (the forwarding cases' sink, or None), sftp_dir (the SFTP cases' prepared tmpfs
    folder, :func:`benchmarks.sftp.prepared`, or None).
    """

    sink_port: int | None
    sftp_dir: Path | None


def _worker_command(
    server: Any, fixtures: Fixtures, plan: Plan, case: str, variant: str, client: str
) -> list[str]:
    size, count = plan.size_and_count(case)
    module = ["benchmarks.worker"]
    if case in FORWARD_CASES:
        assert fixtures.sink_port is not None
        module = ["benchmarks.forward", "--sink-port", str(fixtures.sink_port)]
    elif case in SFTP_CASES:
        assert fixtures.sftp_dir is not None
        module = ["benchmarks.sftp", "--sftp-dir", str(fixtures.sftp_dir)]
    return [
        sys.executable, "-m", *module,
        "--client", client, "--case", case, "--variant", variant,
        "--host", server.host, "--port", str(server.port), "--user", server.username,
        "--key", str(server.client_key), "--known-hosts", str(server.known_hosts),
        "--ssh-argv", json.dumps(server.ssh_command()),
        "--size", str(size), "--count", str(count), "--timeout", str(plan.sizes.timeout),
    ]  # fmt: skip


def run_worker(command: list[str], timeout: float) -> Record:
    """Run one worker; return its outcome with the whole-process wall and CPU seconds.

    The worker runs in a session of its own, so a timeout kills it and any ``ssh`` it started.
    """
    cpu_before = _children_cpu()
    spawned_at = time.time()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*command, "--spawned-at", repr(spawned_at)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    wall = time.perf_counter() - started
    record: Record = {"wall_seconds": wall, "cpu_seconds": _children_cpu() - cpu_before}
    stderr_tail = err.decode(errors="replace").strip()[-_OUTPUT_TAIL:]
    if timed_out:
        return {**record, "status": "failed", "error": f"timed out after {timeout:g} s"}
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        outcome = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        last = stderr_tail.splitlines()[-1] if stderr_tail else "(no output)"
        return {**record, "status": "failed", "error": f"worker exited with status {proc.returncode}: {last}"}
    if outcome.get("status") == "failed" and stderr_tail:
        record["stderr_tail"] = stderr_tail
    return {**record, **outcome}


def _progress(record: Record, index: int, total: int) -> str:
    where = f"[{index}/{total}] round {record['round']} {record['case']} {_short(record['variant'])} "
    where += record["client"]
    status = record["status"]
    if status == "ok":
        first = next(m for m in METRICS if m.case == record["case"])
        detail = f"{_fmt(first.extract(record))} {first.unit} ({first.label})"
    else:
        detail = record.get("error") or record.get("reason") or ""
    shown = status.upper() if status == "failed" else status
    return f"{where}: {shown} {detail} [{record['wall_seconds']:.1f} s]"


def _jobs(plan: Plan) -> Iterator[tuple[int, str, str, str]]:
    for round_number in range(1, plan.sizes.rounds + 1):
        for case in plan.cases:
            for variant in plan.variants(case):
                for client in plan.clients:
                    yield round_number, case, variant, client


def run_all(server: Any, fixtures: Fixtures, plan: Plan, missing: dict[str, str]) -> list[Record]:
    """Run every job, interleaving the clients; print progress and failures to stderr as they happen."""
    records: list[Record] = []
    unsupported: dict[tuple[str, str, str], str] = {}
    jobs = [job for job in _jobs(plan) if job[3] not in missing and (job[1], job[3]) not in NOT_RUN]
    for index, (round_number, case, variant, client) in enumerate(jobs, 1):
        key = (case, variant, client)
        if key in unsupported:  # learnt in the first round: not worth a process per round
            record: Record = {"status": "unsupported", "reason": unsupported[key], "wall_seconds": 0.0}
        else:
            command = _worker_command(server, fixtures, plan, case, variant, client)
            record = run_worker(command, plan.sizes.timeout)
        record = {"round": round_number, "case": case, "variant": variant, "client": client, **record}
        if record["status"] == "unsupported":
            unsupported[key] = record["reason"]
        records.append(record)
        print(_progress(record, index, len(jobs)), file=sys.stderr, flush=True)
        if record["status"] == "failed":
            print(
                f"FAILED: case {case}, variant {variant}, client {client}: {record['error']}",
                file=sys.stderr,
                flush=True,
            )
    return records


# --- summary ------------------------------------------------------------------------------------------------


def summarize(plan: Plan, records: list[Record], missing: dict[str, str]) -> list[Record]:
    """One entry per (case, variant, metric, client): median and min-max over rounds, or why there is none."""
    summary: list[Record] = []
    for case in plan.cases:
        for variant in plan.variants(case):
            for metric in (m for m in METRICS if m.case == case):
                for client in plan.clients:
                    key = (case, variant, client)
                    runs = [r for r in records if (r["case"], r["variant"], r["client"]) == key]
                    entry: Record = {
                        "case": case, "variant": variant, "metric": metric.key, "label": metric.label,
                        "unit": metric.unit, "better": metric.better, "scope": metric.scope, "client": client,
                    }  # fmt: skip
                    summary.append({**entry, **_aggregate(metric, runs, client, case, missing)})
    return summary


def _aggregate(metric: Metric, runs: list[Record], client: str, case: str, missing: dict[str, str]) -> Record:
    if client in missing:
        return {"status": "not installed", "note": missing[client]}
    if (case, client) in NOT_RUN:
        return {"status": "skipped", "note": NOT_RUN[case, client]}
    failed = [r for r in runs if r["status"] == "failed"]
    if failed:
        note = failed[0]["error"]
        return {"status": "failed", "note": note, "failed_rounds": len(failed), "rounds": len(runs)}
    if any(r["status"] == "unsupported" for r in runs):
        return {"status": "unsupported", "note": runs[0]["reason"]}
    values = [metric.extract(r) for r in runs]
    if not values:
        return {"status": "not run"}
    return {
        "status": "ok",
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def ratios(summary: list[Record]) -> list[Record]:
    """trissh's median over AsyncSSH's, for every figure both have."""
    by_key = {(e["case"], e["variant"], e["metric"], e["client"]): e for e in summary}
    found = []
    for entry in summary:
        if entry["client"] != "trissh" or entry["status"] != "ok":
            continue
        other = by_key.get((entry["case"], entry["variant"], entry["metric"], "asyncssh"))
        if other and other["status"] == "ok" and other["median"]:
            found.append(
                {
                    "case": entry["case"],
                    "variant": entry["variant"],
                    "metric": entry["metric"],
                    "ratio": entry["median"] / other["median"],
                    "better": entry["better"],
                }
            )
    return found


def negotiated_kex(records: list[Record]) -> dict[str, str]:
    """The key exchange each client negotiated in the handshake case."""
    kex: dict[str, str] = {}
    for record in records:
        if record["case"] == "handshake" and record["status"] == "ok":
            kex[record["client"]] = record["result"]["kex"]
    return kex


# --- the table ----------------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _cell(entry: Record) -> str:
    status: str = entry["status"]
    if status == "ok":
        if entry["n"] == 1:
            return _fmt(entry["median"])
        return f"{_fmt(entry['median'])} [{_fmt(entry['min'])}-{_fmt(entry['max'])}]"
    if status == "failed":
        return f"FAILED {entry['failed_rounds']}/{entry['rounds']}"
    return status


def table(plan: Plan, summary: list[Record]) -> str:
    """The results as a text table: one row per (case, variant, figure), one column per client."""
    ratio_of = {(r["case"], r["variant"], r["metric"]): r["ratio"] for r in ratios(summary)}
    header = ["case", "variant", "figure", "unit", *plan.clients, "trissh/asyncssh", "better"]
    rows: list[list[str]] = []
    for case in plan.cases:
        for variant in plan.variants(case):
            for metric in (m for m in METRICS if m.case == case):
                where = (case, variant, metric.key)
                cells = {
                    e["client"]: _cell(e) for e in summary if (e["case"], e["variant"], e["metric"]) == where
                }
                ratio = ratio_of.get(where)
                rows.append(
                    [
                        case,
                        _short(variant),
                        metric.label,
                        metric.unit,
                        *(cells[c] for c in plan.clients),
                        f"{ratio:.2f}x" if ratio is not None else "-",
                        metric.better,
                    ]
                )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    for previous, row in zip([None, *rows], rows, strict=False):
        if previous is not None and row[0] != previous[0]:
            out.append("")
        out.append(line(row))
    return "\n".join(out)


_LEGEND: Final = """\
Cells: median [min-max] over the rounds; MB = 10^6 bytes; "better": which way is better, for the ratio too.
"transfer", "warm" and the rest: measured inside the client's process, once connected. "process": the whole
worker process, from outside (interpreter start-up, imports and connect included); "cold": from process
start to the end of the first handshake. For ssh, "transfer" is the ssh process alone (its connect
included) and "process" adds the Python harness that feeds or reads its pipe. fanout: every connection
stays open until all have run `echo`; at most 100 are connecting at once (sshd's listen backlog is 128).
forward: app -> the client's local forward listener -> SSH -> sshd -> a sink on 127.0.0.1; the app and the
sink are processes of their own, and "process" leaves the app's CPU out. streams: direct-tcpip streams
opened at once on one connection, each sending its data to the sink. sftp-*: files on tmpfs at both ends
(sshd's internal-sftp runs as this user), copied to a new destination, checked afterwards (size and sha256;
for the trees, the file count and a combined sha256); "transfer" starts once the SFTP session is open
(for ssh: the sftp process and its ssh, connect included), "process" leaves the check out.
sftp-small-*: the whole tree, recursively (trissh: get/put with recursive=True, AsyncSSH: recurse=True,
ssh: sftp -b with get -R / put -R); Paramiko has no recursive get or put, so a loop over listdir does one
file at a time, as a user writes it. forward, streams and sftp-* force {cipher}. command (by name only):
the client's command line runs `true` on the server, a fresh process each time, timed from outside (wall
and user+sys CPU, median over the worker's processes): `trissh -p PORT -i KEY --known-hosts FILE --batch
-n user@host true`, a minimal AsyncSSH script (connect, run, exit), `ssh ... user@host true`. Every
client's Python bytecode is compiled beforehand, as an installed package's is."""


def notes(summary: list[Record], kex: dict[str, str]) -> str:
    """The legend, the negotiated kex, and every failed, unsupported or skipped entry with its reason."""
    lines = [_LEGEND.format(cipher=FORWARD_CIPHERS["forward"])]
    if kex:
        lines.append("Key exchange negotiated: " + ", ".join(f"{c} {k}" for c, k in kex.items()) + ".")
    places: dict[tuple[str, str, str], list[str]] = {}
    for entry in summary:
        if entry["status"] not in ("ok", "not run"):
            place = (
                entry["case"]
                if entry["status"] == "skipped"
                else f"{entry['case']} {_short(entry['variant'])}"
            )
            where = places.setdefault((entry["status"], entry["client"], entry["note"]), [])
            if place not in where:
                where.append(place)
    for (status, client, note), where in places.items():
        shown = status.upper() if status == "failed" else status
        lines.append(f"{shown}: {client} ({', '.join(where)}): {note}")
    return "\n".join(lines)


# --- machine and run information ----------------------------------------------------------------------------


@contextlib.contextmanager
def _sink(plan: Plan) -> Iterator[int | None]:
    """The forwarding cases' sink (:mod:`benchmarks.endpoints`), for the whole run; its port, or None.

    It runs here, not in the workers, so that its CPU is no worker's (and its start-up no worker's time).
    """
    if not set(plan.cases) & set(FORWARD_CASES):
        yield None
        return
    argv = [sys.executable, "-m", "benchmarks.endpoints", "sink"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"the forwarding sink did not start: {line!r}, status {proc.poll()}")
        yield int(line)
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def _sftp_files(plan: Plan) -> Iterator[Path | None]:
    """The SFTP cases' sources, prepared once on tmpfs for the whole run (:mod:`benchmarks.sftp`), or None."""
    if not set(plan.cases) & set(SFTP_CASES):
        yield None
        return
    from benchmarks.sftp import prepared

    s = plan.sizes
    with prepared(s.transfer_bytes, s.sftp_files, s.sftp_file_bytes) as folder:
        yield folder


def _command_output(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"({exc})"
    return (proc.stdout + proc.stderr).strip()


def machine_info() -> Record:
    """The machine, the software versions and the code the run measured."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    memory = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
    versions: dict[str, str | None] = {}
    for name in ("trissh", "trio", "cryptography", "asyncssh", "paramiko", "matplotlib"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    from trissh.testing import sshd_path

    dirty = _command_output(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "cpu_model": model[1].strip() if model else platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory[1]) / (1 << 20), 1) if memory else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "packages": versions,
        "openssh_client": _command_output(["ssh", "-V"]) if shutil.which("ssh") else None,
        "openssh_server": _first_line(_command_output([sshd_path(), "-V"])),
        "git_commit": _command_output(["git", "rev-parse", "HEAD"]),
        "git_dirty": bool(dirty and not dirty.startswith("(")),
    }


def _first_line(text: str) -> str:
    match = re.search(r"OpenSSH_\S+", text)
    return match[0].rstrip(",") if match else text.splitlines()[0] if text else ""


def _command_line(argv: Sequence[str]) -> str:
    # scripts/bench says how it was called; otherwise this module's own command line.
    return os.environ.get("TRISSH_BENCH_COMMAND") or shlex.join(["python", "-m", "benchmarks.run", *argv])


# --- main ---------------------------------------------------------------------------------------------------


def _parse(argv: Sequence[str]) -> tuple[Plan, Path, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="Benchmark trissh, AsyncSSH, Paramiko and OpenSSH's ssh against a throwaway local sshd.",
        epilog="Exit status 1 if any case failed for any client.",
    )
    parser.add_argument("--quick", action="store_true", help="every case at a tiny size, one round (< 1 min)")
    parser.add_argument("--rounds", type=int, help=f"rounds (default {FULL.rounds}, quick {QUICK.rounds})")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(DEFAULT_CASES), metavar="CASE",
                        help=f"cases to run (default: all of {', '.join(DEFAULT_CASES)}; "
                        f"by name only: {', '.join(OPT_IN_CASES)})")  # fmt: skip
    parser.add_argument("--clients", nargs="+", choices=CLIENTS, default=list(CLIENTS), metavar="CLIENT",
                        help=f"clients to compare (default: all of {', '.join(CLIENTS)})")  # fmt: skip
    parser.add_argument("--ciphers", nargs="+", choices=CIPHERS, default=list(CIPHERS), metavar="CIPHER",
                        help="ciphers for the transfer cases (default: all four)")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})"
    )
    parser.add_argument("--timeout", type=float, help="seconds per worker (default 600, quick 60)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.rounds is not None:
        if args.rounds < 1:
            parser.error("--rounds must be at least 1")
        sizes = dataclasses.replace(sizes, rounds=args.rounds)
    if args.timeout is not None:
        sizes = dataclasses.replace(sizes, timeout=args.timeout)
    plan = Plan(
        sizes=sizes,
        cases=_ordered(args.cases, CASES),
        clients=_ordered(args.clients, CLIENTS),
        ciphers=_ordered(args.ciphers, CIPHERS),
        quick=args.quick,
    )
    return plan, args.out, args


def _ordered(chosen: Sequence[str], order: Sequence[str]) -> tuple[str, ...]:
    """The chosen names, once each, in the canonical order (the order they run in)."""
    return tuple(name for name in order if name in chosen)


def write_results(out: Path, data: Record, quick: bool) -> tuple[Path, Path]:
    """Write ``<stamp>.json`` and ``latest.json`` (``-quick`` variants for the quick form); return both."""
    out.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if quick else ""
    stamp = datetime.datetime.fromisoformat(data["started"]).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(data, indent=1) + "\n"
    dated, latest = out / f"{stamp}{suffix}.json", out / f"latest{suffix}.json"
    dated.write_text(text)
    latest.write_text(text)
    return dated, latest


def compile_bytecode() -> list[str]:
    """Write the bytecode of trissh and of this harness, as an installed package has it; return the folders.

    pip compiles a package's modules when it installs it (AsyncSSH's and Paramiko's ``.pyc`` files are in
    site-packages), but trissh is usually installed editable from this checkout, whose bytecode only exists
    once some interpreter has written it, and under ``PYTHONDONTWRITEBYTECODE`` (set in many containers and
    CI images) none ever does. Every worker would then compile every trissh module afresh, some 100 ms on
    a slow core, and the start-up figures ("cold", "command") would measure the compiler, not the client.
    So the run compiles both packages first, once (``compileall`` writes even when that variable is set; an
    up-to-date ``.pyc`` is left alone). The harness is the same for every client; compiling it too only
    takes noise out of the figures.
    """
    import compileall

    folders: list[str] = []
    for package in ("trissh", "benchmarks"):
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(folder, quiet=1)
            folders.append(folder)
    return folders


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; return 0, or 1 if anything failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    plan, out, _ = _parse(argv)
    from trissh.testing import start_sshd

    compiled = compile_bytecode()

    missing = {c: why for c in plan.clients if (why := _client_status(c))}
    for client, why in missing.items():
        print(f"warning: client {client} is {why}; it is left out", file=sys.stderr)
    started = datetime.datetime.now(datetime.UTC)
    machine = machine_info()
    print(
        f"benchmarks: {machine['cpu_model']}, {machine['cores']} cores, Python {machine['python']}, "
        f"{machine['openssh_server']}; {plan.sizes.rounds} round(s), clients {', '.join(plan.clients)}",
        file=sys.stderr,
    )
    try:
        with (
            start_sshd(extra_config=SSHD_CONFIG) as server,
            _sink(plan) as sink_port,
            _sftp_files(plan) as sftp_dir,
        ):
            records = run_all(server, Fixtures(sink_port, sftp_dir), plan, missing)
    except RuntimeError as exc:  # sshd could not start: nothing can run
        print(f"benchmarks: the server failed: {exc}", file=sys.stderr)
        return 1
    finished = datetime.datetime.now(datetime.UTC)
    summary = summarize(plan, records, missing)
    kex = negotiated_kex(records)
    data: Record = {
        "schema": 1,
        "command": _command_line(argv),
        "argv": [sys.executable, "-m", "benchmarks.run", *argv],
        "started": started.isoformat(),
        "finished": finished.isoformat(),
        "duration_seconds": (finished - started).total_seconds(),
        "quick": plan.quick,
        "sizes": dataclasses.asdict(plan.sizes),
        "cases": list(plan.cases),
        "clients": list(plan.clients),
        "ciphers": list(plan.ciphers),
        "mac_for_ctr": ETM_MAC,
        "forward_ciphers": FORWARD_CIPHERS,
        "sshd_config": list(SSHD_CONFIG),
        "machine": machine,
        "bytecode_compiled": compiled,
        "missing_clients": missing,
        "not_run": {f"{case}/{client}": why for (case, client), why in NOT_RUN.items()},
        "kex": kex,
        "summary": summary,
        "ratios": ratios(summary),
        "runs": records,
    }
    print(table(plan, summary))
    print()
    print(notes(summary, kex))
    dated, latest = write_results(out, data, plan.quick)
    print(f"\nresults: {dated.relative_to(ROOT) if dated.is_relative_to(ROOT) else dated}", end="")
    print(f", {latest.name}", end="")
    try:
        from benchmarks.chart import render
    except ImportError as exc:
        print(f"\nno chart: {exc} (pip install matplotlib)")
    else:
        chart = latest.with_suffix(".png")
        render(data, chart)
        print(f", {chart.name}")
    failed = [r for r in records if r["status"] == "failed"]
    if failed:
        print(f"{len(failed)} run(s) FAILED (see above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
