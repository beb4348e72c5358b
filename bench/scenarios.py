"""jobwarden's own operations over raw generated stubs, each timed for a fixed number of calls."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc.aio

from bench.measure import Measurement, run_ops
from bench.rig import CALL_TIMEOUT_S, CONCURRENCY, Rig
from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2


async def backlog(rig: Rig, job_type: str, count: int) -> None:
    """Queue `count` jobs of `job_type` (not measured), CONCURRENCY at a time."""
    pending = iter(range(count))

    async def lane() -> None:
        for i in pending:
            await rig.create(job_type, i)

    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))


async def claim(rig: Rig, job_type: str, max_jobs: int, i: int = 0) -> list[worker_service_pb2.JobClaim]:
    """ClaimJobs without waiting."""
    reply = await rig.worker_stub(i).ClaimJobs(
        worker_service_pb2.ClaimJobsRequest(
            worker_id=f"bench-{i % 64}", job_types=[job_type], max_jobs=max_jobs
        ),
        timeout=CALL_TIMEOUT_S,
    )
    return list(reply.claims)


async def complete(rig: Rig, c: worker_service_pb2.JobClaim, i: int = 0) -> None:
    """CompleteJob under the claim's lease."""
    await rig.worker_stub(i).CompleteJob(
        worker_service_pb2.CompleteJobRequest(job_id=c.job.id, lease_token=c.lease_token),
        timeout=CALL_TIMEOUT_S,
    )


async def create_jobs(rig: Rig, concurrency: int) -> Measurement:
    """CreateJob, one job per call."""
    job_type = f"bench.create.c{concurrency}"

    async def op(i: int) -> int:
        await rig.create(job_type, i)
        return 1

    return await run_ops(
        f"create.c{concurrency}",
        f"CreateJob (c{concurrency})",
        op,
        calls=rig.sizes.create,
        warmup=rig.sizes.warmup,
        concurrency=concurrency,
        server_cpu=rig.server.cpu_seconds,
    )


