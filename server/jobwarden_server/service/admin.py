"""Admin use cases (AdminService): set a job's status directly, and run an ended job again.

Both act on the jobs of the admin's own owner, or of every owner for an admin-global token
(domain/admin.py `scope`); a job out of reach is NOT_FOUND, exactly like a missing one. Both go
through the same paths as every other change: SetJobStatus through JobWriter.change, RetryJob through
JobsService.create, so idempotency, dry runs and publication work as for any call.
"""

from __future__ import annotations

import datetime as dt

from jobwarden_server import store
from jobwarden_server.domain import admin
from jobwarden_server.domain.auth import Principal
from jobwarden_server.domain.changes import Decision
from jobwarden_server.domain.idempotency import ANONYMOUS, RequestKey
from jobwarden_server.domain.lifecycle import Lifecycles
from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.service.jobs import JobSpec, JobsService, Rerun
from jobwarden_server.service.writer import JobWriter


class AdminService:
    """What admins can do beyond a client: direct status changes and reruns, always audited."""

    def __init__(self, db: store.Store, writer: JobWriter, jobs: JobsService, lifecycles: Lifecycles) -> None:
        self._store = db
        self._writer = writer
        self._jobs = jobs
        self._lifecycles = lifecycles

    async def _owner_of(self, who: Principal, job_id: str) -> str:
        """The owner of `job_id` if `who` reaches it: an admin's own owner, read for a global admin."""
        owner = admin.scope(who)
        if owner is not None:
            return owner
        return (await self._store.job_get(None, job_id)).owner

    async def set_status(
        self,
        who: Principal,
        job_id: str,
        to: JobStatus,
        *,
        reason: str,
        force: bool,
        request: RequestKey = ANONYMOUS,
        validate_only: bool = False,
    ) -> Job:
        """Move the job to `to` (domain/admin.py `set_status`)."""
        owner = await self._owner_of(who, job_id)

        def decide(job: Job, now: dt.datetime) -> Decision | None:
            return admin.set_status(
                job,
                self._lifecycles.named(job.lifecycle),
                to,
                actor=admin.actor(who),
                reason=reason,
                force=force,
                now=now,
                request=request,
            )

        return await self._writer.change(owner, job_id, decide, request=request, validate_only=validate_only)

    async def retry(
        self, who: Principal, job_id: str, *, request: RequestKey = ANONYMOUS, validate_only: bool = False
    ) -> Job:
        """Create a new job that runs the ended job `job_id` again, linked to it by retry_of; the old
        job is left as it is. The new job belongs to the old one's owner."""
        owner = await self._owner_of(who, job_id)
        old = admin.check_retryable(await self._store.job_get(owner, job_id))
        spec = JobSpec(
            job_type=old.job_type,
            parameters=old.parameters,
            priority=old.priority,
            labels=old.labels,
            max_attempts=old.max_attempts,
            request=request,
            retry_initial_backoff_s=old.retry.initial_backoff_s if old.retry else None,
            retry_max_backoff_s=old.retry.max_backoff_s if old.retry else None,
            retry_multiplier=old.retry.multiplier if old.retry else None,
            queue_timeout_s=old.queue_timeout_s,
        )
        rerun = Rerun(retry_of=old.id, lifecycle=old.lifecycle, actor=admin.actor(who))
        as_owner = Principal(owner=owner, roles=who.roles, name=who.name)
        return await self._jobs.create(as_owner, spec, validate_only=validate_only, rerun=rerun)
