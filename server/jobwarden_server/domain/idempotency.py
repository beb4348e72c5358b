"""Idempotency: how a retried call is recognised and what it is answered.

Every mutating call may carry a request_id. The server keeps it, with a fingerprint of the rest of the
call, on what the call wrote (the CREATED job row, or the event a change records), so one scheme holds
for every RPC: a retry with the same id and content is answered with the first call's outcome and
changes nothing; the same id with other content is refused (REQUEST_ID_MISMATCH).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from jobwarden_server.domain import errors
from jobwarden_server.domain.records import Event, EventKind, Job
from jobwarden_server.domain.status import JobStatus, StopReason


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RequestKey:
    """A call's idempotency key: its request_id, and a fingerprint (a hash of everything else in it).

    A retry after an ambiguous failure (deadline exceeded, connection reset) carries the same id; if
    the first call went through, the retry is answered with its outcome instead of an error.
    """

    id: str = ""
    fingerprint: str = ""

    def event_data(self) -> dict[str, str]:
        """What an event records so a retry can be matched (nothing for anonymous calls)."""
        return {"request_fingerprint": self.fingerprint} if self.id else {}


ANONYMOUS = RequestKey()


def check_same(recorded_fingerprint: str | None, key: RequestKey, metadata: Mapping[str, str]) -> None:
    """REQUEST_ID_MISMATCH unless what the first call recorded has `key`'s very fingerprint."""
    if recorded_fingerprint != key.fingerprint:
        where = ", ".join(f"{k} {v}" for k, v in metadata.items() if k != "request_id")
        raise errors.RequestIdMismatch(
            f"request_id {key.id!r} was used for a different request" + (f" ({where})" if where else ""),
            metadata={**metadata, "request_id": key.id},
        )


def check_event(event: Event, key: RequestKey) -> Event:
    """`event`, if the call that recorded it had `key`'s content (REQUEST_ID_MISMATCH otherwise)."""
    check_same(event.data.get("request_fingerprint"), key, {"job_id": event.job_id})
    return event


def is_claim(event: Event) -> bool:
    """Whether `event` is a QUEUED -> RUNNING transition, the start of an attempt."""
    return event.kind is EventKind.TRANSITION and event.data.get("to") == JobStatus.RUNNING.value


def as_left_by(job: Job, event: Event, *, claims_since: int) -> Job:
    """`job` as the call that recorded `event` (a transition or a cancel request) left it, though
    later changes followed.

    A retry can arrive after the job moved on (a FailJob that re-queued it, retried once another
    worker claimed it): it must still be answered with what that call did, not with a later attempt.
    The fields later attempts change are taken back to the event; the others are as they are now.
    """
    if job.last_sequence == event.sequence:
        return job  # nothing happened since
    if event.kind is EventKind.CANCEL_REQUESTED:
        status, cancel_requested = JobStatus.RUNNING, True
    else:
        status, cancel_requested = JobStatus(event.data["to"]), False
    running = status is JobStatus.RUNNING and claims_since == 0
    return dataclasses.replace(
        job,
        status=status,
        attempt=job.attempt - claims_since,
        cancel_requested=cancel_requested,
        stop_reason=StopReason(event.data.get("stop_reason", StopReason.UNSPECIFIED.value)),
        complete_time=event.create_time if status.terminal else None,
        update_time=event.create_time,
        last_sequence=event.sequence,
        worker_id=job.worker_id if running else "",
        lease_token=job.lease_token if running else "",
        lease_expire_time=job.lease_expire_time if running else None,
    )
