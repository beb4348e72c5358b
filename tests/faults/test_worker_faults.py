"""Worker kill -9 and worker freeze: leases are fencing tokens, and rescue comes within its bound.

Real processes: a `jobwarden serve` with a fast reaper, and SDK worker processes (worker_proc.py) whose
every call is logged with its outcome. Reference battery B.2 (a) crash and (b) zombie; invariant I5.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from support import faultproc, flows, history
from support.rpc import Stubs

from jobwarden.v1 import job_pb2, job_service_pb2

LEASE_S = 2.0
LONG_LEASE_S = 60.0
"""A lease no test waits out: a job back in the queue before it expires was handed back, not rescued."""
REAPER_S = 0.5
MARGIN_S = 3.0
REQUEUE_BOUND_S = LEASE_S + REAPER_S + MARGIN_S
"""A correctness bound, not a performance target: a dead worker's job is back in the queue by then."""
WAIT_S = 20.0
WRITES = {"ReportProgress", "AddAsset", "CompleteJob", "FailJob"}


def _config(tmp_path: Path) -> Path:
    return faultproc.write_config(
        tmp_path / "server.toml",
        settings={"reaper_interval_seconds": REAPER_S, "cancel_grace_seconds": 5},
        retry={"default_max_attempts": 3, "initial_backoff_seconds": 0.1, "max_backoff_seconds": 0.2},
    )


def _rescue(events: list[job_pb2.JobEvent]) -> job_pb2.JobEvent:
    """The reaper's RUNNING -> QUEUED (the lease expired) among the events."""
    found = [
        e
        for e in events
        if e.HasField("transition")
        and e.actor == "system"
        and (e.transition.from_status, e.transition.to_status)
        == (job_pb2.JOB_STATUS_RUNNING, job_pb2.JOB_STATUS_QUEUED)
    ]
    assert len(found) == 1, flows.kinds(events)
    return found[0]


def _seconds(event: job_pb2.JobEvent) -> float:
    """When the server recorded the event, in seconds since the epoch (same clock as time.time())."""
    return event.create_time.ToNanoseconds() / 1e9


async def _until_progress(s: Stubs, job_id: str, prefix: str) -> None:
    """Follow the job's stream until a progress report whose message starts with `prefix` is recorded."""
    call = s.jobs.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id), metadata=s.metadata)
    try:
        async for item in call:
            if item.event.HasField("progress") and item.event.progress.message.startswith(prefix):
                return
    finally:
        call.cancel()
    raise AssertionError(f"job {job_id} ended without progress {prefix!r}")


async def _until_logged(worker: faultproc.WorkerProcess, call: str) -> list[dict[str, Any]]:
    """Wait (bounded) until the worker's call log has a `call` record; return the whole log."""
    async with asyncio.timeout(WAIT_S):
        while True:
            records = worker.records()
            if any(r["call"] == call for r in records):
                return records
            await asyncio.sleep(0.1)  # the log is a file: look again shortly


@dataclasses.dataclass
class HeldJobs:
    """Three jobs held by one worker process, a second worker started only now, and open watches."""

    s: Stubs
    holder: faultproc.WorkerProcess
    rescuer: faultproc.WorkerProcess
    held: list[job_pb2.Job]
    watchers: list[asyncio.Task[tuple[job_pb2.Job, list[job_pb2.JobEvent]]]]

    async def finish(self) -> tuple[list[job_pb2.Job], list[list[job_pb2.JobEvent]]]:
        """Wait (bounded) for every watch to see its job end; stop the rescuer; the final jobs and the
        events each watch saw."""
        async with asyncio.timeout(WAIT_S):
            watched = await asyncio.gather(*self.watchers)
        self.rescuer.stop()
        return [await flows.get(self.s, j.id) for j in self.held], [events for _, events in watched]


