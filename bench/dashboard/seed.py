"""Fill a fresh server with many jobs, quickly, through the gRPC API: CreateJobs batches of 1,000, then
a claim loop that finishes a share of them (completed, some failed).

The mix, by the job's index i (so any N gives the same proportions):
- job type: 40% email.send, 30% report.render, 20% image.resize, 10% video.transcode;
- parameters: a small object ({"item": i, "note": ...});
- labels: tenant t00..t49 (i mod 50: 2% each) and region eu/us/ap;
- 10% created held (CREATED); the rest queued, of which 10% of all jobs (FINISHED_SHARE) is claimed
  (ClaimJobs of 100) and ended: 4 of 5 CompleteJob, 1 of 5 FailJob, not retryable (FAILED).
Claims take the oldest queued jobs first, so the finished jobs are the oldest of the store.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from google.protobuf import struct_pb2

from bench.rig import CALL_TIMEOUT_S, Rig
from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2

BATCH = 1000
CREATE_LANES = 4
CLAIM_LANES = 4
CLAIM_MAX = 100
FINISHED_SHARE = 0.10
FAIL_EVERY = 5
TYPES = ("email.send",) * 4 + ("report.render",) * 3 + ("image.resize",) * 2 + ("video.transcode",)
TENANTS = 50
REGIONS = ("eu", "us", "ap")


@dataclass(slots=True)
class Seeded:
    """What the store holds after seeding, by status, and a few ids to look at."""

    statuses: dict[str, int] = field(default_factory=dict)
    finished_job_id: str = ""
    """A job that went through claim and completion (it has a timeline of several events)."""

    @property
    def total(self) -> int:
        return sum(self.statuses.values())


def held(i: int) -> bool:
    """Whether job i is created held (10% of them, spread over the types and labels)."""
    return (i // 10) % 10 == 0


def _request(i: int) -> job_service_pb2.CreateJobRequest:
    parameters = struct_pb2.Struct()
    parameters.update({"item": i, "note": f"bench dashboard job {i}"})
    return job_service_pb2.CreateJobRequest(
        job_type=TYPES[i % len(TYPES)],
        parameters=parameters,
        labels={"tenant": f"t{i % TENANTS:02d}", "region": REGIONS[i % len(REGIONS)]},
        hold=held(i),
        request_id=str(uuid.uuid4()),
    )


async def _create(rig: Rig, count: int) -> int:
    """CreateJobs batches of BATCH, CREATE_LANES at a time; returns how many were created."""
    starts = iter(range(0, count, BATCH))
    created = 0

    async def lane(n: int) -> None:
        nonlocal created
        for start in starts:
            items = [_request(i) for i in range(start, min(start + BATCH, count))]
            reply = await rig.job_stub(n).CreateJobs(
                job_service_pb2.CreateJobsRequest(requests=items), timeout=CALL_TIMEOUT_S
            )
            created += sum(1 for r in reply.results if r.HasField("job"))

    await asyncio.gather(*(lane(n) for n in range(CREATE_LANES)))
    return created


async def _finish(rig: Rig, count: int) -> tuple[int, int, str]:
    """Claim `count` queued jobs, CLAIM_MAX at a time, and end each; returns (completed, failed, an id)."""
    left = count
    completed = failed = 0
    sample = ""

    async def end(n: int, c: worker_service_pb2.JobClaim, k: int) -> None:
        nonlocal completed, failed
        stub = rig.worker_stub(n)
        if k % FAIL_EVERY == FAIL_EVERY - 1:
            error = job_pb2.JobError(message="bench: upstream refused", reason="UPSTREAM", retryable=False)
            await stub.FailJob(
                worker_service_pb2.FailJobRequest(job_id=c.job.id, lease_token=c.lease_token, error=error),
                timeout=CALL_TIMEOUT_S,
            )
            failed += 1
        else:
            await stub.CompleteJob(
                worker_service_pb2.CompleteJobRequest(job_id=c.job.id, lease_token=c.lease_token),
                timeout=CALL_TIMEOUT_S,
            )
            completed += 1

    async def lane(n: int) -> None:
        nonlocal left, sample
        while left > 0:
            want = min(CLAIM_MAX, left)
            left -= want
            reply = await rig.worker_stub(n).ClaimJobs(
                worker_service_pb2.ClaimJobsRequest(
                    worker_id=f"bench-dashboard-{n}", job_types=sorted(set(TYPES)), max_jobs=want
                ),
                timeout=CALL_TIMEOUT_S,
            )
            if len(reply.claims) < want:
                raise RuntimeError(f"claimed {len(reply.claims)} of {want} queued jobs")
            sample = sample or reply.claims[0].job.id
            await asyncio.gather(*(end(n, c, k) for k, c in enumerate(reply.claims)))

    await asyncio.gather(*(lane(n) for n in range(CLAIM_LANES)))
    return completed, failed, sample


async def seed(rig: Rig, count: int) -> Seeded:
    """Create `count` jobs in the mix above and finish FINISHED_SHARE of them."""
    created = await _create(rig, count)
    if created != count:
        raise RuntimeError(f"created {created} of {count} jobs")
    completed, failed, sample = await _finish(rig, round(count * FINISHED_SHARE))
    holding = sum(1 for i in range(count) if held(i))
    statuses = {
        "CREATED": holding,
        "QUEUED": count - holding - completed - failed,
        "COMPLETED": completed,
        "FAILED": failed,
    }
    return Seeded(statuses=statuses, finished_job_id=sample)
