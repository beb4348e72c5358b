"""GET /metrics of an in-process server: who may read it; RPC timings by method and final code; the
open watch and Work stream gauges; callback attempts by outcome. (That the job counters agree with the
jobs, on each database, is tests/acceptance/test_metrics_scrape.py, against the real command.)"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import grpc
import httpx
import pytest
from support import flows, rpc, scrape, waiting
from support.receiver import Receiver, always, first_then, policy_settings

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2
from jobwarden_server import app
from jobwarden_server.domain.auth import Role
from jobwarden_server.settings import callbacks_policy

HTTP = {"http_listen": "127.0.0.1:0"}


def _base(srv: app.RunningServer) -> str:
    assert srv.http is not None
    return srv.http.url.rstrip("/")


def _gauge(srv: app.RunningServer, name: str) -> float:
    return srv.metrics.registry.get_sample_value(name) or 0.0


async def test_in_token_mode_only_a_metrics_or_global_admin_token_reads_the_metrics(tmp_path: Path) -> None:
    tokens = {
        "scraper": ("ops", frozenset({Role.METRICS})),
        "root": ("ops", frozenset({Role.GLOBAL_ADMIN})),
        "owner-admin": ("acme", frozenset({Role.ADMIN})),
        "client": ("acme", frozenset({Role.CLIENT, Role.WORKER})),
    }
    async with rpc.server(tmp_path, principals_by_hash=rpc.principals(tokens), **HTTP) as srv:  # type: ignore[arg-type]
        base = _base(srv)
        async with httpx.AsyncClient(base_url=base, timeout=10) as anonymous:
            assert (await anonymous.get("/metrics")).status_code == 401
        for token in ("owner-admin", "client"):
            async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
                refused = await c.get("/metrics")
                assert refused.status_code == 403
                assert refused.json()["error"]["reason"] == "PERMISSION_DENIED"
        for token in ("scraper", "root"):
            samples = await scrape.metrics(base, token)
            assert ("jobwarden_watchers_active", frozenset()) in samples
        async with rpc.stubs(srv.address, token="scraper") as s:
            denied = await rpc.fails(flows.create(s))
            assert denied.code == grpc.StatusCode.PERMISSION_DENIED  # the scraper's token reads metrics only


async def test_rpcs_are_timed_by_method_and_final_code_and_streams_are_counted_while_open(
    tmp_path: Path,
) -> None:
    async with rpc.server(tmp_path, **HTTP) as srv, rpc.stubs(srv.address) as s:  # type: ignore[arg-type]
        held = await flows.create(s, hold=True)
        missing = await rpc.fails(s.jobs.GetJob(job_service_pb2.GetJobRequest(job_id="nope")))
        assert missing.code == grpc.StatusCode.NOT_FOUND
        invalid = await rpc.fails(s.jobs.CreateJob(job_service_pb2.CreateJobRequest(job_type="")))
        assert invalid.code == grpc.StatusCode.INVALID_ARGUMENT
        made_up = s.channel.unary_unary("/jobwarden.v1.JobService/MadeUp")
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await made_up(b"")
        assert unknown.value.code() == grpc.StatusCode.UNIMPLEMENTED  # not timed: no label per made-up name

        watch = flows.start_watch(s, held.id)
        session = s.workers.Work()
        start = worker_service_pb2.WorkStart(worker_id="w", job_types=["demo"])
        await session.write(worker_service_pb2.WorkRequest(start=start))
        await waiting.until(lambda: _gauge(srv, "jobwarden_watchers_active") == 1)
        await waiting.until(lambda: _gauge(srv, "jobwarden_work_sessions_active") == 1)
        await s.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=held.id))
        await watch  # the watch ends with the job
        await session.done_writing()
        assert await session.read() == grpc.aio.EOF
        await waiting.until(lambda: _gauge(srv, "jobwarden_watchers_active") == 0)
        await waiting.until(lambda: _gauge(srv, "jobwarden_work_sessions_active") == 0)

        samples = await scrape.metrics(_base(srv))
    assert scrape.by_labels(samples, "jobwarden_rpc_duration_seconds_count", "method", "code") == {
        ("jobwarden.v1.JobService/CreateJob", "OK"): 1,
        ("jobwarden.v1.JobService/CreateJob", "INVALID_ARGUMENT"): 1,
        ("jobwarden.v1.JobService/GetJob", "NOT_FOUND"): 1,
        ("jobwarden.v1.JobService/WatchJob", "OK"): 1,
        ("jobwarden.v1.JobService/CancelJob", "OK"): 1,
        ("jobwarden.v1.WorkerService/Work", "OK"): 1,
    }


async def _callback_settled(s: rpc.Stubs, job_id: str) -> None:
    """Until the job's callback is delivered or given up (a bounded poll of a server-side state)."""
    done = (job_pb2.CALLBACK_STATE_DELIVERED, job_pb2.CALLBACK_STATE_FAILED)
    async with asyncio.timeout(10):
        while (await flows.get(s, job_id)).callback_state not in done:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def test_callback_attempts_are_counted_by_outcome_as_the_jobs_record_them(tmp_path: Path) -> None:
    policy = callbacks_policy(policy_settings())
    with Receiver(first_then([500])) as flaky, Receiver(always(410)) as gone:
        async with rpc.server(tmp_path, callbacks=policy, **HTTP) as srv, rpc.stubs(srv.address) as s:  # type: ignore[arg-type]
            delivered = await flows.create(s, callback_url=flaky.url)
            await flows.complete(s, await flows.claim_one(s))
            refused = await flows.create(s, callback_url=gone.url)
            await flows.complete(s, await flows.claim_one(s))
            recorded: collections.Counter[str] = collections.Counter()
            for job in (delivered, refused):
                await _callback_settled(s, job.id)
                for event in await flows.events(s, job.id):
                    if event.HasField("callback_attempt"):
                        state = job_pb2.CallbackState.Name(event.callback_attempt.state)
                        recorded[state.removeprefix("CALLBACK_STATE_")] += 1
            samples = await scrape.metrics(_base(srv))
    assert recorded == {"DELIVERING": 1, "DELIVERED": 1, "FAILED": 1}
    assert scrape.by_labels(samples, "jobwarden_callback_deliveries_total", "outcome") == {
        ("retrying",): 1,
        ("delivered",): 1,
        ("failed",): 1,
    }
