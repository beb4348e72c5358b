"""The Worker against a fake client, polling with the unary calls (session=False): outcomes, heartbeats,
cancellation, lost leases, shutdown. Work sessions are tested against a real server, in tests/integration."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import pytest

from jobwarden import errors
from jobwarden.client import (
    Claim,
    Client,
    Job,
    JobContext,
    JobStatus,
    PartialResult,
    PermanentError,
    StopReason,
    Worker,
)


class FakeClient(Client):
    """Serves claims from a queue and records every worker call; no network."""

    def __init__(self) -> None:
        super().__init__("fake:0")
        self.queue: asyncio.Queue[Claim] = asyncio.Queue()
        self.claim_sizes: list[int] = []
        self.claim_errors: list[errors.JobwardenError] = []
        self.reports: list[tuple[str, float, str]] = []
        self.report_error: errors.JobwardenError | None = None
        self.cancel_jobs: set[str] = set()
        self.completed: dict[str, tuple[Mapping[str, Any] | None, bool, str]] = {}
        self.failed: dict[str, dict[str, Any]] = {}
        self.finished = asyncio.Event()
        self.reported = asyncio.Event()
        self._n = 0

    def add(self, job_type: str = "echo", **parameters: Any) -> str:
        self._n += 1
        job_id = f"j{self._n}"
        job = Job(id=job_id, job_type=job_type, status=JobStatus.RUNNING, parameters=parameters, attempt=1)
        self.queue.put_nowait(Claim(job=job, lease_token=f"lease-{job_id}"))
        return job_id

    async def claim_jobs(
        self,
        worker_id: str,
        job_types: Iterable[str],
        max_jobs: int = 1,
        lease_duration: float = 30.0,
        wait: float = 0.0,
    ) -> list[Claim]:
        self.claim_sizes.append(max_jobs)
        if self.claim_errors:
            raise self.claim_errors.pop(0)
        claims = [await self.queue.get()]  # a long-poll: blocks until work arrives (or cancelled)
        while len(claims) < max_jobs and not self.queue.empty():
            claims.append(self.queue.get_nowait())
        return claims

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
        self.reports.append((job_id, percent, message))
        self.reported.set()
        if self.report_error is not None:
            raise self.report_error
        return None, job_id in self.cancel_jobs

    async def complete_job(
        self,
        job_id: str,
        lease_token: str,
        result: Mapping[str, Any] | None = None,
        partial: bool = False,
        error_message: str = "",
        *,
        request_id: str | None = None,
    ) -> Job:
        assert lease_token == f"lease-{job_id}"
        self.completed[job_id] = (result, partial, error_message)
        self.finished.set()
        return Job(id=job_id, job_type="echo", status=JobStatus.PARTIAL if partial else JobStatus.COMPLETED)

    async def fail_job(
        self,
        job_id: str,
        lease_token: str,
        message: str,
        reason: str = "",
        retryable: bool = False,
        *,
        stop_reason: StopReason | str | None = None,
        request_id: str | None = None,
    ) -> Job:
        self.failed[job_id] = {
            "message": message,
            "reason": reason,
            "retryable": retryable,
            "stop_reason": stop_reason,
        }
        self.finished.set()
        return Job(id=job_id, job_type="echo", status=JobStatus.FAILED)


@pytest.fixture
def fake() -> FakeClient:
    return FakeClient()


async def _run_until(worker: Worker, done: Callable[[], Awaitable[object]]) -> None:
    """Runs the worker until ``done`` finishes, then stops it and waits for run() to return."""
    async with asyncio.timeout(10):
        runner = asyncio.create_task(worker.run())
        await done()
        worker.stop()
        await runner


@pytest.fixture
def worker(fake: FakeClient) -> Worker:
    # A long lease: heartbeats never fire unless a test shortens it.
    return Worker(fake, worker_id="w1", lease_duration=300, cancel_grace=0, shutdown_grace=0, session=False)


async def test_a_returned_dict_completes_the_job(fake: FakeClient, worker: Worker) -> None:
    @worker.handler("echo")
    async def echo(ctx: JobContext) -> dict[str, Any]:
        await ctx.progress(50, "halfway", 1, 2)
        return {"echo": ctx.parameters["x"]}

    job_id = fake.add(x="hi")
    await _run_until(worker, fake.finished.wait)
    assert fake.completed == {job_id: ({"echo": "hi"}, False, "")}
    assert fake.reports == [(job_id, 50, "halfway")]
    assert fake.failed == {}


async def test_an_exception_fails_the_attempt_as_retryable(fake: FakeClient, worker: Worker) -> None:
    async def boom(ctx: JobContext) -> None:
        raise RuntimeError("provider timed out")

    worker.register("echo", boom)
    job_id = fake.add()
    await _run_until(worker, fake.finished.wait)
    assert fake.failed[job_id] == {
        "message": "provider timed out",
        "reason": "RuntimeError",
        "retryable": True,
        "stop_reason": None,
    }


async def test_a_permanent_error_is_not_retryable(fake: FakeClient, worker: Worker) -> None:
    @worker.handler("echo")
    async def bad_input(ctx: JobContext) -> None:
        raise PermanentError("url is missing", reason="BAD_INPUT", stop_reason=StopReason.VALIDATION_ERROR)

    job_id = fake.add()
    await _run_until(worker, fake.finished.wait)
    assert fake.failed[job_id] == {
        "message": "url is missing",
        "reason": "BAD_INPUT",
        "retryable": False,
        "stop_reason": StopReason.VALIDATION_ERROR,
    }


@pytest.mark.parametrize(
    "reason",
    ["USER_CANCELLED", StopReason.TIMEOUT_EXCEEDED, "lease_expired", StopReason.MAX_ATTEMPTS_EXCEEDED],
)
def test_a_permanent_error_refuses_a_stop_reason_only_the_server_records(reason: str) -> None:
    with pytest.raises(ValueError, match="recorded by the server"):
        PermanentError("no", stop_reason=reason)


async def test_a_partial_result_finishes_partial(fake: FakeClient, worker: Worker) -> None:
    @worker.handler("echo")
    async def some(ctx: JobContext) -> PartialResult:
        return PartialResult({"done": [1, 2]}, "3 failed")

    job_id = fake.add()
    await _run_until(worker, fake.finished.wait)
    assert fake.completed == {job_id: ({"done": [1, 2]}, True, "3 failed")}


async def test_a_result_that_is_not_json_fails_the_job_for_good(fake: FakeClient) -> None:
    class Strict(FakeClient):
        async def complete_job(
            self, job_id: str, lease_token: str, result: Any = None, *a: Any, **k: Any
        ) -> Job:
            raise ValueError("not a JSON object: bad value")

    strict = Strict()
    worker = Worker(strict, worker_id="w1", lease_duration=300, session=False)

    @worker.handler("echo")
    async def odd(ctx: JobContext) -> dict[str, Any]:
        return {"when": object()}

    job_id = strict.add()
    await _run_until(worker, strict.finished.wait)
    assert strict.failed[job_id]["retryable"] is False
    assert "not a JSON object" in strict.failed[job_id]["message"]


async def test_cancel_seen_in_a_progress_reply_cancels_the_handler(fake: FakeClient, worker: Worker) -> None:
    reached_cancel = asyncio.Event()

    @worker.handler("echo")
    async def stubborn(ctx: JobContext) -> None:
        await ctx.progress(10)
        assert ctx.cancel_requested and ctx.cancelled.is_set()
        reached_cancel.set()
        await asyncio.Event().wait()  # ignores the request: the worker must cancel it after the grace

    job_id = fake.add()
    fake.cancel_jobs.add(job_id)
    await _run_until(worker, fake.finished.wait)
    assert reached_cancel.is_set()
    assert fake.failed[job_id]["message"] == "cancelled"
    assert fake.failed[job_id]["retryable"] is False
    assert fake.completed == {}


async def test_cancel_seen_by_the_heartbeat_wins_over_a_late_result(fake: FakeClient) -> None:
    worker = Worker(fake, worker_id="w1", lease_duration=0.03, cancel_grace=60, session=False)

    @worker.handler("echo")
    async def polite(ctx: JobContext) -> dict[str, Any]:
        await ctx.cancelled.wait()  # set by the heartbeat's reply
        return {"too": "late"}

    job_id = fake.add()
    fake.cancel_jobs.add(job_id)
    await _run_until(worker, fake.finished.wait)
    assert fake.failed[job_id]["message"] == "cancelled"
    assert fake.completed == {}


async def test_the_heartbeat_renews_the_lease_with_the_last_progress(fake: FakeClient) -> None:
    worker = Worker(fake, worker_id="w1", lease_duration=0.03, session=False)

    @worker.handler("echo")
    async def slow(ctx: JobContext) -> dict[str, Any]:
        await ctx.progress(30, "step 3")
        while len(fake.reports) < 3:  # two heartbeats after our own report
            fake.reported.clear()
            await fake.reported.wait()
        return {}

    job_id = fake.add()
    await _run_until(worker, fake.finished.wait)
    assert fake.reports[:3] == [(job_id, 30, "step 3")] * 3
    assert job_id in fake.completed


async def test_a_lost_lease_aborts_without_reporting(fake: FakeClient, worker: Worker) -> None:
    saw = asyncio.Event()

    @worker.handler("echo")
    async def swallow(ctx: JobContext) -> dict[str, Any]:
        try:
            await ctx.progress(5)
        except errors.LeaseLost:
            saw.set()
        return {"must": "not be reported"}

    fake.report_error = errors.LeaseLost("lease lost")
    fake.add()
    await _run_until(worker, saw.wait)
    assert fake.completed == {} and fake.failed == {}


async def test_a_lease_lost_in_the_heartbeat_cancels_the_handler(fake: FakeClient) -> None:
    worker = Worker(fake, worker_id="w1", lease_duration=0.03, session=False)
    cancelled = asyncio.Event()

    @worker.handler("echo")
    async def forever(ctx: JobContext) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    fake.report_error = errors.LeaseLost("lease lost")
    fake.add()
    await _run_until(worker, cancelled.wait)
    assert fake.completed == {} and fake.failed == {}


async def test_stop_requeues_handlers_still_running_after_the_grace(fake: FakeClient, worker: Worker) -> None:
    started = asyncio.Event()

    @worker.handler("echo")
    async def forever(ctx: JobContext) -> None:
        started.set()
        await asyncio.Event().wait()

    job_id = fake.add()
    await _run_until(worker, started.wait)
    assert fake.failed[job_id]["message"] == "worker shutting down"
    assert fake.failed[job_id]["retryable"] is True


async def test_stop_lets_running_handlers_finish_within_the_grace(fake: FakeClient) -> None:
    worker = Worker(fake, worker_id="w1", lease_duration=300, shutdown_grace=60, session=False)
    started, release = asyncio.Event(), asyncio.Event()

    @worker.handler("echo")
    async def waits(ctx: JobContext) -> dict[str, Any]:
        started.set()
        await release.wait()
        return {"ok": True}

    job_id = fake.add()
    async with asyncio.timeout(10):
        runner = asyncio.create_task(worker.run())
        await started.wait()
        worker.stop()
        release.set()
        await runner
    assert fake.completed == {job_id: ({"ok": True}, False, "")}


async def test_claims_never_exceed_free_slots(fake: FakeClient) -> None:
    worker = Worker(fake, worker_id="w1", concurrency=2, lease_duration=300, shutdown_grace=0, session=False)
    gates: dict[str, asyncio.Event] = {}
    running = asyncio.Condition()

    @worker.handler("echo")
    async def gated(ctx: JobContext) -> dict[str, Any]:
        async with running:
            running.notify_all()
        await gates[ctx.job.id].wait()
        return {}

    for _ in range(3):
        gates[fake.add()] = asyncio.Event()

    async def scenario() -> None:
        async with running:
            await running.wait_for(lambda: worker.running_jobs == 2)
        assert fake.claim_sizes == [2]  # two free slots, then none: no claim while full
        gates["j1"].set()
        async with running:
            await running.wait_for(lambda: "j3" in {c.job.id for c in worker._runs.values()})
        assert fake.claim_sizes[:2] == [2, 1]
        gates["j2"].set()
        gates["j3"].set()
        while len(fake.completed) < 3:
            fake.finished.clear()
            await fake.finished.wait()

    await _run_until(worker, scenario)
    assert set(fake.completed) == {"j1", "j2", "j3"}


class SlowAnswers(FakeClient):
    """A server whose answer to a completion waits for `answer`."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()
        self.asked: list[str] = []

    async def complete_job(self, job_id: str, lease_token: str, *args: Any, **kwargs: Any) -> Job:
        self.asked.append(job_id)
        await self.answer.wait()
        return await super().complete_job(job_id, lease_token, *args, **kwargs)


