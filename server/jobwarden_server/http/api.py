"""The dashboard's JSON API, under /api/. Every route acts as the caller's owner, through the same
services (and so the same rules, validation and idempotent writes) as the gRPC port.

    GET    /api/session               who is calling ({owner, roles, local})
    POST   /api/session               {"token": ...}: check it and set the cookie (the login form)
    DELETE /api/session               forget the cookie
    GET    /api/jobs                  a keyset page of jobs; filters below, page_token, page_size
    GET    /api/jobs/count            how many match the filters (counted up to 10,000)
    POST   /api/jobs/cancel           cancel every unfinished job the filters (in the JSON body) match
    GET    /api/jobs/{id}             one job
    GET    /api/jobs/{id}/events      its timeline (after=SEQUENCE, page_token)
    GET    /api/jobs/{id}/assets      its assets
    POST   /api/jobs/{id}/cancel      cancel it ({"reason": ...})
    POST   /api/jobs/{id}/retry       run an ended job again as a new job (admin role, as RetryJob)
    DELETE /api/jobs/{id}             delete an ended job
    GET    /api/queues                depth, throughput, success rate, p95 per job type
                                      (bucket_seconds, buckets)

Filters: status (repeat or comma-separate), type, label (key=value, repeat), created_after and
created_before (ISO 8601), order (desc, the default, or asc), q (a job id: that job; else a job type).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

from jobwarden_server.domain import errors
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.http import answers, auth, shapes
from jobwarden_server.service.jobs import JobQuery
from jobwarden_server.service.wiring import Services

SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
TLS: web.AppKey[bool] = web.AppKey("tls", bool)
COOKIE_MAX_AGE_S = 7 * 86400


def routes() -> list[tuple[str, str, auth.Handler]]:
    """The API's (method, path, handler) routes."""
    return [
        ("GET", "/api/session", whoami),
        ("POST", "/api/session", login),
        ("DELETE", "/api/session", logout),
        ("GET", "/api/jobs", list_jobs),
        ("GET", "/api/jobs/count", count_jobs),
        ("POST", "/api/jobs/cancel", cancel_matching),
        ("GET", "/api/jobs/{job_id}", get_job),
        ("GET", "/api/jobs/{job_id}/events", job_events),
        ("GET", "/api/jobs/{job_id}/assets", job_assets),
        ("POST", "/api/jobs/{job_id}/cancel", cancel_job),
        ("POST", "/api/jobs/{job_id}/retry", retry_job),
        ("DELETE", "/api/jobs/{job_id}", delete_job),
        ("GET", "/api/queues", queues),
    ]


def _services(request: web.Request) -> Services:
    return request.app[SERVICES]


def _client(request: web.Request) -> Principal:
    """The caller, who needs the client role, as for JobService over gRPC."""
    return auth.require(request, Role.CLIENT)


async def whoami(request: web.Request) -> web.Response:
    """The caller, or 401 (the dashboard then shows its login form)."""
    who = auth.authenticate(request)
    return answers.ok(
        {"owner": who.owner, "roles": sorted(r.value for r in who.roles), "local": auth.local_mode(request)}
    )


async def login(request: web.Request) -> web.Response:
    """Check a token and keep it in an HttpOnly cookie (a wrong one is 401 and sets nothing)."""
    if request.content_type != "application/json":
        raise errors.InvalidArgument("Content-Type", "must be application/json")
    body = await _json(request)
    token = body.get("token")
    if not isinstance(token, str) or not token.strip():
        raise errors.InvalidArgument("token", "must be a non-empty string")
    who = auth.authenticate_token(request, token.strip())
    response = answers.ok({"owner": who.owner, "roles": sorted(r.value for r in who.roles), "local": False})
    set_cookie(request, response, token.strip())
    return response


def set_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """Keep `token` in the browser for the API and the event streams (see http/auth.py)."""
    response.set_cookie(
        auth.COOKIE,
        token,
        max_age=COOKIE_MAX_AGE_S,
        httponly=True,
        samesite="Strict",
        secure=request.app[TLS],
        path="/",
    )


async def logout(request: web.Request) -> web.Response:
    """Forget the cookie."""
    response = answers.ok({})
    response.del_cookie(auth.COOKIE, path="/")
    return response


