"""`scripts/bench --peers --quick` proves its harness end to end; it never judges speed.

A full quick run (every system) needs Redis besides PostgreSQL and five venvs from PyPI (40 s to about
2 minutes on a fresh clone), so CI runs the cheap slice: jobwarden on SQLite, the raw sqlite3 floor and
pgqueuer (one peer, on the PostgreSQL CI already has; its venv and the chart's are created on first use
and cached in .bench-venvs/).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support import apt

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ("jobwarden-sqlite", "floor-sqlite", "pgqueuer")


def _bench(*args: str, timeout: float = 580) -> subprocess.CompletedProcess[str]:
    """`scripts/bench` with `args`, its output captured."""
    return subprocess.run(
        [str(ROOT / "scripts" / "bench"), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_peers_quick_reports_every_figure_for_each_system(tmp_path: Path) -> None:
    out = tmp_path / "peers.json"
    result = _bench(
        "--peers",
        "--quick",
        "--systems",
        ",".join(SYSTEMS),
        "--database",
        os.environ["JOBWARDEN_TEST_DATABASE_URL"],
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "jobwarden ÷ peer/floor, drain jobs/s" in result.stdout

    report = json.loads(out.read_text())
    assert {"environment", "settings", "systems", "ratios", "runs", "failures"} <= set(report)
    assert report["failures"] == []
    assert report["settings"]["repetitions"] == 1
    assert report["settings"]["workers"] == 2 and report["settings"]["concurrency"] == 16
    assert set(report["systems"]) == set(SYSTEMS)
    assert len(report["runs"]) == len(SYSTEMS)
    for name, row in report["systems"].items():
        assert row["drain_jobs_per_s"] > 0, name
        assert row["enqueue_jobs_per_s"] > 0, name
        assert row["enqueue_mode"] and row["database_cpu"] and row["versions"], name
        cpu = row["cpu_ms_per_job"]
        assert set(cpu) == {"server", "workers", "database", "total"}, name
        assert cpu["workers"] > 0 and cpu["total"] >= cpu["workers"], name
    # Which components can be attributed: jobwarden's server process; PostgreSQL's backends for
    # pgqueuer; SQLite runs inside a process already counted, so it has no figure of its own.
    assert report["systems"]["jobwarden-sqlite"]["cpu_ms_per_job"]["server"] > 0
    assert report["systems"]["jobwarden-sqlite"]["cpu_ms_per_job"]["database"] is None
    assert report["systems"]["floor-sqlite"]["cpu_ms_per_job"]["server"] is None
    assert report["systems"]["pgqueuer"]["cpu_ms_per_job"]["database"] is not None
    assert report["systems"]["pgqueuer"]["cpu_ms_per_job"]["database"] >= 0
    assert set(report["ratios"]) == {"jobwarden-sqlite"}
    for other in ("floor-sqlite", "pgqueuer"):
        ratio = report["ratios"]["jobwarden-sqlite"][other]
        assert ratio["drain"] > 0 and ratio["enqueue"] > 0
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.timeout(900)
def test_instructions_counts_the_server_per_job_under_callgrind(tmp_path: Path) -> None:
    apt.ensure("valgrind", Path("/usr/bin/valgrind"))
    out = tmp_path / "instructions.json"
    result = _bench(
        "--peers",
        "--quick",
        "--systems",
        "jobwarden-sqlite",
        "--instructions",
        "--no-chart",
        "--json",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "instructions: jobwarden-sqlite server" in result.stderr + result.stdout

    found = json.loads(out.read_text())["instructions"]
    counts = found["server_instructions"]
    assert set(counts) == {"20", "60"}
    assert counts["60"] > counts["20"] > 0  # three times the jobs cost the server more
    assert found["per_job"] == round((counts["60"] - counts["20"]) / 40)
    assert 0 < found["start_up_and_idle"] < counts["20"]


def test_peers_refuses_an_unknown_system() -> None:
    result = _bench("--peers", "--quick", "--systems", "rabbitmq", timeout=120)
    assert result.returncode == 2
    assert "'rabbitmq' matches none of" in result.stderr
    assert "Traceback" not in result.stderr
