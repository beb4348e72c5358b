"""How long a progress report takes to reach a watcher of its job, at a steady rate of jobs.

The issue's goal: p99 <= 10 ms at 200 jobs/s. Each job is created held (CREATED, so no worker can
take it yet), then its WatchJob stream is opened and the snapshot read (from then on the watch is
live: the server subscribes before it reads the job), and only then is the job released. One of the
worker processes (the SDK Worker over a Work session, bench/watchers/worker.py) claims it, reports progress
once with the send time in the report's message, and completes it. The figure is the time from just
before the handler's `ctx.progress(...)` to the watcher's read of that progress event, both on
CLOCK_MONOTONIC, which every process on the machine shares. Beside it: the time from the send to the
worker's acknowledgement, and how often the watcher had the event before the worker had its ack.

Jobs are started open loop: a CreateJobs of the tick's share every TICK_S, whatever the earlier jobs
are doing, so a server that cannot keep up shows as latency and a lower completion rate rather than
as a slower schedule. The first `warmup_s` seconds of jobs are left out of the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from bench.report import say
from bench.rig import CALL_TIMEOUT_S, Rig
from bench.watchers.figures import PYTHON, ROOT, child_env, cpu_seconds, percentiles
from bench.watchers.worker import sent_ns
from jobwarden.v1 import job_pb2, job_service_pb2

JOB_TYPE = "bench.watchers"
TICK_S = 0.05
WORKERS = 2
WORKER_CONCURRENCY = 16
"""Jobs each worker process runs at once (2 x 16, as in the peers bench): well above rate x time per
job, so the workers are never the queue."""
FOLLOW_TIMEOUT_S = 120.0
"""A job not finished this long after its watch opened counts as an error (generous: on a slow machine
the backlog of an overloaded run takes a while to drain, and that is a figure, not a failure)."""
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


@dataclasses.dataclass(slots=True)
class _Job:
    """What one job's watcher saw."""

    measured: bool
    scheduled: float  # loop time its tick was due
    job_id: str = ""
    received_ns: int | None = None  # the progress event read by the watcher
    sent_ns: int | None = None  # from the event's message
    finished: float | None = None  # loop time the terminal event was read
    outcome: str = ""  # the status the last transition read moved the job to
    error: str | None = None


async def run(rig: Rig, workdir: Path, *, rate: float, seconds: float, warmup_s: float) -> dict[str, Any]:
    """Offer `rate` jobs/s for `warmup_s` + `seconds`, each watched; return the figures of the last `seconds`."""
    acks = [workdir / f"watchers-worker-{n}-acks.txt" for n in range(WORKERS)]
    async with contextlib.AsyncExitStack() as stack:
        pids = [
            await stack.enter_async_context(_worker(rig.server.address, path, path.with_suffix(".log")))
            for path in acks
        ]
        for _ in pids:
            await _one_through(rig)  # a session is open and taking jobs (which one takes it, who knows)
        jobs, window = await _offer(rig, pids, rate=rate, seconds=seconds, warmup_s=warmup_s)
    return _figures(jobs, _read_acks(acks), rate=rate, window=window)


@contextlib.asynccontextmanager
async def _worker(address: str, acks: Path, log: Path) -> AsyncIterator[int]:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            PYTHON,
            "-m",
            "bench.watchers.worker",
            address,
            JOB_TYPE,
            str(WORKER_CONCURRENCY),
            str(acks),
            cwd=ROOT,
            env=child_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    try:
        yield proc.pid
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)  # the SDK worker finishes what it runs, then exits
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _one_through(rig: Rig) -> None:
    job = _Job(measured=False, scheduled=0.0)
    reply = await rig.job_stub(0).CreateJobs(_held(1), timeout=CALL_TIMEOUT_S)
    async with asyncio.timeout(READY_TIMEOUT_S):
        await _follow(rig, 0, reply.results[0].job.id, job)
    if job.error is not None or job.received_ns is None:
        raise RuntimeError(f"a first job did not go through the worker: {job.error or 'no progress event'}")