async def test_a_slot_takes_the_next_job_while_the_last_outcome_is_still_being_reported() -> None:
    fake = SlowAnswers()
    worker = Worker(fake, worker_id="w1", concurrency=1, lease_duration=300, shutdown_grace=0, session=False)
    started: list[str] = []
    second_started = asyncio.Event()

    @worker.handler("echo")
    async def note(ctx: JobContext) -> dict[str, Any]:
        started.append(ctx.job.id)
        if len(started) == 2:
            second_started.set()
        return {}

    first, second = fake.add(), fake.add()

    async def scenario() -> None:
        await second_started.wait()  # never set if the slot waited for the first job's answer
        assert fake.asked == [first] and fake.completed == {}  # the first is still being reported
        fake.answer.set()
        while len(fake.completed) < 2:
            fake.finished.clear()
            await fake.finished.wait()

    await _run_until(worker, scenario)
    assert started == [first, second] and set(fake.completed) == {first, second}


async def test_unavailable_while_polling_backs_off_and_retries(fake: FakeClient, worker: Worker) -> None:
    worker.register("echo", _ok)
    # The server's RetryInfo delay is honoured, which keeps this test fast.
    fake.claim_errors = [
        errors.StoreUnavailable("busy", retry_delay=0.001),
        errors.Unavailable("down", retry_delay=0.001),
    ]
    job_id = fake.add()
    await _run_until(worker, fake.finished.wait)
    assert job_id in fake.completed
    assert len(fake.claim_sizes) >= 3


