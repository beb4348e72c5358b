"""Tracing in the SDK, with OpenTelemetry when it is installed (``pip install 'jobwarden[otel]'``).

- :meth:`Client.create_job`, :meth:`Client.create_jobs` and :meth:`Client.create_batch` each run in a
  CLIENT span (a child of the caller's current span) and send its W3C trace context to the server as
  ``traceparent`` / ``tracestate`` call metadata. The server stores it with the jobs it creates.
- :class:`Worker` runs each handler in a CONSUMER span named ``process <job type>`` whose parent is the
  trace context stored with the job, so the job's run continues the trace it was created in. Spans the
  handler starts itself are children of that span.

Spans go to whatever OpenTelemetry SDK and exporter the process configured. Only this module imports
OpenTelemetry, and only if it can: without it, calls send no trace metadata and no span code runs.
:func:`current_trace_id` works either way, for logs.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from jobwarden.client import _models

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the otel extra is not installed: no spans, no trace metadata
    OTEL = False
else:
    OTEL = True
    _TRACER = otel_trace.get_tracer("jobwarden.client")
    # Always W3C, whatever propagator the process configured: it is the one format the server reads.
    _PROPAGATOR = TraceContextTextMapPropagator()

Metadata = tuple[tuple[str, str], ...]

_job_traceparent: contextvars.ContextVar[str] = contextvars.ContextVar(
    "jobwarden_job_traceparent", default=""
)


@contextlib.contextmanager
def client_call(method: str) -> Iterator[Metadata]:
    """Run one call in a CLIENT span named `method` ("jobwarden.v1.JobService/CreateJob"); yields the
    metadata that carries the span's context to the server (none without OpenTelemetry). A call that
    raises marks the span as failed."""
    if not OTEL:
        yield ()
        return
    service, _, rpc = method.partition("/")
    with _TRACER.start_as_current_span(
        method,
        kind=otel_trace.SpanKind.CLIENT,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc},
    ):
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        yield tuple(carrier.items())


@contextlib.contextmanager
def handler_span(job: _models.Job) -> Iterator[None]:
    """Run a job's handler in the job's trace: a CONSUMER span whose parent is the trace context
    stored with the job (a new trace when it has none, never the worker's own current span)."""
    token = _job_traceparent.set(job.traceparent)
    try:
        if not OTEL:
            yield
            return
        carrier = {"traceparent": job.traceparent, "tracestate": job.tracestate} if job.traceparent else {}
        with _TRACER.start_as_current_span(
            f"process {job.job_type}",
            context=_PROPAGATOR.extract(carrier, context=otel_context.Context()),
            kind=otel_trace.SpanKind.CONSUMER,
            attributes={
                "jobwarden.job.id": job.id,
                "jobwarden.job.type": job.job_type,
                "jobwarden.job.attempt": job.attempt,
            },
        ):
            yield
    finally:
        _job_traceparent.reset(token)


def record_handler_error(error: BaseException) -> None:
    """Mark the current handler span as failed by `error` (nothing without OpenTelemetry)."""
    if not OTEL:
        return
    span = otel_trace.get_current_span()
    span.record_exception(error)
    span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, str(error) or type(error).__name__))


def current_trace_id() -> str | None:
    """The trace id (32 lowercase hex digits) of the work being done now, for logs: the current
    OpenTelemetry span's, else, inside a handler, the one stored with its job; None outside any trace."""
    if OTEL:
        span_context = otel_trace.get_current_span().get_span_context()
        if span_context.is_valid:
            return format(span_context.trace_id, "032x")
    traceparent = _job_traceparent.get()
    # The server stores only valid traceparents, in their version-00 form: the trace id is at 3..35.
    return traceparent[3:35] if traceparent else None