async def create_batches(rig: Rig, per_call: int, concurrency: int) -> Measurement:
    """CreateJobs, `per_call` jobs per call (each with its own request_id, as the SDK sends). Counts jobs."""
    job_type = f"bench.create-many.x{per_call}"

    async def op(i: int) -> int:
        items = [
            job_service_pb2.CreateJobRequest(job_type=job_type, request_id=str(uuid.uuid4()))
            for _ in range(per_call)
        ]
        reply = await rig.job_stub(i).CreateJobs(
            job_service_pb2.CreateJobsRequest(requests=items), timeout=CALL_TIMEOUT_S
        )
        assert all(r.HasField("job") for r in reply.results), reply
        return per_call

    m = await run_ops(
        f"create-many.x{per_call}.c{concurrency}",
        f"CreateJobs x{per_call} per call (c{concurrency}), per job",
        op,
        calls=max(1, rig.sizes.create // 10),
        warmup=max(1, rig.sizes.warmup // 10),
        concurrency=concurrency,
        server_cpu=rig.server.cpu_seconds,
    )
    m.one_call = False
    m.note = "p50/p99 per call; ratios per job"
    return m


async def claim_complete(rig: Rig, max_jobs: int) -> Measurement:
    """One worker loop: ClaimJobs(max_jobs), then CompleteJob for each claim (concurrently, as a worker
    running them in parallel would). Counts jobs; latency is per claim+complete round."""
    job_type = f"bench.cycle.m{max_jobs}"
    rounds = rig.sizes.cycle_jobs // max_jobs
    warmup = max(1, rig.sizes.warmup // max_jobs)
    await backlog(rig, job_type, (rounds + warmup) * max_jobs)

    async def op(i: int) -> int:
        claims = await claim(rig, job_type, max_jobs, i)
        await asyncio.gather(*(complete(rig, c, i) for c in claims))
        return len(claims)

    m = await run_ops(
        f"cycle.m{max_jobs}",
        f"ClaimJobs(max {max_jobs})+CompleteJob, per job",
        op,
        calls=rounds,
        warmup=warmup,
        server_cpu=rig.server.cpu_seconds,
    )
    m.one_call = False
    m.note = "p50/p99 per claim+complete round; ratios per job"
    return m


async def report_progress(rig: Rig, concurrency: int, heartbeat: bool) -> Measurement:
    """ReportProgress on running jobs (one per lane). A new value records an event; a repeat of the last
    one (a heartbeat) only renews the lease."""
    job_type = f"bench.progress.c{concurrency}.{'hb' if heartbeat else 'new'}"
    await backlog(rig, job_type, concurrency)
    claims = await claim(rig, job_type, concurrency)
    assert len(claims) == concurrency, claims

    def progress(i: int) -> job_pb2.Progress:
        if heartbeat:
            return job_pb2.Progress(percent=50, message="working")
        return job_pb2.Progress(percent=i % 100, message=f"step {i}")

    async def op(i: int) -> int:
        c = claims[i % concurrency]
        await rig.worker_stub(i).ReportProgress(
            worker_service_pb2.ReportProgressRequest(
                job_id=c.job.id, lease_token=c.lease_token, progress=progress(i)
            ),
            timeout=CALL_TIMEOUT_S,
        )
        return 1

    kind = "heartbeat, no event" if heartbeat else "new value, +event"
    return await run_ops(
        f"progress.c{concurrency}.{'hb' if heartbeat else 'new'}",
        f"ReportProgress {kind} (c{concurrency})",
        op,
        calls=rig.sizes.progress,
        warmup=rig.sizes.warmup,
        concurrency=concurrency,
        server_cpu=rig.server.cpu_seconds,
    )


async def _caught_up(
    call: grpc.aio.UnaryStreamCall[job_service_pb2.WatchJobRequest, job_service_pb2.WatchJobResponse],
) -> None:
    """Read the snapshot and the stored history, so the next message can only be a live event."""
    snapshot = await call.read()
    assert isinstance(snapshot, job_service_pb2.WatchJobResponse) and snapshot.HasField("job")
    seen = 0
    while seen < snapshot.job.last_sequence:
        item = await call.read()
        assert isinstance(item, job_service_pb2.WatchJobResponse), item
        seen = item.event.sequence


async def _complete_at(rig: Rig, c: worker_service_pb2.JobClaim, i: int) -> float:
    """CompleteJob; returns when its reply arrived, whether that was before or after the event."""
    await complete(rig, c, i)
    return time.perf_counter()


async def watch_latency(rig: Rig) -> Measurement:
    """From calling CompleteJob to its terminal event arriving on a WatchJob opened earlier (live path:
    commit, in-process bus, stream write). Jobs are created, claimed and watched unmeasured."""
    job_type = "bench.watch"
    latencies: list[float] = []
    replies: list[float] = []
    total = rig.sizes.watch + rig.sizes.warmup // 4
    for i in range(total):
        job = await rig.create(job_type, i)
        (c,) = await claim(rig, job_type, 1, i)
        assert c.job.id == job.id
        call = rig.job_stub(i + 1).WatchJob(
            job_service_pb2.WatchJobRequest(job_id=job.id), timeout=CALL_TIMEOUT_S
        )
        await _caught_up(call)
        start = time.perf_counter()
        completing = asyncio.ensure_future(_complete_at(rig, c, i))
        terminal = await call.read()
        elapsed = time.perf_counter() - start
        replied = await completing - start  # set beside the event's arrival: what the fan-out adds
        assert isinstance(terminal, job_service_pb2.WatchJobResponse)
        assert terminal.event.HasField("transition"), terminal
        while await call.read() is not grpc.aio.EOF:  # the server ends the stream after the terminal event
            pass
        if i >= total - rig.sizes.watch:  # the first ones were the warm-up
            latencies.append(elapsed)
            replies.append(replied)
    replies.sort()
    return Measurement(
        key="watch.e2e",
        name="CompleteJob call -> terminal event on WatchJob",
        units=len(latencies),
        seconds=sum(latencies),
        latencies=latencies,
        note=f"sequential; ops/s is 1/mean latency, not a throughput; the CompleteJob reply "
        f"arrived after p50 {replies[len(replies) // 2] * 1e3:.3f} ms",
    )
