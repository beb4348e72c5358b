"""Two real `jobwarden serve` processes on one PostgreSQL database.

Workers (asyncio tasks, each with its own channel) are split across both replicas. What must hold is
what a single process promises: every job claimed once at a time and finished, every event seen by
watchers on either replica, and no job lost when a replica dies with SIGKILL holding leases.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from support import flows, pg, proc, rpc

from jobwarden.v1 import job_pb2, worker_service_pb2

pytestmark = pytest.mark.postgres

TERMINAL = ("COMPLETED", "PARTIAL", "FAILED", "CANCELLED", "EXPIRED")
# Per job: its status and attempt, its claims (QUEUED->RUNNING), requeues by the system (lease expired),
# terminal transitions, all its events, and the workers that claimed it, in order.
HISTORY = f"""
SELECT j.id, j.status, j.attempt,
       count(*) FILTER (WHERE e.data->>'from' = 'QUEUED' AND e.data->>'to' = 'RUNNING'),
       count(*) FILTER (WHERE e.data->>'from' = 'RUNNING' AND e.data->>'to' = 'QUEUED' AND e.actor = 'system'),
       count(*) FILTER (WHERE e.kind = 'transition' AND e.data->>'to' IN {TERMINAL!r}),
       count(*),
       array_agg(e.actor ORDER BY e.sequence) FILTER (WHERE e.data->>'to' = 'RUNNING')
