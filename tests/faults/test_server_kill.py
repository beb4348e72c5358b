"""Server kill -9 under load: no acknowledged job lost or duplicated, every job ends, every history legal,
every job's completion callback delivered.

A real `jobwarden serve` (SQLite file or PostgreSQL, fast reaper) is SIGKILLed three times at seeded
moments while submitters create jobs (one of them in CreateJobs batches) and two SDK worker processes
run them through Work sessions; each time it is restarted on the same database and port. Every job has
a completion callback to an HTTP receiver on loopback. Submitters retry an unanswered CreateJob or
CreateJobs with the same request_ids, and record every job's creation as acknowledged (`ok`), refused
(`fail`) or unknown (`info`). After the load, the jobs drain; then the final state is checked against
the history (reference battery B.1, invariants I1-I4, I6, I7).

JOBWARDEN_FAULT_SEED replays a run (the seed and the kill schedule are printed with the figures).
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from support import faultproc, history
from support.receiver import Receiver, callbacks_toml
from support.rpc import Stubs

from jobwarden.v1 import job_pb2, job_service_pb2

SEED = int(os.environ.get("JOBWARDEN_FAULT_SEED", "1337"))
JOB_TYPE = "load"
LOAD_S = 15.0
KILLS = 3
SUBMITTERS = 4
BATCH = 4
"""Jobs per CreateJobs call, and children per CreateBatch call, of the two batching submitters."""
BATCH_TYPE = "load-batch"
CHILD_OF = "child-of:"
"""An acked CreateBatch child's job id until the child is found under its parent after the load."""
CREATES_PER_S = 14.0
LEASE_S = 2.0
CREATE_TIMEOUT_S = 2.0
GIVE_UP_S = 20.0
"""An operation still unanswered after this long is recorded as unknown (`info`)."""
DRAIN_S = 45.0
CALLBACKS_S = 30.0
"""Every callback delivered within this long after the jobs drained (a delivery in flight at a kill waits
out its lease: 2 x the 1 s timeout + 5 s)."""

CONFIG = {
    "reaper_interval_seconds": 0.5,
    "cancel_grace_seconds": 5,
    "shutdown_grace_seconds": 2,
}
RETRY = {
    "default_max_attempts": 4,
    "initial_backoff_seconds": 0.1,
    "max_backoff_seconds": 0.5,
    "multiplier": 2.0,
}
# Answers that leave the outcome open (the server may have committed before it died): retry, same id.
AMBIGUOUS = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
NON_TERMINAL: list[job_pb2.JobStatus.ValueType] = [
    job_pb2.JOB_STATUS_CREATED,
    job_pb2.JOB_STATUS_QUEUED,
    job_pb2.JOB_STATUS_RUNNING,
]


def _plan(rng: random.Random, rid: str) -> dict[str, Any]:
    """What the job will do in the worker: a mix of successes, retried failures, partials, failures."""
    roll = rng.random()
    outcome = (
        "complete" if roll < 0.75 else "flaky" if roll < 0.87 else "partial" if roll < 0.94 else "permanent"
    )
    return {
        "rid": rid,
        "steps": rng.randint(1, 3),
        "step_ms": rng.randint(30, 120),
        "asset": rng.random() < 0.3,
        "outcome": outcome,
        "flaky_attempts": 1,
    }


def _kill_schedule(rng: random.Random) -> list[tuple[float, float]]:
    """(seconds into the load, seconds down) per kill: one kill in each third of the load window."""
    start, end = 1.5, LOAD_S - 1.5
    span = (end - start) / KILLS
    return [
        (round(start + i * span + rng.uniform(0.2, span - 0.2), 2), round(rng.uniform(0.2, 1.5), 2))
        for i in range(KILLS)
    ]


def _from_jobwarden(err: grpc.aio.AioRpcError) -> bool:
    """Whether the answer came from jobwarden code (it carries a rich status), not from the transport."""
    return any(key == "grpc-status-details-bin" for key, _ in err.trailing_metadata() or ())


