"""`scripts/bench --watchers --quick` proves its harness end to end; it never judges speed.

It runs the real `jobwarden serve` (SQLite) under 5 s of load with an SDK worker process and a watcher
per job, then 500 concurrent watchers over two holder processes, and writes the JSON. The test checks
that every figure is there and that what must hold whatever the speed does hold: every job finished,
every progress event and every sampled change reached its watcher, and nothing else did.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PERCENTILES = {"p50", "p95", "p99", "max"}


@pytest.mark.timeout(300)
def test_watchers_quick_reports_latency_and_fan_out(tmp_path: Path) -> None:
    out = tmp_path / "watchers.json"
    result = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--watchers", "--quick", "--json", str(out)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "progress report -> watcher at 200 jobs/s offered" in result.stdout

    report = json.loads(out.read_text())
    assert {"environment", "settings", "latency", "fanout"} <= set(report)
    assert report["settings"]["rates"] == [200] and report["settings"]["watchers"] == 500

    (latency,) = report["latency"]
    assert latency["offered_jobs_per_s"] == 200
    assert latency["jobs"] == 1000  # 5 s at 200 jobs/s, after the warm-up
    assert latency["errors"] == {} and latency["jobs_unfinished"] == 0
    assert latency["outcomes"] == {"JOB_STATUS_COMPLETED": 1000}
    assert latency["progress_events_received"] == 1000
    assert latency["completed_without_progress_event"] == 0
    assert set(latency["send_to_watcher_ms"]) == PERCENTILES
    assert all(v > 0 for v in latency["send_to_watcher_ms"].values())
    assert all(v > 0 for v in latency["send_to_ack_ms"].values())
    assert latency["finished_jobs_per_s"] > 0 and latency["server_cpu_ms_per_job"] > 0
    assert 0 <= latency["watcher_before_ack"] <= 1

    fanout = report["fanout"]
    assert fanout["opened"] == fanout["watchers"] == 500
    assert fanout["open_failures"] == [] and fanout["broken_streams"] == 0
    assert fanout["open_seconds"] > 0 and fanout["server_cpu_ms_per_open"] > 0
    rss = fanout["server_rss_mib"]
    assert 0 < rss["before"] <= rss["peak"] and rss["all_open"] > 0
    assert fanout["rss_kib_per_watcher"] is not None
    assert fanout["sample"] == fanout["sample_received"] == 50
    assert fanout["sample_wrong_status"] == 0 and fanout["unexpected_events"] == 0
    assert set(fanout["change_to_watcher_ms"]) == PERCENTILES
