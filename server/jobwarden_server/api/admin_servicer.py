"""AdminService over gRPC: decode, call the service, encode. The guard lets only admins in (before the
request is even checked) and maps errors."""

from __future__ import annotations

from typing import Any

import grpc

from jobwarden.v1 import admin_service_pb2, admin_service_pb2_grpc
from jobwarden_server.api import convert
from jobwarden_server.api.auth import current_principal
from jobwarden_server.domain import admin, limits
from jobwarden_server.service.admin import AdminService

Context = grpc.aio.ServicerContext[Any, Any]


def _id(field: str, value: str) -> str:
    return limits.check_text(field, value, limit=limits.MAX_ID, required=True)


class AdminServicer(admin_service_pb2_grpc.AdminServiceServicer):
    """The operators' API."""

    def __init__(self, service: AdminService) -> None:
        self._admin = service

    async def SetJobStatus(
        self, request: admin_service_pb2.SetJobStatusRequest, context: Context
    ) -> admin_service_pb2.SetJobStatusResponse:
        job_id = _id("job_id", request.job_id)
        to = admin.check_target("status", convert.status_in("status", request.status))
        reason = limits.check_text("reason", request.reason, required=True)
        job = await self._admin.set_status(
            current_principal(),
            job_id,
            to,
            reason=reason,
            force=request.force,
            request=convert.request_of(request),
            validate_only=request.validate_only,
        )
        return admin_service_pb2.SetJobStatusResponse(job=convert.job_out(job))

    async def RetryJob(
        self, request: admin_service_pb2.RetryJobRequest, context: Context
    ) -> admin_service_pb2.RetryJobResponse:
        job = await self._admin.retry(
            current_principal(),
            _id("job_id", request.job_id),
            request=convert.request_of(request),
            validate_only=request.validate_only,
        )
        return admin_service_pb2.RetryJobResponse(job=convert.job_out(job))