async def _create(
    s: Stubs,
    ops: list[history.Op],
    requests: list[job_service_pb2.CreateJobRequest],
    batch: job_service_pb2.CreateBatchRequest | None = None,
) -> None:
    """CreateJob for one request, CreateJobs for several (retried whole, same request_ids), or with
    `batch` one CreateBatch of them; each op is recorded as its own item was answered (a batch's
    children as the batch was: their job ids, under the parent's, are found after the load)."""
    give_up = time.monotonic() + GIVE_UP_S
    while True:
        for op in ops:
            op.attempts += 1
        try:
            if batch is not None:
                parent = (await s.jobs.CreateBatch(batch, timeout=CREATE_TIMEOUT_S)).job
                results = [
                    job_service_pb2.CreateJobsResult(job=job_pb2.Job(parent_id=parent.id)) for _ in ops
                ]
            elif len(requests) == 1:
                reply = await s.jobs.CreateJob(requests[0], timeout=CREATE_TIMEOUT_S)
                results = [job_service_pb2.CreateJobsResult(job=reply.job)]
            else:
                many = job_service_pb2.CreateJobsRequest(requests=requests)
                results = list((await s.jobs.CreateJobs(many, timeout=CREATE_TIMEOUT_S)).results)
        except grpc.aio.AioRpcError as err:
            ambiguous = err.code() in AMBIGUOUS or (
                err.code() == grpc.StatusCode.UNKNOWN and not _from_jobwarden(err)
            )
            if ambiguous and time.monotonic() < give_up:
                await asyncio.sleep(random.uniform(0.1, 0.3))  # retry backoff
                continue
            for op in ops:
                op.code, op.type = f"{err.code().name}: {err.details()}", "info" if ambiguous else "fail"
            break
        else:
            for op, result in zip(ops, results, strict=True):
                if result.HasField("job"):
                    op.type, op.job_id, op.code = (
                        "ok",
                        result.job.id or f"{CHILD_OF}{result.job.parent_id}",
                        "OK",
                    )
                else:
                    op.type, op.code = (
                        "fail",
                        f"{grpc.StatusCode(result.error.code).name}: {result.error.message}",
                    )
            break
    for op in ops:
        op.complete_t = time.time()


async def _submitter(
    n: int,
    s: Stubs,
    rng: random.Random,
    log: history.History,
    until: float,
    inflight: set[asyncio.Task[None]],
    callback_url: str,
) -> None:
    # The first submitter sends CreateJobs calls, the second CreateBatch calls, the others one CreateJob
    # per job.
    per_call = BATCH if n in (0, 1) else 1
    period = SUBMITTERS / CREATES_PER_S * per_call
    while time.monotonic() < until:
        ops, requests = [], []
        for _ in range(per_call):
            rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            params = struct_pb2.Struct()
            params.update(_plan(rng, rid))
            requests.append(
                job_service_pb2.CreateJobRequest(
                    job_type=JOB_TYPE,
                    parameters=params,
                    request_id="" if n == 1 else rid,
                    callback_url=callback_url,
                )
            )
            ops.append(history.Op(op="create", proc=f"submitter-{n}", request_id=rid, invoke_t=time.time()))
        log.ops.extend(ops)
        # Open loop: the next create does not wait for this one (a slow answer must not slow the load).
        batch = None
        if n == 1:
            batch_rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            batch = job_service_pb2.CreateBatchRequest(
                job_type=BATCH_TYPE, children=requests, request_id=batch_rid
            )
        task = asyncio.create_task(_create(s, ops, requests, batch))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
        await asyncio.sleep(period * rng.uniform(0.5, 1.5))  # the offered load's pacing


_COUNTED = ("created", "queued", "running", "completed", "partial", "failed", "cancelled", "expired")


def _batch_problems(parents: list[job_pb2.Job], jobs: list[job_pb2.Job]) -> list[str]:
    """Each batch parent ended as its children did (COMPLETED if all completed, FAILED if none
    succeeded even partly, else PARTIAL), with counts that match them one for one."""
    children: dict[str, list[job_pb2.Job]] = collections.defaultdict(list)
    for job in jobs:
        if job.parent_id:
            children[job.parent_id].append(job)
    wrong = []
    for parent in parents:
        statuses = collections.Counter(
            history.status_name(c.status).removeprefix("JOB_STATUS_").lower() for c in children[parent.id]
        )
        counts = {name: getattr(parent.batch, name) for name in _COUNTED if getattr(parent.batch, name)}
        if parent.batch.total != sum(statuses.values()) or counts != dict(statuses):
            wrong.append(f"{parent.id}: counts {counts} of {parent.batch.total}, children {dict(statuses)}")
        if set(statuses) == {"completed"}:
            expected = job_pb2.JOB_STATUS_COMPLETED
        elif set(statuses) <= {"failed", "cancelled", "expired"}:
            expected = job_pb2.JOB_STATUS_FAILED
        else:
            expected = job_pb2.JOB_STATUS_PARTIAL
        if parent.status != expected:
            wrong.append(f"{parent.id}: {history.status_name(parent.status)} with children {dict(statuses)}")
    return wrong


async def _nemesis(
    server: faultproc.ServerProcess, schedule: list[tuple[float, float]], t0: float
) -> list[dict[str, float]]:
    done = []
    for at, down in schedule:
        await asyncio.sleep(max(0.0, t0 + at - time.monotonic()))  # the seeded moment of the fault
        server.kill()
        killed = time.monotonic()
        await asyncio.sleep(down)  # the outage itself
        took = await server.start()
        done.append({"at_s": round(killed - t0, 2), "down_s": down, "restart_to_serving_s": round(took, 3)})
    return done


