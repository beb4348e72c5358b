"""Model-based test: random sequences of RPCs, each answer predicted by a pure model of the lifecycle.

A hypothesis state machine drives a real `jobwarden serve` (one process for every example; each example
uses job types of its own). The model below knows the `standard` table of DESIGN.md section 2 and what
each RPC does, and predicts every answer: success and the resulting job, or the exact status code,
ErrorInfo reason and metadata. Any call that went through may be sent again later with its request_id
(a lost reply): it must be answered with its first outcome and change nothing. After each step the server's jobs must equal the model's (status,
attempt, cancel request, progress, number of events) and the touched job's history must be a legal,
gap-free path (reference battery B.3, model-based companion).
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from pathlib import Path
from typing import Any, ClassVar

import grpc
import pytest
from google.protobuf import duration_pb2
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from support import faultproc, flows, history, rpc

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2

# The `standard` table, written out from DESIGN.md section 2 (the server publishes its own; they must agree).
STANDARD = frozenset(
    {
        ("CREATED", "QUEUED"),
        ("CREATED", "CANCELLED"),
        ("CREATED", "EXPIRED"),
        ("QUEUED", "CANCELLED"),
        ("QUEUED", "EXPIRED"),
        ("QUEUED", "RUNNING"),
        *(("RUNNING", to) for to in ("COMPLETED", "PARTIAL", "FAILED", "CANCELLED", "EXPIRED", "QUEUED")),
    }
)
TERMINAL = frozenset({"COMPLETED", "PARTIAL", "FAILED", "CANCELLED", "EXPIRED"})
LEASE = duration_pb2.Duration(seconds=3600)
MACHINE_SETTINGS = settings(
    max_examples=30,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclasses.dataclass
class ModelJob:
    """What the model knows of one job."""

    id: str
    status: str
    max_attempts: int
    attempt: int = 0
    lease: str = ""
    cancel_requested: bool = False
    progress: tuple[float, str, int, int] = (0.0, "", 0, 0)
    events: int = 1
    stop_reason: str = "UNSPECIFIED"
    tokens: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Answer:
    """What the server said: OK and the reply, or a code, an ErrorInfo reason and its metadata."""

    code: str
    reason: str = ""
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    reply: Any = None


def _status(job: job_pb2.Job) -> str:
    return history.status_name(job.status).removeprefix("JOB_STATUS_")


def _refused(code: str, reason: str, **metadata: str) -> Answer:
    return Answer(code, reason, dict(metadata))


LEASE_LOST = Answer("ABORTED", "LEASE_LOST")


@dataclasses.dataclass(frozen=True)
class Replay:
    """A call that went through, to be sent again unchanged (same request_id) as if its reply was lost;
    `check` compares the retry's reply with what the model says the first call did."""

    send: Any
    check: Any


def _rid() -> str:
    return f"model-{uuid.uuid4().hex}"


def _outcome(job: job_pb2.Job) -> tuple[str, str, int, int, bool]:
    """What a replay must repeat of a job-returning call: the job as that call left it."""
    return (job.id, _status(job), job.attempt, job.last_sequence, job.cancel_requested)