def _held(count: int) -> job_service_pb2.CreateJobsRequest:
    return job_service_pb2.CreateJobsRequest(
        requests=[
            job_service_pb2.CreateJobRequest(job_type=JOB_TYPE, hold=True, request_id=str(uuid.uuid4()))
            for _ in range(count)
        ]
    )


async def _offer(
    rig: Rig, worker_pids: list[int], *, rate: float, seconds: float, warmup_s: float
) -> tuple[list[_Job], dict[str, float]]:
    loop = asyncio.get_running_loop()
    ticks = round((warmup_s + seconds) / TICK_S)
    first_measured = round(warmup_s / TICK_S)
    jobs: list[_Job] = []
    followers: set[asyncio.Task[None]] = set()
    created: list[float] = []  # loop time each tick's CreateJobs answered (measured ticks)

    async def tick(k: int, due: float) -> None:
        # Jobs per tick so that the total follows the rate exactly (10 per tick at 200/s).
        count = round(rate * TICK_S * (k + 1)) - round(rate * TICK_S * k)
        if not count:
            return
        mine = [_Job(measured=k >= first_measured, scheduled=due) for _ in range(count)]
        jobs.extend(mine)
        try:
            reply = await rig.job_stub(k).CreateJobs(_held(count), timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as err:
            for job in mine:
                job.error = f"CreateJobs: {err.code().name}"
            return
        if k >= first_measured:
            created.append(loop.time())
        for n, (job, result) in enumerate(zip(mine, reply.results, strict=True)):
            task = asyncio.create_task(_follow(rig, k + n, result.job.id, job))
            followers.add(task)
            task.add_done_callback(followers.discard)

    def cpu() -> tuple[float, float, float]:
        # This process is the load generator: the watchers, creating and releasing the jobs.
        workers = sum(cpu_seconds(pid) for pid in worker_pids)
        return rig.server.cpu_seconds(), workers, time.process_time()

    start = loop.time() + TICK_S
    cpu_start = cpu_end = (0.0, 0.0, 0.0)
    for k in range(ticks):
        due = start + k * TICK_S
        await asyncio.sleep(max(0.0, due - loop.time()))
        if k == first_measured:
            cpu_start = cpu()
        task = asyncio.create_task(tick(k, due))
        followers.add(task)
        task.add_done_callback(followers.discard)
    offered_until = start + ticks * TICK_S
    await asyncio.sleep(max(0.0, offered_until - loop.time()))
    cpu_end = cpu()  # over the measured offer only, not the drain after it
    say(f"offered {len(jobs)} jobs; waiting for the last ones to finish")
    deadline = loop.time() + FOLLOW_TIMEOUT_S + CALL_TIMEOUT_S
    while followers and loop.time() < deadline:
        # Again and again: a tick that ends meanwhile adds its jobs' followers to the set.
        await asyncio.wait(set(followers), timeout=deadline - loop.time())
    for task in list(followers):
        task.cancel()  # past the deadline: their jobs count as unfinished
    measured_start = start + first_measured * TICK_S
    window = {
        "offered_s": offered_until - measured_start,
        "server_cpu_s": cpu_end[0] - cpu_start[0],
        "worker_cpu_s": cpu_end[1] - cpu_start[1],
        "generator_cpu_s": cpu_end[2] - cpu_start[2],
        "created_s": (max(created) - measured_start) if created else 0.0,
        "measured_start": measured_start,
    }
    return jobs, window


async def _follow(rig: Rig, i: int, job_id: str, job: _Job) -> None:
    """Watch the job (snapshot first), release it, read its events until the stream ends."""
    job.job_id = job_id
    loop = asyncio.get_running_loop()
    call = rig.job_stub(i).WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id), timeout=FOLLOW_TIMEOUT_S)
    try:
        snapshot = await call.read()
        if snapshot is grpc.aio.EOF:
            raise RuntimeError("the watch ended before its snapshot")
        await rig.job_stub(i + 1).ReleaseJob(
            job_service_pb2.ReleaseJobRequest(job_id=job_id, request_id=str(uuid.uuid4())),
            timeout=CALL_TIMEOUT_S,
        )
        while (item := await call.read()) is not grpc.aio.EOF:
            assert isinstance(item, job_service_pb2.WatchJobResponse)
            if item.event.HasField("progress"):
                job.received_ns = time.monotonic_ns()
                job.sent_ns = sent_ns(item.event.progress.message)
            elif item.event.HasField("transition"):
                job.outcome = job_pb2.JobStatus.Name(item.event.transition.to_status)
        job.finished = loop.time()
    except grpc.RpcError as err:
        job.error = f"{err.code().name}: {err.details()}"
    finally:
        call.cancel()


