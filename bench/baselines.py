"""Baselines measured in the same run, on the same machine: what the layers below jobwarden cost.

Ratios against these say how much jobwarden adds on top of gRPC and of the database; absolute numbers
alone would mostly describe the machine.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

import asyncpg
from grpc_health.v1 import health_pb2

from bench.measure import CpuMeter, Measurement, run_ops
from bench.rig import CALL_TIMEOUT_S, Rig
from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2

# A row shaped like a new job (the columns CreateJob fills, an index like the claim index, the
# idempotency index) plus its first event: the same two-row transaction CreateJob commits.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_jobs (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, job_type TEXT NOT NULL, lifecycle TEXT NOT NULL,
    status TEXT NOT NULL, progress_percent REAL NOT NULL, parameters TEXT NOT NULL,
    labels TEXT NOT NULL, priority INTEGER NOT NULL, attempt INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL, create_us BIGINT NOT NULL, update_us BIGINT NOT NULL,
    request_id TEXT NOT NULL, last_sequence BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS raw_jobs_claimable
    ON raw_jobs (owner, job_type, priority DESC, create_us, id) WHERE status = 'QUEUED';
CREATE UNIQUE INDEX IF NOT EXISTS raw_jobs_request_id ON raw_jobs (owner, request_id);
CREATE TABLE IF NOT EXISTS raw_events (
    job_id TEXT NOT NULL REFERENCES raw_jobs (id), sequence BIGINT NOT NULL, owner TEXT NOT NULL,
    create_us BIGINT NOT NULL, actor TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (job_id, sequence)
);
"""
_SQLITE_JOB = (
    "INSERT INTO raw_jobs VALUES "
    "(?, 'default', 'bench.raw', 'standard', 'QUEUED', 0, ?, '{}', 0, 0, 3, ?, ?, ?, 1)"
)
_SQLITE_EVENT = "INSERT INTO raw_events VALUES (?, 1, 'default', ?, 'client:default', 'created', '{}')"
_PG_JOB = (
    "INSERT INTO raw_jobs VALUES "
    "($1, 'default', 'bench.raw', 'standard', 'QUEUED', 0, $2, '{}', 0, 0, 3, $3, $3, $4, 1)"
)
_PG_EVENT = "INSERT INTO raw_events VALUES ($1, 1, 'default', $2, 'client:default', 'created', '{}')"
_PARAMETERS = json.dumps({"width": 640, "format": "png"})


def _now_us() -> int:
    return time.time_ns() // 1000


async def health(rig: Rig, concurrency: int) -> Measurement:
    """An empty unary round trip (grpc.health.v1.Health/Check) against the same server."""
    request = health_pb2.HealthCheckRequest()

    async def op(i: int) -> int:
        await rig.health[i % len(rig.health)].Check(request, timeout=CALL_TIMEOUT_S)
        return 1

    calls = rig.sizes.health if concurrency == 1 else rig.sizes.health * 2
    m = await run_ops(
        f"health.c{concurrency}",
        f"health check round trip (c{concurrency})",
        op,
        calls=calls,
        warmup=rig.sizes.warmup,
        concurrency=concurrency,
        server_cpu=rig.server.cpu_seconds,
    )
    m.baseline = True
    return m


