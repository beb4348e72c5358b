"""Numbers beyond ±(2^53 - 1) in parameters and results, sent with the raw stubs (no SDK in the way):
INVALID_ARGUMENT naming the number's path, and nothing created or changed."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from support import flows, rpc

from jobwarden.v1 import job_pb2, job_service_pb2

MAX_SAFE = 9007199254740991
BEYOND = [2**53, -(2**53), 1e300]
"""The first integers no double tells apart from a neighbour, and a number far past them."""


def _placed(number: float) -> list[tuple[dict[str, Any], str]]:
    """The number at the top, in a list and deep inside an object, each with the path naming it."""
    return [
        ({"big": number}, "big"),
        ({"ids": [1, 2, 3, number]}, "ids[3]"),
        ({"width": 640, "nested": {"rows": [{"n": number}]}}, "nested.rows[0].n"),
    ]


CASES = [
    pytest.param(value, path, id=f"{number:g}-{path}") for number in BEYOND for value, path in _placed(number)
]


def _refused_as_unsafe(failure: rpc.RpcFailure, field: str) -> None:
    assert (failure.code, failure.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert failure.fields == [field]
    assert failure.metadata == {"field": field}
    assert "9007199254740991" in failure.message and "send such values as strings" in failure.message


async def _all_jobs(s: rpc.Stubs) -> list[job_pb2.Job]:
    reply = await s.jobs.ListJobs(job_service_pb2.ListJobsRequest(page_size=500), metadata=s.metadata)
    return list(reply.jobs)


@pytest.mark.parametrize(("value", "path"), CASES)
async def test_create_refuses_unsafe_numbers_and_creates_nothing(
    stubs: rpc.Stubs, value: dict[str, Any], path: str
) -> None:
    failure = await rpc.fails(flows.create(stubs, parameters=flows.struct(**value), request_id="create-1"))
    _refused_as_unsafe(failure, f"parameters.{path}")
    assert await _all_jobs(stubs) == []
    # The refused request_id was not spent either: the same id with safe content creates the job.
    job = await flows.create(stubs, parameters=flows.struct(width=640), request_id="create-1")
    assert [j.id for j in await _all_jobs(stubs)] == [job.id]


@pytest.mark.parametrize(("value", "path"), CASES)
async def test_complete_refuses_unsafe_numbers_and_leaves_the_job_running(
    stubs: rpc.Stubs, value: dict[str, Any], path: str
) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    before, history = await flows.get(stubs, job.id), await flows.events(stubs, job.id)
    failure = await rpc.fails(flows.complete(stubs, claim, **value))
    _refused_as_unsafe(failure, f"result.{path}")
    assert await flows.get(stubs, job.id) == before
    assert await flows.events(stubs, job.id) == history
    # The lease is still good: the worker can finish the job once it sends the number as a string.
    done = await flows.complete(stubs, claim, id=str(2**53))
    assert done.status == job_pb2.JOB_STATUS_COMPLETED
    assert done.result.fields["id"].string_value == "9007199254740992"


async def test_the_limit_itself_is_stored_and_returned_exactly(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs, parameters=flows.struct(ids=[MAX_SAFE, -MAX_SAFE]))
    claim = await flows.claim_one(stubs)
    failure = await rpc.fails(flows.complete(stubs, claim, total=MAX_SAFE + 1))
    _refused_as_unsafe(failure, "result.total")
    done = await flows.complete(stubs, claim, total=MAX_SAFE)
    stored = await flows.get(stubs, job.id)
    assert [v.number_value for v in stored.parameters.fields["ids"].list_value.values] == [
        MAX_SAFE,
        -MAX_SAFE,
    ]
    assert done.result.fields["total"].number_value == stored.result.fields["total"].number_value == MAX_SAFE
