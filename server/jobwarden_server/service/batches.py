"""Creating batches: a parent and its children, all in one transaction or none.

What happens to a batch afterwards is the store's and the domain's (store/_batches.py, domain/batches.py):
the parent follows its children in the transactions that move them; cancelling it is JobsService.cancel.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from jobwarden_server import store
from jobwarden_server.domain import batches, decisions, errors, limits
from jobwarden_server.domain.auth import Principal
from jobwarden_server.domain.idempotency import ANONYMOUS, RequestKey
from jobwarden_server.domain.lifecycle import BATCH
from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.domain.trace import TraceContext
from jobwarden_server.service.jobs import JobSpec, JobsService
from jobwarden_server.service.writer import Clock, JobWriter


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BatchSpec:
    """What a client asks for when creating a batch (decoded from the wire; children checked)."""

    job_type: str
    children: Sequence[JobSpec]
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    callback_url: str = ""
    callback_statuses: tuple[JobStatus, ...] = ()
    request: RequestKey = ANONYMOUS
    trace: TraceContext | None = None
    """The trace context the call carried; the parent keeps it (the API gives it to the children too)."""


def check_batch(spec: BatchSpec) -> BatchSpec:
    """Validate the parent's own fields and the number of children; raise InvalidArgument."""
    limits.check_job_type("job_type", spec.job_type)
    limits.check_struct("parameters", spec.parameters)
    limits.check_string_map("labels", spec.labels)
    limits.check_url("callback_url", spec.callback_url)
    limits.check_count("children", len(spec.children), batches.MAX_CHILDREN)
    return spec


def child_ids(count: int) -> list[str]:
    """Ids for a batch's children that sort in the order they were given (a random UUID whose last
    four hex digits are the position), so listing by (create time, id) pages them in that order."""
    prefix = str(uuid.uuid4())[:-4]
    return [f"{prefix}{i:04x}" for i in range(count)]


class BatchService:
    """Creates batches of the caller's jobs."""

    def __init__(self, jobs: JobsService, writer: JobWriter, clock: Clock) -> None:
        self._jobs = jobs
        self._writer = writer
        self._clock = clock

    async def create(self, who: Principal, spec: BatchSpec, *, validate_only: bool = False) -> Job:
        """Create the parent and its children in one transaction; a retried request_id returns the
        first parent. One child refused refuses the batch, its field under `children[i]`. With
        `validate_only`, the same answer, and nothing written."""
        now = self._clock()
        parent_id = str(uuid.uuid4())
        children = []
        for i, (child, child_id) in enumerate(zip(spec.children, child_ids(len(spec.children)), strict=True)):
            if child.request.id:
                raise errors.InvalidArgument(
                    f"children[{i}].request_id", "must be empty: the batch's request_id covers its children"
                )
            try:
                planned = self._jobs.planned(who, child, now)
            except errors.InvalidArgument as err:
                raise err.within(f"children[{i}]") from None
            children.append(dataclasses.replace(planned, id=child_id, parent_id=parent_id))
        parent = store.JobCreateParams(
            id=parent_id,
            owner=who.owner,
            job_type=spec.job_type,
            lifecycle=BATCH.name,
            status=BATCH.initial,
            parameters=spec.parameters,
            priority=0,
            labels=spec.labels,
            max_attempts=1,
            run_after=None,
            deadline=None,
            callback_url=spec.callback_url,
            callback_statuses=frozenset(spec.callback_statuses),
            request_id=spec.request.id,
            request_fingerprint=spec.request.fingerprint,
            now=now,
            actor=decisions.client_actor(who.owner),
            batch=batches.counts_of([c.status for c in children]),
            trace=spec.trace,
        )
        result = await self._writer.create_batch(parent, children, dry_run=validate_only)
        return result.change.job
