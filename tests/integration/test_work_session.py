"""WorkerService.Work over raw stubs: pushed claims within credits, per-step acks that never end the
session, lease renewal by the session, cancels and lost leases pushed, and how a session ends."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from support import flows, rpc

from jobwarden.v1 import job_pb2, job_service_pb2
from jobwarden.v1 import worker_service_pb2 as pb
from jobwarden_server import store
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.domain.lifecycle import Lifecycles
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.events.bus import EventBus
from jobwarden_server.service import wiring
from jobwarden_server.service.jobs import JobSpec
from jobwarden_server.service.session import WorkSession
from jobwarden_server.service.work import ClaimRequest
from jobwarden_server.service.writer import utc_now

S = job_pb2.JobStatus


class Session:
    """One raw Work stream: write requests, read responses, sorted into claims, acks and notices."""

    def __init__(self, stubs: rpc.Stubs) -> None:
        self.call: Any = stubs.workers.Work(metadata=stubs.metadata)
        self.claims: list[pb.JobClaim] = []
        self.acks: dict[str, pb.WorkAck] = {}
        self.cancels: list[str] = []
        self.lost: list[str] = []
        self._steps = 0
        self._writing = asyncio.Lock()
        self._talking: asyncio.Task[None] | None = None

    async def _write(self, request: pb.WorkRequest) -> None:
        async with self._writing:  # one write at a time on a stream
            await self.call.write(request)

    def keep_talking(self, every_s: float = 0.2) -> None:
        """List the claimed jobs at a worker's pace: the server renews the leases a worker lists."""

        async def talk() -> None:
            while True:
                holding = [pb.WorkLease(job_id=c.job.id, lease_token=c.lease_token) for c in self.claims]
                await self._write(pb.WorkRequest(holding=holding))
                await asyncio.sleep(every_s)  # the worker's pace, not a wait for anything

        self._talking = asyncio.create_task(talk())

    def close(self) -> None:
        if self._talking is not None:
            self._talking.cancel()
        self.call.cancel()

    async def start(
        self,
        credits: int = 0,
        job_types: tuple[str, ...] = ("demo",),
        lease_s: int = 30,
        *,
        brief_acks: bool = False,
    ) -> None:
        await self._write(
            pb.WorkRequest(
                start=pb.WorkStart(
                    worker_id="w-session",
                    job_types=job_types,
                    lease_duration=duration_pb2.Duration(seconds=lease_s),
                    brief_acks=brief_acks,
                ),
                credits=credits,
            )
        )

    async def credit(self, count: int) -> None:
        await self._write(pb.WorkRequest(credits=count))

    async def steps(self, *steps: pb.WorkStep) -> list[pb.WorkAck]:
        """Send the steps in one message and wait for their acks (in step order)."""
        await self._write(pb.WorkRequest(steps=steps))
        await self.until(lambda: all(s.step_id in self.acks for s in steps))
        return [self.acks[s.step_id] for s in steps]

    def step(self, **kind: Any) -> pb.WorkStep:
        self._steps += 1
        return pb.WorkStep(step_id=f"s{self._steps}", **kind)

    async def until(self, condition: Any) -> None:
        """Read responses until `condition()` holds (the test's timeout bounds the wait)."""
        while not condition():
            response = await self.call.read()
            assert response is not grpc.aio.EOF, "the session ended"
            self.claims += response.claims
            self.acks.update({ack.step_id: ack for ack in response.acks})
            self.cancels += response.cancel_job_ids
            self.lost += response.lost_job_ids


def complete(claim: pb.JobClaim, **result: Any) -> dict[str, Any]:
    return {
        "complete": pb.CompleteJobRequest(
            job_id=claim.job.id, lease_token=claim.lease_token, result=flows.struct(**result)
        )
    }


def reason(ack: pb.WorkAck) -> tuple[int, str]:
    info = error_details_pb2.ErrorInfo()
    for detail in ack.status.details:
        if detail.Unpack(info):
            break
    return ack.status.code, info.reason


@pytest.fixture
async def session(stubs: rpc.Stubs) -> AsyncIterator[Session]:
    s = Session(stubs)
    yield s
    s.close()


