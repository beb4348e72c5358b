"""Conflicting calls racing on the same jobs: exactly one wins each race, the losers are told clearly.

Against a real `jobwarden serve`, from several connections at once (reference battery B.3, black box):

- finish races: for each RUNNING job, CompleteJob, a second CompleteJob under the same lease, FailJob
  and CancelJob fire together;
- claim races: eight claimers drain a queue while every job also gets a CancelJob.

The losers must get FAILED_PRECONDITION or ABORTED with an ErrorInfo (never UNKNOWN or INTERNAL), and
each job's final state must be the winner's.
"""

from __future__ import annotations

import asyncio
import collections
import random
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from support import faultproc, flows, history, rpc
from support.rpc import Stubs

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2

JOBS = 100
CHANNELS = 4
CLAIMERS = 8
SEED = 7
LOSER_CODES = {"FAILED_PRECONDITION", "ABORTED"}
TERMINAL = {
    job_pb2.JOB_STATUS_COMPLETED,
    job_pb2.JOB_STATUS_PARTIAL,
    job_pb2.JOB_STATUS_FAILED,
    job_pb2.JOB_STATUS_CANCELLED,
    job_pb2.JOB_STATUS_EXPIRED,
}
LONG_LEASE = duration_pb2.Duration(seconds=600)


async def _outcome(call: Awaitable[Any]) -> tuple[str, str, Any]:
    """(code, reason, reply) of a call; a failure must carry exactly one ErrorInfo (rpc.failure)."""
    try:
        reply = await call
    except grpc.aio.AioRpcError as err:
        failure = rpc.failure(err)
        return failure.code.name, failure.reason, None
    return "OK", "", reply


def _config(tmp_path: Path) -> Path:
    # Nothing time-based may move the jobs while they race: long leases, a long cancel grace.
    return faultproc.write_config(
        tmp_path / "server.toml", settings={"reaper_interval_seconds": 1, "cancel_grace_seconds": 600}
    )


async def _claim_all(s: Stubs, job_type: str, n: int) -> list[worker_service_pb2.JobClaim]:
    claims: list[worker_service_pb2.JobClaim] = []
    while len(claims) < n:
        reply = await s.workers.ClaimJobs(
            worker_service_pb2.ClaimJobsRequest(
                worker_id="setup", job_types=[job_type], max_jobs=100, lease_duration=LONG_LEASE
            )
        )
        assert reply.claims, "fewer jobs to claim than created"
        claims.extend(reply.claims)
    return claims


Racer = Callable[[Stubs], Awaitable[Any]]


def _finish_racers(c: worker_service_pb2.JobClaim) -> dict[str, Racer]:
    """The four conflicting calls on one RUNNING job, each to be made on a connection of its own."""
    job_id, lease = c.job.id, c.lease_token

    def complete(by: str) -> Racer:
        request = worker_service_pb2.CompleteJobRequest(
            job_id=job_id, lease_token=lease, result=flows.struct(by=by), request_id=str(uuid.uuid4())
        )
        return lambda s: s.workers.CompleteJob(request)

    fail = worker_service_pb2.FailJobRequest(
        job_id=job_id,
        lease_token=lease,
        error=job_pb2.JobError(message="racing failure", retryable=False),
        request_id=str(uuid.uuid4()),
    )
    cancel = job_service_pb2.CancelJobRequest(
        job_id=job_id, reason="racing cancel", request_id=str(uuid.uuid4())
    )
    return {
        "complete": complete("complete"),
        "complete_again": complete("again"),
        "fail": lambda s: s.workers.FailJob(fail),
        "cancel": lambda s: s.jobs.CancelJob(cancel),
    }


async def _race_one(
    conns: list[Stubs], c: worker_service_pb2.JobClaim, rng: random.Random
) -> dict[str, tuple[str, str, Any]]:
    racers = _finish_racers(c)
    names = list(racers)
    rng.shuffle(names)  # a random start order, each racer on its own connection
    results = await asyncio.gather(
        *(_outcome(racers[name](conns[i % len(conns)])) for i, name in enumerate(names))
    )
    return dict(zip(names, results, strict=True))


