"""validate_only: a dry run answers what the real call answers (the job as it would be, or the very
error) and changes nothing: no row, no event, no lease renewal, nothing published. Each case runs the
dry call, checks the database is exactly as before, then makes the real call and compares answers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import sqlalchemy as sa
from google.protobuf import duration_pb2, timestamp_pb2
from support import flows, rpc

from jobwarden.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    job_pb2,
    job_service_pb2,
    worker_service_pb2,
)
from jobwarden_server import app

S = job_pb2.JobStatus
TABLES = ("jobs", "job_events", "assets", "callback_outbox")
CLOCK_FIELDS = ("update_time", "complete_time")
"""Set from the server's clock when the change is made: a dry run's differ by the time between calls."""
NEW_JOB_FIELDS = ("id", "create_time", "queue_expire_time")
"""A dry-run create answers an id that is not kept, and times of its own."""

Answer = job_pb2.Job | rpc.RpcFailure
Call = Callable[[bool], Awaitable[Any]]
"""Makes the call, dry (True) or for real (False), and returns its reply."""


async def database(srv: app.RunningServer) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Every job row, column by column, and how many rows each table holds."""
    async with srv.store.write_engine.connect() as conn:  # type: ignore[attr-defined]
        jobs = [dict(r) for r in (await conn.execute(sa.text("SELECT * FROM jobs ORDER BY id"))).mappings()]
        counts = {t: (await conn.execute(sa.text(f"SELECT count(*) FROM {t}"))).scalar_one() for t in TABLES}
    return jobs, counts


async def answer(call: Awaitable[Any]) -> Answer:
    try:
        reply = await call
    except grpc.aio.AioRpcError as err:
        return rpc.failure(err)
    job: job_pb2.Job = reply.job
    return job


def comparable(found: Answer, *ignore: str) -> Answer:
    if isinstance(found, rpc.RpcFailure):
        return found
    out = job_pb2.Job()
    out.CopyFrom(found)
    for name in ignore:
        out.ClearField(name)
    return out


async def dry_then_real(srv: app.RunningServer, call: Call, *ignore: str) -> Answer:
    """The dry run changes nothing and answers as the real call then does; the real answer."""
    before = await database(srv)
    dry = await answer(call(True))
    assert await database(srv) == before, "a dry run changed the database"
    real = await answer(call(False))
    if isinstance(dry, job_pb2.Job) and isinstance(real, job_pb2.Job):
        for name in CLOCK_FIELDS:
            assert dry.HasField(name) == real.HasField(name), name
    assert comparable(dry, *CLOCK_FIELDS, *ignore) == comparable(real, *CLOCK_FIELDS, *ignore)
    return real


def _admin(s: rpc.Stubs) -> admin_service_pb2_grpc.AdminServiceStub:
    return admin_service_pb2_grpc.AdminServiceStub(s.channel)


def create_call(s: rpc.Stubs, **fields: Any) -> Call:
    def call(dry: bool) -> Awaitable[Any]:
        request = job_service_pb2.CreateJobRequest(job_type="demo", validate_only=dry, **fields)
        return s.jobs.CreateJob(request, metadata=s.metadata)

    return call


