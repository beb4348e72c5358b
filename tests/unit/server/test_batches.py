"""The rules that drive a batch's parent (domain/batches.py), on plain records: no database."""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any

import pytest
from support.records import NOW, job

from jobwarden_server.domain import batches, errors
from jobwarden_server.domain.idempotency import RequestKey
from jobwarden_server.domain.lifecycle import BATCH
from jobwarden_server.domain.records import BatchCounts, EventKind, Job, Progress
from jobwarden_server.domain.status import JobStatus, StopReason

S = JobStatus
TERMINAL = [S.COMPLETED, S.PARTIAL, S.FAILED, S.CANCELLED, S.EXPIRED]


def parent(counts: BatchCounts, **fields: Any) -> Job:
    """A batch parent, QUEUED before any child started, with these counts."""
    waiting: dict[str, Any] = {
        "id": "p1",
        "job_type": "report",
        "lifecycle": "batch",
        "status": S.QUEUED,
        "progress": Progress(),
        "attempt": 0,
        "max_attempts": 1,
        "version": 4,
        "start_time": None,
        "worker_id": "",
        "lease_token": "",
        "lease_expire_time": None,
        "lease_duration_s": 0.0,
        "last_sequence": 1,
        "batch": counts,
    }
    return job(**(waiting | fields))


def transitions(decision: Any) -> list[tuple[str, str]]:
    return [(e.data["from"], e.data["to"]) for e in decision.events if e.kind is EventKind.TRANSITION]


# --- counts ------------------------------------------------------------------------------------


def test_counts_of_new_children_and_their_moves() -> None:
    counts = batches.counts_of([S.QUEUED, S.QUEUED, S.CREATED])
    assert counts == BatchCounts(created=1, queued=2)
    assert (counts.total, counts.finished, counts.waiting) == (3, 0, 3)
    moved = batches.moved(counts, S.QUEUED, S.RUNNING)
    assert moved == BatchCounts(created=1, queued=1, running=1)
    assert batches.moved(moved, S.RUNNING, S.FAILED).finished == 1


def test_random_moves_keep_the_total() -> None:
    rng = random.Random(7)
    counts = batches.counts_of([S.QUEUED] * 20)
    for _ in range(200):
        present = [s for s in S if counts.of(s) > 0]
        counts = batches.moved(counts, rng.choice(present), rng.choice(list(S)))
        assert counts.total == 20
        assert all(counts.of(s) >= 0 for s in S)


# --- the aggregate -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ended", "expected"),
    [
        ({S.COMPLETED: 3}, S.COMPLETED),
        ({S.FAILED: 3}, S.FAILED),
        ({S.FAILED: 1, S.CANCELLED: 1, S.EXPIRED: 1}, S.FAILED),
        ({S.CANCELLED: 2}, S.FAILED),
        ({S.COMPLETED: 2, S.FAILED: 1}, S.PARTIAL),
        ({S.PARTIAL: 3}, S.PARTIAL),
        ({S.COMPLETED: 1, S.EXPIRED: 1}, S.PARTIAL),
        ({S.PARTIAL: 1, S.FAILED: 2}, S.PARTIAL),
    ],
)
def test_outcome(ended: dict[JobStatus, int], expected: JobStatus) -> None:
    counts = BatchCounts(**{s.value.lower(): n for s, n in ended.items()})
    assert batches.outcome(counts) is expected


def test_outcome_of_every_mix_of_two_children() -> None:
    for a, b in itertools.combinations_with_replacement(TERMINAL, 2):
        counts = batches.moved(batches.moved(BatchCounts(), None, a), None, b)
        got = batches.outcome(counts)
        if a is b is S.COMPLETED:
            assert got is S.COMPLETED
        elif {a, b} <= {S.FAILED, S.CANCELLED, S.EXPIRED}:
            assert got is S.FAILED
        else:
            assert got is S.PARTIAL


# --- follow ------------------------------------------------------------------------------------


def test_nothing_to_do_while_every_child_waits() -> None:
    assert batches.follow(parent(BatchCounts(queued=2, created=1)), NOW) is None


def test_the_first_child_started_runs_the_parent() -> None:
    decision = batches.follow(parent(BatchCounts(queued=2, running=1)), NOW)
    assert decision is not None
    assert transitions(decision) == [("QUEUED", "RUNNING")]
    assert decision.changes.status is S.RUNNING and decision.changes.start_time == NOW
    assert decision.changes.progress is None, "no child has ended: progress unchanged"
    assert decision.expect_statuses == {S.QUEUED} and decision.expect_version == 4


