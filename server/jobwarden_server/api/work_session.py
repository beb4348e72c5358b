"""WorkerService.Work over gRPC: one worker's session on a bidirectional stream.

Two loops share the session: the reader applies the worker's messages in order (renewing the leases
it lists, passing on cancels and lost leases, applying its steps and answering each message's steps
with one message of acks); the claimer pushes claims while credits are left. Steps run through the same servicer methods
as the unary calls, so they are checked, applied and answered exactly alike; a refused step becomes
its ack's status and the session goes on. Steps of one job run in order; different jobs' steps run
together, so the store commits them in one transaction. A session opened with brief acks gets its
complete and fail steps answered without the finished job (the `brief` servicer methods).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import message
from google.rpc import code_pb2, status_pb2

from jobwarden.v1 import worker_service_pb2 as pb
from jobwarden_server.api import convert
from jobwarden_server.api import errors as api_errors
from jobwarden_server.api.auth import current_principal
from jobwarden_server.api.nul import refuse_nul
from jobwarden_server.domain import errors, limits
from jobwarden_server.service.session import WorkSession
from jobwarden_server.service.work import DEFAULT_LEASE_S, ClaimRequest, WorkService, check_claim

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
StepCall = Callable[[Any, Context], Awaitable[message.Message]]

MAX_STEPS = 1000
RECHECK_S = 1.0
"""The claimer looks again at least this often: scheduled jobs become due without any wake-up."""
RETRY_S = 1.0
"""After a store failure, the claimer waits this long before trying again."""
_END = object()


def _start(request: pb.WorkRequest) -> ClaimRequest:
    if not request.HasField("start"):
        raise errors.InvalidArgument("start", "the first message of a Work session must carry start")
    start = request.start
    # Every refusal names its field under `start.`, where the client put it.
    try:
        refuse_nul(start)
        return check_claim(
            ClaimRequest(
                worker_id=start.worker_id,
                job_types=frozenset(start.job_types),
                lease_duration_s=convert.seconds_in(start, "lease_duration", DEFAULT_LEASE_S),
            )
        )
    except errors.InvalidArgument as err:
        raise err.within("start") from None


class WorkStream:
    """Serves Work sessions; `steps` maps a step kind to the servicer method of the unary call, and
    `brief` the kinds whose answer a session with brief acks gets without the job."""

    def __init__(self, work: WorkService, steps: dict[str, StepCall], *, brief: dict[str, StepCall]) -> None:
        self._work = work
        self._steps = steps
        self._brief_steps = {**steps, **brief}

    async def serve(
        self, requests: AsyncIterator[pb.WorkRequest], context: Context
    ) -> AsyncIterator[pb.WorkResponse]:
        """The session: validate the opening, then run the reader and the claimer until the worker
        closes its side."""
        first = await anext(requests, None)
        if first is None:
            return
        who = current_principal()
        session = WorkSession(self._work, who, _start(first))
        steps = self._brief_steps if first.start.brief_acks else self._steps
        out: asyncio.Queue[Any] = asyncio.Queue()
        wake = asyncio.Event()
        with self._work.session_slot(who.owner):
            loops = [
                asyncio.create_task(self._read(first, requests, session, steps, context, out, wake)),
                asyncio.create_task(self._claim(session, out, wake)),
            ]
            try:
                while (item := await out.get()) is not _END:
                    if isinstance(item, BaseException):
                        raise item
                    yield item
            finally:
                for task in loops:
                    task.cancel()
                await asyncio.gather(*loops, return_exceptions=True)

    async def _read(
        self,
        first: pb.WorkRequest,
        requests: AsyncIterator[pb.WorkRequest],
        session: WorkSession,
        steps: dict[str, StepCall],
        context: Context,
        out: asyncio.Queue[Any],
        wake: asyncio.Event,
    ) -> None:
        try:
            request: pb.WorkRequest | None = first
            while request is not None:
                session.heard()
                wake.set()  # a silent session that speaks again may claim again
                if request is not first and request.HasField("start"):
                    raise errors.InvalidArgument("start", "is for the first message of a session only")
                if len(request.steps) > MAX_STEPS:
                    raise errors.InvalidArgument(
                        "steps", f"at most {MAX_STEPS} per message", reason="TOO_LARGE"
                    )
                if request.stop_claims:
                    session.stop_claims()
                if request.credits:
                    session.add_credits(request.credits)
                    wake.set()
                if request.holding:
                    refuse_nul(pb.WorkRequest(holding=request.holding))
                    await self._renew(session, request, out)
                if request.steps:
                    await out.put(pb.WorkResponse(acks=await self._apply(request.steps, steps, context)))
                request = await anext(requests, None)
            await out.put(_END)  # the worker closed its side: the session is over
        except (errors.DomainError, grpc.aio.AbortError) as err:
            await out.put(err)  # ends the session with this status, raised from the main loop
        except Exception:
            logger.exception("unexpected failure in a Work session")
            await out.put(api_errors.internal())

    async def _apply(self, steps: Any, calls: dict[str, StepCall], context: Context) -> list[pb.WorkAck]:
        acks: list[pb.WorkAck | None] = [None] * len(steps)
        by_job: dict[str, list[int]] = {}
        for index, step in enumerate(steps):
            kind = step.WhichOneof("step")
            job_id = getattr(step, kind).job_id if kind else ""
            by_job.setdefault(job_id, []).append(index)

        async def one_job(indexes: list[int]) -> None:
            for index in indexes:
                acks[index] = await self._step(steps[index], calls, context)

        await asyncio.gather(*(one_job(indexes) for indexes in by_job.values()))
        return [ack for ack in acks if ack is not None]

    @staticmethod
    async def _step(step: pb.WorkStep, calls: dict[str, StepCall], context: Context) -> pb.WorkAck:
        ack = pb.WorkAck(step_id=step.step_id[: limits.MAX_ID])
        kind = step.WhichOneof("step")
        try:
            limits.check_text("step_id", step.step_id, limit=limits.MAX_ID)
            if "\x00" in step.step_id:
                raise errors.InvalidArgument("step_id", "must not contain the NUL character (U+0000)")
            if kind is None:
                raise errors.InvalidArgument("step", "set one of progress, asset, messages, complete or fail")
            request = getattr(step, kind)
            refuse_nul(request)
            answer = await calls[kind](request, context)
        except errors.DomainError as err:
            ack.status.CopyFrom(api_errors.to_status(err)[1])
            return ack
        except Exception:
            logger.exception("unexpected failure in a Work step (%s)", kind)
            ack.status.CopyFrom(api_errors.to_status(api_errors.internal())[1])
            return ack
        getattr(ack, kind).CopyFrom(answer)
        ack.status.CopyFrom(status_pb2.Status(code=code_pb2.OK))
        return ack

    async def _claim(self, session: WorkSession, out: asyncio.Queue[Any], wake: asyncio.Event) -> None:
        while True:
            if session.credits <= 0:
                wake.clear()
                await wake.wait()
                continue
            try:
                jobs = await session.claim()
            except errors.StoreUnavailable as err:
                logger.warning("work session: claiming failed (%s); retrying", err)
                await asyncio.sleep(RETRY_S)
                continue
            if jobs:
                await out.put(
                    pb.WorkResponse(
                        claims=[
                            pb.JobClaim(
                                job=convert.job_out(job),
                                lease_token=job.lease_token,
                                lease_expire_time=convert.timestamp(job.lease_expire_time),
                            )
                            for job in jobs
                        ]
                    )
                )
                continue
            if not await self._work.wait_for_work(RECHECK_S):
                await out.put(errors.ShuttingDown("the server is shutting down; open a new session later"))
                return

    @staticmethod
    async def _renew(session: WorkSession, request: pb.WorkRequest, out: asyncio.Queue[Any]) -> None:
        """Renew the leases the message lists; a store outage only skips this renewal (the worker
        lists them again within a third of a lease)."""
        try:
            news = await session.renew({lease.job_id: lease.lease_token for lease in request.holding})
        except errors.StoreUnavailable as err:
            logger.warning("work session: renewing leases failed (%s)", err)
            return
        if news.cancelled or news.lost:
            await out.put(pb.WorkResponse(cancel_job_ids=news.cancelled, lost_job_ids=news.lost))
