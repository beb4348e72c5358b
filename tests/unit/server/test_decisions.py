"""The rules of every change, on plain records: no database, no server (domain/decisions.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import random
from typing import Any

import pytest
from support.records import NOW, job

from jobwarden_server.domain import decisions, errors
from jobwarden_server.domain.changes import JobChanges
from jobwarden_server.domain.idempotency import RequestKey
from jobwarden_server.domain.lifecycle import BUILTIN, Lifecycle
from jobwarden_server.domain.messages import JobMessage, MessageLevel
from jobwarden_server.domain.records import EventKind, Job, JobError, Progress
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.stall import StallAction, StallRule
from jobwarden_server.domain.status import JobStatus, StopReason

DEFAULT = BUILTIN["standard"]
RETRY = RetryPolicy(initial_backoff_s=10, max_backoff_s=100, multiplier=2)
KEY = RequestKey(id="r1", fingerprint="f" * 64)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_a_transition_follows_its_table_for_every_pair(name: str) -> None:
    table = BUILTIN[name]
    for a, b in itertools.permutations(JobStatus, 2):
        if table.allows(a, b):
            decision = decisions.transition(job(status=a), table, b, actor="x", request=KEY)
            assert decision.changes.status is b
            assert (decision.expect_statuses, decision.expect_version) == (frozenset({a}), 7)
            [event] = decision.events
            assert (event.kind, event.request_id) == (EventKind.TRANSITION, "r1")
            assert event.data["from"] == a.value and event.data["to"] == b.value
            assert event.data["request_fingerprint"] == KEY.fingerprint
        else:
            with pytest.raises(errors.InvalidTransition):
                decisions.transition(job(status=a), table, b, actor="x")


def test_a_worker_without_the_current_lease_is_refused_every_change() -> None:
    stale = {"lease_token": "old"}
    for decide in (
        lambda j: decisions.complete(j, DEFAULT, result={}, partial=None, now=NOW, **stale),
        lambda j: decisions.fail(
            j,
            DEFAULT,
            error=JobError(message="x"),
            stop_reason=StopReason.UNSPECIFIED,
            default_retry=RETRY,
            now=NOW,
            **stale,
        ),
        lambda j: decisions.report_progress(j, progress=Progress(percent=50), now=NOW, **stale),
        lambda j: decisions.add_messages(j, added=[JobMessage(text="x")], **stale),
    ):
        with pytest.raises(errors.LeaseLost):
            decide(job())
        with pytest.raises(errors.LeaseLost):
            decide(job(status=JobStatus.QUEUED, lease_token="old"))


def test_an_undelivered_claim_puts_the_job_back_as_it_was_before_the_claim() -> None:
    back = decisions.undelivered_claim(job(attempt=2), DEFAULT, lease_token="tok")
    assert back is not None
    assert (back.changes.status, back.changes.attempt) == (JobStatus.QUEUED, 1)
    assert back.changes.clear_lease and back.changes.clear_stall and back.expect_lease_token == "tok"
    [event] = back.events
    assert (event.actor, event.data["from"], event.data["to"]) == ("system", "RUNNING", "QUEUED")
    # Not the claim's any more (a later lease, or no lease): left alone, its own lease runs out.
    assert decisions.undelivered_claim(job(lease_token="later"), DEFAULT, lease_token="tok") is None
    assert decisions.undelivered_claim(job(status=JobStatus.COMPLETED), DEFAULT, lease_token="tok") is None
    # A table with no way back to QUEUED keeps the job RUNNING until its lease runs out.
    no_way_back = [
        name for name, table in BUILTIN.items() if not table.allows(JobStatus.RUNNING, JobStatus.QUEUED)
    ]
    for name in no_way_back:
        assert decisions.undelivered_claim(job(lifecycle=name), BUILTIN[name], lease_token="tok") is None


def test_complete_sets_progress_to_100_and_drops_the_lease_partial_keeps_the_error() -> None:
    done = decisions.complete(job(), DEFAULT, lease_token="tok", result={"n": 1}, partial=None, now=NOW)
    assert done.changes.status is JobStatus.COMPLETED and done.changes.progress == Progress(percent=100)
    assert done.changes.clear_lease and done.changes.complete_time == NOW and done.expect_lease_token == "tok"
    oops = JobError(message="2 of 3")
    partial = decisions.complete(job(), DEFAULT, lease_token="tok", result={}, partial=oops, now=NOW)
    assert (partial.changes.status, partial.changes.error) == (JobStatus.PARTIAL, oops)


def _end(j: Job, error: JobError, stop: StopReason = StopReason.UNSPECIFIED) -> Any:
    return decisions.end_attempt(
        j, DEFAULT, error, default_retry=RETRY, now=NOW, actor="x", cancel_reason="c", stop_reason=stop
    )


def test_an_attempt_ends_cancelled_if_asked_else_retried_while_attempts_are_left_else_failed() -> None:
    retryable = JobError(message="flaky", retryable=True)
    assert _end(job(cancel_requested=True), retryable).changes.status is JobStatus.CANCELLED
    again = _end(job(attempt=1), retryable).changes
    assert again.status is JobStatus.QUEUED and again.clear_lease
    assert NOW + dt.timedelta(seconds=5) <= again.run_after <= NOW + dt.timedelta(seconds=10)
    last = _end(job(attempt=3), retryable)
    assert last.changes.status is JobStatus.FAILED
    assert last.changes.stop_reason is StopReason.MAX_ATTEMPTS_EXCEEDED
    fatal = _end(job(attempt=1), JobError(message="bad input"), StopReason.VALIDATION_ERROR)
    assert (fatal.changes.status, fatal.changes.stop_reason) == (
        JobStatus.FAILED,
        StopReason.VALIDATION_ERROR,
    )


def test_a_jobs_own_backoff_wins_over_the_default() -> None:
    own = RetryPolicy(initial_backoff_s=1000, max_backoff_s=1000, multiplier=1)
    changes = _end(job(retry=own), JobError(message="x", retryable=True)).changes
    assert changes.run_after >= NOW + dt.timedelta(seconds=500)


def test_progress_records_an_event_only_when_it_changes_and_renews_the_lease() -> None:
    moved = decisions.report_progress(job(), lease_token="tok", progress=Progress(percent=50), now=NOW)
    assert [e.kind for e in moved.events] == [EventKind.PROGRESS]
    assert moved.changes.lease_expire_time == NOW + dt.timedelta(seconds=30)
    heartbeat = decisions.report_progress(job(), lease_token="tok", progress=Progress(percent=40), now=NOW)
    assert heartbeat.events == () and heartbeat.changes.lease_expire_time == NOW + dt.timedelta(seconds=30)
    asked = job(cancel_requested=True)
    graced = decisions.report_progress(asked, lease_token="tok", progress=Progress(percent=60), now=NOW)
    assert graced.changes.lease_expire_time == asked.lease_expire_time  # the cancel grace stands


def test_messages_are_one_log_event_each_in_order_counted_in_one_compare_and_set() -> None:
    added = [
        JobMessage(text="starting"),
        JobMessage(text="slow", level=MessageLevel.WARNING, data={"retry": 1}),
        JobMessage(level=MessageLevel.OUTPUT, data=[1, 2]),
    ]
    decision = decisions.add_messages(job(), lease_token="tok", added=added, request=KEY)
    assert decision is not None
    assert decision.changes == JobChanges(messages_added=3)  # nothing else: not even the lease
    assert (decision.expect_statuses, decision.expect_lease_token) == (frozenset({JobStatus.RUNNING}), "tok")
    assert decision.expect_version is None  # they add to the job; other changes in between do not matter
    assert [(e.kind, e.actor, e.request_id) for e in decision.events] == [
        (EventKind.LOG, "worker:w1", "r1")
    ] * 3
    assert [dict(e.data) for e in decision.events] == [
        {"request_fingerprint": KEY.fingerprint, "message": "starting", "level": "INFO"},
        {"request_fingerprint": KEY.fingerprint, "message": "slow", "level": "WARNING", "data": {"retry": 1}},
        {"request_fingerprint": KEY.fingerprint, "message": "", "level": "OUTPUT", "data": [1, 2]},
    ]
    # A worker winding down after a cancel request may still say why; no messages is nothing to write.
    assert decisions.add_messages(job(cancel_requested=True), lease_token="tok", added=added) is not None
    assert decisions.add_messages(job(), lease_token="tok", added=[]) is None
    for status in JobStatus:
        if status is not JobStatus.RUNNING:
            with pytest.raises(errors.LeaseLost):
                decisions.add_messages(job(status=status), lease_token="tok", added=added)


def _cancel(j: Job, etag: str = "") -> Any:
    return decisions.cancel(
        j, DEFAULT, actor="client:o", reason="", etag=etag, now=NOW, grace=dt.timedelta(seconds=5)
    )


def test_cancel_ends_a_waiting_job_at_once_and_asks_a_running_one_once() -> None:
    queued = _cancel(job(status=JobStatus.QUEUED))
    assert (queued.changes.status, queued.changes.stop_reason) == (
        JobStatus.CANCELLED,
        StopReason.USER_CANCELLED,
    )
    asked = _cancel(job())
    assert asked.changes.cancel_requested and [e.kind for e in asked.events] == [EventKind.CANCEL_REQUESTED]
    assert asked.changes.lease_expire_time == NOW + dt.timedelta(seconds=5)  # the grace, within the lease
    soon = job(lease_expire_time=NOW + dt.timedelta(seconds=1))
    assert _cancel(soon).changes.lease_expire_time == soon.lease_expire_time
    assert _cancel(job(cancel_requested=True)) is None
    with pytest.raises(errors.InvalidTransition):
        _cancel(job(status=JobStatus.COMPLETED))
    with pytest.raises(errors.EtagMismatch):
        _cancel(job(), etag='W/"6"')
    assert _cancel(job(), etag='W/"7"') is not None


def test_a_table_without_running_to_cancelled_cancels_nothing_that_runs() -> None:
    simple = BUILTIN["simple"]
    with pytest.raises(errors.InvalidTransition):
        decisions.cancel(
            job(lifecycle="simple"), simple, actor="c", reason="", etag="", now=NOW, grace=dt.timedelta()
        )


def test_only_a_held_job_is_released() -> None:
    released = decisions.release(job(status=JobStatus.CREATED), DEFAULT, actor="c")
    assert released.changes.status is DEFAULT.initial
    with pytest.raises(errors.InvalidTransition):
        decisions.release(job(status=JobStatus.QUEUED), DEFAULT, actor="c")


def test_the_reaper_expires_past_deadline_rescues_expired_leases_and_leaves_the_rest() -> None:
    def reap(j: Job, table: Lifecycle = DEFAULT) -> Any:
        return decisions.reap(j, table, default_retry=RETRY, now=NOW)

    late = reap(job(status=JobStatus.QUEUED, deadline=NOW))
    assert (late.changes.status, late.changes.stop_reason) == (JobStatus.EXPIRED, StopReason.TIMEOUT_EXCEEDED)
    lapsed = job(lease_expire_time=NOW - dt.timedelta(seconds=1))
    rescued = reap(lapsed)
    assert rescued.changes.status is JobStatus.QUEUED and rescued.events[0].actor == decisions.SYSTEM
    assert rescued.changes.error.reason == "LEASE_EXPIRED"
    gone = reap(dataclasses.replace(lapsed, attempt=3))
    assert (gone.changes.status, gone.changes.stop_reason) == (JobStatus.FAILED, StopReason.LEASE_EXPIRED)
    assert reap(dataclasses.replace(lapsed, cancel_requested=True)).changes.status is JobStatus.CANCELLED
    assert reap(job()) is None  # its lease is alive
    assert reap(job(status=JobStatus.COMPLETED, deadline=NOW)) is None  # already over
    assert reap(job(status=JobStatus.QUEUED, deadline=NOW), BUILTIN["simple"]) is None  # no EXPIRED edge


def test_jitter_never_shortens_a_backoff_below_half() -> None:
    rng = random.Random(7)
    assert all(5 <= RETRY.backoff_s(1, rng) <= 10 for _ in range(100))


def test_a_job_waiting_past_its_queue_timeout_expires_with_its_own_stop_reason() -> None:
    def reap(j: Job) -> Any:
        return decisions.reap(j, DEFAULT, default_retry=RETRY, now=NOW)

    for waiting in (JobStatus.QUEUED, JobStatus.CREATED):
        late = reap(job(status=waiting, queue_timeout_s=60, queue_expire_time=NOW))
        assert (late.changes.status, late.changes.stop_reason) == (
            JobStatus.EXPIRED,
            StopReason.QUEUE_TIMEOUT_EXCEEDED,
        )
        assert (
            reap(job(status=waiting, queue_timeout_s=60, queue_expire_time=NOW + dt.timedelta(seconds=1)))
            is None
        )
    # Once started it no longer waits: the window left on the row means nothing.
    assert reap(job(queue_timeout_s=60, queue_expire_time=NOW - dt.timedelta(seconds=1))) is None


def test_a_retry_opens_a_new_wait_from_when_it_is_due() -> None:
    again = _end(job(queue_timeout_s=60), JobError(message="flaky", retryable=True)).changes
    assert again.queue_expire_time == again.run_after + dt.timedelta(seconds=60)
    assert _end(job(), JobError(message="flaky", retryable=True)).changes.queue_expire_time is None
    assert decisions.queue_expire_time(NOW, None) is None


STALL_AFTER = dt.timedelta(seconds=60)
FLAG = StallRule(after_s=60)
FAIL = StallRule(after_s=60, action=StallAction.FAIL)


def still_since(delta: dt.timedelta, **fields: Any) -> Job:
    """The running job of `job()`, its progress unchanged for `delta` before NOW."""
    return job(progress_time=NOW - delta, **fields)


def test_a_leased_job_whose_progress_stood_still_past_stall_after_is_flagged_once() -> None:
    decision = decisions.reap(
        still_since(STALL_AFTER), DEFAULT, default_retry=RETRY, now=NOW, stall_rule=FLAG
    )
    assert decision is not None
    assert decision.changes == JobChanges(stall_time=NOW)  # flagged only: the lease and status stand
    assert (decision.expect_statuses, decision.expect_version) == (frozenset({JobStatus.RUNNING}), 7)
    [event] = decision.events
    assert (event.kind, event.actor) == (EventKind.STALLED, decisions.SYSTEM)
    assert event.data["since"] == (NOW - STALL_AFTER).isoformat()
    assert (event.data["percent"], event.data["stall_after_s"], event.data["failed"]) == (40, 60, False)
    # Not yet due, already flagged, no rule for its type, not running: nothing.
    young = still_since(STALL_AFTER - dt.timedelta(microseconds=1))
    assert decisions.reap(young, DEFAULT, default_retry=RETRY, now=NOW, stall_rule=FLAG) is None
    flagged = still_since(STALL_AFTER * 2, stall_time=NOW - dt.timedelta(seconds=1))
    assert decisions.reap(flagged, DEFAULT, default_retry=RETRY, now=NOW, stall_rule=FLAG) is None
    assert decisions.reap(still_since(STALL_AFTER), DEFAULT, default_retry=RETRY, now=NOW) is None
    queued = still_since(STALL_AFTER, status=JobStatus.QUEUED, lease_token="", lease_expire_time=None)
    assert decisions.stall(queued, DEFAULT, FLAG, default_retry=RETRY, now=NOW) is None


def test_a_lost_lease_wins_over_a_stall() -> None:
    lost = still_since(STALL_AFTER, lease_expire_time=NOW - dt.timedelta(seconds=1))
    decision = decisions.reap(lost, DEFAULT, default_retry=RETRY, now=NOW, stall_rule=FAIL)
    assert decision is not None and decision.changes.stop_reason is None  # retried as a lost lease
    assert [e.kind for e in decision.events] == [EventKind.TRANSITION]
    assert decision.events[0].data["to"] == "QUEUED"


def test_a_stall_with_action_fail_ends_the_attempt_as_a_lost_lease_would() -> None:
    # Attempts left: queued again, unflagged, after the job's backoff.
    retried = decisions.stall(still_since(STALL_AFTER), DEFAULT, FAIL, default_retry=RETRY, now=NOW)
    assert retried is not None and retried.changes.status is JobStatus.QUEUED
    assert retried.changes.clear_stall and retried.changes.stall_time is None
    assert retried.changes.error == JobError(
        message=f"progress stood still for 60s (since {(NOW - STALL_AFTER).isoformat()})",
        reason="STALLED",
        retryable=True,
    )
    assert [e.kind for e in retried.events] == [EventKind.STALLED, EventKind.TRANSITION]
    assert retried.events[0].data["failed"] is True
    # The last attempt: FAILED with stop reason STALLED, and it stays flagged.
    last = decisions.stall(still_since(STALL_AFTER, attempt=3), DEFAULT, FAIL, default_retry=RETRY, now=NOW)
    assert last is not None
    assert (last.changes.status, last.changes.stop_reason) == (JobStatus.FAILED, StopReason.STALLED)
    assert last.changes.stall_time == NOW and last.changes.complete_time == NOW
    assert last.events[1].data["stop_reason"] == "STALLED"
    # A cancel requested meanwhile wins, as it does over a lost lease.
    asked = still_since(STALL_AFTER, cancel_requested=True)
    cancelled = decisions.stall(asked, DEFAULT, FAIL, default_retry=RETRY, now=NOW)
    assert cancelled is not None and cancelled.changes.status is JobStatus.CANCELLED


def test_a_table_that_cannot_fail_a_running_job_only_flags_it() -> None:
    no_fail = Lifecycle.checked(
        "nofail",
        JobStatus.QUEUED,
        [(JobStatus.QUEUED, JobStatus.RUNNING), (JobStatus.RUNNING, JobStatus.COMPLETED)],
    )
    decision = decisions.stall(
        still_since(STALL_AFTER, attempt=3), no_fail, FAIL, default_retry=RETRY, now=NOW
    )
    assert decision is not None and decision.changes == JobChanges(stall_time=NOW)
    assert decision.events[0].data["failed"] is False


def test_progress_that_moves_restarts_the_stall_clock_and_clears_the_flag_a_heartbeat_does_not() -> None:
    flagged = still_since(STALL_AFTER, stall_time=NOW - dt.timedelta(seconds=5))
    moved = decisions.report_progress(flagged, lease_token="tok", progress=Progress(percent=41), now=NOW)
    assert moved.changes.progress_time == NOW and moved.changes.clear_stall
    heartbeat = decisions.report_progress(flagged, lease_token="tok", progress=Progress(percent=40), now=NOW)
    assert heartbeat.changes.progress_time is None and not heartbeat.changes.clear_stall
    # Completing a flagged job unflags it: it did not hang after all.
    done = decisions.complete(flagged, DEFAULT, lease_token="tok", result={}, partial=None, now=NOW)
    assert done.changes.clear_stall
