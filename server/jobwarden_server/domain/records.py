"""Frozen records the store returns and the service hands to the API. Times are timezone-aware UTC."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import JobStatus, StopReason


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """A worker's progress report. percent is 0..100; done <= total when total is set."""

    percent: float = 0.0
    message: str = ""
    done: int = 0
    total: int = 0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobError:
    """Why a job failed or finished partially."""

    message: str
    reason: str = ""
    retryable: bool = False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One job as stored. `version` grows by one on every change; the etag is derived from it."""

    id: str
    owner: str
    job_type: str
    lifecycle: str
    status: JobStatus
    progress: Progress
    parameters: Mapping[str, Any]
    result: Mapping[str, Any] | None
    error: JobError | None
    stop_reason: StopReason
    attempt: int
    max_attempts: int
    priority: int
    labels: Mapping[str, str]
    run_after: dt.datetime | None
    deadline: dt.datetime | None
    callback_url: str
    cancel_requested: bool
    version: int
    create_time: dt.datetime
    update_time: dt.datetime
    start_time: dt.datetime | None
    complete_time: dt.datetime | None
    worker_id: str
    lease_token: str
    lease_expire_time: dt.datetime | None
    lease_duration_s: float
    last_sequence: int
    request_id: str
    retry: RetryPolicy | None = None
    """The job's own backoff between attempts; None takes the server's defaults."""
    queue_timeout_s: float | None = None
    """How long the job may wait to start (schedule-to-start); None: no limit."""
    queue_expire_time: dt.datetime | None = None
    """While it waits to start: when it expires unless claimed first."""

    @property
    def etag(self) -> str:
        """AIP-154 etag: opaque to clients, changes on every change of the job."""
        return f'W/"{self.version}"'


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Asset:
    """An output a worker attached to a job."""

    id: str
    job_id: str
    owner: str
    asset_type: str
    uri: str
    storage_path: str
    size_bytes: int
    content_type: str
    sha256: str
    metadata: Mapping[str, str]
    create_time: dt.datetime
    sequence: int = 0
    """The sequence of the job event that added the asset: assets order and page by it."""


class EventKind(enum.StrEnum):
    """What a job event records; `Event.data` holds the kind's fields."""

    CREATED = "created"  # data: status
    TRANSITION = "transition"  # data: from, to, reason, stop_reason
    PROGRESS = "progress"  # data: percent, message, done, total
    ASSET_ADDED = "asset_added"  # data: the asset's fields (Event.asset is rebuilt from them)
    LOG = "log"  # data: message
    CANCEL_REQUESTED = "cancel_requested"  # data: reason


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One entry of a job's history. Sequences are per job: 1, 2, 3, ... with no gaps."""

    job_id: str
    owner: str
    sequence: int
    create_time: dt.datetime
    actor: str
    kind: EventKind
    data: Mapping[str, Any]
    asset: Asset | None = None
