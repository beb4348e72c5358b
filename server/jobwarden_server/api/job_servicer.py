"""JobService over gRPC: decode, call the service, encode. Errors are mapped by the guard."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from jobwarden.v1 import job_service_pb2, job_service_pb2_grpc
from jobwarden_server import tracing
from jobwarden_server.api import convert
from jobwarden_server.api import errors as api_errors
from jobwarden_server.api.auth import current_principal
from jobwarden_server.api.nul import refuse_nul
from jobwarden_server.domain import errors, limits, webhooks
from jobwarden_server.domain.auth import Principal
from jobwarden_server.domain.idempotency import RequestKey
from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.service.batches import BatchService, BatchSpec, check_batch
from jobwarden_server.service.jobs import JobQuery, JobSpec, JobsService, check_spec
from jobwarden_server.service.stats import JobStats, StatsQuery
from jobwarden_server.service.watch import WatchService

Context = grpc.aio.ServicerContext[Any, Any]


def _id(field: str, value: str) -> str:
    return limits.check_text(field, value, limit=limits.MAX_ID, required=True)


def _spec_in(request: job_service_pb2.CreateJobRequest) -> JobSpec:
    """A CreateJob request, or one item of a CreateJobs request, decoded and checked."""
    return check_spec(
        JobSpec(
            job_type=request.job_type,
            parameters=convert.struct_in("parameters", request.parameters),
            priority=request.priority,
            labels=dict(request.labels),
            max_attempts=request.max_attempts,
            run_after=convert.time_in(request, "run_after"),
            deadline=convert.time_in(request, "deadline"),
            callback_url=request.callback_url,
            callback_statuses=_callback_statuses(request),
            hold=request.hold,
            request=convert.request_of(request),
            queue_timeout_s=convert.seconds_or_none(request, "queue_timeout"),
            # The call's, not the item's: the guard read it from the call's metadata.
            trace=tracing.incoming(),
            **convert.retry_in(request),
        )
    )


def _callback_statuses(
    request: job_service_pb2.CreateJobRequest | job_service_pb2.CreateBatchRequest,
) -> tuple[JobStatus, ...]:
    """The terminal statuses that fire a job's or a batch's callback, checked against its URL, sorted."""
    statuses = convert.statuses_in("callback_statuses", request.callback_statuses)
    return tuple(sorted(webhooks.check_statuses("callback_statuses", request.callback_url, statuses)))


def _result(position: int, outcome: Job | errors.DomainError) -> job_service_pb2.CreateJobsResult:
    """One item's answer: its job, or the status CreateJob would have failed with (built by the same
    to_status as every call's error), its field paths under `requests[position]`."""
    if isinstance(outcome, Job):
        return job_service_pb2.CreateJobsResult(job=convert.job_out(outcome))
    if isinstance(outcome, errors.InvalidArgument):
        outcome = outcome.within(f"requests[{position}]")
    _, status = api_errors.to_status(outcome)
    return job_service_pb2.CreateJobsResult(error=status)


