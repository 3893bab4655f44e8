"""The benchmark suite's quick form: every case completes for every client, with its data checked.

Issue #4: the test suite runs ``python -m benchmarks.run --quick`` once, so the benchmarks never rot. These
tests check that each case ran and that its data arrived intact; they never assert a timing. The whole module
takes about 20 s on 2 cores (the time limits below only stop a hang). A client whose package is not installed
(scripts/test installs trissh[dev,bench], so normally all are there) is left out.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from servers import requires_sshd

ROOT = Path(__file__).resolve().parent.parent
# A hang guard, not a timing: the quick form's workers have a 60 s timeout each.
RUN_TIMEOUT = 300

# What the quick form left: its process (exit status, table), its results JSON, and its results folder.
Quick = tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]


pytestmark = requires_sshd


def available_clients() -> list[str]:
    """The clients this machine can run: trissh always, the others if installed."""
    clients = ["trissh"]
    clients += [name for name in ("asyncssh", "paramiko") if importlib.util.find_spec(name)]
    if shutil.which("ssh"):
        clients.append("ssh")
    return clients


def run_suite(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Quick:
    out = tmp_path_factory.mktemp("bench")
    proc = run_suite(out, "--clients", *available_clients())
    results = out / "latest-quick.json"
    assert results.exists(), f"no results; stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-5000:]}"
    return proc, json.loads(results.read_text()), out


def test_quick_form_passes(quick: Quick) -> None:
    """Every case ran for every client without a failure, so the quick form exits 0 and prints its table."""
    proc, data, _ = quick
    failures = [
        f"{r['case']} {r['variant']} {r['client']}: {r['error']}"
        for r in data["runs"]
        if r["status"] == "failed"
    ]
    assert not failures, "\n".join(failures)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-5000:]}"
    header = proc.stdout.splitlines()[0].split()
    assert header[:4] == ["case", "variant", "figure", "unit"]
    assert header[4:-2] == available_clients()


def test_every_case_and_client_has_figures(
    quick: Quick,
) -> None:
    """Each (case, variant, figure, client) has a median, or a stated reason: a cipher paramiko lacks, or a
    case the ssh client does not run."""
    _, data, _ = quick
    assert data["cases"] == [
        "download",
        "upload",
        "handshake",
        "fanout",
        "channels",
        "forward",
        "streams",
        "sftp-get",
        "sftp-put",
        "sftp-small-get",
        "sftp-small-put",
    ]
    assert len(data["ciphers"]) == 4
    seen = {(e["case"], e["client"]) for e in data["summary"]}
    assert seen == {(case, client) for case in data["cases"] for client in available_clients()}
    for entry in data["summary"]:
        where = f"{entry['case']} {entry['variant']} {entry['metric']} {entry['client']}"
        if entry["status"] == "ok":
            assert entry["n"] == 1 and entry["median"] > 0, where
        elif entry["status"] == "unsupported":
            assert entry["client"] == "paramiko" and entry["case"] in ("download", "upload"), where
            assert entry["variant"] in entry["note"], where
        else:
            assert entry["status"] == "skipped", where
            assert (entry["client"], entry["case"]) in {
                ("ssh", "fanout"),
                ("ssh", "channels"),
                ("ssh", "streams"),
                ("paramiko", "forward"),
            }, where
    ratios = {(r["case"], r["metric"]) for r in data["ratios"]}
    if "asyncssh" in available_clients():
        assert ("download", "mbps") in ratios and ("handshake", "median") in ratios
        assert ("forward", "mbps") in ratios and ("streams", "wall") in ratios


def test_data_was_checked(quick: Quick) -> None:
    """The workers report what they moved and checked: the sizes asked for, never a partial answer."""
    _, data, _ = quick
    sizes = data["sizes"]
    ran = [r for r in data["runs"] if r["status"] == "ok"]
    assert ran
    for run in ran:
        result = run["result"]
        where = f"{run['case']} {run['variant']} {run['client']}"
        if run["case"] in ("download", "upload"):
            assert result["bytes"] == sizes["transfer_bytes"], where
        elif run["case"] == "forward":
            assert result["bytes"] == sizes["forward_bytes"], where
        elif run["case"] == "streams":
            assert result["count"] == sizes["streams"], where
        elif run["case"] == "handshake":
            assert len(result["times"]) == sizes["handshakes"], where
            assert result["kex"] and result["kex"] != "?", where
        elif run["case"] == "fanout":
            assert result["count"] == sizes["fanout_connections"], where
        elif run["case"] in ("sftp-get", "sftp-put"):
            assert (result["files"], result["bytes"]) == (1, sizes["transfer_bytes"]), where
        elif run["case"] in ("sftp-small-get", "sftp-small-put"):
            expected = (sizes["sftp_files"], sizes["sftp_files"] * sizes["sftp_file_bytes"])
            assert (result["files"], result["bytes"]) == expected, where
        else:
            assert result["count"] == sizes["channels"], where


def test_results_record_machine_and_chart(
    quick: Quick,
) -> None:
    """The JSON names the machine and the command; the chart is drawn when matplotlib is installed."""
    _, data, out = quick
    machine = data["machine"]
    assert machine["cores"] and machine["cpu_model"] and machine["python"] and machine["openssh_server"]
    assert "--quick" in data["command"]
    assert len(list(out.glob("*-quick.json"))) == 2  # the dated file and latest-quick.json
    if importlib.util.find_spec("matplotlib"):
        assert (out / "latest-quick.png").read_bytes().startswith(b"\x89PNG")


def test_worker_failure_is_reported_and_fails_the_quick_form(tmp_path: Path) -> None:
    """Bad input: a worker that cannot finish (here: killed by a tiny timeout) is reported with its case,
    client and error, marked FAILED in the table, and the quick form exits non-zero."""
    proc = run_suite(tmp_path, "--cases", "handshake", "--clients", "trissh", "--timeout", "0.001")
    assert proc.returncode == 1
    assert "FAILED: case handshake" in proc.stderr and "client trissh" in proc.stderr
    assert "timed out" in proc.stderr
    assert "FAILED 1/1" in proc.stdout
    data = json.loads((tmp_path / "latest-quick.json").read_text())
    assert [r["status"] for r in data["runs"]] == ["failed"]
