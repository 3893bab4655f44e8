"""Draw the benchmark chart (PNG) from a results JSON file written by :mod:`benchmarks.run`.

Panels for the cases the run has: download and upload throughput per cipher and client, and the client's CPU
seconds per GiB for each; then SFTP: the one big file's throughput and CPU seconds per GiB (get and put),
and the small-file trees' files per second and throughput. Bars are medians over the rounds, whiskers
min-max, all measured inside the client's process once connected ("transfer only"). A client that does not
support a cipher, or failed, gets a note instead of a bar.

Usage::

    python -m benchmarks.chart [results.json] [chart.png]   # default: benchmarks/results/latest.json/.png
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.patches import Patch

__all__ = ["render"]

_COLORS: Final = {"trissh": "#1b9e77", "asyncssh": "#7570b3", "paramiko": "#d95f02", "ssh": "#666666"}
_NAMES: Final = {"trissh": "trissh", "asyncssh": "AsyncSSH", "paramiko": "Paramiko", "ssh": "OpenSSH ssh"}
#: One group of bars in a panel: (case, variant, label).
Group = tuple[str, str, str]

#: (cases, metric, title): the cipher panels have one case and a group of bars per cipher; the SFTP panels a
#: group per case ({variant}: the case's variant, its size).
_PANELS: Final = (
    (("download",), "mbps", "Download throughput (MB/s, higher is better)"),
    (("upload",), "mbps", "Upload throughput (MB/s, higher is better)"),
    (("download",), "cpu_per_gib", "Download: client CPU seconds per GiB (lower is better)"),
    (("upload",), "cpu_per_gib", "Upload: client CPU seconds per GiB (lower is better)"),
    (("sftp-get", "sftp-put"), "mbps", "SFTP, one {variant} file: MB/s (higher is better)"),
    (("sftp-get", "sftp-put"), "cpu_per_gib",
     "SFTP, one {variant} file: client CPU seconds per GiB (lower is better)"),
    (("sftp-small-get", "sftp-small-put"), "files_per_second",
     "SFTP, a tree of {variant} files: files/s (higher is better)"),
    (("sftp-small-get", "sftp-small-put"), "mbps",
     "SFTP, a tree of {variant} files: MB/s (higher is better)"),
)  # fmt: skip


def _short(cipher: str) -> str:
    name = cipher.removesuffix("@openssh.com")
    return f"{name}\n+hmac-sha2-256-etm" if name.endswith("-ctr") else name


def _size(n: int) -> str:
    return f"{n >> 20} MiB" if n >= 1 << 20 else f"{n >> 10} KiB"


def _groups(data: dict[str, Any], cases: Sequence[str]) -> list[Group]:
    """The (case, variant, label) of each group of bars: one per cipher, or one per SFTP case."""
    if len(cases) == 1:
        return [(cases[0], cipher, _short(cipher)) for cipher in data["ciphers"]]
    variants = {e["case"]: e["variant"] for e in data["summary"]}
    return [(case, variants[case], case.rsplit("-", 1)[1]) for case in cases]


def _panel(ax: Axes, data: dict[str, Any], groups: list[Group], metric: str, title: str) -> None:
    clients: list[str] = data["clients"]
    shown = {(case, variant) for case, variant, _ in groups}
    entries = {
        (e["case"], e["variant"], e["client"]): e
        for e in data["summary"]
        if e["metric"] == metric and (e["case"], e["variant"]) in shown
    }
    width = 0.8 / max(len(clients), 1)
    tallest = max((e["max"] for e in entries.values() if e["status"] == "ok"), default=1.0)
    for i, client in enumerate(clients):
        for j, (case, variant, _) in enumerate(groups):
            x = j - 0.4 + width * (i + 0.5)
            entry = entries.get((case, variant, client))
            if entry is None or entry["status"] != "ok":
                note = "n/a" if entry is None or entry["status"] != "failed" else "FAILED"
                color = "#c00000" if note == "FAILED" else "#888888"
                ax.text(x, tallest * 0.02, note, ha="center", va="bottom", rotation=90, size=8, color=color)
                continue
            median = entry["median"]
            ax.bar(x, median, width * 0.92, color=_COLORS.get(client, "#999999"))
            if entry["n"] > 1:
                ax.errorbar(x, median, yerr=[[median - entry["min"]], [entry["max"] - median]],
                            color="black", capsize=2, linewidth=0.8)  # fmt: skip
            text = f"{median:.0f}" if median >= 10 else f"{median:.2f}"
            ax.text(x, entry["max"] + tallest * 0.01, text, ha="center", va="bottom", fontsize=7)
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(len(groups)), [label for _, _, label in groups], fontsize=8)
    ax.set_ylim(0, tallest * 1.12)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def render(data: dict[str, Any], path: Path) -> None:
    """Draw the chart for the results ``data`` (as written by :mod:`benchmarks.run`) to the PNG ``path``."""
    ran = set(data["cases"])
    panels = [panel for panel in _PANELS if set(panel[0]) <= ran] or list(_PANELS[:4])
    rows = (len(panels) + 1) // 2
    fig, axes = plt.subplots(rows, 2, figsize=(14, 4.5 * rows), dpi=110, squeeze=False)
    for ax, (cases, metric, title) in zip(axes.flat, panels, strict=False):
        groups = _groups(data, cases)
        _panel(ax, data, groups, metric, title.format(variant=groups[0][1].split("x ")[-1]))
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    # One legend for all panels, from the clients of the run (a panel may lack a client's bars).
    handles = [Patch(color=_COLORS.get(c, "#999999"), label=_NAMES.get(c, c)) for c in data["clients"]]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.965), ncol=len(handles),
               fontsize=9, frameon=False)  # fmt: skip
    machine = data["machine"]
    sizes = data["sizes"]
    fig.suptitle(
        f"trissh vs AsyncSSH vs Paramiko vs OpenSSH ssh: {_size(sizes['transfer_bytes'])} over a local sshd, "
        f"transfer only (once connected); median and min-max of {sizes['rounds']} round(s)",
        x=0.01, y=0.995, ha="left", fontsize=11,
    )  # fmt: skip
    packages = machine["packages"]
    footer = (
        f"{machine['cpu_model']}, {machine['cores']} cores; Python {machine['python']}; "
        + ", ".join(f"{name} {version}" for name, version in packages.items() if version)
        + f"; server {machine['openssh_server']}; {data['started'][:16].replace('T', ' ')} UTC; "
        + f"command: {data['command']}"
    )
    fig.text(0.01, 0.005, footer, fontsize=7, color="#444444", wrap=True)
    fig.tight_layout(rect=(0, 0.03, 1, 0.945))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    """Draw a chart from a results file: ``python -m benchmarks.chart [results.json] [chart.png]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    source = Path(args[0]) if args else Path(__file__).parent / "results" / "latest.json"
    target = Path(args[1]) if len(args) > 1 else source.with_suffix(".png")
    render(json.loads(source.read_text()), target)
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