def _read_acks(paths: list[Path]) -> dict[str, tuple[int, int]]:
    acks: dict[str, tuple[int, int]] = {}
    for path in paths:
        if path.exists():
            for line in path.read_text().splitlines():
                job_id, sent, acked = line.split()
                acks[job_id] = (int(sent), int(acked))
    return acks


def _figures(
    jobs: list[_Job], acks: dict[str, tuple[int, int]], *, rate: float, window: dict[str, float]
) -> dict[str, Any]:
    measured = [j for j in jobs if j.measured]
    seen = [j for j in measured if j.received_ns is not None and j.sent_ns is not None]
    to_watcher = [(j.received_ns - j.sent_ns) / 1e6 for j in seen if j.received_ns and j.sent_ns]
    acked = [(j, acks[j.job_id]) for j in seen if j.job_id in acks]
    to_ack = [(ack - sent) / 1e6 for _, (sent, ack) in acked]
    before_ack = sum(1 for j, (_, ack) in acked if j.received_ns is not None and j.received_ns < ack)
    finished = [j.finished for j in measured if j.finished is not None]
    unfinished = sum(1 for j in measured if j.finished is None and j.error is None)
    errors: dict[str, int] = {}
    outcomes: dict[str, int] = {}
    for j in measured:
        if j.error is not None:
            errors[j.error] = errors.get(j.error, 0) + 1
        if j.finished is not None:
            outcomes[j.outcome] = outcomes.get(j.outcome, 0) + 1
    # A job that completed, yet whose watcher never read its progress event, would be a lost event.
    lost = sum(1 for j in measured if j.outcome == "JOB_STATUS_COMPLETED" and j.received_ns is None)
    first = window["measured_start"]
    done_s = (max(finished) - first) if finished else 0.0
    return {
        "offered_jobs_per_s": rate,
        "measured_seconds": round(window["offered_s"], 2),
        "jobs": len(measured),
        "progress_events_received": len(seen),
        "jobs_finished": len(finished),
        "jobs_unfinished": unfinished,
        "errors": errors,
        "outcomes": outcomes,
        "completed_without_progress_event": lost,
        "created_jobs_per_s": round(len(measured) / window["created_s"], 1) if window["created_s"] else None,
        "finished_jobs_per_s": round(len(finished) / done_s, 1) if done_s else None,
        "drain_after_offer_s": round(max(0.0, done_s - window["offered_s"]), 2),
        "send_to_watcher_ms": percentiles(to_watcher),
        "send_to_ack_ms": percentiles(to_ack),
        "watcher_before_ack": round(before_ack / len(acked), 3) if acked else None,
        "server_cpu_share": round(window["server_cpu_s"] / window["offered_s"], 3),
        "worker_cpu_share": round(window["worker_cpu_s"] / window["offered_s"], 3),
        "generator_cpu_share": round(window["generator_cpu_s"] / window["offered_s"], 3),
        "server_cpu_ms_per_job": round(1e3 * window["server_cpu_s"] / len(measured), 3) if measured else None,
        "clock": "CLOCK_MONOTONIC (time.monotonic_ns), shared by the worker and watcher processes",
        "from": "just before the worker's ctx.progress() call (SDK Worker, Work session)",
        "to": "the watcher's read of the progress event on its WatchJob stream",
    }
