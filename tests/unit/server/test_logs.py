"""JSON log records: one object per line, with the job and trace they belong to when known."""

from __future__ import annotations

import json
import logging
import sys

from jobwarden_server import tracing
from jobwarden_server.observability import logs


def _record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord(
        "jobwarden_server.x", logging.WARNING, __file__, 1, message, args or ("you",), None
    )
    record.__dict__.update(extra)
    return record


def _formatted(record: logging.LogRecord) -> dict[str, object]:
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    decoded: dict[str, object] = json.loads(line)
    return decoded


def test_a_record_has_time_level_logger_and_message_and_nothing_unknown() -> None:
    entry = _formatted(_record())
    assert entry.keys() == {"time", "level", "logger", "message"}
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "WARNING",
        "jobwarden_server.x",
        "hello you",
    )
    assert str(entry["time"]).endswith("+00:00")


def test_the_job_comes_from_the_record_or_else_from_the_call_it_was_written_in() -> None:
    with logs.about_job("job-outer"):
        assert _formatted(_record())["job_id"] == "job-outer"
        assert _formatted(_record(job_id="job-own"))["job_id"] == "job-own"
        with logs.about_job("job-inner"):
            assert _formatted(_record())["job_id"] == "job-inner"
        assert _formatted(_record())["job_id"] == "job-outer"
    assert "job_id" not in _formatted(_record())


def test_the_trace_id_is_the_one_of_the_call_being_served() -> None:
    carried = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with tracing.rpc_span("/jobwarden.v1.JobService/GetJob", [("traceparent", carried)]):
        assert _formatted(_record())["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "trace_id" not in _formatted(_record())


def test_a_traceback_stays_inside_its_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = _formatted(record)
    assert entry["message"] == "failed"
    assert "ValueError: boom" in str(entry["exception"])
