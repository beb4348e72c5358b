"""Domain records for tests of pure rules: a running job with a live lease, any field overridden."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jobwarden_server.domain.records import Job, Progress
from jobwarden_server.domain.status import JobStatus, StopReason

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
"""The clock of every rule test: the job below is read at this instant."""


def job(**fields: Any) -> Job:
    """A standard-table job RUNNING under lease "tok" (20 s left) at 40 %, version 7, on attempt 1 of
    3; `fields` replace any of that."""
    base: dict[str, Any] = {
        "id": "j1",
        "owner": "o",
        "job_type": "demo",
        "lifecycle": "standard",
        "status": JobStatus.RUNNING,
        "progress": Progress(percent=40),
        "parameters": {},
        "result": None,
        "error": None,
        "stop_reason": StopReason.UNSPECIFIED,
        "attempt": 1,
        "max_attempts": 3,
        "priority": 0,
        "labels": {},
        "run_after": None,
        "deadline": None,
        "callback_url": "",
        "cancel_requested": False,
        "version": 7,
        "create_time": NOW - dt.timedelta(minutes=5),
        "update_time": NOW - dt.timedelta(minutes=1),
        "start_time": NOW - dt.timedelta(minutes=1),
        "complete_time": None,
        "worker_id": "w1",
        "lease_token": "tok",
        "lease_expire_time": NOW + dt.timedelta(seconds=20),
        "lease_duration_s": 30.0,
        "last_sequence": 3,
        "request_id": "",
    }
    return Job(**(base | fields))