@contextlib.asynccontextmanager
async def _held_by(
    tmp_path: Path, holder_id: str, *, lease_s: float, database: str | None = None
) -> AsyncIterator[HeldJobs]:
    """A server; worker `holder_id` holding three jobs (each RUNNING and past its first progress
    report); then a quick worker, started only now so that every job it runs is one the holder lost.
    Each job's watch starts after its current sequence."""
    server = faultproc.ServerProcess(tmp_path, _config(tmp_path), database=database)
    holder = faultproc.WorkerProcess(
        tmp_path, server.address, worker_id=holder_id, job_type="held", mode="hold", lease_s=lease_s
    )
    rescuer = faultproc.WorkerProcess(
        tmp_path, server.address, worker_id="rescuer", job_type="held", mode="quick", lease_s=LEASE_S
    )
    with faultproc.cleanup(server, holder, rescuer):
        await server.start()
        async with faultproc.stubs(server.address) as s:
            jobs = [await flows.create(s, "held") for _ in range(3)]
            holder.start()
            async with asyncio.timeout(WAIT_S):
                for job in jobs:
                    await _until_progress(s, job.id, "holding")
            held = [await flows.get(s, job.id) for job in jobs]
            assert {j.worker_id for j in held} == {holder_id}
            rescuer.start()
            watchers = [asyncio.create_task(flows.watch(s, j.id, j.last_sequence)) for j in held]
            yield HeldJobs(s=s, holder=holder, rescuer=rescuer, held=held, watchers=watchers)


@pytest.mark.timeout(90)
async def test_killed_workers_jobs_are_requeued_within_the_bound_and_finished_by_another(
    tmp_path: Path, database: str
) -> None:
    async with _held_by(tmp_path, "victim", lease_s=LEASE_S, database=database) as rig:
        killed_at = time.time()
        rig.holder.kill()
        finals, watched = await rig.finish()
        histories = [await history.all_events(rig.s, job.id) for job in finals]
    victim, rescuer, jobs = rig.holder, rig.rescuer, rig.held

    requeue_s = [_seconds(_rescue(events)) - killed_at for events in watched]
    alive_refusals = [r for r in victim.records() if r["call"] in WRITES and not r["ok"]]
    figures = {
        "jobs_held_by_killed_worker": len(jobs),
        "time_to_requeue_s": {
            "min": round(min(requeue_s), 3),
            "p50": history.percentile(requeue_s, 50),
            "max": round(max(requeue_s), 3),
        },
        "bound_s": REQUEUE_BOUND_S,
        "lease_s": LEASE_S,
        "reaper_interval_s": REAPER_S,
        "false_lease_expiries": len(alive_refusals),
        "finished_by": sorted({j.worker_id for j in finals}),
    }
    history.report(f"worker_kill_{history.store_name(database)}", figures, tmp_path)

    assert all(0 < t <= REQUEUE_BOUND_S for t in requeue_s), requeue_s
    assert not alive_refusals, "a live, heartbeating worker lost a lease"
    for job, events in zip(finals, histories, strict=True):
        assert job.status == job_pb2.JOB_STATUS_COMPLETED, flows.kinds(events)
        assert job.attempt == 2 and job.worker_id == "rescuer"
        assert json_format.MessageToDict(job.result) == {"by": "rescuer"}
        assert flows.kinds(events)[-1] == "RUNNING->COMPLETED" and events[-1].actor == rescuer.actor
        assert [e.sequence for e in events] == list(range(1, len(events) + 1))


