"""The replay lookups: what a retried call (same request_id, same content) is answered with.

The rule and the fingerprint check are domain/idempotency.py; these read what the first call wrote:
- a change of one job (complete, fail, cancel, release, progress, asset): the event it recorded,
  found by the write entry in the same transaction as the retry (store.Replayed);
- a claim, which spans jobs: its claim events, answered with the jobs that claim still holds;
- a create: the job row, by (owner, request_id), in the store's insert.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobwarden_server import store
from jobwarden_server.domain import idempotency
from jobwarden_server.domain.idempotency import RequestKey
from jobwarden_server.domain.records import Event, Job
from jobwarden_server.domain.status import JobStatus

REPLAY_PAGE = 1000


async def outcome_of(db: store.Store, job: Job, event: Event) -> Job:
    """`job` (as it is now) as the transition or cancel request that recorded `event` left it."""
    if job.last_sequence == event.sequence:
        return job
    return idempotency.as_left_by(job, event, claims_since=await _claims_after(db, job, event.sequence))


async def _claims_after(db: store.Store, job: Job, sequence: int) -> int:
    claims = 0
    while True:
        page = await db.event_list(
            store.PageParams(owner=job.owner, job_id=job.id, after=sequence, limit=REPLAY_PAGE)
        )
        claims += sum(idempotency.is_claim(e) for e in page)
        if len(page) < REPLAY_PAGE:
            return claims
        sequence = page[-1].sequence


async def claimed_by(db: store.Store, owner: str, worker_id: str, key: RequestKey) -> Sequence[Job] | None:
    """The jobs the claim with `key` took and that worker still holds (best first, as the claim
    answered); None if no claim with that id was recorded."""
    events = await db.events_by_request(owner, key.id)
    if not events:
        return None
    for event in events:
        idempotency.check_event(event, key)
    held = []
    for event in events:
        job = await db.job_get(owner, event.job_id)
        # Only a claim sets start_time, so an unchanged one means the lease is still this claim's.
        if (
            job.status is JobStatus.RUNNING
            and job.worker_id == worker_id
            and job.start_time == event.create_time
        ):
            held.append(job)
    held.sort(key=lambda j: (-j.priority, j.create_time, j.id))
    return held
