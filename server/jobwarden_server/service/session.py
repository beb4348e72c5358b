"""A worker's Work session: the credits it gave, whether it is still talking, and the renewal of the
leases it says it holds.

The session only keeps accounts. Claims, progress, completions and failures go through WorkService
like the unary calls, so a job changes the same way whichever path the worker takes; fencing stays
with the lease token each write carries. Leases are renewed for the jobs the worker lists, never for
jobs the server merely believes it gave out: a worker that froze, or forgot a job, keeps nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from jobwarden_server import store
from jobwarden_server.domain import errors, limits
from jobwarden_server.domain.auth import Principal
from jobwarden_server.domain.records import Job
from jobwarden_server.service.work import ClaimRequest, WorkService

MAX_CREDITS_PER_MESSAGE = 1000
MAX_HOLDING = 10_000
"""Jobs a worker may say it holds in one message: generous for any worker, and a bound on one write."""


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseNews:
    """What a renewal found out: jobs whose cancel was requested (each told once), and leases lost."""

    cancelled: Sequence[str]
    lost: Sequence[str]


class WorkSession:
    """One worker's session: `add_credits` as it frees slots, `claim` to fill them, `heard` on every
    message, `renew` the leases it lists."""

    def __init__(self, work: WorkService, who: Principal, start: ClaimRequest) -> None:
        self._work = work
        self._who = who
        self.start = start
        self.credits = 0
        self.claims_stopped = False
        self.last_heard = work.now()
        self._told_cancel: set[str] = set()

    def heard(self) -> None:
        """The worker sent a message: it is alive now."""
        self.last_heard = self._work.now()

    @property
    def silent(self) -> bool:
        """Whether the worker has not been heard from for two thirds of a lease (it should say
        something every third): frozen, or cut off on a connection that still looks open."""
        quiet = (self._work.now() - self.last_heard).total_seconds()
        return quiet > self.start.lease_duration_s * 2 / 3

    def stop_claims(self) -> None:
        """The worker is stopping: it is owed nothing from now on."""
        self.claims_stopped = True
        self.credits = 0

    def add_credits(self, count: int) -> None:
        """The worker can take `count` more jobs (dropped once it stopped claiming)."""
        limits.check_int("credits", count, 0, MAX_CREDITS_PER_MESSAGE)
        if not self.claims_stopped:
            self.credits = min(self.credits + count, MAX_HOLDING)

    async def claim(self) -> Sequence[Job]:
        """Lease as many jobs as are ready, up to the credits (at most MAX_CLAIM at a time); none
        while the worker is silent: a job pushed to a worker that may be frozen would only wait out
        its lease."""
        if self.credits <= 0 or self.silent:
            return []
        want = min(self.credits, limits.MAX_CLAIM)
        jobs = await self._work.claim(self._who, dataclasses.replace(self.start, max_jobs=want, wait_s=0.0))
        self.credits -= len(jobs)
        return jobs

    async def renew(self, holding: Mapping[str, str]) -> LeaseNews:
        """Renew the leases the worker says it holds (job id -> lease token) in one write, to last
        from now; report new cancel requests and the leases it no longer has."""
        if len(holding) > MAX_HOLDING:
            raise errors.InvalidArgument("holding", f"at most {MAX_HOLDING} jobs", reason="TOO_LARGE")
        for job_id, token in holding.items():
            limits.check_text("holding.job_id", job_id, limit=limits.MAX_ID, required=True)
            limits.check_text("holding.lease_token", token, limit=limits.MAX_ID, required=True)
        if not holding:
            return LeaseNews(cancelled=(), lost=())
        renewed = await self._work.renew_leases(
            store.LeaseRenewParams(owner=self._who.owner, leases=holding, now=self._work.now())
        )
        still = {lease.job_id for lease in renewed}
        lost = [job_id for job_id in holding if job_id not in still]
        self._told_cancel &= set(holding)  # forget jobs the worker no longer holds
        cancelled = [
            lease.job_id
            for lease in renewed
            if lease.cancel_requested and lease.job_id not in self._told_cancel
        ]
        self._told_cancel.update(cancelled)
        return LeaseNews(cancelled=cancelled, lost=lost)