@pytest.mark.timeout(90)
async def test_finish_races_have_exactly_one_winner_and_clear_losers(tmp_path: Path) -> None:
    server = faultproc.ServerProcess(tmp_path, _config(tmp_path))
    rng = random.Random(SEED)
    with faultproc.cleanup(server):
        await server.start()
        async with faultproc.connections(server.address, CHANNELS) as conns:
            s = conns[0]
            for _ in range(JOBS):
                await flows.create(s, "race")
            claims = await _claim_all(s, "race", JOBS)
            races = await asyncio.gather(*(_race_one(conns, c, rng) for c in claims))
            finals = {c.job.id: await flows.get(s, c.job.id) for c in claims}
            histories = {c.job.id: await history.all_events(s, c.job.id) for c in claims}
            table = history.Table.from_pb(
                (await s.jobs.GetLifecycle(job_service_pb2.GetLifecycleRequest(job_type="race"))).lifecycle
            )

    winners: collections.Counter[int] = collections.Counter()
    won_by: collections.Counter[str] = collections.Counter()
    loser_codes: collections.Counter[str] = collections.Counter()
    wrong: list[str] = []
    for c, race in zip(claims, races, strict=True):
        job_id = c.job.id
        final, events = finals[job_id], histories[job_id]
        finishers = {name: r for name, r in race.items() if name != "cancel" and r[0] == "OK"}
        winners[len(finishers)] += 1
        for name, (code, reason, _) in race.items():
            if code != "OK":
                loser_codes[f"{name}:{code}/{reason}"] += 1
                if code not in LOSER_CODES:
                    wrong.append(f"{job_id}: {name} got {code}/{reason}")
        if len(finishers) != 1:
            wrong.append(f"{job_id}: {len(finishers)} winners {sorted(finishers)}")
            continue
        ((name, (_, _, reply)),) = finishers.items()
        won_by[name] += 1
        if reply.job.status != final.status or final.status not in TERMINAL:
            wrong.append(f"{job_id}: {name} answered {reply.job.status} but the job is {final.status}")
        cancel = race["cancel"]
        if cancel[0] == "OK" and not (
            cancel[2].job.status == job_pb2.JOB_STATUS_RUNNING and cancel[2].job.cancel_requested
        ):
            wrong.append(f"{job_id}: cancel of a RUNNING job answered {cancel[2].job.status}")
        if final.status == job_pb2.JOB_STATUS_CANCELLED and cancel[0] != "OK":
            wrong.append(f"{job_id}: CANCELLED without a successful cancel request")
        terminal_events = [
            e for e in events if e.HasField("transition") and e.transition.to_status in TERMINAL
        ]
        if len(terminal_events) != 1:
            wrong.append(f"{job_id}: {len(terminal_events)} terminal transitions {flows.kinds(events)}")
        wrong.extend(f"{job_id}: {p}" for p in history.path_problems(final, events, table))

    history.report(
        "races_finish",
        {
            "races": len(races),
            "racers_per_race": 4,
            "winners_per_race": dict(winners),
            "won_by": dict(won_by),
            "loser_codes": dict(sorted(loser_codes.items())),
            "violations": len(wrong),
        },
        tmp_path,
    )
    assert wrong == [], wrong[:10]
    assert dict(winners) == {1: JOBS}


async def _claimer(s: Stubs, n: int, claimed: list[tuple[str, str]], cancels_done: asyncio.Event) -> None:
    while True:
        reply = await s.workers.ClaimJobs(
            worker_service_pb2.ClaimJobsRequest(
                worker_id=f"claimer-{n}", job_types=["claimrace"], max_jobs=2, lease_duration=LONG_LEASE
            )
        )
        claimed.extend((c.job.id, c.lease_token) for c in reply.claims)
        if not reply.claims and cancels_done.is_set():
            return


async def _cancel_later(s: Stubs, job_id: str, delay: float) -> tuple[str, str, Any]:
    await asyncio.sleep(delay)  # the seeded moment this cancel joins the claim storm
    return await _outcome(s.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=job_id, reason="race")))