class LifecycleMachine(RuleBasedStateMachine):
    """Rules are RPCs; `expect` holds the model's prediction, `_check` compares, then the model moves."""

    loop_server: ClassVar[faultproc.LoopServer]

    def __init__(self) -> None:
        super().__init__()
        self.job_type = f"model.{uuid.uuid4().hex[:12]}"
        self.jobs: dict[str, ModelJob] = {}
        self.touched = ""
        self.replays: list[Replay] = []

    # --- plumbing ---------------------------------------------------------------------------------

    def _call(self, call: Any) -> Answer:
        async def answer() -> Answer:
            try:
                reply = await call
            except grpc.aio.AioRpcError as err:
                failure = rpc.failure(err)  # asserts a jobwarden ErrorInfo is attached
                return Answer(failure.code.name, failure.reason, failure.metadata)
            return Answer("OK", reply=reply)

        result: Answer = self.loop_server.run(answer())
        return result

    def _expect(self, got: Answer, want: Answer) -> None:
        assert (got.code, got.reason) == (want.code, want.reason), (got, want)
        for key, value in want.metadata.items():
            assert got.metadata.get(key) == value, (key, got.metadata, want.metadata)

    @property
    def _s(self) -> Any:
        return self.loop_server.s

    def _pick(self, data: st.DataObject, where: Any = None) -> ModelJob:
        # Creation order, never the ids' order: ids are random, and hypothesis replays draws by position.
        ids = [j.id for j in self.jobs.values() if where is None or where(j)]
        job = self.jobs[data.draw(st.sampled_from(ids), label="job")]
        self.touched = job.id
        return job

    def _token(self, data: st.DataObject, job: ModelJob) -> str:
        """The job's current lease most of the time; else a stale one, another job's, or garbage."""
        kind = data.draw(st.sampled_from(["current", "current", "current", "stale", "foreign", "garbage"]))
        stale = [t for t in job.tokens if t != job.lease]
        foreign = [t for j in self.jobs.values() if j.id != job.id for t in j.tokens]
        pool = {"current": [job.lease] if job.lease else [], "stale": stale, "foreign": foreign}.get(kind, [])
        if pool:
            return str(data.draw(st.sampled_from(pool), label=kind))
        return f"garbage-{uuid.uuid4().hex}"

    def _holds(self, job: ModelJob, token: str) -> bool:
        return job.status == "RUNNING" and token == job.lease

    def _went_through(self, send: Any, reply: Any) -> None:
        """Remember a job-returning call that succeeded, for `replay`."""
        first = _outcome(reply.job)

        def check(again: Any) -> None:
            assert _outcome(again.job) == first, (_outcome(again.job), first)

        self.replays.append(Replay(send, check))

    def _settle(self, job: ModelJob, status: str, stop_reason: str = "UNSPECIFIED") -> None:
        job.status, job.lease, job.events = status, "", job.events + 1
        if status in TERMINAL:
            job.stop_reason = stop_reason

    # --- client rules -----------------------------------------------------------------------------

    @rule(hold=st.booleans(), max_attempts=st.integers(1, 3))
    def create(self, hold: bool, max_attempts: int) -> None:
        request = job_service_pb2.CreateJobRequest(
            job_type=self.job_type, hold=hold, max_attempts=max_attempts, request_id=_rid()
        )
        got = self._call(self._s.jobs.CreateJob(request))
        self._expect(got, Answer("OK"))
        job = got.reply.job
        first_id = job.id

        def same_job(again: Any) -> None:
            assert again.job.id == first_id  # the job created first, as it is now

        self.replays.append(Replay(lambda: self._s.jobs.CreateJob(request), same_job))
        assert (_status(job), job.attempt, job.last_sequence) == ("CREATED" if hold else "QUEUED", 0, 1)
        self.jobs[job.id] = ModelJob(job.id, _status(job), max_attempts)
        self.touched = job.id

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        job = self._pick(data)
        request = job_service_pb2.ReleaseJobRequest(job_id=job.id, request_id=_rid())
        got = self._call(self._s.jobs.ReleaseJob(request))
        if job.status == "CREATED" and ("CREATED", "QUEUED") in STANDARD:
            self._expect(got, Answer("OK"))
            job.status, job.events = "QUEUED", job.events + 1
            self._went_through(lambda: self._s.jobs.ReleaseJob(request), got.reply)
        else:
            self._expect(
                got,
                _refused("FAILED_PRECONDITION", "INVALID_TRANSITION", **{"from": job.status, "to": "QUEUED"}),
            )

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        job = self._pick(data)
        request = job_service_pb2.CancelJobRequest(job_id=job.id, reason="model", request_id=_rid())
        got = self._call(self._s.jobs.CancelJob(request))
        if job.status == "RUNNING":
            self._expect(got, Answer("OK"))
            assert _status(got.reply.job) == "RUNNING" and got.reply.job.cancel_requested
            if not job.cancel_requested:
                job.cancel_requested, job.events = True, job.events + 1
                self._went_through(lambda: self._s.jobs.CancelJob(request), got.reply)
        elif (job.status, "CANCELLED") in STANDARD:
            self._expect(got, Answer("OK"))
            self._settle(job, "CANCELLED", "USER_CANCELLED")
            self._went_through(lambda: self._s.jobs.CancelJob(request), got.reply)
        else:
            self._expect(
                got,
                _refused(
                    "FAILED_PRECONDITION", "INVALID_TRANSITION", **{"from": job.status, "to": "CANCELLED"}
                ),
            )

    # --- worker rules -----------------------------------------------------------------------------

    @rule(max_jobs=st.integers(1, 3))
    def claim(self, max_jobs: int) -> None:
        queued = {j.id for j in self.jobs.values() if j.status == "QUEUED"}
        request = worker_service_pb2.ClaimJobsRequest(
            worker_id="model",
            job_types=[self.job_type],
            max_jobs=max_jobs,
            lease_duration=LEASE,
            request_id=_rid(),
        )
        got = self._call(self._s.workers.ClaimJobs(request))
        self._expect(got, Answer("OK"))
        claims = list(got.reply.claims)
        if claims:
            self.replays.append(Replay(lambda: self._s.workers.ClaimJobs(request), self._still_held(claims)))
        assert len(claims) == min(max_jobs, len(queued)), (len(claims), max_jobs, queued)
        for c in claims:
            job = self.jobs[c.job.id]
            assert job.id in queued, f"claimed {job.status} job"
            job.status, job.attempt, job.lease = "RUNNING", job.attempt + 1, c.lease_token
            job.tokens.append(c.lease_token)
            job.events += 1
            assert (_status(c.job), c.job.attempt) == ("RUNNING", job.attempt)
            self.touched = job.id

    def _still_held(self, claims: list[worker_service_pb2.JobClaim]) -> Any:
        def check(again: Any) -> None:
            # A retried claim claims nothing new: the first call's jobs whose lease it still is.
            held = [
                (c.job.id, c.lease_token) for c in claims if self._holds(self.jobs[c.job.id], c.lease_token)
            ]
            assert [(c.job.id, c.lease_token) for c in again.claims] == held

        return check

    @precondition(lambda self: bool(self.jobs))
    @rule(
        data=st.data(),
        percent=st.sampled_from([0.0, 25.0, 50.0, 100.0, -1.0, 100.5, math.nan, math.inf]),
        message=st.sampled_from(["", "a", "b"]),
        done_total=st.sampled_from([(0, 0), (1, 2), (2, 2), (3, 2)]),
    )
    def progress(
        self, data: st.DataObject, percent: float, message: str, done_total: tuple[int, int]
    ) -> None:
        job = self._pick(data)
        token = self._token(data, job)
        done, total = done_total
        got = self._call(
            self._s.workers.ReportProgress(
                worker_service_pb2.ReportProgressRequest(
                    job_id=job.id,
                    lease_token=token,
                    progress=job_pb2.Progress(percent=percent, message=message, done=done, total=total),
                )
            )
        )
        if not (math.isfinite(percent) and 0 <= percent <= 100) or done > total:
            # Malformed progress is refused before the lease is even looked at.
            self._expect(got, _refused("INVALID_ARGUMENT", "PROGRESS_OUT_OF_RANGE"))
        elif not self._holds(job, token):
            self._expect(got, LEASE_LOST)
        else:
            self._expect(got, Answer("OK"))
            assert got.reply.cancel_requested == job.cancel_requested
            if (percent, message, done, total) != job.progress:
                job.progress, job.events = (percent, message, done, total), job.events + 1

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data())
    def add_asset(self, data: st.DataObject) -> None:
        job = self._pick(data)
        token = self._token(data, job)
        request = worker_service_pb2.AddAssetRequest(
            job_id=job.id,
            lease_token=token,
            asset=job_pb2.Asset(asset_type="out", uri="memory://x"),
            request_id=_rid(),
        )
        got = self._call(self._s.workers.AddAsset(request))
        if self._holds(job, token):
            self._expect(got, Answer("OK"))
            job.events += 1
            first = got.reply.asset

            def same_asset(again: Any) -> None:
                assert again.asset == first

            self.replays.append(Replay(lambda: self._s.workers.AddAsset(request), same_asset))
        else:
            self._expect(got, LEASE_LOST)

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data(), partial=st.booleans())
    def complete(self, data: st.DataObject, partial: bool) -> None:
        job = self._pick(data)
        token = self._token(data, job)
        request = worker_service_pb2.CompleteJobRequest(
            job_id=job.id, lease_token=token, result=flows.struct(n=1), request_id=_rid()
        )
        if partial:
            request.partial = True
            request.error.message = "half done"
        got = self._call(self._s.workers.CompleteJob(request))
        if self._holds(job, token):
            self._expect(got, Answer("OK"))
            self._settle(job, "PARTIAL" if partial else "COMPLETED")
            job.progress = (100.0, *job.progress[1:])
            assert _status(got.reply.job) == job.status
            self._went_through(lambda: self._s.workers.CompleteJob(request), got.reply)
        else:
            self._expect(got, LEASE_LOST)

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data(), retryable=st.booleans())
    def fail(self, data: st.DataObject, retryable: bool) -> None:
        job = self._pick(data)
        token = self._token(data, job)
        request = worker_service_pb2.FailJobRequest(
            job_id=job.id,
            lease_token=token,
            error=job_pb2.JobError(message="boom", retryable=retryable),
            request_id=_rid(),
        )
        got = self._call(self._s.workers.FailJob(request))
        if not self._holds(job, token):
            self._expect(got, LEASE_LOST)
            return
        self._expect(got, Answer("OK"))
        if job.cancel_requested:
            self._settle(job, "CANCELLED", "USER_CANCELLED")
        elif retryable and job.attempt < job.max_attempts:
            self._settle(job, "QUEUED")
        else:
            self._settle(job, "FAILED", "MAX_ATTEMPTS_EXCEEDED" if retryable else "UNSPECIFIED")
        assert _status(got.reply.job) == job.status
        self._went_through(lambda: self._s.workers.FailJob(request), got.reply)

    # --- a lost reply ------------------------------------------------------------------------------

    @precondition(lambda self: bool(self.replays))
    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        """Send a call that went through again, with its request_id, whatever happened since: the
        answer is the first call's outcome, and nothing changes (the invariant checks the model)."""
        earlier = data.draw(st.sampled_from(self.replays), label="replay")
        got = self._call(earlier.send())
        self._expect(got, Answer("OK"))
        earlier.check(got.reply)

    # --- invariants -------------------------------------------------------------------------------

    @invariant()
    def server_agrees_with_the_model(self) -> None:
        async def read() -> tuple[list[job_pb2.Job], list[job_pb2.JobEvent]]:
            jobs = await history.all_jobs(self._s, [self.job_type])
            events = await history.all_events(self._s, self.touched) if self.touched else []
            return jobs, events

        jobs, events = self.loop_server.run(read())
        seen = {
            j.id: (
                _status(j),
                j.attempt,
                j.cancel_requested,
                (j.progress.percent, j.progress.message, j.progress.done, j.progress.total),
                j.last_sequence,
                job_pb2.StopReason.Name(j.stop_reason).removeprefix("STOP_REASON_"),
            )
            for j in jobs
        }
        want = {
            j.id: (j.status, j.attempt, j.cancel_requested, j.progress, j.events, j.stop_reason)
            for j in self.jobs.values()
        }
        assert seen == want
        if self.touched:
            job = next(j for j in jobs if j.id == self.touched)
            assert history.path_problems(job, events, TABLE) == []


