"""RecentRows: running jobs' rows as this process last committed them, so that a worker's next change
to its job (a progress report, the completion, the failure) is decided without reading the row again.

A job's row is read once per change otherwise: on SQLite, reading a whole row and making a Job of it
costs as much as the rest of a completion's work together. Keeping the row is safe because:

- every write to a job's row advances its `version` (the one exception, a finished job's
  callback_state set by the change that finished it, never reaches here: only RUNNING rows are kept),
  and job ids are never reused, so the committed row at a version is one row;
- a row is kept only once its transaction committed (the caller keeps it after the write answered),
  so a kept row at version v is the job's row at v;
- every change decided on a kept row is a compare-and-set on that version: if anything wrote the job
  since (another replica, the reaper, a lease renewal, a client's cancel), the guard fails and the
  change is decided again on a fresh read, in the same transaction.

A kept row is taken, not read: whatever happens to the change decided on it, the next one reads afresh
unless that change kept its own row. Bounded: past `capacity` the oldest rows go first (a worker that
died leaves its jobs' rows behind until the reaper moves them).
"""

from __future__ import annotations

import threading

from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store._rows import Row

CAPACITY = 4096
"""Rows kept at most: well above the jobs a busy server's workers hold at once."""


class RecentRows:
    """Rows of RUNNING jobs (with their Jobs) by job id; the event loop keeps, the writer takes."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._kept: dict[str, tuple[Row, Job]] = {}
        self._lock = threading.Lock()  # SQLite's writer thread takes while the event loop keeps

    def keep(self, row: Row, job: Job) -> None:
        """Keep `row` (committed) and the Job made of it, if the job is running; else forget the job."""
        with self._lock:
            self._kept.pop(job.id, None)
            if job.status is not JobStatus.RUNNING:
                return
            self._kept[job.id] = (row, job)
            if len(self._kept) > self._capacity:
                del self._kept[next(iter(self._kept))]  # the oldest: dicts keep insertion order

    def take(self, job_id: str) -> tuple[Row, Job] | None:
        """The job's kept row and Job, forgotten here; None if none is kept."""
        with self._lock:
            return self._kept.pop(job_id, None)
