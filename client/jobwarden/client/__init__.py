"""The jobwarden Python SDK: an asyncio client and a managed worker.

Create and watch jobs with :class:`Client`; run handlers for claimed jobs with :class:`Worker`::

    from jobwarden.client import Client, JobContext, Worker

    async with Client("127.0.0.1:50051") as client:
        job = await client.create_job("thumbnail", {"url": "https://example.com/a.png"})

Failed calls raise the exceptions of :mod:`jobwarden.errors`. With OpenTelemetry installed
(``pip install 'jobwarden[otel]'``), creating a job and running its handler are spans of one trace;
:func:`current_trace_id` names that trace for logs (README, "Tracing").
"""

from __future__ import annotations

from jobwarden.client._channel import DEFAULT_TARGET, DEFAULT_TIMEOUT
from jobwarden.client._client import Client
from jobwarden.client._context import Handler, HandlerResult, JobContext, PartialResult, PermanentError
from jobwarden.client._models import (
    Asset,
    BatchCounts,
    CallbackAttempt,
    CallbackState,
    Claim,
    DurationStats,
    EventKind,
    Job,
    JobError,
    JobEvent,
    JobMessage,
    JobStats,
    JobStatus,
    JobTypeStats,
    Lifecycle,
    MessageLevel,
    NewJob,
    Progress,
    RetryPolicy,
    Stall,
    StopReason,
    WatchReconnect,
)
from jobwarden.client._tls import TlsOptions
from jobwarden.client._tracing import current_trace_id
from jobwarden.client._worker import Worker

__all__ = [
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "Asset",
    "BatchCounts",
    "CallbackAttempt",
    "CallbackState",
    "Claim",
    "Client",
    "DurationStats",
    "EventKind",
    "Handler",
    "HandlerResult",
    "Job",
    "JobContext",
    "JobError",
    "JobEvent",
    "JobMessage",
    "JobStats",
    "JobStatus",
    "JobTypeStats",
    "Lifecycle",
    "MessageLevel",
    "NewJob",
    "PartialResult",
    "PermanentError",
    "Progress",
    "RetryPolicy",
    "Stall",
    "StopReason",
    "TlsOptions",
    "WatchReconnect",
    "Worker",
    "current_trace_id",
]