def test_a_running_parent_records_progress_as_children_end() -> None:
    running = parent(BatchCounts(queued=1, running=1, completed=2), status=S.RUNNING)
    decision = batches.follow(running, NOW)
    assert decision is not None and transitions(decision) == []
    assert decision.changes.progress == Progress(
        percent=50.0, message="2 of 4 children finished", done=2, total=4
    )
    assert [e.kind for e in decision.events] == [EventKind.PROGRESS]
    # Another child starting changes no progress: nothing to record.
    same = dataclasses.replace(running, progress=decision.changes.progress)
    assert batches.follow(same, NOW) is None


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        (BatchCounts(completed=2), S.COMPLETED),
        (BatchCounts(failed=2), S.FAILED),
        (BatchCounts(completed=1, failed=1), S.PARTIAL),
    ],
)
def test_the_last_child_ends_the_parent(counts: BatchCounts, expected: JobStatus) -> None:
    decision = batches.follow(parent(counts, status=S.RUNNING), NOW)
    assert decision is not None
    assert transitions(decision) == [("RUNNING", expected.value)]
    assert decision.changes.status is expected and decision.changes.complete_time == NOW
    assert (decision.changes.error is None) is (expected is S.COMPLETED)
    assert BATCH.allows(S.RUNNING, expected)


def test_children_that_all_ended_unstarted_still_run_the_parent_first() -> None:
    """Children cancelled one by one while queued: the table has no QUEUED -> FAILED, so the parent
    goes through RUNNING, and both moves are recorded."""
    decision = batches.follow(parent(BatchCounts(cancelled=2)), NOW)
    assert decision is not None
    assert transitions(decision) == [("QUEUED", "RUNNING"), ("RUNNING", "FAILED")]
    assert decision.changes.status is S.FAILED


def test_a_cancelled_parent_ends_cancelled_once_every_child_has_ended() -> None:
    marked = parent(BatchCounts(running=1, cancelled=2), status=S.RUNNING, cancel_requested=True)
    waiting = batches.follow(marked, NOW)
    assert waiting is not None and transitions(waiting) == [], "a child still runs: only progress"
    ended = batches.follow(dataclasses.replace(marked, batch=BatchCounts(completed=1, cancelled=2)), NOW)
    assert ended is not None and transitions(ended) == [("RUNNING", "CANCELLED")]
    assert ended.changes.stop_reason is StopReason.USER_CANCELLED


def test_a_cancelled_parent_that_never_started_is_cancelled_directly() -> None:
    decision = batches.follow(parent(BatchCounts(cancelled=3), cancel_requested=True), NOW)
    assert decision is not None and transitions(decision) == [("QUEUED", "CANCELLED")]


def test_a_terminal_parent_never_moves() -> None:
    assert batches.follow(parent(BatchCounts(completed=1), status=S.COMPLETED), NOW) is None


def test_every_move_follow_makes_is_in_the_batch_table() -> None:
    """Every reachable mix of counts, from every status a parent can be in."""
    for status in (S.QUEUED, S.RUNNING):
        for cancel in (False, True):
            for mix in itertools.product(range(3), repeat=4):
                counts = BatchCounts(queued=mix[0], running=mix[1], completed=mix[2], failed=mix[3])
                if counts.total == 0:
                    continue
                decision = batches.follow(parent(counts, status=status, cancel_requested=cancel), NOW)
                for a, b in transitions(decision) if decision else []:
                    assert BATCH.allows(S(a), S(b)), (status, cancel, counts)


# --- cancel ------------------------------------------------------------------------------------


def test_cancel_marks_the_parent_once() -> None:
    key = RequestKey(id="r1", fingerprint="f" * 64)
    running = parent(BatchCounts(running=2), status=S.RUNNING)
    decision = batches.cancel(running, actor="client:o", reason="enough", etag="", request=key)
    assert decision is not None
    assert decision.changes.cancel_requested is True and decision.changes.status is None
    assert [e.kind for e in decision.events] == [EventKind.CANCEL_REQUESTED]
    assert decision.events[0].request_id == "r1"
    assert decision.expect_version is None, "no etag sent: the counts may move meanwhile"
    marked = dataclasses.replace(running, cancel_requested=True)
    assert batches.cancel(marked, actor="client:o", reason="", etag="") is None


def test_cancel_checks_the_etag_and_refuses_an_ended_parent() -> None:
    running = parent(BatchCounts(running=2), status=S.RUNNING)
    with pytest.raises(errors.EtagMismatch):
        batches.cancel(running, actor="client:o", reason="", etag='W/"3"')
    guarded = batches.cancel(running, actor="client:o", reason="", etag=running.etag)
    assert guarded is not None and guarded.expect_version == running.version
    with pytest.raises(errors.InvalidTransition):
        batches.cancel(dataclasses.replace(running, status=S.COMPLETED), actor="client:o", reason="", etag="")
