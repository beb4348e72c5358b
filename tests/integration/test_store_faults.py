"""A busy database gives UNAVAILABLE (retryable), changes nothing, and the server recovers by itself."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import grpc
from support import flows, rpc

from jobwarden.v1 import job_service_pb2


async def test_locked_sqlite_gives_unavailable_then_service_resumes(tmp_path: Path) -> None:
    async with rpc.server(tmp_path, sqlite_busy_timeout_ms=50) as srv, rpc.stubs(srv.address) as s:
        await flows.create(s)
        # Another process (here: another connection) holds the write lock.
        intruder = sqlite3.connect(rpc.database_url(tmp_path), isolation_level=None)
        intruder.execute("BEGIN EXCLUSIVE")
        try:
            request = job_service_pb2.CreateJobRequest(job_type="demo", request_id="while-locked")
            failure = await rpc.fails(s.jobs.CreateJob(request))
            assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "STORE_UNAVAILABLE")
        finally:
            intruder.execute("ROLLBACK")
            intruder.close()
        # The retry with the same request id now succeeds, once: nothing was half-written.
        created = (await s.jobs.CreateJob(request)).job
        assert (await s.jobs.CreateJob(request)).job.id == created.id
        listed = await s.jobs.ListJobs(job_service_pb2.ListJobsRequest())
        assert len(listed.jobs) == 2
        assert len(await flows.events(s, created.id)) == 1
