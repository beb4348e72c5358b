"""The CLI's text rendering: event lines for every event kind, tables and JSON."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest

from jobwarden.cli import _render
from jobwarden.client import (
    Asset,
    CallbackAttempt,
    CallbackState,
    EventKind,
    Job,
    JobError,
    JobEvent,
    JobStatus,
    MessageLevel,
    Progress,
    StopReason,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def _event(kind: EventKind, **fields: object) -> JobEvent:
    return JobEvent(job_id="j1", sequence=fields.pop("sequence", 3), kind=kind, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (
            _event(EventKind.CREATED, sequence=1, actor="client:alice", to_status=JobStatus.QUEUED),
            "#1 created QUEUED (client:alice)",
        ),
        (
            _event(
                EventKind.TRANSITION,
                actor="worker:w1",
                from_status=JobStatus.QUEUED,
                to_status=JobStatus.RUNNING,
            ),
            "#3 transition QUEUED -> RUNNING (worker:w1)",
        ),
        (
            _event(
                EventKind.TRANSITION,
                sequence=9,
                actor="system",
                from_status=JobStatus.RUNNING,
                to_status=JobStatus.FAILED,
                reason="lease expired",
                stop_reason=StopReason.LEASE_EXPIRED,
            ),
            "#9 transition RUNNING -> FAILED [LEASE_EXPIRED]: lease expired (system)",
        ),
        (
            _event(
                EventKind.PROGRESS,
                sequence=4,
                actor="worker:w1",
                progress=Progress(percent=50, message="halfway"),
            ),
            "#4 progress 50% halfway",
        ),
        (
            _event(EventKind.PROGRESS, progress=Progress(percent=12.5, done=1, total=8)),
            "#3 progress 12.5% (1/8)",
        ),
        (
            _event(EventKind.ASSET_ADDED, asset=Asset(asset_type="report", uri="s3://b/r.pdf")),
            "#3 asset_added report s3://b/r.pdf",
        ),
        (_event(EventKind.LOG, message="retrying upload"), "#3 log INFO retrying upload"),
        (
            _event(EventKind.LOG, message="slow", level=MessageLevel.WARNING, data={"retry": 2, "a": [1]}),
            '#3 log WARNING slow {"a": [1], "retry": 2}',
        ),
        (_event(EventKind.LOG, level=MessageLevel.OUTPUT, data=[1, "x"]), '#3 log OUTPUT [1, "x"]'),
        (
            _event(EventKind.CANCEL_REQUESTED, actor="client:alice", reason="too slow"),
            '#3 cancel_requested "too slow" (client:alice)',
        ),
        (_event(EventKind.CANCEL_REQUESTED, actor="client:alice"), "#3 cancel_requested (client:alice)"),
        (
            _event(
                EventKind.CALLBACK_ATTEMPT,
                callback=CallbackAttempt(
                    webhook_id="msg_1",
                    attempt=2,
                    http_status=503,
                    error="HTTP 503",
                    state=CallbackState.DELIVERING,
                ),
            ),
            "#3 callback_attempt 2 HTTP 503 -> DELIVERING: HTTP 503",
        ),
        (
            _event(
                EventKind.CALLBACK_ATTEMPT,
                callback=CallbackAttempt(
                    webhook_id="msg_1", attempt=1, error="refused: x", state=CallbackState.FAILED
                ),
            ),
            "#3 callback_attempt 1 no answer -> FAILED: refused: x",
        ),
        (_event(EventKind.UNKNOWN, actor="system"), "#3 unknown (system)"),
    ],
)
def test_event_line(event: JobEvent, line: str) -> None:
    assert _render.event_line(event) == line


def test_every_event_kind_has_a_line() -> None:
    for kind in EventKind:
        assert _render.event_line(_event(kind)).startswith(f"#3 {kind.value}")


def test_units_are_not_repeated_when_the_message_says_them() -> None:
    assert _render.progress_text(Progress(percent=25, message="step 1/4", done=1, total=4)) == "25% step 1/4"
    assert _render.progress_text(Progress(percent=25, message="resizing", done=1, total=4)) == (
        "25% resizing (1/4)"
    )
    assert _render.progress_text(Progress(percent=0, done=7)) == "0% (7)"
    assert _render.units_text(Progress(message="step 1/4", done=1, total=4)) == ""
    assert _render.units_text(Progress(done=1, total=4)) == "1/4"
    assert _render.units_text(Progress(percent=50)) == ""


def _job(**fields: object) -> Job:
    base: dict[str, object] = {
        "id": "j1",
        "job_type": "thumb",
        "status": JobStatus.COMPLETED,
        "create_time": T0,
    }
    base.update(fields)
    return Job(**base)  # type: ignore[arg-type]


def test_final_line() -> None:
    assert _render.final_line(_job()) == "job j1 COMPLETED"
    failed = _job(
        status=JobStatus.FAILED,
        stop_reason=StopReason.MAX_ATTEMPTS_EXCEEDED,
        error=JobError(message="provider down"),
    )
    assert _render.final_line(failed) == "job j1 FAILED [MAX_ATTEMPTS_EXCEEDED]: provider down"


def test_jobs_table() -> None:
    table = _render.jobs_table(
        [
            _job(attempt=1, max_attempts=3, progress=Progress(percent=100)),
            _job(id="j22", status=JobStatus.RUNNING, cancel_requested=True),
        ]
    )
    assert _render.plain(table).splitlines() == [
        "ID   TYPE   STATUS                      PROGRESS  ATTEMPT  CREATED",
        "j1   thumb  COMPLETED                   100%      1/3      2026-03-01T12:00:00Z",
        "j22  thumb  RUNNING (cancel requested)  0%        0/0      2026-03-01T12:00:00Z",
    ]
    assert _render.plain(_render.jobs_table([])) == "ID  TYPE  STATUS  PROGRESS  ATTEMPT  CREATED"


def test_piped_tables_are_never_wrapped_or_cut_and_data_is_not_markup() -> None:
    long_type = "image." + "x" * 150
    text = _render.plain(_render.jobs_table([_job(id="a" * 32, job_type=long_type)]))
    row = text.splitlines()[1]
    assert row.split()[:2] == ["a" * 32, long_type]
    asset = Asset(id="a1", asset_type="[bold]x[/bold]", uri=":smile: s3://b/[1].png", size_bytes=3)
    assert _render.plain(_render.assets_table([asset])).splitlines()[1].split() == [
        "a1",
        "[bold]x[/bold]",
        "3",
        "-",
        ":smile:",
        "s3://b/[1].png",
    ]


def test_tables_on_a_terminal_are_coloured_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    def shown() -> str:
        out = Tty()
        _render.show(_render.console(out), _render.jobs_table([_job()]))
        return out.getvalue()

    monkeypatch.setenv("TERM", "xterm-256color")
    assert "\x1b[32mCOMPLETED" in shown()  # green
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[32m" not in shown() and "COMPLETED" in shown()
    piped = io.StringIO()
    monkeypatch.delenv("NO_COLOR")
    _render.show(_render.console(piped), _render.jobs_table([_job()]))
    assert "\x1b" not in piped.getvalue()


def test_job_details_skip_empty_fields() -> None:
    text = _render.job_details(_job(parameters={"n": 3.0}, result={"ok": True}, labels={"b": "2", "a": "1"}))
    assert "id:          j1" in text
    assert "labels:      a=1, b=2" in text
    assert 'result:      {"ok": true}' in text
    assert "error:" not in text and "worker:" not in text


def test_job_details_show_the_callback_and_where_it_stands() -> None:
    assert "callback:" not in _render.job_details(_job())
    job = _job(
        callback_url="https://h.example/cb",
        callback_statuses=(JobStatus.FAILED,),
        callback_state=CallbackState.DELIVERING,
        callback_attempts=2,
        callback_error="HTTP 503",
    )
    assert "callback:    https://h.example/cb (on FAILED) DELIVERING, 2 attempt(s): HTTP 503" in (
        _render.job_details(job)
    )


def test_job_details_show_the_trace_context_the_job_was_created_in() -> None:
    assert "traceparent:" not in _render.job_details(_job())
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert f"traceparent: {traceparent}" in _render.job_details(_job(traceparent=traceparent)).splitlines()


def test_to_json_is_plain_json() -> None:
    data = json.loads(_render.to_json([_job(labels={"a": "1"})]))
    assert data[0]["status"] == "COMPLETED"
    assert data[0]["create_time"] == "2026-03-01T12:00:00+00:00"
    assert data[0]["progress"] == {"percent": 0.0, "message": "", "done": 0, "total": 0}
    assert data[0]["result"] is None


def test_message_line_has_sequence_time_level_text_and_data() -> None:
    event = _event(
        EventKind.LOG, sequence=6, create_time=T0, message="retrying", level=MessageLevel.ERROR, data={"n": 2}
    )
    assert _render.message_line(event) == '#6 2026-03-01T12:00:00Z ERROR retrying {"n": 2}'