FROM jobs j JOIN job_events e ON e.job_id = j.id
GROUP BY j.id
"""


@contextlib.contextmanager
def two_replicas(database: str, config: Path) -> Iterator[list[tuple[subprocess.Popen[str], str]]]:
    """Two `jobwarden serve` processes (logging only warnings: nobody reads their stderr pipe)."""
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(proc.serving(database, "--config", str(config), "--log-level", "WARNING"))
            for _ in range(2)
        ]


async def _create(addresses: list[str], count: int, job_type: str) -> list[str]:
    """Create `count` jobs, spread over the replicas, 32 calls in flight at a time."""
    ids: list[str] = []
    gate = asyncio.Semaphore(32)
    async with contextlib.AsyncExitStack() as stack:
        channels = [await stack.enter_async_context(rpc.stubs(a)) for a in addresses]

        async def one(n: int) -> None:
            async with gate:
                ids.append((await flows.create(channels[n % len(channels)], job_type)).id)

        await asyncio.gather(*(one(n) for n in range(count)))
    return ids


def _claim_request(
    worker_id: str, job_type: str, max_jobs: int, lease_s: int = 30, wait_s: int = 0
) -> worker_service_pb2.ClaimJobsRequest:
    request = worker_service_pb2.ClaimJobsRequest(
        worker_id=worker_id,
        job_types=[job_type],
        max_jobs=max_jobs,
        lease_duration=duration_pb2.Duration(seconds=lease_s),
    )
    if wait_s:
        request.wait.CopyFrom(duration_pb2.Duration(seconds=wait_s))
    return request


async def _work_the_watched_job(address: str, job_id: str) -> None:
    async with rpc.stubs(address) as s:
        claim = await flows.claim_one(s, "watched")
        assert claim.job.id == job_id
        for percent in (20, 40, 60, 80):
            await flows.progress(s, claim, percent)
        await flows.add_asset(s, claim)
        await flows.complete(s, claim)


@pytest.mark.timeout(120)  # two servers, PostgreSQL and 32 clients share two cores
async def test_32_workers_on_two_replicas_claim_each_of_1000_jobs_once_while_a_watcher_follows_one(
    database: str, serve_config: Path
) -> None:
    jobs, workers = 1000, 32
    with two_replicas(database, serve_config) as servers:
        (_, a), (_, b) = servers
        ids = await _create([a, b], jobs, "race")
        claims: collections.Counter[str] = collections.Counter()
        start = asyncio.Event()

        async def worker(n: int) -> None:
            async with rpc.stubs((a, b)[n % 2]) as own:
                await start.wait()
                while True:
                    reply = await own.workers.ClaimJobs(_claim_request(f"w{n}", "race", max_jobs=2))
                    if not reply.claims:
                        return
                    for claim in reply.claims:
                        claims[claim.job.id] += 1
                        await flows.complete(own, claim)

        async with rpc.stubs(a) as on_a:
            watched = await flows.create(on_a, "watched")
            watch = flows.start_watch(on_a, watched.id)
            racing = [asyncio.create_task(worker(n)) for n in range(workers)]
            start.set()
            await _work_the_watched_job(b, watched.id)  # on B, while the race runs
            await asyncio.gather(*racing)
            _, seen = await asyncio.wait_for(watch, 10)
            recorded = await flows.events(on_a, watched.id)

    assert seen == recorded, "the watcher on A missed, repeated or reordered events made through B"
    assert job_pb2.JobStatus.Name(seen[-1].transition.to_status) == "JOB_STATUS_COMPLETED"
    assert sorted(claims) == sorted(ids) and set(claims.values()) == {1}
    history = {row[0]: row[1:] for row in (await pg.run(database, HISTORY))[0]}
    race = [history[job_id] for job_id in ids]
    assert {
        (status, claimed, requeued, ended, events) for status, _, claimed, requeued, ended, events, _ in race
    } == {("COMPLETED", 1, 0, 1, 3)}
    on_a_count = sum(int(actors[0].removeprefix("worker:w")) % 2 == 0 for *_, actors in race)
    assert jobs // 10 < on_a_count < jobs - jobs // 10, "both replicas' workers should share the jobs"


@pytest.mark.timeout(120)  # two servers, PostgreSQL and 32 clients share two cores
async def test_sigkill_of_a_replica_mid_load_loses_no_job_and_the_other_rescues_its_leases(
    database: str, serve_config: Path
) -> None:
    jobs, holders, busy, survivors = 200, 8, 4, 8
    with two_replicas(database, serve_config) as servers:
        (doomed, on_doomed), (_, on_survivor) = servers
        ids = await _create([on_doomed, on_survivor], jobs, "load")
        held: list[str] = []
        all_held = asyncio.Event()
        finished = asyncio.Event()

        async def holder(n: int) -> None:
            # Takes a job under a 2 s lease and sits on it until its replica dies.
            async with rpc.stubs(on_doomed) as own:
                reply = await own.workers.ClaimJobs(_claim_request(f"holder{n}", "load", 1, lease_s=2))
                held.extend(claim.job.id for claim in reply.claims)
                if len(held) == holders:
                    all_held.set()
                await asyncio.Event().wait()  # cancelled after the kill

        async def busy_worker(n: int) -> None:
            # Keeps the doomed replica under load (2 s leases too) until it dies.
            async with rpc.stubs(on_doomed) as own:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    while True:
                        reply = await own.workers.ClaimJobs(_claim_request(f"busy{n}", "load", 1, lease_s=2))
                        for claim in reply.claims:
                            await flows.complete(own, claim)

        async def survivor(n: int) -> None:
            async with rpc.stubs(on_survivor) as own:
                while not finished.is_set():
                    request = _claim_request(f"survivor{n}", "load", 2, wait_s=1)
                    for claim in (await own.workers.ClaimJobs(request)).claims:
                        await flows.complete(own, claim)

        on_doomed_tasks = [asyncio.create_task(holder(n)) for n in range(holders)]
        on_doomed_tasks += [asyncio.create_task(busy_worker(n)) for n in range(busy)]
        surviving = [asyncio.create_task(survivor(n)) for n in range(survivors)]
        await asyncio.wait_for(all_held.wait(), 30)
        doomed.kill()
        doomed.wait(timeout=10)
        for task in on_doomed_tasks:
            task.cancel()
        await asyncio.gather(*on_doomed_tasks, return_exceptions=True)
        # Leases of 2 s, a reaper every 0.2 s, retries after 0.1 s: all done well within the bound.
        await pg.until_rows(database, f"SELECT count(*) FROM jobs WHERE status NOT IN {TERMINAL!r}", [(0,)])
        finished.set()
        await asyncio.gather(*surviving)

    history = {row[0]: row[1:] for row in (await pg.run(database, HISTORY))[0]}
    assert sorted(history) == sorted(ids)
    assert len(held) == holders
    for job_id, (status, attempt, claimed, requeued, ended, _, actors) in history.items():
        assert (status, ended) == ("COMPLETED", 1), (job_id, status, ended)
        # Never two leases at once: every claim but the last ended in a requeue by the system.
        assert claimed == requeued + 1 == attempt, (job_id, claimed, requeued, attempt)
        if job_id in held:
            # Rescued: the lease expired, the system requeued it, a worker on the survivor finished it.
            assert requeued >= 1 and actors[0].startswith("worker:holder"), actors
            assert actors[-1].startswith("worker:survivor"), actors
