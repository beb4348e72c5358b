"""What every scenario needs: the server, a few channels with raw stubs, and how much to run."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2_grpc

from bench.server import Server
from jobwarden.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc, worker_service_pb2_grpc

CHANNELS = 4
CONCURRENCY = 16
CALL_TIMEOUT_S = 30.0  # a stuck call fails the run instead of hanging it


@dataclass(frozen=True, slots=True)
class Sizes:
    """Operations per scenario (measured; warm-up is on top)."""

    warmup: int
    health: int
    raw_commits: int
    create: int
    cycle_jobs: int
    progress: int
    watch: int
    stream_events: int
    stream_repeats: int
    pipeline_jobs: int
    pipeline_workers: int
    pipeline_concurrency: int

    def as_dict(self) -> dict[str, Any]:
        """For the JSON report."""
        return asdict(self)


# Picked so that --quick ends within 30 s and the default within 3 minutes on a 2-core machine (SQLite,
# and PostgreSQL on the same machine), while the default still runs each scenario for a few seconds
# (server CPU is read in 10 ms ticks).
QUICK = Sizes(
    warmup=30,
    health=400,
    raw_commits=400,
    create=200,
    cycle_jobs=100,
    progress=150,
    watch=30,
    stream_events=200,
    stream_repeats=12,
    pipeline_jobs=160,
    pipeline_workers=4,
    pipeline_concurrency=8,
)
FULL = Sizes(
    warmup=100,
    health=3000,
    raw_commits=3000,
    create=1500,
    cycle_jobs=1000,
    progress=1500,
    watch=300,
    stream_events=1000,
    stream_repeats=10,
    pipeline_jobs=1500,
    pipeline_workers=4,
    pipeline_concurrency=8,
)


@dataclass(frozen=True, slots=True)
class Rig:
    """Raw generated stubs over a few channels to one server."""

    server: Server
    workdir: Path
    sizes: Sizes
    channels: tuple[grpc.aio.Channel, ...]
    # The Async stub types exist only in the generated .pyi: the same classes, typed for grpc.aio.
    jobs: tuple[job_service_pb2_grpc.JobServiceAsyncStub, ...]
    workers: tuple[worker_service_pb2_grpc.WorkerServiceAsyncStub, ...]
    health: tuple[health_pb2_grpc.HealthStub, ...]

    def job_stub(self, i: int) -> job_service_pb2_grpc.JobServiceAsyncStub:
        """Spread calls over the channels by index."""
        return self.jobs[i % len(self.jobs)]

    def worker_stub(self, i: int) -> worker_service_pb2_grpc.WorkerServiceAsyncStub:
        """Spread calls over the channels by index."""
        return self.workers[i % len(self.workers)]

    async def create(self, job_type: str, i: int = 0) -> job_pb2.Job:
        """One CreateJob with a fresh request_id, as the SDK sends (it costs the idempotency index)."""
        reply = await self.job_stub(i).CreateJob(
            job_service_pb2.CreateJobRequest(job_type=job_type, request_id=str(uuid.uuid4())),
            timeout=CALL_TIMEOUT_S,
        )
        return reply.job


@contextlib.asynccontextmanager
async def rig(server: Server, workdir: Path, sizes: Sizes) -> AsyncIterator[Rig]:
    """Open the channels (several, so HTTP/2 connections are not one serial pipe) and wait until ready."""
    async with contextlib.AsyncExitStack() as stack:
        channels = []
        for _ in range(CHANNELS):
            # A local subchannel pool per channel: otherwise gRPC shares one connection among channels
            # with equal arguments, and "a few channels" would be one TCP connection.
            channel = grpc.aio.insecure_channel(
                server.address, options=[("grpc.use_local_subchannel_pool", 1)]
            )
            await stack.enter_async_context(channel)
            await channel.channel_ready()
            channels.append(channel)
        yield Rig(
            server=server,
            workdir=workdir,
            sizes=sizes,
            channels=tuple(channels),
            jobs=tuple(job_service_pb2_grpc.JobServiceStub(c) for c in channels),
            workers=tuple(worker_service_pb2_grpc.WorkerServiceStub(c) for c in channels),
            health=tuple(health_pb2_grpc.HealthStub(c) for c in channels),
        )