def _strings(values: Iterable[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _time(field: str, text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError as err:
        raise errors.InvalidArgument(field, "is not an ISO 8601 time, e.g. 2030-01-01T12:00:00Z") from err
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def query_of(params: Mapping[str, Any], getall: Any) -> tuple[JobQuery, str]:
    """The filters of a list (query string or JSON body); and the job id `q` names, if it names one."""
    statuses: set[JobStatus] = set()
    for name in _strings(getall("status")):
        try:
            statuses.add(JobStatus(name.upper()))
        except ValueError:
            raise errors.InvalidArgument(
                "status", f"unknown status {name!r} (use {', '.join(s.value for s in JobStatus)})"
            ) from None
    types = set(_strings(getall("type")))
    labels: dict[str, str] = {}
    for pair in getall("label"):
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise errors.InvalidArgument("label", f"{pair!r} is not key=value")
        labels[key.strip()] = value.strip()
    order = str(params.get("order") or "desc")
    if order not in {"asc", "desc"}:
        raise errors.InvalidArgument("order", "must be asc or desc")
    text = str(params.get("q") or "").strip()
    job_id = ""
    if text:
        try:
            job_id = str(uuid.UUID(text))
        except ValueError:
            types.add(text)
    after = _time("created_after", params.get("created_after"))
    before = _time("created_before", params.get("created_before"))
    if after is not None and before is not None and after >= before:
        raise errors.InvalidArgument("created_after", "must be before created_before")
    query = JobQuery(
        statuses=frozenset(statuses),
        job_types=frozenset(types),
        labels=labels,
        created_after=after,
        created_before=before,
        descending=order == "desc",
    )
    return query, job_id


def _int(request: web.Request, field: str, default: int) -> int:
    text = request.query.get(field, "")
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise errors.InvalidArgument(field, "must be a whole number") from None


def _query(request: web.Request) -> tuple[JobQuery, str]:
    return query_of(request.query, lambda key: request.query.getall(key, []))


async def _named(request: web.Request, job_id: str, query: JobQuery) -> list[Job]:
    """The job `q` names, if it is the caller's and matches the other filters (else none)."""
    try:
        job = await _services(request).jobs.get(_client(request), job_id)
    except errors.NotFound:
        return []
    matches = (not query.statuses or job.status in query.statuses) and all(
        job.labels.get(k) == v for k, v in query.labels.items()
    )
    return [job] if matches else []


async def list_jobs(request: web.Request) -> web.Response:
    """One keyset page of the caller's jobs, newest first unless order=asc."""
    query, job_id = _query(request)
    page_size = _int(request, "page_size", 50)
    if job_id:
        found, token = await _named(request, job_id, query), ""
    else:
        found, token = await _services(request).jobs.list_jobs(
            _client(request), query, page_size, request.query.get("page_token", "")
        )
    return answers.ok({"jobs": [shapes.job(j) for j in found], "next_page_token": token})


async def count_jobs(request: web.Request) -> web.Response:
    """How many of the caller's jobs match (`at_least` when there are more than counted)."""
    query, job_id = _query(request)
    if job_id:
        count, limit = len(await _named(request, job_id, query)), 1
    else:
        limit = 10_000
        count = await _services(request).dashboard.count(_client(request), query, limit)
    return answers.ok({"count": count, "at_least": count >= limit and not job_id})


async def cancel_matching(request: web.Request) -> web.Response:
    """Cancel the caller's unfinished jobs the body's filters match: {"filter": {...}, "reason"}."""
    body = await _json(request)
    raw = body.get("filter", {})
    if not isinstance(raw, dict):
        raise errors.InvalidArgument("filter", "must be an object of filters")

    def getall(key: str) -> list[str]:
        value = raw.get(key, [])
        items = value if isinstance(value, list) else [value]
        return [str(item) for item in items]

    query, job_id = query_of(raw, getall)
    if job_id:
        raise errors.InvalidArgument("filter.q", "a bulk cancel takes filters, not a job id")
    reason = _reason(body)
    outcome = await _services(request).dashboard.cancel_matching(_client(request), query, reason)
    return answers.ok(
        {"matched": outcome.matched, "cancelled": outcome.cancelled, "refused": outcome.refused}
    )


async def get_job(request: web.Request) -> web.Response:
    """One of the caller's jobs (404 for another owner's, exactly as for a missing one)."""
    job = await _services(request).jobs.get(_client(request), request.match_info["job_id"])
    return answers.ok(shapes.job(job))


async def job_events(request: web.Request) -> web.Response:
    """A page of the job's timeline, oldest first."""
    events, token = await _services(request).jobs.events(
        _client(request),
        request.match_info["job_id"],
        _int(request, "page_size", 0),
        request.query.get("page_token", ""),
    )
    return answers.ok({"events": [shapes.event(e) for e in events], "next_page_token": token})


async def job_assets(request: web.Request) -> web.Response:
    """The job's assets, in the order they were added (the first 1000)."""
    assets, token = await _services(request).jobs.assets(
        _client(request), request.match_info["job_id"], 1000, ""
    )
    return answers.ok({"assets": [shapes.asset(a) for a in assets], "next_page_token": token})


async def _json(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except ValueError as err:
        raise errors.InvalidArgument("body", "is not valid JSON") from err
    if not isinstance(body, dict):
        raise errors.InvalidArgument("body", "must be a JSON object")
    return body


def _reason(body: Mapping[str, Any]) -> str:
    reason = body.get("reason", "cancelled from the dashboard")
    if not isinstance(reason, str) or len(reason) > 1000:
        raise errors.InvalidArgument("reason", "must be a string of at most 1000 characters")
    return reason


async def cancel_job(request: web.Request) -> web.Response:
    """Cancel one job as CancelJob does (a running one is asked to stop)."""
    reason = _reason(await _json(request))
    job = await _services(request).jobs.cancel(_client(request), request.match_info["job_id"], reason, "")
    return answers.ok(shapes.job(job))


async def retry_job(request: web.Request) -> web.Response:
    """Run an ended job again as a new job (AdminService.RetryJob: the admin role)."""
    await _json(request)
    job = await _services(request).admin.retry(
        auth.require(request, Role.ADMIN), request.match_info["job_id"]
    )
    return answers.ok(shapes.job(job))


async def delete_job(request: web.Request) -> web.Response:
    """Delete an ended job with its history and assets."""
    await _services(request).jobs.delete(_client(request), request.match_info["job_id"])
    return answers.ok({})


async def queues(request: web.Request) -> web.Response:
    """Queue statistics of the caller's job types over the last `buckets` x `bucket_seconds`."""
    window, found = await _services(request).dashboard.queue_stats(
        _client(request),
        bucket_s=_int(request, "bucket_seconds", 60),
        buckets=_int(request, "buckets", 60),
    )
    return answers.ok(shapes.queues(window, found))
