"""RecentRows: which rows are kept, for how long, and that each is taken once."""

from __future__ import annotations

from support.records import job

from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store._recent import RecentRows


def test_the_oldest_row_goes_first_past_capacity() -> None:
    recent = RecentRows(capacity=2)
    jobs = [job(id=f"j{i}") for i in range(3)]
    for kept in jobs:
        recent.keep({"id": kept.id}, kept)
    assert recent.take("j0") is None
    assert recent.take("j2") == ({"id": "j2"}, jobs[2])
    assert recent.take("j1") == ({"id": "j1"}, jobs[1])


def test_a_row_is_taken_once() -> None:
    recent = RecentRows()
    recent.keep({"id": "j1"}, job())
    assert recent.take("j1") is not None
    assert recent.take("j1") is None


def test_a_job_kept_again_is_kept_as_it_is_now_and_counts_as_the_newest() -> None:
    recent = RecentRows(capacity=2)
    recent.keep({"v": 1}, job(id="a", version=1))
    recent.keep({"v": 1}, job(id="b", version=1))
    recent.keep({"v": 2}, job(id="a", version=2))
    recent.keep({"v": 1}, job(id="c", version=1))  # pushes out b, now the oldest
    assert recent.take("b") is None
    assert recent.take("a") == ({"v": 2}, job(id="a", version=2))


def test_only_running_jobs_are_kept_and_a_finished_one_forgets_its_running_row() -> None:
    recent = RecentRows()
    recent.keep({"id": "q"}, job(id="q", status=JobStatus.QUEUED))
    assert recent.take("q") is None
    recent.keep({"id": "j1"}, job())
    recent.keep({"id": "j1"}, job(status=JobStatus.COMPLETED))
    assert recent.take("j1") is None
