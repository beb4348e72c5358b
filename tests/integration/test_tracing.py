"""Tracing: a job's W3C trace context flows from the SDK's create call through the server, which stores
it with the job, to the worker, whose handler span continues the trace (README "Tracing").

Spans are read from the OpenTelemetry SDK's in-memory exporter (support/otel.py); client, server and
worker run in this process, so every span of a flow is there. Each parent is asserted to be the span
the flow sent over the wire (remote), never one that leaked in through this process's contextvars.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from support import flows, otel, rpc

from jobwarden.client import Client, Job, JobContext, NewJob, Worker, current_trace_id
from jobwarden.v1 import job_pb2, job_service_pb2
from jobwarden_server import app

WAIT = 20.0
CREATE = "jobwarden.v1.JobService/CreateJob"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with otel.recording() as exporter:
        yield exporter


@pytest.fixture
async def client(srv: app.RunningServer) -> AsyncIterator[Client]:
    async with Client(srv.address) as c:
        yield c


def only(spans: InMemorySpanExporter, name: str, kind: trace.SpanKind) -> ReadableSpan:
    [span] = [s for s in otel.named(spans.get_finished_spans(), name) if s.kind is kind]
    return span


def assert_child(child: ReadableSpan, parent: ReadableSpan) -> None:
    """`child` continues `parent`'s trace, its parent received over the wire."""
    assert child.parent is not None, child.name
    assert child.parent.is_remote, child.name
    assert parent.context is not None and child.context is not None
    assert (child.parent.trace_id, child.parent.span_id) == (parent.context.trace_id, parent.context.span_id)
    assert child.context.trace_id == parent.context.trace_id


@contextlib.asynccontextmanager
async def worker_running(worker: Worker) -> AsyncIterator[None]:
    run = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        worker.stop()
        async with asyncio.timeout(WAIT):
            await run


async def finished(client: Client, job_id: str) -> Job:
    """The job once it ended (waits by watching it)."""
    async with asyncio.timeout(WAIT):
        async for item in client.watch_job(job_id):
            del item
    job = await client.get_job(job_id)
    assert job.is_terminal, job
    return job


async def test_the_handler_span_continues_the_trace_of_create_job(
    client: Client, spans: InMemorySpanExporter
) -> None:
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        job = await client.create_job("traced", {"n": 1})
    handled: asyncio.Queue[str | None] = asyncio.Queue()
    worker = Worker(client, concurrency=1)

    @worker.handler("traced")
    async def handle(ctx: JobContext) -> dict[str, Any]:
        with trace.get_tracer("test").start_as_current_span("inside the handler"):
            await handled.put(current_trace_id())
        return {}

    async with worker_running(worker):
        async with asyncio.timeout(WAIT):
            seen_trace_id = await handled.get()
        done = await finished(client, job.id)

    sent = only(spans, CREATE, trace.SpanKind.CLIENT)
    served = only(spans, CREATE, trace.SpanKind.SERVER)
    handler = only(spans, "process traced", trace.SpanKind.CONSUMER)
    [inner] = otel.named(spans.get_finished_spans(), "inside the handler")
    assert sent.parent is not None and sent.parent.span_id == caller.get_span_context().span_id
    assert_child(served, sent)
    assert_child(handler, sent)
    assert inner.parent is not None and handler.context is not None
    assert inner.parent.span_id == handler.context.span_id
    assert handler.attributes is not None and handler.attributes["jobwarden.job.id"] == job.id
    assert seen_trace_id == format(caller.get_span_context().trace_id, "032x")

    # The job keeps the client's CreateJob span as its trace context; GetJob answers it too.
    assert job.traceparent == otel.traceparent_of(sent)
    assert (await client.get_job(job.id)).traceparent == done.traceparent == job.traceparent


async def test_create_jobs_and_a_batch_store_the_context_of_their_call(
    client: Client, spans: InMemorySpanExporter
) -> None:
    created = await client.create_jobs([NewJob("a"), NewJob("b")])
    parent = await client.create_batch("batch", [NewJob("c"), NewJob("d")])
    children, _ = await client.list_jobs(parent_id=parent.id)

    many = only(spans, "jobwarden.v1.JobService/CreateJobs", trace.SpanKind.CLIENT)
    batch = only(spans, "jobwarden.v1.JobService/CreateBatch", trace.SpanKind.CLIENT)
    assert_child(only(spans, "jobwarden.v1.JobService/CreateJobs", trace.SpanKind.SERVER), many)
    assert_child(only(spans, "jobwarden.v1.JobService/CreateBatch", trace.SpanKind.SERVER), batch)
    assert [getattr(j, "traceparent", None) for j in created] == [otel.traceparent_of(many)] * 2
    assert len(children) == 2
    assert {j.traceparent for j in [parent, *children]} == {otel.traceparent_of(batch)}


