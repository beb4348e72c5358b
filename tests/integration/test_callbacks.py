"""Completion callbacks end to end: a real server, a real HTTP receiver on loopback, signatures checked
with the `standardwebhooks` package (an implementation of the scheme we did not write).

Each test runs on SQLite and, with JOBWARDEN_TEST_DATABASE_URL, on PostgreSQL. Waits are bounded polls
of the receiver or of the job; the receiver's own delays stand for a slow receiver, never for
synchronisation.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
from google.protobuf import timestamp_pb2
from support import flows, rpc, waiting
from support.receiver import OLD_SECRET, SECRET, Receiver, always, first_then, policy_settings

from jobwarden import errors
from jobwarden.client import CallbackState, Client, EventKind, JobStatus
from jobwarden.v1 import job_pb2, job_service_pb2
from jobwarden_server.service.callbacks import CallbackDispatcher
from jobwarden_server.service.writer import utc_now
from jobwarden_server.settings import callbacks_policy

State = job_pb2.CallbackState


@contextlib.asynccontextmanager
async def served(tmp_path: Path, backend: str, **callbacks: Any) -> AsyncIterator[rpc.Stubs]:
    policy = callbacks_policy(policy_settings(**callbacks))
    async with (
        rpc.server(tmp_path, backend=backend, callbacks=policy, reaper_interval_s=0.1) as srv,
        rpc.stubs(srv.address) as s,
    ):
        yield s


async def finish(s: rpc.Stubs, url: str, *, fail: bool = False, **fields: Any) -> job_pb2.Job:
    """Create a job with a callback to `url`, claim it, and complete (or fail) it."""
    job = await flows.create(s, callback_url=url, labels={"order": "17"}, **fields)
    claim = await flows.claim_one(s)
    assert claim.job.id == job.id
    if fail:
        return await flows.fail(s, claim, "boom")
    return await flows.complete(s, claim, width=640)


async def job_when(
    s: rpc.Stubs, job_id: str, condition: Callable[[job_pb2.Job], bool], within_s: float = 10.0
) -> job_pb2.Job:
    """The job as soon as `condition` holds for it (a bounded poll: nothing to await for it)."""
    async with asyncio.timeout(within_s):
        while not condition(job := await flows.get(s, job_id)):  # noqa: ASYNC110 - a server-side state
            await asyncio.sleep(0.02)
        return job


async def settled(s: rpc.Stubs, job_id: str, within_s: float = 10.0) -> job_pb2.Job:
    """The job once its callback is DELIVERED or FAILED."""
    done = (State.CALLBACK_STATE_DELIVERED, State.CALLBACK_STATE_FAILED)
    return await job_when(s, job_id, lambda job: job.callback_state in done, within_s)


def attempts(events: list[job_pb2.JobEvent]) -> list[job_pb2.CallbackAttempt]:
    return [e.callback_attempt for e in events if e.WhichOneof("kind") == "callback_attempt"]


async def test_a_finished_job_is_posted_once_signed_and_recorded(tmp_path: Path, backend: str) -> None:
    with Receiver() as receiver:
        async with served(tmp_path, backend) as s:
            done = await finish(s, receiver.url)
            job = await settled(s, done.id)
            history = await flows.events(s, done.id)

    assert job.status == job_pb2.JOB_STATUS_COMPLETED
    assert (job.callback_state, job.callback_attempts, job.callback_error) == (
        State.CALLBACK_STATE_DELIVERED,
        1,
        "",
    )
    [got] = receiver.received
    payload = standardwebhooks.Webhook(SECRET).verify(got.body, got.headers)
    assert got.headers["content-type"] == "application/json"
    assert payload["type"] == "job.completed"
    data = payload["data"]
    assert (data["job_id"], data["status"], data["attempt"]) == (done.id, "COMPLETED", 1)
    assert data["labels"] == {"order": "17"}
    assert data["result"] == {"width": 640}
    assert data["stop_reason"] == "UNSPECIFIED"
    sent_time = dt.datetime.fromisoformat(data["complete_time"])
    assert sent_time == done.complete_time.ToDatetime(tzinfo=dt.UTC)
    # The attempt is an event of the job, after its terminal transition; the status never changed.
    kinds = flows.kinds(history)
    assert kinds[-2:] == ["RUNNING->COMPLETED", "callback_attempt"], kinds
    [attempt] = attempts(history)
    assert attempt.webhook_id == got.headers["webhook-id"]
    assert (attempt.attempt, attempt.http_status, attempt.state) == (1, 200, State.CALLBACK_STATE_DELIVERED)
    assert job.last_sequence == history[-1].sequence


async def test_rotation_signs_with_both_secrets(tmp_path: Path, backend: str) -> None:
    with Receiver() as receiver:
        async with served(tmp_path, backend, secrets={"default": [SECRET, OLD_SECRET]}) as s:
            done = await finish(s, receiver.url)
            await settled(s, done.id)
    [got] = receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    for secret in (SECRET, OLD_SECRET):  # receivers on the old secret and on the new both verify
        standardwebhooks.Webhook(secret).verify(got.body, got.headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook("whsec_" + "c2VjcmV0LW5vdC11c2VkLWF0LWFsbC0xMjM0NTY3OA==").verify(
            got.body, got.headers
        )


async def test_retries_follow_the_backoff_schedule_with_one_webhook_id(tmp_path: Path, backend: str) -> None:
    # initial 0.2 s, x2, jitter keeping at least half: waits in [0.1, 0.2] then [0.2, 0.4] (+ a poll).
    with Receiver(first_then([503, 500])) as receiver:
        async with served(tmp_path, backend) as s:
            done = await finish(s, receiver.url)
            job = await settled(s, done.id)
            history = await flows.events(s, done.id)

    got = receiver.received
    assert len(got) == 3
    assert len(set(receiver.ids())) == 1, receiver.ids()  # one delivery, retried under one id
    for r in got:
        standardwebhooks.Webhook(SECRET).verify(r.body, r.headers)
    assert got[0].body == got[1].body == got[2].body
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    slack = 0.5  # poll interval 0.05 s, plus the time to record an attempt and claim again
    assert 0.1 <= gaps[0] <= 0.2 + slack, gaps
    assert 0.2 <= gaps[1] <= 0.4 + slack, gaps
    assert (job.callback_state, job.callback_attempts) == (State.CALLBACK_STATE_DELIVERED, 3)
    recorded = attempts(history)
    assert [(a.attempt, a.http_status, a.state) for a in recorded] == [
        (1, 503, State.CALLBACK_STATE_DELIVERING),
        (2, 500, State.CALLBACK_STATE_DELIVERING),
        (3, 200, State.CALLBACK_STATE_DELIVERED),
    ]
    assert [a.error for a in recorded] == ["HTTP 503", "HTTP 500", ""]
    assert recorded[0].HasField("next_attempt_time") and not recorded[2].HasField("next_attempt_time")


async def test_gone_stops_and_redirects_are_not_followed(tmp_path: Path, backend: str) -> None:
    with Receiver(always(410)) as gone, Receiver(always(302)) as moved:
        # A short horizon, but room for a retry after a first attempt that a slow machine made late
        # (0.5 s once saw a single attempt: the first one ended too close to the horizon to retry).
        async with served(tmp_path, backend, horizon_seconds=2.0) as s:
            stopped = await finish(s, gone.url)
            redirected = await finish(s, moved.url)
            stopped_job = await settled(s, stopped.id)
            redirected_job = await settled(s, redirected.id)
    assert (stopped_job.callback_state, stopped_job.callback_attempts) == (State.CALLBACK_STATE_FAILED, 1)
    assert stopped_job.callback_error == "HTTP 410"
    assert stopped_job.status == job_pb2.JOB_STATUS_COMPLETED  # a failing callback never changes the job
    assert len(gone.received) == 1
    # 302 is not a delivery: retried until the (short) horizon passed; the Location was never fetched.
    assert redirected_job.callback_state == State.CALLBACK_STATE_FAILED
    assert "HTTP 302 (redirects are not followed)" in redirected_job.callback_error
    assert "given up after" in redirected_job.callback_error
    assert {r.path for r in moved.received} == {"/hook"}
    assert len(moved.received) == redirected_job.callback_attempts >= 2


async def test_a_receiver_down_for_a_while_still_gets_its_delivery(tmp_path: Path, backend: str) -> None:
    with Receiver() as receiver:
        receiver.down()
        async with served(tmp_path, backend) as s:
            done = await finish(s, receiver.url)
            # Two attempts refused while it is down.
            down_job = await job_when(s, done.id, lambda job: job.callback_attempts >= 2)
            receiver.up()
            job = await settled(s, done.id)
    assert down_job.callback_state == State.CALLBACK_STATE_DELIVERING
    assert "ConnectError" in down_job.callback_error
    assert job.callback_state == State.CALLBACK_STATE_DELIVERED
    assert job.callback_attempts >= 3
    [got] = receiver.received
    standardwebhooks.Webhook(SECRET).verify(got.body, got.headers)


async def test_statuses_choose_which_endings_call_back(tmp_path: Path, backend: str) -> None:
    with Receiver() as receiver:
        async with served(tmp_path, backend) as s:
            only_failed = [job_pb2.JOB_STATUS_FAILED]
            completed = await finish(s, receiver.url, callback_statuses=only_failed)
            failed = await finish(s, receiver.url, fail=True, callback_statuses=only_failed)
            await settled(s, failed.id)
            cancelled = await flows.create(s, callback_url=receiver.url)
            cancelled = (
                await s.jobs.CancelJob(
                    job_service_pb2.CancelJobRequest(job_id=cancelled.id), metadata=s.metadata
                )
            ).job
            await settled(s, cancelled.id)
            not_fired = await flows.get(s, completed.id)
    assert not_fired.callback_state == State.CALLBACK_STATE_UNSPECIFIED
    assert list(not_fired.callback_statuses) == only_failed
    statuses = sorted(r.payload["data"]["status"] for r in receiver.received)
    assert statuses == ["CANCELLED", "FAILED"]
    assert {r.payload["data"]["job_id"] for r in receiver.received} == {failed.id, cancelled.id}


async def test_a_slow_receiver_never_delays_transitions(tmp_path: Path, backend: str) -> None:
    with Receiver(always(200, delay_s=1.5)) as slow:
        async with served(tmp_path, backend, timeout_seconds=5) as s:
            first = [await finish(s, slow.url) for _ in range(4)]
            await waiting.until(lambda: len(slow.received) >= 4, within_s=5)  # all in flight at once
            began = time.monotonic()
            more = [await finish(s, slow.url) for _ in range(4)]
            took = time.monotonic() - began
            for job in first + more:
                assert (await settled(s, job.id)).callback_state == State.CALLBACK_STATE_DELIVERED
    # Four create/claim/complete rounds while four deliveries sat 1.5 s in the receiver.
    assert took < 1.0, took
    assert len(slow.received) == 8


REFUSED = [
    ("http://10.0.0.7/hook", "10.0.0.7 is a private address"),
    ("http://192.168.1.1:8080/hook", "is a private address"),
    ("http://169.254.169.254/latest/meta-data", "cloud metadata address"),
    ("http://metadata.google.internal/computeMetadata/v1", "cloud metadata service"),
    ("http://[fe80::1]/hook", "link-local address"),
    ("http://[::ffff:10.1.2.3]/hook", "private address"),
    ("http://0.0.0.0/hook", "unspecified address"),
]


async def test_refused_targets_at_create(tmp_path: Path, backend: str) -> None:
    async with served(tmp_path, backend) as s:
        for url, why in REFUSED:
            failure = await rpc.fails(flows.create(s, callback_url=url))
            assert (failure.code.name, failure.reason, failure.fields) == (
                "INVALID_ARGUMENT",
                "CALLBACK_TARGET_REFUSED",
                ["callback_url"],
            ), url
            assert why in failure.message, failure.message
        # The same refusal for one item of a batch; the other item is created. A public name is not
        # looked up at create (its addresses are checked at each delivery).
        reply = await s.jobs.CreateJobs(
            job_service_pb2.CreateJobsRequest(
                requests=[
                    job_service_pb2.CreateJobRequest(job_type="demo", callback_url=REFUSED[0][0]),
                    job_service_pb2.CreateJobRequest(job_type="demo", callback_url="https://example.com/h"),
                ]
            ),
            metadata=s.metadata,
        )
        refused = rpc.status_failure(reply.results[0].error)
        assert (refused.reason, refused.fields) == ("CALLBACK_TARGET_REFUSED", ["requests[0].callback_url"])
        assert reply.results[1].job.callback_url == "https://example.com/h"
        # Statuses: terminal ones only, and only with a URL.
        running = await rpc.fails(
            flows.create(
                s, callback_url="https://example.com/h", callback_statuses=[job_pb2.JOB_STATUS_RUNNING]
            )
        )
        assert (running.reason, running.fields) == ("INVALID_ARGUMENT", ["callback_statuses"])
        no_url = await rpc.fails(flows.create(s, callback_statuses=[job_pb2.JOB_STATUS_FAILED]))
        assert (no_url.reason, no_url.fields) == ("INVALID_ARGUMENT", ["callback_statuses"])


async def test_loopback_and_unsigned_owners_are_refused_unless_configured(
    tmp_path: Path, backend: str
) -> None:
    async with served(tmp_path, backend, allow_networks=[], secrets={}) as s:
        loopback = await rpc.fails(flows.create(s, callback_url="http://127.0.0.1:9/hook"))
        assert loopback.reason == "CALLBACK_TARGET_REFUSED"
        assert "127.0.0.1 is a loopback address" in loopback.message
        named = await rpc.fails(flows.create(s, callback_url="http://localhost:9/hook"))
        assert "loopback name" in named.message
        unsigned = await rpc.fails(flows.create(s, callback_url="https://example.com/hook"))
        assert unsigned.reason == "CALLBACK_TARGET_REFUSED"
        assert "no callback secret is configured for owner 'default'" in unsigned.message


async def test_the_resolved_address_is_checked_at_each_delivery(tmp_path: Path, backend: str) -> None:
    """A name passes CreateJob (no lookup there); where it resolves is checked when sending, and the
    request goes to the address that was checked. The names resolve through a resolver of the test's
    (the server's own dispatcher idles: its poll interval is an hour), the rest is real."""
    answers = {"internal.test": ["10.9.8.7"], "mixed.test": ["10.9.8.7", "127.0.0.1"]}

    async def resolver(host: str, port: int) -> list[str]:
        return answers[host]

    with Receiver() as receiver:
        async with (
            rpc.server(
                tmp_path,
                backend=backend,
                callbacks=callbacks_policy(policy_settings(poll_interval_seconds=3600)),
            ) as srv,
            rpc.stubs(srv.address) as s,
        ):
            internal = await finish(s, f"http://internal.test:{receiver.port}/hook")
            mixed = await finish(s, f"http://mixed.test:{receiver.port}/hook")
            stop = asyncio.Event()
            policy = callbacks_policy(policy_settings())
            dispatcher = CallbackDispatcher(
                srv.store, srv.bus, policy, utc_now, srv.metrics, resolver=resolver
            )
            running = asyncio.create_task(dispatcher.run(stop))
            try:
                refused = await settled(s, internal.id)
                delivered = await settled(s, mixed.id)
            finally:
                stop.set()
                await running
    assert (refused.callback_state, refused.callback_attempts) == (State.CALLBACK_STATE_FAILED, 1)
    assert refused.callback_error == (
        "refused: internal.test resolves to no address that may be called (10.9.8.7 is a private address)"
    )
    assert delivered.callback_state == State.CALLBACK_STATE_DELIVERED
    [got] = receiver.received  # only the delivery to the permitted address of mixed.test
    assert got.headers["host"] == f"mixed.test:{receiver.port}"
    assert got.payload["data"]["job_id"] == mixed.id


async def test_watches_of_a_job_whose_callback_was_attempted_still_end(tmp_path: Path, backend: str) -> None:
    """Callback attempts come after a job's terminal event; a watch resumed past that event (or from
    anywhere) ends after what is recorded instead of waiting for an end that already happened."""
    with Receiver(first_then([500])) as receiver:
        async with served(tmp_path, backend) as s:
            done = await finish(s, receiver.url)
            job = await settled(s, done.id)
            async with asyncio.timeout(5):
                _, from_start = await flows.watch(s, done.id)
                _, past_the_end = await flows.watch(s, done.id, after=done.last_sequence)
                _, from_first_attempt = await flows.watch(s, done.id, after=done.last_sequence + 1)
    assert flows.kinds(from_start)[-1] == "RUNNING->COMPLETED"
    assert flows.kinds(past_the_end) == ["callback_attempt", "callback_attempt"]
    assert flows.kinds(from_first_attempt) == ["callback_attempt"]
    assert job.last_sequence == done.last_sequence + 2


async def test_the_reaper_ending_a_job_calls_back_too(tmp_path: Path, backend: str) -> None:
    """The outbox row is written where every change is applied, so a job the server itself ends (here:
    its deadline passed) calls back like one a worker or a client ended."""
    with Receiver() as receiver:
        async with served(tmp_path, backend) as s:
            deadline = timestamp_pb2.Timestamp()
            deadline.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.3))
            job = await flows.create(s, callback_url=receiver.url, deadline=deadline)
            ended = await settled(s, job.id)
    assert (ended.status, ended.callback_state) == (
        job_pb2.JOB_STATUS_EXPIRED,
        State.CALLBACK_STATE_DELIVERED,
    )
    [got] = receiver.received
    data = standardwebhooks.Webhook(SECRET).verify(got.body, got.headers)["data"]
    assert (data["job_id"], data["status"], data["stop_reason"]) == (job.id, "EXPIRED", "TIMEOUT_EXCEEDED")


