"""examples/resize_worker.py, run as a reader runs it (`python examples/resize_worker.py`), against the real
`jobwarden serve`: it prints one line per job (id, then result or why it stopped) and does the job."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from support import proc, waiting
from support.readme import ROOT

from jobwarden.client import Client, EventKind, Job, JobStatus

WORKER = ROOT / "examples" / "resize_worker.py"


async def create_jobs(address: str) -> tuple[Job, Job]:
    async with Client(address) as client:
        good = await client.create_job("image.resize", {"width": 640})
        bad = await client.create_job("image.resize", {"width": -3})
        return good, bad


async def read_back(address: str, job_id: str) -> tuple[Job, list[str], list[str]]:
    """The job, the messages of its progress events and the URIs of its assets."""
    async with Client(address) as client:
        job = await client.get_job(job_id)
        events, _ = await client.list_job_events(job_id)
        assets, _ = await client.list_assets(job_id)
    steps = [e.progress.message for e in events if e.kind == EventKind.PROGRESS and e.progress is not None]
    return job, steps, [a.uri for a in assets]


def test_resize_worker_prints_a_line_per_job_and_completes_it(tmp_path: Path) -> None:
    with proc.serving(tmp_path / "examples.db") as (_, address):
        good, bad = asyncio.run(create_jobs(address))
        out, err = tmp_path / "worker.out", tmp_path / "worker.err"
        with out.open("w") as stdout, err.open("w") as stderr:
            worker = proc.spawn(
                [sys.executable, str(WORKER)],
                cwd=ROOT,
                env={"JOBWARDEN_ADDRESS": address},
                stdout=stdout,
                stderr=stderr,
            )
            try:
                waiting.until_sync(
                    lambda: len(out.read_text().splitlines()) >= 3, 30, "a line about each of the two jobs"
                )
            finally:
                status = proc.stop(worker, signal.SIGINT)  # Ctrl-C
        job, steps, assets = asyncio.run(read_back(address, good.id))
        failed, _, _ = asyncio.run(read_back(address, bad.id))

    image = f"file:///tmp/resized-{good.id}.png"
    lines = out.read_text().splitlines()
    assert lines[0] == f"waiting for image.resize jobs at {address} (Ctrl-C stops)"
    assert sorted(lines[1:]) == sorted(
        [
            f"{good.id} {json.dumps({'width': 640, 'image': image})}",
            f"{bad.id} stopped: parameter 'width' must be a positive whole number",
        ]
    )
    assert (job.status, job.result) == (JobStatus.COMPLETED, {"width": 640, "image": image})
    assert steps == ["step 1/4", "step 2/4", "step 3/4", "step 4/4"]
    assert assets == [image]
    assert failed.status == JobStatus.FAILED and failed.error is not None
    assert failed.error.message == "parameter 'width' must be a positive whole number"
    assert status == 0
    assert err.read_text() == ""
