"""The HTTP port's JSON API and event streams over a real aiohttp server on loopback, beside real gRPC:
the same tokens, roles and owner isolation as gRPC, clear 400s for bad input that change nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support import flows, rpc, web
from support.web import client, read_sse, refusal

from jobwarden_server import app

TOKENS = web.TOKENS


@pytest.fixture
async def srv(tmp_path: Path, backend: str) -> AsyncIterator[app.RunningServer]:
    async with rpc.server(
        tmp_path, backend=backend, principals_by_hash=rpc.principals(TOKENS), http_listen="127.0.0.1:0"
    ) as running:
        yield running


@pytest.fixture
def base(srv: app.RunningServer) -> str:
    assert srv.http is not None
    return srv.http.url.rstrip("/")


async def test_an_owner_sees_and_touches_only_its_own_jobs(base: str, srv: app.RunningServer) -> None:
    async with rpc.stubs(srv.address, "token-a") as a:
        job = await flows.create(a, "demo")
    async with client(base, "token-a") as alice, client(base, "token-b") as bob:
        assert [j["id"] for j in (await alice.get("/api/jobs")).json()["jobs"]] == [job.id]
        assert (await bob.get("/api/jobs")).json()["jobs"] == []
        assert (await bob.get(f"/api/jobs?q={job.id}")).json()["jobs"] == []
        assert (await bob.get("/api/jobs/count")).json()["count"] == 0
        missing = refusal(await bob.get("/api/jobs/00000000-0000-0000-0000-000000000000"), 404, "NOT_FOUND")
        theirs = refusal(await bob.get(f"/api/jobs/{job.id}"), 404, "NOT_FOUND")
        assert set(missing) == set(theirs)  # nothing tells another owner's job from a missing one
        refusal(await bob.post(f"/api/jobs/{job.id}/cancel", json={}), 404, "NOT_FOUND")
        refusal(await bob.get(f"/api/jobs/{job.id}/events"), 404, "NOT_FOUND")
        refusal(await bob.get(f"/api/jobs/{job.id}/stream"), 404, "NOT_FOUND")
        outcome = await bob.post("/api/jobs/cancel", json={"filter": {}})
        assert outcome.json() == {"matched": 0, "cancelled": 0, "refused": 0}
        assert (await alice.get(f"/api/jobs/{job.id}")).json()["status"] == "QUEUED"


async def test_bad_input_is_a_clear_400_and_changes_nothing(base: str, srv: app.RunningServer) -> None:
    async with rpc.stubs(srv.address, "token-a") as a:
        job = await flows.create(a, "demo")
    async with client(base, "token-a") as alice:
        error = refusal(await alice.get("/api/jobs?status=DONE"), 400, "INVALID_ARGUMENT")
        assert error["field"] == "status" and "DONE" in error["message"]
        assert (
            refusal(await alice.get("/api/jobs?created_after=yesterday"), 400, "INVALID_ARGUMENT")["field"]
            == "created_after"
        )
        refusal(await alice.get("/api/jobs?page_token=nonsense"), 400, "INVALID_PAGE_TOKEN")
        refusal(await alice.get("/api/jobs?page_size=-1"), 400, "INVALID_ARGUMENT")
        refusal(await alice.get("/api/queues?buckets=100000"), 400, "INVALID_ARGUMENT")
        refusal(
            await alice.post("/api/jobs/cancel", json={"filter": {"status": ["QUEUED", "nope"]}}),
            400,
            "INVALID_ARGUMENT",
        )
        refusal(
            await alice.post("/api/jobs/cancel", json={"filter": {"label": ["nolabel"]}}),
            400,
            "INVALID_ARGUMENT",
        )
        refusal(
            await alice.post(
                f"/api/jobs/{job.id}/cancel", content=b"{", headers={"Content-Type": "application/json"}
            ),
            400,
            "INVALID_ARGUMENT",
        )
        # A form post (what another site could make a browser send) is refused before anything runs.
        form = await alice.post(f"/api/jobs/{job.id}/cancel", data={"reason": "x"})
        assert refusal(form, 400, "INVALID_ARGUMENT")["field"] == "Content-Type"
        refusal(await alice.request("DELETE", f"/api/jobs/{job.id}", json={}), 409, "JOB_NOT_TERMINAL")
        refusal(await alice.get(f"/api/jobs/{job.id}/stream?after=x"), 400, "INVALID_ARGUMENT")
        assert (await alice.get(f"/api/jobs/{job.id}")).json()["status"] == "QUEUED"
        assert (await alice.get("/api/jobs/count")).json()["count"] == 1


async def test_cancel_retry_delete_and_bulk_cancel(base: str, srv: app.RunningServer) -> None:
    async with rpc.stubs(srv.address, "token-a") as a:
        one = await flows.create(a, "demo")
        others = [await flows.create(a, "other") for _ in range(3)]
        async with client(base, "token-a") as alice, client(base, "token-admin-a") as admin:
            cancelled = await alice.post(f"/api/jobs/{one.id}/cancel", json={"reason": "no longer needed"})
            assert cancelled.json()["status"] == "CANCELLED"
            assert (await flows.get(a, one.id)).status == 7  # JOB_STATUS_CANCELLED over gRPC
            refusal(await alice.post(f"/api/jobs/{one.id}/retry", json={}), 403, "PERMISSION_DENIED")
            rerun = await admin.post(f"/api/jobs/{one.id}/retry", json={})
            assert rerun.status_code == 200 and rerun.json()["retry_of"] == one.id
            assert (await alice.get("/api/jobs/count?type=other")).json() == {"count": 3, "at_least": False}
            outcome = await alice.post("/api/jobs/cancel", json={"filter": {"type": "other"}})
            assert outcome.json() == {"matched": 3, "cancelled": 3, "refused": 0}
            assert (await alice.get("/api/jobs/count?type=other&status=CANCELLED")).json()["count"] == 3
            assert (await alice.get(f"/api/jobs/{rerun.json()['id']}")).json()["status"] == "QUEUED"
            assert (await alice.request("DELETE", f"/api/jobs/{one.id}", json={})).status_code == 200
            refusal(await alice.get(f"/api/jobs/{one.id}"), 404, "NOT_FOUND")
        for job in others:
            assert (await flows.get(a, job.id)).status == 7


async def test_list_pages_by_keyset_and_filters(base: str, srv: app.RunningServer) -> None:
    async with rpc.stubs(srv.address, "token-a") as a:
        made = [await flows.create(a, "demo", labels={"n": str(i % 2)}) for i in range(5)]
    async with client(base, "token-a") as alice:
        first = (await alice.get("/api/jobs?page_size=2")).json()
        second = (await alice.get(f"/api/jobs?page_size=2&page_token={first['next_page_token']}")).json()
        newest_first = [j.id for j in reversed(made)]
        assert [j["id"] for j in first["jobs"] + second["jobs"]] == newest_first[:4]
        labelled = (await alice.get("/api/jobs?label=n=1")).json()["jobs"]
        assert {j["id"] for j in labelled} == {made[1].id, made[3].id}
        assert (await alice.get(f"/api/jobs?q={made[2].id}")).json()["jobs"][0]["id"] == made[2].id


async def test_a_job_stream_resumes_after_last_event_id(base: str, srv: app.RunningServer) -> None:
    async with rpc.stubs(srv.address, "token-a") as a, client(base, "token-a") as alice:
        job = await flows.create(a, "demo")
        claim = await flows.claim_one(a)
        await flows.progress(a, claim, 40, "reading")
        await flows.complete(a, claim)
        async with alice.stream("GET", f"/api/jobs/{job.id}/stream") as response:
            assert response.headers["content-type"] == "text/event-stream"
            whole = await read_sse(response, "end")
        assert whole[0][0] == "job"
        sequences = [int(i) for kind, i, _ in whole if kind == "event"]
        assert sequences == [1, 2, 3, 4]
        progress = [d for kind, _, d in whole if kind == "event" and d["kind"] == "progress"]
        assert progress[0]["data"]["percent"] == 40
        headers = {"Last-Event-ID": "2"}
        async with alice.stream("GET", f"/api/jobs/{job.id}/stream", headers=headers) as response:
            resumed = await read_sse(response, "end")
        assert [int(i) for kind, i, _ in resumed if kind == "event"] == [3, 4]


async def test_the_list_stream_pushes_new_and_changed_jobs_of_the_caller_only(
    base: str, srv: app.RunningServer
) -> None:
    async with (
        rpc.stubs(srv.address, "token-a") as a,
        rpc.stubs(srv.address, "token-b") as b,
        client(base, "token-a") as alice,
    ):
        async with alice.stream("GET", "/api/stream") as response:
            lines = response.aiter_lines()
            assert await anext(lines) == "retry: 2000"
            await flows.create(b, "demo")  # bob's: never on alice's stream
            job = await flows.create(a, "demo")
            pushed: list[dict[str, Any]] = []
            async for line in lines:
                if line.startswith("data: "):
                    pushed += json.loads(line[6:])
                    if any(j["id"] == job.id for j in pushed):
                        break
        assert {j["id"] for j in pushed} == {job.id}
        assert pushed[-1]["status"] == "QUEUED"


async def test_queue_stats(base: str, srv: app.RunningServer) -> None:
    async with rpc.stubs(srv.address, "token-a") as a:
        for _ in range(3):
            await flows.create(a, "demo")
        await flows.create(a, "other")
        await flows.complete(a, await flows.claim_one(a))
        await flows.fail(a, await flows.claim_one(a))
    async with client(base, "token-a") as alice, client(base, "token-b") as bob:
        found = (await alice.get("/api/queues?bucket_seconds=60&buckets=10")).json()
        demo = next(q for q in found["queues"] if q["job_type"] == "demo")
        assert (demo["waiting"], sum(demo["completed"]), sum(demo["failed"])) == (1, 1, 1)
        assert demo["success_rate"] == 0.5 and demo["p95_seconds"] is not None
        assert demo["depth"][-1] == 1 and len(demo["depth"]) == 10
        assert [q["job_type"] for q in found["queues"]] == ["demo", "other"]
        assert (await bob.get("/api/queues")).json()["queues"] == []
