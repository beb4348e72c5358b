"""The public surface of the SDK is pinned: a change here is an API change, made on purpose."""

from __future__ import annotations

import importlib
import subprocess
import sys

import jobwarden.client
from jobwarden import errors

CLIENT_EXPORTS = [
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "Asset",
    "BatchCounts",
    "CallbackAttempt",
    "CallbackState",
    "Claim",
    "Client",
    "DurationStats",
    "EventKind",
    "Handler",
    "HandlerResult",
    "Job",
    "JobContext",
    "JobError",
    "JobEvent",
    "JobMessage",
    "JobStats",
    "JobStatus",
    "JobTypeStats",
    "Lifecycle",
    "MessageLevel",
    "NewJob",
    "PartialResult",
    "PermanentError",
    "Progress",
    "RetryPolicy",
    "Stall",
    "StopReason",
    "TlsOptions",
    "WatchReconnect",
    "Worker",
    "current_trace_id",
]

ERROR_EXPORTS = [
    "DOMAIN",
    "Aborted",
    "AlreadyExists",
    "CallbackTargetRefused",
    "Cancelled",
    "DataLoss",
    "DeadlineExceeded",
    "EtagMismatch",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "InvalidPageToken",
    "InvalidTransition",
    "JobNotTerminal",
    "JobwardenError",
    "LeaseLost",
    "LifecycleNotConfigured",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ProgressOutOfRange",
    "RequestIdMismatch",
    "ResourceExhausted",
    "ShuttingDown",
    "StoreUnavailable",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "WatcherTooSlow",
    "from_rpc_error",
    "from_status",
]


def test_client_exports_are_pinned() -> None:
    assert jobwarden.client.__all__ == CLIENT_EXPORTS
    for name in CLIENT_EXPORTS:
        assert getattr(jobwarden.client, name) is not None


def test_error_exports_are_pinned() -> None:
    assert errors.__all__ == ERROR_EXPORTS
    for name in ERROR_EXPORTS:
        assert getattr(errors, name) is not None


def test_public_names_come_from_private_modules() -> None:
    public_modules = [
        m
        for m in vars(jobwarden.client).values()
        if getattr(m, "__name__", "").startswith("jobwarden.client.")
    ]
    assert all(m.__name__.split(".")[-1].startswith("_") for m in public_modules)


def test_every_error_class_is_exported() -> None:
    classes = {
        name
        for name, value in vars(errors).items()
        if isinstance(value, type) and issubclass(value, errors.JobwardenError)
    }
    assert classes <= set(ERROR_EXPORTS)


def test_importing_the_sdk_and_cli_does_not_import_the_server() -> None:
    # A fresh interpreter: the server is an optional extra and must load only for serve/migrate.
    code = (
        "import sys, jobwarden.client, jobwarden.errors, jobwarden.cli.main; "
        "print(any(m.startswith('jobwarden_server') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_cli_entry_point_resolves() -> None:
    module = importlib.import_module("jobwarden.cli.main")
    assert callable(module.main)
