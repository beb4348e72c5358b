"""How the SDK opens its gRPC channel: options, retry policy and credentials metadata."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.aio

import jobwarden

DEFAULT_TARGET = "127.0.0.1:50051"
"""Where ``jobwarden serve`` listens unless told otherwise."""

DEFAULT_TIMEOUT = 30.0
"""Seconds a unary call may take before it fails with DEADLINE_EXCEEDED."""

# Parameters and results are capped at 1 MiB each by the server, so a page of jobs can be far larger
# than gRPC's 4 MiB default receive limit; requests stay small.
MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_SEND_MESSAGE_BYTES = 8 * 1024 * 1024

# gRPC retries a call itself only when it failed with UNAVAILABLE, i.e. when the server never
# processed it or said "try again" (store busy, shutting down). Every mutating call carries a
# request_id, so even a retry of a call that did take effect is answered with the first result.
_SERVICE_CONFIG: dict[str, Any] = {
    "methodConfig": [
        {
            "name": [{"service": "jobwarden.v1.JobService"}, {"service": "jobwarden.v1.WorkerService"}],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.2s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


def channel_options(extra: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """Returns the channel options the SDK uses, followed by ``extra`` (later options win)."""
    return [
        ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_SEND_MESSAGE_BYTES),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(_SERVICE_CONFIG)),
        ("grpc.primary_user_agent", f"jobwarden-python/{jobwarden.__version__}"),
        *extra,
    ]


def reconnect_options(max_backoff: float) -> list[tuple[str, Any]]:
    """Channel options capping gRPC's reconnect backoff at ``max_backoff`` seconds.

    gRPC starts at 1 s and grows to 120 s; the first wait must not exceed the cap either.
    """
    max_ms = max(1, round(max_backoff * 1000))
    return [
        ("grpc.initial_reconnect_backoff_ms", min(1000, max_ms)),
        ("grpc.max_reconnect_backoff_ms", max_ms),
    ]


def create_channel(
    target: str,
    *,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """Opens an asyncio channel to a jobwarden server.

    Must be called with an event loop running: an aio channel belongs to the loop it was created on.

    Args:
        target: ``host:port`` of the server.
        credentials: TLS credentials; None opens a plaintext channel.
        options: Extra gRPC channel options.

    Returns:
        The channel; the caller closes it.
    """
    opts = channel_options(options)
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=opts)
    return grpc.aio.secure_channel(target, credentials, options=opts)


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Returns the per-call metadata carrying ``token``.

    The token travels as plain call metadata, not as ``CallCredentials``: gRPC refuses call
    credentials on a plaintext channel, and local deployments run without TLS.
    """
    if not token:
        return ()
    return (("authorization", f"Bearer {token}"),)
