"""The server's log records: plain text (the default) or one JSON object per line.

A JSON record carries time, level, logger and message, plus the job and trace it belongs to when
they are known: `job_id` from the record itself (`extra={"job_id": ...}`) or else from the context of
the call that wrote it (`about_job`, set by the RPC interceptor and the write entry); `trace_id` from
tracing.current_trace_id (the active OpenTelemetry span's, else the trace the RPC being served carried),
so it is there with or without OpenTelemetry installed.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys

from jobwarden_server import tracing

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

JOB_ID: contextvars.ContextVar[str] = contextvars.ContextVar("jobwarden_job_id", default="")
"""The job the current call is about ("" when none)."""


class about_job:  # used as a function: `with about_job(job_id):`
    """Records written inside the block belong to `job_id` (nested blocks: the innermost job).

    A class, not a generator-based context manager: every change of a job opens one, and this costs
    a fraction of what contextlib's wrapper does."""

    __slots__ = ("_job_id", "_token")

    def __init__(self, job_id: str) -> None:
        self._job_id = job_id

    def __enter__(self) -> None:
        self._token = JOB_ID.set(self._job_id)

    def __exit__(self, *_: object) -> None:
        try:
            JOB_ID.reset(self._token)
        except ValueError:
            # Only a streaming handler's generator closed from another task's context (left
            # unfinished and finalized later) gets here: there is nothing of ours to restore there.
            pass


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback goes in its "exception" field)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", "") or JOB_ID.get()
        if job_id:
            entry["job_id"] = job_id
        trace_id = tracing.current_trace_id()
        if trace_id:
            entry["trace_id"] = trace_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(level: str, log_format: str) -> None:
    """Send the server's records to stderr at `level`, as text or JSON (one of LOG_FORMATS)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
