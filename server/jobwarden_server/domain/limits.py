"""Input limits and the checks that enforce them. Each failed check raises InvalidArgument naming the field.

They live in the domain so every entry point (gRPC today, anything else tomorrow) enforces the same.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from jobwarden_server.domain.errors import InvalidArgument
from jobwarden_server.domain.records import Progress
from jobwarden_server.domain.status import WORKER_STOP_REASONS, StopReason

MAX_ID = 128
MAX_TEXT = 4096
MAX_LABELS = 64
MAX_LABEL_TEXT = 256
MAX_STRUCT_BYTES = 1 << 20
MAX_PRIORITY = 1000
MAX_ATTEMPTS = 100
MAX_CLAIM = 100
MAX_URL = 2048
MAX_BACKOFF_S = 86400.0
MAX_BACKOFF_MULTIPLIER = 10.0

_JOB_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def too_large(field: str, message: str) -> InvalidArgument:
    """An InvalidArgument with the TOO_LARGE reason."""
    return InvalidArgument(field, message, reason="TOO_LARGE")


def check_text(field: str, value: str, *, limit: int = MAX_TEXT, required: bool = False) -> str:
    """A string field: required means non-blank; over `limit` characters is TOO_LARGE."""
    if required and not value.strip():
        raise InvalidArgument(field, "is required")
    if len(value) > limit:
        raise too_large(field, f"is longer than {limit} characters")
    return value


def check_job_type(field: str, value: str) -> str:
    """Job types name handler kinds: short, printable, no spaces."""
    check_text(field, value, limit=MAX_ID, required=True)
    if not _JOB_TYPE.match(value):
        raise InvalidArgument(
            field, "may hold only letters, digits and . _ / - (starting with a letter or digit)"
        )
    return value


def check_int(field: str, value: int, low: int, high: int) -> int:
    """An integer within [low, high]."""
    if not low <= value <= high:
        raise InvalidArgument(field, f"must be between {low} and {high}, got {value}")
    return value


def check_string_map(field: str, values: Mapping[str, str], *, max_items: int = MAX_LABELS) -> dict[str, str]:
    """Labels and metadata: bounded count, non-empty bounded keys, bounded values."""
    if len(values) > max_items:
        raise too_large(field, f"has more than {max_items} entries")
    for key, value in values.items():
        if not key:
            raise InvalidArgument(field, "keys must not be empty")
        check_text(f"{field}[{key[:40]}]", key, limit=MAX_LABEL_TEXT)
        check_text(f"{field}[{key[:40]}]", value, limit=MAX_LABEL_TEXT)
    return dict(values)


def check_struct(field: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters and results: JSON objects of at most 1 MiB (encoded), with finite numbers."""
    try:
        encoded = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError as err:
        raise InvalidArgument(field, "numbers must be finite") from err
    if len(encoded) > MAX_STRUCT_BYTES:
        raise too_large(field, f"is larger than {MAX_STRUCT_BYTES} bytes")
    return dict(value)


def check_progress(field: str, progress: Progress) -> Progress:
    """Percent in 0..100, done/total non-negative, done <= total when total is set."""
    if not math.isfinite(progress.percent) or not 0.0 <= progress.percent <= 100.0:
        raise InvalidArgument(
            f"{field}.percent",
            f"must be between 0 and 100, got {progress.percent}",
            reason="PROGRESS_OUT_OF_RANGE",
        )
    if progress.done < 0 or progress.total < 0 or (progress.total and progress.done > progress.total):
        raise InvalidArgument(
            f"{field}.done", "done and total must be >= 0 and done <= total", reason="PROGRESS_OUT_OF_RANGE"
        )
    check_text(f"{field}.message", progress.message)
    return progress


def check_sha256(field: str, value: str) -> str:
    """Empty, or 64 lowercase hex characters."""
    if value and not _SHA256.match(value):
        raise InvalidArgument(field, "must be 64 lowercase hex characters")
    return value


def check_url(field: str, value: str) -> str:
    """Empty, or an http(s) URL."""
    check_text(field, value, limit=MAX_URL)
    if value and not value.startswith(("http://", "https://")):
        raise InvalidArgument(field, "must be an http:// or https:// URL")
    return value


def check_worker_stop_reason(field: str, value: StopReason) -> StopReason:
    """A stop reason a worker may give; the server-owned ones are refused."""
    if value not in WORKER_STOP_REASONS:
        allowed = ", ".join(sorted(r.value for r in WORKER_STOP_REASONS if r is not StopReason.UNSPECIFIED))
        raise InvalidArgument(field, f"{value.value} is set only by the server; a worker may give {allowed}")
    return value
