"""The fuzz runner: ``python -m fuzz <target>|all [--runs N] [--seconds S]``.

Each target runs under atheris (libFuzzer, coverage-guided: trissh's bytecode is instrumented) in
a child process, so that ``all`` can run them one after another and so that the parent can read
libFuzzer's report and print a summary: inputs run, inputs per second, coverage (``cov:`` edges and
``ft:`` features) and peak RSS. New interesting inputs go to ``fuzz/work/<target>/`` (not the seed
corpus, which stays as built); a crash or hang is written to ``fuzz/findings/`` and ends the run
with a non-zero status.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
WORK = HERE / "work"
FINDINGS = HERE / "findings"

# libFuzzer's own hang detector, behind the 1 s check of run_one (which names the target).
LIBFUZZER_TIMEOUT_S = 5
MAX_LEN = 4096


@dataclass
class Summary:
    target: str
    runs: int = 0
    rate: int = 0
    cov: int = 0
    ft: int = 0
    peak_rss_mb: int = 0
    status: int = 0
    findings: list[str] = field(default_factory=list)

    def line(self) -> str:
        verdict = "ok" if self.status == 0 and not self.findings else f"FINDINGS (see {FINDINGS})"
        if self.status != 0:
            verdict += f", exit {self.status}"
        for finding in self.findings:
            verdict += "\n      " + finding
        return (
            f"{self.target:20} {self.runs:>10} inputs {self.rate:>7} inputs/s "
            f"cov: {self.cov:<6} ft: {self.ft:<6} peak RSS {self.peak_rss_mb} MB  {verdict}"
        )


def _innermost_trissh_frame(exc: BaseException) -> str:
    """Where in trissh an exception was raised (its last traceback frame inside trissh/)."""
    where = "outside trissh"
    for frame in traceback.extract_tb(exc.__traceback__):
        if f"{os.sep}trissh{os.sep}" in frame.filename:
            where = f"{Path(frame.filename).name}:{frame.lineno} {frame.name}"
    return where


def _child(target_name: str, libfuzzer_args: list[str], keep_going: bool) -> None:
    """Inside the child: instrument trissh, then hand the target to libFuzzer."""
    import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

    with atheris.instrument_imports(include=["trissh", "fuzz"]):
        from fuzz.targets import TARGETS, run_one

    logging.disable(logging.CRITICAL)  # skipped known_hosts lines and the like: not findings
    target = TARGETS[target_name]
    seen: set[str] = set()

    def one_input(data: bytes) -> None:
        try:
            run_one(target, data)
        except Exception as exc:  # a finding: anything but SSHError (run_one lets only those out)
            if not keep_going:
                raise
            where = _innermost_trissh_frame(exc)
            signature = f"{type(exc).__name__} at {where}"
            if signature not in seen:
                seen.add(signature)
                name = hashlib.sha1(data).hexdigest()[:16]
                (FINDINGS / f"{target_name}-{name}").write_bytes(data)
                print(
                    f"FINDING {len(seen)}: {signature}: {exc!s:.200} (input {target_name}-{name})",
                    file=sys.stderr,
                )

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def run_target(target: str, runs: int | None, seconds: int | None, stop_on_finding: bool) -> Summary:
    """Run one target in a child process; echo libFuzzer's output; return its figures."""
    work = WORK / target
    work.mkdir(parents=True, exist_ok=True)
    FINDINGS.mkdir(exist_ok=True)
    args = [
        str(work),
        str(CORPUS / target),
        f"-max_len={MAX_LEN}",
        f"-timeout={LIBFUZZER_TIMEOUT_S}",
        "-rss_limit_mb=4096",
        f"-artifact_prefix={FINDINGS}/{target}-",
        "-print_final_stats=1",
    ]
    if runs is not None:
        args.append(f"-runs={runs}")
    if seconds is not None:
        args.append(f"-max_total_time={seconds}")
    mode = "stop" if stop_on_finding else "keep-going"
    command = [sys.executable, "-m", "fuzz", "--child", target, mode, "--", *args]
    env = dict(os.environ, PYTHONPATH=str(HERE.parent))
    summary = Summary(target)
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, errors="replace", env=env) as child:
        assert child.stderr is not None
        for line in child.stderr:
            sys.stderr.write(line)
            if match := re.match(r"#(\d+)\s.*cov: (\d+) ft: (\d+).*exec/s: (\d+)(?: rss: (\d+)Mb)?", line):
                summary.runs, summary.cov, summary.ft, summary.rate = (int(g) for g in match.groups()[:4])
            elif "FINDING " in line:  # libFuzzer's unbuffered output may share the line
                summary.findings.append(line[line.index("FINDING ") :].strip())
            elif match := re.match(r"stat::number_of_executed_units:\s+(\d+)", line):
                summary.runs = int(match.group(1))
            elif match := re.match(r"stat::average_exec_per_sec:\s+(\d+)", line):
                summary.rate = int(match.group(1))
            elif match := re.match(r"stat::peak_rss_mb:\s+(\d+)", line):
                summary.peak_rss_mb = int(match.group(1))
    summary.status = child.returncode
    return summary


def main() -> None:
    if len(sys.argv) > 3 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[5:], keep_going=sys.argv[3] == "keep-going")
        return
    from fuzz.targets import TARGETS

    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=[*TARGETS, "all"])
    parser.add_argument("--runs", type=int, help="stop after this many inputs (per target)")
    parser.add_argument("--seconds", type=int, help="stop after this many seconds (per target)")
    parser.add_argument(
        "--stop-on-finding",
        action="store_true",
        help="end at the first crash or hang (libFuzzer's artifact); by default each distinct one "
        "(exception type and trissh frame) is saved to fuzz/findings/ and the run goes on",
    )
    options = parser.parse_args()
    names = list(TARGETS) if options.target == "all" else [options.target]
    summaries = [run_target(name, options.runs, options.seconds, options.stop_on_finding) for name in names]
    print("\nfuzz summary:")
    for summary in summaries:
        print("  " + summary.line())
    failed = any(summary.status or summary.findings for summary in summaries)
    sys.exit(1 if failed else 0)


main()