async def test_create(srv: app.RunningServer, stubs: rpc.Stubs) -> None:
    fields: dict[str, Any] = {
        "parameters": flows.struct(n=1),
        "labels": {"k": "v"},
        "priority": 3,
        "request_id": "c1",
        "queue_timeout": {"seconds": 600},
    }
    new = await dry_then_real(srv, create_call(stubs, **fields), *NEW_JOB_FIELDS)
    assert isinstance(new, job_pb2.Job) and new.status == S.JOB_STATUS_QUEUED
    # The request_id is taken now: both answer the first job, every field of it.
    again = await dry_then_real(srv, create_call(stubs, **fields))
    assert isinstance(again, job_pb2.Job) and again.id == new.id
    mismatch = await dry_then_real(srv, create_call(stubs, **{**fields, "priority": 4}))
    assert isinstance(mismatch, rpc.RpcFailure) and mismatch.reason == "REQUEST_ID_MISMATCH"
    past = timestamp_pb2.Timestamp()
    past.FromDatetime(dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    refused = await dry_then_real(srv, create_call(stubs, deadline=past))
    assert isinstance(refused, rpc.RpcFailure) and refused.fields == ["deadline"]
    held = await dry_then_real(srv, create_call(stubs, hold=True), *NEW_JOB_FIELDS)
    assert isinstance(held, job_pb2.Job) and held.status == S.JOB_STATUS_CREATED


async def test_cancel_publishes_nothing_and_answers_replays_and_refusals(
    srv: app.RunningServer, stubs: rpc.Stubs
) -> None:
    job = await flows.create(stubs)
    watch = stubs.jobs.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id), metadata=stubs.metadata)
    stream = aiter(watch)
    assert (await anext(stream)).HasField("job")
    assert (await anext(stream)).event.sequence == 1  # created: the watch is live from here on

    def cancel(dry: bool, reason: str = "for real") -> Awaitable[Any]:
        request = job_service_pb2.CancelJobRequest(
            job_id=job.id, reason="dry run" if dry else reason, request_id="x1", validate_only=dry
        )
        return stubs.jobs.CancelJob(request, metadata=stubs.metadata)

    cancelled = await dry_then_real(srv, cancel)
    assert isinstance(cancelled, job_pb2.Job) and cancelled.status == S.JOB_STATUS_CANCELLED
    # The watcher's next event is the real call's: the dry run published nothing.
    event = (await anext(stream)).event
    assert (event.sequence, event.transition.reason) == (2, "for real")
    watch.cancel()

    def replay(dry: bool) -> Awaitable[Any]:
        request = job_service_pb2.CancelJobRequest(
            job_id=job.id, reason="for real", request_id="x1", validate_only=dry
        )
        return stubs.jobs.CancelJob(request, metadata=stubs.metadata)

    assert await dry_then_real(srv, replay) == cancelled  # a retry's answer: the first outcome

    def again(dry: bool) -> Awaitable[Any]:
        request = job_service_pb2.CancelJobRequest(job_id=job.id, validate_only=dry)
        return stubs.jobs.CancelJob(request, metadata=stubs.metadata)

    refused = await dry_then_real(srv, again)
    assert isinstance(refused, rpc.RpcFailure) and refused.reason == "INVALID_TRANSITION"


async def test_cancel_of_a_running_job_and_release(srv: app.RunningServer, stubs: rpc.Stubs) -> None:
    await flows.create(stubs)
    running = await flows.claim_one(stubs)

    def cancel(dry: bool) -> Awaitable[Any]:
        request = job_service_pb2.CancelJobRequest(job_id=running.job.id, validate_only=dry)
        return stubs.jobs.CancelJob(request, metadata=stubs.metadata)

    asked = await dry_then_real(srv, cancel)
    assert isinstance(asked, job_pb2.Job) and asked.cancel_requested and asked.status == S.JOB_STATUS_RUNNING

    held = await flows.create(stubs, hold=True)

    def release(dry: bool) -> Awaitable[Any]:
        request = job_service_pb2.ReleaseJobRequest(job_id=held.id, validate_only=dry)
        return stubs.jobs.ReleaseJob(request, metadata=stubs.metadata)

    released = await dry_then_real(srv, release)
    assert isinstance(released, job_pb2.Job) and released.status == S.JOB_STATUS_QUEUED
    refused = await dry_then_real(srv, release)
    assert isinstance(refused, rpc.RpcFailure) and refused.reason == "INVALID_TRANSITION"
    missing = await answer(
        stubs.jobs.ReleaseJob(
            job_service_pb2.ReleaseJobRequest(job_id="nope", validate_only=True), metadata=stubs.metadata
        )
    )
    assert isinstance(missing, rpc.RpcFailure) and missing.reason == "NOT_FOUND"


