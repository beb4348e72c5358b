"""Steps on the worker side of the SDK: the unary worker calls of `Client` (claim, progress, assets,
messages, complete, fail) and the managed `Worker`."""

from __future__ import annotations

from typing import Any

from . import handlers, views
from .client_ops import Outcome, job_outcome
from .session import Session


async def claim_jobs(s: Session, step: dict[str, Any]) -> Outcome:
    claims = await s.client(step.get("as")).claim_jobs(
        s.worker_id(step.get("as")),
        s.job_types(step.get("job_types")),
        max_jobs=step.get("max_jobs", 1),
        lease_duration=step.get("lease_duration", 30.0),
        wait=step.get("wait", 0.0),
        request_id=s.request_id(step.get("request_id")),
    )
    view = {
        "count": len(claims),
        "ids": [c.job.id for c in claims],
        "claims": [{"job": views.job(c.job, s.prefix)} for c in claims],
    }
    return view, claims


async def report_progress(s: Session, step: dict[str, Any]) -> Outcome:
    claim = s.claim(step["claim"])
    expire, cancel_requested = await s.client(step.get("as")).report_progress(
        claim.job.id,
        claim.lease_token,
        step.get("percent", 0.0),
        step.get("message", ""),
        step.get("done", 0),
        step.get("total", 0),
        request_id=s.request_id(step.get("request_id")),
    )
    return {"cancel_requested": cancel_requested, "lease_renewed": expire is not None}, None


async def add_asset(s: Session, step: dict[str, Any]) -> Outcome:
    claim = s.claim(step["claim"])
    asset = await s.client(step.get("as")).add_asset(
        claim.job.id,
        claim.lease_token,
        step["asset_type"],
        step["uri"],
        size_bytes=step.get("size_bytes", 0),
        content_type=step.get("content_type", ""),
        metadata=step.get("metadata"),
        request_id=s.request_id(step.get("request_id")),
    )
    return views.asset(asset), asset


async def add_messages(s: Session, step: dict[str, Any]) -> Outcome:
    claim = s.claim(step["claim"])
    events = await s.client(step.get("as")).add_messages(
        claim.job.id,
        claim.lease_token,
        [handlers.message(m) for m in step["messages"]],
        request_id=s.request_id(step.get("request_id")),
    )
    return {"count": len(events), "events": [views.event(e) for e in events]}, events


async def complete_job(s: Session, step: dict[str, Any]) -> Outcome:
    claim = s.claim(step["claim"])
    job = await s.client(step.get("as")).complete_job(
        claim.job.id,
        claim.lease_token,
        step.get("result"),
        step.get("partial", False),
        step.get("error_message", ""),
        request_id=s.request_id(step.get("request_id")),
    )
    return job_outcome(s, job)


async def fail_job(s: Session, step: dict[str, Any]) -> Outcome:
    claim = s.claim(step["claim"])
    job = await s.client(step.get("as")).fail_job(
        claim.job.id,
        claim.lease_token,
        step.get("error_message", "failed"),
        step.get("reason", ""),
        step.get("retryable", False),
        stop_reason=step.get("stop_reason"),
        request_id=s.request_id(step.get("request_id")),
    )
    return job_outcome(s, job)


async def start_worker(s: Session, step: dict[str, Any]) -> Outcome:
    s.managed(step["as"]).start()
    return {}, None


async def stop_worker(s: Session, step: dict[str, Any]) -> Outcome:
    await s.managed(step["as"]).stop()
    return {}, None


async def handler_runs(s: Session, step: dict[str, Any]) -> Outcome:
    runs = s.managed(step["as"]).runs.get(s.job_id(step["job"]), [])
    view = {"count": len(runs), "runs": [{"attempt": r.attempt, "saw_cancel": r.saw_cancel} for r in runs]}
    return view, runs
