"""The domain's error tree. Each class carries the ErrorReason name the API reports for it.

The gRPC status code is chosen in api/errors.py from the class, so this module stays free of gRPC.
"""

from __future__ import annotations

from collections.abc import Mapping


class DomainError(Exception):
    """Root of every error the service reports on purpose."""

    reason = "INTERNAL"

    def __init__(self, message: str, *, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidArgument(DomainError):
    """A request field is malformed. `field` names it (dotted path)."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str, *, reason: str | None = None) -> None:
        super().__init__(f"{field}: {message}", metadata={"field": field})
        self.field = field
        self.description = message
        if reason is not None:
            self.reason = reason

    def within(self, parent: str) -> InvalidArgument:
        """The same refusal with its field under `parent`: `requests[3]` makes `job_type` into
        `requests[3].job_type`, for one item of a batch."""
        return InvalidArgument(f"{parent}.{self.field}", self.description, reason=self.reason)


class NotFound(DomainError):
    """Missing, or belongs to another owner: callers must not be able to tell which."""

    reason = "NOT_FOUND"


class InvalidTransition(DomainError):
    """The job's lifecycle table has no edge from its status to the wanted one."""

    reason = "INVALID_TRANSITION"

    def __init__(self, job_id: str, lifecycle: str, from_status: str, to_status: str) -> None:
        super().__init__(
            f"job {job_id}: {from_status} -> {to_status} is not allowed by lifecycle {lifecycle!r}",
            metadata={"job_id": job_id, "lifecycle": lifecycle, "from": from_status, "to": to_status},
        )


class LeaseLost(DomainError):
    """The caller's lease token is not the job's current one: it must stop working on the job."""

    reason = "LEASE_LOST"

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"job {job_id}: lease is stale or unknown; stop working on this job", metadata={"job_id": job_id}
        )


class RequestIdMismatch(DomainError):
    """A request_id was reused with different request content."""

    reason = "REQUEST_ID_MISMATCH"


class EtagMismatch(DomainError):
    """The job changed since the caller read it."""

    reason = "ETAG_MISMATCH"


class Conflict(EtagMismatch):
    """The job changed between the caller's read and its write; deciding again on a fresh read may
    succeed. Retried inside the service; reaches a client only if the job keeps changing."""


class Unauthenticated(DomainError):
    """No credentials, or unknown ones."""

    reason = "UNAUTHENTICATED"


class PermissionDenied(DomainError):
    """The caller's role does not allow the call."""

    reason = "PERMISSION_DENIED"


class StoreUnavailable(DomainError):
    """The database is busy or unreachable; the call changed nothing and may be retried."""

    reason = "STORE_UNAVAILABLE"


class ShuttingDown(DomainError):
    """The server is stopping; retry elsewhere or later."""

    reason = "SHUTTING_DOWN"


class ResourceExhausted(DomainError):
    """A server-side limit is exhausted."""

    reason = "RESOURCE_EXHAUSTED"


class WatcherTooSlow(DomainError):
    """A watcher fell too far behind; it may resume from the last sequence it saw."""

    reason = "WATCHER_TOO_SLOW"


class LifecycleNotConfigured(DomainError):
    """A job's lifecycle table is missing from this server's config, so nothing can decide its moves."""

    reason = "LIFECYCLE_NOT_CONFIGURED"

    def __init__(self, lifecycle: str) -> None:
        super().__init__(
            f"lifecycle {lifecycle!r} of this job is not in the server's config; add the table back",
            metadata={"lifecycle": lifecycle},
        )


class JobNotTerminal(DomainError):
    """The call needs a job that has ended (RetryJob, DeleteJob), and this one has not."""

    reason = "JOB_NOT_TERMINAL"

    def __init__(self, job_id: str, status: str, remedy: str) -> None:
        super().__init__(
            f"job {job_id} is {status}, not ended: {remedy}", metadata={"job_id": job_id, "status": status}
        )


class ConfigError(Exception):
    """The server configuration is wrong; raised at start-up, never during a request."""
