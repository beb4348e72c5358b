"""Owner isolation and role matrix: every RPC, as owner A, against owner B's jobs, assets, leases,
request ids and page tokens; and every RPC with each role missing (reference battery B.8, I8).

A's answer about B's resource must be the answer about a resource that does not exist (same code,
same ErrorInfo reason, same message once the id A sent is masked). List, claim and watch never show
B's data, no answer carries any of B's ids that A did not send itself, and B's jobs end exactly as
they were. Roles gate the two services before anything else is looked at: a token without the role
gets PERMISSION_DENIED however malformed its request, an unknown token UNAUTHENTICATED.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import message
from support import anyrpc, faultproc, flows, history
from support.rpc import Stubs

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2

J, W = job_service_pb2, worker_service_pb2
TOKENS = {
    "tok-a": ("alice", ["client", "worker"]),
    "tok-a-admin": ("alice", ["admin"]),
    "tok-b": ("bob", ["client", "worker"]),
    "tok-a-client": ("alice", ["client"]),
    "tok-a-worker": ("alice", ["worker"]),
    "tok-a-none": ("alice", []),
}
MISSING_JOB, MISSING_ASSET = "00000000-0000-4000-8000-000000000000", "00000000-0000-4000-8000-00000000000a"
B_TYPE = "b.secret-type"


@dataclasses.dataclass(frozen=True)
class Bob:
    """B's resources, and every id of B's that must never reach A."""

    held: str
    queued: str
    running: str
    lease: str
    asset: str
    done: str
    etag: str
    request_id: str
    running_request_id: str
    jobs_page_token: str
    events_page_token: str

    def secrets(self) -> set[str]:
        """Ids of B that A learns only by being told them (here: by the test)."""
        return {
            self.held,
            self.queued,
            self.running,
            self.lease,
            self.asset,
            self.done,
            self.request_id,
            self.running_request_id,
        }


def _config(tmp_path: Path) -> Path:
    tokens = [
        {"sha256": hashlib.sha256(token.encode()).hexdigest(), "owner": owner, "roles": roles, "name": token}
        for token, (owner, roles) in TOKENS.items()
    ]
    return faultproc.write_config(
        tmp_path / "server.toml",
        settings={"reaper_interval_seconds": 5, "cancel_grace_seconds": 600},
        tokens=tokens,
    )


async def _bob(s: Stubs) -> Bob:
    rid = "bob-request-0001"
    done = await flows.create(s, B_TYPE, labels={"team": "bob"}, request_id=rid)
    claim = await flows.claim_one(s, B_TYPE)
    await flows.add_asset(s, claim, "s3://bob/done.bin")
    await flows.complete(s, claim)
    running = await flows.create(s, B_TYPE, labels={"team": "bob"}, request_id=rid + "-running")
    lease = await flows.claim_one(s, B_TYPE)
    asset = await flows.add_asset(s, lease, "s3://bob/partial.bin")
    await flows.progress(s, lease, 40, "bob is working")
    queued = await flows.create(s, B_TYPE, labels={"team": "bob"})
    held = await flows.create(s, B_TYPE, hold=True)
    jobs = await s.jobs.ListJobs(J.ListJobsRequest(page_size=1), metadata=s.metadata)
    events = await s.jobs.ListJobEvents(
        J.ListJobEventsRequest(job_id=running.id, page_size=1), metadata=s.metadata
    )
    return Bob(
        held=held.id,
        queued=queued.id,
        running=running.id,
        lease=lease.lease_token,
        asset=asset.id,
        done=done.id,
        etag=(await flows.get(s, queued.id)).etag,
        request_id=rid,
        running_request_id=rid + "-running",
        jobs_page_token=jobs.next_page_token,
        events_page_token=events.next_page_token,
    )


async def _bob_state(s: Stubs) -> list[bytes]:
    out = []
    for job in await history.all_jobs(s):
        out.append(job.SerializeToString())
        out += [e.SerializeToString() for e in await history.all_events(s, job.id)]
        reply = await s.jobs.ListAssets(J.ListAssetsRequest(job_id=job.id), metadata=s.metadata)
        out += [a.SerializeToString() for a in reply.assets]
    return out


Target = Callable[[str, str, Bob], message.Message]
"""Builds a request about job `j` / asset `a` (B's, or missing ones), given B's other secrets."""

# For each RPC: how to ask about a job (or asset) by id. Each is sent once with B's ids and once with
# ids that exist nowhere; the two answers must be indistinguishable.
ABOUT: dict[str, list[tuple[str, Target]]] = {
    "GetJob": [("job", lambda j, a, b: J.GetJobRequest(job_id=j))],
    "CancelJob": [
        ("job", lambda j, a, b: J.CancelJobRequest(job_id=j, reason="not yours")),
        ("job+etag", lambda j, a, b: J.CancelJobRequest(job_id=j, etag=b.etag)),
    ],
    "ReleaseJob": [("job", lambda j, a, b: J.ReleaseJobRequest(job_id=j))],
    "DeleteJob": [("job", lambda j, a, b: J.DeleteJobRequest(job_id=j, request_id="not yours"))],
    "WatchJob": [("job", lambda j, a, b: J.WatchJobRequest(job_id=j))],
    "ListJobEvents": [
        ("job", lambda j, a, b: J.ListJobEventsRequest(job_id=j)),
        (
            "job+B's page token",
            lambda j, a, b: J.ListJobEventsRequest(job_id=j, page_token=b.events_page_token),
        ),
    ],
    "ListAssets": [("job", lambda j, a, b: J.ListAssetsRequest(job_id=j))],
    "GetAsset": [("asset", lambda j, a, b: J.GetAssetRequest(asset_id=a))],
    "ReportProgress": [
        (
            "job+B's lease",
            lambda j, a, b: W.ReportProgressRequest(
                job_id=j, lease_token=b.lease, progress=job_pb2.Progress(percent=99)
            ),
        )
    ],
    "AddAsset": [
        (
            "job+B's lease",
            lambda j, a, b: W.AddAssetRequest(
                job_id=j, lease_token=b.lease, asset=job_pb2.Asset(asset_type="x", uri="s3://a/stolen")
            ),
        )
    ],
    "AddMessages": [
        (
            "job+B's lease",
            lambda j, a, b: W.AddMessagesRequest(
                job_id=j, lease_token=b.lease, messages=[job_pb2.JobLog(message="stolen")]
            ),
        )
    ],
    "CompleteJob": [
        ("job+B's lease", lambda j, a, b: W.CompleteJobRequest(job_id=j, lease_token=b.lease)),
    ],
    "FailJob": [
        (
            "job+B's lease",
            lambda j, a, b: W.FailJobRequest(
                job_id=j, lease_token=b.lease, error=job_pb2.JobError(message="x")
            ),
        )
    ],
}
# RPCs that name no job of anyone's: checked by what they return instead.
NOT_ABOUT_A_JOB = {
    "CreateJob",
    "CreateJobs",
    "CreateBatch",
    "ListJobs",
    "GetLifecycle",
    "ClaimJobs",
    "GetJobStats",
}
# The Work session: its steps are the worker calls above, each checked through the session too.
SESSION_STEPS = {
    "progress": "ReportProgress",
    "asset": "AddAsset",
    "messages": "AddMessages",
    "complete": "CompleteJob",
    "fail": "FailJob",
}


def _mask(answer: anyrpc.Answer, ids: list[str]) -> tuple[str, str, str, dict[str, str]]:
    def masked(text: str) -> str:
        for i in ids:
            text = text.replace(i, "<id>")
        return text

    return (
        answer.code,
        answer.reason,
        masked(answer.message),
        {k: masked(v) for k, v in answer.metadata.items()},
    )


def _leaks(answer: anyrpc.Answer, sent: message.Message, secrets: set[str]) -> set[str]:
    """B's ids in the answer that A did not put in its request."""
    request = sent.SerializeToString()
    text = answer.text()
    return {s for s in secrets if s in text and s.encode() not in request}


Metadata = tuple[tuple[str, str], ...]


async def _by_id(a: Stubs, md: Metadata, bob: Bob, cells: dict[str, Any]) -> list[str]:
    """Every RPC that names a job or asset, about each of B's (in every state) and about missing ones."""
    wrong = []
    for name, targets in ABOUT.items():
        rpc = anyrpc.BY_NAME[name]
        for label, build in targets:
            for job_id in (bob.running, bob.queued, bob.held, bob.done):
                theirs_req = build(job_id, bob.asset, bob)
                theirs = await anyrpc.call(a.channel, rpc, theirs_req, metadata=md)
                missing = await anyrpc.call(
                    a.channel, rpc, build(MISSING_JOB, MISSING_ASSET, bob), metadata=md
                )
                key = f"{name}:{label}"
                cells[key] = f"{theirs.code}/{theirs.reason}"
                cells["compared"] = cells.get("compared", 0) + 1
                ids = [job_id, bob.asset, MISSING_JOB, MISSING_ASSET]
                if _mask(theirs, ids) != _mask(missing, ids):
                    wrong.append(f"{key}: B's {_mask(theirs, ids)} vs missing {_mask(missing, ids)}")
                expected = ("INVALID_PAGE_TOKEN",) if "page token" in label else ("NOT_FOUND",)
                if not theirs.from_jobwarden or theirs.reason not in expected:
                    wrong.append(f"{key}: {theirs.code}/{theirs.reason}, not {expected}")
                if leaked := _leaks(theirs, theirs_req, bob.secrets()):
                    wrong.append(f"{key}: leaked {leaked}")
    return wrong


async def _by_session(a: Stubs, md: Metadata, bob: Bob, cells: dict[str, Any]) -> list[str]:
    """A Work session asking for B's job type gets none of B's jobs, and each step about B's job (in
    every state) is acked exactly as one about a missing job."""
    wrong = []
    rpc = anyrpc.BY_NAME["Work"]
    start = W.WorkStart(worker_id="thief", job_types=[B_TYPE])
    for job_id in (bob.running, bob.queued, bob.held, bob.done):
        acks: dict[str, list[anyrpc.Answer]] = {}
        for which, target in (("theirs", job_id), ("missing", MISSING_JOB)):
            steps = [
                W.WorkStep(step_id=kind, **{kind: ABOUT[unary][0][1](target, MISSING_ASSET, bob)})
                for kind, unary in SESSION_STEPS.items()
            ]
            request = W.WorkRequest(start=start, credits=10, steps=steps)
            got = await anyrpc.call(a.channel, rpc, request, metadata=md)
            claimed = [c.job for reply in got.replies for c in reply.claims]  # A's own jobs of that type only
            if not got.ok or any(j.owner != "alice" or j.id in bob.secrets() for j in claimed):
                wrong.append(f"Work: {got.code}/{got.reason}, claimed {[(j.owner, j.id) for j in claimed]}")
            if leaked := _leaks(got, request, bob.secrets()):
                wrong.append(f"Work: leaked {leaked}")
            acks[which] = [anyrpc.ack_answer(ack) for reply in got.replies for ack in reply.acks]
        ids = [job_id, MISSING_JOB]
        for kind, theirs, missing in zip(SESSION_STEPS, acks["theirs"], acks["missing"], strict=True):
            cells[f"Work:{kind} step"] = f"{theirs.code}/{theirs.reason}"
            cells["compared"] = cells.get("compared", 0) + 1
            if _mask(theirs, ids) != _mask(missing, ids) or theirs.reason != "NOT_FOUND":
                wrong.append(f"Work:{kind}: B's {_mask(theirs, ids)} vs missing {_mask(missing, ids)}")
    return wrong


def _only_alices(answer: anyrpc.Answer, sent: message.Message, bob: Bob) -> list[str]:
    if not answer.ok:
        return [f"{answer.code}/{answer.reason}"]
    reply = answer.replies[0]
    jobs = list(getattr(reply, "jobs", ())) + [c.job for c in getattr(reply, "claims", ())]
    wrong = [f"{j.owner}'s job {j.id}" for j in jobs if j.owner != "alice" or j.id in bob.secrets()]
    if leaked := _leaks(answer, sent, bob.secrets()):
        wrong.append(f"leaked {leaked}")
    return wrong


async def _by_query(a: Stubs, md: Metadata, bob: Bob, mine: str, cells: dict[str, Any]) -> list[str]:
    """The RPCs that name no job: what they return is A's alone, whatever A asks for."""
    wrong = []
    queries: list[tuple[str, str, message.Message]] = [
        ("ListJobs", "everything", J.ListJobsRequest()),
        ("ListJobs", "B's label", J.ListJobsRequest(labels={"team": "bob"})),
        ("ListJobs", "B's job type", J.ListJobsRequest(job_types=[B_TYPE])),
        ("ListJobs", "B's job as a parent", J.ListJobsRequest(parent_id=bob.queued)),
        ("ClaimJobs", "B's job type", W.ClaimJobsRequest(worker_id="thief", job_types=[B_TYPE], max_jobs=10)),
        ("GetLifecycle", "B's job type", J.GetLifecycleRequest(job_type=B_TYPE)),
        ("WatchJob", "A's own job", J.WatchJobRequest(job_id=mine)),
        ("GetJobStats", "B's job type", J.GetJobStatsRequest(job_types=[B_TYPE])),
    ]
    for name, label, request in queries:
        got = await anyrpc.call(a.channel, anyrpc.BY_NAME[name], request, metadata=md, max_replies=1)
        cells[f"{name}:{label}"] = got.code
        wrong += [f"{name} {request}: {w}" for w in _only_alices(got, request, bob)]
    # Statistics count A's jobs only: of B's type, exactly A's own jobs of it (the jobs A lists); and
    # every owner's figures need an admin-global token.
    stats = await anyrpc.call(
        a.channel, anyrpc.BY_NAME["GetJobStats"], J.GetJobStatsRequest(job_types=[B_TYPE]), metadata=md
    )
    own = J.ListJobsRequest(job_types=[B_TYPE], page_size=500)
    listed = await anyrpc.call(a.channel, anyrpc.BY_NAME["ListJobs"], own, metadata=md)
    mine_of_b = [j.status for j in listed.replies[0].jobs] if listed.ok else []
    expected = (
        len(mine_of_b),
        mine_of_b.count(job_pb2.JOB_STATUS_QUEUED),
        mine_of_b.count(job_pb2.JOB_STATUS_RUNNING),
    )
    [figures] = stats.replies[0].job_types if stats.ok else [None]
    if figures is None or (figures.counts.total, figures.queue_depth, figures.running) != expected:
        wrong.append(f"GetJobStats of B's type: {stats.code} {figures} (A's own: {expected})")
    everyone = await anyrpc.call(
        a.channel, anyrpc.BY_NAME["GetJobStats"], J.GetJobStatsRequest(all_owners=True), metadata=md
    )
    cells["GetJobStats:every owner's"] = f"{everyone.code}/{everyone.reason}"
    if (everyone.code, everyone.reason) != ("PERMISSION_DENIED", "PERMISSION_DENIED"):
        wrong.append(f"GetJobStats of every owner: {everyone.code}/{everyone.reason}")
    stolen_page = J.ListJobsRequest(page_size=1, page_token=bob.jobs_page_token)
    got = await anyrpc.call(a.channel, anyrpc.BY_NAME["ListJobs"], stolen_page, metadata=md)
    cells["ListJobs:B's page token"] = f"{got.code}/{got.reason}"
    if (got.code, got.reason) != ("INVALID_ARGUMENT", "INVALID_PAGE_TOKEN") or _leaks(
        got, stolen_page, bob.secrets()
    ):
        wrong.append(f"B's page token gave {got.code}/{got.reason} {got.text()[:200]}")
    # B's request id, with B's very request: A gets a job of its own, never B's stored answer.
    create = J.CreateJobRequest(job_type=B_TYPE, labels={"team": "bob"}, request_id=bob.request_id)
    got = await anyrpc.call(a.channel, anyrpc.BY_NAME["CreateJob"], create, metadata=md)
    cells["CreateJob:B's request id"] = got.code
    wrong += [f"CreateJob with B's request id: {w}" for w in _only_alices(got, create, bob)]
    wrong += await _batch_with_bobs_request_ids(a, md, bob, create, cells)
    # A batch under B's request id, which A has just used too: refused naming A's own job, never B's.
    batch = J.CreateBatchRequest(job_type=B_TYPE, children=[create], request_id=bob.request_id)
    batch.children[0].ClearField("request_id")
    got = await anyrpc.call(a.channel, anyrpc.BY_NAME["CreateBatch"], batch, metadata=md)
    cells["CreateBatch:B's request id"] = f"{got.code}/{got.reason}"
    if (got.code, got.reason) != ("ALREADY_EXISTS", "REQUEST_ID_MISMATCH") or got.metadata.get(
        "job_id"
    ) in bob.secrets() | {""}:
        wrong.append(f"CreateBatch with B's request id: {got.code}/{got.reason} {got.metadata}")
    if leaked := _leaks(got, batch, bob.secrets()):
        wrong.append(f"CreateBatch with B's request id: leaked {leaked}")
    return wrong


async def _batch_with_bobs_request_ids(
    a: Stubs, md: Metadata, bob: Bob, create: message.Message, cells: dict[str, Any]
) -> list[str]:
    """CreateJobs with B's request ids, B's very requests among them: every item is answered from A's
    jobs alone (a new job, a replay of A's own, or a mismatch naming A's own), never from B's."""
    running = J.CreateJobRequest(job_type=B_TYPE, labels={"team": "bob"}, request_id=bob.running_request_id)
    changed = J.CreateJobRequest(job_type=B_TYPE, priority=7, request_id=bob.running_request_id)
    batch = J.CreateJobsRequest(requests=[running, changed, create])
    got = await anyrpc.call(a.channel, anyrpc.BY_NAME["CreateJobs"], batch, metadata=md)
    cells["CreateJobs:B's request ids"] = got.code
    if not got.ok:
        return [f"CreateJobs with B's request ids: {got.code}/{got.reason}"]
    new, mismatch, replay = got.replies[0].results
    wrong = []
    jobs = [r.job for r in (new, replay) if r.HasField("job")]
    if len(jobs) != 2 or any(j.owner != "alice" or j.id in bob.secrets() for j in jobs):
        wrong.append(f"CreateJobs with B's request ids: jobs {jobs}")
    refusal = anyrpc.status_answer(mismatch.error) if mismatch.HasField("error") else None
    if (
        refusal is None
        or refusal.reason != "REQUEST_ID_MISMATCH"
        or refusal.metadata.get("job_id") != new.job.id
    ):
        wrong.append(f"CreateJobs with B's request id and other content: {mismatch}")
    if leaked := _leaks(got, batch, bob.secrets()):
        wrong.append(f"CreateJobs with B's request ids: leaked {leaked}")
    return wrong


@pytest.mark.timeout(90)
async def test_owner_a_cannot_tell_owner_bs_resources_from_missing_ones(tmp_path: Path) -> None:
    assert set(ABOUT) | NOT_ABOUT_A_JOB | {"Work"} == {rpc.name for rpc in anyrpc.RPCS}, "an RPC is missing"
    server = faultproc.ServerProcess(tmp_path, _config(tmp_path))
    cells: dict[str, Any] = {}
    wrong: list[str] = []
    compared = 0
    with faultproc.cleanup(server):
        await server.start()
        async with (
            faultproc.stubs(server.address, "tok-b") as b,
            faultproc.stubs(server.address, "tok-a") as a,
        ):
            bob = await _bob(b)
            before = await _bob_state(b)
            mine = await flows.create(a, "a.type")  # A has jobs of its own
            for token in ("tok-a", "tok-a-admin"):  # an admin is still scoped to its owner
                md = (("authorization", f"Bearer {token}"),)
                seen: dict[str, Any] = {}
                wrong += [f"{token}: {w}" for w in await _by_id(a, md, bob, seen)]
                wrong += [f"{token}: {w}" for w in await _by_query(a, md, bob, mine.id, seen)]
                wrong += [f"{token}: {w}" for w in await _by_session(a, md, bob, seen)]
                compared += seen.pop("compared")
                cells.update({f"{token}:{k}": v for k, v in seen.items()})
            after = await _bob_state(b)
    history.report(
        "isolation_owner_matrix",
        {
            "b_resource_vs_missing_comparisons": compared,
            "cells": len(cells),
            "violations": len(wrong),
            "matrix": dict(sorted(cells.items())),
        },
        tmp_path,
    )
    assert wrong == [], wrong[:10]
    assert after == before, "something A did changed B's jobs"


ROLE_OF_SERVICE = {"jobwarden.v1.JobService": "client", "jobwarden.v1.WorkerService": "worker"}


@pytest.mark.timeout(60)
async def test_every_rpc_without_its_role_is_denied_before_anything_else(tmp_path: Path) -> None:
    server = faultproc.ServerProcess(tmp_path, _config(tmp_path))
    matrix: dict[str, str] = {}
    wrong: list[str] = []
    with faultproc.cleanup(server):
        await server.start()
        async with faultproc.stubs(server.address, "tok-b") as b:
            bob = await _bob(b)
            before = await _bob_state(b)
            for token in ("tok-a-client", "tok-a-worker", "tok-a-none", "unknown-token", ""):
                md = (("authorization", f"Bearer {token}"),) if token else ()
                roles = TOKENS.get(token, ("", []))[1]
                for rpc in anyrpc.RPCS:
                    needs = ROLE_OF_SERVICE[rpc.service]
                    if needs in roles:
                        continue
                    # Denied before validation (AIP-211): an empty request, and one naming B's job.
                    for label, request in (("empty", rpc.request_type()), ("B's job", _about_bob(rpc, bob))):
                        got = await anyrpc.call(b.channel, rpc, request, metadata=md)
                        want = (
                            ("UNAUTHENTICATED", "UNAUTHENTICATED")
                            if token not in TOKENS
                            else (
                                "PERMISSION_DENIED",
                                "PERMISSION_DENIED",
                            )
                        )
                        matrix[f"{token or 'anonymous'}:{rpc}:{label}"] = f"{got.code}/{got.reason}"
                        if (got.code, got.reason) != want or not got.from_jobwarden:
                            wrong.append(f"{token}:{rpc}:{label}: {got.code}/{got.reason}")
                        if _leaks(got, request, bob.secrets()):
                            wrong.append(f"{token}:{rpc}:{label}: leaked ids")
            after = await _bob_state(b)
    history.report(
        "isolation_role_matrix",
        {"cells": len(matrix), "violations": len(wrong), "codes": sorted(set(matrix.values()))},
        tmp_path,
    )
    assert wrong == [], wrong[:10]
    services = [rpc.service for rpc in anyrpc.RPCS]
    denied = services.count("jobwarden.v1.WorkerService") + services.count("jobwarden.v1.JobService")
    denied += 3 * len(services)  # no role, unknown token, no token: every RPC
    assert len(matrix) == 2 * denied
    assert after == before


def _about_bob(rpc: anyrpc.Rpc, bob: Bob) -> message.Message:
    targets = ABOUT.get(rpc.name)
    if targets is None:
        return rpc.request_type()
    return targets[0][1](bob.running, bob.asset, bob)
