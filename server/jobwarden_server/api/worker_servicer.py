"""WorkerService over gRPC: decode, call the service, encode. Errors are mapped by the guard."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import grpc

from jobwarden.v1 import worker_service_pb2, worker_service_pb2_grpc
from jobwarden_server.api import convert
from jobwarden_server.api.auth import current_principal
from jobwarden_server.api.work_session import WorkStream
from jobwarden_server.domain import limits, messages
from jobwarden_server.domain.records import Job
from jobwarden_server.service.work import (
    DEFAULT_LEASE_S,
    AssetSpec,
    ClaimRequest,
    WorkService,
    check_asset,
    check_claim,
    check_error,
)

Context = grpc.aio.ServicerContext[Any, Any]


def _id(field: str, value: str) -> str:
    return limits.check_text(field, value, limit=limits.MAX_ID, required=True)


class WorkerServicer(worker_service_pb2_grpc.WorkerServiceServicer):
    """The worker API."""

    def __init__(self, work: WorkService) -> None:
        self._work = work
        self._session = WorkStream(
            work,
            {
                "progress": self.ReportProgress,
                "asset": self.AddAsset,
                "messages": self.AddMessages,
                "complete": self.CompleteJob,
                "fail": self.FailJob,
            },
            brief={"complete": self._complete_briefly, "fail": self._fail_briefly},
        )

    def Work(
        self, request_iterator: AsyncIterator[worker_service_pb2.WorkRequest], context: Context
    ) -> AsyncIterator[worker_service_pb2.WorkResponse]:
        return self._session.serve(request_iterator, context)

    async def ClaimJobs(
        self, request: worker_service_pb2.ClaimJobsRequest, context: Context
    ) -> worker_service_pb2.ClaimJobsResponse:
        claim = check_claim(
            ClaimRequest(
                worker_id=request.worker_id,
                job_types=frozenset(request.job_types),
                max_jobs=request.max_jobs or 1,
                lease_duration_s=convert.seconds_in(request, "lease_duration", DEFAULT_LEASE_S),
                wait_s=convert.seconds_in(request, "wait", 0.0),
            )
        )
        remaining = context.time_remaining()
        if remaining is not None:
            # Answer (possibly empty) before the caller's deadline rather than let the long poll time out.
            claim = ClaimRequest(
                worker_id=claim.worker_id,
                job_types=claim.job_types,
                max_jobs=claim.max_jobs,
                lease_duration_s=claim.lease_duration_s,
                wait_s=max(0.0, min(claim.wait_s, remaining - 0.5)),
            )
        jobs = await self._work.claim(current_principal(), claim, convert.request_of(request))
        return worker_service_pb2.ClaimJobsResponse(
            claims=[
                worker_service_pb2.JobClaim(
                    job=convert.job_out(job),
                    lease_token=job.lease_token,
                    lease_expire_time=convert.timestamp(job.lease_expire_time),
                )
                for job in jobs
            ]
        )

    async def ReportProgress(
        self, request: worker_service_pb2.ReportProgressRequest, context: Context
    ) -> worker_service_pb2.ReportProgressResponse:
        progress = limits.check_progress("progress", convert.progress_in(request.progress))
        job = await self._work.progress(
            current_principal(),
            _id("job_id", request.job_id),
            request.lease_token,
            progress,
            convert.request_of(request),
        )
        return worker_service_pb2.ReportProgressResponse(
            lease_expire_time=convert.timestamp(job.lease_expire_time or dt.datetime.now(dt.UTC)),
            cancel_requested=job.cancel_requested,
        )

    async def AddAsset(
        self, request: worker_service_pb2.AddAssetRequest, context: Context
    ) -> worker_service_pb2.AddAssetResponse:
        a = request.asset
        spec = check_asset(
            AssetSpec(
                asset_type=a.asset_type,
                uri=a.uri,
                storage_path=a.storage_path,
                size_bytes=a.size_bytes,
                content_type=a.content_type,
                sha256=a.sha256,
                metadata=dict(a.metadata),
            )
        )
        asset = await self._work.add_asset(
            current_principal(),
            _id("job_id", request.job_id),
            request.lease_token,
            spec,
            convert.request_of(request),
        )
        return worker_service_pb2.AddAssetResponse(asset=convert.asset_out(asset))

    async def AddMessages(
        self, request: worker_service_pb2.AddMessagesRequest, context: Context
    ) -> worker_service_pb2.AddMessagesResponse:
        added = messages.check_messages(
            "messages",
            [convert.message_in(f"messages[{i}]", m) for i, m in enumerate(request.messages)],
        )
        job, events = await self._work.add_messages(
            current_principal(),
            _id("job_id", request.job_id),
            request.lease_token,
            added,
            convert.request_of(request),
        )
        return worker_service_pb2.AddMessagesResponse(
            events=[convert.event_out(e) for e in events], message_count=job.message_count
        )

    async def CompleteJob(
        self, request: worker_service_pb2.CompleteJobRequest, context: Context
    ) -> worker_service_pb2.CompleteJobResponse:
        return worker_service_pb2.CompleteJobResponse(job=convert.job_out(await self._complete(request)))

    async def FailJob(
        self, request: worker_service_pb2.FailJobRequest, context: Context
    ) -> worker_service_pb2.FailJobResponse:
        return worker_service_pb2.FailJobResponse(job=convert.job_out(await self._fail(request)))

    async def _complete_briefly(
        self, request: worker_service_pb2.CompleteJobRequest, context: Context
    ) -> worker_service_pb2.CompleteJobResponse:
        """A Work session's complete step when its acks are brief: the same call, no job in the answer."""
        await self._complete(request)
        return worker_service_pb2.CompleteJobResponse()

    async def _fail_briefly(
        self, request: worker_service_pb2.FailJobRequest, context: Context
    ) -> worker_service_pb2.FailJobResponse:
        """A Work session's fail step when its acks are brief: the same call, no job in the answer."""
        await self._fail(request)
        return worker_service_pb2.FailJobResponse()

    async def _complete(self, request: worker_service_pb2.CompleteJobRequest) -> Job:
        result = limits.check_struct("result", convert.struct_in("result", request.result))
        partial = check_error("error", convert.error_in(request.error)) if request.partial else None
        return await self._work.complete(
            current_principal(),
            _id("job_id", request.job_id),
            request.lease_token,
            result,
            partial,
            convert.request_of(request),
            validate_only=request.validate_only,
        )

    async def _fail(self, request: worker_service_pb2.FailJobRequest) -> Job:
        error = check_error("error", convert.error_in(request.error))
        stop = limits.check_worker_stop_reason(
            "stop_reason", convert.stop_reason_in("stop_reason", request.stop_reason, allow_unspecified=True)
        )
        return await self._work.fail(
            current_principal(),
            _id("job_id", request.job_id),
            request.lease_token,
            error,
            stop,
            convert.request_of(request),
            validate_only=request.validate_only,
        )