class JobServicer(job_service_pb2_grpc.JobServiceServicer):
    """The client API."""

    def __init__(
        self,
        jobs: JobsService,
        watches: WatchService,
        callbacks: webhooks.CallbackPolicy | None = None,
        *,
        batches: BatchService | None = None,
        stats: JobStats | None = None,
    ) -> None:
        self._jobs = jobs
        self._watches = watches
        self._callbacks = callbacks or webhooks.CallbackPolicy()
        self._batches = batches
        self._stats = stats

    def _spec_of(self, who: Principal, request: job_service_pb2.CreateJobRequest) -> JobSpec:
        """_spec_in, and the callback target checked against the server's rules for this owner."""
        spec = _spec_in(request)
        self._callbacks.check("callback_url", who.owner, spec.callback_url)
        return spec

    async def CreateJob(
        self, request: job_service_pb2.CreateJobRequest, context: Context
    ) -> job_service_pb2.CreateJobResponse:
        who = current_principal()
        job = await self._jobs.create(who, self._spec_of(who, request), validate_only=request.validate_only)
        return job_service_pb2.CreateJobResponse(job=convert.job_out(job))

    async def CreateJobs(
        self, request: job_service_pb2.CreateJobsRequest, context: Context
    ) -> job_service_pb2.CreateJobsResponse:
        limits.check_count("requests", len(request.requests), limits.MAX_CREATE_BATCH)
        who = current_principal()
        outcomes: dict[int, Job | errors.DomainError] = {}
        specs: dict[int, JobSpec] = {}
        for i, item in enumerate(request.requests):
            try:
                refuse_nul(item)  # item by item: the guard leaves this to batch calls (guard.ITEMIZED)
                _refuse_dry_run_item(
                    item, "CreateJobs creates every valid item; dry-run a job with CreateJob"
                )
                specs[i] = self._spec_of(who, item)
            except errors.InvalidArgument as err:
                outcomes[i] = err
        created = await self._jobs.create_many(who, list(specs.values()))
        outcomes.update(zip(specs, created, strict=True))
        return job_service_pb2.CreateJobsResponse(
            results=[_result(i, outcomes[i]) for i in range(len(request.requests))]
        )

    async def GetJob(
        self, request: job_service_pb2.GetJobRequest, context: Context
    ) -> job_service_pb2.GetJobResponse:
        job = await self._jobs.get(current_principal(), _id("job_id", request.job_id))
        return job_service_pb2.GetJobResponse(job=convert.job_out(job))

    async def ListJobs(
        self, request: job_service_pb2.ListJobsRequest, context: Context
    ) -> job_service_pb2.ListJobsResponse:
        for job_type in request.job_types:
            limits.check_job_type("job_types", job_type)
        query = JobQuery(
            statuses=convert.statuses_in("statuses", request.statuses),
            job_types=frozenset(request.job_types),
            labels=limits.check_string_map("labels", request.labels),
            stop_reasons=convert.stop_reasons_in("stop_reasons", request.stop_reasons),
            created_after=convert.time_in(request, "created_after"),
            created_before=convert.time_in(request, "created_before"),
            descending=request.descending,
            parent_id=limits.check_text("parent_id", request.parent_id, limit=limits.MAX_ID),
            stalled=request.stalled,
        )
        jobs, token = await self._jobs.list_jobs(
            current_principal(), query, request.page_size, request.page_token
        )
        return job_service_pb2.ListJobsResponse(
            jobs=[convert.job_out(j) for j in jobs], next_page_token=token
        )

    async def CancelJob(
        self, request: job_service_pb2.CancelJobRequest, context: Context
    ) -> job_service_pb2.CancelJobResponse:
        limits.check_text("reason", request.reason)
        limits.check_text("etag", request.etag, limit=limits.MAX_ID)
        job = await self._jobs.cancel(
            current_principal(),
            _id("job_id", request.job_id),
            request.reason,
            request.etag,
            convert.request_of(request),
            validate_only=request.validate_only,
        )
        return job_service_pb2.CancelJobResponse(job=convert.job_out(job))

    async def ReleaseJob(
        self, request: job_service_pb2.ReleaseJobRequest, context: Context
    ) -> job_service_pb2.ReleaseJobResponse:
        job = await self._jobs.release(
            current_principal(),
            _id("job_id", request.job_id),
            convert.request_of(request),
            validate_only=request.validate_only,
        )
        return job_service_pb2.ReleaseJobResponse(job=convert.job_out(job))

    async def DeleteJob(
        self, request: job_service_pb2.DeleteJobRequest, context: Context
    ) -> job_service_pb2.DeleteJobResponse:
        await self._jobs.delete(
            current_principal(), _id("job_id", request.job_id), convert.request_of(request)
        )
        return job_service_pb2.DeleteJobResponse()

    async def WatchJob(
        self, request: job_service_pb2.WatchJobRequest, context: Context
    ) -> AsyncIterator[job_service_pb2.WatchJobResponse]:
        stream = self._watches.watch(
            current_principal(), _id("job_id", request.job_id), request.after_sequence
        )
        async for item in stream:
            if isinstance(item, Job):
                yield job_service_pb2.WatchJobResponse(job=convert.job_out(item))
            else:
                yield job_service_pb2.WatchJobResponse(event=convert.event_out(item))

    async def ListJobEvents(
        self, request: job_service_pb2.ListJobEventsRequest, context: Context
    ) -> job_service_pb2.ListJobEventsResponse:
        events, token = await self._jobs.events(
            current_principal(),
            _id("job_id", request.job_id),
            request.page_size,
            request.page_token,
            convert.event_kinds_in("kinds", request.kinds),
        )
        return job_service_pb2.ListJobEventsResponse(
            events=[convert.event_out(e) for e in events], next_page_token=token
        )

    async def ListAssets(
        self, request: job_service_pb2.ListAssetsRequest, context: Context
    ) -> job_service_pb2.ListAssetsResponse:
        assets, token = await self._jobs.assets(
            current_principal(), _id("job_id", request.job_id), request.page_size, request.page_token
        )
        return job_service_pb2.ListAssetsResponse(
            assets=[convert.asset_out(a) for a in assets], next_page_token=token
        )

    async def GetAsset(
        self, request: job_service_pb2.GetAssetRequest, context: Context
    ) -> job_service_pb2.GetAssetResponse:
        asset = await self._jobs.asset(current_principal(), _id("asset_id", request.asset_id))
        return job_service_pb2.GetAssetResponse(asset=convert.asset_out(asset))

    async def GetLifecycle(
        self, request: job_service_pb2.GetLifecycleRequest, context: Context
    ) -> job_service_pb2.GetLifecycleResponse:
        if request.job_type:
            limits.check_job_type("job_type", request.job_type)
        table = self._jobs.lifecycle(request.job_type)
        return job_service_pb2.GetLifecycleResponse(lifecycle=convert.lifecycle_out(table))

    async def CreateBatch(
        self, request: job_service_pb2.CreateBatchRequest, context: Context
    ) -> job_service_pb2.CreateBatchResponse:
        if self._batches is None:
            raise errors.DomainError("batches are not served by this server")
        who = current_principal()
        spec = check_batch(
            BatchSpec(
                job_type=request.job_type,
                parameters=convert.struct_in("parameters", request.parameters),
                labels=dict(request.labels),
                callback_url=request.callback_url,
                callback_statuses=_callback_statuses(request),
                children=[_child_in(who, i, item, self._spec_of) for i, item in enumerate(request.children)],
                request=_batch_key(request),
                trace=tracing.incoming(),
            )
        )
        self._callbacks.check("callback_url", who.owner, spec.callback_url)
        job = await self._batches.create(who, spec, validate_only=request.validate_only)
        return job_service_pb2.CreateBatchResponse(job=convert.job_out(job))

    async def GetJobStats(
        self, request: job_service_pb2.GetJobStatsRequest, context: Context
    ) -> job_service_pb2.GetJobStatsResponse:
        if self._stats is None:
            raise errors.DomainError("statistics are not served by this server")
        if request.job_types:
            limits.check_count("job_types", len(request.job_types), limits.MAX_STATS_TYPES)
        for job_type in request.job_types:
            limits.check_job_type("job_types", job_type)
        query = StatsQuery(
            job_types=frozenset(request.job_types),
            start=convert.time_in(request, "start_time"),
            end=convert.time_in(request, "end_time"),
            length_s=convert.seconds_or_none(request, "window"),
            all_owners=request.all_owners,
        )
        return convert.stats_out(await self._stats.stats(current_principal(), query))