async def test_the_context_sent_as_metadata_is_stored_checked_and_claimed(
    srv: app.RunningServer, spans: InMemorySpanExporter
) -> None:
    async with rpc.stubs(srv.address) as s:

        async def create(*metadata: tuple[str, str]) -> str:
            reply = await s.jobs.CreateJob(
                job_service_pb2.CreateJobRequest(job_type="raw"), metadata=metadata
            )
            return reply.job.id

        plain = await create()
        with_state = await create(("traceparent", TRACEPARENT), ("tracestate", "vendor=abc, other=x"))
        malformed = await create(("traceparent", f"00-{TRACE_ID.upper()}-00f067aa0ba902b7-01"))
        bad_state = await create(("traceparent", TRACEPARENT), ("tracestate", "Not A Member"))

        stored = {job_id: await flows.get(s, job_id) for job_id in (plain, with_state, malformed, bad_state)}
        assert [(j.traceparent, j.tracestate) for j in stored.values()] == [
            ("", ""),
            (TRACEPARENT, "vendor=abc,other=x"),
            ("", ""),
            (TRACEPARENT, ""),
        ]

        # A worker claims the job with its context; the job without one runs all the same.
        claims = {}
        for _ in range(4):
            claim = await flows.claim_one(s, "raw")
            claims[claim.job.id] = claim
        assert claims[with_state].job.traceparent == TRACEPARENT
        assert claims[plain].job.traceparent == ""
        done = await flows.complete(s, claims[plain])
        assert done.status == job_pb2.JOB_STATUS_COMPLETED

        refused = job_service_pb2.CreateJobRequest(job_type="")
        failure = await rpc.fails(s.jobs.CreateJob(refused, metadata=(("traceparent", TRACEPARENT),)))
        assert failure.code is grpc.StatusCode.INVALID_ARGUMENT

    # The server's span is a child of a valid context, and starts a trace of its own otherwise.
    served = [s for s in otel.named(spans.get_finished_spans(), CREATE) if s.kind is trace.SpanKind.SERVER]
    assert [s.parent.span_id if s.parent else None for s in served] == [
        None,
        0x00F067AA0BA902B7,
        None,
        0x00F067AA0BA902B7,
        0x00F067AA0BA902B7,
    ]
    assert served[1].context is not None and format(served[1].context.trace_id, "032x") == TRACE_ID
    # A refused call's span says so, with the status it was answered with.
    assert [s.status.status_code for s in served] == [StatusCode.UNSET] * 4 + [StatusCode.ERROR]
    assert served[4].attributes is not None
    assert served[4].attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]


_WITHOUT_OTEL = textwrap.dedent(
    """
    import asyncio, sys
    sys.modules["opentelemetry"] = None  # as if the otel extra were not installed: importing it fails

    import grpc
    from jobwarden.client import Client, Worker, _tracing as client_tracing
    from jobwarden.v1 import job_service_pb2, job_service_pb2_grpc
    from jobwarden_server import app, tracing as server_tracing
    from jobwarden_server.settings import Settings

    TRACEPARENT = sys.argv[2]

    async def main():
        assert not client_tracing.OTEL and not server_tracing.OTEL
        settings = Settings(listen="127.0.0.1:0", database=sys.argv[1])
        async with app.running(settings) as srv, Client(srv.address) as client:
            async with grpc.aio.insecure_channel(srv.address) as channel:
                made = await job_service_pb2_grpc.JobServiceStub(channel).CreateJob(
                    job_service_pb2.CreateJobRequest(job_type="t"), metadata=(("traceparent", TRACEPARENT),)
                )
            untraced = await client.create_job("t")
            seen = []
            worker = Worker(client, concurrency=1)

            @worker.handler("t")
            async def handle(ctx):
                seen.append((ctx.job.id, client_tracing.current_trace_id()))
                if len(seen) == 2:
                    worker.stop()
                return {}

            await asyncio.wait_for(worker.run(), 20)
            assert untraced.traceparent == "", untraced
            assert (await client.get_job(made.job.id)).traceparent == TRACEPARENT
            assert sorted(seen) == sorted([(made.job.id, TRACEPARENT[3:35]), (untraced.id, None)]), seen
            assert (await client.get_job(untraced.id)).status.value == "COMPLETED"
        assert not any(name.startswith("opentelemetry.") for name in sys.modules), "imported unguarded"
        print("ok")

    asyncio.run(main())
    """
)


def test_everything_works_without_opentelemetry(tmp_path: Path) -> None:
    """A process where OpenTelemetry cannot be imported: the server keeps the traceparent a call
    carried, jobs run, and a handler still knows its job's trace id (for logs)."""
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_OTEL, str(tmp_path / "jw.db"), TRACEPARENT],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
