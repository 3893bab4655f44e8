"""What each data-path change gained: trissh at several commits, measured side by side.

    python -m benchmarks.history [--rounds N] [--size BYTES] [--ciphers ...] COMMIT [COMMIT ...]

Each commit is checked out into a temporary git worktree, and the benchmark
worker (this checkout's, with only ``trissh`` imported from the worktree) runs
the download and upload cases for each commit in turn, interleaved over the
rounds, against one throwaway sshd. The table gives medians and the ratio of
each commit to the first one named, so the gains are measured in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from trissh.testing import start_sshd

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CIPHERS = ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"]


def _worker(
    tree: Path, case: str, cipher: str, size: int, server_args: list[str], timeout: float
) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{ROOT}")
    argv = [sys.executable, "-m", "benchmarks.worker", "--client", "trissh", "--case", case]
    argv += ["--variant", cipher, "--size", str(size), *server_args]
    # cwd outside both trees, so that "trissh" resolves through PYTHONPATH to the worktree.
    out = subprocess.run(
        argv, env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=timeout
    )
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    outcome = json.loads(line) if line.startswith("{") else {}
    if out.returncode or outcome.get("status") != "ok":
        raise RuntimeError(f"{tree.name} {case} {cipher}: {outcome.get('error') or out.stderr[-500:]}")
    result = outcome["result"]
    return {
        "mbps": result["bytes"] / result["seconds"] / 1e6,
        "cpu_per_gib": result["cpu_seconds"] / (result["bytes"] / 2**30),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("commits", nargs="+")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=256 * 1024 * 1024)
    parser.add_argument("--ciphers", nargs="+", default=DEFAULT_CIPHERS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="trissh-history-") as tmp, start_sshd() as server:
        trees: dict[str, Path] = {}
        for commit in args.commits:
            tree = Path(tmp) / commit
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit],
                check=True,
                capture_output=True,
            )
            trees[commit] = tree
        server_args = ["--host", server.host, "--port", str(server.port), "--user", server.username,
                       "--key", str(server.client_key), "--known-hosts", str(server.known_hosts),
                       "--ssh-argv", json.dumps(server.ssh_command())]  # fmt: skip
        samples: dict[tuple[str, str, str, str], list[float]] = {}
        try:
            for round_no in range(args.rounds):
                for case in ("download", "upload"):
                    for cipher in args.ciphers:
                        for commit, tree in trees.items():
                            metrics = _worker(tree, case, cipher, args.size, server_args, 600)
                            for metric in ("mbps", "cpu_per_gib"):
                                samples.setdefault((case, cipher, commit, metric), []).append(metrics[metric])
                print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            for tree in trees.values():
                subprocess.run(
                    ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
                )

    first = args.commits[0]
    print(f"{'case':9} {'cipher':30} {'commit':10} {'MB/s':>8} {'ratio':>6} {'CPU s/GiB':>10} {'ratio':>6}")
    for case in ("download", "upload"):
        for cipher in args.ciphers:
            base = {m: statistics.median(samples[(case, cipher, first, m)]) for m in ("mbps", "cpu_per_gib")}
            for commit in args.commits:
                mbps = statistics.median(samples[(case, cipher, commit, "mbps")])
                cpu = statistics.median(samples[(case, cipher, commit, "cpu_per_gib")])
                print(f"{case:9} {cipher:30} {commit[:10]:10} {mbps:8.0f} {mbps / base['mbps']:5.2f}x "
                      f"{cpu:10.2f} {cpu / base['cpu_per_gib']:5.2f}x")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
