"""DeleteJob and retention through a real server (gRPC on loopback, the SDK), on every database.

Time is the server's own clock, moved by the test: "a week has passed" is a fact, not a wait, and
the retention loop is then awaited by a bounded poll of what the server answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from support import pg, rpc
from support.clock import MovedClock

from jobwarden import errors
from jobwarden.client import Client, Job, JobStatus
from jobwarden.v1 import job_service_pb2
from jobwarden_server import app
from jobwarden_server.domain.auth import Role
from jobwarden_server.domain.retention import Retention
from jobwarden_server.domain.status import JobStatus as Status
from jobwarden_server.service import retention as retention_service
from jobwarden_server.settings import Settings

TOKENS = {
    "token-a": ("alice", frozenset({Role.CLIENT, Role.WORKER})),
    "token-b": ("bob", frozenset({Role.CLIENT})),
}
DAY = dt.timedelta(days=1)


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, backend: str, clock: MovedClock, retention: Retention | None = None
) -> AsyncIterator[app.RunningServer]:
    async with contextlib.AsyncExitStack() as stack:
        if backend == "postgres":
            database = await stack.enter_async_context(pg.throwaway_database())
        else:
            database = rpc.database_url(tmp_path)
        settings = Settings(
            listen="127.0.0.1:0",
            database=database,
            principals_by_hash=rpc.principals(TOKENS),
            retention=retention or Retention(),
        )
        yield await stack.enter_async_context(app.running(settings, clock=clock))


@pytest.fixture
def clock() -> MovedClock:
    return MovedClock(dt.datetime.now(dt.UTC))


@pytest.fixture
async def alice(tmp_path: Path, backend: str, clock: MovedClock) -> AsyncIterator[Client]:
    async with serving(tmp_path, backend, clock) as srv, Client(srv.address, token="token-a") as client:
        yield client


async def _finished(client: Client, job_type: str = "demo", *, ok: bool = True) -> Job:
    """A job run to COMPLETED (or FAILED), with an asset and a progress report on the way."""
    job = await client.create_job(job_type, {"n": 1})
    [claim] = await client.claim_jobs("w", [job_type])
    await client.report_progress(job.id, claim.lease_token, 50, "halfway")
    await client.add_asset(job.id, claim.lease_token, "image", f"s3://b/{job.id}.png")
    if ok:
        return await client.complete_job(job.id, claim.lease_token, {"ok": True})
    return await client.fail_job(job.id, claim.lease_token, "broken", retryable=False)


async def test_a_deleted_job_is_gone_with_its_events_and_assets(alice: Client) -> None:
    job = await _finished(alice)
    kept = await _finished(alice)
    [asset] = (await alice.list_assets(job.id))[0]

    await alice.delete_job(job.id)

    for gone in (
        alice.get_job(job.id),
        alice.list_job_events(job.id),
        alice.list_assets(job.id),
        alice.get_asset(asset.id),
        alice.delete_job(job.id),  # a new delete of a job that is gone
    ):
        with pytest.raises(errors.NotFound):
            await gone
    with pytest.raises(errors.NotFound):
        async for _ in alice.watch_job(job.id):  # a watch opened after the delete
            pass
    assert [j.id for j in (await alice.list_jobs())[0]] == [kept.id]
    assert len((await alice.list_job_events(kept.id))[0]) == 5


async def test_a_retried_delete_is_answered_as_the_first(alice: Client) -> None:
    job = await _finished(alice)
    await alice.delete_job(job.id, request_id="delete-1")
    await alice.delete_job(job.id, request_id="delete-1")  # the retry after a lost reply: OK again
    other = await _finished(alice)
    with pytest.raises(errors.RequestIdMismatch):
        await alice.delete_job(other.id, request_id="delete-1")
    assert (await alice.get_job(other.id)).status is JobStatus.COMPLETED


async def test_an_unfinished_job_is_refused_until_it_is_cancelled(alice: Client) -> None:
    queued = await alice.create_job("demo")
    held = await alice.create_job("demo", hold=True)
    running = await alice.create_job("other")
    await alice.claim_jobs("w", ["other"])
    for job, status in ((queued, "QUEUED"), (held, "CREATED"), (running, "RUNNING")):
        with pytest.raises(errors.JobNotTerminal) as refused:
            await alice.delete_job(job.id)
        assert (refused.value.status, refused.value.code) == (status, grpc.StatusCode.FAILED_PRECONDITION)
        assert "cancel it first" in refused.value.message
        assert (await alice.get_job(job.id)).status is JobStatus(status)
        assert len((await alice.list_job_events(job.id))[0]) >= 1

    await alice.cancel_job(queued.id)
    await alice.delete_job(queued.id)
    with pytest.raises(errors.NotFound):
        await alice.get_job(queued.id)


async def test_a_finished_watch_ends_and_the_raw_answers_carry_their_reasons(
    tmp_path: Path, backend: str, clock: MovedClock
) -> None:
    async with (
        serving(tmp_path, backend, clock) as srv,
        Client(srv.address, token="token-a") as alice,
        rpc.stubs(srv.address, "token-a") as a,
        rpc.stubs(srv.address, "token-b") as bob,
    ):
        job = await _finished(alice)
        seen = [item async for item in alice.watch_job(job.id)]  # ends by itself: the job is terminal
        assert len(seen) == 1 + 5
        queued = await alice.create_job("demo")

        refused = await rpc.fails(
            bob.jobs.DeleteJob(job_service_pb2.DeleteJobRequest(job_id=job.id), metadata=bob.metadata)
        )
        assert (refused.code, refused.reason) == (
            grpc.StatusCode.NOT_FOUND,
            "NOT_FOUND",
        )  # bob's: no such job
        refused = await rpc.fails(
            a.jobs.DeleteJob(job_service_pb2.DeleteJobRequest(job_id=queued.id), metadata=a.metadata)
        )
        assert (refused.code, refused.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "JOB_NOT_TERMINAL")
        assert refused.metadata == {"job_id": queued.id, "status": "QUEUED"}

        await a.jobs.DeleteJob(job_service_pb2.DeleteJobRequest(job_id=job.id), metadata=a.metadata)
        watch = a.jobs.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id), metadata=a.metadata)
        refused = await rpc.fails(watch.read())
        assert (refused.code, refused.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")


async def test_retention_deletes_exactly_the_expired_jobs_by_type_and_status(
    tmp_path: Path, backend: str, clock: MovedClock
) -> None:
    """Completed jobs are kept 7 days, failed 30, `report` jobs completed 1 day; cancelled ones for
    good. The loop runs every 50 ms on the server's (moved) clock, while clients keep writing."""
    policy = Retention(
        by_status={Status.COMPLETED: 7 * 86400.0, Status.FAILED: 30 * 86400.0},
        by_type={"report": {Status.COMPLETED: 86400.0}},
        interval_s=0.05,
    )
    async with (
        serving(tmp_path, backend, clock, policy) as srv,
        Client(srv.address, token="token-a") as alice,
    ):
        done = await _finished(alice)
        report = await _finished(alice, "report")
        report_failed = await _finished(alice, "report", ok=False)
        failed = await _finished(alice, ok=False)
        cancelled = await alice.create_job("demo")
        await alice.cancel_job(cancelled.id)
        waiting_job = await alice.create_job("demo", hold=True)
        clock.now += 2 * DAY
        recent = await _finished(alice, "report")  # ended two days after the others

        async def ids() -> set[str]:
            return {j.id async for j in alice.iter_jobs()}

        everyone = {done.id, report.id, report_failed.id, failed.id, cancelled.id, waiting_job.id, recent.id}
        await _until(ids, everyone - {report.id})  # a day's retention for `report`, passed
        clock.now += 6 * DAY  # 8 days after the first ones, 6 after `recent`
        await _until(ids, everyone - {report.id, done.id, recent.id})
        clock.now += 30 * DAY
        await _until(ids, {cancelled.id, waiting_job.id})

        # The loop goes on deleting while clients write: none of their writes fails.
        made = await asyncio.gather(*(_finished(alice, f"w{i}") for i in range(6)))
        clock.now += 8 * DAY
        await _until(ids, {cancelled.id, waiting_job.id})
        assert all(job.status is JobStatus.COMPLETED for job in made)


