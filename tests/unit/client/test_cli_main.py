"""The jobwarden command against a fake client: arguments, output, error lines and exit codes."""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import re
import sys
import types
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Self

import grpc
import pytest

from jobwarden import errors
from jobwarden.cli import main as cli
from jobwarden.client import (
    EventKind,
    Job,
    JobError,
    JobEvent,
    JobStatus,
    Progress,
    TlsOptions,
    WatchReconnect,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class FakeClient:
    """Stands in for jobwarden.client.Client; records how it was built and called."""

    instances: ClassVar[list[FakeClient]] = []

    pages: ClassVar[int] = 1
    """How many pages of jobs list_jobs has (every page holds what was asked for)."""
    outage: ClassVar[bool] = False
    """Whether watch_job reports a broken stream, reopened twice, before its last event."""

    def __init__(
        self,
        target: str,
        token: str | None = None,
        *,
        tls: TlsOptions | bool = False,
        max_reconnect_backoff: float | None = None,
    ) -> None:
        self.target, self.token, self.tls = target, token, tls
        self.max_reconnect_backoff = max_reconnect_backoff
        self.calls: list[tuple[str, Any]] = []
        self.error: errors.JobwardenError | None = None
        self.final = JobStatus.COMPLETED
        FakeClient.instances.append(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def _job(self, job_id: str = "j1", status: JobStatus = JobStatus.QUEUED, **fields: Any) -> Job:
        return Job(id=job_id, job_type="thumb", status=status, create_time=T0, **fields)

    async def create_job(self, job_type: str, parameters: Mapping[str, Any], **kwargs: Any) -> Job:
        self.calls.append(("create_job", {"job_type": job_type, "parameters": dict(parameters), **kwargs}))
        return self._job(parameters=dict(parameters), labels=kwargs["labels"])

    async def get_job(self, job_id: str) -> Job:
        if self.error is not None:
            raise self.error
        error = None if self.final == JobStatus.COMPLETED else JobError(message="provider down")
        return self._job(job_id, self.final, error=error)

    async def list_jobs(self, **filters: Any) -> tuple[list[Job], str]:
        self.calls.append(("list_jobs", filters))
        page = int(filters["page_token"] or 0)
        jobs = [self._job(f"j{page}.{i}") for i in range(filters["page_size"])]
        return jobs, str(page + 1) if page + 1 < self.pages else ""

    async def cancel_job(
        self, job_id: str, reason: str = "", etag: str = "", *, validate_only: bool = False
    ) -> Job:
        self.calls.append(
            ("cancel_job", (job_id, reason, etag) + (("validate_only",) if validate_only else ()))
        )
        return self._job(job_id, JobStatus.RUNNING, cancel_requested=True)

    async def watch_job(
        self,
        job_id: str,
        after_sequence: int = 0,
        *,
        on_reconnect: Callable[[WatchReconnect], object] | None = None,
        **options: Any,
    ) -> AsyncIterator[Job | JobEvent]:
        self.calls.append(("watch_job", options))
        yield self._job(job_id)
        yield JobEvent(
            job_id=job_id,
            sequence=2,
            actor="worker:w1",
            kind=EventKind.TRANSITION,
            from_status=JobStatus.QUEUED,
            to_status=JobStatus.RUNNING,
        )
        yield JobEvent(
            job_id=job_id,
            sequence=3,
            kind=EventKind.PROGRESS,
            progress=Progress(percent=50, message="halfway"),
        )
        if self.outage and on_reconnect is not None:
            down = errors.Unavailable("connection refused")
            on_reconnect(WatchReconnect(attempt=1, error=down, delay=0.6))
            on_reconnect(WatchReconnect(attempt=2, error=down, delay=1.5))
            on_reconnect(WatchReconnect(attempt=2, error=None))
        yield JobEvent(
            job_id=job_id,
            sequence=4,
            actor="worker:w1",
            kind=EventKind.TRANSITION,
            from_status=JobStatus.RUNNING,
            to_status=JobStatus.COMPLETED,
        )

    async def iter_job_events(self, job_id: str) -> AsyncIterator[JobEvent]:
        yield JobEvent(
            job_id=job_id, sequence=1, actor="client:me", kind=EventKind.CREATED, to_status=JobStatus.QUEUED
        )

    async def iter_assets(self, job_id: str) -> AsyncIterator[Any]:
        for _ in ():
            yield _


@pytest.fixture(autouse=True)
def fake_client(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    FakeClient.instances = []
    FakeClient.pages = 1
    FakeClient.outage = False
    monkeypatch.setattr(cli, "Client", FakeClient)
    monkeypatch.delenv("JOBWARDEN_ADDRESS", raising=False)
    monkeypatch.delenv("JOBWARDEN_TOKEN", raising=False)
    for name in ("JOBWARDEN_TLS_CA", "JOBWARDEN_TLS_CERT", "JOBWARDEN_TLS_KEY"):
        monkeypatch.delenv(name, raising=False)
    return FakeClient


def _failing(error: errors.JobwardenError) -> type[FakeClient]:
    class Failing(FakeClient):
        def __init__(self, target: str, token: str | None = None, **kwargs: Any) -> None:
            super().__init__(target, token, **kwargs)
            self.error = error

    return Failing


def test_create_prints_the_id_and_parses_params(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        [
            "jobs",
            "create",
            "thumb",
            "--params",
            '{"a": 1, "n": 0}',
            "--param",
            "n=3",
            "--param",
            "name=cat.png",
            "--param",
            'quoted="3"',
            "--label",
            "team=media",
            "--hold",
            "--request-id",
            "r1",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out == "j1\n"
    (name, call), *_ = FakeClient.instances[0].calls
    assert name == "create_job"
    assert call["parameters"] == {"a": 1, "n": 3, "name": "cat.png", "quoted": "3"}
    assert call["labels"] == {"team": "media"}
    assert call["hold"] is True and call["request_id"] == "r1"


def test_create_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["jobs", "create", "thumb", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "j1"


def test_address_and_token_from_env_flags_and_after_the_subcommand(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBWARDEN_ADDRESS", "env:1")
    monkeypatch.setenv("JOBWARDEN_TOKEN", "t-env")
    assert cli.main(["jobs", "get", "j1"]) == 0
    assert cli.main(["--address", "flag:2", "jobs", "get", "j1"]) == 0
    assert cli.main(["jobs", "get", "j1", "--address", "late:3", "--token", "t-late"]) == 0
    seen = [(c.target, c.token) for c in FakeClient.instances]
    assert seen == [("env:1", "t-env"), ("flag:2", "t-env"), ("late:3", "t-late")]


def test_list_is_newest_first_and_passes_the_filters(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["jobs", "list", "--status", "queued", "--type", "thumb", "--limit", "2"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["ID", "TYPE", "STATUS", "PROGRESS", "ATTEMPT", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == ["j0.0", "j0.1"]
    assert captured.err == ""  # one page, and nothing more to see
    filters = FakeClient.instances[0].calls[0][1]
    assert filters["statuses"] == [JobStatus.QUEUED] and filters["job_types"] == ["thumb"]
    assert filters["descending"] is True and filters["page_size"] == 2 and filters["page_token"] == ""


def test_list_oldest_first_and_from_a_page_token() -> None:
    assert cli.main(["jobs", "list", "--oldest-first", "--page-token", "7"]) == 0
    assert cli.main(["jobs", "list", "--desc"]) == 0  # the old spelling of the default is still accepted
    (_, oldest), (_, newest) = (c.calls[0] for c in FakeClient.instances)
    assert (oldest["descending"], oldest["page_token"]) == (False, "7")
    assert newest["descending"] is True


def test_list_fetches_pages_up_to_the_limit_and_says_how_to_see_more(
    capsys: pytest.CaptureFixture[str],
) -> None:
    FakeClient.pages = 3
    assert cli.main(["jobs", "list", "--limit", "700", "--json"]) == 0
    captured = capsys.readouterr()
    assert len(json.loads(captured.out)) == 700
    # Pages end exactly at the limit, so the token left over resumes right after the last job shown.
    assert [c[1]["page_size"] for c in FakeClient.instances[0].calls] == [500, 200]
    assert captured.err == (
        "… more jobs; use --limit N for more at once, or --page-token 2 for the next ones\n"
    )

    assert cli.main(["jobs", "list", "--limit", "2000"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 + 1500
    assert captured.err == ""


def test_cancel_of_a_running_job(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["jobs", "cancel", "j1", "--reason", "too slow"]) == 0
    assert "cancel requested" in capsys.readouterr().out
    assert FakeClient.instances[0].calls == [("cancel_job", ("j1", "too slow", ""))]


def test_watch_piped_prints_one_line_per_event_and_exits_0_when_completed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["jobs", "watch", "j1"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "job j1 (thumb) QUEUED 0%",
        "#2 transition QUEUED -> RUNNING (worker:w1)",
        "#3 progress 50% halfway",
        "#4 transition RUNNING -> COMPLETED (worker:w1)",
        "job j1 COMPLETED",
    ]
    # The CLI asks the SDK to come back quickly after an outage, and patiently.
    assert FakeClient.instances[0].calls == [("watch_job", {"max_backoff": 2.0, "resume_attempts": 60})]
    assert FakeClient.instances[0].max_reconnect_backoff == 2.0


def test_watch_exits_4_when_the_job_did_not_complete(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Failed(FakeClient):
        def __init__(self, target: str, token: str | None = None, **kwargs: Any) -> None:
            super().__init__(target, token, **kwargs)
            self.final = JobStatus.FAILED

    monkeypatch.setattr(cli, "Client", Failed)
    assert cli.main(["jobs", "watch", "j1"]) == 4
    assert capsys.readouterr().out.splitlines()[-1] == "job j1 FAILED: provider down"


def test_events(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["jobs", "events", "j1"]) == 0
    assert capsys.readouterr().out == "#1 created QUEUED (client:me)\n"


def test_a_server_error_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        cli, "Client", _failing(errors.NotFound("job nope not found", code=grpc.StatusCode.NOT_FOUND))
    )
    assert cli.main(["jobs", "get", "nope"]) == 1
    captured = capsys.readouterr()
    assert captured.err == "error: NOT_FOUND: job nope not found\n"
    assert captured.out == ""


def test_field_violations_are_shown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    err = errors.InvalidArgument(
        "invalid request",
        field_violations=[errors.FieldViolation(field="job_id", description="must not be empty")],
    )
    monkeypatch.setattr(cli, "Client", _failing(err))
    assert cli.main(["jobs", "get", "x"]) == 1
    assert capsys.readouterr().err == "error: INVALID_ARGUMENT: invalid request (job_id: must not be empty)\n"


@pytest.mark.parametrize(
    "error",
    [errors.Unavailable("failed to connect to all addresses"), errors.DeadlineExceeded("Deadline Exceeded")],
)
def test_unreachable_is_exit_3(
    error: errors.JobwardenError, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "Client", _failing(error))
    assert cli.main(["--address", "h:1", "jobs", "get", "x"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "the server at h:1" in err and err.count("\n") == 1


def test_usage_errors_are_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert cli.main(["jobs", "create"]) == 2
    assert cli.main(["jobs", "create", "t", "--param", "novalue"]) == 2
    assert cli.main(["jobs", "list", "--status", "sleeping"]) == 2
    assert cli.main(["jobs", "list", "--limit", "0"]) == 2
    assert cli.main(["jobs", "get", "j1", "--bogus"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_help_is_exit_0_and_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit status:" in out and "130" in out


def test_serve_delegates_to_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def server_main(argv: list[str]) -> int:
        seen.append(argv)
        return 7

    def fake_import(name: str) -> types.ModuleType:
        assert name == "jobwarden_server.app"
        return types.SimpleNamespace(main=server_main)  # type: ignore[return-value]

    monkeypatch.setattr(cli.importlib, "import_module", fake_import)
    assert cli.main(["serve", "--listen", "127.0.0.1:0", "--help"]) == 7
    assert cli.main(["migrate"]) == 7
    assert seen == [["serve", "--listen", "127.0.0.1:0", "--help"], ["migrate"]]


def test_serve_without_the_server_installed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(name: str) -> types.ModuleType:
        raise ModuleNotFoundError("No module named 'sqlalchemy'", name="sqlalchemy")

    monkeypatch.setattr(cli.importlib, "import_module", missing)
    assert cli.main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "pip install 'jobwarden[server]'" in err


def test_unexpected_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class Broken(FakeClient):
        async def get_job(self, job_id: str) -> Job:
            raise RuntimeError("kaput")

    monkeypatch.setattr(cli, "Client", Broken)
    assert cli.main(["jobs", "get", "x"]) == 1
    assert capsys.readouterr().err == "error: RuntimeError: kaput\n"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> _Tty:
    """stdout as an interactive terminal, 120 columns, without colour (so the text can be compared).

    Called in the test itself: pytest sets sys.stdout to its capture again after fixtures ran.
    """
    out = _Tty()
    monkeypatch.setattr(sys, "stdout", out)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "120")
    return out


def test_watch_on_a_terminal_draws_a_live_bar_that_stays_full(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _on_a_terminal(monkeypatch)
    assert cli.main(["jobs", "watch", "j1"]) == 0
    text = terminal.getvalue()
    lines = [frame.rstrip() for line in text.split("\n") for frame in line.split("\r\x1b[2K")]
    # Transitions get a line of their own; progress only moves the bar.
    assert "#2 transition QUEUED -> RUNNING (worker:w1)" in lines
    assert "#3 progress" not in text
    assert any(re.fullmatch(r"RUNNING   ━{15} +50%  \d:\d\d:\d\d  halfway", line) for line in lines)
    # The bar stays at the end, full, followed by the summary line.
    bar, summary = [line for line in text.split("\n") if line][-2:]
    status, full, percent, elapsed = bar.split("\r\x1b[2K")[-1].split()
    assert (status, full, percent) == ("COMPLETED", "━" * 30, "100%")
    assert re.fullmatch(r"\d:\d\d:\d\d", elapsed)
    assert summary.endswith("job j1 COMPLETED")
    assert "\x1b[3" not in text  # NO_COLOR: no colour codes


def test_watch_says_when_it_reconnects_on_stderr_when_piped(capsys: pytest.CaptureFixture[str]) -> None:
    FakeClient.outage = True
    assert cli.main(["jobs", "watch", "j1"]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "reconnecting to 127.0.0.1:50051… (attempt 1, UNAVAILABLE)",
        "reconnecting to 127.0.0.1:50051… (attempt 2, UNAVAILABLE)",
        "reconnected to 127.0.0.1:50051",
    ]
    assert captured.out.splitlines()[-2:] == [
        "#4 transition RUNNING -> COMPLETED (worker:w1)",
        "job j1 COMPLETED",
    ]


def test_watch_on_a_terminal_shows_reconnecting_in_the_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _on_a_terminal(monkeypatch)
    FakeClient.outage = True
    assert cli.main(["jobs", "watch", "j1"]) == 0
    frames = [frame.rstrip() for frame in terminal.getvalue().replace("\n", "\r\x1b[2K").split("\r\x1b[2K")]
    reconnecting = frames.index("reconnecting to 127.0.0.1:50051… (attempt 1, UNAVAILABLE)")
    back = frames.index("reconnected to 127.0.0.1:50051")
    assert reconnecting < back
    assert any(f.startswith("reconnecting… ") for f in frames[reconnecting:back])
    # The status is back once the stream is (the redraw that follows the line may still be the old one).
    after = [f for f in frames[back + 1 :] if f and not f.startswith("reconnecting… ")]
    assert after[0].startswith("RUNNING ")


def test_violations_repeating_the_message_are_not_repeated(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    err = errors.InvalidArgument(
        "job_type: is required",
        field_violations=[errors.FieldViolation(field="job_type", description="job_type: is required")],
    )
    monkeypatch.setattr(cli, "Client", _failing(err))
    assert cli.main(["jobs", "get", "x"]) == 1
    assert capsys.readouterr().err == "error: INVALID_ARGUMENT: job_type: is required\n"


def test_tls_is_off_unless_asked_and_any_tls_option_turns_it_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("ca", "cert", "key"):
        (tmp_path / f"{name}.pem").write_bytes(f"PEM {name}".encode())
    assert cli.main(["jobs", "get", "j1"]) == 0
    assert cli.main(["--tls", "jobs", "get", "j1"]) == 0
    assert cli.main(["jobs", "get", "j1", "--tls-ca", str(tmp_path / "ca.pem")]) == 0
    monkeypatch.setenv("JOBWARDEN_TLS_CERT", str(tmp_path / "cert.pem"))
    monkeypatch.setenv("JOBWARDEN_TLS_KEY", str(tmp_path / "key.pem"))
    assert cli.main(["jobs", "get", "j1"]) == 0
    off, system, ca, mutual = (c.tls for c in FakeClient.instances)
    assert off is False and system is True
    assert ca == TlsOptions(ca_cert=b"PEM ca")
    assert mutual == TlsOptions(client_cert=b"PEM cert", client_key=b"PEM key")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-cert", "c.pem"], "error: --tls-cert and --tls-key go together; give both or neither\n"),
        (
            ["--tls-ca", "missing.pem"],
            "error: --tls-ca: cannot read missing.pem (No such file or directory)\n",
        ),
    ],
)
def test_wrong_tls_options_are_usage_errors_without_a_connection(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert cli.main(["jobs", "get", "j1", *args]) == 2
    assert capsys.readouterr().err == message
    assert FakeClient.instances == []


def _created_parameters() -> dict[str, Any]:
    (name, call), *_ = FakeClient.instances[-1].calls
    assert name == "create_job"
    parameters: dict[str, Any] = call["parameters"]
    return parameters


def test_params_inline_from_a_file_and_from_stdin(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "params.json"
    path.write_text('{"width": 640, "tags": ["a", "b"]}', encoding="utf-8")
    assert cli.main(["jobs", "create", "thumb", "--params", f"@{path}", "--param", "width=320"]) == 0
    assert _created_parameters() == {"width": 320, "tags": ["a", "b"]}  # --param wins over --params

    monkeypatch.setattr(sys, "stdin", io.StringIO('{"from": "stdin"}\n'))
    assert cli.main(["jobs", "create", "thumb", "--params", "-"]) == 0
    assert _created_parameters() == {"from": "stdin"}

    assert cli.main(["jobs", "create", "thumb", "--params-json", '{"old": "name"}']) == 0
    assert _created_parameters() == {"old": "name"}
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("params", "stdin", "message"),
    [
        ("@missing.json", "", "--params: cannot read missing.json (No such file or directory)"),
        ("@", "", "--params: expected a file name after '@'"),
        ("@bad.json", "", "--params: invalid JSON in bad.json: Expecting value: line 1 column 1 (char 0)"),
        ("@list.json", "", "--params: expected a JSON object in list.json, got list"),
        (
            "-",
            "{oops",
            (
                "--params: invalid JSON on standard input: Expecting property name enclosed in "
                "double quotes: line 1 column 2 (char 1)"
            ),
        ),
        ("[1]", "", "--params: expected a JSON object, got list"),
        (
            "{",
            "",
            (
                "--params: invalid JSON: Expecting property name enclosed in double quotes: "
                "line 1 column 2 (char 1)"
            ),
        ),
    ],
)
def test_bad_params_are_one_line_usage_errors_and_nothing_is_sent(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    params: str,
    stdin: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert cli.main(["jobs", "create", "thumb", "--params", params]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert all(c.calls == [] for c in FakeClient.instances)


def test_params_file_that_is_not_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["jobs", "create", "thumb", "--params", "@image.png"]) == 2
    assert capsys.readouterr().err == "error: --params: image.png is not UTF-8 text (invalid start byte)\n"


def _parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _parsers(child)
    return found


def test_every_command_option_and_argument_has_help() -> None:
    missing = []
    for parser in _parsers(cli.build_parser()):
        for action in parser._actions:
            # A group of subcommands is described by its subcommands' own help.
            described = (
                action._choices_actions if isinstance(action, argparse._SubParsersAction) else [action]
            )
            for a in described:
                if a.help is None and not isinstance(a, argparse._HelpAction):
                    missing.append(f"{parser.prog} {a.option_strings or a.dest}")
    assert missing == []


def test_list_help_names_the_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["jobs", "list", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    assert "CREATED, QUEUED, RUNNING, COMPLETED, PARTIAL, FAILED, CANCELLED, EXPIRED" in out
    assert "--oldest-first" in out and "--page-token TOKEN" in out
    assert "--desc" not in out  # still accepted, no longer offered


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"jobwarden {importlib.metadata.version('jobwarden')}\n"


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        ([], "pass a token with --token TOKEN or env JOBWARDEN_TOKEN"),
        (["--token", "wrong"], "check the token given with --token TOKEN or env JOBWARDEN_TOKEN"),
    ],
)
def test_unauthenticated_says_how_to_pass_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], hint: str
) -> None:
    err = errors.Unauthenticated("unknown token", code=grpc.StatusCode.UNAUTHENTICATED)
    monkeypatch.setattr(cli, "Client", _failing(err))
    assert cli.main(["jobs", "get", "x", *args]) == 1
    assert capsys.readouterr().err == f"error: UNAUTHENTICATED: unknown token; {hint}\n"
