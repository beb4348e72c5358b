"""The PNG of a peers report; run in the tools venv (matplotlib): python -m bench.peers.chart JSON PNG."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, NullFormatter

COLOURS = {"jobwarden": "#c0392b", "peer": "#2c7fb8", "floor": "#7f7f7f"}
PARTS = (("server", "#c0392b"), ("workers", "#2c7fb8"), ("database", "#f0a030"))


def draw(report: dict, png: Path) -> None:
    """Drain and enqueue rates (log scale) and CPU per job by component, one bar per system."""
    per = report["systems"]
    names = list(per)[::-1]  # first system on top
    fig, (drain, enqueue, cpu) = plt.subplots(1, 3, figsize=(13, 0.38 * len(names) + 1.6), sharey=True)
    colours = [COLOURS[per[n]["kind"]] for n in names]
    for ax, key, title in (
        (drain, "drain_jobs_per_s", "drain, jobs/s"),
        (enqueue, "enqueue_jobs_per_s", "enqueue, jobs/s"),
    ):
        values = [per[n][key] for n in names]
        ax.barh(names, values, color=colours)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(title, fontsize=10)
        for y, (n, v) in enumerate(zip(names, values, strict=True)):
            batch = key == "enqueue_jobs_per_s" and per[n]["enqueue_mode"].startswith("batch")
            ax.text(v, y, f" {v:,.0f}" + (" (batch)" if batch else ""), va="center", fontsize=7)
    left = [0.0] * len(names)
    for part, colour in PARTS:
        values = [per[n]["cpu_ms_per_job"][part] or 0.0 for n in names]
        cpu.barh(names, values, left=left, color=colour, label=part)
        left = [a + b for a, b in zip(left, values, strict=True)]
    cpu.set_title("CPU ms per job (drain)", fontsize=10)
    cpu.legend(fontsize=7, loc="lower right")
    for ax in (drain, enqueue, cpu):
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    st = report["settings"]
    fig.suptitle(
        f"{st['jobs']} no-op jobs, {st['workers']} worker processes x {st['concurrency']}, "
        f"median of {st['repetitions']}; {report['environment']['cpus']} cores ({report['environment']['git']})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(png, dpi=80)


if __name__ == "__main__":
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
