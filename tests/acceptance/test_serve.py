"""The real `jobwarden serve` command: health, reflection, migration, clean shutdown."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support import proc


async def test_serve_answers_health_and_lists_services_by_reflection(tmp_path: Path) -> None:
    with proc.serving(tmp_path / "jw.db") as (server, address):
        async with grpc.aio.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", "jobwarden.v1.JobService", "jobwarden.v1.WorkerService"):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            names: set[str] = set()
            async for answer in stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            ):
                names.update(s.name for s in answer.list_services_response.service)
            assert {"jobwarden.v1.JobService", "jobwarden.v1.WorkerService", "grpc.health.v1.Health"} <= names
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
    assert (tmp_path / "jw.db").exists()


def test_migrate_creates_the_schema_and_is_repeatable(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    for _ in range(2):
        result = proc.run(["migrate", "--database", str(db)])
        assert result.returncode == 0, result.stderr
        assert "up to date" in result.stdout


def test_refuses_public_address_without_tokens(tmp_path: Path) -> None:
    result = proc.run(["serve", "--listen", "0.0.0.0:0", "--database", str(tmp_path / "x.db")])
    assert result.returncode == 2
    assert "without tokens" in result.stderr
    assert "Traceback" not in result.stderr


async def test_sigterm_ends_watches_with_a_resumable_status_and_exits_0(tmp_path: Path) -> None:
    from support import flows, rpc

    from jobwarden.v1 import job_service_pb2

    with proc.serving(tmp_path / "jw.db") as (server, address):
        async with rpc.stubs(address) as s:
            job = await flows.create(s)
            call = s.jobs.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id))
            assert (await call.read()).HasField("job")
            assert (await call.read()).event.sequence == 1
            server.send_signal(signal.SIGTERM)
            try:
                await call.read()
                raise AssertionError("the watch went on after SIGTERM")
            except grpc.aio.AioRpcError as err:
                failure = rpc.failure(err)
            assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN")
        assert server.wait(timeout=20) == 0