def raw_sqlite(workdir: Path, commits: int, warmup: int) -> Measurement:
    """INSERT job + event and COMMIT with the stdlib sqlite3, WAL and synchronous=NORMAL like the server,
    in a file beside the server's database (same disk)."""
    conn = sqlite3.connect(workdir / "raw-baseline.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(_SCHEMA)

        def commit() -> None:
            job_id, now_us = str(uuid.uuid4()), _now_us()
            conn.execute("BEGIN IMMEDIATE")  # as the server's writer does
            conn.execute(_SQLITE_JOB, (job_id, _PARAMETERS, now_us, now_us, job_id))
            conn.execute(_SQLITE_EVENT, (job_id, now_us))
            conn.execute("COMMIT")

        for _ in range(warmup):
            commit()
        latencies = []
        with CpuMeter(None) as cpu:
            start = time.perf_counter()
            for _ in range(commits):
                t = time.perf_counter()
                commit()
                latencies.append(time.perf_counter() - t)
            seconds = time.perf_counter() - start
    finally:
        conn.close()
    return Measurement(
        key="raw.sqlite",
        name="raw sqlite3 job+event INSERT, COMMIT",
        units=commits,
        seconds=seconds,
        latencies=latencies,
        client_cpu_s=cpu.client_s,
        baseline=True,
        note="stdlib sqlite3 in the bench process; WAL, synchronous=NORMAL, BEGIN IMMEDIATE",
    )


async def raw_postgres(url: str, commits: int, warmup: int) -> Measurement:
    """The same transaction with plain asyncpg into the throw-away database the server uses."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(_SCHEMA)

        async def commit() -> None:
            job_id, now_us = str(uuid.uuid4()), _now_us()
            async with conn.transaction():
                await conn.execute(_PG_JOB, job_id, _PARAMETERS, now_us, job_id)
                await conn.execute(_PG_EVENT, job_id, now_us)

        for _ in range(warmup):
            await commit()
        latencies = []
        with CpuMeter(None) as cpu:
            start = time.perf_counter()
            for _ in range(commits):
                t = time.perf_counter()
                await commit()
                latencies.append(time.perf_counter() - t)
            seconds = time.perf_counter() - start
    finally:
        await conn.close()
    return Measurement(
        key="raw.postgres",
        name="raw asyncpg job+event INSERT, COMMIT",
        units=commits,
        seconds=seconds,
        latencies=latencies,
        client_cpu_s=cpu.client_s,
        baseline=True,
        note="plain asyncpg from the bench process into the server's throw-away database",
    )


async def _job_with_events(rig: Rig, job_type: str, progress_reports: int) -> str:
    """A finished job whose history holds 3 + progress_reports events."""
    await rig.create(job_type)
    claims = await rig.worker_stub(0).ClaimJobs(
        worker_service_pb2.ClaimJobsRequest(worker_id="bench-stream", job_types=[job_type], max_jobs=1),
        timeout=CALL_TIMEOUT_S,
    )
    (claim,) = claims.claims
    for i in range(progress_reports):
        await rig.worker_stub(0).ReportProgress(
            worker_service_pb2.ReportProgressRequest(
                job_id=claim.job.id,
                lease_token=claim.lease_token,
                progress=job_pb2.Progress(percent=i % 100, message=f"step {i}"),
            ),
            timeout=CALL_TIMEOUT_S,
        )
    await rig.worker_stub(0).CompleteJob(
        worker_service_pb2.CompleteJobRequest(job_id=claim.job.id, lease_token=claim.lease_token),
        timeout=CALL_TIMEOUT_S,
    )
    return claim.job.id


async def _watch_to_end(rig: Rig, job_id: str) -> int:
    messages = 0
    call = rig.job_stub(0).WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id), timeout=CALL_TIMEOUT_S)
    async for _ in call:
        messages += 1
    return messages


async def _timed_watch(rig: Rig, job_id: str) -> tuple[int, float]:
    start = time.perf_counter()
    messages = await _watch_to_end(rig, job_id)
    return messages, time.perf_counter() - start


async def stream_message(rig: Rig) -> Measurement:
    """Per-message cost of a server stream: WatchJob replaying a finished job's stored history.

    The difference between watching a job with many events and one with three isolates the cost of a
    message from the call's fixed cost (the stream set-up, the snapshot read). It still includes
    reading the events from the table, 500 per query, which is small per message.
    """
    big = await _job_with_events(rig, "bench.stream", rig.sizes.stream_events)
    small = await _job_with_events(rig, "bench.stream", 0)
    await _watch_to_end(rig, big)  # warm-up
    await _watch_to_end(rig, small)
    repeats = rig.sizes.stream_repeats
    # CPU is read in clock ticks (10 ms), too coarse for one watch: one span of all the big watches,
    # one of all the small ones, and the difference divided once.
    with CpuMeter(rig.server.cpu_seconds) as cpu_big:
        big_runs = [await _timed_watch(rig, big) for _ in range(repeats)]
    with CpuMeter(rig.server.cpu_seconds) as cpu_small:
        small_runs = [await _timed_watch(rig, small) for _ in range(repeats)]
    extra = big_runs[0][0] - small_runs[0][0]
    per_message = [(tb - ts) / extra for (_, tb), (_, ts) in zip(big_runs, small_runs, strict=True)]
    assert cpu_big.server_s is not None and cpu_small.server_s is not None
    return Measurement(
        key="stream.message",
        name="streamed message (WatchJob replay)",
        units=extra * repeats,
        seconds=sum(per_message) * extra,
        latencies=per_message,  # one per-message estimate per repeat; p50 is their median
        server_cpu_s=cpu_big.server_s - cpu_small.server_s,
        client_cpu_s=cpu_big.client_s - cpu_small.client_s,
        baseline=True,
        note=f"(watch of {rig.sizes.stream_events + 3} events - watch of 3) / difference; "
        f"{rig.sizes.stream_repeats} repeats; p50/p99 are over the repeats' per-message figures",
    )
