"""The OpenTelemetry SDK with an in-memory exporter, for tests that read the spans jobwarden made.

OpenTelemetry lets a process set its global tracer provider once, so the first test that asks installs
one for the whole test process; spans are kept only while a test holds `recording()`, so the rest of
the suite neither fills the exporter nor sees anything but a provider that drops its spans.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class _Switched(SpanProcessor):
    """Forwards ended spans to the in-memory exporter while a test is recording."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self.on = False
        self._export = SimpleSpanProcessor(exporter)

    def on_start(self, span: Span, parent_context: otel_context.Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Export `span` if a test is recording."""
        if self.on:
            self._export.on_end(span)


_exporter = InMemorySpanExporter()
_switch = _Switched(_exporter)
_installed = False


@contextlib.contextmanager
def recording() -> Iterator[InMemorySpanExporter]:
    """Keep every span that ends within the block in the returned exporter (empty at the start)."""
    global _installed
    if not _installed:
        provider = TracerProvider()
        provider.add_span_processor(_switch)
        trace.set_tracer_provider(provider)
        _installed = True
    _exporter.clear()
    _switch.on = True
    try:
        yield _exporter
    finally:
        _switch.on = False


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    """The spans called `name`, in the order they ended."""
    return [s for s in spans if s.name == name]


def traceparent_of(span: ReadableSpan) -> str:
    """The W3C traceparent naming `span` as parent, with its flags."""
    context = span.get_span_context()
    assert context is not None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
