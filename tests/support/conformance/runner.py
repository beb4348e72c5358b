"""Running a scenario: each step through its op, its outcome saved and compared with its expectation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from jobwarden import errors

from . import client_ops, observe_ops, tables, views, worker_ops
from .client_ops import Outcome
from .expect import Mismatch, matches
from .session import Session

Op = Callable[[Session, dict[str, Any]], Awaitable[Outcome]]

OPS: dict[str, Op] = {
    "create_job": client_ops.create_job,
    "create_jobs": client_ops.create_jobs,
    "create_batch": client_ops.create_batch,
    "get_job": client_ops.get_job,
    "list_jobs": client_ops.list_jobs,
    "cancel_job": client_ops.cancel_job,
    "release_job": client_ops.release_job,
    "set_job_status": client_ops.set_job_status,
    "retry_job": client_ops.retry_job,
    "delete_job": client_ops.delete_job,
    "list_job_events": client_ops.list_job_events,
    "list_assets": client_ops.list_assets,
    "get_lifecycle": client_ops.get_lifecycle,
    "claim_jobs": worker_ops.claim_jobs,
    "report_progress": worker_ops.report_progress,
    "add_asset": worker_ops.add_asset,
    "add_messages": worker_ops.add_messages,
    "complete_job": worker_ops.complete_job,
    "fail_job": worker_ops.fail_job,
    "start_worker": worker_ops.start_worker,
    "stop_worker": worker_ops.stop_worker,
    "handler_runs": worker_ops.handler_runs,
    "watch_job": observe_ops.watch_job,
    "start_watch": observe_ops.start_watch,
    "finish_watch": observe_ops.finish_watch,
    "await_status": observe_ops.await_status,
    "await_callbacks": observe_ops.await_callbacks,
    "check_transitions": lambda s, step: tables.check_transitions(s, step, run_step),
}


async def run(scenario: dict[str, Any], address: str, principals: dict[str, dict[str, Any]]) -> None:
    """Run every step of `scenario` against the server at `address`; Mismatch names the first that
    differs from its expectation."""
    async with Session(scenario, address, principals) as s:
        for symbol, lifecycle in scenario["job_types"].items():
            await run_step(
                s,
                {"op": "get_lifecycle", "job_type": symbol, "expect": {"name": lifecycle}},
                f"job type {symbol!r}",
            )
        for i, step in enumerate(scenario["steps"]):
            await run_step(s, step, f"step {i} ({step['op']})")


async def run_step(s: Session, step: dict[str, Any], where: str) -> None:
    """One step: call its op; save what it returned; compare with `expect` (a `refused` expectation
    wants the call refused; without one the call must succeed)."""
    expected = step.get("expect")
    wants_error = expected is not None and "refused" in expected
    try:
        view, value = await OPS[step["op"]](s, step)
    except errors.JobwardenError as err:
        if not wants_error:
            raise Mismatch(f"{where}: refused: {err!r}") from err
        _compare(s, expected, {"refused": views.error(err)}, where)
        return
    except Mismatch as err:
        raise Mismatch(f"{where}: {err}") from err
    if wants_error:
        raise Mismatch(f"{where}: succeeded, but {expected['refused']} was expected")
    s.save(step.get("save"), value)
    if expected is not None:
        _compare(s, expected, view, where)


def _compare(s: Session, expected: Any, actual: Any, where: str) -> None:
    try:
        matches(s.resolve(expected), actual)
    except Mismatch as err:
        raise Mismatch(f"{where}: {err}") from err
