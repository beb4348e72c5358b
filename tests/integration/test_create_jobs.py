"""CreateJobs over raw stubs: an outcome per item, in order, idempotent per request_id, one transaction."""

from __future__ import annotations

import asyncio
import random

import grpc
from google.protobuf import timestamp_pb2
from support import flows, rpc, waiting

from jobwarden.v1 import job_pb2, job_service_pb2
from jobwarden_server import app

J = job_service_pb2
IA = grpc.StatusCode.INVALID_ARGUMENT


def _item(job_type: str = "demo", **fields: object) -> J.CreateJobRequest:
    return J.CreateJobRequest(job_type=job_type, **fields)  # type: ignore[arg-type]


async def _create(stubs: rpc.Stubs, *items: J.CreateJobRequest) -> list[J.CreateJobsResult]:
    reply = await stubs.jobs.CreateJobs(J.CreateJobsRequest(requests=items))
    assert len(reply.results) == len(items)
    return list(reply.results)


def _refusal(result: J.CreateJobsResult) -> rpc.RpcFailure:
    assert result.WhichOneof("result") == "error", result
    return rpc.status_failure(result.error)


async def _all_jobs(stubs: rpc.Stubs) -> list[job_pb2.Job]:
    return list((await stubs.jobs.ListJobs(J.ListJobsRequest(page_size=500))).jobs)


async def test_each_item_gets_its_own_outcome_and_invalid_ones_stop_nothing(stubs: rpc.Stubs) -> None:
    results = await _create(
        stubs,
        _item(request_id="ok-0", labels={"n": "0"}),
        _item(""),
        _item(hold=True, labels={"n": "2"}),
        _item(deadline=timestamp_pb2.Timestamp(seconds=1_000)),
        _item(labels={"k": "a\x00b"}),
        _item(parameters=flows.struct(big=2.0**60)),
        _item("other", priority=9, labels={"n": "6"}),
    )

    kinds = [r.WhichOneof("result") for r in results]
    assert kinds == ["job", "error", "job", "error", "error", "error", "job"]
    refused = {i: _refusal(results[i]) for i in (1, 3, 4, 5)}
    assert {i: (f.code, f.reason) for i, f in refused.items()} == dict.fromkeys(
        (1, 3, 4, 5), (IA, "INVALID_ARGUMENT")
    )
    assert {i: f.fields for i, f in refused.items()} == {
        1: ["requests[1].job_type"],
        3: ["requests[3].deadline"],
        4: ["requests[4].labels[k]"],
        5: ["requests[5].parameters.big"],
    }
    assert refused[1].message == "requests[1].job_type: is required"
    assert refused[3].metadata == {"field": "requests[3].deadline"}

    created = [results[i].job for i in (0, 2, 6)]
    assert [j.labels["n"] for j in created] == ["0", "2", "6"]
    assert [j.status for j in created] == [
        job_pb2.JOB_STATUS_QUEUED,
        job_pb2.JOB_STATUS_CREATED,
        job_pb2.JOB_STATUS_QUEUED,
    ]
    assert (created[2].job_type, created[2].priority) == ("other", 9)
    assert sorted(j.id for j in await _all_jobs(stubs)) == sorted(j.id for j in created)
    for job in created:
        assert await flows.get(stubs, job.id) == job
        assert flows.kinds(await flows.events(stubs, job.id)) == ["created"]


async def test_a_call_of_only_invalid_items_answers_each_and_creates_nothing(stubs: rpc.Stubs) -> None:
    results = await _create(stubs, _item("a b"), _item(max_attempts=-1))
    assert [_refusal(r).fields for r in results] == [["requests[0].job_type"], ["requests[1].max_attempts"]]
    assert await _all_jobs(stubs) == []


async def test_an_item_asking_for_a_dry_run_is_refused_not_created(stubs: rpc.Stubs) -> None:
    results = await _create(stubs, _item("kept"), _item("checked", validate_only=True))
    assert results[0].WhichOneof("result") == "job"
    refused = _refusal(results[1])
    assert (refused.code, refused.fields) == (IA, ["requests[1].validate_only"])
    assert [job.job_type for job in await _all_jobs(stubs)] == ["kept"]


async def test_a_retried_call_answers_with_the_first_jobs_and_changes_nothing(stubs: rpc.Stubs) -> None:
    items = [_item(request_id=f"r-{i}", parameters=flows.struct(n=i)) for i in range(5)]
    first = await _create(stubs, *items)
    again = await _create(stubs, *items)

    assert [r.job for r in again] == [r.job for r in first]
    assert len(await _all_jobs(stubs)) == 5
    for result in first:
        assert len(await flows.events(stubs, result.job.id)) == 1


async def test_a_reused_request_id_with_other_content_is_refused_for_that_item_only(stubs: rpc.Stubs) -> None:
    earlier = await flows.create(stubs, request_id="taken")
    mismatch, fresh = await _create(stubs, _item(request_id="taken", priority=1), _item(request_id="fresh"))

    refusal = _refusal(mismatch)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_MISMATCH")
    assert refusal.metadata == {"request_id": "taken", "job_id": earlier.id}
    assert fresh.WhichOneof("result") == "job"
    assert len(await _all_jobs(stubs)) == 2


