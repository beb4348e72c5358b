"""The RPC observer (api/observe.py) on a real grpc.aio server over loopback, around handlers of each
shape grpc allows (a coroutine, an async generator, one that aborts): each call is timed under its
method and final code, and what a handler logs carries the job its request names."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest

from jobwarden.v1 import job_pb2, job_service_pb2
from jobwarden_server.api.observe import RpcObserver
from jobwarden_server.observability import logs
from jobwarden_server.observability.metrics import Metrics

logger = logging.getLogger("tests.observe")
Request = job_service_pb2.GetJobRequest


async def _look(request: Request, context: grpc.aio.ServicerContext[Any, Any]) -> job_pb2.Job:
    logger.warning("looking")
    if request.job_id == "missing":
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such job")
    return job_pb2.Job(id=request.job_id)


async def _follow(
    request: Request, context: grpc.aio.ServicerContext[Any, Any]
) -> AsyncIterator[job_pb2.Job]:
    for n in range(2):
        logger.warning("following %d", n)
        yield job_pb2.Job(id=request.job_id)


@pytest.fixture
def written() -> Iterator[io.StringIO]:
    """What the test logger writes, as the server's JSON format writes it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.JsonFormatter())
    logger.addHandler(handler)
    try:
        yield out
    finally:
        logger.removeHandler(handler)


async def test_calls_are_timed_by_code_and_their_records_name_the_requests_job(written: io.StringIO) -> None:
    metrics = Metrics()
    handlers = {
        "Look": grpc.unary_unary_rpc_method_handler(
            _look, request_deserializer=Request.FromString, response_serializer=job_pb2.Job.SerializeToString
        ),
        "Follow": grpc.unary_stream_rpc_method_handler(
            _follow,
            request_deserializer=Request.FromString,
            response_serializer=job_pb2.Job.SerializeToString,
        ),
    }
    server = grpc.aio.server(interceptors=[RpcObserver(metrics)])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("tests.Jobs", handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            look = channel.unary_unary(
                "/tests.Jobs/Look",
                request_serializer=Request.SerializeToString,
                response_deserializer=job_pb2.Job.FromString,
            )
            follow = channel.unary_stream(
                "/tests.Jobs/Follow",
                request_serializer=Request.SerializeToString,
                response_deserializer=job_pb2.Job.FromString,
            )
            assert (await look(Request(job_id="j-1"))).id == "j-1"
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await look(Request(job_id="missing"))
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            assert [job.id async for job in follow(Request(job_id="j-2"))] == ["j-2", "j-2"]
    finally:
        await server.stop(None)

    records = [json.loads(line) for line in written.getvalue().splitlines()]
    assert [(r["message"], r.get("job_id")) for r in records] == [
        ("looking", "j-1"),
        ("looking", "missing"),
        ("following 0", "j-2"),
        ("following 1", "j-2"),
    ]
    timed = {
        (labels["method"], labels["code"]): sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "jobwarden_rpc_duration_seconds_count"
        for labels in [sample.labels]
    }
    assert timed == {
        ("tests.Jobs/Look", "OK"): 1,
        ("tests.Jobs/Look", "NOT_FOUND"): 1,
        ("tests.Jobs/Follow", "OK"): 1,
    }
    assert logs.JOB_ID.get() == ""  # nothing of the calls' leaked into the test's own context