@pytest.mark.timeout(90)
async def test_frozen_worker_resumed_after_its_lease_is_refused_every_write(
    tmp_path: Path, database: str
) -> None:
    server = faultproc.ServerProcess(tmp_path, _config(tmp_path), database=database)
    zombie = faultproc.WorkerProcess(
        tmp_path, server.address, worker_id="zombie", job_type="frozen", mode="zombie", lease_s=LEASE_S
    )
    rescuer = faultproc.WorkerProcess(
        tmp_path, server.address, worker_id="rescuer", job_type="frozen", mode="quick", lease_s=LEASE_S
    )
    with faultproc.cleanup(server, zombie, rescuer):
        await server.start()
        async with faultproc.stubs(server.address) as s:
            job = await flows.create(s, "frozen")
            zombie.start()
            async with asyncio.timeout(WAIT_S):
                await _until_progress(s, job.id, "zombie:")  # it holds the job and its writes land
            rescuer.start()
            frozen = await flows.get(s, job.id)
            watcher = asyncio.create_task(flows.watch(s, job.id, frozen.last_sequence))

            stopped_at = time.time()
            zombie.freeze()
            async with asyncio.timeout(WAIT_S):
                _, while_frozen = await watcher  # rescued, claimed by the rescuer, completed
            resumed_at = time.time()
            zombie.thaw()
            records = await _until_logged(zombie, "zombie_done")
            zombie.stop()
            rescuer.stop()

            final = await flows.get(s, job.id)
            events = await history.all_events(s, job.id)
            assets = (
                await s.jobs.ListAssets(job_service_pb2.ListAssetsRequest(job_id=job.id), metadata=s.metadata)
            ).assets

    rescued = _rescue(events)
    late = [r for r in records if r["call"] in WRITES and r["t0"] >= resumed_at]
    accepted = [r for r in late if r["ok"]]
    stale_marks = [
        e.sequence
        for e in events
        if e.sequence > rescued.sequence
        and (
            (e.HasField("progress") and e.progress.message.startswith("zombie:"))
            or (e.HasField("asset_added") and "zombie:" in e.asset_added.uri)
        )
    ]
    figures = {
        "frozen_s": round(resumed_at - stopped_at, 2),
        "time_to_requeue_s": round(_seconds(rescued) - stopped_at, 3),
        "bound_s": REQUEUE_BOUND_S,
        "zombie_writes_after_resume": len(late),
        "zombie_writes_by_call": sorted({r["call"] for r in late}),
        "zombie_writes_accepted": len(accepted),
        "zombie_refusals": sorted({f"{r['code']}/{r['reason']}" for r in late if not r["ok"]}),
        "stale_events_in_history": len(stale_marks),
        "final_status": history.status_name(final.status),
        "finished_by": final.worker_id,
    }
    history.report(f"worker_freeze_{history.store_name(database)}", figures, tmp_path)

    assert flows.kinds(while_frozen)[-1] == "RUNNING->COMPLETED", flows.kinds(while_frozen)
    assert stopped_at < _seconds(rescued) < resumed_at, "the job was not rescued while the worker was frozen"
    assert _seconds(rescued) - stopped_at <= REQUEUE_BOUND_S
    assert WRITES <= {r["call"] for r in late}, "the zombie did not try every kind of write"
    assert accepted == [], accepted
    assert {(r["code"], r["reason"]) for r in late} == {("ABORTED", "LEASE_LOST")}
    assert stale_marks == [] and not any("zombie:" in a.uri for a in assets)
    assert final.status == job_pb2.JOB_STATUS_COMPLETED and final.worker_id == "rescuer"
    assert json_format.MessageToDict(final.result) == {"by": "rescuer"}
    assert events[-1].actor == rescuer.actor and final.last_sequence == len(events)


@pytest.mark.timeout(90)
async def test_sigterm_to_a_worker_process_hands_its_jobs_back_at_once_and_it_exits_0(tmp_path: Path) -> None:
    """The SDK's own signal handling: on SIGTERM the worker claims no more, gives its handlers the
    shutdown grace, then fails what is still running as retryable, so no job waits out its lease."""
    async with _held_by(tmp_path, "leaver", lease_s=LONG_LEASE_S) as rig:
        signalled_at = time.time()
        exit_code = rig.holder.stop()  # SIGTERM, then waits (bounded) for the process to exit
        exited_s = time.time() - signalled_at
        finals, watched = await rig.finish()  # bounded far below the lease: nobody waits it out
    leaver, jobs = rig.holder, rig.held

    handed_back = [
        next(e for e in events if e.HasField("transition") and e.actor == leaver.actor) for events in watched
    ]
    figures = {
        "jobs_held": len(jobs),
        "exit_code": exit_code,
        "sigterm_to_exit_s": round(exited_s, 3),
        "sigterm_to_hand_back_s": [round(_seconds(e) - signalled_at, 3) for e in handed_back],
        "lease_s": LONG_LEASE_S,
        "finished_by": sorted({j.worker_id for j in finals}),
    }
    history.report("worker_sigterm", figures, tmp_path)

    assert exit_code == 0
    assert exited_s < LONG_LEASE_S / 4
    for event in handed_back:
        assert (event.transition.from_status, event.transition.to_status) == (
            job_pb2.JOB_STATUS_RUNNING,
            job_pb2.JOB_STATUS_QUEUED,
        )
        assert "worker shutting down" in event.transition.reason, event.transition.reason
        assert _seconds(event) - signalled_at < LONG_LEASE_S / 4
    for job, events in zip(finals, watched, strict=True):
        assert job.status == job_pb2.JOB_STATUS_COMPLETED and job.worker_id == "rescuer", flows.kinds(events)
        assert job.attempt == 2
        assert not any(e.actor == "system" for e in events), "the reaper had to step in"