async def _until(ids: Callable[[], Awaitable[set[str]]], expected: set[str]) -> None:
    """Poll what the server lists until it is `expected` (bounded: TimeoutError after 10 s)."""
    last: set[str] = set()

    async def matches() -> bool:
        nonlocal last
        last = await ids()
        return last == expected

    try:
        async with asyncio.timeout(10):
            while not await matches():  # noqa: ASYNC110 - the server's loop offers nothing to await
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"jobs left {sorted(last)}, expected {sorted(expected)}") from None


async def test_a_backlog_is_cleared_in_bounded_passes_one_after_another(
    tmp_path: Path, backend: str, clock: MovedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each pass stops after one batch here (its time budget made zero); the loop starts the next at
    once instead of waiting its (hour-long) interval, until nothing is left."""
    monkeypatch.setattr(retention_service, "PASS_S", 0.0)
    policy = Retention(by_status={Status.CANCELLED: 60.0}, batch=4, interval_s=3600.0)
    async with serving(tmp_path, backend, clock) as srv, Client(srv.address, token="token-a") as alice:
        jobs = [await alice.create_job("demo", hold=True) for _ in range(10)]
        for job in jobs:
            await alice.cancel_job(job.id)
        kept = await alice.create_job("demo")
        clock.now += DAY
        loop = retention_service.RetentionLoop(srv.store, policy, clock)
        assert await loop.sweep() == 4  # one batch, and the pass is over

        stop = asyncio.Event()
        running = asyncio.create_task(loop.run(stop))
        try:
            await _until(lambda: _ids(alice), {kept.id})
        finally:
            stop.set()
            await asyncio.wait_for(running, 10)


async def _ids(client: Client) -> set[str]:
    return {j.id async for j in client.iter_jobs()}
