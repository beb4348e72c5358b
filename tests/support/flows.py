"""Small job flows over raw stubs, shared by integration tests."""

from __future__ import annotations

import asyncio
from typing import Any

from google.protobuf import duration_pb2, struct_pb2

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2
from support.rpc import Stubs


def struct(**values: Any) -> struct_pb2.Struct:
    """A Struct from keyword arguments."""
    out = struct_pb2.Struct()
    out.update(values)
    return out


async def create(s: Stubs, job_type: str = "demo", **fields: Any) -> job_pb2.Job:
    """Create a job and return it."""
    reply = await s.jobs.CreateJob(
        job_service_pb2.CreateJobRequest(job_type=job_type, **fields), metadata=s.metadata
    )
    return reply.job


async def claim(
    s: Stubs,
    job_types: tuple[str, ...] = ("demo",),
    max_jobs: int = 1,
    worker_id: str = "w1",
    wait_s: int = 0,
) -> list[worker_service_pb2.JobClaim]:
    """Claim jobs and return the claims."""
    request = worker_service_pb2.ClaimJobsRequest(worker_id=worker_id, job_types=job_types, max_jobs=max_jobs)
    if wait_s:
        request.wait.CopyFrom(duration_pb2.Duration(seconds=wait_s))
    reply = await s.workers.ClaimJobs(request, metadata=s.metadata)
    return list(reply.claims)


async def claim_one(s: Stubs, job_type: str = "demo") -> worker_service_pb2.JobClaim:
    """Claim exactly one job."""
    claims = await claim(s, (job_type,))
    assert len(claims) == 1, claims
    return claims[0]


async def progress(s: Stubs, c: worker_service_pb2.JobClaim, percent: float, message: str = "") -> Any:
    """Report progress under the claim's lease."""
    return await s.workers.ReportProgress(
        worker_service_pb2.ReportProgressRequest(
            job_id=c.job.id,
            lease_token=c.lease_token,
            progress=job_pb2.Progress(percent=percent, message=message),
        ),
        metadata=s.metadata,
    )


async def add_asset(
    s: Stubs, c: worker_service_pb2.JobClaim, uri: str = "s3://bucket/out.png"
) -> job_pb2.Asset:
    """Attach an asset under the claim's lease."""
    reply = await s.workers.AddAsset(
        worker_service_pb2.AddAssetRequest(
            job_id=c.job.id,
            lease_token=c.lease_token,
            asset=job_pb2.Asset(asset_type="image", uri=uri, size_bytes=10, content_type="image/png"),
        ),
        metadata=s.metadata,
    )
    return reply.asset


async def complete(
    s: Stubs, c: worker_service_pb2.JobClaim, partial: bool = False, **result: Any
) -> job_pb2.Job:
    """Complete (or partially complete) the claimed job."""
    request = worker_service_pb2.CompleteJobRequest(
        job_id=c.job.id, lease_token=c.lease_token, result=struct(**result)
    )
    if partial:
        request.partial = True
        request.error.message = "some outputs failed"
    reply = await s.workers.CompleteJob(request, metadata=s.metadata)
    return reply.job


async def fail(
    s: Stubs, c: worker_service_pb2.JobClaim, message: str = "boom", retryable: bool = False
) -> job_pb2.Job:
    """Fail the claimed job."""
    reply = await s.workers.FailJob(
        worker_service_pb2.FailJobRequest(
            job_id=c.job.id,
            lease_token=c.lease_token,
            error=job_pb2.JobError(message=message, retryable=retryable),
        ),
        metadata=s.metadata,
    )
    return reply.job


async def get(s: Stubs, job_id: str) -> job_pb2.Job:
    """The job as it is now."""
    return (await s.jobs.GetJob(job_service_pb2.GetJobRequest(job_id=job_id), metadata=s.metadata)).job


async def events(s: Stubs, job_id: str) -> list[job_pb2.JobEvent]:
    """The job's whole recorded history."""
    out: list[job_pb2.JobEvent] = []
    token = ""
    while True:
        reply = await s.jobs.ListJobEvents(
            job_service_pb2.ListJobEventsRequest(job_id=job_id, page_token=token), metadata=s.metadata
        )
        out.extend(reply.events)
        token = reply.next_page_token
        if not token:
            return out


async def watch(s: Stubs, job_id: str, after: int = 0) -> tuple[job_pb2.Job, list[job_pb2.JobEvent]]:
    """Watch until the server ends the stream; return the snapshot and the events."""
    call = s.jobs.WatchJob(
        job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=after), metadata=s.metadata
    )
    snapshot = None
    seen: list[job_pb2.JobEvent] = []
    async for item in call:
        if item.HasField("job"):
            assert snapshot is None, "the snapshot comes once, first"
            snapshot = item.job
        else:
            assert snapshot is not None, "an event came before the snapshot"
            seen.append(item.event)
    assert snapshot is not None
    return snapshot, seen


def start_watch(
    s: Stubs, job_id: str, after: int = 0
) -> asyncio.Task[tuple[job_pb2.Job, list[job_pb2.JobEvent]]]:
    """Watch in the background."""
    return asyncio.create_task(watch(s, job_id, after))


def kinds(events: list[job_pb2.JobEvent]) -> list[str]:
    """Each event as a short string: the oneof name, plus from->to for transitions."""
    out = []
    for e in events:
        kind = e.WhichOneof("kind")
        if kind == "transition":
            t = e.transition
            kind = f"{job_pb2.JobStatus.Name(t.from_status)[11:]}->{job_pb2.JobStatus.Name(t.to_status)[11:]}"
        out.append(str(kind))
    return out


async def until_transition(s: Stubs, job_id: str, to: str, after: int = 0) -> job_pb2.JobEvent:
    """Follow the job's stream until a transition to `to` (e.g. "QUEUED") is recorded; return it.

    Waits on the server's own event stream, not on a clock (the test's timeout bounds it)."""
    call = s.jobs.WatchJob(
        job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=after), metadata=s.metadata
    )
    try:
        async for item in call:
            event = item.event
            if (
                event.HasField("transition")
                and job_pb2.JobStatus.Name(event.transition.to_status) == f"JOB_STATUS_{to}"
            ):
                return event
    finally:
        call.cancel()
    raise AssertionError(f"job {job_id} ended without a transition to {to}")


async def until_event(s: Stubs, job_id: str, kind: str, after: int = 0) -> job_pb2.JobEvent:
    """Follow the job's stream until an event of `kind` (a JobEvent oneof name, e.g. "stalled") is
    recorded; return it. Waits on the server's own event stream (the test's timeout bounds it)."""
    call = s.jobs.WatchJob(
        job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=after), metadata=s.metadata
    )
    try:
        async for item in call:
            if item.HasField("event") and item.event.WhichOneof("kind") == kind:
                return item.event
    finally:
        call.cancel()
    raise AssertionError(f"job {job_id} ended without a {kind} event")
