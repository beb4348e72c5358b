"""Client.create_jobs against a real in-process server: a Job or a typed error per item, in order."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest

from jobwarden import errors
from jobwarden.client import Client, Job, JobStatus, NewJob, RetryPolicy
from jobwarden_server import app


@pytest.fixture
async def client(srv: app.RunningServer) -> AsyncIterator[Client]:
    async with Client(srv.address) as c:
        yield c


async def test_each_job_gets_its_job_or_its_typed_error_in_order(client: Client) -> None:
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    outcomes = await client.create_jobs(
        [
            NewJob("render", {"frames": 3}, priority=5, labels={"n": "0"}),
            NewJob("has spaces"),
            NewJob(
                "render",
                hold=True,
                deadline=soon,
                retry_policy=RetryPolicy(initial_backoff=2, max_backoff=8, multiplier=2),
                labels={"n": "2"},
            ),
            NewJob("render", max_attempts=-1),
        ]
    )

    first, refused, held, negative = outcomes
    assert isinstance(first, Job) and isinstance(held, Job)
    assert (first.job_type, first.parameters, first.priority, first.status) == (
        "render",
        {"frames": 3},
        5,
        JobStatus.QUEUED,
    )
    assert (held.status, held.labels, held.deadline) == (JobStatus.CREATED, {"n": "2"}, soon)
    assert held.retry_policy == RetryPolicy(initial_backoff=2, max_backoff=8, multiplier=2)
    assert isinstance(refused, errors.InvalidArgument)
    assert [v.field for v in refused.field_violations] == ["requests[1].job_type"]
    assert isinstance(negative, errors.InvalidArgument)
    assert [v.field for v in negative.field_violations] == ["requests[3].max_attempts"]
    assert await client.get_job(first.id) == first
    jobs, _ = await client.list_jobs()
    assert sorted(j.id for j in jobs) == sorted([first.id, held.id])


async def test_every_job_gets_a_request_id_of_its_own_unless_it_has_one(
    srv: app.RunningServer, client: Client
) -> None:
    same = NewJob("demo", {"n": 1})
    outcomes = await client.create_jobs([same, same, NewJob("demo", {"n": 1}, request_id="mine")])
    stored = [await srv.store.job_get(None, o.id) for o in outcomes if isinstance(o, Job)]
    assert len(stored) == 3
    generated = [j.request_id for j in stored[:2]]
    assert all(generated) and generated[0] != generated[1]  # two jobs, each retry-safe on its own
    assert stored[2].request_id == "mine"

    [again] = await client.create_jobs([NewJob("demo", {"n": 1}, request_id="mine")])
    assert again == outcomes[2]


async def test_a_reused_request_id_with_other_content_is_that_jobs_request_id_mismatch(
    client: Client,
) -> None:
    earlier = await client.create_job("demo", request_id="taken")
    mismatch, fresh = await client.create_jobs(
        [NewJob("demo", priority=3, request_id="taken"), NewJob("demo", request_id="fresh")]
    )
    assert isinstance(mismatch, errors.RequestIdMismatch)
    assert mismatch.metadata["job_id"] == earlier.id
    assert isinstance(fresh, Job)


async def test_refusals_of_the_whole_call_are_raised_and_create_nothing(client: Client) -> None:
    with pytest.raises(errors.InvalidArgument) as empty:
        await client.create_jobs([])
    assert [v.field for v in empty.value.field_violations] == ["requests"]
    with pytest.raises(errors.TooLarge):
        await client.create_jobs([NewJob("demo")] * 1001)
    with pytest.raises(ValueError, match="parameters"):
        await client.create_jobs([NewJob("demo"), NewJob("demo", {"id": 2**60})])
    assert (await client.list_jobs())[0] == []
