"""The metrics agree with the jobs: after a mixed workload (two job types; completed, failed, retried,
cancelled, held, dry-run and replayed calls, one lease left to expire and rescued by the reaper) every
counter scraped from the server matches what the store says (ListJobs, ListJobEvents), on each
database. Also: RPC timings by method and code, and the open watch and Work stream gauges."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from prometheus_client.parser import text_string_to_metric_families
from support import flows, rpc, waiting
from support.receiver import Receiver, always, first_then, policy_settings

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2
from jobwarden_server import app
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.observability.metrics import render
from jobwarden_server.settings import callbacks_policy

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
FAST = {"retry": RetryPolicy(initial_backoff_s=0.0, max_backoff_s=0.0), "reaper_interval_s": 0.1}


@pytest.fixture
async def server(tmp_path: Path, backend: str) -> AsyncIterator[app.RunningServer]:
    async with rpc.server(tmp_path, backend=backend, **FAST) as srv:  # type: ignore[arg-type]
        yield srv


async def scrape(srv: app.RunningServer) -> Samples:
    """Every sample of the exposition, by name and labels."""
    body, _ = await render(srv.metrics)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def by_labels(samples: Samples, name: str, *keys: str) -> dict[tuple[str, ...], float]:
    """The non-zero samples of `name`, by the values of `keys`."""
    out: dict[tuple[str, ...], float] = collections.Counter()
    for (sample, labels), value in samples.items():
        if sample == name and value:
            found = dict(labels)
            out[tuple(found[k] for k in keys)] += value
    return dict(out)


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

    for _ in range(3):
        await flows.complete(s, await _claim(s, "mail"))
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
    claimed_at = len(await flows.events(s, abandoned.job.id))  # it was put back once before
    await _claim(s, "render")  # held: left RUNNING
    await s.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=held.id, validate_only=True))  # dry run
    await s.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=held.id))
    await flows.until_transition(s, abandoned.job.id, "QUEUED", after=claimed_at)


async def _recorded_transitions(s: rpc.Stubs, jobs: list[job_pb2.Job]) -> dict[tuple[str, ...], float]:
    counted: dict[tuple[str, ...], float] = collections.Counter()
    for job in jobs:
        for event in await flows.events(s, job.id):
            if event.HasField("transition"):
                t = event.transition
                counted[(job.job_type, _status(t.from_status), _status(t.to_status))] += 1
    return dict(counted)


async def test_the_counters_agree_with_the_jobs(server: app.RunningServer) -> None:
    async with rpc.stubs(server.address) as s:
        await _workload(s)
        samples = await scrape(server)
        jobs = await _all_jobs(s)
        transitions = await _recorded_transitions(s, jobs)

    per_type = collections.Counter(job.job_type for job in jobs)
    assert by_labels(samples, "jobwarden_jobs_created_total", "job_type") == {
        (t,): n for t, n in per_type.items()
    }
    assert by_labels(samples, "jobwarden_jobs_created_total", "job_type", "status") == {
        ("mail", "QUEUED"): 6,
        ("render", "QUEUED"): 3,
        ("render", "CREATED"): 1,
    }
    ended = collections.Counter(
        (job.job_type, _status(job.status), _reason(job.stop_reason))
        for job in jobs
        if job.HasField("complete_time")
    )
    assert by_labels(samples, "jobwarden_jobs_finished_total", "job_type", "status", "stop_reason") == ended
    assert ended == {
        ("mail", "COMPLETED", "UNSPECIFIED"): 3,
        ("mail", "FAILED", "PROVIDER_ERROR"): 1,
        ("render", "CANCELLED", "USER_CANCELLED"): 1,
    }
    waiting_now = collections.Counter(
        (job.job_type, _status(job.status)) for job in jobs if not job.HasField("complete_time")
    )
    assert by_labels(samples, "jobwarden_queue_depth", "job_type", "status") == waiting_now
    assert waiting_now == {("mail", "QUEUED"): 2, ("render", "QUEUED"): 2, ("render", "RUNNING"): 1}
    assert by_labels(samples, "jobwarden_job_transitions_total", "job_type", "from", "to") == transitions
    assert by_labels(samples, "jobwarden_job_retries_total", "job_type") == {("render",): 2}
    assert by_labels(samples, "jobwarden_lease_expirations_total", "job_type", "to") == {
        ("render", "QUEUED"): 1
    }
    claims: dict[tuple[str, ...], float] = collections.Counter()
    for job in jobs:
        claims[(job.job_type,)] += job.attempt  # each claim is an attempt
    assert by_labels(samples, "jobwarden_job_queue_wait_seconds_count", "job_type") == claims
    # Attempts that ended: completed or failed for good, and the render ones put back (failed, expired).
    assert by_labels(samples, "jobwarden_job_run_seconds_count", "job_type") == {("mail",): 4, ("render",): 2}


def _gauge(srv: app.RunningServer, name: str) -> float:
    return srv.metrics.registry.get_sample_value(name) or 0.0


async def test_rpcs_are_timed_by_method_and_final_code_and_streams_are_counted_while_open(
    tmp_path: Path,
) -> None:
    async with rpc.server(tmp_path) as srv, rpc.stubs(srv.address) as s:
        held = await flows.create(s, hold=True)
        missing = await rpc.fails(s.jobs.GetJob(job_service_pb2.GetJobRequest(job_id="nope")))
        assert missing.code == grpc.StatusCode.NOT_FOUND
        invalid = await rpc.fails(s.jobs.CreateJob(job_service_pb2.CreateJobRequest(job_type="")))
        assert invalid.code == grpc.StatusCode.INVALID_ARGUMENT
        made_up = s.channel.unary_unary("/jobwarden.v1.JobService/MadeUp")
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await made_up(b"")
        assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED

        watch = flows.start_watch(s, held.id)
        session = s.workers.Work()
        await session.write(
            worker_service_pb2.WorkRequest(
                start=worker_service_pb2.WorkStart(worker_id="w", job_types=["demo"])
            )
        )
        await waiting.until(lambda: _gauge(srv, "jobwarden_watchers_active") == 1)
        await waiting.until(lambda: _gauge(srv, "jobwarden_work_sessions_active") == 1)
        await s.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=held.id))
        await watch  # the watch ends with the job
        await session.done_writing()
        assert await session.read() == grpc.aio.EOF
        await waiting.until(lambda: _gauge(srv, "jobwarden_watchers_active") == 0)
        await waiting.until(lambda: _gauge(srv, "jobwarden_work_sessions_active") == 0)

        timed = by_labels(await scrape(srv), "jobwarden_rpc_duration_seconds_count", "method", "code")
    assert timed == {
        ("jobwarden.v1.JobService/CreateJob", "OK"): 1,
        ("jobwarden.v1.JobService/CreateJob", "INVALID_ARGUMENT"): 1,
        ("jobwarden.v1.JobService/GetJob", "NOT_FOUND"): 1,
        ("jobwarden.v1.JobService/WatchJob", "OK"): 1,
        ("jobwarden.v1.JobService/CancelJob", "OK"): 1,
        ("jobwarden.v1.WorkerService/Work", "OK"): 1,
    }


async def _callback_settled(s: rpc.Stubs, job_id: str) -> None:
    """Until the job's callback is delivered or given up (a bounded poll of a server-side state)."""
    done = (job_pb2.CALLBACK_STATE_DELIVERED, job_pb2.CALLBACK_STATE_FAILED)
    async with asyncio.timeout(10):
        while (await flows.get(s, job_id)).callback_state not in done:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_callback_attempts_are_counted_by_outcome_as_the_jobs_record_them(tmp_path: Path) -> None:
    policy = callbacks_policy(policy_settings())
    with Receiver(first_then([500])) as flaky, Receiver(always(410)) as gone:
        async with rpc.server(tmp_path, callbacks=policy) as srv, rpc.stubs(srv.address) as s:
            delivered = await flows.create(s, callback_url=flaky.url)
            await flows.complete(s, await flows.claim_one(s))
            refused = await flows.create(s, callback_url=gone.url)
            await flows.complete(s, await flows.claim_one(s))
            for job in (delivered, refused):
                await _callback_settled(s, job.id)
            recorded: collections.Counter[str] = collections.Counter()
            for job in (delivered, refused):
                for event in await flows.events(s, job.id):
                    if event.HasField("callback_attempt"):
                        state = job_pb2.CallbackState.Name(event.callback_attempt.state)
                        recorded[state.removeprefix("CALLBACK_STATE_")] += 1
            counted = by_labels(await scrape(srv), "jobwarden_callback_deliveries_total", "outcome")
    assert recorded == {"DELIVERING": 1, "DELIVERED": 1, "FAILED": 1}
    assert counted == {("retrying",): 1, ("delivered",): 1, ("failed",): 1}
