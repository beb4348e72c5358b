"""Steps on the client side of the SDK (`jobwarden.client.Client`): one op, one SDK method."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jobwarden import errors
from jobwarden.client import Job, NewJob, RetryPolicy

from . import views
from .session import Session

Outcome = tuple[Any, Any]
"""(the view an expectation is compared with, the value a `save` stores)."""


def new_job(s: Session, spec: dict[str, Any]) -> NewJob:
    """A job to create, from a step's fields (as `create_job` takes them)."""
    policy = spec.get("retry_policy")
    return NewJob(
        s.job_type(spec["job_type"]),
        spec.get("parameters"),
        priority=spec.get("priority", 0),
        labels=spec.get("labels"),
        max_attempts=spec.get("max_attempts", 0),
        retry_policy=None if policy is None else RetryPolicy(**policy),
        callback_url=s.resolve(spec.get("callback_url", "")),
        callback_statuses=tuple(spec.get("callback_statuses", ())),
        hold=spec.get("hold", False),
        request_id=s.request_id(spec.get("request_id")),
        queue_timeout=spec.get("queue_timeout"),
        deadline=None
        if "deadline_in" not in spec
        else dt.datetime.now(dt.UTC) + dt.timedelta(seconds=spec["deadline_in"]),
    )


def job_outcome(s: Session, job: Job) -> Outcome:
    return views.job(job, s.prefix), job


async def create_job(s: Session, step: dict[str, Any]) -> Outcome:
    job = new_job(s, step)
    created = await s.client(step.get("as")).create_job(
        job.job_type,
        job.parameters,
        priority=job.priority,
        labels=job.labels,
        max_attempts=job.max_attempts,
        retry_policy=job.retry_policy,
        callback_url=job.callback_url,
        callback_statuses=job.callback_statuses,
        hold=job.hold,
        request_id=job.request_id,
        queue_timeout=job.queue_timeout,
        deadline=job.deadline,
    )
    return job_outcome(s, created)


async def create_jobs(s: Session, step: dict[str, Any]) -> Outcome:
    results = await s.client(step.get("as")).create_jobs([new_job(s, j) for j in step["jobs"]])
    outcomes = [
        {"refused": views.error(r)} if isinstance(r, errors.JobwardenError) else views.job(r, s.prefix)
        for r in results
    ]
    return {"outcomes": outcomes}, results


async def create_batch(s: Session, step: dict[str, Any]) -> Outcome:
    parent = await s.client(step.get("as")).create_batch(
        s.job_type(step["job_type"]),
        [new_job(s, child) for child in step["children"]],
        parameters=step.get("parameters"),
        callback_url=s.resolve(step.get("callback_url", "")),
        request_id=s.request_id(step.get("request_id")),
    )
    return job_outcome(s, parent)


async def get_job(s: Session, step: dict[str, Any]) -> Outcome:
    return job_outcome(s, await s.client(step.get("as")).get_job(s.job_id(step["job"])))


async def list_jobs(s: Session, step: dict[str, Any]) -> Outcome:
    jobs, _ = await s.client(step.get("as")).list_jobs(
        statuses=step.get("statuses", ()),
        job_types=s.job_types(step.get("job_types")),
        parent_id=s.job_id(step["parent"]) if "parent" in step else "",
        page_size=500,
    )
    view = {"count": len(jobs), "ids": [j.id for j in jobs], "jobs": [views.job(j, s.prefix) for j in jobs]}
    return view, jobs


async def cancel_job(s: Session, step: dict[str, Any]) -> Outcome:
    job = await s.client(step.get("as")).cancel_job(
        s.job_id(step["job"]), step.get("reason", ""), request_id=s.request_id(step.get("request_id"))
    )
    return job_outcome(s, job)


async def release_job(s: Session, step: dict[str, Any]) -> Outcome:
    job = await s.client(step.get("as")).release_job(
        s.job_id(step["job"]), request_id=s.request_id(step.get("request_id"))
    )
    return job_outcome(s, job)


async def set_job_status(s: Session, step: dict[str, Any]) -> Outcome:
    job = await s.client(step.get("as")).set_job_status(
        s.job_id(step["job"]),
        step["status"],
        step.get("reason", "conformance"),
        force=step.get("force", False),
        request_id=s.request_id(step.get("request_id")),
    )
    return job_outcome(s, job)


async def list_job_events(s: Session, step: dict[str, Any]) -> Outcome:
    client = s.client(step.get("as"))
    events = [e async for e in client.iter_job_events(s.job_id(step["job"]), kinds=step.get("kinds", ()))]
    return {"count": len(events), "events": [views.event(e) for e in events]}, events


async def list_assets(s: Session, step: dict[str, Any]) -> Outcome:
    assets = [a async for a in s.client(step.get("as")).iter_assets(s.job_id(step["job"]))]
    return {"count": len(assets), "assets": [views.asset(a) for a in assets]}, assets


async def get_lifecycle(s: Session, step: dict[str, Any]) -> Outcome:
    table = await s.client(step.get("as")).get_lifecycle(s.job_type(step["job_type"]))
    view = {
        "name": table.name,
        "initial": table.initial_status.value,
        "transitions": sorted([a.value, b.value] for a, b in table.transitions),
    }
    return view, table


async def delete_job(s: Session, step: dict[str, Any]) -> Outcome:
    await s.client(step.get("as")).delete_job(
        s.job_id(step["job"]), request_id=s.request_id(step.get("request_id"))
    )
    return {}, None


async def retry_job(s: Session, step: dict[str, Any]) -> Outcome:
    job = await s.client(step.get("as")).retry_job(
        s.job_id(step["job"]), request_id=s.request_id(step.get("request_id"))
    )
    return job_outcome(s, job)
