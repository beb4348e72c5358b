"""How the HTTP API answers: JSON bodies, and one error shape for every refusal.

An error is `{"error": {"status": ..., "reason": ..., "message": ..., "field": ...}}`, the reason
being the same ErrorReason name gRPC callers get in ErrorInfo, with the HTTP status matching the gRPC
code (the table in api/errors.py, read through `code_for`, so the two ports can never disagree).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import grpc
from aiohttp import web

from jobwarden_server.api.errors import code_for
from jobwarden_server.domain import errors

logger = logging.getLogger(__name__)

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
}


def ok(body: Any, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.Response(
        text=json.dumps(body, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def error(err: errors.DomainError) -> web.Response:
    """The JSON refusal for a domain error."""
    status = HTTP_STATUS.get(code_for(err), 500)
    body: dict[str, Any] = {"status": status, "reason": err.reason, "message": err.message}
    if isinstance(err, errors.InvalidArgument):
        body["field"] = err.field
    response = ok({"error": body}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="jobwarden"'
    return response