async def test_create_job_and_create_jobs_are_replays_of_each_other(stubs: rpc.Stubs) -> None:
    single = await flows.create(stubs, request_id="one", priority=3)
    [batched] = await _create(stubs, _item(request_id="one", priority=3))
    assert batched.job == single

    [first] = await _create(stubs, _item(request_id="two", labels={"a": "b"}))
    again = await stubs.jobs.CreateJob(_item(request_id="two", labels={"a": "b"}))
    assert again.job == first.job
    assert len(await _all_jobs(stubs)) == 2


async def test_items_sharing_a_request_id_are_answered_like_retries_of_the_first(stubs: rpc.Stubs) -> None:
    first, same, different = await _create(
        stubs, _item(request_id="dup"), _item(request_id="dup"), _item(request_id="dup", hold=True)
    )
    assert same.job == first.job
    refusal = _refusal(different)
    assert (refusal.code, refusal.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_MISMATCH")
    assert refusal.metadata["job_id"] == first.job.id
    assert [j.id for j in await _all_jobs(stubs)] == [first.job.id]
    assert len(await flows.events(stubs, first.job.id)) == 1


async def test_a_thousand_items_are_answered_in_order(stubs: rpc.Stubs) -> None:
    results = await _create(
        stubs, *(_item(request_id=f"n-{i:04d}", labels={"i": str(i)}) for i in range(1000))
    )
    assert [r.job.labels["i"] for r in results] == [str(i) for i in range(1000)]
    assert len({r.job.id for r in results}) == 1000
    listed = await stubs.jobs.ListJobs(J.ListJobsRequest(page_size=1))
    assert listed.next_page_token  # more than one page: they are all there
    total, token = 0, ""
    while True:
        page = await stubs.jobs.ListJobs(J.ListJobsRequest(page_size=500, page_token=token))
        total += len(page.jobs)
        token = page.next_page_token
        if not token:
            break
    assert total == 1000


async def test_no_items_or_more_than_a_thousand_fail_the_whole_call(stubs: rpc.Stubs) -> None:
    empty = await rpc.fails(stubs.jobs.CreateJobs(J.CreateJobsRequest()))
    assert (empty.code, empty.reason, empty.fields) == (IA, "INVALID_ARGUMENT", ["requests"])

    too_many = await rpc.fails(stubs.jobs.CreateJobs(J.CreateJobsRequest(requests=[_item()] * 1001)))
    assert (too_many.code, too_many.reason, too_many.fields) == (IA, "TOO_LARGE", ["requests"])
    assert await _all_jobs(stubs) == []


async def test_a_call_over_the_request_size_limit_fails_whole(stubs: rpc.Stubs) -> None:
    # Each item is well under the 1 MiB parameters limit; together they pass the 4 MiB request limit.
    items = [_item(parameters=flows.struct(blob="x" * (600 << 10))) for _ in range(8)]
    failure = await rpc.fails(stubs.jobs.CreateJobs(J.CreateJobsRequest(requests=items)))
    assert (failure.code, failure.reason, failure.fields) == (IA, "TOO_LARGE", ["request"])
    assert await _all_jobs(stubs) == []


async def test_created_jobs_reach_waiting_claimers_and_watchers(
    srv: app.RunningServer, stubs: rpc.Stubs
) -> None:
    polling = asyncio.create_task(flows.claim(stubs, ("batch",), max_jobs=10, wait_s=30))
    await waiting.until(lambda: srv.bus.claimers_waiting > 0)  # until the long poll waits inside the server

    queued, held = await _create(stubs, _item("batch"), _item("batch", hold=True))

    claims = await polling
    assert [c.job.id for c in claims] == [queued.job.id]
    watcher = flows.start_watch(stubs, queued.job.id)
    await flows.complete(stubs, claims[0])
    snapshot, seen = await watcher
    assert snapshot.id == queued.job.id
    assert flows.kinds(seen) == ["created", "QUEUED->RUNNING", "RUNNING->COMPLETED"]
    assert (await flows.get(stubs, held.job.id)).status == job_pb2.JOB_STATUS_CREATED


async def test_concurrent_calls_with_overlapping_request_ids_create_one_job_per_request_id(
    stubs: rpc.Stubs,
) -> None:
    shared = [f"shared-{i:03d}" for i in range(100)]

    async def call(n: int) -> list[J.CreateJobsResult]:
        ids = shared + [f"own-{n}-{i}" for i in range(10)]
        random.Random(n).shuffle(ids)
        # The label repeats the request_id: jobs do not show their request_id.
        return await _create(stubs, *(_item(request_id=r, labels={"r": r}) for r in ids))

    answers = await asyncio.gather(*(call(n) for n in range(8)))

    by_request_id: dict[str, set[str]] = {}
    for results in answers:
        for result in results:
            by_request_id.setdefault(result.job.labels["r"], set()).add(result.job.id)
    assert len(by_request_id) == 100 + 8 * 10
    assert all(len(ids) == 1 for ids in by_request_id.values())
    jobs = await _all_jobs(stubs)
    assert len(jobs) == 180
    assert {j.labels["r"]: {j.id} for j in jobs} == by_request_id