async def test_complete_keeps_the_lease_as_it_was(srv: app.RunningServer, stubs: rpc.Stubs) -> None:
    await flows.create(stubs)
    claim = await flows.claim_one(stubs)

    def complete(dry: bool, token: str = claim.lease_token) -> Awaitable[Any]:
        request = worker_service_pb2.CompleteJobRequest(
            job_id=claim.job.id, lease_token=token, result=flows.struct(ok=True), validate_only=dry
        )
        return stubs.workers.CompleteJob(request, metadata=stubs.metadata)

    lost = await dry_then_real(srv, lambda dry: complete(dry, "not-the-token"))
    assert isinstance(lost, rpc.RpcFailure) and lost.reason == "LEASE_LOST"
    done = await dry_then_real(srv, complete)
    assert isinstance(done, job_pb2.Job) and done.status == S.JOB_STATUS_COMPLETED
    assert done.result == flows.struct(ok=True) and done.progress.percent == 100


async def test_fail_retryable_and_final(srv: app.RunningServer, stubs: rpc.Stubs) -> None:
    no_backoff = job_pb2.RetryPolicy(
        initial_backoff=duration_pb2.Duration(), max_backoff=duration_pb2.Duration()
    )
    await flows.create(stubs, max_attempts=2, retry_policy=no_backoff)

    def fail(claim: worker_service_pb2.JobClaim, retryable: bool) -> Call:
        def call(dry: bool) -> Awaitable[Any]:
            request = worker_service_pb2.FailJobRequest(
                job_id=claim.job.id,
                lease_token=claim.lease_token,
                error=job_pb2.JobError(message="boom", retryable=retryable),
                validate_only=dry,
            )
            return stubs.workers.FailJob(request, metadata=stubs.metadata)

        return call

    # A retry's backoff has jitter: its run_after (and the queue expiry timed from it) is drawn anew.
    first = await dry_then_real(
        srv, fail(await flows.claim_one(stubs), True), "run_after", "queue_expire_time"
    )
    assert isinstance(first, job_pb2.Job) and first.status == S.JOB_STATUS_QUEUED
    second = await flows.claim(stubs, wait_s=5)
    assert len(second) == 1
    final = await dry_then_real(srv, fail(second[0], True))
    assert isinstance(final, job_pb2.Job) and final.status == S.JOB_STATUS_FAILED
    assert final.stop_reason == job_pb2.STOP_REASON_MAX_ATTEMPTS_EXCEEDED


async def test_admin_calls(srv: app.RunningServer, stubs: rpc.Stubs) -> None:
    admin = _admin(stubs)
    job = await flows.create(stubs)

    def set_status(status: int, force: bool = False) -> Call:
        def call(dry: bool) -> Awaitable[Any]:
            request = admin_service_pb2.SetJobStatusRequest(
                job_id=job.id, status=status, reason="ops", force=force, validate_only=dry
            )
            return admin.SetJobStatus(request, metadata=stubs.metadata)

        return call

    refused = await dry_then_real(srv, set_status(S.JOB_STATUS_COMPLETED))
    assert isinstance(refused, rpc.RpcFailure) and refused.reason == "INVALID_TRANSITION"
    done = await dry_then_real(srv, set_status(S.JOB_STATUS_COMPLETED, force=True))
    assert isinstance(done, job_pb2.Job) and done.status == S.JOB_STATUS_COMPLETED

    def retry(dry: bool) -> Awaitable[Any]:
        request = admin_service_pb2.RetryJobRequest(job_id=job.id, request_id="r1", validate_only=dry)
        return admin.RetryJob(request, metadata=stubs.metadata)

    rerun = await dry_then_real(srv, retry, *NEW_JOB_FIELDS)
    assert isinstance(rerun, job_pb2.Job) and rerun.retry_of == job.id
    assert await dry_then_real(srv, retry) == rerun  # the request_id is taken: the first new job
    reopened = await dry_then_real(srv, set_status(S.JOB_STATUS_QUEUED, force=True))
    assert isinstance(reopened, job_pb2.Job) and reopened.status == S.JOB_STATUS_QUEUED
    not_ended = await dry_then_real(srv, retry)
    # The request_id was used by the rerun's creation, but the job is no longer terminal: refused first.
    assert isinstance(not_ended, rpc.RpcFailure) and not_ended.reason == "JOB_NOT_TERMINAL"