async def test_claims_are_pushed_within_credits_and_steps_are_acked(
    stubs: rpc.Stubs, session: Session
) -> None:
    jobs = [await flows.create(stubs) for _ in range(3)]
    await session.start(credits=2)
    await session.until(lambda: len(session.claims) == 2)
    assert {c.job.id for c in session.claims} == {j.id for j in jobs[:2]}  # oldest first

    acks = await session.steps(*(session.step(**complete(c, ok=True)) for c in session.claims))
    assert [a.status.code for a in acks] == [0, 0]
    assert [a.complete.job.status for a in acks] == [S.JOB_STATUS_COMPLETED] * 2
    assert (await flows.get(stubs, jobs[2].id)).status == S.JOB_STATUS_QUEUED  # no credit left for it

    await session.credit(1)
    await session.until(lambda: len(session.claims) == 3)
    assert session.claims[2].job.id == jobs[2].id


async def test_a_job_created_later_is_pushed_without_polling(stubs: rpc.Stubs, session: Session) -> None:
    await session.start(credits=1)
    job = await flows.create(stubs)
    await session.until(lambda: len(session.claims) == 1)
    assert session.claims[0].job.id == job.id and session.claims[0].job.status == S.JOB_STATUS_RUNNING


async def test_a_refused_step_is_acked_with_its_status_and_the_session_goes_on(
    stubs: rpc.Stubs, session: Session
) -> None:
    await flows.create(stubs)
    await session.start(credits=1)
    await session.until(lambda: len(session.claims) == 1)
    claim = session.claims[0]
    stale = pb.CompleteJobRequest(job_id=claim.job.id, lease_token="stale")
    bad = pb.ReportProgressRequest(
        job_id=claim.job.id, lease_token=claim.lease_token, progress=job_pb2.Progress(percent=250)
    )
    nul = pb.ReportProgressRequest(
        job_id=claim.job.id, lease_token=claim.lease_token, progress=job_pb2.Progress(message="a\x00b")
    )
    acks = await session.steps(
        session.step(complete=stale), session.step(progress=bad), session.step(progress=nul), session.step()
    )
    assert [reason(a) for a in acks] == [
        (grpc.StatusCode.ABORTED.value[0], "LEASE_LOST"),
        (grpc.StatusCode.INVALID_ARGUMENT.value[0], "PROGRESS_OUT_OF_RANGE"),
        (grpc.StatusCode.INVALID_ARGUMENT.value[0], "INVALID_ARGUMENT"),
        (grpc.StatusCode.INVALID_ARGUMENT.value[0], "INVALID_ARGUMENT"),
    ]
    progress = pb.ReportProgressRequest(
        job_id=claim.job.id, lease_token=claim.lease_token, progress=job_pb2.Progress(percent=40)
    )
    (ok, done) = await session.steps(session.step(progress=progress), session.step(**complete(claim)))
    assert ok.status.code == 0 and ok.progress.lease_expire_time.seconds > 0
    assert done.complete.job.status == S.JOB_STATUS_COMPLETED
    history = flows.kinds(await flows.events(stubs, claim.job.id))
    assert history == ["created", "QUEUED->RUNNING", "progress", "RUNNING->COMPLETED"]


async def test_steps_of_one_job_apply_in_order_within_a_message(stubs: rpc.Stubs, session: Session) -> None:
    await flows.create(stubs)
    await session.start(credits=1)
    await session.until(lambda: len(session.claims) == 1)
    claim = session.claims[0]
    reports = [
        session.step(
            progress=pb.ReportProgressRequest(
                job_id=claim.job.id, lease_token=claim.lease_token, progress=job_pb2.Progress(percent=p)
            )
        )
        for p in (10, 20, 30)
    ]
    acks = await session.steps(*reports, session.step(**complete(claim)))
    assert [a.status.code for a in acks] == [0, 0, 0, 0]
    events = await flows.events(stubs, claim.job.id)
    assert [e.progress.percent for e in events if e.HasField("progress")] == [10, 20, 30]


