"""The transition check: every edge of a lifecycle table is taken, every other pair is refused.

A scenario declares the table and, per status, a recipe of steps that brings a fresh job (saved as
"$job") there. For every status the runner brings a job there and asks, as an admin, for every other
status: a pair the table lacks must be refused with FAILED_PRECONDITION / INVALID_TRANSITION naming
both statuses, and leave the job as it was (same etag); every edge the table has must be taken (on a
fresh job each). The client's own moves are checked the same way: CancelJob where the table has no
edge to CANCELLED and ReleaseJob from anything but CREATED are refused with INVALID_TRANSITION.
RUNNING is never asked for: only a worker's claim sets it (each recipe for RUNNING claims).

Claims take the oldest QUEUED job of the type, so a job left QUEUED is claimed for good ("parked":
leased for an hour) before the next recipe runs; the next claim then finds exactly its own job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from jobwarden import errors
from jobwarden.client import Job

from .client_ops import Outcome
from .expect import Mismatch
from .session import Session

STATUSES = ("CREATED", "QUEUED", "RUNNING", "COMPLETED", "PARTIAL", "FAILED", "CANCELLED", "EXPIRED")

StepRunner = Callable[[Session, dict[str, Any], str], Awaitable[None]]


async def check_transitions(s: Session, step: dict[str, Any], run_step: StepRunner) -> Outcome:
    table = step["table"]
    legal = {(a, b) for a, b in table["transitions"]}
    await run_step(
        s,
        {
            "op": "get_lifecycle",
            "as": step.get("as"),
            "job_type": step["job_type"],
            "expect": {"initial": table["initial"], "transitions": sorted([a, b] for a, b in legal)},
        },
        "get_lifecycle",
    )
    statuses = {table["initial"], *(x for edge in legal for x in edge)}
    if missing := sorted(statuses - set(step["reach"])):
        raise Mismatch(f"reach has no recipe for {missing}")
    check = _Check(s, step, legal, run_step)
    for status in step["reach"]:
        await check.refusals_from(status)
        for target in STATUSES:
            if (status, target) in legal and target != "RUNNING":
                await check.edge(status, target)
    if check.failures:
        raise Mismatch("\n".join(check.failures))
    return {"refusals": check.refused, "edges_taken": check.taken}, None


class _Check:
    def __init__(
        self, s: Session, step: dict[str, Any], legal: set[tuple[str, str]], run: StepRunner
    ) -> None:
        self.s, self.step, self.legal, self.run = s, step, legal, run
        self.client = s.client(step.get("as"))
        self.admin = s.client(step["admin"])
        self.failures: list[str] = []
        self.refused = self.taken = 0

    async def reach(self, status: str) -> Job:
        for i, recipe_step in enumerate(self.step["reach"][status]):
            await self.run(self.s, recipe_step, f"reach[{status}][{i}]")
        job = await self.client.get_job(self.s.job_id("$job"))
        if job.status.value != status:
            raise Mismatch(f"the recipe for {status} left the job {job.status.value}")
        return job

    async def refusals_from(self, status: str) -> None:
        job = await self.reach(status)
        for target in STATUSES:
            if target not in (status, "RUNNING") and (status, target) not in self.legal:
                await self.refused_call(
                    f"set_job_status {status}->{target}",
                    self.admin.set_job_status(job.id, target, "conformance"),
                    status,
                    target,
                )
        if (status, "CANCELLED") not in self.legal:
            await self.refused_call(f"cancel_job from {status}", self.client.cancel_job(job.id), status)
        if status != "CREATED":
            await self.refused_call(f"release_job from {status}", self.client.release_job(job.id), status)
        after = await self.client.get_job(job.id)
        if (after.status, after.etag) != (job.status, job.etag):
            self.failures.append(f"{status}: refused calls changed the job to {after.status} ({after.etag})")
        await self.park(after)

    async def refused_call(self, what: str, call: Awaitable[Job], status: str, target: str = "") -> None:
        try:
            await call
        except errors.InvalidTransition as err:
            self.refused += 1
            named = (err.metadata.get("from"), err.metadata.get("to") if target else target)
            if named != (status, target):
                self.failures.append(f"{what}: refused naming {err.metadata}")
            return
        except errors.JobwardenError as err:
            self.failures.append(f"{what}: refused with {err.code.name}/{err.reason}, not INVALID_TRANSITION")
            return
        self.failures.append(f"{what}: allowed, but the table has no such edge")

    async def edge(self, status: str, target: str) -> None:
        job = await self.reach(status)
        try:
            moved = await self.admin.set_job_status(job.id, target, "conformance")
        except errors.JobwardenError as err:
            self.failures.append(f"edge {status}->{target}: refused with {err!r}")
            return
        if moved.status.value != target:
            self.failures.append(f"edge {status}->{target}: the job is {moved.status.value}")
        self.taken += 1
        await self.park(moved)

    async def park(self, job: Job) -> None:
        """Claim a job left QUEUED for an hour, so the next recipe's claim gets its own job."""
        if job.status.value != "QUEUED":
            return
        worker = self.step["worker"]
        claims = await self.s.client(worker).claim_jobs(
            self.s.worker_id(worker), [job.job_type], max_jobs=1, lease_duration=3600
        )
        if [c.job.id for c in claims] != [job.id]:
            raise Mismatch(f"parking {job.id} claimed {[c.job.id for c in claims]}")
