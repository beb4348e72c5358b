"""Job messages: what a worker attaches to its running job, through its Work session (the SDK's
ctx.log) or the unary AddMessages. They are LOG events of the job: in order, live to watchers, listed
and paged with ListJobEvents(kinds=[LOG]), counted on the job, fenced by the lease, bounded, and
idempotent with request_id. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, struct_pb2
from support import flows, rpc

from jobwarden.client import (
    Client,
    EventKind,
    JobContext,
    JobEvent,
    JobMessage,
    JobStatus,
    MessageLevel,
    Worker,
)
from jobwarden.v1 import job_pb2, job_service_pb2
from jobwarden.v1 import worker_service_pb2 as pb
from jobwarden_server import app
from jobwarden_server.domain.auth import Role

WAIT = 20.0
LOG = job_pb2.JobEventKind.JOB_EVENT_KIND_LOG


@pytest.fixture
async def client(srv: app.RunningServer) -> AsyncIterator[Client]:
    async with Client(srv.address) as c:
        yield c


def value(data: Any) -> struct_pb2.Value:
    out = struct_pb2.Value()
    if isinstance(data, dict):
        out.struct_value.update(data)
    elif isinstance(data, list):
        out.list_value.extend(data)
    else:
        raise TypeError(data)
    return out


def add(
    claim: pb.JobClaim, *texts: str, request_id: str = "", lease: str | None = None
) -> pb.AddMessagesRequest:
    return pb.AddMessagesRequest(
        job_id=claim.job.id,
        lease_token=claim.lease_token if lease is None else lease,
        messages=[job_pb2.JobLog(message=t) for t in texts],
        request_id=request_id,
    )


async def logs(s: rpc.Stubs, job_id: str) -> list[job_pb2.JobEvent]:
    reply = await s.jobs.ListJobEvents(
        job_service_pb2.ListJobEventsRequest(job_id=job_id, kinds=[LOG], page_size=1000), metadata=s.metadata
    )
    return list(reply.events)


# --- a real SDK worker, through its Work session ---------------------------------------------------------


@pytest.mark.parametrize("session", [True, False], ids=["session", "unary"])
async def test_messages_from_a_real_worker_are_ordered_live_paged_and_counted(
    client: Client, session: bool
) -> None:
    """Through the worker's Work session (steps), and through the unary AddMessages (session=False)."""
    job = await client.create_job("chatty")
    seen: list[JobEvent] = []
    watched_all = asyncio.Event()

    async def watch() -> None:
        async for item in client.watch_job(job.id):
            if isinstance(item, JobEvent) and item.kind is EventKind.LOG:
                seen.append(item)
                if len(seen) == 5:
                    watched_all.set()

    watcher = asyncio.create_task(watch())
    worker = Worker(client, worker_id="w-chatty", concurrency=1, session=session, poll_wait=5)
    answers: list[JobEvent] = []

    @worker.handler("chatty")
    async def chatty(ctx: JobContext) -> dict[str, Any]:
        answers.append(await ctx.log("starting"))
        answers.append(await ctx.log("slow provider", level=MessageLevel.WARNING, data={"retry": 1}))
        answers.extend(
            await ctx.add_messages(
                ["step 1 done", JobMessage(level=MessageLevel.OUTPUT, data=[1, 2.5, "x"]), "step 2 done"]
            )
        )
        # Still RUNNING: the watcher must get the messages now, not when the job ends.
        await asyncio.wait_for(watched_all.wait(), WAIT)
        return {"ok": True}

    run = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(WAIT):
            await watcher
    finally:
        worker.stop()
        await asyncio.wait_for(run, WAIT)
        # The polling worker's cancelled long-poll must end before the server stops (see
        # test_sdk_worker.claims_settled for the server bug this works around).
        polls = [t for t in asyncio.all_tasks() if t.get_name().endswith("/ClaimJobs]") and not t.done()]
        if polls:
            await asyncio.wait(polls, timeout=WAIT)

    expected = [
        (MessageLevel.INFO, "starting", None),
        (MessageLevel.WARNING, "slow provider", {"retry": 1}),
        (MessageLevel.INFO, "step 1 done", None),
        (MessageLevel.OUTPUT, "", [1, 2.5, "x"]),
        (MessageLevel.INFO, "step 2 done", None),
    ]
    assert [(e.level, e.message, e.data) for e in seen] == expected
    assert [e.actor for e in seen] == ["worker:w-chatty"] * 5
    # What the worker was answered is what was recorded and streamed.
    assert answers == seen
    sequences = [e.sequence for e in seen]
    assert sequences == list(range(sequences[0], sequences[0] + 5))

    pages: list[list[JobEvent]] = []
    token = ""
    while True:
        page, token = await client.list_job_messages(job.id, page_size=2, page_token=token)
        pages.append(page)
        if not token:
            break
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [e for p in pages for e in p] == seen
    assert [e async for e in client.iter_job_messages(job.id)] == seen

    done = await client.get_job(job.id)
    assert (done.status, done.message_count) == (JobStatus.COMPLETED, 5)
    history = [e.kind for e in [e async for e in client.iter_job_events(job.id)]]
    assert history == [EventKind.CREATED, EventKind.TRANSITION, *[EventKind.LOG] * 5, EventKind.TRANSITION]


