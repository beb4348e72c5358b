"""The SDK's managed Worker against a real in-process server: outcomes, cancellation, leases, shutdown."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from support import rpc

from jobwarden import errors
from jobwarden.client import (
    Client,
    EventKind,
    Job,
    JobContext,
    JobEvent,
    JobStatus,
    PartialResult,
    PermanentError,
    Progress,
    StopReason,
    Worker,
)
from jobwarden_server import app
from jobwarden_server.domain.auth import Role
from jobwarden_server.domain.retry import RetryPolicy

NO_BACKOFF = RetryPolicy(initial_backoff_s=0.0, max_backoff_s=0.0)
WAIT = 20.0
"""Upper bound, in seconds, on waiting for anything here; tests normally take a fraction of it."""


@pytest.fixture
async def client(srv: app.RunningServer) -> AsyncIterator[Client]:
    async with Client(srv.address) as c:
        yield c


async def claims_settled() -> None:
    """Waits until the in-process server has finished every ClaimJobs call, including the long-poll a
    stopping worker cancels.

    Works around a server bug (not the SDK's): when the server is stopped while a ClaimJobs call that
    its client cancelled mid-query is still closing its SQLite connection, that call never finishes
    (SQLAlchemy's aiosqlite graceful close waits forever once the store is closed), leaking the
    connection and hanging the event loop's shutdown. gRPC names each call's task after its method.
    """
    calls = [t for t in asyncio.all_tasks() if t.get_name().endswith("/ClaimJobs]") and not t.done()]
    if calls:
        async with asyncio.timeout(WAIT):
            await asyncio.wait(calls)


async def stopped(worker: Worker, run: asyncio.Task[None]) -> None:
    """Stops the worker and waits for run() to return and the server to settle its claims."""
    worker.stop()
    async with asyncio.timeout(WAIT):
        await run
    await claims_settled()


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    """Runs the worker for the block; then stops it and waits for run() to return."""
    task = asyncio.create_task(worker.run())
    try:
        yield task
    finally:
        await stopped(worker, task)


async def watch_to_end(client: Client, job_id: str) -> tuple[Job, list[JobEvent]]:
    """Watches a job until the server ends the stream (its terminal event); returns the snapshot and
    the events, and checks the events come in sequence without gaps."""
    snapshot: Job | None = None
    seen: list[JobEvent] = []
    async with asyncio.timeout(WAIT):
        async for item in client.watch_job(job_id):
            if isinstance(item, Job):
                snapshot = item
            else:
                assert isinstance(item, JobEvent)
                seen.append(item)
    assert snapshot is not None
    assert [e.sequence for e in seen] == list(range(1, len(seen) + 1))
    return snapshot, seen


async def finished(client: Client, job_id: str) -> Job:
    """The job once it has reached a terminal status (waits by watching it)."""
    await watch_to_end(client, job_id)
    job = await client.get_job(job_id)
    assert job.is_terminal, job
    return job


def shape(events: list[JobEvent]) -> list[str]:
    """Each event as a short string: the kind, plus from->to for transitions."""
    out = []
    for e in events:
        if e.kind is EventKind.TRANSITION:
            out.append(f"{e.from_status}->{e.to_status}")
        else:
            out.append(str(e.kind))
    return out


# --- outcomes ----------------------------------------------------------------------------------------


async def test_returned_dict_completes_the_job_with_progress_and_asset_in_order(client: Client) -> None:
    job = await client.create_job("render", {"frames": 2})
    watcher = asyncio.create_task(watch_to_end(client, job.id))
    seen_by_handler: list[tuple[str, JobStatus, dict[str, Any], str, str]] = []
    worker = Worker(client, worker_id="w-sdk", concurrency=1, poll_wait=5)

    @worker.handler("render")
    async def render(ctx: JobContext) -> dict[str, Any]:
        seen_by_handler.append((ctx.job.id, ctx.job.status, ctx.parameters, ctx.worker_id, ctx.lease_token))
        await ctx.progress(50, "halfway", done=1, total=2)
        asset = await ctx.add_asset("image", "s3://bucket/out.png", size_bytes=10, content_type="image/png")
        return {"uri": asset.uri, "asset_id": asset.id, "frames": 2}

    async with running(worker):
        snapshot, events = await watcher
    assert snapshot.id == job.id

    [(job_id, status, parameters, worker_id, lease)] = seen_by_handler
    assert (job_id, status, parameters, worker_id) == (job.id, JobStatus.RUNNING, {"frames": 2.0}, "w-sdk")
    assert lease

    assert shape(events) == ["created", "QUEUED->RUNNING", "progress", "asset_added", "RUNNING->COMPLETED"]
    assert events[1].actor == events[4].actor == "worker:w-sdk"
    assert events[2].progress == Progress(percent=50, message="halfway", done=1, total=2)
    asset = events[3].asset
    assert asset is not None
    assert (asset.asset_type, asset.uri, asset.size_bytes, asset.content_type) == (
        "image",
        "s3://bucket/out.png",
        10,
        "image/png",
    )

    done = await client.get_job(job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.result == {"uri": "s3://bucket/out.png", "asset_id": asset.id, "frames": 2.0}
    assert done.error is None
    assert (done.attempt, done.worker_id, done.progress.percent) == (1, "w-sdk", 100)
    assets, _ = await client.list_assets(job.id)
    assert assets == [asset]


async def test_handler_returning_none_completes_with_empty_result(client: Client) -> None:
    job = await client.create_job("demo")
    worker = Worker(client, concurrency=1, poll_wait=5)

    @worker.handler("demo")
    async def nothing(ctx: JobContext) -> None:
        return None

    async with running(worker):
        done = await finished(client, job.id)
    assert done.status is JobStatus.COMPLETED
    assert done.result == {}


async def test_permanent_error_fails_the_job_without_retry(client: Client) -> None:
    job = await client.create_job("demo", max_attempts=3)
    calls: list[str] = []
    worker = Worker(client, concurrency=1, poll_wait=5)

    @worker.handler("demo")
    async def refuse(ctx: JobContext) -> dict[str, Any]:
        calls.append(ctx.job.id)
        raise PermanentError(
            "bad input: no frames", reason="BAD_INPUT", stop_reason=StopReason.VALIDATION_ERROR
        )

    async with running(worker):
        failed = await finished(client, job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert (failed.error.message, failed.error.reason, failed.error.retryable) == (
        "bad input: no frames",
        "BAD_INPUT",
        False,
    )
    assert failed.stop_reason is StopReason.VALIDATION_ERROR
    assert failed.attempt == 1
    assert calls == [job.id]
    events = [e async for e in client.iter_job_events(job.id)]
    assert shape(events) == ["created", "QUEUED->RUNNING", "RUNNING->FAILED"]


async def test_plain_exception_on_last_attempt_fails_with_its_message(client: Client) -> None:
    job = await client.create_job("demo", max_attempts=1)
    calls: list[str] = []
    worker = Worker(client, concurrency=1, poll_wait=5)

    @worker.handler("demo")
    async def crash(ctx: JobContext) -> dict[str, Any]:
        calls.append(ctx.job.id)
        raise RuntimeError("disk full on /scratch")

    async with running(worker):
        failed = await finished(client, job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.message == "disk full on /scratch"
    assert failed.error.reason == "RuntimeError"
    assert failed.stop_reason is StopReason.MAX_ATTEMPTS_EXCEEDED
    assert failed.attempt == 1
    assert calls == [job.id]


async def test_plain_exception_is_retried_while_attempts_are_left(tmp_path: Path) -> None:
    async with rpc.server(tmp_path, retry=NO_BACKOFF) as srv, Client(srv.address) as client:
        job = await client.create_job("demo", max_attempts=2)
        attempts: list[int] = []
        worker = Worker(client, concurrency=1, poll_wait=5)

        @worker.handler("demo")
        async def flaky(ctx: JobContext) -> dict[str, Any]:
            attempts.append(ctx.job.attempt)
            if ctx.job.attempt == 1:
                raise ConnectionError("provider timed out")
            return {"attempt": ctx.job.attempt}

        async with running(worker):
            done = await finished(client, job.id)
        assert attempts == [1, 2]
        assert done.status is JobStatus.COMPLETED
        assert (done.attempt, done.result) == (2, {"attempt": 2.0})
        events = [e async for e in client.iter_job_events(job.id)]
        assert shape(events) == [
            "created",
            "QUEUED->RUNNING",
            "RUNNING->QUEUED",
            "QUEUED->RUNNING",
            "RUNNING->COMPLETED",
        ]
        assert "provider timed out" in events[2].reason


async def test_partial_result_finishes_partial(client: Client) -> None:
    job = await client.create_job("demo")
    worker = Worker(client, concurrency=1, poll_wait=5)

    @worker.handler("demo")
    async def half(ctx: JobContext) -> PartialResult:
        return PartialResult({"done": ["a", "b"]}, error_message="c and d failed")

    async with running(worker):
        partial = await finished(client, job.id)
    assert partial.status is JobStatus.PARTIAL
    assert partial.result == {"done": ["a", "b"]}
    assert partial.error is not None and partial.error.message == "c and d failed"
    assert partial.attempt == 1


async def test_non_dict_return_fails_the_job(client: Client) -> None:
    job = await client.create_job("demo", max_attempts=3)
    worker = Worker(client, concurrency=1, poll_wait=5)

    @worker.handler("demo")
    async def wrong(ctx: JobContext) -> Any:
        return ["not", "a", "dict"]

    async with running(worker):
        failed = await finished(client, job.id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None and "not a dict" in failed.error.message
    assert failed.attempt == 1


# --- numbers in parameters and results ---------------------------------------------------------------

MAX_SAFE = 9007199254740991
"""2^53 - 1: the largest integer a JSON number (an IEEE double) holds exactly."""


def types(value: Any) -> Any:
    """The value with every leaf replaced by its exact type, so ``640`` and ``640.0`` differ."""
    if isinstance(value, dict):
        return {key: types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [types(item) for item in value]
    return type(value)


async def test_integers_in_parameters_and_results_come_back_as_ints(client: Client) -> None:
    parameters = {"width": 640, "ratio": 0.5, "ids": [1, 2, MAX_SAFE], "nested": {"n": 3}}
    sent_types = {"width": int, "ratio": float, "ids": [int, int, int], "nested": {"n": int}}
    job = await client.create_job("resize", parameters)
    assert (job.parameters, types(job.parameters)) == (parameters, sent_types)
    seen: list[dict[str, Any]] = []
    worker = Worker(client, concurrency=1, poll_wait=5)

    @worker.handler("resize")
    async def resize(ctx: JobContext) -> dict[str, Any]:
        seen.append(ctx.parameters)
        columns = list(range(ctx.parameters["width"]))  # what broke while integers came back as floats
        return {"columns": len(columns), "last_id": ctx.parameters["ids"][-1], "scale": 1.5, "ok": True}

    async with running(worker):
        done = await finished(client, job.id)
    assert done.status is JobStatus.COMPLETED
    assert [(p, types(p)) for p in seen] == [(parameters, sent_types)]
    assert done.result == {"columns": 640, "last_id": MAX_SAFE, "scale": 1.5, "ok": True}
    assert done.result is not None and types(done.result) == {
        "columns": int,
        "last_id": int,
        "scale": float,
        "ok": bool,
    }
    assert type(done.parameters["width"]) is int and type(done.parameters["nested"]["n"]) is int
    [listed], _ = await client.list_jobs(job_types=["resize"])
    assert types(listed.parameters) == sent_types


async def test_numbers_no_double_holds_are_refused_before_sending(client: Client) -> None:
    with pytest.raises(ValueError, match=r"^parameters\.ids\[2\]: 9007199254740992 is beyond"):
        await client.create_job("resize", {"ids": [1, 2, MAX_SAFE + 1]})
    assert (await client.list_jobs())[0] == []

    job = await client.create_job("resize", {"width": 640})
    worker = Worker(client, concurrency=1, poll_wait=5)

    @worker.handler("resize")
    async def too_big(ctx: JobContext) -> dict[str, Any]:
        return {"checksum": 2**64}

    async with running(worker):
        failed = await finished(client, job.id)
    assert failed.status is JobStatus.FAILED  # the handler's bug: retrying would only repeat it
    assert failed.error is not None and not failed.error.retryable
    assert "result.checksum: 18446744073709551616 is beyond" in failed.error.message
    assert failed.result is None


# --- cancellation ------------------------------------------------------------------------------------


async def test_handler_waiting_on_cancelled_stops_and_job_is_cancelled(client: Client) -> None:
    job = await client.create_job("demo")
    started = asyncio.Event()
    saw_cancel: list[bool] = []
    # A short lease makes the heartbeat, which brings the cancel request back, come often.
    worker = Worker(client, concurrency=1, poll_wait=5, lease_duration=1.5)

    @worker.handler("demo")
    async def patient(ctx: JobContext) -> dict[str, Any]:
        started.set()
        await ctx.cancelled.wait()
        saw_cancel.append(ctx.cancel_requested)
        return {"ignored": True}

    async with running(worker):
        async with asyncio.timeout(WAIT):
            await started.wait()
        requested = await client.cancel_job(job.id, "no longer needed")
        assert requested.status is JobStatus.RUNNING and requested.cancel_requested
        cancelled = await finished(client, job.id)

    assert saw_cancel == [True]
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.stop_reason is StopReason.USER_CANCELLED
    assert cancelled.result is None  # what the handler returned after the cancel is not recorded
    events = [e async for e in client.iter_job_events(job.id)]
    assert shape(events) == ["created", "QUEUED->RUNNING", "cancel_requested", "RUNNING->CANCELLED"]
    assert events[2].reason == "no longer needed"
    assert events[3].stop_reason is StopReason.USER_CANCELLED


async def test_handler_ignoring_cancel_is_cancelled_after_the_grace(client: Client) -> None:
    job = await client.create_job("demo")
    started = asyncio.Event()
    interrupted: list[bool] = []
    worker = Worker(client, concurrency=1, poll_wait=5, lease_duration=1.5, cancel_grace=0.2)

    @worker.handler("demo")
    async def stubborn(ctx: JobContext) -> dict[str, Any]:
        started.set()
        try:
            await asyncio.Event().wait()  # never set: only cancellation ends this
        except asyncio.CancelledError:
            interrupted.append(ctx.cancel_requested)
            raise
        return {}

    async with running(worker):
        async with asyncio.timeout(WAIT):
            await started.wait()
        await client.cancel_job(job.id)
        cancelled = await finished(client, job.id)
    assert interrupted == [True]
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.stop_reason is StopReason.USER_CANCELLED


# --- leases ------------------------------------------------------------------------------------------


async def test_heartbeats_keep_the_lease_while_the_handler_outlives_it(client: Client) -> None:
    lease = 2.0
    job = await client.create_job("slow")
    started = asyncio.Event()
    release = asyncio.Event()
    worker = Worker(client, worker_id="w-hb", concurrency=1, poll_wait=5, lease_duration=lease)

    @worker.handler("slow")
    async def slow(ctx: JobContext) -> dict[str, Any]:
        started.set()
        await release.wait()  # reports nothing itself: only the worker's heartbeats renew the lease
        return {"ok": True}

    loop = asyncio.get_running_loop()
    async with running(worker):
        async with asyncio.timeout(WAIT):
            await started.wait()
        began = loop.time()
        async with asyncio.timeout(WAIT):
            while True:
                current = await client.get_job(job.id)
                assert current.status is JobStatus.RUNNING, current
                assert (current.attempt, current.worker_id) == (1, "w-hb")
                assert current.start_time is not None and current.update_time is not None
                # The server accepted a renewal after the first lease would have lapsed, and more than
                # one lease period has passed here too.
                renewed_late = (current.update_time - current.start_time).total_seconds() > lease
                if renewed_late and loop.time() - began > lease:
                    break
                await asyncio.sleep(0.2)  # polling interval, not synchronisation
        release.set()
        done = await finished(client, job.id)

    assert done.status is JobStatus.COMPLETED
    assert (done.attempt, done.result) == (1, {"ok": True})
    # Heartbeats repeat the last progress: they renew the lease without adding events.
    events = [e async for e in client.iter_job_events(job.id)]
    assert shape(events) == ["created", "QUEUED->RUNNING", "RUNNING->COMPLETED"]


class HeldHeartbeatClient(Client):
    """Holds the first progress report (the worker's first heartbeat: the handler waits for it) until the
    handler starts a report of its own, and counts reports in flight at once."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.sent: list[float] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.heartbeat_held = asyncio.Event()
        self.handler_reporting = asyncio.Event()
        self.third_sent = asyncio.Event()

    async def report_progress(
        self,
        job_id: str,
        lease_token: str,
        percent: float,
        message: str = "",
        done: int = 0,
        total: int = 0,
        *,
        request_id: str | None = None,
    ) -> tuple[datetime | None, bool]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if not self.heartbeat_held.is_set():
                self.heartbeat_held.set()
                await self.handler_reporting.wait()
            self.sent.append(percent)
            if len(self.sent) == 3:
                self.third_sent.set()
            return await super().report_progress(
                job_id, lease_token, percent, message, done, total, request_id=request_id
            )
        finally:
            self.in_flight -= 1


async def test_a_heartbeat_in_flight_never_overtakes_the_handlers_progress(srv: app.RunningServer) -> None:
    async with HeldHeartbeatClient(srv.address) as client:
        job = await client.create_job("demo")
        # Heartbeats are the polling worker's: a session's leases are renewed by the server.
        worker = Worker(client, concurrency=1, poll_wait=5, lease_duration=1.5, session=False)

        @worker.handler("demo")
        async def report(ctx: JobContext) -> dict[str, Any]:
            await client.heartbeat_held.wait()  # the worker's first heartbeat is on its way
            client.handler_reporting.set()
            await ctx.progress(50, "halfway")
            await client.third_sent.wait()  # one more heartbeat, after the handler's report
            return {}

        async with running(worker):
            done = await finished(client, job.id)

    # One report at a time, in order: the heartbeat that started first went first, and the heartbeat
    # after the handler's report resends the handler's progress, not what the first heartbeat carried.
    assert client.most_in_flight == 1
    assert client.sent == [0, 50, 50]
    assert done.status is JobStatus.COMPLETED
    async with Client(srv.address) as reader:
        progress = [e.progress async for e in reader.iter_job_events(job.id) if e.kind is EventKind.PROGRESS]
    assert progress == [Progress(percent=50, message="halfway")]


async def test_lost_lease_abandons_the_job_without_reporting(client: Client) -> None:
    job = await client.create_job("demo")
    leases: list[str] = []
    started = asyncio.Event()
    abandoned = asyncio.Event()
    worker = Worker(client, concurrency=1, poll_wait=5, lease_duration=1.5)

    @worker.handler("demo")
    async def endless(ctx: JobContext) -> dict[str, Any]:
        leases.append(ctx.lease_token)
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            abandoned.set()
            raise
        return {}

    async with running(worker):
        async with asyncio.timeout(WAIT):
            await started.wait()
        # Someone else ends the attempt under the same lease (as a lease rescue would): from now on the
        # worker's lease is stale, and its next heartbeat finds out.
        taken = await client.fail_job(job.id, leases[0], "taken over")
        assert taken.status is JobStatus.FAILED
        history = [e async for e in client.iter_job_events(job.id)]
        async with asyncio.timeout(WAIT):
            await abandoned.wait()

    # The worker reported nothing more: the job is exactly as the takeover left it.
    assert await client.get_job(job.id) == taken
    assert [e async for e in client.iter_job_events(job.id)] == history


@pytest.mark.parametrize(
    ("token", "expected"),
    [("wrong-token", errors.Unauthenticated), ("token-client", errors.PermissionDenied)],
)
async def test_worker_stops_when_it_may_not_claim(
    tmp_path: Path, token: str, expected: type[errors.JobwardenError]
) -> None:
    tokens = {"token-client": ("alice", frozenset({Role.CLIENT}))}
    async with (
        rpc.server(tmp_path, principals_by_hash=rpc.principals(tokens)) as srv,
        Client(srv.address, token=token) as client,
    ):
        worker = Worker(client, concurrency=1, poll_wait=5)

        @worker.handler("demo")
        async def never(ctx: JobContext) -> None:
            raise AssertionError("nothing can be claimed")

        with pytest.raises(expected):
            async with asyncio.timeout(WAIT):
                await worker.run()


# --- shutdown ----------------------------------------------------------------------------------------


async def test_stop_hands_a_running_job_back(tmp_path: Path) -> None:
    async with rpc.server(tmp_path, retry=NO_BACKOFF) as srv, Client(srv.address) as client:
        job = await client.create_job("demo", max_attempts=3)
        started = asyncio.Event()
        interrupted: list[bool] = []
        worker = Worker(client, concurrency=1, poll_wait=5, shutdown_grace=0.1)

        @worker.handler("demo")
        async def endless(ctx: JobContext) -> dict[str, Any]:
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                interrupted.append(True)
                raise
            return {}

        run = asyncio.create_task(worker.run())
        async with asyncio.timeout(WAIT):
            await started.wait()
        assert worker.running_jobs == 1
        await stopped(worker, run)
        assert interrupted == [True]
        assert worker.running_jobs == 0

        handed_back = await client.get_job(job.id)
        assert handed_back.status is JobStatus.QUEUED
        assert handed_back.attempt == 1
        assert handed_back.error is not None
        assert (handed_back.error.message, handed_back.error.retryable) == ("worker shutting down", True)
        assert (await client.list_jobs(statuses=[JobStatus.RUNNING]))[0] == []
        # Another worker can take it at once.
        [claim] = await client.claim_jobs("w2", ["demo"])
        assert (claim.job.id, claim.job.attempt) == (job.id, 2)


async def test_stop_lets_a_running_handler_finish_and_claims_no_more(client: Client) -> None:
    first = await client.create_job("demo")
    second = await client.create_job("demo")
    started = asyncio.Event()
    release = asyncio.Event()
    ran: list[str] = []
    worker = Worker(client, concurrency=1, poll_wait=5, shutdown_grace=WAIT)

    @worker.handler("demo")
    async def handle(ctx: JobContext) -> dict[str, Any]:
        ran.append(ctx.job.id)
        started.set()
        await release.wait()
        return {"ok": True}

    run = asyncio.create_task(worker.run())
    async with asyncio.timeout(WAIT):
        await started.wait()
    worker.stop()
    assert not run.done()
    release.set()
    async with asyncio.timeout(WAIT):
        await run
    await claims_settled()

    assert ran == [first.id]
    assert (await client.get_job(first.id)).status is JobStatus.COMPLETED
    untouched = await client.get_job(second.id)
    assert (untouched.status, untouched.attempt) == (JobStatus.QUEUED, 0)
    assert (await client.list_jobs(statuses=[JobStatus.RUNNING]))[0] == []


# --- concurrency -------------------------------------------------------------------------------------


async def test_concurrency_four_runs_twenty_jobs_each_exactly_once(client: Client) -> None:
    jobs = [await client.create_job("batch", {"i": i}) for i in range(20)]
    runs: collections.Counter[str] = collections.Counter()
    in_flight = 0
    most = 0
    four_running = asyncio.Event()
    worker = Worker(client, concurrency=4, poll_wait=5)

    @worker.handler("batch")
    async def handle(ctx: JobContext) -> dict[str, Any]:
        nonlocal in_flight, most
        runs[ctx.job.id] += 1
        in_flight += 1
        most = max(most, in_flight)
        try:
            if most == 4:
                four_running.set()
            # The first handlers hold on until four run at once, which proves the worker fills its slots.
            await four_running.wait()
            await ctx.progress(50)
            return {"i": ctx.parameters["i"]}
        finally:
            in_flight -= 1

    async with running(worker):
        done = await asyncio.gather(*(finished(client, j.id) for j in jobs))

    assert most == 4  # never more than `concurrency` at once
    assert runs == {j.id: 1 for j in jobs}
    assert all(j.status is JobStatus.COMPLETED and j.attempt == 1 for j in done)
    assert [j.result for j in done] == [{"i": float(i)} for i in range(20)]
    completed, _ = await client.list_jobs(statuses=[JobStatus.COMPLETED], page_size=100)
    assert len(completed) == 20
