"""Every status change is checked against the job's lifecycle table; an illegal one changes nothing."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from support import flows, rpc

from jobwarden.v1 import job_pb2, job_service_pb2
from jobwarden_server import store as store_mod
from jobwarden_server.domain import decisions, errors
from jobwarden_server.domain.changes import Decision
from jobwarden_server.domain.lifecycle import BUILTIN, Lifecycles
from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.events.bus import EventBus
from jobwarden_server.observability.metrics import Metrics
from jobwarden_server.service.writer import JobWriter, utc_now

LIFECYCLES = Lifecycles.build(by_job_type={"simple-job": "simple", "staged-job": "staged"})


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[store_mod.Store]:
    url = rpc.database_url(tmp_path)
    await store_mod.migrate(url)
    opened = store_mod.open_store(url)
    try:
        yield opened
    finally:
        await opened.close()


async def _job_in(db: store_mod.Store, lifecycle: str, status: JobStatus, n: int) -> str:
    result = await db.job_create(
        store_mod.JobCreateParams(
            id=f"{lifecycle}-{n}",
            owner="o",
            job_type="t",
            lifecycle=lifecycle,
            status=status,
            parameters={},
            priority=0,
            labels={},
            max_attempts=3,
            run_after=None,
            deadline=None,
            callback_url="",
            request_id="",
            request_fingerprint="",
            now=utc_now(),
            actor="test",
        )
    )
    return result.change.job.id


@pytest.mark.parametrize("lifecycle", sorted(BUILTIN))
async def test_every_pair_of_every_builtin_table(db: store_mod.Store, lifecycle: str) -> None:
    """Through the one write entry: a legal move is written with its event, an illegal one changes
    nothing (the rule itself is unit-tested in tests/unit/server/test_decisions.py)."""
    table = BUILTIN[lifecycle]
    writer = JobWriter(db, EventBus(), utc_now, Metrics())
    checked = 0
    for n, (a, b) in enumerate(itertools.permutations(JobStatus, 2)):
        job_id = await _job_in(db, lifecycle, a, n)
        before = await db.job_get("o", job_id)

        def move(job: Job, now: object, to: JobStatus = b) -> Decision:
            return decisions.transition(job, table, to, actor="test")

        if table.allows(a, b):
            after = await writer.change("o", job_id, move)
            assert after.status is b
            history = await db.event_list(store_mod.PageParams(owner="o", job_id=job_id, after=0, limit=10))
            assert [e.sequence for e in history] == [1, 2]
            assert (history[1].data["from"], history[1].data["to"]) == (a.value, b.value)
        else:
            with pytest.raises(errors.InvalidTransition) as refused:
                await writer.change("o", job_id, move)
            assert refused.value.metadata["from"] == a.value and refused.value.metadata["to"] == b.value
            assert await db.job_get("o", job_id) == before
            history = await db.event_list(store_mod.PageParams(owner="o", job_id=job_id, after=0, limit=10))
            assert len(history) == 1
        checked += 1
    assert checked == 8 * 7


@pytest.fixture
async def stubs(tmp_path: Path) -> AsyncIterator[rpc.Stubs]:
    async with rpc.server(tmp_path, lifecycles=LIFECYCLES) as srv, rpc.stubs(srv.address) as s:
        yield s


async def _refused(s: rpc.Stubs, call: object, job_id: str, from_: str, to: str) -> None:
    before = await flows.get(s, job_id)
    failure = await rpc.fails(call)  # type: ignore[arg-type]
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_TRANSITION")
    assert (failure.metadata["from"], failure.metadata["to"]) == (from_, to)
    assert await flows.get(s, job_id) == before


async def test_illegal_transitions_over_the_api_are_refused(stubs: rpc.Stubs) -> None:
    done = await flows.create(stubs)
    await flows.complete(stubs, await flows.claim_one(stubs))
    await _refused(
        stubs,
        stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=done.id)),
        done.id,
        "COMPLETED",
        "CANCELLED",
    )
    await _refused(
        stubs,
        stubs.jobs.ReleaseJob(job_service_pb2.ReleaseJobRequest(job_id=done.id)),
        done.id,
        "COMPLETED",
        "QUEUED",
    )
    queued = await flows.create(stubs)
    await _refused(
        stubs,
        stubs.jobs.ReleaseJob(job_service_pb2.ReleaseJobRequest(job_id=queued.id)),
        queued.id,
        "QUEUED",
        "QUEUED",
    )


async def test_simple_table_has_no_cancel(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs, job_type="simple-job")
    assert job.lifecycle == "simple"
    await _refused(
        stubs,
        stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id)),
        job.id,
        "QUEUED",
        "CANCELLED",
    )
    await flows.claim_one(stubs, "simple-job")
    await _refused(
        stubs,
        stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id)),
        job.id,
        "RUNNING",
        "CANCELLED",
    )
    failure = await rpc.fails(flows.create(stubs, job_type="simple-job", hold=True))
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["hold"])


async def test_staged_table_has_no_partial(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs, job_type="staged-job")
    claim = await flows.claim_one(stubs, "staged-job")
    await _refused(stubs, flows.complete(stubs, claim, partial=True), job.id, "RUNNING", "PARTIAL")
    assert (await flows.complete(stubs, claim)).status == job_pb2.JOB_STATUS_COMPLETED
