"""A lifecycle table removed from the config while jobs use it.

The server refuses to start, naming the table and how many unfinished jobs use it. A replica that still
meets such a job (replicas started with different configs) answers FAILED_PRECONDITION /
LIFECYCLE_NOT_CONFIGURED for it, and its reaper goes on rescuing every other job.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from support import flows, pg, rpc
from support.clock import MovedClock

from jobwarden.v1 import job_pb2, job_service_pb2
from jobwarden_server import app, store
from jobwarden_server.domain import errors
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.domain.lifecycle import STANDARD, Lifecycles
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.events.bus import EventBus
from jobwarden_server.service import wiring
from jobwarden_server.service.jobs import JobSpec
from jobwarden_server.service.work import ClaimRequest
from jobwarden_server.settings import Settings

REVIEW = dataclasses.replace(STANDARD, name="review")
WITH_REVIEW = Lifecycles.build([REVIEW], {"review-doc": "review"})
WITHOUT_REVIEW = Lifecycles.build()
WHO = Principal(owner="default", roles=frozenset({Role.CLIENT, Role.WORKER}))
NO_BACKOFF = RetryPolicy(initial_backoff_s=0.0, max_backoff_s=0.0)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """One database that outlives a server, so a second one can start on what the first left."""
    if request.param == "sqlite":
        yield rpc.database_url(tmp_path)
        return
    if not rpc.env_database():
        pytest.fail(
            "the postgres parameter runs only with JOBWARDEN_TEST_DATABASE_URL set (-m 'not postgres')"
        )
    async with pg.throwaway_database() as url:
        yield url


@contextlib.asynccontextmanager
async def _server(database: str, lifecycles: Lifecycles) -> AsyncIterator[rpc.Stubs]:
    settings = Settings(listen="127.0.0.1:0", database=database, lifecycles=lifecycles)
    async with app.running(settings) as srv, rpc.stubs(srv.address) as stubs:
        yield stubs


async def test_the_server_refuses_to_start_without_a_table_unfinished_jobs_use(database: str) -> None:
    async with _server(database, WITH_REVIEW) as stubs:
        for _ in range(3):
            await flows.create(stubs, "review-doc")
        done = await flows.create(stubs, "review-doc", hold=True)
        await stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=done.id))

    with pytest.raises(errors.ConfigError) as refused:
        await app.start(Settings(listen="127.0.0.1:0", database=database, lifecycles=WITHOUT_REVIEW))
    message = str(refused.value)
    assert "'review' (3 unfinished jobs)" in message and "[lifecycles]" in message

    # Once the table is back, the same database serves, and its jobs move along their table again.
    async with _server(database, WITH_REVIEW) as stubs:
        claim = await flows.claim_one(stubs, "review-doc")
        assert (await flows.complete(stubs, claim)).status == job_pb2.JOB_STATUS_COMPLETED


async def test_only_finished_jobs_of_a_removed_table_do_not_stop_the_server(database: str) -> None:
    async with _server(database, WITH_REVIEW) as stubs:
        job = await flows.create(stubs, "review-doc", hold=True)
        await stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id))
    async with _server(database, WITHOUT_REVIEW) as stubs:
        assert (await flows.get(stubs, job.id)).status == job_pb2.JOB_STATUS_CANCELLED


async def test_a_replica_without_the_table_refuses_its_jobs_and_rescues_the_others(database: str) -> None:
    await store.migrate(database)
    db = store.open_store(database)
    clock = MovedClock(dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC))
    try:
        # A replica with the table creates and leases one job of each kind ...
        old = wiring.build(db, EventBus(), WITH_REVIEW, NO_BACKOFF, clock=clock)
        for job_type in ("review-doc", "demo"):
            await old.jobs.create(WHO, JobSpec(job_type=job_type))
        held = await old.work.claim(
            WHO,
            ClaimRequest(
                worker_id="w1", job_types=frozenset({"review-doc", "demo"}), max_jobs=2, lease_duration_s=5
            ),
        )
        by_type = {job.job_type: job for job in held}
        clock.now += dt.timedelta(seconds=60)  # both leases have run out

        # ... and one started without it meets them.
        new = wiring.build(db, EventBus(), WITHOUT_REVIEW, NO_BACKOFF, clock=clock)
        with pytest.raises(errors.LifecycleNotConfigured) as refused:
            await new.jobs.cancel(WHO, by_type["review-doc"].id, "", "")
        assert refused.value.metadata == {"lifecycle": "review"}
        assert await new.reaper.tick() == 1
        assert (await db.job_get(None, by_type["demo"].id)).status is JobStatus.QUEUED
        assert (await db.job_get(None, by_type["review-doc"].id)).status is JobStatus.RUNNING

        # The replica that has the table rescues the rest.
        assert await old.reaper.tick() == 1
        assert (await db.job_get(None, by_type["review-doc"].id)).status is JobStatus.QUEUED
    finally:
        await db.close()


async def test_a_missing_table_is_failed_precondition_on_the_wire(database: str) -> None:
    # Replicas with different configs: the one without the table started before any job used it.
    async with _server(database, WITHOUT_REVIEW) as without, _server(database, WITH_REVIEW) as with_:
        job = await flows.create(with_, "review-doc")
        failure = await rpc.fails(without.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id)))
        assert (failure.code, failure.reason) == (
            grpc.StatusCode.FAILED_PRECONDITION,
            "LIFECYCLE_NOT_CONFIGURED",
        )
        assert failure.metadata == {"lifecycle": "review"}
        assert (await flows.get(with_, job.id)).status == job_pb2.JOB_STATUS_QUEUED