# --- the unary call and the step --------------------------------------------------------------------------


async def test_a_stale_lease_is_lease_lost_and_writes_nothing(stubs: rpc.Stubs) -> None:
    retry_now = job_pb2.RetryPolicy(
        initial_backoff=duration_pb2.Duration(), max_backoff=duration_pb2.Duration()
    )
    job = await flows.create(stubs, max_attempts=2, retry_policy=retry_now)
    first = await flows.claim_one(stubs)
    await stubs.workers.AddMessages(add(first, "attempt 1"))
    await flows.fail(stubs, first, "flaky", retryable=True)
    second = await flows.claim_one(stubs)
    assert second.job.id == job.id and second.lease_token != first.lease_token
    before = await flows.events(stubs, job.id)

    failure = await rpc.fails(stubs.workers.AddMessages(add(first, "from the old attempt")))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")
    await flows.complete(stubs, second)
    ended = await flows.events(stubs, job.id)
    failure = await rpc.fails(stubs.workers.AddMessages(add(second, "after the end")))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")

    assert await flows.events(stubs, job.id) == ended
    assert ended[: len(before)] == before and flows.kinds(ended[len(before) :]) == ["RUNNING->COMPLETED"]
    assert [e.log.message for e in await logs(stubs, job.id)] == ["attempt 1"]
    assert (await flows.get(stubs, job.id)).message_count == 1


async def test_a_session_step_adds_messages_and_a_stale_one_is_acked_lease_lost(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs)
    call: Any = stubs.workers.Work(metadata=stubs.metadata)
    try:
        await call.write(
            pb.WorkRequest(start=pb.WorkStart(worker_id="w-step", job_types=["demo"]), credits=1)
        )
        response = await call.read()
        [claim] = response.claims
        steps = [
            pb.WorkStep(step_id="ok", messages=add(claim, "one", "two")),
            pb.WorkStep(step_id="stale", messages=add(claim, "never", lease="stale-token")),
        ]
        await call.write(pb.WorkRequest(steps=steps))
        response = await call.read()
        ok, stale = response.acks
        assert (ok.step_id, ok.status.code) == ("ok", 0)
        assert [e.log.message for e in ok.messages.events] == ["one", "two"]
        assert ok.messages.message_count == 2
        assert (stale.step_id, rpc.status_failure(stale.status).reason) == ("stale", "LEASE_LOST")
    finally:
        call.cancel()
    assert [e.log.message for e in await logs(stubs, job.id)] == ["one", "two"]
    assert (await flows.get(stubs, job.id)).message_count == 2


async def test_concurrent_calls_on_one_job_each_count_their_own(stubs: rpc.Stubs) -> None:
    """message_count is added to, not set: calls racing on one job (several connections at once on
    PostgreSQL) all count, and their events keep one gapless sequence."""
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    calls = [add(claim, *(f"call {c} line {i}" for i in range(5))) for c in range(8)]
    replies = await asyncio.gather(*(stubs.workers.AddMessages(r) for r in calls))
    assert sorted(r.message_count for r in replies) == list(range(5, 45, 5))  # one after another
    recorded = await logs(stubs, job.id)
    assert len(recorded) == 40
    assert (await flows.get(stubs, job.id)).message_count == 40
    history = await flows.events(stubs, job.id)
    assert [e.sequence for e in history] == list(range(1, len(history) + 1))
    for reply in replies:  # each call's messages are consecutive and in its own order
        lines = [e.log.message for e in reply.events]
        assert lines == sorted(lines)
        assert [e.sequence for e in reply.events] == list(
            range(reply.events[0].sequence, reply.events[0].sequence + 5)
        )


