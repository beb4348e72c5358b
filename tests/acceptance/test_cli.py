"""The real `jobwarden` CLI against the real `jobwarden serve`, both as subprocesses.

A worker in this process (the SDK's low-level calls) plays the other side of each job. Each test uses
its own job type and label, so the tests can share one server.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import json
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import faultproc, proc

from jobwarden.client import Client, Job, JobMessage, JobStatus, MessageLevel


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with proc.serving(tmp_path_factory.mktemp("cli") / "cli.db") as (_, addr):
        yield addr


@pytest.fixture
def job_type() -> str:
    """A job type no other test uses, so a claim takes only this test's jobs."""
    return f"cli.{uuid.uuid4().hex[:10]}"


def cli(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return proc.run(["jobs", *args, "--address", address])


def ok(address: str, *args: str) -> str:
    """Runs a command that must succeed quietly; returns its stdout."""
    result = cli(address, *args)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert result.stderr == ""
    return result.stdout


def create(address: str, job_type: str, *args: str) -> str:
    out = ok(address, "create", job_type, *args)
    lines = out.splitlines()
    assert len(lines) == 1, out
    job_id = lines[0]
    uuid.UUID(job_id)  # an id and nothing else
    return job_id


def run_job(address: str, job_type: str, outcome: str = "complete") -> Job:
    """Plays a worker: claims the one queued job of `job_type`, reports progress, adds an asset and
    completes it (or fails it, for outcome "fail")."""

    async def flow() -> Job:
        async with Client(address) as client:
            [claim] = await client.claim_jobs("w-cli", [job_type])
            job_id, lease = claim.job.id, claim.lease_token
            await client.report_progress(job_id, lease, 50, "halfway", done=5, total=10)
            await client.add_asset(
                job_id, lease, "image", "s3://bucket/out.png", size_bytes=10, content_type="image/png"
            )
            if outcome == "fail":
                return await client.fail_job(job_id, lease, "renderer crashed")
            return await client.complete_job(job_id, lease, {"frames": 3})

    return asyncio.run(flow())


COMPLETED = "#5 transition RUNNING -> COMPLETED: completed by worker (worker:w-cli)"
"""The last event line of a job run_job completed."""


def event_lines(last: str) -> list[str]:
    """The event lines of a job run by run_job, as `jobs watch` and `jobs events` print them."""
    return [
        "#1 created QUEUED (client:default)",
        "#2 transition QUEUED -> RUNNING: claimed by worker w-cli (attempt 1) (worker:w-cli)",
        "#3 progress 50% halfway (5/10)",
        "#4 asset_added image s3://bucket/out.png",
        last,
    ]


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a failed command (no traceback, nothing on stdout)."""
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# --- create / get / list -----------------------------------------------------------------------------


def test_create_prints_an_id_that_get_and_list_show(address: str, job_type: str) -> None:
    label = f"run={uuid.uuid4().hex[:8]}"
    job_id = create(
        address,
        job_type,
        "--param",
        "n=3",
        "--param",
        "name=intro",
        "--label",
        label,
        "--priority",
        "5",
        "--max-attempts",
        "2",
    )

    details = ok(address, "get", job_id)
    fields = dict(line.split(":", 1) for line in details.splitlines())
    fields = {k: v.strip() for k, v in fields.items()}
    assert fields["id"] == job_id
    assert fields["type"] == job_type
    assert fields["status"] == "QUEUED"
    assert fields["attempt"] == "0 of 2"
    assert fields["priority"] == "5"
    assert fields["labels"] == label
    assert fields["parameters"] == '{"n": 3, "name": "intro"}'  # an integer prints as one, not as 3.0

    as_json = json.loads(ok(address, "get", job_id, "--json"))
    assert (as_json["id"], as_json["status"], as_json["labels"]) == (job_id, "QUEUED", {"run": label[4:]})
    assert as_json["parameters"] == {"n": 3, "name": "intro"}
    assert type(as_json["parameters"]["n"]) is int

    second = create(address, job_type, "--label", label)
    table = ok(address, "list", "--label", label).splitlines()
    assert table[0].split() == ["ID", "TYPE", "STATUS", "PROGRESS", "ATTEMPT", "CREATED"]
    # Newest first.
    assert [row.split()[:5] for row in table[1:]] == [
        [second, job_type, "QUEUED", "0%", "0/3"],
        [job_id, job_type, "QUEUED", "0%", "0/2"],
    ]
    oldest_first = ok(address, "list", "--label", label, "--oldest-first").splitlines()[1:]
    assert [row.split()[0] for row in oldest_first] == [job_id, second]

    listed = json.loads(ok(address, "list", "--json", "--label", label))
    assert [j["id"] for j in listed] == [second, job_id]
    assert listed[1]["job_type"] == job_type and listed[1]["max_attempts"] == 2
    assert json.loads(ok(address, "list", "--json", "--label", label, "--type", "no.such.type")) == []


def test_list_says_when_there_are_more_and_how_to_see_them(address: str, job_type: str) -> None:
    ids = [create(address, job_type) for _ in range(3)]
    first = cli(address, "list", "--type", job_type, "--limit", "2")
    assert first.returncode == 0, first.stderr
    assert [row.split()[0] for row in first.stdout.splitlines()[1:]] == [ids[2], ids[1]]
    match = re.fullmatch(
        r"… more jobs; use --limit N for more at once, or --page-token (\S+) for the next ones\n",
        first.stderr,
    )
    assert match is not None, first.stderr

    rest = ok(address, "list", "--type", job_type, "--limit", "2", "--page-token", match[1])
    assert [row.split()[0] for row in rest.splitlines()[1:]] == [ids[0]]  # the last page: no hint
    assert len(ok(address, "list", "--type", job_type, "--limit", "3").splitlines()) == 4


def test_list_help_names_the_statuses() -> None:
    result = proc.run(["jobs", "list", "--help"])
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "One of: CREATED, QUEUED, RUNNING, COMPLETED, PARTIAL, FAILED, CANCELLED, EXPIRED" in text


def test_params_inline_from_a_file_and_from_stdin(address: str, job_type: str, tmp_path: Path) -> None:
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"width": 640, "tags": ["a", "b"]}))
    from_file = create(address, job_type, "--params", f"@{params}", "--param", "height=480")
    assert json.loads(ok(address, "get", from_file, "--json"))["parameters"] == {
        "width": 640.0,
        "tags": ["a", "b"],
        "height": 480.0,
    }

    piped = subprocess.run(
        [*proc.jobwarden_command(), "jobs", "create", job_type, "--params", "-", "--address", address],
        input='{"from": "stdin"}',
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert json.loads(ok(address, "get", piped.stdout.strip(), "--json"))["parameters"] == {"from": "stdin"}

    inline = create(address, job_type, "--params", '{"n": 1}')
    assert json.loads(ok(address, "get", inline, "--json"))["parameters"] == {"n": 1.0}


def test_unreadable_or_invalid_params_are_one_line_usage_errors(
    address: str, job_type: str, tmp_path: Path
) -> None:
    (tmp_path / "broken.json").write_text("{'single': 'quotes'}")
    missing = tmp_path / "missing.json"
    for params, message in (
        (f"@{missing}", f"error: --params: cannot read {missing} (No such file or directory)"),
        (
            f"@{tmp_path / 'broken.json'}",
            (
                f"error: --params: invalid JSON in {tmp_path / 'broken.json'}: Expecting property name "
                "enclosed in double quotes: line 1 column 2 (char 1)"
            ),
        ),
        ("[1, 2]", "error: --params: expected a JSON object, got list"),
    ):
        result = cli(address, "create", job_type, "--params", params)
        assert result.returncode == 2, result.stderr
        assert one_error_line(result) == message
    assert json.loads(ok(address, "list", "--json", "--type", job_type)) == []  # nothing was created


def test_version() -> None:
    result = proc.run(["--version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"jobwarden {importlib.metadata.version('jobwarden')}\n"


def test_create_with_explicit_request_id_is_idempotent(address: str, job_type: str) -> None:
    key = f"req-{uuid.uuid4().hex}"
    first = create(address, job_type, "--request-id", key)
    assert create(address, job_type, "--request-id", key) == first
    assert [j["id"] for j in json.loads(ok(address, "list", "--json", "--type", job_type))] == [first]


def test_create_with_a_retry_policy_keeps_the_server_default_for_what_is_not_given(
    address: str, job_type: str
) -> None:
    plain = json.loads(ok(address, "get", create(address, job_type), "--json"))
    assert plain["retry_policy"] is None
    job_id = create(address, job_type, "--retry-initial", "0.5", "--retry-multiplier", "3")
    policy = json.loads(ok(address, "get", job_id, "--json"))["retry_policy"]
    assert (policy["initial_backoff"], policy["multiplier"]) == (0.5, 3.0)
    assert policy["max_backoff"] >= 0.5  # the server's default max
    refused = cli(address, "create", job_type, "--retry-initial", "10", "--retry-max", "1")
    assert refused.returncode == 1 and "retry_policy" in refused.stderr


def test_held_job_is_released(address: str, job_type: str) -> None:
    job_id = create(address, job_type, "--hold")
    assert json.loads(ok(address, "get", job_id, "--json"))["status"] == "CREATED"
    assert ok(address, "release", job_id) == f"job {job_id} QUEUED\n"


# --- a job run by a worker, seen through the CLI -----------------------------------------------------


def test_watch_events_and_assets_of_a_completed_job(address: str, job_type: str) -> None:
    job_id = create(address, job_type)
    done = run_job(address, job_type)
    assert done.status is JobStatus.COMPLETED

    watched = cli(address, "watch", job_id)
    assert watched.returncode == 0, watched.stderr
    assert watched.stderr == ""
    assert watched.stdout.splitlines() == [
        f"job {job_id} ({job_type}) COMPLETED 100% halfway (5/10)",
        *event_lines(COMPLETED),
        f"job {job_id} COMPLETED",
    ]
    # Piped output is plain lines: no terminal control sequences.
    assert "\x1b" not in watched.stdout and "\r" not in watched.stdout

    assert ok(address, "events", job_id).splitlines() == event_lines(COMPLETED)
    events = json.loads(ok(address, "events", job_id, "--json"))
    assert [(e["sequence"], e["kind"]) for e in events] == [
        (1, "created"),
        (2, "transition"),
        (3, "progress"),
        (4, "asset_added"),
        (5, "transition"),
    ]
    assert events[4]["to_status"] == "COMPLETED"

    assets = ok(address, "assets", job_id).splitlines()
    assert assets[0].split() == ["ID", "TYPE", "SIZE", "CONTENT-TYPE", "URI"]
    assert len(assets) == 2
    asset_id, *row = assets[1].split()
    assert row == ["image", "10", "image/png", "s3://bucket/out.png"]
    [asset] = json.loads(ok(address, "assets", job_id, "--json"))
    assert (asset["id"], asset["job_id"], asset["uri"]) == (asset_id, job_id, "s3://bucket/out.png")
    assert events[3]["asset"]["id"] == asset_id

    details = ok(address, "get", job_id)
    assert "status:      COMPLETED" in details.splitlines()
    assert 'result:      {"frames": 3}' in details.splitlines()


def test_messages_a_worker_attached_show_in_messages_events_watch_and_get(
    address: str, job_type: str
) -> None:
    job_id = create(address, job_type)

    async def work() -> None:
        async with Client(address) as client:
            [claim] = await client.claim_jobs("w-cli", [job_type])
            await client.add_messages(
                job_id,
                claim.lease_token,
                ["fetching", JobMessage(text="slow", level=MessageLevel.WARNING, data={"retry": 1})],
            )
            await client.complete_job(job_id, claim.lease_token)

    asyncio.run(work())
    lines = ok(address, "messages", job_id).splitlines()
    assert [line.split(" ", 2)[::2] for line in lines] == [
        ["#3", "INFO fetching"],
        ["#4", 'WARNING slow {"retry": 1}'],
    ]
    listed = json.loads(ok(address, "messages", job_id, "--json"))
    assert [(m["level"], m["message"], m["data"]) for m in listed] == [
        ("INFO", "fetching", None),
        ("WARNING", "slow", {"retry": 1}),
    ]
    logged = ["#3 log INFO fetching", '#4 log WARNING slow {"retry": 1}']
    assert ok(address, "events", job_id).splitlines()[2:4] == logged
    assert ok(address, "watch", job_id).splitlines()[3:5] == logged  # after the snapshot and 2 events
    assert "messages:    2" in ok(address, "get", job_id).splitlines()


def test_watch_follows_a_job_live_until_it_ends(address: str, job_type: str) -> None:
    job_id = create(address, job_type)
    watcher = subprocess.Popen(
        [*proc.jobwarden_command(), "jobs", "watch", job_id, "--address", address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        # Once the history so far is printed, the watcher is following live.
        assert watcher.stdout.readline() == f"job {job_id} ({job_type}) QUEUED 0%\n"
        assert watcher.stdout.readline() == "#1 created QUEUED (client:default)\n"
        run_job(address, job_type)
        out, err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.communicate()
    assert watcher.returncode == 0, err
    assert out.splitlines() == [
        *event_lines(COMPLETED)[1:],
        f"job {job_id} COMPLETED",
    ]


async def _line(stream: asyncio.StreamReader, within_s: float) -> str:
    """The next line of a subprocess's output; TimeoutError if none comes in time (EOF gives "")."""
    async with asyncio.timeout(within_s):
        return (await stream.readline()).decode()


RECONNECTING = re.compile(r"reconnecting to (\S+)… \(attempt (\d+), ([A-Z_]+)\)")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("outage", ["sigkill", "sigterm"])
async def test_watch_says_it_is_reconnecting_and_resumes_soon_after_the_server_is_back(
    tmp_path: Path, job_type: str, outage: str
) -> None:
    server = faultproc.ServerProcess(tmp_path, faultproc.write_config(tmp_path / "server.toml", settings={}))
    with faultproc.cleanup(server):
        await server.start()
        job_id = create(server.address, job_type)
        watcher = await asyncio.create_subprocess_exec(
            *proc.jobwarden_command(),
            "jobs",
            "watch",
            job_id,
            "--address",
            server.address,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert watcher.stdout is not None and watcher.stderr is not None
            assert await _line(watcher.stdout, 30) == f"job {job_id} ({job_type}) QUEUED 0%\n"
            assert await _line(watcher.stdout, 30) == "#1 created QUEUED (client:default)\n"

            if outage == "sigkill":
                server.kill()
            else:
                assert server.stop() == 0
            # While the server is down, the watcher says so on stderr, attempt after attempt.
            attempts: list[re.Match[str]] = []
            while len(attempts) < 3:
                line = await _line(watcher.stderr, 30)
                match = RECONNECTING.fullmatch(line.rstrip("\n"))
                assert match is not None, line
                attempts.append(match)
            assert [(m[1], int(m[2])) for m in attempts] == [(server.address, n) for n in (1, 2, 3)]
            assert {m[3] for m in attempts[1:]} == {"UNAVAILABLE"}

            await server.start()  # the same port and database
            await asyncio.to_thread(run_job, server.address, job_type)
            async with asyncio.timeout(15):  # far below the 40-60 s the SDK's default backoff took
                out, err = await watcher.communicate()
        finally:
            if watcher.returncode is None:
                watcher.kill()
                await watcher.wait()
    assert watcher.returncode == 0, err
    assert out.decode().splitlines() == [*event_lines(COMPLETED)[1:], f"job {job_id} COMPLETED"]
    rest = err.decode().splitlines()
    assert rest[-1] == f"reconnected to {server.address}"
    assert all(RECONNECTING.fullmatch(line) for line in rest[:-1]), rest


def test_watch_of_a_failed_job_exits_4(address: str, job_type: str) -> None:
    job_id = create(address, job_type)
    failed = run_job(address, job_type, outcome="fail")
    assert failed.status is JobStatus.FAILED

    watched = cli(address, "watch", job_id)
    assert watched.returncode == 4, watched.stderr
    lines = watched.stdout.splitlines()
    assert lines[0] == f"job {job_id} ({job_type}) FAILED 50% halfway (5/10)"
    assert lines[1:-1] == event_lines("#5 transition RUNNING -> FAILED: renderer crashed (worker:w-cli)")
    assert lines[-1] == f"job {job_id} FAILED: renderer crashed"


def test_cancel(address: str, job_type: str) -> None:
    queued = create(address, job_type)
    assert ok(address, "cancel", queued, "--reason", "not needed") == f"job {queued} CANCELLED\n"
    assert json.loads(ok(address, "get", queued, "--json"))["stop_reason"] == "USER_CANCELLED"
    assert ok(address, "events", queued).splitlines()[-1] == (
        "#2 transition QUEUED -> CANCELLED [USER_CANCELLED]: not needed (client:default)"
    )
    assert cli(address, "watch", queued).returncode == 4

    again = cli(address, "cancel", queued)
    assert again.returncode == 1
    assert one_error_line(again).startswith("error: INVALID_TRANSITION: ")
    assert "CANCELLED -> CANCELLED" in again.stderr

    running = create(address, job_type)

    async def claim() -> str:
        async with Client(address) as client:
            [c] = await client.claim_jobs("w-cli", [job_type])
            return c.job.id

    assert asyncio.run(claim()) == running
    assert ok(address, "cancel", running) == (
        f"job {running} RUNNING: cancel requested; it stops at the worker's next report\n"
    )
    job: dict[str, Any] = json.loads(ok(address, "get", running, "--json"))
    assert (job["status"], job["cancel_requested"]) == ("RUNNING", True)
    assert "(cancel requested)" in ok(address, "list", "--type", job_type)


def test_delete_of_finished_jobs_and_the_refusal_of_an_unfinished_one(address: str, job_type: str) -> None:
    done = create(address, job_type)
    run_job(address, job_type)
    cancelled = create(address, job_type)
    ok(address, "cancel", cancelled)
    queued = create(address, job_type)

    assert ok(address, "delete", done, cancelled) == f"job {done} deleted\njob {cancelled} deleted\n"
    assert [row.split()[0] for row in ok(address, "list", "--type", job_type).splitlines()[1:]] == [queued]
    gone = cli(address, "get", done)
    assert (gone.returncode, one_error_line(gone)) == (1, f"error: NOT_FOUND: job {done} not found")

    refused = cli(address, "delete", queued)
    assert refused.returncode == 1
    assert one_error_line(refused) == (
        f"error: JOB_NOT_TERMINAL: job {queued} is QUEUED, not ended: cancel it first, then delete it"
    )
    again = cli(address, "delete", done)  # a new delete of a job that is gone
    assert (again.returncode, one_error_line(again)) == (1, f"error: NOT_FOUND: job {done} not found")


# --- errors ------------------------------------------------------------------------------------------


def test_unknown_job_is_one_not_found_line(address: str) -> None:
    for command in (
        ("get", "nope"),
        ("cancel", "nope"),
        ("watch", "nope"),
        ("events", "nope"),
        ("delete", "nope"),
        ("messages", "nope"),
    ):
        result = cli(address, *command)
        assert result.returncode == 1, (command, result.stderr)
        assert one_error_line(result) == "error: NOT_FOUND: job nope not found"


def test_refused_argument_names_the_reason(address: str) -> None:
    result = cli(address, "create", "has spaces")
    assert result.returncode == 1
    assert one_error_line(result).startswith("error: INVALID_ARGUMENT: job_type")


def test_usage_error_exits_2(address: str) -> None:
    result = cli(address, "list", "--status", "bogus")
    assert result.returncode == 2
    assert "unknown status 'bogus'" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_server_exits_3_with_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The port is free again now; nothing listens there.
    result = proc.run(["jobs", "get", "some-id", "--address", f"127.0.0.1:{port}"])
    assert result.returncode == 3
    line = one_error_line(result)
    assert line.startswith(f"error: UNAVAILABLE: the server at 127.0.0.1:{port} is unavailable")


def test_unauthenticated_says_how_to_pass_a_token(tmp_path: Path, job_type: str) -> None:
    token = "s3cret-" + uuid.uuid4().hex
    config = faultproc.write_config(
        tmp_path / "tokens.toml",
        settings={},
        tokens=[{"sha256": hashlib.sha256(token.encode()).hexdigest(), "owner": "acme", "roles": ["client"]}],
    )
    with proc.serving(tmp_path / "tokens.db", "--config", str(config)) as (_, addr):
        without = cli(addr, "create", job_type)
        assert without.returncode == 1
        assert one_error_line(without) == (
            "error: UNAUTHENTICATED: missing 'authorization: Bearer <token>' metadata; "
            "pass a token with --token TOKEN or env JOBWARDEN_TOKEN"
        )
        wrong = cli(addr, "create", job_type, "--token", "nope")
        assert wrong.returncode == 1
        assert one_error_line(wrong) == (
            "error: UNAUTHENTICATED: unknown token; check the token given with --token TOKEN or env JOBWARDEN_TOKEN"
        )
        right = proc.run(["jobs", "create", job_type, "--address", addr], env={"JOBWARDEN_TOKEN": token})
        assert right.returncode == 0, right.stderr


def test_address_from_environment(address: str, job_type: str) -> None:
    result = proc.run(["jobs", "create", job_type], env={"JOBWARDEN_ADDRESS": address})
    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip()
    assert json.loads(ok(address, "get", job_id, "--json"))["job_type"] == job_type


def test_create_validate_only_creates_nothing_and_fails_as_create_would(address: str, job_type: str) -> None:
    out = ok(address, "create", job_type, "--hold", "--validate-only")
    assert out.strip() == "valid: the job would be created CREATED (nothing was created)"
    answered = json.loads(ok(address, "create", job_type, "--priority", "5", "--validate-only", "--json"))
    assert (answered["status"], answered["priority"]) == ("QUEUED", 5)
    refused = cli(address, "create", job_type, "--priority", "5000", "--validate-only")
    assert refused.returncode == 1 and refused.stderr.startswith("error: INVALID_ARGUMENT: priority")
    assert json.loads(ok(address, "list", "--type", job_type, "--json")) == []


def test_admin_set_status_and_retry_in_local_mode(address: str, job_type: str) -> None:
    job_id = create(address, job_type)
    refused = proc.run(["admin", "set-status", job_id, "completed", "--reason", "r", "--address", address])
    assert refused.returncode == 1 and "INVALID_TRANSITION" in refused.stderr
    forced = proc.run(
        [
            "admin",
            "set-status",
            job_id,
            "completed",
            "--reason",
            "done by hand",
            "--force",
            "--address",
            address,
        ]
    )
    assert (forced.returncode, forced.stdout.strip()) == (0, f"job {job_id} COMPLETED")
    rerun = ok(address, "retry", job_id).strip()
    assert json.loads(ok(address, "get", rerun, "--json"))["retry_of"] == job_id
    usage = proc.run(["admin", "set-status", job_id, "QUEUED", "--address", address])
    assert usage.returncode == 2 and "--reason" in usage.stderr