async def test_the_sdk_creates_callbacks_and_reads_how_they_went(tmp_path: Path, backend: str) -> None:
    with Receiver(first_then([503])) as receiver:
        policy = callbacks_policy(policy_settings())
        async with (
            rpc.server(tmp_path, backend=backend, callbacks=policy) as srv,
            Client(srv.address) as client,
        ):
            with pytest.raises(errors.CallbackTargetRefused) as refused:
                await client.create_job("demo", callback_url="http://10.0.0.7/hook")
            assert refused.value.field_violations[0].field == "callback_url"
            job = await client.create_job(
                "demo", callback_url=receiver.url, callback_statuses=[JobStatus.COMPLETED, "partial"]
            )
            assert job.callback_statuses == (JobStatus.COMPLETED, JobStatus.PARTIAL)
            assert job.callback_state is CallbackState.NONE
            [claim] = await client.claim_jobs("w1", ["demo"])
            await client.complete_job(job.id, claim.lease_token, {"ok": True})
            async with asyncio.timeout(10):
                while (job := await client.get_job(job.id)).callback_state is not CallbackState.DELIVERED:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            events, _ = await client.list_job_events(job.id)
    assert (job.callback_attempts, job.callback_error) == (2, "")
    tried = [e.callback for e in events if e.kind is EventKind.CALLBACK_ATTEMPT]
    assert [(a.attempt, a.http_status, a.state) for a in tried if a is not None] == [
        (1, 503, CallbackState.DELIVERING),
        (2, 200, CallbackState.DELIVERED),
    ]
    assert tried[0] is not None and tried[0].next_attempt_time is not None and tried[0].duration > 0
