"""Job statuses and stop reasons; the values are the proto enum names without their prefix."""

from __future__ import annotations

import enum


class JobStatus(enum.StrEnum):
    """Where a job stands. Which changes are legal is decided by its lifecycle table."""

    CREATED = "CREATED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def terminal(self) -> bool:
        """Whether this status ends the job."""
        return self in TERMINAL


TERMINAL: frozenset[JobStatus] = frozenset(
    {JobStatus.COMPLETED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
)


class StopReason(enum.StrEnum):
    """Why a job ended, when the status alone does not say it."""

    UNSPECIFIED = "UNSPECIFIED"
    USER_CANCELLED = "USER_CANCELLED"
    TIMEOUT_EXCEEDED = "TIMEOUT_EXCEEDED"
    RESOURCE_LIMIT_EXCEEDED = "RESOURCE_LIMIT_EXCEEDED"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    LEASE_EXPIRED = "LEASE_EXPIRED"
    MAX_ATTEMPTS_EXCEEDED = "MAX_ATTEMPTS_EXCEEDED"
    QUEUE_TIMEOUT_EXCEEDED = "QUEUE_TIMEOUT_EXCEEDED"
    STALLED = "STALLED"


WORKER_STOP_REASONS: frozenset[StopReason] = frozenset(
    {
        StopReason.UNSPECIFIED,
        StopReason.RESOURCE_LIMIT_EXCEEDED,
        StopReason.VALIDATION_ERROR,
        StopReason.PROVIDER_ERROR,
        StopReason.INTERNAL_ERROR,
    }
)
"""What a worker may say about its own failure. The others record what the server saw (a client's
cancel, a deadline, a lost lease, the last attempt): a worker claiming one would forge history."""
