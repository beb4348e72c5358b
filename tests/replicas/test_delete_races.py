"""DeleteJob's request_id under a race between two replicas on one PostgreSQL database.

Within one replica, deletes share its single write lane and see each other's records in order; across
replicas they are separate transactions. Two deletes of two different jobs under one request_id, one
through each replica at the same moment: one deletes its job, the other is refused as a reuse of the
request_id (REQUEST_ID_MISMATCH) and its job is still there. Never INTERNAL.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from support import flows, rpc

from jobwarden.v1 import job_pb2, job_service_pb2
from jobwarden_server import app

pytestmark = pytest.mark.postgres

ROUNDS = 15


async def _finished(s: rpc.Stubs) -> job_pb2.Job:
    job = await flows.create(s)
    await flows.complete(s, await flows.claim_one(s))
    return job


async def _delete(s: rpc.Stubs, job_id: str, request_id: str) -> tuple[str, str]:
    """The delete's answer: (code, ErrorInfo reason)."""
    try:
        await s.jobs.DeleteJob(job_service_pb2.DeleteJobRequest(job_id=job_id, request_id=request_id))
    except grpc.aio.AioRpcError as err:
        failure = rpc.failure(err)
        return failure.code.name, failure.reason
    return "OK", ""


async def test_one_request_id_on_two_jobs_through_two_replicas_deletes_one(
    replicas: tuple[app.RunningServer, app.RunningServer],
) -> None:
    a, b = replicas
    async with rpc.stubs(a.address) as via_a, rpc.stubs(b.address) as via_b:
        for round_ in range(ROUNDS):
            first, second = await _finished(via_a), await _finished(via_a)
            key = f"delete-{round_}"
            answers = await asyncio.gather(_delete(via_a, first.id, key), _delete(via_b, second.id, key))
            assert sorted(answers) == [("ALREADY_EXISTS", "REQUEST_ID_MISMATCH"), ("OK", "")], answers
            kept = first if answers[1] == ("OK", "") else second
            assert (await flows.get(via_a, kept.id)).status == job_pb2.JOB_STATUS_COMPLETED
