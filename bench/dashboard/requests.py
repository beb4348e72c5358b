"""Time the dashboard's API requests, as a browser on its pages makes them, one after another.

Each request is made `warmup` times unmeasured, then `repeats` times measured, sequentially over one
kept-alive HTTP connection from this process (as a browser tab's fetches reuse theirs). The time is
from sending the request to having read the whole answer. The floor is the cheapest request on the
same port: GET /api/session, which authenticates the caller and answers who it is, touching no store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.dashboard.seed import Seeded
from bench.watchers.figures import percentiles

FLOOR = "floor: GET /api/session"
PAGE_SIZE = 50  # the jobs page's (static/jobs.js)
STATUS_FILTER = "FAILED"
TYPE_FILTER = "video.transcode"
LABEL_FILTER = "tenant=t07"
QUEUE_RANGES = {"1 h": (60, 60), "1 day": (900, 96)}  # (bucket_seconds, buckets), as static/queues.js


@dataclass(frozen=True, slots=True)
class Request:
    """One measured request: its name in the table and the path with its query."""

    name: str
    path: str
    params: dict[str, Any]


def requests(client: httpx.Client, seeded: Seeded) -> list[Request]:
    """The requests to time; the cursor of the second page comes from one unmeasured first page."""
    first = _get(client, "/api/jobs", {"page_size": PAGE_SIZE})
    cursor = first["next_page_token"]
    if not cursor:
        raise RuntimeError("the first page of jobs has no next page")
    job = seeded.finished_job_id
    found = [
        Request(FLOOR, "/api/session", {}),
        Request("jobs: first page", "/api/jobs", {"page_size": PAGE_SIZE}),
        Request("jobs: next page (cursor)", "/api/jobs", {"page_size": PAGE_SIZE, "page_token": cursor}),
        Request(
            f"jobs: status={STATUS_FILTER}", "/api/jobs", {"page_size": PAGE_SIZE, "status": STATUS_FILTER}
        ),
        Request(f"jobs: type={TYPE_FILTER}", "/api/jobs", {"page_size": PAGE_SIZE, "type": TYPE_FILTER}),
        Request(f"jobs: label {LABEL_FILTER}", "/api/jobs", {"page_size": PAGE_SIZE, "label": LABEL_FILTER}),
        Request("count: no filter", "/api/jobs/count", {}),
        Request(f"count: status={STATUS_FILTER}", "/api/jobs/count", {"status": STATUS_FILTER}),
        Request(f"count: label {LABEL_FILTER}", "/api/jobs/count", {"label": LABEL_FILTER}),
        Request("one job", f"/api/jobs/{job}", {}),
        Request("its events", f"/api/jobs/{job}/events", {}),
    ]
    for span, (bucket_s, buckets) in QUEUE_RANGES.items():
        found.append(
            Request(f"queues: {span}", "/api/queues", {"bucket_seconds": bucket_s, "buckets": buckets})
        )
    return found


def _get(client: httpx.Client, path: str, params: dict[str, Any]) -> dict[str, Any]:
    response = client.get(path, params=params)
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} {params} answered {response.status_code}: {response.text[:500]}")
    answer: dict[str, Any] = response.json()
    return answer


def measure(client: httpx.Client, request: Request, *, repeats: int, warmup: int) -> dict[str, Any]:
    """`repeats` timed GETs of `request` (after `warmup` untimed); its p50/p95 ms and what it answered."""
    answer: dict[str, Any] = {}
    for _ in range(warmup):
        answer = _get(client, request.path, request.params)
    times: list[float] = []
    size = 0
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(request.path, params=request.params)
        body = response.content
        times.append((time.perf_counter() - started) * 1e3)
        if response.status_code != 200:
            raise RuntimeError(f"GET {request.path} answered {response.status_code}: {body[:500]!r}")
        size = len(body)
    answer = answer or _get(client, request.path, request.params)
    ms = percentiles(times)
    return {
        "name": request.name,
        "path": request.path,
        "params": request.params,
        "count": len(times),
        "p50_ms": ms["p50"],
        "p95_ms": ms["p95"],
        "max_ms": ms["max"],
        "answer_bytes": size,
        "answered": _gist(answer),
    }


def _gist(answer: dict[str, Any]) -> str:
    """What the answer held, in a few words, so a fast figure cannot hide an empty answer."""
    if "jobs" in answer:
        return f"{len(answer['jobs'])} jobs"
    if "events" in answer:
        return f"{len(answer['events'])} events"
    if "count" in answer:
        return f"count {answer['count']}{'+' if answer['at_least'] else ''}"
    if "queues" in answer:
        return f"{len(answer['queues'])} job types"
    if "job_type" in answer:
        return f"job {answer['status']}"
    if "owner" in answer:
        return f"owner {answer['owner']}"
    return ", ".join(sorted(answer))[:60]
