"""`jobwarden stats`, `jobwarden top` and stalled jobs through the real CLI against the real
`jobwarden serve` (a config with a stall rule), both as subprocesses. Each test uses its own job types,
so the tests share one server."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import proc

from jobwarden.client import Client, EventKind, JobEvent, JobStatus

STUCK = "cli.stuck"
CONFIG = f"""
reaper_interval_seconds = 0.1

[stall.types."{STUCK}"]
after = 0.5
"""


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("stats")
    (tmp / "server.toml").write_text(CONFIG)
    with proc.serving(tmp / "stats.db", "--config", str(tmp / "server.toml")) as (_, addr):
        yield addr


@pytest.fixture
def job_type() -> str:
    return f"cli.{uuid.uuid4().hex[:10]}"


def ok(address: str, *args: str) -> str:
    result = proc.run([*args, "--address", address])
    assert (result.returncode, result.stderr) == (0, ""), (result.returncode, result.stdout, result.stderr)
    return result.stdout


def row(out: str, first: str) -> list[str]:
    """The first line of `out` whose first column is `first`, split on whitespace."""
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [first])


async def _three_jobs(address: str, job_type: str) -> None:
    """One job of the type COMPLETED, one FAILED, one left QUEUED."""
    async with Client(address) as client:
        for _ in range(3):
            await client.create_job(job_type)
        first, second = await client.claim_jobs("w-stats", [job_type], max_jobs=2)
        await client.complete_job(first.job.id, first.lease_token, {})
        await client.fail_job(second.job.id, second.lease_token, "broken")


def test_stats_and_top_once_show_each_type(address: str, job_type: str) -> None:
    asyncio.run(_three_jobs(address, job_type))
    out = ok(address, "stats", "--type", job_type, "--since", "10m")
    assert out.splitlines()[0].startswith("jobs created ")
    # TYPE TOTAL CREATED QUEUED RUNNING COMPLETED PARTIAL FAILED CANCELLED EXPIRED SUCCESS
    assert row(out, "TYPE")[:3] == ["TYPE", "TOTAL", "CREATED"]
    assert row(out, job_type) == [job_type, "3", "0", "1", "0", "1", "0", "1", "0", "0", "50.0%"]
    timing = [line.split() for line in out.splitlines() if line.startswith(job_type)][1]
    assert timing[7:] == ["1", "1", timing[9], "0", "0"]  # one sample, one queued (its age), none running

    stats = json.loads(ok(address, "stats", "--type", job_type, "--json"))
    [entry] = stats["job_types"]
    assert (entry["job_type"], entry["counts"]["COMPLETED"], entry["queue_depth"]) == (job_type, 1, 1)
    assert entry["success_rate"] == 0.5 and entry["completion_time"]["count"] == 1

    frame = ok(address, "top", "--once", "--type", job_type)
    assert frame.splitlines()[0].startswith("jobwarden top ")
    # TYPE QUEUED OLDEST RUNNING STALLED COMPLETED FAILED OTHER SUCCESS DONE-P95
    cells = row(frame, job_type)
    assert cells[:2] == [job_type, "1"] and cells[3:9] == ["0", "0", "1", "1", "0", "50.0%"]


def test_top_redraws_until_ctrl_c_and_then_exits_130_quietly(address: str, job_type: str) -> None:
    top = proc.spawn(
        [*proc.jobwarden_command(), "top", "--interval", "0.2", "--type", job_type, "--address", address]
    )
    try:
        assert top.stdout is not None
        frames = 0
        while frames < 2:  # a second frame: it redraws
            line = top.stdout.readline()
            assert line, "top ended by itself"
            frames += line.startswith("jobwarden top ")
    finally:
        code = proc.stop(top, signal.SIGINT)
    assert code == 130


def test_a_stalled_job_shows_in_list_get_events_and_stats(address: str) -> None:
    async def stall() -> str:
        async with Client(address) as client:
            job = await client.create_job(STUCK)
            [claim] = await client.claim_jobs("w-stuck", [STUCK], lease_duration=60)
            await client.report_progress(job.id, claim.lease_token, 30, "stuck here")
            async with asyncio.timeout(20):
                async for item in client.watch_job(job.id):
                    if isinstance(item, JobEvent) and item.kind == EventKind.STALLED:
                        assert item.stall is not None and item.stall.progress.percent == 30
                        return job.id
        raise AssertionError("no stalled event")

    job_id = asyncio.run(stall())
    assert row(ok(address, "jobs", "list", "--stalled"), job_id)[2] == str(JobStatus.RUNNING)
    assert "RUNNING (stalled since " in ok(address, "jobs", "get", job_id)
    [stalled] = [line for line in ok(address, "jobs", "events", job_id).splitlines() if " stalled " in line]
    assert stalled.endswith("at 30% stuck here since " + stalled.split(" since ")[1])
    assert "(limit 500ms) (system)" in stalled
    assert row(ok(address, "top", "--once", "--type", STUCK), STUCK)[3:5] == ["1", "1"]  # running, stalled


def test_a_window_the_server_refuses_is_one_line_and_exit_1(address: str) -> None:
    result = proc.run(["stats", "--since", "400d", "--address", address])
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "error: INVALID_ARGUMENT: window: must be above 0 and at most 366 days\n"
    usage = proc.run(["stats", "--since", "soon", "--address", address])
    assert usage.returncode == 2 and "expected a duration such as 90, 30m, 1h or 7d" in usage.stderr


def test_a_wrong_stall_config_stops_the_server_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[stall.types."report.render"]\nafter = 300\naction = "explode"\n')
    result = proc.run(
        ["serve", "--config", str(config), "--listen", "127.0.0.1:0", "--database", str(tmp_path / "x.db")]
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        'error: stall.types.report.render.action = \'explode\': use "flag" or "fail"'
    ]
