"""AdminService over real gRPC and a real database: who may call it, what a direct status change
does and records, reruns of ended jobs, and how far an admin reaches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from support import flows, rpc

from jobwarden.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    job_pb2,
    job_service_pb2,
    worker_service_pb2,
)
from jobwarden_server.domain.auth import Role

TOKENS = {
    "alice-client": ("alice", frozenset({Role.CLIENT})),
    "alice-worker": ("alice", frozenset({Role.WORKER})),
    "alice-app": ("alice", frozenset({Role.CLIENT, Role.WORKER})),
    "alice-ops": ("alice", frozenset({Role.ADMIN})),
    "bob-ops": ("bob", frozenset({Role.ADMIN})),
    "root": ("ops", frozenset({Role.GLOBAL_ADMIN})),
}
S = job_pb2.JobStatus


def _admin(s: rpc.Stubs) -> admin_service_pb2_grpc.AdminServiceStub:
    return admin_service_pb2_grpc.AdminServiceStub(s.channel)


async def set_status(
    s: rpc.Stubs, job_id: str, status: int, reason: str = "ops", **fields: Any
) -> job_pb2.Job:
    request = admin_service_pb2.SetJobStatusRequest(job_id=job_id, status=status, reason=reason, **fields)
    return (await _admin(s).SetJobStatus(request, metadata=s.metadata)).job


async def retry(s: rpc.Stubs, job_id: str, **fields: Any) -> job_pb2.Job:
    request = admin_service_pb2.RetryJobRequest(job_id=job_id, **fields)
    return (await _admin(s).RetryJob(request, metadata=s.metadata)).job


@pytest.fixture
async def address(tmp_path: Path, backend: str) -> AsyncIterator[str]:
    async with rpc.server(tmp_path, backend=backend, principals_by_hash=rpc.principals(TOKENS)) as srv:
        yield srv.address


@pytest.fixture
async def sqlite_address(tmp_path: Path) -> AsyncIterator[str]:
    """Refusals decided before the store is reached: one database is enough."""
    async with rpc.server(tmp_path, principals_by_hash=rpc.principals(TOKENS)) as srv:
        yield srv.address


@pytest.mark.parametrize("token", ["alice-client", "alice-worker", "alice-app"])
async def test_non_admins_are_refused_before_anything_else(sqlite_address: str, token: str) -> None:
    async with rpc.stubs(sqlite_address, "alice-app") as app, rpc.stubs(sqlite_address, token) as caller:
        job = await flows.create(app)
        calls = {
            # Malformed requests: refused for the role, never for their content (nor its size).
            "SetJobStatus, empty": _admin(caller).SetJobStatus(
                admin_service_pb2.SetJobStatusRequest(), metadata=caller.metadata
            ),
            "SetJobStatus, oversized": _admin(caller).SetJobStatus(
                admin_service_pb2.SetJobStatusRequest(reason="x" * 2_000_000), metadata=caller.metadata
            ),
            "RetryJob, empty": _admin(caller).RetryJob(
                admin_service_pb2.RetryJobRequest(), metadata=caller.metadata
            ),
            # Well-formed ones on a job of the caller's own owner.
            "SetJobStatus": _admin(caller).SetJobStatus(
                admin_service_pb2.SetJobStatusRequest(
                    job_id=job.id, status=S.JOB_STATUS_CANCELLED, reason="r", force=True
                ),
                metadata=caller.metadata,
            ),
            "SetJobStatus, dry run": _admin(caller).SetJobStatus(
                admin_service_pb2.SetJobStatusRequest(
                    job_id=job.id, status=S.JOB_STATUS_CANCELLED, reason="r", validate_only=True
                ),
                metadata=caller.metadata,
            ),
            "RetryJob": _admin(caller).RetryJob(
                admin_service_pb2.RetryJobRequest(job_id=job.id), metadata=caller.metadata
            ),
        }
        for what, call in calls.items():
            failure = await rpc.fails(call)
            assert (failure.code, failure.reason) == (
                grpc.StatusCode.PERMISSION_DENIED,
                "PERMISSION_DENIED",
            ), what
        after = await flows.get(app, job.id)
        assert (after.status, after.etag) == (S.JOB_STATUS_QUEUED, job.etag)
    async with rpc.stubs(sqlite_address) as anonymous:
        failure = await rpc.fails(_admin(anonymous).RetryJob(admin_service_pb2.RetryJobRequest()))
        assert failure.code == grpc.StatusCode.UNAUTHENTICATED


async def test_changes_are_audited_and_force_is_needed_outside_the_table(address: str) -> None:
    async with rpc.stubs(address, "alice-app") as app, rpc.stubs(address, "alice-ops") as ops:
        job = await flows.create(app)
        cancelled = await set_status(
            ops, job.id, S.JOB_STATUS_CANCELLED, "duplicate of another", request_id="a1"
        )
        assert cancelled.status == S.JOB_STATUS_CANCELLED and cancelled.HasField("complete_time")
        assert cancelled.stop_reason == job_pb2.STOP_REASON_USER_CANCELLED
        # A retry of the call is answered as the first was, and records nothing more.
        again = await set_status(ops, job.id, S.JOB_STATUS_CANCELLED, "duplicate of another", request_id="a1")
        assert (again.etag, again.last_sequence) == (cancelled.etag, cancelled.last_sequence)

        refused = await rpc.fails(set_status(ops, job.id, S.JOB_STATUS_QUEUED, "not a duplicate after all"))
        assert (refused.code, refused.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_TRANSITION")
        assert (refused.metadata["from"], refused.metadata["to"]) == ("CANCELLED", "QUEUED")
        assert (await flows.get(app, job.id)).etag == cancelled.etag

        reopened = await set_status(ops, job.id, S.JOB_STATUS_QUEUED, "not a duplicate after all", force=True)
        assert reopened.status == S.JOB_STATUS_QUEUED and not reopened.HasField("complete_time")
        assert reopened.stop_reason == job_pb2.STOP_REASON_UNSPECIFIED

        created, by_table, forced = await flows.events(app, job.id)
        assert created.actor == "client:alice"
        for event, reason, flags in (
            (by_table, "duplicate of another", (False, False)),
            (forced, "not a duplicate after all", (True, True)),
        ):
            assert event.actor == "admin:alice/alice-ops"
            assert event.transition.reason == reason
            assert (event.transition.forced, event.transition.bypassed_table) == flags

        # Queued again, it runs like any job.
        claim = await flows.claim_one(app)
        assert claim.job.id == job.id
        assert (await flows.complete(app, claim)).status == S.JOB_STATUS_COMPLETED


async def test_an_admin_failing_a_running_job_fences_its_worker(address: str) -> None:
    async with rpc.stubs(address, "alice-app") as app, rpc.stubs(address, "alice-ops") as ops:
        await flows.create(app)
        claim = await flows.claim_one(app)
        failed = await set_status(ops, claim.job.id, S.JOB_STATUS_FAILED, "the worker is wedged")
        assert failed.status == S.JOB_STATUS_FAILED and failed.HasField("complete_time")
        assert (failed.error.message, failed.error.reason) == ("the worker is wedged", "SET_BY_ADMIN")
        for call in (
            flows.progress(app, claim, 50),
            flows.complete(app, claim),
            app.workers.AddAsset(
                worker_service_pb2.AddAssetRequest(
                    job_id=claim.job.id, lease_token=claim.lease_token, asset=job_pb2.Asset(asset_type="log")
                ),
                metadata=app.metadata,
            ),
        ):
            failure = await rpc.fails(call)
            assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")
        after = await flows.get(app, claim.job.id)
        assert (after.status, after.etag) == (S.JOB_STATUS_FAILED, failed.etag)


async def test_running_is_not_a_target_and_a_reason_is_required(address: str) -> None:
    async with rpc.stubs(address, "alice-app") as app, rpc.stubs(address, "alice-ops") as ops:
        job = await flows.create(app)
        for status, reason, field in (
            (S.JOB_STATUS_RUNNING, "r", "status"),
            (S.JOB_STATUS_UNSPECIFIED, "r", "status"),
            (S.JOB_STATUS_CANCELLED, " ", "reason"),
        ):
            failure = await rpc.fails(set_status(ops, job.id, status, reason, force=True))
            assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])


async def test_retry_runs_an_ended_job_again_as_a_new_linked_job(address: str) -> None:
    async with rpc.stubs(address, "alice-app") as app, rpc.stubs(address, "alice-ops") as ops:
        policy = job_pb2.RetryPolicy(multiplier=3)
        policy.initial_backoff.seconds = 2
        job = await flows.create(
            app,
            parameters=flows.struct(n=3, name="x"),
            labels={"team": "a"},
            priority=7,
            max_attempts=4,
            retry_policy=policy,
        )
        refused = await rpc.fails(retry(ops, job.id))
        assert (refused.code, refused.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "JOB_NOT_TERMINAL")

        old = await flows.fail(app, await flows.claim_one(app), "bad input")
        assert old.status == S.JOB_STATUS_FAILED
        new = await retry(ops, job.id, request_id="rerun-1")
        assert new.id != old.id and new.retry_of == old.id and new.owner == "alice"
        assert new.status == S.JOB_STATUS_QUEUED and new.attempt == 0
        for field in (
            "job_type",
            "lifecycle",
            "parameters",
            "labels",
            "priority",
            "max_attempts",
            "retry_policy",
        ):
            assert getattr(new, field) == getattr(old, field), field
        assert (await flows.events(app, new.id))[0].actor == "admin:alice/alice-ops"
        # The old job is left exactly as it was.
        assert await flows.get(app, old.id) == old
        # Idempotent: the same request_id answers the same new job, and creates no other.
        assert (await retry(ops, job.id, request_id="rerun-1")).id == new.id
        listed = await app.jobs.ListJobs(job_service_pb2.ListJobsRequest(), metadata=app.metadata)
        assert sorted(j.id for j in listed.jobs) == sorted([old.id, new.id])


async def test_admins_reach_their_own_owner_only_unless_global(address: str) -> None:
    async with (
        rpc.stubs(address, "alice-app") as app,
        rpc.stubs(address, "bob-ops") as bob,
        rpc.stubs(address, "root") as root,
    ):
        await flows.create(app)
        ended = await flows.get(app, (await flows.complete(app, await flows.claim_one(app))).id)
        queued = await flows.create(app)
        for call in (
            set_status(bob, queued.id, S.JOB_STATUS_CANCELLED, force=True),
            set_status(bob, queued.id, S.JOB_STATUS_CANCELLED, validate_only=True),
            retry(bob, ended.id),
            retry(bob, ended.id, validate_only=True),
        ):
            failure = await rpc.fails(call)
            assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
        assert (await flows.get(app, queued.id)).etag == queued.etag

        cancelled = await set_status(root, queued.id, S.JOB_STATUS_CANCELLED, "cleanup")
        assert cancelled.owner == "alice" and cancelled.status == S.JOB_STATUS_CANCELLED
        assert (await flows.events(app, queued.id))[-1].actor == "admin:ops/root"
        rerun = await retry(root, ended.id)
        assert (rerun.owner, rerun.retry_of) == ("alice", ended.id)
        assert (await flows.get(app, rerun.id)).id == rerun.id  # alice's job, listed as hers
        missing = await rpc.fails(set_status(root, "no-such-job", S.JOB_STATUS_CANCELLED))
        assert missing.code == grpc.StatusCode.NOT_FOUND


async def test_a_watch_of_a_reopened_job_follows_it_past_its_first_end(address: str) -> None:
    async with rpc.stubs(address, "alice-app") as app, rpc.stubs(address, "alice-ops") as ops:
        job = await flows.create(app)
        await set_status(ops, job.id, S.JOB_STATUS_CANCELLED, "by mistake")
        await set_status(ops, job.id, S.JOB_STATUS_QUEUED, "undo", force=True)
        watch = flows.start_watch(app, job.id)
        claim = await flows.claim_one(app)
        await flows.complete(app, claim)
        snapshot, events = await watch
        assert snapshot.status in (S.JOB_STATUS_QUEUED, S.JOB_STATUS_RUNNING, S.JOB_STATUS_COMPLETED)
        assert flows.kinds(events) == [
            "created",
            "QUEUED->CANCELLED",
            "CANCELLED->QUEUED",
            "QUEUED->RUNNING",
            "RUNNING->COMPLETED",
        ]
        # Watched once it ended for good, the history ends with its last end.
        _, again = await flows.watch(app, job.id)
        assert flows.kinds(again) == flows.kinds(events)