async def test_a_replayed_step_gets_its_first_answer(stubs: rpc.Stubs, session: Session) -> None:
    await flows.create(stubs)
    await session.start(credits=1)
    await session.until(lambda: len(session.claims) == 1)
    claim = session.claims[0]
    request = pb.FailJobRequest(
        job_id=claim.job.id,
        lease_token=claim.lease_token,
        error=job_pb2.JobError(message="no"),
        request_id="f-1",
    )
    (first,) = await session.steps(session.step(fail=request))
    (again,) = await session.steps(session.step(fail=request))
    assert again.status.code == 0 and again.fail.job == first.fail.job


async def test_brief_acks_carry_no_finished_job_and_change_nothing_else(
    stubs: rpc.Stubs, session: Session
) -> None:
    jobs = [await flows.create(stubs) for _ in range(2)]
    await session.start(credits=2, brief_acks=True)
    await session.until(lambda: len(session.claims) == 2)
    done, failed = session.claims
    progress = pb.ReportProgressRequest(
        job_id=done.job.id, lease_token=done.lease_token, progress=job_pb2.Progress(percent=50)
    )
    fail = pb.FailJobRequest(
        job_id=failed.job.id, lease_token=failed.lease_token, error=job_pb2.JobError(message="no")
    )
    stale = pb.CompleteJobRequest(job_id=failed.job.id, lease_token="stale")
    acks = await session.steps(
        session.step(progress=progress),
        session.step(**complete(done, ok=True)),
        session.step(fail=fail),
        session.step(complete=stale),
    )
    assert [a.status.code for a in acks[:3]] == [0, 0, 0]
    assert acks[0].progress.lease_expire_time.seconds > 0  # a progress ack is as it always is
    assert [a.WhichOneof("result") for a in acks[1:3]] == ["complete", "fail"]
    assert not acks[1].complete.HasField("job") and not acks[2].fail.HasField("job")
    assert reason(acks[3]) == (grpc.StatusCode.ABORTED.value[0], "LEASE_LOST")  # refusals as always
    stored = [await flows.get(stubs, job.id) for job in jobs]
    assert [j.status for j in stored] == [S.JOB_STATUS_COMPLETED, S.JOB_STATUS_FAILED]
    assert stored[0].result == flows.struct(ok=True)


async def test_a_session_that_lists_its_jobs_keeps_their_leases(tmp_path: Path, backend: str) -> None:
    async with (
        rpc.server(tmp_path, backend=backend, reaper_interval_s=0.1) as srv,
        rpc.stubs(srv.address) as stubs,
    ):
        job = await flows.create(stubs)
        s = Session(stubs)
        await s.start(credits=1, lease_s=1)
        await s.until(lambda: len(s.claims) == 1)
        claim = s.claims[0]
        s.keep_talking()
        # Several lease durations pass with no step, only the list of what the worker holds: the
        # session's renewals keep the job.
        deadline = asyncio.get_running_loop().time() + 3.5
        while asyncio.get_running_loop().time() < deadline:
            current = await flows.get(stubs, job.id)
            assert (current.status, current.attempt) == (S.JOB_STATUS_RUNNING, 1)
            await asyncio.sleep(0.25)  # looking again a few times per lease, not waiting for an event
        (done,) = await s.steps(s.step(**complete(claim)))
        assert done.complete.job.status == S.JOB_STATUS_COMPLETED
        s.close()


async def test_a_job_the_worker_stops_listing_loses_its_lease(tmp_path: Path, backend: str) -> None:
    # A worker that gave up on a job (or forgot it) must not keep it alive by talking about others.
    fast = {"reaper_interval_s": 0.1, "retry": RetryPolicy(initial_backoff_s=0.0, max_backoff_s=0.0)}
    async with rpc.server(tmp_path, backend=backend, **fast) as srv, rpc.stubs(srv.address) as stubs:  # type: ignore[arg-type]
        kept, forgotten = [await flows.create(stubs, max_attempts=2) for _ in range(2)]
        s = Session(stubs)
        await s.start(credits=2, lease_s=1)
        await s.until(lambda: len(s.claims) == 2)
        s.claims = [c for c in s.claims if c.job.id == kept.id]  # the worker lists only this one
        s.keep_talking()
        rescue = await flows.until_transition(stubs, forgotten.id, "QUEUED")
        assert "lease" in rescue.transition.reason
        current = await flows.get(stubs, kept.id)
        assert (current.status, current.attempt) == (S.JOB_STATUS_RUNNING, 1)
        s.close()