async def _loop_lag(stop: asyncio.Event, worst: list[float]) -> None:
    """The test process's own event-loop lag, so starvation can be told apart from server faults."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        before = loop.time()
        await asyncio.sleep(0.1)
        worst[0] = max(worst[0], loop.time() - before - 0.1)


async def _callbacks_settle(s: Stubs) -> tuple[float, list[job_pb2.Job]]:
    """Wait (bounded) until no finished job's callback is still to be delivered; how long, and the jobs."""
    began = time.monotonic()
    pending = (job_pb2.CALLBACK_STATE_PENDING, job_pb2.CALLBACK_STATE_DELIVERING)
    while True:
        jobs = await history.all_jobs(s, [JOB_TYPE])
        if not any(j.callback_state in pending for j in jobs) or time.monotonic() - began > CALLBACKS_S:
            return time.monotonic() - began, jobs
        await asyncio.sleep(0.5)  # re-check the condition


def _callback_figures(jobs: list[job_pb2.Job], receiver: Receiver) -> dict[str, Any]:
    """Deliveries as the receiver saw them: each job's callback arrived, under one webhook-id of its own;
    one arriving twice (the server died between the receiver's 2xx and recording it) is at least once."""
    ids_of_job: dict[str, set[str]] = collections.defaultdict(set)
    arrivals = collections.Counter(receiver.ids())
    for got in receiver.received:
        ids_of_job[got.payload["data"]["job_id"]].add(got.headers["webhook-id"])
    return {
        "callbacks_by_state": dict(
            collections.Counter(job_pb2.CallbackState.Name(j.callback_state)[15:] for j in jobs)
        ),
        "callbacks_received": len(receiver.received),
        "callbacks_missing": sum(j.id not in ids_of_job for j in jobs),
        "callbacks_under_several_ids": sum(len(ids) > 1 for ids in ids_of_job.values()),
        "callbacks_received_twice": sum(n > 1 for n in arrivals.values()),
    }


async def _drain(s: Stubs) -> tuple[float, int]:
    """Wait (bounded) until no job is left unfinished; returns how long it took and how many remain."""
    began = time.monotonic()
    while True:
        try:
            left = len(await history.all_jobs(s, [JOB_TYPE, BATCH_TYPE], NON_TERMINAL))
        except grpc.aio.AioRpcError:
            left = -1
        if left == 0 or time.monotonic() - began > DRAIN_S:
            return time.monotonic() - began, left
        await asyncio.sleep(0.5)  # re-check the condition


def _worker_figures(workers: list[faultproc.WorkerProcess]) -> dict[str, Any]:
    codes: collections.Counter[str] = collections.Counter()
    executions: collections.Counter[str] = collections.Counter()
    server_errors = 0
    for worker in workers:
        for record in worker.records():
            if "code" in record:
                codes[f"{record['call']}:{record['code']}"] += 1
                server_errors += record["code"] in ("UNKNOWN", "INTERNAL") and record.get("rich", False)
            for claim in record.get("claims", ()):
                executions[claim["job"]] += 1
    return {
        "worker_calls_by_outcome": dict(sorted(codes.items())),
        "jobs_executed_more_than_once": sum(n > 1 for n in executions.values()),
        "worker_server_errors": server_errors,
    }


