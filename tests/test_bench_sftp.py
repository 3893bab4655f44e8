"""The SFTP benchmark cases (benchmarks/sftp.py) in their quick form, and the check they rely on.

As tests/test_bench.py does for the other cases: every SFTP case completes for every client with its data
checked, and never a timing asserted. The quick form of these four cases takes about 10 s on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from servers import requires_sshd
from test_bench import RUN_TIMEOUT, available_clients

from benchmarks import SFTP_CASES
from benchmarks.sftp import MANIFEST, prepare, tree_digest

ROOT = Path(__file__).resolve().parent.parent


def test_tree_digest_changes_with_any_file(tmp_path: Path) -> None:
    """The combined sha256 covers every file's relative path and content: a changed byte, a renamed file
    or an extra file each give another digest, and the count and bytes are those of the tree."""
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b").write_bytes(b"y" * 5)
    count, total, digest = tree_digest(tmp_path)
    assert (count, total) == (2, 15)
    (tmp_path / "a").write_bytes(b"x" * 9 + b"z")
    changed = tree_digest(tmp_path)[2]
    (tmp_path / "a").rename(tmp_path / "c")
    renamed = tree_digest(tmp_path)[2]
    (tmp_path / "e").write_bytes(b"")
    assert len({digest, changed, renamed, tree_digest(tmp_path)[2]}) == 4


def test_prepare_writes_the_manifest(tmp_path: Path) -> None:
    """prepare() writes the big file, the tree, and a manifest that tree_digest() agrees with."""
    prepare(tmp_path, 3 << 20, 7, 4096)
    manifest: dict[str, Any] = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["big"]["bytes"] == 3 << 20 == (tmp_path / "src" / "big").stat().st_size
    count, total, digest = tree_digest(tmp_path / "src" / "small")
    assert manifest["small"] == {"files": 7, "bytes": 7 * 4096, "sha256": digest}
    assert (count, total) == (7, 7 * 4096)


@requires_sshd
def test_quick_sftp_cases_pass(tmp_path: Path) -> None:
    """Each SFTP case ran for each client, moved what the quick sizes say, and has its figures and ratio."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path), "--cases", *SFTP_CASES,
         "--clients", *available_clients()],
        cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
    )  # fmt: skip
    results = tmp_path / "latest-quick.json"
    assert results.exists(), f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-5000:]}"
    data = json.loads(results.read_text())
    failures = [f"{r['case']} {r['client']}: {r['error']}" for r in data["runs"] if r["status"] == "failed"]
    assert not failures, "\n".join(failures)
    assert proc.returncode == 0, proc.stderr[-5000:]
    sizes = data["sizes"]
    assert {(r["case"], r["client"]) for r in data["runs"]} == {
        (case, client) for case in SFTP_CASES for client in available_clients()
    }
    for run in data["runs"]:
        result, where = run["result"], f"{run['case']} {run['client']}"
        if run["case"].startswith("sftp-small-"):
            assert result["files"] == sizes["sftp_files"], where
            assert result["bytes"] == sizes["sftp_files"] * sizes["sftp_file_bytes"], where
        else:
            assert (result["files"], result["bytes"]) == (1, sizes["transfer_bytes"]), where
        assert len(result["sha256"]) == 64 and result["seconds"] > 0, where
    assert all(e["status"] == "ok" and e["median"] > 0 for e in data["summary"])
    if "asyncssh" in available_clients():
        assert {r["case"] for r in data["ratios"]} == set(SFTP_CASES)
    assert "Paramiko has no recursive get" in proc.stdout


@pytest.mark.parametrize("case", ["sftp-get", "sftp-small-put"])
def test_a_wrong_copy_is_caught(tmp_path: Path, case: str) -> None:
    """Bad data: a destination that differs from the source by one byte fails the job's check."""
    from benchmarks.sftp import _Paths
    from benchmarks.worker import DataError, Job

    prepare(tmp_path, 1 << 20, 3, 4096)
    small = case.startswith("sftp-small-")
    job = Job(
        client="trissh", case=case, variant="", host="", port=0, user="", key=tmp_path, known_hosts=tmp_path,
        ssh_argv=[], size=4096 if small else 1 << 20, count=3 if small else 1, timeout=1.0, spawned_at=0.0,
    )  # fmt: skip
    paths = _Paths(job, tmp_path)
    paths.work.mkdir()
    if small:
        subprocess.run(["cp", "-r", str(paths.source), str(paths.destination)], check=True)
        target = next(paths.destination.iterdir())
    else:
        subprocess.run(["cp", str(paths.source), str(paths.destination)], check=True)
        target = paths.destination
    paths.check()  # a faithful copy passes
    data = bytearray(target.read_bytes())
    data[-1] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(DataError, match="the copy holds"):
        paths.check()
