"""A worker's Work session: the credits it gave, the jobs it holds, and the renewal of their leases.

The session only keeps accounts. Claims, progress, completions and failures go through WorkService
like the unary calls, so a job changes the same way whichever path the worker takes; fencing stays
with the lease token each write carries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from jobwarden_server import store
from jobwarden_server.domain import errors, limits
from jobwarden_server.domain.auth import Principal
from jobwarden_server.domain.records import Job
from jobwarden_server.service.work import ClaimRequest, WorkService

MAX_CREDITS = 10_000
"""Jobs a session may be owed at once: generous for any worker, and a bound on what it can hold."""
MAX_CREDITS_PER_MESSAGE = 1000


@dataclasses.dataclass(frozen=True, slots=True)
class LeaseNews:
    """What a renewal found out: jobs whose cancel was requested (each told once), and leases lost."""

    cancelled: Sequence[str]
    lost: Sequence[str]


class WorkSession:
    """One worker's session: `add_credits` as it frees slots, `claim` to fill them, `renew` the leases
    of what it holds, `release` what it no longer holds (finished, failed or lost)."""

    def __init__(self, work: WorkService, who: Principal, start: ClaimRequest) -> None:
        self._work = work
        self._who = who
        self.start = start
        self.credits = 0
        self.claims_stopped = False
        self.held: dict[str, str] = {}
        self._told_cancel: set[str] = set()
        self.last_heard = work.now()
        self._renewed_from = self.last_heard

    def heard(self) -> None:
        """The worker sent a message: it is alive now."""
        self.last_heard = self._work.now()

    def stop_claims(self) -> None:
        """The worker is stopping: it is owed nothing from now on."""
        self.claims_stopped = True
        self.credits = 0

    def add_credits(self, count: int) -> None:
        """The worker can take `count` more jobs (dropped once it stopped claiming)."""
        limits.check_int("credits", count, 0, MAX_CREDITS_PER_MESSAGE)
        if self.claims_stopped:
            return
        if self.credits + len(self.held) + count > MAX_CREDITS:
            raise errors.InvalidArgument(
                "credits", f"a session may hold and be owed at most {MAX_CREDITS} jobs at once"
            )
        self.credits += count

    @property
    def silent(self) -> bool:
        """Whether the worker has not been heard from for two thirds of a lease (it should say
        something every third): frozen, or cut off on a connection that still looks open."""
        quiet = (self._work.now() - self.last_heard).total_seconds()
        return quiet > self.start.lease_duration_s * 2 / 3

    async def claim(self) -> Sequence[Job]:
        """Lease as many jobs as are ready, up to the credits (at most MAX_CLAIM at a time); none
        while the worker is silent: a job pushed to a worker that may be frozen would only wait out
        its lease."""
        if self.credits <= 0 or self.silent:
            return []
        want = min(self.credits, limits.MAX_CLAIM)
        jobs = await self._work.claim(self._who, dataclasses.replace(self.start, max_jobs=want, wait_s=0.0))
        self.credits -= len(jobs)
        for job in jobs:
            self.held[job.id] = job.lease_token
        return jobs

    def adopt(self, job_id: str, lease_token: str) -> None:
        """A progress step showed the session holds `job_id` under `lease_token` (a worker re-attaching
        a running job to a new session after the old one broke): renew its lease from now on."""
        self.held.setdefault(job_id, lease_token)

    def release(self, job_id: str) -> None:
        """The session no longer holds `job_id` (its attempt ended, or its lease is gone)."""
        self.held.pop(job_id, None)
        self._told_cancel.discard(job_id)

    async def renew(self) -> LeaseNews:
        """Renew every held lease in one write; report new cancel requests and lost leases.

        A lease is renewed to last its duration past the worker's last message, not past now: the
        server renews, but only the worker's own messages keep its jobs. A worker that froze or lost
        its way (its connection may well stay up) stops talking, and its leases then run out as a
        heartbeat's would."""
        if not self.held or self.last_heard <= self._renewed_from:
            return LeaseNews(cancelled=(), lost=())
        self._renewed_from = heard = self.last_heard
        leases = dict(self.held)
        renewed = await self._work.renew_leases(
            store.LeaseRenewParams(owner=self._who.owner, leases=leases, now=heard)
        )
        still = {lease.job_id for lease in renewed}
        lost = [job_id for job_id in leases if job_id not in still and job_id in self.held]
        for job_id in lost:
            self.release(job_id)
        cancelled = [
            lease.job_id
            for lease in renewed
            if lease.cancel_requested and lease.job_id in self.held and lease.job_id not in self._told_cancel
        ]
        self._told_cancel.update(cancelled)
        return LeaseNews(cancelled=cancelled, lost=lost)