TABLE = history.Table(
    name="standard",
    initial="JOB_STATUS_QUEUED",
    terminal=frozenset(f"JOB_STATUS_{s}" for s in TERMINAL),
    transitions=frozenset((f"JOB_STATUS_{a}", f"JOB_STATUS_{b}") for a, b in STANDARD),
)


def _config(tmp_path: Path) -> Path:
    # Nothing may move a job behind the model's back: no lease expires, no cancel grace runs out, and a
    # retried job is claimable at once.
    return faultproc.write_config(
        tmp_path / "server.toml",
        settings={"reaper_interval_seconds": 5, "cancel_grace_seconds": 3600},
        retry={"default_max_attempts": 3, "initial_backoff_seconds": 0, "max_backoff_seconds": 0},
    )


@pytest.mark.timeout(120)
def test_random_rpc_sequences_follow_the_lifecycle_model(tmp_path: Path) -> None:
    with faultproc.LoopServer(tmp_path, _config(tmp_path)) as ls:
        published = ls.run(ls.s.jobs.GetLifecycle(job_service_pb2.GetLifecycleRequest())).lifecycle
        assert history.Table.from_pb(published) == TABLE, "the server's standard table is not DESIGN.md's"
        LifecycleMachine.loop_server = ls
        run_state_machine_as_test(LifecycleMachine, settings=MACHINE_SETTINGS)


async def test_release_of_a_running_job_is_refused(tmp_path: Path) -> None:
    server = faultproc.ServerProcess(tmp_path, _config(tmp_path))
    with faultproc.cleanup(server):
        await server.start()
        async with faultproc.stubs(server.address) as s:
            job = await flows.create(s, "release", max_attempts=1)
            await flows.claim_one(s, "release")
            failure = await rpc.fails(s.jobs.ReleaseJob(job_service_pb2.ReleaseJobRequest(job_id=job.id)))
            assert (failure.code, failure.reason) == (
                grpc.StatusCode.FAILED_PRECONDITION,
                "INVALID_TRANSITION",
            )
            assert (await flows.get(s, job.id)).status == job_pb2.JOB_STATUS_RUNNING
            assert await flows.claim(s, ("release",)) == []
