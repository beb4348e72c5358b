"""The jobwarden command against a fake client: arguments, output, error lines and exit codes."""

from __future__ import annotations

import io
import json
import sys
import types
from collections.abc import AsyncIterator, Mapping
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
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class FakeClient:
    """Stands in for jobwarden.client.Client; records how it was built and called."""

    instances: ClassVar[list[FakeClient]] = []

    def __init__(self, target: str, token: str | None = None, *, tls: TlsOptions | bool = False) -> None:
        self.target, self.token, self.tls = target, token, tls
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

    async def iter_jobs(self, **filters: Any) -> AsyncIterator[Job]:
        self.calls.append(("iter_jobs", filters))
        for i in range(5):
            yield self._job(f"j{i}")

    async def cancel_job(self, job_id: str, reason: str = "", etag: str = "") -> Job:
        self.calls.append(("cancel_job", (job_id, reason, etag)))
        return self._job(job_id, JobStatus.RUNNING, cancel_requested=True)

    async def watch_job(self, job_id: str, after_sequence: int = 0) -> AsyncIterator[Job | JobEvent]:
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
            "--params-json",
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


def test_list_respects_limit_and_filters(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["jobs", "list", "--status", "queued", "--type", "thumb", "--limit", "2", "--desc"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "TYPE", "STATUS", "PROGRESS", "ATTEMPT", "CREATED"]
    assert len(lines) == 3
    filters = FakeClient.instances[0].calls[0][1]
    assert filters["statuses"] == [JobStatus.QUEUED]
    assert filters["descending"] is True and filters["page_size"] == 2


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
        "job j1 COMPLETED",
    ]


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


def test_watch_on_a_terminal_redraws_one_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _Tty()
    monkeypatch.setattr(sys, "stdout", out)
    assert cli.main(["jobs", "watch", "j1"]) == 0
    text = out.getvalue()
    lines = text.split("\n")
    # Transitions get a line of their own; progress only redraws the bar in place.
    assert any(line.endswith("#2 transition QUEUED -> RUNNING (worker:w1)") for line in lines)
    assert "#3 progress" not in text
    assert "\r\x1b[2KRUNNING   [############............] 50% halfway" in text
    assert lines[-2].endswith("\x1b[2Kjob j1 COMPLETED")


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