async def test_a_retry_with_the_same_request_id_adds_nothing_twice(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    request = add(claim, "a", "b", request_id="msgs-1")
    first = await stubs.workers.AddMessages(request)
    await stubs.workers.AddMessages(add(claim, "c"))
    again = await stubs.workers.AddMessages(request)
    assert list(again.events) == list(first.events)
    assert again.message_count == 3  # the count now: the retry added nothing

    other = await rpc.fails(stubs.workers.AddMessages(add(claim, "a", "changed", request_id="msgs-1")))
    assert (other.code, other.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_MISMATCH")

    # Even once the lease is gone, the retry is answered with what the first call recorded.
    await flows.complete(stubs, claim)
    late = await stubs.workers.AddMessages(request)
    assert list(late.events) == list(first.events)
    assert [e.log.message for e in await logs(stubs, job.id)] == ["a", "b", "c"]
    assert (await flows.get(stubs, job.id)).message_count == 3


# --- refusals ----------------------------------------------------------------------------------------------


async def test_bounds_are_refused_naming_the_field_and_nothing_is_written(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    big = "x" * (64 * 1024 - 3)

    def with_messages(*messages: job_pb2.JobLog) -> pb.AddMessagesRequest:
        return pb.AddMessagesRequest(job_id=job.id, lease_token=claim.lease_token, messages=messages)

    cases: list[tuple[pb.AddMessagesRequest, str, str]] = [
        (with_messages(), "messages", "INVALID_ARGUMENT"),
        (add(claim, *["x"] * 101), "messages", "TOO_LARGE"),
        (
            with_messages(job_pb2.JobLog(message="ok"), job_pb2.JobLog(message=big, data=value({"k": 1}))),
            "messages[1]",
            "TOO_LARGE",
        ),
        (
            with_messages(job_pb2.JobLog(message="é" * 40_000)),
            "messages[0]",
            "TOO_LARGE",
        ),  # bytes, not characters
        (with_messages(job_pb2.JobLog(message="ok"), job_pb2.JobLog()), "messages[1]", "INVALID_ARGUMENT"),
        (
            with_messages(job_pb2.JobLog(data=value({"ids": [1, 2**60]}))),
            "messages[0].data.ids[1]",
            "INVALID_ARGUMENT",
        ),
        (with_messages(job_pb2.JobLog(message="x", level=42)), "messages[0].level", "INVALID_ARGUMENT"),  # type: ignore[arg-type]
        (with_messages(job_pb2.JobLog(message="a\x00b")), "messages[0].message", "INVALID_ARGUMENT"),
    ]
    for request, field, reason in cases:
        failure = await rpc.fails(stubs.workers.AddMessages(request))
        assert (failure.code, failure.reason, failure.fields) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            reason,
            [field],
        ), field
    # The edges pass: 100 messages, and one of exactly 64 KiB.
    await stubs.workers.AddMessages(add(claim, *["x"] * 100))
    await stubs.workers.AddMessages(with_messages(job_pb2.JobLog(message=big + "abc")))
    assert (await flows.get(stubs, job.id)).message_count == 101


async def test_another_owners_job_is_not_found(tmp_path: Path, backend: str) -> None:
    tokens = {
        "token-a": ("alice", frozenset({Role.CLIENT, Role.WORKER})),
        "token-b": ("bob", frozenset({Role.CLIENT, Role.WORKER})),
    }
    async with (
        rpc.server(tmp_path, backend=backend, principals_by_hash=rpc.principals(tokens)) as srv,
        rpc.stubs(srv.address, "token-a") as a,
        rpc.stubs(srv.address, "token-b") as b,
    ):
        job = await flows.create(b)
        claim = await flows.claim_one(b)
        theirs = await rpc.fails(a.workers.AddMessages(add(claim, "not yours"), metadata=a.metadata))
        missing = await rpc.fails(
            a.workers.AddMessages(
                pb.AddMessagesRequest(
                    job_id="no-such-job",
                    lease_token=claim.lease_token,
                    messages=[job_pb2.JobLog(message="x")],
                ),
                metadata=a.metadata,
            )
        )
        assert (theirs.code, theirs.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
        assert theirs.message.replace(job.id, "X") == missing.message.replace("no-such-job", "X")
        listed = await rpc.fails(
            a.jobs.ListJobEvents(
                job_service_pb2.ListJobEventsRequest(job_id=job.id, kinds=[LOG]), metadata=a.metadata
            )
        )
        assert listed.reason == "NOT_FOUND"
        assert await logs(b, job.id) == []
        assert (await flows.get(b, job.id)).message_count == 0


async def test_event_kind_filters_are_checked_and_bind_their_page_tokens(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    await stubs.workers.AddMessages(add(claim, "a", "b", "c"))
    unfiltered = await stubs.jobs.ListJobEvents(
        job_service_pb2.ListJobEventsRequest(job_id=job.id, page_size=1)
    )
    failure = await rpc.fails(
        stubs.jobs.ListJobEvents(
            job_service_pb2.ListJobEventsRequest(
                job_id=job.id, kinds=[LOG], page_token=unfiltered.next_page_token
            )
        )
    )
    assert (failure.reason, failure.fields) == ("INVALID_PAGE_TOKEN", ["page_token"])
    for bad in (job_pb2.JobEventKind.JOB_EVENT_KIND_UNSPECIFIED, 99):
        failure = await rpc.fails(
            stubs.jobs.ListJobEvents(job_service_pb2.ListJobEventsRequest(job_id=job.id, kinds=[bad]))  # type: ignore[list-item]
        )
        assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["kinds"])
    both = await stubs.jobs.ListJobEvents(
        job_service_pb2.ListJobEventsRequest(
            job_id=job.id, kinds=[LOG, job_pb2.JobEventKind.JOB_EVENT_KIND_CREATED]
        )
    )
    assert flows.kinds(list(both.events)) == ["created", "log", "log", "log"]
