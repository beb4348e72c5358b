"""The SDK's asyncio Client against a real in-process server: typed models out, typed errors out."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from support import rpc

from jobwarden import errors
from jobwarden.client import (
    Asset,
    Claim,
    Client,
    EventKind,
    Job,
    JobEvent,
    JobStatus,
    Lifecycle,
    Progress,
    StopReason,
)
from jobwarden.client import RetryPolicy as SdkRetryPolicy
from jobwarden_server import app
from jobwarden_server.domain.auth import Role
from jobwarden_server.domain.lifecycle import Lifecycles
from jobwarden_server.domain.retry import RetryPolicy

Call = Callable[[], Awaitable[object]]

TERMINAL = {JobStatus.COMPLETED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}


@pytest.fixture
async def client(srv: app.RunningServer) -> AsyncIterator[Client]:
    async with Client(srv.address) as c:
        yield c


async def claim_only(client: Client, job_type: str = "demo") -> Claim:
    claims = await client.claim_jobs("w1", [job_type])
    assert len(claims) == 1, claims
    return claims[0]


async def watch_all(client: Client, job_id: str, after: int = 0) -> tuple[Job, list[JobEvent]]:
    """Consumes a whole watch; checks the snapshot comes once and first."""
    snapshot: Job | None = None
    seen: list[JobEvent] = []
    async for item in client.watch_job(job_id, after_sequence=after):
        if isinstance(item, Job):
            assert snapshot is None and not seen, "the snapshot comes once, first"
            snapshot = item
        else:
            assert isinstance(item, JobEvent)
            seen.append(item)
    assert snapshot is not None
    return snapshot, seen


# --- create / get ------------------------------------------------------------------------------------


async def test_create_returns_a_typed_job_and_get_returns_the_same(client: Client) -> None:
    job = await client.create_job(
        "render", {"frames": 3, "name": "intro", "opts": {"hd": True}}, priority=7, labels={"team": "a"}
    )
    assert isinstance(job, Job)
    assert job.id
    assert job.job_type == "render"
    assert job.status is JobStatus.QUEUED
    assert job.lifecycle == "standard"
    assert job.owner == "default"
    # Struct numbers travel as doubles.
    assert job.parameters == {"frames": 3.0, "name": "intro", "opts": {"hd": True}}
    assert (job.priority, job.labels) == (7, {"team": "a"})
    assert (job.attempt, job.max_attempts) == (0, 3)  # 3 is the server's default
    assert job.progress == Progress()
    assert job.result is None and job.error is None
    assert job.stop_reason is StopReason.UNSPECIFIED
    assert job.last_sequence == 1
    assert job.etag
    assert job.create_time is not None and job.create_time.tzinfo is not None
    assert job.start_time is None and job.complete_time is None
    assert not job.is_terminal

    assert await client.get_job(job.id) == job


async def test_create_held_then_release(client: Client) -> None:
    held = await client.create_job("demo", hold=True)
    assert held.status is JobStatus.CREATED
    assert await client.claim_jobs("w1", ["demo"]) == []  # a held job is not claimable
    released = await client.release_job(held.id)
    assert released.status is JobStatus.QUEUED
    assert released.etag != held.etag
    assert (await claim_only(client)).job.id == held.id


async def test_same_explicit_request_id_twice_gives_one_job(client: Client) -> None:
    first = await client.create_job("demo", {"n": 1}, request_id="req-sdk-1")
    again = await client.create_job("demo", {"n": 1}, request_id="req-sdk-1")
    assert again.id == first.id
    jobs, token = await client.list_jobs()
    assert [j.id for j in jobs] == [first.id] and token == ""
    events, _ = await client.list_job_events(first.id)
    assert [e.kind for e in events] == [EventKind.CREATED]


async def test_without_request_id_each_create_is_a_new_job(client: Client) -> None:
    a = await client.create_job("demo", {"n": 1})
    b = await client.create_job("demo", {"n": 1})
    assert a.id != b.id


async def test_non_json_parameters_are_refused_before_sending(client: Client) -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        await client.create_job("demo", {"when": object()})
    assert (await client.list_jobs())[0] == []


# --- list / iterate ----------------------------------------------------------------------------------


async def test_list_jobs_filters(client: Client) -> None:
    a1 = await client.create_job("alpha", labels={"team": "a"})
    a2 = await client.create_job("alpha", labels={"team": "b"})
    b1 = await client.create_job("beta", labels={"team": "a"}, hold=True)
    b2 = await client.create_job("beta", labels={"team": "a", "tier": "gold"})
    await client.cancel_job(b2.id, "not needed")

    async def ids(**filters: object) -> list[str]:
        jobs, token = await client.list_jobs(**filters)  # type: ignore[arg-type]
        assert token == ""
        assert all(isinstance(j, Job) for j in jobs)
        return [j.id for j in jobs]

    assert await ids() == [a1.id, a2.id, b1.id, b2.id]
    assert await ids(descending=True) == [b2.id, b1.id, a2.id, a1.id]
    assert await ids(job_types=["alpha"]) == [a1.id, a2.id]
    assert await ids(job_types=["alpha", "beta"]) == [a1.id, a2.id, b1.id, b2.id]
    assert await ids(labels={"team": "a"}) == [a1.id, b1.id, b2.id]
    assert await ids(labels={"team": "a", "tier": "gold"}) == [b2.id]
    assert await ids(statuses=["created"]) == [b1.id]  # names in any case
    assert await ids(statuses=[JobStatus.QUEUED, JobStatus.CANCELLED]) == [a1.id, a2.id, b2.id]
    assert await ids(stop_reasons=[StopReason.USER_CANCELLED]) == [b2.id]
    assert await ids(statuses=[JobStatus.QUEUED], job_types=["beta"]) == []
    assert a2.create_time is not None
    assert await ids(created_after=a2.create_time) == [a2.id, b1.id, b2.id]
    assert await ids(created_before=a2.create_time) == [a1.id]

    jobs, _ = await client.list_jobs(statuses=[JobStatus.CANCELLED])
    assert jobs[0].status is JobStatus.CANCELLED and jobs[0].stop_reason is StopReason.USER_CANCELLED


async def test_list_jobs_pages_and_iter_jobs_crosses_pages(client: Client) -> None:
    created = [(await client.create_job("page", {"i": i})).id for i in range(8)]
    await client.create_job("other")

    pages: list[list[str]] = []
    token = ""
    while True:
        jobs, token = await client.list_jobs(job_types=["page"], page_size=3, page_token=token)
        pages.append([j.id for j in jobs])
        if not token:
            break
    assert pages == [created[0:3], created[3:6], created[6:8]]

    assert [j.id async for j in client.iter_jobs(job_types=["page"], page_size=3)] == created
    assert [j.id async for j in client.iter_jobs(job_types=["page"], page_size=3, descending=True)] == list(
        reversed(created)
    )
    every = [j async for j in client.iter_jobs(page_size=2)]
    assert len(every) == 9
    assert [j.parameters["i"] for j in every[:8]] == [float(i) for i in range(8)]


async def test_bad_page_token_is_invalid_page_token(client: Client) -> None:
    await client.create_job("demo")
    with pytest.raises(errors.InvalidPageToken) as caught:
        await client.list_jobs(page_token="garbage!")
    assert isinstance(caught.value, errors.InvalidArgument)
    assert [v.field for v in caught.value.field_violations] == ["page_token"]


# --- cancel ------------------------------------------------------------------------------------------


async def test_cancel_queued_job_is_cancelled_at_once(client: Client) -> None:
    job = await client.create_job("demo")
    cancelled = await client.cancel_job(job.id, "changed my mind")
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.stop_reason is StopReason.USER_CANCELLED
    assert cancelled.complete_time is not None
    assert cancelled.is_terminal
    events = [e async for e in client.iter_job_events(job.id)]
    assert events[-1].kind is EventKind.TRANSITION
    assert (events[-1].from_status, events[-1].to_status) == (JobStatus.QUEUED, JobStatus.CANCELLED)
    assert events[-1].reason == "changed my mind"
    assert events[-1].stop_reason is StopReason.USER_CANCELLED
    assert events[-1].actor == "client:default"


async def test_cancel_running_job_requests_cancel_and_worker_sees_it(client: Client) -> None:
    job = await client.create_job("demo")
    claim = await claim_only(client)
    _, cancel = await client.report_progress(job.id, claim.lease_token, 10)
    assert cancel is False
    requested = await client.cancel_job(job.id, "too slow")
    assert requested.status is JobStatus.RUNNING
    assert requested.cancel_requested is True
    expire, cancel = await client.report_progress(job.id, claim.lease_token, 20)
    assert cancel is True
    assert expire is not None and expire.tzinfo is not None
    finished = await client.fail_job(job.id, claim.lease_token, "stopped on request")
    assert finished.status is JobStatus.CANCELLED
    assert finished.stop_reason is StopReason.USER_CANCELLED
    kinds = [e.kind async for e in client.iter_job_events(job.id)]
    assert EventKind.CANCEL_REQUESTED in kinds


async def test_cancel_with_stale_etag_is_etag_mismatch(client: Client) -> None:
    job = await client.create_job("demo", hold=True)
    await client.release_job(job.id)
    with pytest.raises(errors.EtagMismatch) as caught:
        await client.cancel_job(job.id, etag=job.etag)
    assert caught.value.code == grpc.StatusCode.ABORTED
    assert (await client.get_job(job.id)).status is JobStatus.QUEUED
    current = await client.get_job(job.id)
    assert (await client.cancel_job(job.id, etag=current.etag)).status is JobStatus.CANCELLED


# --- watch / events / assets -------------------------------------------------------------------------


async def test_watch_job_streams_snapshot_then_every_event_live(client: Client) -> None:
    job = await client.create_job("demo", {"frames": 2})
    watcher = asyncio.create_task(watch_all(client, job.id))
    claim = await claim_only(client)
    assert claim.job.status is JobStatus.RUNNING and claim.job.attempt == 1
    assert claim.lease_token and claim.lease_expire_time is not None
    await client.report_progress(job.id, claim.lease_token, 50, "halfway", done=1, total=2)
    asset = await client.add_asset(job.id, claim.lease_token, "image", "s3://b/f1.png", size_bytes=12)
    done = await client.complete_job(job.id, claim.lease_token, {"frames": 2})
    assert done.status is JobStatus.COMPLETED
    assert done.result == {"frames": 2.0}
    assert done.progress.percent == 100

    async with asyncio.timeout(20):
        snapshot, seen = await watcher
    assert snapshot.id == job.id
    assert [e.sequence for e in seen] == [1, 2, 3, 4, 5]
    assert all(e.job_id == job.id and e.create_time is not None for e in seen)
    assert [e.kind for e in seen] == [
        EventKind.CREATED,
        EventKind.TRANSITION,
        EventKind.PROGRESS,
        EventKind.ASSET_ADDED,
        EventKind.TRANSITION,
    ]
    assert seen[0].to_status is JobStatus.QUEUED
    assert (seen[1].from_status, seen[1].to_status, seen[1].actor) == (
        JobStatus.QUEUED,
        JobStatus.RUNNING,
        "worker:w1",
    )
    assert seen[2].progress == Progress(percent=50, message="halfway", done=1, total=2)
    assert seen[3].asset == asset
    assert (seen[4].from_status, seen[4].to_status) == (JobStatus.RUNNING, JobStatus.COMPLETED)

    # The recorded history is the same, and a resumed watch sends only what came after the cursor.
    assert [e async for e in client.iter_job_events(job.id)] == seen
    snapshot, rest = await watch_all(client, job.id, after=3)
    assert snapshot.status is JobStatus.COMPLETED
    assert rest == seen[3:]
    _, nothing = await watch_all(client, job.id, after=5)
    assert nothing == []


async def test_breaking_off_a_watch_early_is_clean(client: Client) -> None:
    job = await client.create_job("demo")
    stream = client.watch_job(job.id)
    assert isinstance(stream, AsyncGenerator)
    first = await anext(stream)
    assert isinstance(first, Job) and first.status is JobStatus.QUEUED
    created = await anext(stream)
    assert isinstance(created, JobEvent) and created.kind is EventKind.CREATED
    await stream.aclose()  # the job never ends; closing must not hang or raise
    assert (await client.get_job(job.id)).status is JobStatus.QUEUED


async def test_list_job_events_pages(client: Client) -> None:
    job = await client.create_job("demo")
    claim = await claim_only(client)
    for pct in (10, 20, 30):
        await client.report_progress(job.id, claim.lease_token, pct)
    await client.complete_job(job.id, claim.lease_token)

    first, token = await client.list_job_events(job.id, page_size=2)
    assert [e.sequence for e in first] == [1, 2] and token
    second, token = await client.list_job_events(job.id, page_size=2, page_token=token)
    assert [e.sequence for e in second] == [3, 4] and token
    third, token = await client.list_job_events(job.id, page_size=2, page_token=token)
    assert [e.sequence for e in third] == [5, 6] and token == ""
    assert [e.progress for e in second + third[:1]] == [Progress(percent=p) for p in (10, 20, 30)]
    assert [e.sequence async for e in client.iter_job_events(job.id, page_size=4)] == [1, 2, 3, 4, 5, 6]


async def test_assets_are_listed_in_order_and_fetched_by_id(client: Client) -> None:
    job = await client.create_job("demo")
    claim = await claim_only(client)
    digest = hashlib.sha256(b"frame one").hexdigest()
    one = await client.add_asset(
        job.id,
        claim.lease_token,
        "image",
        "s3://bucket/1.png",
        storage_path="bucket/1.png",
        size_bytes=9,
        content_type="image/png",
        sha256=digest,
        metadata={"frame": "1"},
    )
    two = await client.add_asset(job.id, claim.lease_token, "log", "s3://bucket/run.log")
    three = await client.add_asset(job.id, claim.lease_token, "log", "s3://bucket/run2.log")
    assert isinstance(one, Asset) and one.id and one.create_time is not None
    assert (one.job_id, one.owner, one.asset_type, one.uri) == (
        job.id,
        "default",
        "image",
        "s3://bucket/1.png",
    )
    assert (one.storage_path, one.size_bytes, one.content_type, one.sha256, one.metadata) == (
        "bucket/1.png",
        9,
        "image/png",
        digest,
        {"frame": "1"},
    )

    assets, token = await client.list_assets(job.id)
    assert assets == [one, two, three] and token == ""
    assert [a async for a in client.iter_assets(job.id)] == [one, two, three]
    assert await client.get_asset(two.id) == two
    # The asset_added events carry the same assets.
    added = [e.asset async for e in client.iter_job_events(job.id) if e.kind is EventKind.ASSET_ADDED]
    assert added == [one, two, three]


async def test_list_assets_pages(client: Client) -> None:
    job = await client.create_job("demo")
    claim = await claim_only(client)
    added = [await client.add_asset(job.id, claim.lease_token, "log", f"s3://b/{i}.log") for i in range(3)]

    page, token = await client.list_assets(job.id, page_size=2)
    assert page == added[:2] and token
    page, token = await client.list_assets(job.id, page_size=2, page_token=token)
    assert page == added[2:] and token == ""
    # Bounded: with a page token that never advanced (as before ef34c47), iter_assets would never end.
    seen: list[Asset] = []
    async for asset in client.iter_assets(job.id, page_size=1):
        seen.append(asset)
        if len(seen) > len(added):
            break
    assert seen == added


async def test_get_lifecycle_publishes_the_tables(tmp_path: Path) -> None:
    lifecycles = Lifecycles.build((), {"report": "simple", "pipeline": "staged"})
    async with rpc.server(tmp_path, lifecycles=lifecycles) as srv, Client(srv.address) as client:
        standard = await client.get_lifecycle()
        assert isinstance(standard, Lifecycle)
        assert standard.name == "standard"
        assert standard.initial_status is JobStatus.QUEUED
        assert standard.terminal_statuses == TERMINAL
        assert set(standard.statuses) == TERMINAL | {JobStatus.CREATED, JobStatus.QUEUED, JobStatus.RUNNING}
        assert standard.allows(JobStatus.QUEUED, JobStatus.RUNNING)
        assert standard.allows(JobStatus.RUNNING, JobStatus.QUEUED)
        assert not standard.allows(JobStatus.QUEUED, JobStatus.COMPLETED)
        assert not standard.allows(JobStatus.COMPLETED, JobStatus.RUNNING)
        assert await client.get_lifecycle("anything.else") == standard

        simple = await client.get_lifecycle("report")
        assert simple.name == "simple"
        assert simple.transitions == {
            (JobStatus.QUEUED, JobStatus.RUNNING),
            (JobStatus.RUNNING, JobStatus.COMPLETED),
            (JobStatus.RUNNING, JobStatus.FAILED),
            (JobStatus.RUNNING, JobStatus.PARTIAL),
        }
        staged = await client.get_lifecycle("pipeline")
        assert staged.name == "staged"
        assert staged.allows(JobStatus.CREATED, JobStatus.COMPLETED)

        # The published table is the one the server enforces.
        job = await client.create_job("report")
        assert job.lifecycle == "simple"
        with pytest.raises(errors.InvalidTransition) as caught:
            await client.cancel_job(job.id)
        assert (caught.value.from_status, caught.value.to_status) == ("QUEUED", "CANCELLED")
        assert not simple.allows(JobStatus.QUEUED, JobStatus.CANCELLED)
        with pytest.raises(errors.InvalidArgument) as bad:
            await client.create_job("report", hold=True)
        assert [v.field for v in bad.value.field_violations] == ["hold"]


# --- typed errors ------------------------------------------------------------------------------------


async def test_not_found_is_typed(client: Client) -> None:
    job = await client.create_job("demo")
    calls: list[Call] = [
        lambda: client.get_job("no-such-job"),
        lambda: client.cancel_job("no-such-job"),
        lambda: client.release_job("no-such-job"),
        lambda: client.list_job_events("no-such-job"),
        lambda: client.list_assets("no-such-job"),
        lambda: client.get_asset("no-such-asset"),
    ]
    for call in calls:
        with pytest.raises(errors.NotFound) as caught:
            await call()
        assert caught.value.code == grpc.StatusCode.NOT_FOUND
        assert caught.value.reason == "NOT_FOUND"
        assert isinstance(caught.value.__cause__, grpc.aio.AioRpcError)
    with pytest.raises(errors.NotFound):
        await watch_all(client, "no-such-job")
    assert (await client.get_job(job.id)).status is JobStatus.QUEUED


async def test_invalid_transition_names_from_and_to_and_changes_nothing(client: Client) -> None:
    job = await client.create_job("demo")
    claim = await claim_only(client)
    done = await client.complete_job(job.id, claim.lease_token, {"ok": True})
    history = [e async for e in client.iter_job_events(job.id)]

    with pytest.raises(errors.InvalidTransition) as caught:
        await client.cancel_job(job.id, "too late")
    err = caught.value
    assert isinstance(err, errors.FailedPrecondition)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert err.reason == "INVALID_TRANSITION"
    assert (err.from_status, err.to_status) == ("COMPLETED", "CANCELLED")
    assert err.metadata["job_id"] == job.id
    assert await client.get_job(job.id) == done
    assert [e async for e in client.iter_job_events(job.id)] == history

    with pytest.raises(errors.InvalidTransition) as caught:
        await client.release_job(job.id)
    assert (caught.value.from_status, caught.value.to_status) == ("COMPLETED", "QUEUED")


async def test_stale_lease_is_lease_lost_and_changes_nothing(tmp_path: Path) -> None:
    no_backoff = RetryPolicy(initial_backoff_s=0.0, max_backoff_s=0.0)
    async with rpc.server(tmp_path, retry=no_backoff) as srv, Client(srv.address) as client:
        job = await client.create_job("demo", max_attempts=3)
        old = await claim_only(client)
        requeued = await client.fail_job(job.id, old.lease_token, "flaky", retryable=True)
        assert requeued.status is JobStatus.QUEUED
        new = await claim_only(client)
        assert new.job.attempt == 2 and new.lease_token != old.lease_token
        before = await client.get_job(job.id)

        calls: list[Call] = [
            lambda: client.report_progress(job.id, old.lease_token, 90),
            lambda: client.add_asset(job.id, old.lease_token, "image", "s3://late.png"),
            lambda: client.complete_job(job.id, old.lease_token, {"late": True}),
            lambda: client.fail_job(job.id, old.lease_token, "late"),
            lambda: client.complete_job(job.id, "not-a-token"),
        ]
        for call in calls:
            with pytest.raises(errors.LeaseLost) as caught:
                await call()
            assert isinstance(caught.value, errors.Aborted)
            assert caught.value.code == grpc.StatusCode.ABORTED
            assert not caught.value.retryable
        assert await client.get_job(job.id) == before
        assert await client.list_assets(job.id) == ([], "")

        done = await client.complete_job(job.id, new.lease_token, {"ok": True})
        assert done.status is JobStatus.COMPLETED and done.attempt == 2


async def test_reused_request_id_with_other_content_is_request_id_mismatch(client: Client) -> None:
    first = await client.create_job("demo", request_id="req-sdk-2")
    with pytest.raises(errors.RequestIdMismatch) as caught:
        await client.create_job("demo", priority=3, request_id="req-sdk-2")
    assert isinstance(caught.value, errors.AlreadyExists)
    assert caught.value.code == grpc.StatusCode.ALREADY_EXISTS
    jobs, _ = await client.list_jobs()
    assert [j.id for j in jobs] == [first.id]


async def test_progress_out_of_range_carries_the_field(client: Client) -> None:
    job = await client.create_job("demo")
    claim = await claim_only(client)
    before = await client.get_job(job.id)
    with pytest.raises(errors.ProgressOutOfRange) as caught:
        await client.report_progress(job.id, claim.lease_token, 101)
    err = caught.value
    assert isinstance(err, errors.InvalidArgument)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.reason == "PROGRESS_OUT_OF_RANGE"
    assert [v.field for v in err.field_violations] == ["progress.percent"]
    assert all(isinstance(v, errors.FieldViolation) and v.description for v in err.field_violations)

    with pytest.raises(errors.ProgressOutOfRange):
        await client.report_progress(job.id, claim.lease_token, 50, done=5, total=4)
    assert await client.get_job(job.id) == before


async def test_invalid_create_arguments_carry_field_violations(client: Client) -> None:
    with pytest.raises(errors.InvalidArgument) as caught:
        await client.create_job("has spaces")
    assert type(caught.value) is errors.InvalidArgument
    assert caught.value.reason == "INVALID_ARGUMENT"
    assert [v.field for v in caught.value.field_violations] == ["job_type"]

    with pytest.raises(errors.InvalidArgument) as caught:
        await client.create_job("demo", priority=5000)
    assert [v.field for v in caught.value.field_violations] == ["priority"]

    with pytest.raises(errors.TooLarge) as too_large:
        await client.create_job("x" * 129)
    assert [v.field for v in too_large.value.field_violations] == ["job_type"]
    assert (await client.list_jobs())[0] == []


TOKENS = {
    "token-full": ("alice", frozenset({Role.CLIENT, Role.WORKER})),
    "token-client": ("alice", frozenset({Role.CLIENT})),
    "token-worker": ("alice", frozenset({Role.WORKER})),
    "token-bob": ("bob", frozenset({Role.CLIENT, Role.WORKER})),
}


async def test_unauthenticated_and_permission_denied_are_typed(tmp_path: Path) -> None:
    async with rpc.server(tmp_path, principals_by_hash=rpc.principals(TOKENS)) as srv:
        address = srv.address
        for token in (None, "wrong-token"):
            async with Client(address, token=token) as anonymous:
                with pytest.raises(errors.Unauthenticated) as caught:
                    await anonymous.list_jobs()
                assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED
                with pytest.raises(errors.Unauthenticated):
                    await anonymous.claim_jobs("w1", ["demo"])

        async with (
            Client(address, token="token-client") as client_only,
            Client(address, token="token-worker") as worker_only,
            Client(address, token="token-full") as alice,
            Client(address, token="token-bob") as bob,
        ):
            with pytest.raises(errors.PermissionDenied) as denied:
                await client_only.claim_jobs("w1", ["demo"])
            assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(errors.PermissionDenied):
                await worker_only.create_job("demo")

            job = await client_only.create_job("demo")
            assert job.owner == "alice"
            # Another owner's job does not exist for bob.
            with pytest.raises(errors.NotFound):
                await bob.get_job(job.id)
            assert await bob.claim_jobs("w-bob", ["demo"]) == []
            claim = await claim_only(worker_only)
            assert claim.job.id == job.id
            assert (await alice.get_job(job.id)).status is JobStatus.RUNNING


async def test_a_jobs_own_retry_policy_is_sent_returned_and_used(tmp_path: Path) -> None:
    slow_default = RetryPolicy(initial_backoff_s=3600.0, max_backoff_s=3600.0)
    async with rpc.server(tmp_path, retry=slow_default) as srv, Client(srv.address) as client:
        quick = SdkRetryPolicy(initial_backoff=0.0, max_backoff=0.0)
        job = await client.create_job("demo", max_attempts=3, retry_policy=quick)
        assert job.retry_policy == SdkRetryPolicy(initial_backoff=0.0, max_backoff=0.0, multiplier=2.0)
        plain = await client.create_job("other")
        assert plain.retry_policy is None  # the server's default applies

        claim = await claim_only(client)
        requeued = await client.fail_job(job.id, claim.lease_token, "flaky", retryable=True)
        assert requeued.status is JobStatus.QUEUED
        again = await claim_only(client)  # claimable at once: the job's policy, not the hour-long default
        assert (again.job.id, again.job.attempt) == (job.id, 2)

        with pytest.raises(errors.InvalidArgument) as caught:
            await client.create_job("demo", retry_policy=SdkRetryPolicy(initial_backoff=5, max_backoff=1))
        assert caught.value.field_violations[0].field.startswith("retry_policy")