def _batch_key(request: job_service_pb2.CreateBatchRequest) -> RequestKey:
    """The batch's idempotency key; validate_only is left out of its fingerprint, so a dry run is
    answered exactly as the call itself (a replay, or a mismatch) would be."""
    if not request.validate_only:
        return convert.request_of(request)
    keyed = job_service_pb2.CreateBatchRequest()
    keyed.CopyFrom(request)
    keyed.validate_only = False
    return convert.request_of(keyed)


def _child_in(
    who: Principal,
    position: int,
    item: job_service_pb2.CreateJobRequest,
    spec_of: Callable[[Principal, job_service_pb2.CreateJobRequest], JobSpec],
) -> JobSpec:
    """A batch's child decoded and checked as CreateJob would; its refusal refuses the batch, its
    field under `children[position]`."""
    try:
        _refuse_dry_run_item(item, "set validate_only on the CreateBatch request, for the whole batch")
        return spec_of(who, item)
    except errors.InvalidArgument as err:
        raise err.within(f"children[{position}]") from None


def _refuse_dry_run_item(item: job_service_pb2.CreateJobRequest, instead: str) -> None:
    """An item of a batch call asking for a dry run of itself alone: refused rather than ignored, which
    would create the job its client meant only to check."""
    if item.validate_only:
        raise errors.InvalidArgument("validate_only", f"is not taken on an item: {instead}")
