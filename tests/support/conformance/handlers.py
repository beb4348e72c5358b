"""Managed workers (the SDK's Worker) running handlers a scenario describes as data, and the answers
of callback receivers."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from jobwarden.client import JobContext, JobMessage, MessageLevel, PartialResult, PermanentError, Worker
from support.receiver import Answer

if TYPE_CHECKING:
    from .session import Session


def answers(statuses: list[int]) -> Answer:
    """A receiver answering its n-th request with statuses[n-1], and the last one from then on."""
    return lambda n, _request: (statuses[min(n, len(statuses)) - 1], 0.0)


@dataclasses.dataclass
class Run:
    """One attempt a handler ran."""

    attempt: int
    saw_cancel: bool = False


class ManagedWorker:
    """An SDK Worker whose handlers follow the scenario's script: per attempt, progress, assets and
    messages to report, then how to end (`then`)."""

    def __init__(self, session: Session, actor: str, spec: dict[str, Any]) -> None:
        client = session.client(actor)
        self.worker = Worker(
            client,
            worker_id=session.worker_id(actor),
            concurrency=spec.get("concurrency", 4),
            lease_duration=spec.get("lease_duration", 10),
            poll_wait=1.0,
            shutdown_grace=2.0,
            cancel_grace=5.0,
            session=spec.get("session", True),
        )
        for symbol, script in spec["handlers"].items():
            self.worker.register(session.job_type(symbol), self._handler(script))
        self.runs: dict[str, list[Run]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run the worker in the background until `stop`."""
        assert self._task is None, "started twice"
        self._task = asyncio.create_task(self.worker.run())

    async def stop(self, *, force: bool = False) -> None:
        """Stop the worker and wait for it (`force`: skip the shutdown grace, as at a scenario's end)."""
        if self._task is None:
            return
        self.worker.stop()
        if force:
            self.worker.stop()
        task, self._task = self._task, None
        await task

    def _handler(self, script: list[dict[str, Any]]) -> Callable[[JobContext], Awaitable[Any]]:
        async def handle(ctx: JobContext) -> Any:
            step = script[min(ctx.job.attempt, len(script)) - 1]
            run = Run(attempt=ctx.job.attempt)
            self.runs.setdefault(ctx.job.id, []).append(run)
            return await _perform(ctx, step, run)

        return handle


async def _perform(ctx: JobContext, step: dict[str, Any], run: Run) -> Any:
    for percent in step.get("progress", []):
        await ctx.progress(percent)
    for asset in step.get("assets", []):
        await ctx.add_asset(asset["asset_type"], asset["uri"], size_bytes=asset.get("size_bytes", 0))
    if step.get("messages"):
        await ctx.add_messages([message(m) for m in step["messages"]])
    then = step["then"]
    if then == "wait_for_cancel":
        await ctx.cancelled.wait()
        run.saw_cancel = True
        return None
    if then == "complete":
        return step.get("result")
    if then == "partial":
        return PartialResult(step.get("result", {}), step.get("error_message", "partial"))
    if then == "fail_permanent":
        raise PermanentError(step.get("error_message", "permanent failure"), reason=step.get("reason", ""))
    raise RuntimeError(step.get("error_message", "retryable failure"))  # then == "fail_retryable"


def message(spec: str | dict[str, Any]) -> JobMessage | str:
    """A scenario's message: plain text (INFO), or {text, level, data}."""
    if isinstance(spec, str):
        return spec
    return JobMessage(text=spec["text"], level=MessageLevel(spec.get("level", "INFO")), data=spec.get("data"))