async def test_a_silent_session_loses_its_leases_though_its_stream_stays_open(
    tmp_path: Path, backend: str
) -> None:
    # A frozen worker's connection can stay up for hours: only its own messages may keep its jobs.
    fast = {"reaper_interval_s": 0.1, "retry": RetryPolicy(initial_backoff_s=0.0, max_backoff_s=0.0)}
    async with rpc.server(tmp_path, backend=backend, **fast) as srv, rpc.stubs(srv.address) as stubs:  # type: ignore[arg-type]
        job = await flows.create(stubs, max_attempts=2)
        s = Session(stubs)
        await s.start(credits=1, lease_s=1)
        await s.until(lambda: len(s.claims) == 1)
        rescue = await flows.until_transition(stubs, job.id, "QUEUED")
        assert "lease" in rescue.transition.reason
        s.close()


async def test_cancels_and_lost_leases_are_pushed(tmp_path: Path, backend: str) -> None:
    async with rpc.server(tmp_path, backend=backend) as srv, rpc.stubs(srv.address) as stubs:
        for _ in range(2):
            await flows.create(stubs)
        s = Session(stubs)
        await s.start(credits=2, lease_s=1)
        await s.until(lambda: len(s.claims) == 2)
        to_cancel, to_lose = s.claims
        s.keep_talking()
        await stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=to_cancel.job.id))
        # Someone else ends the other job under its lease (as a zombie's twin might): the lease is gone.
        await flows.complete(stubs, to_lose)
        await s.until(lambda: to_cancel.job.id in s.cancels and to_lose.job.id in s.lost)
        fail = pb.FailJobRequest(
            job_id=to_cancel.job.id,
            lease_token=to_cancel.lease_token,
            error=job_pb2.JobError(message="stopped"),
        )
        (ack,) = await s.steps(s.step(fail=fail))
        assert ack.fail.job.status == S.JOB_STATUS_CANCELLED
        s.close()


async def test_jobs_of_a_session_that_ends_are_rescued_when_their_leases_run_out(
    tmp_path: Path, backend: str
) -> None:
    fast = {"reaper_interval_s": 0.1, "retry": RetryPolicy(initial_backoff_s=0.0, max_backoff_s=0.0)}
    async with rpc.server(tmp_path, backend=backend, **fast) as srv, rpc.stubs(srv.address) as stubs:  # type: ignore[arg-type]
        job = await flows.create(stubs, max_attempts=2)
        s = Session(stubs)
        await s.start(credits=1, lease_s=1)
        await s.until(lambda: len(s.claims) == 1)
        await s.call.done_writing()
        assert await s.call.read() is grpc.aio.EOF  # the session ended cleanly ...
        assert await s.call.code() == grpc.StatusCode.OK
        rescue = await flows.until_transition(stubs, job.id, "QUEUED")  # ... and its job came back
        assert rescue.actor == "system" and "lease" in rescue.transition.reason


@pytest.mark.parametrize(
    ("first", "field"),
    [
        (pb.WorkRequest(credits=1), "start"),
        (pb.WorkRequest(start=pb.WorkStart(worker_id="w\x00", job_types=["demo"])), "start.worker_id"),
        (pb.WorkRequest(start=pb.WorkStart(worker_id=" ", job_types=["demo"])), "start.worker_id"),
        (pb.WorkRequest(start=pb.WorkStart(worker_id="w", job_types=[])), "start.job_types"),
        (pb.WorkRequest(start=pb.WorkStart(worker_id="w", job_types=["demo"]), credits=5000), "credits"),
    ],
)
async def test_a_bad_opening_ends_the_session_with_invalid_argument(
    stubs: rpc.Stubs, first: pb.WorkRequest, field: str
) -> None:
    call: Any = stubs.workers.Work()
    await call.write(first)
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await call.read()
    failure = rpc.failure(ended.value)
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])


