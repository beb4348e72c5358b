"""ErrorInfo.reason as the proto documents it: the ErrorReason value's name without its ERROR_REASON_
prefix, in domain jobwarden.dev. A client generated in any language finds the enum value by prepending
the prefix; these tests do exactly that from raw stubs, with no SDK in between."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2
from support import flows, rpc

from jobwarden.v1 import error_reason_pb2, job_service_pb2, worker_service_pb2

ErrorReason = error_reason_pb2.ErrorReason


def _as_enum(failure: rpc.RpcFailure) -> int:
    """What a generated client does with a received reason: look it up in the ErrorReason enum."""
    return ErrorReason.Value(f"ERROR_REASON_{failure.reason}")


async def test_each_reason_names_an_error_reason_value(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs, request_id="r-1")
    claim = await flows.claim_one(stubs)
    provoked = {
        ErrorReason.ERROR_REASON_NOT_FOUND: stubs.jobs.GetJob(
            job_service_pb2.GetJobRequest(job_id="missing")
        ),
        ErrorReason.ERROR_REASON_INVALID_TRANSITION: stubs.jobs.ReleaseJob(
            job_service_pb2.ReleaseJobRequest(job_id=job.id)
        ),
        ErrorReason.ERROR_REASON_LEASE_LOST: stubs.workers.CompleteJob(
            worker_service_pb2.CompleteJobRequest(job_id=job.id, lease_token="stale")
        ),
        ErrorReason.ERROR_REASON_PROGRESS_OUT_OF_RANGE: flows.progress(stubs, claim, 101),
        ErrorReason.ERROR_REASON_REQUEST_ID_MISMATCH: flows.create(stubs, "other", request_id="r-1"),
        ErrorReason.ERROR_REASON_INVALID_PAGE_TOKEN: stubs.jobs.ListJobs(
            job_service_pb2.ListJobsRequest(page_token="garbage")
        ),
    }
    for expected, call in provoked.items():
        failure = await rpc.fails(call)
        assert not failure.reason.startswith("ERROR_REASON_"), failure
        assert _as_enum(failure) == expected, failure


async def test_every_reason_is_in_the_jobwarden_domain(stubs: rpc.Stubs) -> None:
    try:
        await stubs.jobs.GetJob(job_service_pb2.GetJobRequest(job_id="missing"))
    except grpc.aio.AioRpcError as err:
        details = dict(err.trailing_metadata() or ())["grpc-status-details-bin"]
    else:
        raise AssertionError("GetJob of a missing job succeeded")
    status = status_pb2.Status.FromString(details)
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.domain, info.reason) == ("jobwarden.dev", "NOT_FOUND")
