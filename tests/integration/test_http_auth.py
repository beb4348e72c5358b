"""The HTTP port's authentication and life cycle, decided before any store is reached (so SQLite
only): 401 without a valid token, the login cookie, extra routes behind the same rules, and streams
that end when the server stops."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web as aiohttp_web
from support import flows, rpc
from support.web import TOKENS, client, refusal

from jobwarden_server import app, store
from jobwarden_server.api.auth import Authenticator
from jobwarden_server.events.bus import EventBus
from jobwarden_server.http import auth, server
from jobwarden_server.service import wiring
from jobwarden_server.settings import Settings


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


async def test_token_mode_needs_a_token_for_the_api_and_the_streams(base: str) -> None:
    async with client(base) as anonymous, client(base, "not-a-token") as wrong:
        for path in ("/api/jobs", "/api/jobs/count", "/api/queues", "/api/stream", "/api/session"):
            refusal(await anonymous.get(path), 401, "UNAUTHENTICATED")
            refusal(await wrong.get(path), 401, "UNAUTHENTICATED")
        refusal(await anonymous.post("/api/jobs/cancel", json={"filter": {}}), 401, "UNAUTHENTICATED")
        page = await anonymous.get("/")  # the page itself is public: its script shows the login form
        assert page.status_code == 200 and "jobwarden" in page.text


async def test_login_keeps_the_token_in_an_http_only_cookie(base: str, srv: app.RunningServer) -> None:
    async with client(base) as browser:
        refusal(await browser.post("/api/session", json={"token": "wrong"}), 401, "UNAUTHENTICATED")
        assert not browser.cookies
        response = await browser.post("/api/session", json={"token": "token-a"})
        assert response.status_code == 200 and response.json()["owner"] == "alice"
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert (await browser.get("/api/session")).json()["owner"] == "alice"
        assert (await browser.get("/api/jobs")).status_code == 200
        await browser.request("DELETE", "/api/session", json={})
        refusal(await browser.get("/api/jobs"), 401, "UNAUTHENTICATED")
    async with client(base) as browser:
        redirect = await browser.get("/?token=token-b", follow_redirects=False)
        assert redirect.status_code == 302 and redirect.headers["location"] == "/"
        assert (await browser.get("/api/session")).json()["owner"] == "bob"


async def test_an_extra_route_is_one_line_and_sits_behind_the_same_authentication(tmp_path: Path) -> None:
    """The hook another module (e.g. Prometheus's /metrics) uses: `extra_routes` of the builder."""

    async def metrics(request: aiohttp_web.Request) -> aiohttp_web.Response:
        return aiohttp_web.Response(text=f"owner {auth.principal(request).owner}\n")

    settings = Settings(http_listen="127.0.0.1:0", principals_by_hash=rpc.principals(TOKENS))
    await store.migrate(str(tmp_path / "x.db"))
    db = store.open_store(str(tmp_path / "x.db"))
    services = wiring.build(db, EventBus(), settings.lifecycles, settings.retry)
    authenticator = Authenticator(settings.principals_by_hash)
    http = await server.start(settings, services, authenticator, extra_routes=[("GET", "/metrics", metrics)])
    try:
        async with client(http.url.rstrip("/")) as anonymous, client(http.url.rstrip("/"), "token-b") as bob:
            refusal(await anonymous.get("/metrics"), 401, "UNAUTHENTICATED")
            answer = await bob.get("/metrics")
            assert (answer.status_code, answer.text) == (200, "owner bob\n")
    finally:
        await http.stop()
        await db.close()


async def test_stopping_the_server_ends_open_event_streams_at_once(tmp_path: Path) -> None:
    settings = Settings(listen="127.0.0.1:0", database=rpc.database_url(tmp_path), http_listen="127.0.0.1:0")
    srv = await app.start(settings)
    assert srv.http is not None
    base = srv.http.url.rstrip("/")
    async with rpc.stubs(srv.address) as s, client(base) as browser:
        job = await flows.create(s, "demo")
        async with (
            browser.stream("GET", "/api/stream") as listing,
            browser.stream("GET", f"/api/jobs/{job.id}/stream") as watching,
        ):
            listed, watched = listing.aiter_lines(), watching.aiter_lines()
            assert await anext(listed) == "retry: 2000"
            assert await anext(watched) == "retry: 2000"
            async with asyncio.timeout(5):  # well inside the grace period: nothing waits for them
                await srv.stop(grace=10.0)
                assert [line async for line in listed] == [""]
                rest = [line async for line in watched]
            assert "event: job" in rest and "event: end" not in rest  # cut, not ended: it reconnects


async def test_an_idle_stream_gets_heartbeats(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from jobwarden_server.http import events

    monkeypatch.setattr(events, "HEARTBEAT_S", 0.05)
    async with client(base, "token-a") as alice, alice.stream("GET", "/api/stream") as listing:
        lines = listing.aiter_lines()
        assert [await anext(lines) for _ in range(4)] == ["retry: 2000", "", ": heartbeat", ""]