async def test_a_second_start_ends_the_session(stubs: rpc.Stubs, session: Session) -> None:
    await session.start()
    await session.start()
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await session.until(lambda: False)
    assert rpc.failure(ended.value).fields == ["start"]


async def test_two_sessions_drain_jobs_each_claimed_once(stubs: rpc.Stubs) -> None:
    jobs = {(await flows.create(stubs)).id for _ in range(60)}
    sessions = [Session(stubs), Session(stubs)]
    finished: set[str] = set()
    all_done = asyncio.Event()

    async def drain(s: Session) -> None:
        await s.start(credits=8)
        handled = 0
        while True:
            await s.until(lambda seen=handled: len(s.claims) > seen)
            fresh = s.claims[handled:]
            handled = len(s.claims)
            acks = await s.steps(*(s.step(**complete(c)) for c in fresh))
            assert all(a.status.code == 0 for a in acks)
            finished.update(c.job.id for c in fresh)
            if finished >= jobs:
                all_done.set()
            await s.credit(len(fresh))

    drains = [asyncio.create_task(drain(s)) for s in sessions]
    await all_done.wait()
    for task in drains:
        task.cancel()
    await asyncio.gather(*drains, return_exceptions=True)
    claimed = [c.job.id for s in sessions for c in s.claims]
    assert sorted(claimed) == sorted(jobs)  # every job once, none twice
    for job_id in jobs:
        assert (await flows.get(stubs, job_id)).status == S.JOB_STATUS_COMPLETED
    for s in sessions:
        s.call.cancel()


async def test_a_server_shutdown_ends_the_session_with_shutting_down(tmp_path: Path) -> None:
    async with rpc.server(tmp_path) as srv, rpc.stubs(srv.address) as stubs:
        s = Session(stubs)
        await s.start(credits=1)
        await stubs.jobs.GetLifecycle(job_service_pb2.GetLifecycleRequest(job_type="demo"))  # session is up
        stopping = asyncio.create_task(srv.stop(grace=1.0))
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await s.until(lambda: False)
        await stopping
    assert rpc.failure(ended.value).reason == "SHUTTING_DOWN"


async def test_a_session_that_stopped_claiming_is_owed_nothing(tmp_path: Path) -> None:
    url = rpc.database_url(tmp_path)
    await store.migrate(url)
    db = store.open_store(url)
    try:
        services = wiring.build(db, EventBus(), Lifecycles.build(), RetryPolicy())
        who = Principal(owner="o", roles=frozenset({Role.CLIENT, Role.WORKER}))
        await services.jobs.create(who, JobSpec(job_type="demo"))
        work = services.work
        session = WorkSession(work, who, ClaimRequest(worker_id="w", job_types=frozenset({"demo"})))
        session.add_credits(3)
        session.stop_claims()
        session.add_credits(5)  # sent after the stop: dropped
        assert (session.credits, await session.claim()) == (0, [])
        assert (
            await db.job_get("o", (await db.job_list(store.JobListParams(owner="o", limit=1)))[0].id)
        ).status is (JobStatus.QUEUED)
    finally:
        await db.close()


async def test_a_silent_session_is_pushed_nothing_until_it_speaks(tmp_path: Path) -> None:
    url = rpc.database_url(tmp_path)
    await store.migrate(url)
    db = store.open_store(url)
    now = [utc_now()]
    try:
        services = wiring.build(db, EventBus(), Lifecycles.build(), RetryPolicy(), clock=lambda: now[0])
        who = Principal(owner="o", roles=frozenset({Role.CLIENT, Role.WORKER}))
        job = await services.jobs.create(who, JobSpec(job_type="demo"))
        work = services.work
        start = ClaimRequest(worker_id="w", job_types=frozenset({"demo"}), lease_duration_s=3)
        session = WorkSession(work, who, start)
        session.add_credits(1)
        now[0] += dt.timedelta(seconds=2.5)  # frozen past two thirds of its lease: maybe gone
        assert session.silent and await session.claim() == []
        session.heard()
        assert [j.id for j in await session.claim()] == [job.id]
    finally:
        await db.close()
