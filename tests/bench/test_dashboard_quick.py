"""`scripts/bench --dashboard --quick` proves its harness end to end; it never judges speed.

It runs the real `jobwarden serve` (SQLite) with its HTTP port, seeds 2,000 jobs through the gRPC API,
times each of the dashboard's API requests 5 times and writes the JSON. The test checks that every
request is there with its timings and a non-empty answer, and that the store holds the seeded mix.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUESTS = [
    "floor: GET /api/session",
    "jobs: first page",
    "jobs: next page (cursor)",
    "jobs: status=FAILED",
    "jobs: type=video.transcode",
    "jobs: label tenant=t07",
    "count: no filter",
    "count: status=FAILED",
    "count: label tenant=t07",
    "one job",
    "its events",
    "queues: 1 h",
    "queues: 1 day",
]


@pytest.mark.timeout(120)
def test_dashboard_quick_times_every_request_of_the_dashboard(tmp_path: Path) -> None:
    out = tmp_path / "dashboard.json"
    result = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--dashboard", "--quick", "--json", str(out)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "| jobs: first page | 50 jobs |" in result.stdout

    report = json.loads(out.read_text())
    assert report["settings"] == {"jobs": 2000, "repeats": 5, "warmup": 1}
    store = report["store"]
    # The mix of bench/dashboard/seed.py: 10% held, 10% finished (1 in 5 of those failed).
    assert store["statuses"] == {"CREATED": 200, "QUEUED": 1600, "COMPLETED": 160, "FAILED": 40}
    assert store["jobs"] == 2000 and store["bytes"] > 0

    figures = {item["name"]: item for item in report["requests"]}
    assert list(figures) == REQUESTS
    for item in figures.values():
        assert item["count"] == 5
        assert 0 < item["p50_ms"] <= item["p95_ms"] <= item["max_ms"]
        assert item["ratio_p50"] > 0 and item["ratio_p95"] > 0 and item["answer_bytes"] > 0
    assert figures["floor: GET /api/session"]["ratio_p50"] == 1.0
    # What each answered, checked against the seeded store (so no figure is of an empty answer).
    assert figures["jobs: first page"]["answered"] == "50 jobs"
    assert figures["jobs: next page (cursor)"]["answered"] == "50 jobs"
    assert figures["jobs: status=FAILED"]["answered"] == "40 jobs"
    assert figures["jobs: type=video.transcode"]["answered"] == "50 jobs"
    assert figures["jobs: label tenant=t07"]["answered"] == "40 jobs"
    assert figures["count: no filter"]["answered"] == "count 2000"
    assert figures["count: status=FAILED"]["answered"] == "count 40"
    assert figures["count: label tenant=t07"]["answered"] == "count 40"
    assert figures["one job"]["answered"] == "job COMPLETED"
    assert figures["its events"]["answered"] == "3 events"
    assert figures["queues: 1 h"]["answered"] == figures["queues: 1 day"]["answered"] == "4 job types"
