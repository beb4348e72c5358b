"""Tracing: the W3C trace context each RPC carries in its metadata, and, when OpenTelemetry is
installed (`pip install 'jobwarden[otel]'`), a SERVER span per RPC as its child.

The trace context is read whether or not OpenTelemetry is there: jobs keep the one their create call
carried (domain/trace.py), and `current_trace_id()` names it for logs. Only this module imports
OpenTelemetry, and only if it can: without the extra, no span code runs. Spans go wherever the
process's OpenTelemetry SDK sends them; until the process sets a tracer provider none is started (even
a no-op span costs a tenth of a small RPC's server time).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator

from jobwarden_server.domain import trace

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the otel extra is not installed: trace contexts are still kept, no spans made
    OTEL = False
else:
    OTEL = True
    _TRACER = otel_trace.get_tracer("jobwarden_server")
    # Always W3C, whatever propagator the process configured: it is what jobs store and workers read.
    _PROPAGATOR = TraceContextTextMapPropagator()

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

_incoming: contextvars.ContextVar[trace.TraceContext | None] = contextvars.ContextVar(
    "jobwarden_incoming_trace", default=None
)
_served: contextvars.ContextVar[otel_trace.Span | None] = contextvars.ContextVar(
    "jobwarden_rpc_span", default=None
)
"""The SERVER span of the RPC being served (None when none was started)."""


def carried(metadata: Iterable[tuple[str, str | bytes]] | None) -> trace.TraceContext | None:
    """The valid trace context in a call's metadata, or None (none, several traceparents, or a
    malformed one: tracing never refuses a call)."""
    parents: list[str] = []
    states: list[str] = []
    for key, value in metadata or ():
        if isinstance(value, bytes):
            continue  # only `-bin` keys carry bytes; neither header is one
        if key.lower() == TRACEPARENT:
            parents.append(value)
        elif key.lower() == TRACESTATE:
            states.append(value)
    return trace.parse(parents[0], states) if len(parents) == 1 else None


def incoming() -> trace.TraceContext | None:
    """The trace context the RPC being served carried (set by rpc_span)."""
    return _incoming.get()


@contextlib.contextmanager
def rpc_span(method: str, metadata: Iterable[tuple[str, str | bytes]] | None) -> Iterator[None]:
    """Serve one RPC in the trace context its metadata carries: readable by incoming() and, with
    OpenTelemetry, the parent of the RPC's SERVER span (a new trace when it carried none)."""
    token = _incoming.set(carried(metadata))
    try:
        if not OTEL or isinstance(otel_trace.get_tracer_provider(), otel_trace.ProxyTracerProvider):
            yield  # no OpenTelemetry, or no provider set yet: every span would be a no-op
            return
        name = method.lstrip("/")
        service, _, rpc = name.partition("/")
        with _TRACER.start_as_current_span(
            name,
            context=_parent(_incoming.get()),
            kind=otel_trace.SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc},
            # The guard answers every failure with a status (record_failure); what escapes the
            # handler then is grpc's own AbortError, which says nothing more.
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            served = _served.set(span)
            try:
                yield
            finally:
                _served.reset(served)
    finally:
        _incoming.reset(token)


def record_failure(code: int, message: str) -> None:
    """Mark the current RPC's span as failed with this gRPC status (nothing without OpenTelemetry)."""
    span = _served.get()
    if span is None:
        return
    span.set_attribute("rpc.grpc.status_code", code)
    span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, message))


def current_trace_id() -> str | None:
    """The trace id (32 lowercase hex digits) of the work being done now, for logs: the current
    OpenTelemetry span's, else the one the RPC being served carried; None outside any trace."""
    if OTEL:
        span_context = otel_trace.get_current_span().get_span_context()
        if span_context.is_valid:
            return format(span_context.trace_id, "032x")
    carried_now = _incoming.get()
    return carried_now.trace_id if carried_now is not None else None


def _parent(context: trace.TraceContext | None) -> otel_context.Context:
    """An OpenTelemetry context holding only `context` as the remote parent: never the current one,
    so a span's parent is exactly what the call carried."""
    carrier = {} if context is None else {TRACEPARENT: context.traceparent, TRACESTATE: context.tracestate}
    return _PROPAGATOR.extract(carrier, context=otel_context.Context())
