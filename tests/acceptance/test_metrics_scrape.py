"""The metrics agree with the jobs, scraped from the real `jobwarden serve` over HTTP (GET /metrics).

After a mixed workload (two job types; jobs completed by unary calls and in a Work session, failed,
retried, cancelled and held; dry-run, replayed and refused calls, which must count nothing; one lease
left to expire and rescued by the reaper) every counter matches what the store says through the API
(ListJobs, ListJobEvents), on a SQLite file and, with JOBWARDEN_TEST_DATABASE_URL, on PostgreSQL.
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from support import flows, pg, proc, rpc, scrape

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2

BACKENDS: list[Any] = ["sqlite"]
if os.environ.get(pg.URL_ENV):
    BACKENDS.append(pytest.param("postgres", marks=pytest.mark.postgres))
CONFIG = """
reaper_interval_seconds = 0.1
[retry]
initial_backoff_seconds = 0
max_backoff_seconds = 0
"""


@contextlib.asynccontextmanager
async def database(tmp_path: Path, backend: str) -> AsyncIterator[str]:
    if backend == "postgres":
        async with pg.throwaway_database() as url:
            yield url
    else:
        yield str(tmp_path / "jw.db")


def _status(value: int) -> str:
    return job_pb2.JobStatus.Name(value).removeprefix("JOB_STATUS_")


def _reason(value: int) -> str:
    return job_pb2.StopReason.Name(value).removeprefix("STOP_REASON_")


async def _all_jobs(s: rpc.Stubs) -> list[job_pb2.Job]:
    jobs: list[job_pb2.Job] = []
    token = ""
    while True:
        reply = await s.jobs.ListJobs(job_service_pb2.ListJobsRequest(page_size=100, page_token=token))
        jobs.extend(reply.jobs)
        token = reply.next_page_token
        if not token:
            return jobs


async def _claim(s: rpc.Stubs, job_type: str, lease_s: int = 60) -> worker_service_pb2.JobClaim:
    request = worker_service_pb2.ClaimJobsRequest(
        worker_id="w1", job_types=[job_type], lease_duration=duration_pb2.Duration(seconds=lease_s)
    )
    (claim,) = (await s.workers.ClaimJobs(request)).claims
    return claim


async def _complete_in_a_work_session(s: rpc.Stubs, job_type: str) -> None:
    """Claim one job and complete it as a streaming worker does: one Work session, one step."""
    session = s.workers.Work()
    start = worker_service_pb2.WorkStart(worker_id="streamer", job_types=[job_type])
    await session.write(worker_service_pb2.WorkRequest(start=start, credits=1))
    (claim,) = (await session.read()).claims
    done = worker_service_pb2.CompleteJobRequest(job_id=claim.job.id, lease_token=claim.lease_token)
    step = worker_service_pb2.WorkStep(step_id="1", complete=done)
    await session.write(worker_service_pb2.WorkRequest(steps=[step]))
    (ack,) = (await session.read()).acks
    assert ack.complete.job.status == job_pb2.JOB_STATUS_COMPLETED
    await session.done_writing()
    assert await session.read() == grpc.aio.EOF


async def _workload(s: rpc.Stubs) -> None:
    """Two job types through every kind of change, plus calls that must count nothing."""
    await s.jobs.CreateJobs(
        job_service_pb2.CreateJobsRequest(
            requests=[job_service_pb2.CreateJobRequest(job_type="mail") for _ in range(5)]
        )
    )
    for _ in range(3):
        await flows.create(s, "render", max_attempts=3)
    held = await flows.create(s, "render", hold=True)
    replayed = job_service_pb2.CreateJobRequest(job_type="mail", request_id="once")
    await s.jobs.CreateJob(replayed)
    await s.jobs.CreateJob(replayed)  # a retry of the same call: no second job, nothing counted

    for _ in range(2):
        await flows.complete(s, await _claim(s, "mail"))
    await _complete_in_a_work_session(s, "mail")
    failing = await _claim(s, "mail")
    await s.workers.FailJob(
        worker_service_pb2.FailJobRequest(
            job_id=failing.job.id,
            lease_token=failing.lease_token,
            error=job_pb2.JobError(message="provider said no"),
            stop_reason=job_pb2.STOP_REASON_PROVIDER_ERROR,
        )
    )
    refused = await rpc.fails(s.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=failing.job.id)))
    assert refused.code == grpc.StatusCode.FAILED_PRECONDITION  # refused: changes and counts nothing

    await flows.fail(s, await _claim(s, "render"), retryable=True)  # back in the queue: a retry
    abandoned = await _claim(s, "render", lease_s=1)  # its worker goes silent: the reaper rescues it
    claimed_at = len(await flows.events(s, abandoned.job.id))  # (it was put back once before)
    await _claim(s, "render")  # held: left RUNNING
    await s.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=held.id, validate_only=True))  # dry run
    await s.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=held.id))
    await flows.until_transition(s, abandoned.job.id, "QUEUED", after=claimed_at)


async def _recorded_transitions(s: rpc.Stubs, jobs: list[job_pb2.Job]) -> dict[tuple[str, ...], float]:
    counted: collections.Counter[tuple[str, ...]] = collections.Counter()
    for job in jobs:
        for event in await flows.events(s, job.id):
            if event.HasField("transition"):
                t = event.transition
                counted[(job.job_type, _status(t.from_status), _status(t.to_status))] += 1
    return dict(counted)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_scraped_counters_agree_with_the_jobs(tmp_path: Path, backend: str) -> None:
    config = tmp_path / "jobwarden.toml"
    config.write_text(CONFIG)
    async with database(tmp_path, backend) as url:
        with proc.serving(url, "--config", str(config), "--http-listen", "127.0.0.1:0") as (server, address):
            base = proc.dashboard_url(server)
            async with rpc.stubs(address) as s:
                await _workload(s)
                samples = await scrape.metrics(base)
                jobs = await _all_jobs(s)
                transitions = await _recorded_transitions(s, jobs)

    def counted(name: str, *keys: str) -> dict[tuple[str, ...], float]:
        return scrape.by_labels(samples, name, *keys)

    per_type = collections.Counter((job.job_type,) for job in jobs)
    assert counted("jobwarden_jobs_created_total", "job_type") == per_type
    assert counted("jobwarden_jobs_created_total", "job_type", "status") == {
        ("mail", "QUEUED"): 6,
        ("render", "QUEUED"): 3,
        ("render", "CREATED"): 1,
    }
    ended = collections.Counter(
        (job.job_type, _status(job.status), _reason(job.stop_reason))
        for job in jobs
        if job.HasField("complete_time")
    )
    assert counted("jobwarden_jobs_finished_total", "job_type", "status", "stop_reason") == ended
    assert ended == {
        ("mail", "COMPLETED", "UNSPECIFIED"): 3,
        ("mail", "FAILED", "PROVIDER_ERROR"): 1,
        ("render", "CANCELLED", "USER_CANCELLED"): 1,
    }
    unfinished = collections.Counter(
        (job.job_type, _status(job.status)) for job in jobs if not job.HasField("complete_time")
    )
    assert counted("jobwarden_queue_depth", "job_type", "status") == unfinished
    assert unfinished == {("mail", "QUEUED"): 2, ("render", "QUEUED"): 2, ("render", "RUNNING"): 1}
    assert counted("jobwarden_job_transitions_total", "job_type", "from", "to") == transitions
    assert counted("jobwarden_job_retries_total", "job_type") == {("render",): 2}
    assert counted("jobwarden_lease_expirations_total", "job_type", "to") == {("render", "QUEUED"): 1}
    claims: collections.Counter[tuple[str, ...]] = collections.Counter()
    for job in jobs:
        claims[(job.job_type,)] += job.attempt  # each claim is an attempt
    assert counted("jobwarden_job_queue_wait_seconds_count", "job_type") == claims
    # Attempts that ended: completed or failed for good, and the render ones put back (failed, expired).
    assert counted("jobwarden_job_run_seconds_count", "job_type") == {("mail",): 4, ("render",): 2}
