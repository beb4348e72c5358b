"""AdminService's rules on plain records (domain/admin.py), and the application of a decision that
answers dry runs (domain/preview.py): no database, no server."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from support.records import NOW, job

from jobwarden_server.domain import admin, decisions, errors, preview
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.domain.changes import Decision, JobChanges, Lease
from jobwarden_server.domain.idempotency import RequestKey
from jobwarden_server.domain.lifecycle import BUILTIN
from jobwarden_server.domain.records import CallbackState, EventKind, JobError, Progress
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import TERMINAL, JobStatus, StopReason

DEFAULT = BUILTIN["standard"]
RETRY = RetryPolicy(initial_backoff_s=10, max_backoff_s=100, multiplier=2)
KEY = RequestKey(id="r1", fingerprint="f" * 64)


S = JobStatus
ADMIN = "admin:o/ops"


def set_status(status: JobStatus, to: JobStatus, *, force: bool = False, **fields: object) -> Decision | None:
    return admin.set_status(
        job(status=status, **fields),
        DEFAULT,
        to,
        actor=ADMIN,
        reason="stuck since Friday",
        force=force,
        now=NOW,
        request=KEY,
    )


def test_an_edge_of_the_table_needs_no_force_and_is_recorded_as_not_bypassing_it() -> None:
    decision = set_status(S.QUEUED, S.CANCELLED, lease_token="", lease_expire_time=None)
    assert decision is not None
    [event] = decision.events
    assert event.kind is EventKind.TRANSITION and event.actor == ADMIN and event.request_id == "r1"
    assert event.data["from"] == "QUEUED" and event.data["to"] == "CANCELLED"
    assert event.data["reason"] == "stuck since Friday"
    assert (event.data["forced"], event.data["bypassed_table"]) == (False, False)
    assert event.data["request_fingerprint"] == KEY.fingerprint
    assert decision.changes.status is S.CANCELLED and decision.changes.complete_time == NOW
    assert decision.changes.stop_reason is StopReason.USER_CANCELLED
    assert decision.expect_statuses == {S.QUEUED} and decision.expect_version == 7


def test_an_edge_outside_the_table_is_refused_without_force() -> None:
    with pytest.raises(errors.InvalidTransition) as refused:
        set_status(S.QUEUED, S.COMPLETED)
    assert refused.value.metadata == {
        "job_id": "j1",
        "lifecycle": "standard",
        "from": "QUEUED",
        "to": "COMPLETED",
    }


@pytest.mark.parametrize("ended", sorted(TERMINAL))
def test_an_ended_job_goes_back_to_queued_only_with_force(ended: JobStatus) -> None:
    fields = {"complete_time": NOW - dt.timedelta(hours=1), "lease_token": "", "lease_expire_time": None}
    with pytest.raises(errors.InvalidTransition):
        set_status(ended, S.QUEUED, **fields)
    decision = set_status(ended, S.QUEUED, force=True, queue_timeout_s=60.0, **fields)
    assert decision is not None
    assert (decision.events[0].data["forced"], decision.events[0].data["bypassed_table"]) == (True, True)
    changes = decision.changes
    assert changes.status is S.QUEUED and changes.clear_complete_time and changes.complete_time is None
    assert changes.stop_reason is StopReason.UNSPECIFIED
    # Waiting again: a new queue timeout from now, not the old one long past.
    assert changes.queue_expire_time == NOW + dt.timedelta(seconds=60)


def test_force_on_an_edge_of_the_table_is_recorded_as_forced_but_not_bypassing() -> None:
    decision = set_status(S.RUNNING, S.FAILED, force=True)
    assert decision is not None
    assert (decision.events[0].data["forced"], decision.events[0].data["bypassed_table"]) == (True, False)


def test_leaving_running_drops_the_lease_and_failing_records_the_reason_as_the_error() -> None:
    decision = set_status(S.RUNNING, S.FAILED, cancel_requested=True)
    assert decision is not None
    assert decision.changes.clear_lease and decision.expect_lease_token is None
    assert decision.changes.error == JobError(message="stuck since Friday", reason=admin.SET_BY_ADMIN)
    assert decision.changes.complete_time == NOW
    after = preview.applied(job(status=S.RUNNING), decision, NOW)
    # The worker's next call carries a token the job no longer has: LEASE_LOST.
    with pytest.raises(errors.LeaseLost):
        decisions.check_leased(after, "tok")


def test_running_back_to_queued_clears_a_pending_cancel() -> None:
    decision = set_status(S.RUNNING, S.QUEUED, cancel_requested=True)
    assert decision is not None
    assert decision.changes.cancel_requested is False and decision.changes.clear_lease
    assert decision.events[0].data["bypassed_table"] is False  # RUNNING -> QUEUED is the retry edge


def test_a_stalled_job_sent_back_to_wait_is_unflagged_one_ended_stays_flagged() -> None:
    stalled = {"stall_time": NOW - dt.timedelta(seconds=5)}
    requeued = set_status(S.RUNNING, S.QUEUED, **stalled)
    assert requeued is not None and requeued.changes.clear_stall
    failed = set_status(S.RUNNING, S.FAILED, **stalled)
    assert failed is not None and not failed.changes.clear_stall
    assert preview.applied(job(status=S.RUNNING, **stalled), requeued, NOW).stall_time is None


def test_a_job_already_in_the_status_is_left_as_it_is() -> None:
    assert set_status(S.QUEUED, S.QUEUED, force=True) is None


def test_force_never_strands_a_job_in_a_waiting_state_its_table_lacks() -> None:
    simple = BUILTIN["simple"]
    ended = job(status=S.FAILED, lifecycle="simple", lease_token="", lease_expire_time=None)
    with pytest.raises(errors.InvalidTransition):
        admin.set_status(ended, simple, S.CREATED, actor=ADMIN, reason="r", force=True, now=NOW)
    # A terminal status always ends the job, whether its table names it or not.
    cancelled = admin.set_status(
        job(status=S.QUEUED, lifecycle="simple"),
        simple,
        S.CANCELLED,
        actor=ADMIN,
        reason="r",
        force=True,
        now=NOW,
    )
    assert cancelled is not None and cancelled.events[0].data["bypassed_table"] is True


def test_running_is_never_a_target() -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        admin.check_target("status", S.RUNNING)
    assert refused.value.field == "status"
    assert admin.check_target("status", S.QUEUED) is S.QUEUED


def test_only_ended_jobs_run_again() -> None:
    for status in S:
        if status.terminal:
            assert admin.check_retryable(job(status=status)).status is status
        else:
            with pytest.raises(errors.JobNotTerminal) as refused:
                admin.check_retryable(job(status=status))
            assert refused.value.metadata == {"job_id": "j1", "status": status.value}


def test_identity_and_reach_of_an_admin() -> None:
    ops = Principal(owner="acme", roles=frozenset({Role.ADMIN}), name="ops-bob")
    assert admin.actor(ops) == "admin:acme/ops-bob"
    assert admin.actor(dataclasses.replace(ops, name="acme")) == "admin:acme"
    assert admin.scope(ops) == "acme"
    assert admin.scope(dataclasses.replace(ops, roles=frozenset({Role.GLOBAL_ADMIN}))) is None


def test_roles_admin_implies_the_others_but_not_global_reach() -> None:
    plain = Principal(owner="a", roles=frozenset({Role.ADMIN}))
    assert plain.has(Role.CLIENT) and plain.has(Role.WORKER) and plain.has(Role.ADMIN)
    assert not plain.has(Role.GLOBAL_ADMIN)
    everywhere = Principal(owner="a", roles=frozenset({Role.GLOBAL_ADMIN}))
    assert all(everywhere.has(role) for role in Role)
    assert not Principal(owner="a", roles=frozenset({Role.CLIENT, Role.WORKER})).has(Role.ADMIN)


# --- preview.applied: the job a decision makes, as the store would write it ----------------------


def test_applied_sets_what_the_decision_sets_and_counts_version_and_events() -> None:
    running = job()
    decision = decisions.complete(
        running, DEFAULT, lease_token="tok", result={"ok": True}, partial=None, now=NOW, request=KEY
    )
    after = preview.applied(running, decision, NOW)
    assert after.status is S.COMPLETED and after.result == {"ok": True}
    assert after.progress == Progress(percent=100.0)
    assert after.complete_time == NOW and after.update_time == NOW
    assert (after.version, after.last_sequence) == (8, 4)
    assert after.lease_token == "" and after.lease_expire_time is None and after.worker_id == "w1"
    assert running.status is S.RUNNING  # the record read is left alone


def test_applied_renews_or_grants_a_lease() -> None:
    running = job()
    beat = decisions.report_progress(running, lease_token="tok", progress=running.progress, now=NOW)
    after = preview.applied(running, beat, NOW)
    assert after.lease_expire_time == NOW + dt.timedelta(seconds=30) and after.last_sequence == 3
    lease = Lease(token="t2", worker_id="w2", expire_time=NOW + dt.timedelta(seconds=5), duration_s=5)
    granted = preview.applied(running, Decision(changes=JobChanges(lease=lease)), NOW)
    assert (granted.lease_token, granted.worker_id, granted.lease_duration_s) == ("t2", "w2", 5)


def test_applied_reopens_an_ended_job_and_marks_a_callback_due_when_one_ends() -> None:
    ended = job(status=S.FAILED, complete_time=NOW, lease_token="", lease_expire_time=None)
    reopen = set_status(
        S.FAILED, S.QUEUED, force=True, complete_time=NOW, lease_token="", lease_expire_time=None
    )
    assert reopen is not None
    assert preview.applied(ended, reopen, NOW).complete_time is None
    with_callback = job(callback_url="https://example.com/hook", callback_statuses=frozenset({S.FAILED}))
    failed = decisions.fail(
        with_callback,
        DEFAULT,
        lease_token="tok",
        error=JobError(message="no"),
        stop_reason=StopReason.UNSPECIFIED,
        default_retry=RETRY,
        now=NOW,
    )
    assert preview.applied(with_callback, failed, NOW).callback_state is CallbackState.PENDING
    completed = decisions.complete(
        with_callback, DEFAULT, lease_token="tok", result={}, partial=None, now=NOW
    )
    assert preview.applied(with_callback, completed, NOW).callback_state is CallbackState.NONE