@pytest.mark.timeout(150)
async def test_server_kill_9_under_load_loses_nothing_and_every_job_ends(
    tmp_path: Path, database: str
) -> None:
    rng = random.Random(SEED)
    schedule = _kill_schedule(rng)
    config = faultproc.write_config(tmp_path / "server.toml", settings=CONFIG, retry=RETRY)
    with config.open("a") as f:
        f.write(callbacks_toml(timeout_seconds=1, initial_backoff_seconds=0.1, max_backoff_seconds=0.5))
    server = faultproc.ServerProcess(tmp_path, config, database=database)
    receiver = Receiver()
    workers = [
        faultproc.WorkerProcess(
            tmp_path, server.address, worker_id=f"load-{i}", job_type=JOB_TYPE, mode="load", lease_s=LEASE_S
        )
        for i in (1, 2)
    ]
    log = history.History()
    with receiver, faultproc.cleanup(server, *workers):
        await server.start()
        for worker in workers:
            worker.start()
        async with faultproc.stubs(server.address) as s:
            t0 = time.monotonic()
            stop_lag, lag = asyncio.Event(), [0.0]
            lag_task = asyncio.create_task(_loop_lag(stop_lag, lag))
            inflight: set[asyncio.Task[None]] = set()
            submitters = [
                asyncio.create_task(
                    _submitter(n, s, random.Random(rng.random()), log, t0 + LOAD_S, inflight, receiver.url)
                )
                for n in range(SUBMITTERS)
            ]
            kills = await _nemesis(server, schedule, t0)
            await asyncio.gather(*submitters)
            if inflight:
                await asyncio.wait(inflight)  # each bounded by GIVE_UP_S
            load_s = time.monotonic() - t0
            drain_s, left = await _drain(s)
            callbacks_s, _ = await _callbacks_settle(s)
            stop_lag.set()
            await lag_task
            exit_codes = [worker.stop() for worker in workers]

            jobs = await history.all_jobs(s, [JOB_TYPE])
            parents = await history.all_jobs(s, [BATCH_TYPE])
            table = history.Table.from_pb(
                (await s.jobs.GetLifecycle(job_service_pb2.GetLifecycleRequest(job_type=JOB_TYPE))).lifecycle
            )
            problems: dict[str, list[str]] = {}
            illegal = rescues = 0
            for job in jobs:
                events = await history.all_events(s, job.id)
                illegal += history.illegal_transitions(events, table)
                rescues += sum(e.actor == "system" and e.HasField("transition") for e in events)
                wrong = history.path_problems(job, events, table)
                starts = sum(
                    e.HasField("transition") and e.transition.to_status == job_pb2.JOB_STATUS_RUNNING
                    for e in events
                )
                if starts != job.attempt:
                    wrong.append(f"{starts} claims recorded but attempt is {job.attempt}")
                if wrong:
                    problems[job.id] = wrong

    log.write(tmp_path / "history.jsonl")
    rids = {job.id: str(json_format.MessageToDict(job.parameters).get("rid", "")) for job in jobs}
    child_ids = {(job.parent_id, rids[job.id]): job.id for job in jobs if job.parent_id}
    for op in log.ops:  # an acked CreateBatch's children, found under their parent ("" if missing: lost)
        if op.job_id.startswith(CHILD_OF):
            op.job_id = child_ids.get((op.job_id.removeprefix(CHILD_OF), op.request_id), "")
    batch_problems = _batch_problems(parents, jobs)
    figures: dict[str, Any] = {
        "store": history.store_name(database),
        "seed": SEED,
        "kill_schedule": kills,
        "kills": server.kills,
        **history.check_creates(log, rids),
        "jobs": len(jobs),
        "jobs_by_status": dict(
            collections.Counter(history.status_name(j.status).removeprefix("JOB_STATUS_") for j in jobs)
        ),
        "non_terminal_after_drain": sum(j.status in NON_TERMINAL for j in jobs),
        "illegal_transitions": illegal,
        "batches": len(parents),
        "batches_by_status": dict(
            collections.Counter(history.status_name(p.status).removeprefix("JOB_STATUS_") for p in parents)
        ),
        "batches_disagreeing_with_children": len(batch_problems),
        "jobs_with_history_problems": len(problems),
        "attempts_over_max": sum(j.attempt > j.max_attempts for j in jobs),
        "attempt_histogram": dict(sorted(collections.Counter(j.attempt for j in jobs).items())),
        "reaper_rescues": rescues,
        "acked_after_retry": sum(op.type == "ok" and op.attempts > 1 for op in log.ops),
        "load_s": round(load_s, 1),
        "drain_s": round(drain_s, 1),
        "create_latency_p50_s": history.percentile(
            [op.complete_t - op.invoke_t for op in log.ops if op.type == "ok"], 50
        ),
        "create_latency_p99_s": history.percentile(
            [op.complete_t - op.invoke_t for op in log.ops if op.type == "ok"], 99
        ),
        "test_loop_max_lag_s": round(lag[0], 3),
        "worker_exit_codes": exit_codes,
        **_worker_figures(workers),
        **_callback_figures(jobs, receiver),
        "callbacks_settled_after_drain_s": round(callbacks_s, 1),
    }
    history.report(f"server_kill_{figures['store']}", figures, tmp_path)

    assert server.kills == KILLS
    assert figures["attempted"] > 100, "the load never got going"
    assert figures["failed"] == 0, [op for op in log.ops if op.type == "fail"][:5]
    assert figures["lost"] == 0, figures["lost_request_ids"]
    assert figures["duplicated"] == 0
    assert figures["unexpected"] == 0
    assert left == 0 and figures["non_terminal_after_drain"] == 0, figures["jobs_by_status"]
    assert illegal == 0 and not problems, dict(list(problems.items())[:5])
    assert figures["attempts_over_max"] == 0
    assert figures["batches"] > 0 and not batch_problems, batch_problems[:5]
    assert figures["worker_server_errors"] == 0, figures["worker_calls_by_outcome"]
    assert figures["jobs_by_status"].get("COMPLETED", 0) > figures["jobs"] // 2
    assert figures["callbacks_by_state"] == {"DELIVERED": len(jobs)}, figures["callbacks_by_state"]
    assert figures["callbacks_missing"] == 0
    assert figures["callbacks_under_several_ids"] == 0