async def test_a_fatal_poll_error_ends_run(fake: FakeClient, worker: Worker) -> None:
    worker.register("echo", _ok)
    fake.claim_errors = [errors.Unauthenticated("no token")]
    with pytest.raises(errors.Unauthenticated):
        async with asyncio.timeout(10):
            await worker.run()


async def test_cancelling_run_requeues_running_jobs_at_once(fake: FakeClient) -> None:
    worker = Worker(fake, worker_id="w1", lease_duration=300, shutdown_grace=3600, session=False)
    started = asyncio.Event()

    @worker.handler("echo")
    async def forever(ctx: JobContext) -> None:
        started.set()
        await asyncio.Event().wait()

    job_id = fake.add()
    async with asyncio.timeout(10):
        runner = asyncio.create_task(worker.run())
        await started.wait()
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
    assert fake.failed[job_id] == {
        "message": "worker shutting down",
        "reason": "",
        "retryable": True,
        "stop_reason": None,
    }


async def test_sigterm_stops_the_worker(fake: FakeClient, worker: Worker) -> None:
    started = asyncio.Event()

    @worker.handler("echo")
    async def forever(ctx: JobContext) -> None:
        started.set()
        await asyncio.Event().wait()

    job_id = fake.add()
    async with asyncio.timeout(10):
        runner = asyncio.create_task(worker.run(install_signal_handlers=True))
        await started.wait()
        os.kill(os.getpid(), signal.SIGTERM)
        await runner
    assert fake.failed[job_id]["message"] == "worker shutting down"


