"""The whole path as users run it: SDK Workers with a trivial handler draining a queued backlog."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.measure import CpuMeter, Measurement
from bench.rig import CALL_TIMEOUT_S, Rig
from bench.scenarios import backlog
from jobwarden.client import Client, JobContext, Worker
from jobwarden.v1 import job_pb2, job_service_pb2

JOB_TYPE = "bench.pipeline"


async def drain(rig: Rig) -> Measurement:
    """`pipeline_workers` Workers (own Client and channel each, as separate processes would have) drain
    `pipeline_jobs` queued jobs. Timed from starting the workers until every job is COMPLETED."""
    sizes = rig.sizes
    total = sizes.pipeline_jobs
    await backlog(rig, JOB_TYPE, total)
    handled = 0
    all_handled = asyncio.Event()

    async def handler(_ctx: JobContext) -> dict[str, Any]:
        nonlocal handled
        handled += 1
        if handled >= total:
            all_handled.set()
        return {}

    clients = [Client(rig.server.address) for _ in range(sizes.pipeline_workers)]
    workers = []
    for client in clients:
        # A short long-poll so that stopping at the end is quick; it only matters once the queue is empty.
        worker = Worker(client, concurrency=sizes.pipeline_concurrency, poll_wait=2.0, shutdown_grace=30.0)
        worker.register(JOB_TYPE, handler)
        workers.append(worker)
    try:
        with CpuMeter(rig.server.cpu_seconds) as cpu:
            start = time.perf_counter()
            runs = [asyncio.create_task(w.run()) for w in workers]
            await all_handled.wait()
            # Stopping lets running handlers finish and report, so when run() returns, every job's
            # CompleteJob has been answered.
            for w in workers:
                w.stop()
            await asyncio.gather(*runs)
            seconds = time.perf_counter() - start
    finally:
        for client in clients:
            await client.close()
    await _check_drained(rig)
    return Measurement(
        key="pipeline",
        name=f"pipeline: {sizes.pipeline_workers} SDK Workers x{sizes.pipeline_concurrency}, per job",
        units=total,
        seconds=seconds,
        latencies=[],
        concurrency=sizes.pipeline_workers * sizes.pipeline_concurrency,
        server_cpu_s=cpu.server_s,
        client_cpu_s=cpu.client_s,
        note=f"{total} queued jobs, claim -> trivial handler -> CompleteJob; ends when all are COMPLETED",
    )


async def _check_drained(rig: Rig) -> None:
    """A bench that measured jobs which did not complete would be lying: make sure none is left."""
    reply = await rig.job_stub(0).ListJobs(
        job_service_pb2.ListJobsRequest(
            job_types=[JOB_TYPE],
            statuses=[job_pb2.JOB_STATUS_QUEUED, job_pb2.JOB_STATUS_RUNNING, job_pb2.JOB_STATUS_FAILED],
            page_size=1,
        ),
        timeout=CALL_TIMEOUT_S,
    )
    if reply.jobs:
        raise RuntimeError(
            f"pipeline left job {reply.jobs[0].id} {job_pb2.JobStatus.Name(reply.jobs[0].status)}"
        )
