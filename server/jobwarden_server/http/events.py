"""Live updates as server-sent events (SSE), fed by the change stream the gRPC watchers use.

Why SSE: the updates go one way (server to browser); it is plain HTTP (no upgrade, passes proxies,
HTTP/2 multiplexes it); and the browser's EventSource reconnects by itself, sending the `id` of the
last message it got as `Last-Event-ID`, so a job's stream resumes from the last sequence it showed:
gap-free, exactly like WatchJob's after_sequence. WebSockets would add a second protocol for nothing.

- `GET /api/jobs/{id}/stream`: WatchService.watch (service/watch.py): `job` (the snapshot), then one
  `event` per job event with `id: <sequence>`, then `end` once the job's history ends. A watcher cut
  off as too slow, or a server shutting down, just ends the response: the browser comes back with
  Last-Event-ID and resumes (on another replica, or after the restart).
- `GET /api/stream`: LiveFeed.follow (service/live.py): `jobs`, the caller's changed jobs' latest
  rows, for the list; `resync` when some were missed (the list reloads its page).

Neither makes the server query the database per browser: the watch reads its job once and then gets
the bus's events from memory; the feed is one shared reader per process. Each stream holds one of the
owner's stream slots (max_streams_per_owner), shared with gRPC watches. A comment line every
HEARTBEAT_S keeps idle connections open through proxies and notices browsers that went away.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from jobwarden_server.domain import errors
from jobwarden_server.domain.auth import Role
from jobwarden_server.domain.records import Job
from jobwarden_server.http import api, auth, shapes
from jobwarden_server.service import live

HEARTBEAT_S = 15.0
RECONNECT_MS = 2000


def routes() -> list[tuple[str, str, auth.Handler]]:
    """The streams' (method, path, handler) routes."""
    return [("GET", "/api/stream", job_list_stream), ("GET", "/api/jobs/{job_id}/stream", job_stream)]


def _message(kind: str, data: Any, event_id: int | None = None) -> bytes:
    lines = [f"event: {kind}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return ("\n".join(lines) + "\n\n").encode()


async def _open(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # nginx: pass events on at once
        }
    )
    await response.prepare(request)
    await response.write(f"retry: {RECONNECT_MS}\n\n".encode())
    return response


async def _relay(response: web.StreamResponse, items: AsyncIterator[bytes]) -> None:
    """Write each message as it comes, a heartbeat when none came for HEARTBEAT_S; end quietly when
    the browser left or the server is stopping (the browser reconnects)."""
    iterator = aiter(items)
    next_item: asyncio.Future[bytes] | None = None
    try:
        while True:
            if next_item is None:
                next_item = asyncio.ensure_future(anext(iterator))
            done, _ = await asyncio.wait({next_item}, timeout=HEARTBEAT_S)
            if not done:
                await response.write(b": heartbeat\n\n")
                continue
            finished, next_item = next_item, None
            try:
                data = finished.result()
            except StopAsyncIteration:
                return
            await response.write(data)
    except (errors.ShuttingDown, errors.WatcherTooSlow, ConnectionResetError):
        return
    finally:
        if next_item is not None:
            next_item.cancel()
            with contextlib.suppress(BaseException):
                await next_item
        await _close(iterator)


async def _close(items: AsyncIterator[Any]) -> None:
    """End an async generator now (its `finally` blocks release the slot and the subscription)."""
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()


def _after(request: web.Request) -> int:
    text = request.headers.get("Last-Event-ID") or request.query.get("after") or "0"
    try:
        return int(text)
    except ValueError:
        raise errors.InvalidArgument("after", "must be a whole number (a job event sequence)") from None


async def job_stream(request: web.Request) -> web.StreamResponse:
    """One job's snapshot and events after Last-Event-ID (or ?after=), live, until its history ends."""
    who = auth.require(request, Role.CLIENT)
    watch = request.app[api.SERVICES].watch.watch(who, request.match_info["job_id"], _after(request))
    first = await anext(watch)  # NotFound, a bad cursor, no free slot: a JSON error, not a stream
    assert isinstance(first, Job)

    async def messages() -> AsyncIterator[bytes]:
        yield _message("job", shapes.job(first))
        async for item in watch:
            if isinstance(item, Job):
                yield _message("job", shapes.job(item))
            else:
                yield _message("event", shapes.event(item), item.sequence)
        yield _message("end", {})

    response = await _open(request)
    try:
        await _relay(response, messages())
    finally:
        await _close(watch)
    return response


async def job_list_stream(request: web.Request) -> web.StreamResponse:
    """The caller's jobs as they change, for the list view."""
    who = auth.require(request, Role.CLIENT)
    with request.app[api.SERVICES].live.follow(who) as batches:

        async def messages() -> AsyncIterator[bytes]:
            async for batch in batches:
                if batch is live.RESYNC:
                    yield _message("resync", {})
                else:
                    yield _message("jobs", [shapes.job(job) for job in batch])

        response = await _open(request)  # after following: what the browser sees next is not missed
        try:
            await _relay(response, messages())
        finally:
            await _close(batches)
    return response