def test_registration_rules(fake: FakeClient) -> None:
    worker = Worker(fake, session=False)
    worker.register("a", _ok)
    with pytest.raises(ValueError, match="already registered"):
        worker.register("a", _ok)
    assert worker.job_types == ["a"]
    assert worker.worker_id
    with pytest.raises(ValueError):
        Worker(fake, concurrency=0, session=False)


async def test_run_without_handlers_is_refused(fake: FakeClient) -> None:
    with pytest.raises(ValueError, match="handler"):
        await Worker(fake, session=False).run()


async def _ok(ctx: JobContext) -> dict[str, Any]:
    return {"ok": True}


async def test_a_refused_progress_is_not_resent_by_the_heartbeat(fake: FakeClient) -> None:
    worker = Worker(fake, worker_id="w1", lease_duration=0.03, session=False)
    refused = errors.ProgressOutOfRange("percent must be 0..100")

    @worker.handler("echo")
    async def sloppy(ctx: JobContext) -> dict[str, Any]:
        await ctx.progress(20, "fine")
        fake.report_error = refused
        with pytest.raises(errors.ProgressOutOfRange):
            await ctx.progress(140, "too far")
        fake.report_error = None
        fake.reports.clear()
        while not fake.reports:  # the next heartbeat
            fake.reported.clear()
            await fake.reported.wait()
        return {}

    job_id = fake.add()
    await _run_until(worker, fake.finished.wait)
    assert fake.reports[0] == (job_id, 20, "fine")


async def test_empty_immediate_answers_do_not_spin(fake: FakeClient) -> None:
    class Impatient(FakeClient):
        async def claim_jobs(self, *args: Any, **kwargs: Any) -> list[Claim]:
            self.claim_sizes.append(kwargs.get("max_jobs", 1))
            self.reported.set()  # "a poll happened"
            return []

    impatient = Impatient()
    worker = Worker(impatient, worker_id="w1", poll_wait=0, session=False)
    worker.register("echo", _ok)
    await _run_until(worker, impatient.reported.wait)
    # Stopped during the pause after the first empty answer: one poll, not thousands.
    assert len(impatient.claim_sizes) == 1
