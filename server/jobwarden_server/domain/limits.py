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
MAX_CREATE_BATCH = 1000
"""Jobs one CreateJobs call may carry: bounds the call's transaction (and so how long it holds the
SQLite write lock) and its reply."""
MAX_STATS_TYPES = 100
"""Job types one GetJobStats call may name."""
MAX_URL = 2048
MAX_BACKOFF_S = 86400.0
MIN_QUEUE_TIMEOUT_S = 1.0
MAX_QUEUE_TIMEOUT_S = 366 * 86400.0
"""A queue timeout (schedule-to-start) is between a second and a year."""
MAX_BACKOFF_MULTIPLIER = 10.0
MAX_SAFE_INTEGER = 2**53 - 1
"""Numbers in parameters and results travel as IEEE doubles (google.protobuf.Struct), which hold every
integer up to this magnitude exactly and no integer beyond it (JavaScript's Number.MAX_SAFE_INTEGER)."""

_JOB_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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


def check_count(field: str, count: int, high: int) -> int:
    """A repeated field that must hold 1..high items; more is TOO_LARGE."""
    if count < 1:
        raise InvalidArgument(field, "must hold at least one item")
    if count > high:
        raise too_large(field, f"holds {count} items; at most {high} are allowed")
    return count


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
    """Parameters and results: JSON objects of at most 1 MiB (encoded), with finite numbers no larger
    in magnitude than MAX_SAFE_INTEGER."""
    try:
        encoded = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError as err:
        raise InvalidArgument(field, "numbers must be finite") from err
    if len(encoded) > MAX_STRUCT_BYTES:
        raise too_large(field, f"is larger than {MAX_STRUCT_BYTES} bytes")
    check_safe_numbers(field, value)
    return dict(value)


def check_safe_numbers(field: str, value: Any) -> None:
    """Refuse any number beyond ±MAX_SAFE_INTEGER, naming its path (``parameters.ids[3]``).

    Past 2^53 a double cannot tell neighbouring integers apart, so an id or a counter there would come
    back as a different number; refusing it is better than rounding it without a word."""
    found = _unsafe_number(value)
    if found is None:
        return
    number, steps = found
    path = "".join(reversed(steps))
    if len(path) > MAX_LABEL_TEXT:  # deep nesting: keep the end, which names the number
        path = "..." + path[-MAX_LABEL_TEXT:]
    raise InvalidArgument(
        field + path,
        f"{number!r} is beyond ±{MAX_SAFE_INTEGER} (2^53 - 1), the largest integer a JSON number "
        "(an IEEE double) holds exactly; send such values as strings",
    )


def _unsafe_number(value: Any) -> tuple[float, list[str]] | None:
    """The first number beyond ±MAX_SAFE_INTEGER and its path, innermost step first; None if none."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _unsafe_number(item)
            if found is not None:
                found[1].append(_key_step(str(key)))
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _unsafe_number(item)
            if found is not None:
                found[1].append(f"[{index}]")
                return found
    elif isinstance(value, int | float) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        return value, []
    return None


def _key_step(key: str) -> str:
    """``.width`` for a short plain key; ``["a.b"]`` for one that would not read as one step of a path.

    Keys are cut to 40 characters, as in check_string_map: the path travels in response trailers."""
    return f".{key}" if len(key) <= 40 and _PLAIN_KEY.match(key) else f"[{json.dumps(key[:40])}]"


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


def check_queue_timeout(field: str, seconds: float | None) -> float | None:
    """A queue timeout, if given, within MIN_QUEUE_TIMEOUT_S..MAX_QUEUE_TIMEOUT_S."""
    if seconds is not None and not MIN_QUEUE_TIMEOUT_S <= seconds <= MAX_QUEUE_TIMEOUT_S:
        raise InvalidArgument(field, f"must be between {MIN_QUEUE_TIMEOUT_S:g} s and 366 days")
    return seconds