@pytest.mark.timeout(90)
async def test_claim_races_claim_each_job_once_and_cancels_never_resurrect(tmp_path: Path) -> None:
    server = faultproc.ServerProcess(tmp_path, _config(tmp_path))
    rng = random.Random(SEED + 1)
    with faultproc.cleanup(server):
        await server.start()
        async with faultproc.connections(server.address, CHANNELS) as conns:
            s = conns[0]
            jobs = [await flows.create(s, "claimrace") for _ in range(JOBS)]
            claimed: list[tuple[str, str]] = []
            cancels_done = asyncio.Event()
            claimers = [
                asyncio.create_task(_claimer(conns[n % CHANNELS], n, claimed, cancels_done))
                for n in range(CLAIMERS)
            ]
            cancels = await asyncio.gather(
                *(_cancel_later(conns[i % CHANNELS], j.id, rng.uniform(0, 0.3)) for i, j in enumerate(jobs))
            )
            cancels_done.set()
            async with asyncio.timeout(30):
                await asyncio.gather(*claimers)
            finals = {j.id: await flows.get(s, j.id) for j in jobs}
            histories = {j.id: await history.all_events(s, j.id) for j in jobs}
            table = history.Table.from_pb(
                (
                    await s.jobs.GetLifecycle(job_service_pb2.GetLifecycleRequest(job_type="claimrace"))
                ).lifecycle
            )

    times_claimed = collections.Counter(job_id for job_id, _ in claimed)
    outcomes: collections.Counter[str] = collections.Counter()
    wrong: list[str] = []
    for job, (code, reason, reply) in zip(jobs, cancels, strict=True):
        final, events = finals[job.id], histories[job.id]
        kinds = flows.kinds(events)
        if code != "OK":
            outcomes[f"cancel:{code}/{reason}"] += 1
            if code not in LOSER_CODES:
                wrong.append(f"{job.id}: cancel got {code}/{reason}")
        if times_claimed[job.id] > 1:
            wrong.append(f"{job.id}: claimed {times_claimed[job.id]} times")
        if times_claimed[job.id] == 0:
            outcomes["cancelled_before_any_claim"] += 1
            if final.status != job_pb2.JOB_STATUS_CANCELLED or "QUEUED->RUNNING" in kinds:
                wrong.append(f"{job.id}: never claimed, yet {kinds}")
        elif final.status == job_pb2.JOB_STATUS_RUNNING:
            outcomes["claimed_then_cancel_requested"] += 1
            if not final.cancel_requested:
                wrong.append(f"{job.id}: claimed and cancelled, but no cancel request recorded")
        elif final.status == job_pb2.JOB_STATUS_CANCELLED:
            # CancelJob read QUEUED, the claim won the write, and CancelJob's retry cancelled the RUNNING
            # job outright: a legal edge, but the lease holder is never asked; pinned as a bug by
            # test_cancel_racing_a_claim_only_requests_cancellation below.
            outcomes["claimed_then_cancelled_outright"] += 1
        else:
            wrong.append(f"{job.id}: claimed, cancelled, and now {final.status}")
        if kinds.count("QUEUED->RUNNING") != times_claimed[job.id]:
            wrong.append(f"{job.id}: {kinds} but claimed {times_claimed[job.id]} times")
        if code == "OK" and reply.job.status not in (
            job_pb2.JOB_STATUS_CANCELLED,
            job_pb2.JOB_STATUS_RUNNING,
        ):
            wrong.append(f"{job.id}: cancel answered {reply.job.status}")
        wrong.extend(f"{job.id}: {p}" for p in history.path_problems(final, events, table))

    history.report(
        "races_claim",
        {
            "jobs": JOBS,
            "claimers": CLAIMERS,
            "claims": len(claimed),
            "claimed_more_than_once": sum(n > 1 for n in times_claimed.values()),
            "outcomes": dict(sorted(outcomes.items())),
            "violations": len(wrong),
        },
        tmp_path,
    )
    assert wrong == [], wrong[:10]
    assert outcomes["cancelled_before_any_claim"] + len(times_claimed) == JOBS


@pytest.mark.timeout(60)
async def test_cancel_racing_a_claim_only_requests_cancellation(tmp_path: Path) -> None:
    server = faultproc.ServerProcess(tmp_path, _config(tmp_path))
    outright = []
    with faultproc.cleanup(server):
        await server.start()
        async with faultproc.connections(server.address, 2) as (client, worker):
            for _ in range(20):
                job = await flows.create(client, "pair")
                claim = worker.workers.ClaimJobs(
                    worker_service_pb2.ClaimJobsRequest(
                        worker_id="w", job_types=["pair"], lease_duration=LONG_LEASE
                    )
                )
                cancel = client.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id, reason="race"))
                claimed, _ = await asyncio.gather(claim, cancel)
                events = await history.all_events(client, job.id)
                if claimed.claims and "RUNNING->CANCELLED" in flows.kinds(events):
                    outright.append(flows.kinds(events))
    assert outright == [], f"{len(outright)} of 20 claimed jobs cancelled outright, e.g. {outright[0]}"
