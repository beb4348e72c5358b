"""What a decision would make of a job, without writing it: the answer of a dry run (validate_only).

The write path applies a Decision with one compare-and-set (store/_sql.py `_update`, the columns from
store/_rows.py `change_values`); this is the same application on the record, so a dry run answers the
job the real call would answer, apart from the times the clock sets (update, complete) and anything
another call changes in between. The guards need no check here: the decision was just taken on `job`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from jobwarden_server.domain import webhooks
from jobwarden_server.domain.changes import Decision
from jobwarden_server.domain.records import CallbackState, Job


def applied(job: Job, decision: Decision, now: dt.datetime) -> Job:
    """`job` as the write of `decision` at `now` would leave it."""
    c = decision.changes
    after = dataclasses.replace(
        job,
        status=c.status if c.status is not None else job.status,
        progress=c.progress if c.progress is not None else job.progress,
        result=dict(c.result) if c.result is not None else job.result,
        error=c.error if c.error is not None else job.error,
        stop_reason=c.stop_reason if c.stop_reason is not None else job.stop_reason,
        cancel_requested=c.cancel_requested if c.cancel_requested is not None else job.cancel_requested,
        run_after=c.run_after if c.run_after is not None else job.run_after,
        complete_time=c.complete_time
        if c.complete_time is not None
        else (None if c.clear_complete_time else job.complete_time),
        queue_expire_time=c.queue_expire_time if c.queue_expire_time is not None else job.queue_expire_time,
        progress_time=c.progress_time if c.progress_time is not None else job.progress_time,
        stall_time=c.stall_time if c.stall_time is not None else (None if c.clear_stall else job.stall_time),
        attempt=c.attempt if c.attempt is not None else job.attempt,
        version=job.version + 1,
        last_sequence=job.last_sequence + len(decision.events),
        update_time=now,
    )
    if c.lease is not None:
        after = dataclasses.replace(
            after,
            worker_id=c.lease.worker_id,
            lease_token=c.lease.token,
            lease_expire_time=c.lease.expire_time,
            lease_duration_s=c.lease.duration_s,
        )
    elif c.lease_expire_time is not None:
        after = dataclasses.replace(after, lease_expire_time=c.lease_expire_time)
    elif c.clear_lease:
        after = dataclasses.replace(after, lease_token="", lease_expire_time=None)
    if c.status is not None and c.status.terminal and webhooks.fires(after):
        # The write would queue the callback's outbox row with the change (store/_outbox.py).
        after = dataclasses.replace(after, callback_state=CallbackState.PENDING)
    return after
