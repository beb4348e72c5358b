"""Every fenced code block of README.md, run for real: what a reader copies does what the README says.

The blocks are read from README.md; each one is a test case named `<section>-<n>-<language>` (n counts
the blocks of its section). How a block is run is written down in HOW, by hand: a block HOW does not
name fails (so a new block is never silently skipped), and so does an entry whose block is gone.

In short:
- python: run as a program with this interpreter, against a real `jobwarden serve` (SQLite in tmp_path)
  whose address replaces the one in the text; it must also be ruff-formatted and ruff-clean.
- sh: typed into bash (support.readme.Shell) from the repository root (or next to the certificates),
  with JOBWARDEN_ADDRESS naming a real server. Commands that start a server get `--listen 127.0.0.1:0`
  and a database in tmp_path; TLS files are throwaway certificates (support.certs) under the names the
  block uses; the PostgreSQL URL is a throwaway database.
- toml: loaded by the server's own settings loader, then served with.
- no language: sample output or a listing, not a program; checked against the real thing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import json
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import standardwebhooks
from support import certs, pg, proc, waiting
from support.readme import README, ROOT, Block, Shell, blocks
from support.receiver import Received, Receiver

from jobwarden import errors
from jobwarden.client import CallbackState, Client, EventKind, Job, JobEvent, JobStatus, TlsOptions
from jobwarden_server import app, settings
from jobwarden_server.api.auth import hash_token
from jobwarden_server.domain.auth import Role
from jobwarden_server.domain.errors import ConfigError
from jobwarden_server.domain.lifecycle import BUILTIN

BLOCKS = {block.id: block for block in blocks()}

# What the README writes where the reader has to put something of their own; the tests put in theirs.
TOUR_JOB_ID = "6f1c…"
"""The tour's example job id: the id `jobs create` printed."""
PYTHON_ADDRESS = "127.0.0.1:50051"
"""The server address in the Python example: the test server's."""
HASH_PLACEHOLDER = "<the token's SHA-256, see below>"
"""The sample config's token hash: what the README's recipe printed."""


@dataclasses.dataclass(frozen=True)
class Ctx:
    """What a block's check may use: its own tmp_path, and the module's fixtures (tour, pki, token)."""

    request: pytest.FixtureRequest
    tmp_path: Path

    def fixture(self, name: str, kind: type[T]) -> T:
        value = self.request.getfixturevalue(name)
        assert isinstance(value, kind)
        return value


T = TypeVar("T")
Check = Callable[[Block, Ctx], Awaitable[None] | None]
"""Async where it calls the server through the SDK."""


@dataclasses.dataclass(frozen=True)
class How:
    """How one block is run: `what` says it in a line (it is the table's documentation)."""

    what: str
    check: Check
    postgres: bool = False


# --- helpers ---------------------------------------------------------------------------------------


def ruff(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("ruff")), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def assert_ruff_clean(block: Block) -> None:
    """Formatted as `ruff format` would, and clean under the project's rules, except I002: a README
    example is not a module of the project, and needs no `from __future__ import annotations`."""
    name = str(ROOT / f"README-{block.id}.py")  # only where ruff looks for its configuration
    formatted = ruff("format", "--diff", "--stdin-filename", name, "-", stdin=block.text)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    checked = ruff("check", "--extend-ignore", "I002", "--stdin-filename", name, "-", stdin=block.text)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def run_python(block: Block, text: str, cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    program = tmp_path / f"{block.id}.py"
    program.write_text(text)
    return subprocess.run(
        [sys.executable, str(program)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=45,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def sample_config(token_hash: str) -> str:
    """The Configuration section's config file, with the hash the README's recipe made."""
    text = BLOCKS["configuration-1-toml"].text
    assert text.count(HASH_PLACEHOLDER) == 1, "the sample config's placeholder changed: update the test"
    return text.replace(HASH_PLACEHOLDER, token_hash)


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def replace_option(argv: list[str], name: str, value: str) -> list[str]:
    i = argv.index(name)
    return [*argv[: i + 1], value, *argv[i + 2 :]]


# --- module fixtures: the tour, certificates, a token ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class Tour:
    """What each of the tour's terminals showed."""

    server_lasted: bool
    """Whether the server scripts/serve started was still serving after the rest of the tour."""
    job_id: str
    created: subprocess.CompletedProcess[str]
    status_while_watched: str
    """The job's status once the watch had started, before any worker ran."""
    watch_status: int
    watch_out: list[str]
    watch_err: str
    worker_status: int
    worker_out: list[str]
    worker_err: str
    afterwards: list[subprocess.CompletedProcess[str]]


def tour_block(n: int) -> Block:
    return BLOCKS[f"a-five-minute-tour-{n}-sh"]


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tour]:
    """The five-minute tour, the way a person with three terminals follows it: the server in terminal 1;
    in terminal 2 a job is created and watched; only then the worker starts in terminal 3; terminal 2
    again once the watch has ended. Each terminal's output goes to its own file."""
    tmp = tmp_path_factory.mktemp("tour")
    serve_block, watch_block, worker_block, after_block = (tour_block(n) for n in (1, 2, 3, 4))
    [serve] = serve_block.commands
    assert serve_block.argv(serve) == ["scripts/serve"], "the tour's terminal 1 changed: update the test"
    out = {name: (tmp / f"{name}.out").open("w") for name in ("watch", "worker")}
    err = {name: (tmp / f"{name}.err").open("w") for name in ("watch", "worker")}
    started: list[subprocess.Popen[str]] = []
    try:
        with proc.serving(tmp / "tour.db", serve=serve_block.argv(serve), cwd=ROOT) as (server, address):
            env = {"JOBWARDEN_ADDRESS": address}  # the CLI's and the worker's default, 127.0.0.1:50051
            terminal_2, terminal_3 = Shell(ROOT, env), Shell(ROOT, env)

            job_id, created = "", None
            for command in watch_block.commands:
                if " jobs watch " in command:
                    started.append(
                        terminal_2.start(command.replace(TOUR_JOB_ID, job_id), out["watch"], err["watch"])
                    )
                    continue
                result = terminal_2.run(command)
                assert result.returncode == 0, (command, result.stderr)
                if " jobs create " in command:
                    created, job_id = result, result.stdout.strip()
            [watch] = started
            assert created is not None, "the tour's terminal 2 creates no job"
            waiting.until_sync(
                lambda: job_id in "".join(lines_of(tmp / "watch.out")), 20, "the watch to start"
            )
            got = proc.run(["jobs", "get", job_id, "--json", "--address", address])
            status_while_watched = json.loads(got.stdout)["status"]

            for command in worker_block.commands:
                if command.startswith("python "):
                    started.append(terminal_3.start(command, out["worker"], err["worker"]))
                else:
                    assert terminal_3.run(command).returncode == 0, command
            worker = started[-1]
            watch_status = watch.wait(timeout=30)
            waiting.until_sync(
                lambda: any(line.startswith(job_id) for line in lines_of(tmp / "worker.out")),
                10,
                "the worker's line about the job",
            )
            afterwards = [terminal_2.run(c.replace(TOUR_JOB_ID, job_id)) for c in after_block.commands]
            worker_status = proc.stop(worker, signal.SIGINT)  # Ctrl-C, as the README says
            server_lasted = server.poll() is None
        yield Tour(
            server_lasted=server_lasted,
            job_id=job_id,
            created=created,
            status_while_watched=status_while_watched,
            watch_status=watch_status,
            watch_out=lines_of(tmp / "watch.out"),
            watch_err=(tmp / "watch.err").read_text(),
            worker_status=worker_status,
            worker_out=lines_of(tmp / "worker.out"),
            worker_err=(tmp / "worker.err").read_text(),
            afterwards=afterwards,
        )
    finally:
        for process in started:
            proc.stop(process)
        for stream in (*out.values(), *err.values()):
            stream.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of throwaway certificates under the file names the TLS section uses: one CA (as
    ca.pem and clients-ca.pem), a server certificate for 127.0.0.1, and the client certificate of
    `worker-7`."""
    directory = tmp_path_factory.mktemp("pki")
    ca = certs.Authority.create(directory / "made", "readme")
    server, client = ca.server(), ca.client("worker-7")
    for source, name in (
        (ca.cert, "ca.pem"),
        (ca.cert, "clients-ca.pem"),
        (server.cert, "server.pem"),
        (server.key, "server-key.pem"),
        (client.cert, "worker-7.pem"),
        (client.key, "worker-7-key.pem"),
    ):
        shutil.copyfile(source, directory / name)
    return directory


@dataclasses.dataclass(frozen=True)
class Token:
    value: str
    sha256: str


@pytest.fixture(scope="module")
def token() -> Token:
    """A token and its hash, made by the Configuration section's recipe, run as one bash script (plus a
    line that shows the test the token it made)."""
    block = BLOCKS["configuration-2-sh"]
    result = Shell(ROOT, {}).run(block.text + 'printf "%s\\n" "$TOKEN"\n')
    assert result.returncode == 0, result.stderr
    digest, value = result.stdout.splitlines()
    return Token(value=value, sha256=digest)


# --- the checks, one per block ----------------------------------------------------------------------


def two_commands(block: Block, ctx: Ctx) -> None:
    assert [block.argv(c) for c in block.commands] == [["scripts/serve"], ["scripts/test"]]
    monkeypatch = ctx.fixture("monkeypatch", pytest.MonkeyPatch)
    for name in (settings.ENV_CONFIG, settings.ENV_LISTEN, settings.ENV_DATABASE):
        monkeypatch.delenv(name, raising=False)
    defaults = settings.load()  # what `serve` without options uses, as the comment says
    assert (defaults.listen, defaults.database) == ("127.0.0.1:50051", "jobwarden.db")

    with proc.serving(ctx.tmp_path / "serve.db", serve=["scripts/serve"], cwd=ROOT) as (_, address):
        listed = proc.run(["jobs", "list", "--address", address])
        assert listed.returncode == 0, listed.stderr

    # scripts/test passes its arguments to pytest; the whole suite is this very run, so only collect.
    this_file = str(Path(__file__).relative_to(ROOT))
    collected = subprocess.run(
        ["scripts/test", "--co", "-q", this_file],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    assert f"{this_file}::test_block[{block.id}]" in collected.stdout


def tour_server(block: Block, ctx: Ctx) -> None:
    tour = ctx.fixture("tour", Tour)
    assert tour.server_lasted
    assert tour.created.returncode == 0
    # Its log stayed in terminal 1: nothing of it reached the other terminals.
    assert (tour.watch_err, tour.worker_err) == ("", "")


def tour_watch(block: Block, ctx: Ctx) -> None:
    tour = ctx.fixture("tour", Tour)
    assert tour.created.stdout == f"{tour.job_id}\n"
    uuid.UUID(tour.job_id)
    assert tour.status_while_watched == "QUEUED"  # the watch was there before any worker
    assert tour.watch_status == 0, (tour.watch_out, tour.watch_err)
    assert tour.job_id in tour.watch_out[0]
    assert "COMPLETED" in tour.watch_out[-1]
    assert tour.watch_err == ""


def tour_worker(block: Block, ctx: Ctx) -> None:
    tour = ctx.fixture("tour", Tour)
    image = f"file:///tmp/resized-{tour.job_id}.png"
    line = f"{tour.job_id} {json.dumps({'width': 640, 'image': image})}"
    assert [out for out in tour.worker_out if tour.job_id in out] == [line]
    # The README quotes that line (with its example id) in the text before this block.
    assert line.replace(tour.job_id, TOUR_JOB_ID) in README.read_text()
    assert tour.worker_status == 0  # Ctrl-C stops it cleanly
    assert tour.worker_err == ""


def tour_afterwards(block: Block, ctx: Ctx) -> None:
    tour = ctx.fixture("tour", Tour)
    listed, assets, events = tour.afterwards
    for result in tour.afterwards:
        assert result.returncode == 0, (result.args, result.stderr)
    assert tour.job_id in listed.stdout
    assert f"file:///tmp/resized-{tour.job_id}.png" in assets.stdout
    assert "COMPLETED" in events.stdout


def _sample_line_pattern(line: str) -> re.Pattern[str]:
    # The sample abbreviates ids with "…" and names a made-up worker: those parts match anything.
    pattern = re.escape(line)
    pattern = re.sub(r"[0-9a-f]+…", r"[0-9a-f-]+", pattern)
    pattern = re.sub(r"host\\-\d+\\-[0-9a-f]+", r"\\S+", pattern)
    return re.compile(pattern)


def tour_watch_sample(block: Block, ctx: Ctx) -> None:
    tour = ctx.fixture("tour", Tour)
    for line in block.text.splitlines():
        if line == "…":
            continue
        pattern = _sample_line_pattern(line)
        assert any(pattern.fullmatch(real) for real in tour.watch_out), (line, tour.watch_out)


async def python_example(block: Block, ctx: Ctx) -> None:
    assert_ruff_clean(block)
    assert block.text.count(PYTHON_ADDRESS) == 1
    with proc.serving(ctx.tmp_path / "example.db") as (_, address):
        ran = run_python(block, block.text.replace(PYTHON_ADDRESS, address), ctx.tmp_path, ctx.tmp_path)
        assert ran.returncode == 0, ran.stderr
        assert ran.stderr == ""
        async with Client(address) as client:
            [job], _ = await client.list_jobs()
            assets, _ = await client.list_assets(job.id)
    # It created a job, a worker in the same program ran it, and it got the result.
    assert (job.job_type, job.status, job.result) == (
        "image.resize",
        JobStatus.COMPLETED,
        {"image": "s3://bucket/out.png"},
    )
    assert [a.uri for a in assets] == ["s3://bucket/out.png"]
    printed = ran.stdout.splitlines()
    assert printed[0].startswith(f"Job(id='{job.id}'")  # the watch: the Job first
    assert all(line.startswith(f"JobEvent(job_id='{job.id}'") for line in printed[1:-1])
    assert f"# {printed[-1]}" in block.text  # the last line is the one its comment shows


def token_recipe(block: Block, ctx: Ctx) -> None:
    made = ctx.fixture("token", Token)
    assert len(made.value) >= 32
    assert made.sha256 == hash_token(made.value)  # the server's own hashing


async def configuration(block: Block, ctx: Ctx) -> None:
    made = ctx.fixture("token", Token)
    verbatim = ctx.tmp_path / "verbatim.toml"
    verbatim.write_text(block.text)
    with pytest.raises(ConfigError, match="sha256"):  # copied as it is, it stops the server, naming why
        settings.load(str(verbatim))

    config = ctx.tmp_path / "jobwarden.toml"
    config.write_text(sample_config(made.sha256))
    loaded = settings.load(str(config))
    assert settings.is_loopback(loaded.listen) or loaded.tls is not None, (
        "safe to copy: no plaintext off loopback"
    )
    assert list(loaded.principals_by_hash) == [made.sha256]
    custom = set(loaded.lifecycles.tables) - set(BUILTIN)
    assert custom, "the sample shows a custom lifecycle"
    assert custom <= set(loaded.lifecycles.by_job_type.values()), "every custom lifecycle is used"

    # Served as it is, but on a free port: 50051 may be taken on a shared machine. The database is the
    # file's (jobwarden.db, in the working directory).
    with proc.serving(None, "--config", str(config), cwd=ctx.tmp_path) as (_, address):
        async with Client(address, token=made.value) as client:
            for job_type, name in loaded.lifecycles.by_job_type.items():
                table = await client.get_lifecycle(job_type)
                expected = loaded.lifecycles.named(name).transitions
                assert (table.name, table.transitions) == (name, expected)
                job = await client.create_job(job_type)
                assert (job.owner, job.lifecycle) == ("acme", name)
        async with Client(address) as anonymous:
            with pytest.raises(errors.Unauthenticated):
                await anonymous.list_jobs()
    assert (ctx.tmp_path / "jobwarden.db").exists()


def tls_serve(block: Block, ctx: Ctx) -> None:
    pki = ctx.fixture("pki", Path)
    ca = ["--tls-ca", str(pki / "ca.pem")]
    client_cert = ["--tls-cert", str(pki / "worker-7.pem"), "--tls-key", str(pki / "worker-7-key.pem")]
    assert len(block.commands) == 2
    for i, command in enumerate(block.commands):
        argv = block.argv(command)
        assert argv[:2] == ["jobwarden", "serve"]
        mutual = "--tls-client-ca" in argv
        serve = [*proc.jobwarden_command(), *argv[1:]]
        with proc.serving(ctx.tmp_path / f"{i}.db", serve=serve, cwd=pki) as (_, address):
            over_tls = proc.run([*ca, *(client_cert if mutual else []), "jobs", "list", "--address", address])
            assert over_tls.returncode == 0, over_tls.stderr
            if mutual:  # the client CA took effect: no certificate, no connection
                without_certificate = proc.run([*ca, "jobs", "list", "--address", address])
                assert without_certificate.returncode == 3, without_certificate.stderr


async def tls_config(block: Block, ctx: Ctx) -> None:
    pki = ctx.fixture("pki", Path)
    config = pki / "tls-section.toml"  # next to the certificates: its relative paths are from there
    config.write_text(block.text)
    loaded = settings.load(str(config))
    assert loaded.tls is not None and loaded.tls.mutual
    assert list(loaded.principals_by_cn) == ["worker-7"]
    # Started from elsewhere: the file's relative paths still find the certificates.
    with proc.serving(ctx.tmp_path / "tls.db", "--config", str(config), cwd=ctx.tmp_path) as (_, address):
        tls = TlsOptions(
            ca_cert=pki / "ca.pem", client_cert=pki / "worker-7.pem", client_key=pki / "worker-7-key.pem"
        )
        async with Client(address, tls=tls) as worker_7:
            assert await worker_7.claim_jobs("readme", ["readme.none"]) == []  # acme's worker
            with pytest.raises(errors.PermissionDenied):  # and nothing more
                await worker_7.list_jobs()


TYPESCRIPT_README_TEST = ROOT / "client/typescript/test/readme.test.ts"


def typescript_example(block: Block, ctx: Ctx) -> None:
    # Node.js runs it (scripts/test-typescript, in CI after this suite): the test there finds the block by
    # this id and its address by PYTHON_ADDRESS's value; here only that the two still agree.
    assert block.text.count(PYTHON_ADDRESS) == 1
    assert f'"{block.id}"' in TYPESCRIPT_README_TEST.read_text()


def tls_clients(block: Block, ctx: Ctx) -> None:
    assert_ruff_clean(block)
    pki = ctx.fixture("pki", Path)
    # It builds clients (reading the files it names) and makes no call: there is no server to call.
    ran = run_python(block, block.text, pki, ctx.tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr == ""


def tls_cli(block: Block, ctx: Ctx) -> None:
    pki = ctx.fixture("pki", Path)
    flags = ["--tls-cert", "server.pem", "--tls-key", "server-key.pem", "--tls-client-ca", "ca.pem"]
    with proc.serving(ctx.tmp_path / "mtls.db", *flags, cwd=pki) as (_, address):
        terminal = Shell(pki, {"JOBWARDEN_ADDRESS": address})
        for command in block.commands:
            result = terminal.run(command)
            assert result.returncode == 0, (command, result.stderr)


def cli_options(block: Block, ctx: Ctx) -> None:
    (ctx.tmp_path / "params.json").write_text('{"width": 640}')
    with proc.serving(ctx.tmp_path / "cli.db") as (_, address):
        terminal = Shell(ctx.tmp_path, {"JOBWARDEN_ADDRESS": address})
        for command in block.commands:
            result = terminal.run(command)
            assert result.returncode == 0, (command, result.stderr)


async def replicas(block: Block, ctx: Ctx) -> None:
    made = ctx.fixture("token", Token)
    [command] = block.commands
    argv = block.argv(command)
    assert argv[:2] == ["jobwarden", "serve"]
    assert option(argv, "--config") == "jobwarden.toml"
    (ctx.tmp_path / "jobwarden.toml").write_text(sample_config(made.sha256))
    async with pg.throwaway_database("jobwarden_readme") as url:
        argv = replace_option(replace_option(argv, "--listen", "127.0.0.1:0"), "--database", url)
        with proc.serving(None, serve=[*proc.jobwarden_command(), *argv[1:]], cwd=ctx.tmp_path) as (
            _,
            address,
        ):
            async with Client(address, token=made.value) as client:
                job = await client.create_job("report.render")
                assert (job.owner, job.lifecycle) == ("acme", "staged")


def dashboard(block: Block, ctx: Ctx) -> None:
    [command] = block.commands
    argv = block.argv(command)
    assert argv[:2] == ["jobwarden", "serve"] and option(argv, "--http-listen") == "127.0.0.1:8080"
    argv = replace_option(argv, "--http-listen", "127.0.0.1:0")
    with proc.serving(ctx.tmp_path / "dashboard.db", serve=[*proc.jobwarden_command(), *argv[1:]]) as (
        process,
        _,
    ):
        url = proc.dashboard_url(process)
        with httpx.Client(timeout=10) as browser:
            assert "<title>jobwarden</title>" in browser.get(url).text
            assert browser.get(f"{url}api/session").json()["local"] is True  # no login in local mode


def layout(block: Block, ctx: Ctx) -> None:
    for line in block.text.splitlines():
        if line.startswith(" "):
            continue
        path, described = line.split(maxsplit=1)
        assert (ROOT / path).is_dir(), path
        if path == "scripts/":
            for script in described.split(", "):
                assert (ROOT / "scripts" / script).is_file(), script


# --- batches ----------------------------------------------------------------------------------------

BATCH_ID = "9b2d…"
"""The Batches section's example parent id: the id `batches create` printed."""


async def batches_cli(block: Block, ctx: Ctx) -> None:
    with proc.serving(ctx.tmp_path / "batches.db") as (_, address):
        terminal = Shell(ctx.tmp_path, {"JOBWARDEN_ADDRESS": address})
        parent_id, outputs = "", {}
        for command in block.commands:
            result = terminal.run(command.replace(BATCH_ID, parent_id))
            assert (result.returncode, result.stderr) == (0, ""), (command, result.stderr)
            if " batches create " in command and "--validate-only" not in command:
                parent_id = result.stdout.strip()
            outputs[command.split()[2] if command.startswith("jobwarden") else "shell"] = result.stdout
        async with Client(address) as client:
            jobs, _ = await client.list_jobs(parent_id=parent_id)
            everything, _ = await client.list_jobs()
    assert [j.parameters for j in jobs] == [{"width": 320}, {}, {"width": 1280}]
    assert len(everything) == 4, "the dry run created nothing"
    assert "batch:       3 children: 3 queued" in outputs["show"]
    assert outputs["show"].count("image.resize") == 3


async def tracing_python(block: Block, ctx: Ctx) -> None:
    assert_ruff_clean(block)
    assert block.text.count(PYTHON_ADDRESS) == 1
    with proc.serving(ctx.tmp_path / "example.db") as (_, address):
        ran = run_python(block, block.text.replace(PYTHON_ADDRESS, address), ctx.tmp_path, ctx.tmp_path)
        assert (ran.returncode, ran.stderr) == (0, ""), ran.stderr
        async with Client(address) as client:
            [job], _ = await client.list_jobs()
    assert ran.stdout.splitlines() == ["True", "True"]  # as its comments show
    assert (job.status, job.result) == (JobStatus.COMPLETED, {"sent": 17})


async def batches_python(block: Block, ctx: Ctx) -> None:
    assert_ruff_clean(block)
    assert block.text.count(PYTHON_ADDRESS) == 1
    with proc.serving(ctx.tmp_path / "example.db") as (_, address):
        ran = run_python(block, block.text.replace(PYTHON_ADDRESS, address), ctx.tmp_path, ctx.tmp_path)
        assert (ran.returncode, ran.stderr) == (0, ""), ran.stderr
    printed = ran.stdout.splitlines()
    assert printed == [
        "QUEUED 3",
        "QUEUED {'width': 320}",
        "QUEUED {'width': 640}",
        "QUEUED {'width': 1280}",
        "CANCELLED 3",
    ]
    for line in (printed[0], printed[-1]):
        assert f"# {line}" in block.text  # the lines its comments show


# --- completion callbacks: one server with the section's config, a receiver, a job that calls back ---


@dataclasses.dataclass(frozen=True)
class CallbackRun:
    """What the Completion callbacks section's config served: the CLI's job, and a delivery."""

    created: subprocess.CompletedProcess[str]
    cli_job: Job
    job: Job
    events: list[JobEvent]
    received: list[Received]


def _callback_config(tmp: Path) -> Path:
    config = tmp / "callbacks.toml"
    config.write_text(BLOCKS["completion-callbacks-2-toml"].text)
    return config


async def _called_back(address: str, url: str, cli_job_id: str) -> tuple[Job, Job, list[JobEvent]]:
    """The CLI's job; and a job with a callback to `url`, worked to COMPLETED through the SDK, once
    its callback settled, with its history."""
    async with Client(address) as client:
        cli_job = await client.get_job(cli_job_id)
        job = await client.create_job("readme.cb", callback_url=url, labels={"order": "17"})
        [claim] = await client.claim_jobs("readme", ["readme.cb"])
        await client.complete_job(job.id, claim.lease_token, {"pages": 12})
        async with asyncio.timeout(20):
            while (job := await client.get_job(job.id)).callback_state in (  # noqa: ASYNC110 - server state
                CallbackState.PENDING,
                CallbackState.DELIVERING,
            ):
                await asyncio.sleep(0.05)
        events, _ = await client.list_job_events(job.id)
        return cli_job, job, events


@pytest.fixture(scope="module")
def callback_run(tmp_path_factory: pytest.TempPathFactory) -> CallbackRun:
    """The section's CLI command against a server with the section's config; then a job whose callback
    goes to a receiver on loopback (which the config's allow_networks lets it call)."""
    tmp = tmp_path_factory.mktemp("callbacks")
    config = _callback_config(tmp)
    [command] = BLOCKS["completion-callbacks-1-sh"].commands
    with Receiver() as receiver, proc.serving(tmp / "cb.db", "--config", str(config)) as (_, address):
        created = Shell(tmp, {"JOBWARDEN_ADDRESS": address}).run(command)
        assert created.returncode == 0, created.stderr
        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own, outside the tests'
            flow = _called_back(address, receiver.url, created.stdout.strip())
            cli_job, job, events = pool.submit(asyncio.run, flow).result()
    return CallbackRun(created=created, cli_job=cli_job, job=job, events=events, received=receiver.received)


def callbacks_cli(block: Block, ctx: Ctx) -> None:
    run = ctx.fixture("callback_run", CallbackRun)
    assert run.cli_job.callback_url == "https://hooks.example.com/jobwarden"
    assert run.cli_job.callback_statuses == (JobStatus.FAILED, JobStatus.EXPIRED)


def callbacks_config(block: Block, ctx: Ctx) -> None:
    run = ctx.fixture("callback_run", CallbackRun)
    policy = settings.load(str(_callback_config(ctx.tmp_path))).callbacks
    assert [len(policy.secrets[owner]) for owner in ("default", "acme")] == [1, 2]  # acme is rotating
    assert (run.job.callback_state, run.job.callback_attempts) == (CallbackState.DELIVERED, 1)
    [delivery] = run.received
    secret = re.search(r'default = "(whsec_[^"]+)"', block.text)
    assert secret is not None
    assert (
        standardwebhooks.Webhook(secret[1]).verify(delivery.body, delivery.headers)["data"]["job_id"]
        == run.job.id
    )
    [attempt] = [e for e in run.events if e.kind is EventKind.CALLBACK_ATTEMPT]
    assert attempt.callback is not None and attempt.callback.http_status == 200


def callbacks_payload(block: Block, ctx: Ctx) -> None:
    run = ctx.fixture("callback_run", CallbackRun)
    sample = json.loads(block.text)
    [delivery] = run.received
    real = delivery.payload
    assert sorted(real) == sorted(sample)
    assert sorted(real["data"]) == sorted(sample["data"])
    assert (real["type"], real["data"]["status"], real["data"]["result"]) == (
        sample["type"],
        sample["data"]["status"],
        sample["data"]["result"],
    )
    assert real["data"]["labels"] == sample["data"]["labels"]
    assert real["timestamp"] == real["data"]["complete_time"]


def callbacks_verify(block: Block, ctx: Ctx) -> None:
    assert_ruff_clean(block)
    run = ctx.fixture("callback_run", CallbackRun)
    [delivery] = run.received
    namespace: dict[str, object] = {}
    exec(compile(block.text, block.id, "exec"), namespace)  # noqa: S102 - the README's own example
    on_callback = namespace["on_callback"]
    assert callable(on_callback)
    assert on_callback(delivery.body, delivery.headers) == delivery.payload
    assert on_callback(delivery.body.replace(b"12", b"13"), delivery.headers) is None


# --- admin changes and dry runs: the section's tokens served, its commands typed by an admin ------

OPS_TOKEN, PLATFORM_TOKEN = "readme-ops-token", "readme-platform-token"


@dataclasses.dataclass(frozen=True)
class AdminRun:
    """What the Admin changes section's commands did to a running job, and what the SDK saw."""

    job: Job
    outputs: list[subprocess.CompletedProcess[str]]
    after: list[Job]
    """The job after each command."""
    rerun: Job
    fenced: bool
    """The worker's CompleteJob after the admin failed its job raised LeaseLost."""
    reach: tuple[bool, bool]
    """(ops reaches a platform job, platform reaches an acme job)."""


def _admin_config(tmp: Path) -> Path:
    text = BLOCKS["admin-changes-and-dry-runs-1-toml"].text
    for placeholder, token in (
        ("<the ops token's SHA-256>", OPS_TOKEN),
        ("<the platform token's SHA-256>", PLATFORM_TOKEN),
    ):
        assert text.count(placeholder) == 1, "the section's placeholders changed: update the test"
        text = text.replace(placeholder, hash_token(token))
    config = tmp / "admin.toml"
    config.write_text(text)
    return config


async def _reaches(client: Client, job_id: str) -> bool:
    try:
        await client.set_job_status(job_id, JobStatus.CANCELLED, "probe", force=True, validate_only=True)
    except errors.NotFound:
        return False
    return True


def admin_flow(address: str, shell: Shell) -> AdminRun:
    async def flow() -> AdminRun:
        async with Client(address, token=OPS_TOKEN) as ops, Client(address, token=PLATFORM_TOKEN) as platform:
            job = await ops.create_job("readme.admin", {"disk": "sdb"})
            [claim] = await ops.claim_jobs("readme", ["readme.admin"])
            outputs, after = [], []
            shell.env["JOB"] = job.id
            for command in BLOCKS["admin-changes-and-dry-runs-2-sh"].commands:
                outputs.append(await asyncio.to_thread(shell.run, command))
                after.append(await ops.get_job(job.id))
            try:
                await ops.complete_job(job.id, claim.lease_token)
                fenced = False
            except errors.LeaseLost:
                fenced = True
            rerun = await ops.get_job(outputs[3].stdout.strip())
            theirs = await platform.create_job("readme.admin")
            reach = (await _reaches(ops, theirs.id), await _reaches(platform, job.id))
            return AdminRun(job=job, outputs=outputs, after=after, rerun=rerun, fenced=fenced, reach=reach)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own, outside the tests'
        return pool.submit(asyncio.run, flow()).result()


@pytest.fixture(scope="module")
def admin_run(tmp_path_factory: pytest.TempPathFactory) -> AdminRun:
    """A server with the section's tokens; the section's commands typed with the ops token, on a job
    that a worker of acme holds."""
    tmp = tmp_path_factory.mktemp("admin")
    with proc.serving(tmp / "admin.db", "--config", str(_admin_config(tmp))) as (_, address):
        return admin_flow(address, Shell(tmp, {"JOBWARDEN_ADDRESS": address, "JOBWARDEN_TOKEN": OPS_TOKEN}))


def admin_tokens(block: Block, ctx: Ctx) -> None:
    loaded = settings.load(str(_admin_config(ctx.tmp_path)))
    ops, platform = (loaded.principals_by_hash[hash_token(t)] for t in (OPS_TOKEN, PLATFORM_TOKEN))
    assert (ops.owner, ops.name, set(ops.roles)) == ("acme", "ops-alice", {Role.ADMIN})
    assert (platform.owner, set(platform.roles)) == ("platform", {Role.GLOBAL_ADMIN})
    assert ctx.fixture("admin_run", AdminRun).reach == (False, True)


def admin_commands(block: Block, ctx: Ctx) -> None:
    run = ctx.fixture("admin_run", AdminRun)
    for result in run.outputs:
        assert result.returncode == 0, result.stderr
    cancel, failed, reopen, _, events = run.outputs
    statuses = [(j.status, j.cancel_requested) for j in run.after]
    assert statuses[0] == (JobStatus.RUNNING, False)  # the dry cancel changed nothing
    assert "would be cancel requested" in cancel.stdout
    assert statuses[1:] == [(JobStatus.FAILED, False)] * 4  # the dry reopen neither
    assert failed.stdout.strip() == f"job {run.job.id} FAILED" and "would be QUEUED" in reopen.stdout
    assert run.fenced
    assert (run.rerun.retry_of, run.rerun.status, run.rerun.parameters) == (
        run.job.id,
        JobStatus.QUEUED,
        {"disk": "sdb"},
    )
    assert run.after[-1].last_sequence == run.after[1].last_sequence  # the old job is untouched
    assert "RUNNING -> FAILED: worker wedged on a bad disk (admin:acme/ops-alice)" in events.stdout


# --- deleting jobs and retention ----------------------------------------------------------------------


async def _finished(client: Client, job_type: str, *, ok: bool = True) -> Job:
    job = await client.create_job(job_type)
    [claim] = await client.claim_jobs("readme", [job_type])
    await client.add_asset(job.id, claim.lease_token, "image", "s3://bucket/out.png")
    if ok:
        return await client.complete_job(job.id, claim.lease_token, {"ok": True})
    return await client.fail_job(job.id, claim.lease_token, "broken")


async def deleting(block: Block, ctx: Ctx) -> None:
    [command] = block.commands
    with proc.serving(ctx.tmp_path / "delete.db") as (_, address):
        async with Client(address) as client:
            job = await _finished(client, "readme.delete")
            deleted = Shell(ctx.tmp_path, {"JOBWARDEN_ADDRESS": address}).run(
                command.replace(TOUR_JOB_ID, job.id)
            )
            assert (deleted.returncode, deleted.stdout, deleted.stderr) == (0, f"job {job.id} deleted\n", "")
            with pytest.raises(errors.NotFound):
                await client.get_job(job.id)


class MovedClock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


async def retention_config(block: Block, ctx: Ctx) -> None:
    """Loaded by the settings loader; then served in-process on a clock the test moves (the loop made
    to look every 50 ms instead of the block's minute): each job goes when the block says, no sooner."""
    config = ctx.tmp_path / "retention.toml"
    config.write_text(block.text)
    loaded = settings.load(str(config), listen="127.0.0.1:0", database=str(ctx.tmp_path / "r.db"))
    assert loaded.retention.interval_s == 60
    quick = dataclasses.replace(loaded, retention=dataclasses.replace(loaded.retention, interval_s=0.05))
    clock = MovedClock()
    async with app.running(quick, clock=clock) as srv, Client(srv.address) as client:
        report = await _finished(client, "report.render")
        report_failed = await _finished(client, "report.render", ok=False)
        other = await _finished(client, "readme.other")
        other_failed = await _finished(client, "readme.other", ok=False)
        cancelled = await client.create_job("readme.other")
        await client.cancel_job(cancelled.id)
        everyone = {j.id for j in (report, report_failed, other, other_failed, cancelled)}

        async def left_after(days: float, expected: set[str]) -> None:
            clock.now += dt.timedelta(days=days)
            async with asyncio.timeout(10):
                while {j.id async for j in client.iter_jobs()} != expected:  # noqa: ASYNC110 - server loop
                    await asyncio.sleep(0.02)

        await left_after(0.9, everyone)
        await left_after(0.2, everyone - {report.id})  # completed report.render: a day
        await left_after(6, everyone - {report.id, other.id})  # completed: seven days
        await left_after(30, {report_failed.id, cancelled.id})  # failed: thirty, but report.render's never


# --- job messages: the section's program against a real server, then its commands on that job ------


@dataclasses.dataclass(frozen=True)
class MessagesRun:
    """What the Job messages section's program printed, and its commands answered about that job."""

    ran: subprocess.CompletedProcess[str]
    job: Job
    commands: list[subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def messages_run(tmp_path_factory: pytest.TempPathFactory) -> MessagesRun:
    tmp = tmp_path_factory.mktemp("messages")
    program = BLOCKS["job-messages-1-python"]
    assert program.text.count(PYTHON_ADDRESS) == 1
    with proc.serving(tmp / "messages.db") as (_, address):
        ran = run_python(program, program.text.replace(PYTHON_ADDRESS, address), tmp, tmp)
        assert ran.returncode == 0, ran.stderr

        async def the_job() -> Job:
            async with Client(address) as client:
                [job], _ = await client.list_jobs()
                return job

        with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own, outside the tests'
            job = pool.submit(asyncio.run, the_job()).result()
        terminal = Shell(tmp, {"JOBWARDEN_ADDRESS": address})
        commands = [
            terminal.run(c.replace(TOUR_JOB_ID, job.id)) for c in BLOCKS["job-messages-2-sh"].commands
        ]
    return MessagesRun(ran=ran, job=job, commands=commands)


def messages_program(block: Block, ctx: Ctx) -> None:
    assert_ruff_clean(block)
    run = ctx.fixture("messages_run", MessagesRun)
    assert run.ran.stderr == ""
    printed = run.ran.stdout.splitlines()
    shown = [
        line.strip().removeprefix("# ") for line in block.text.splitlines() if line.strip().startswith("# ")
    ]
    assert printed == shown  # every line it prints, as its comments show them
    assert (run.job.status, run.job.message_count) == (JobStatus.COMPLETED, 3)


def messages_commands(block: Block, ctx: Ctx) -> None:
    run = ctx.fixture("messages_run", MessagesRun)
    lines, as_json = run.commands
    for result in run.commands:
        assert result.returncode == 0, (result.args, result.stderr)
        assert result.stderr == ""
    assert len(lines.stdout.splitlines()) == 3
    listed = json.loads(as_json.stdout)
    assert [(m["sequence"], m["kind"], m["level"], m["message"], m["data"]) for m in listed] == [
        (3, "log", "INFO", "fetching crm.csv", None),
        (4, "log", "WARNING", "row 7 has no email", {"row": 7}),
        (5, "log", "OUTPUT", "counted", {"imported": 41}),
    ]


def messages_sample(block: Block, ctx: Ctx) -> None:
    run = ctx.fixture("messages_run", MessagesRun)
    real = run.commands[0].stdout.splitlines()
    sample = block.text.splitlines()
    assert len(sample) == len(real)
    for line, got in zip(sample, real, strict=True):
        # The sample's times are made up: any time to the second matches.
        when = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
        expected = re.escape(line).replace(re.escape("2030-01-01T12:00:00Z"), when)
        assert re.fullmatch(expected, got), (line, got)


HOW: dict[str, How] = {
    "the-two-commands-1-sh": How(
        "scripts/serve for real (port 0, database in tmp_path); scripts/test collecting this file only",
        two_commands,
    ),
    "a-five-minute-tour-1-sh": How(
        "terminal 1 of the tour (fixture `tour`): scripts/serve, port 0", tour_server
    ),
    "a-five-minute-tour-2-sh": How("terminal 2: create, then `jobs watch` left running", tour_watch),
    "a-five-minute-tour-3-sh": How("terminal 3, after the watch started: the example worker", tour_worker),
    "a-five-minute-tour-4-sh": How("terminal 2 once the watch ended: list, assets, events", tour_afterwards),
    "a-five-minute-tour-5-text": How(
        "sample output: each line matches a line of the tour's watch", tour_watch_sample
    ),
    "a-five-minute-tour-6-sh": How(
        "each command against a real server, a params.json beside it", cli_options
    ),
    "from-python-1-python": How(
        "a program against a real server: creates, works and gets a job", python_example
    ),
    "from-typescript-1-typescript": How(
        "type-checked and run against a real server by client/typescript's npm test (test/readme.test.ts)",
        typescript_example,
    ),
    "configuration-1-toml": How("the settings loader, then served with the recipe's token", configuration),
    "configuration-2-sh": How("the token recipe, one bash script; the hash is the server's", token_recipe),
    "tls-and-mtls-1-sh": How("each server, port 0, next to throwaway certificates; then called", tls_serve),
    "tls-and-mtls-2-toml": How(
        "the settings loader, then served with; worker-7 calls by certificate", tls_config
    ),
    "tls-and-mtls-3-python": How(
        "a program next to throwaway certificates (builds clients, no call)", tls_clients
    ),
    "tls-and-mtls-4-sh": How("against a mutual-TLS server, next to throwaway certificates", tls_cli),
    "running-several-replicas-1-sh": How(
        "port 0, a throwaway PostgreSQL database, the sample config; then called", replicas, postgres=True
    ),
    "dashboard-1-sh": How("port 0 instead of 8080; the page and local mode's session answer", dashboard),
    "layout-1-text": How("a listing: every directory and script it names exists", layout),
    "deleting-jobs-and-retention-1-sh": How(
        "against a real server, the id replaced by a job run to COMPLETED; then GetJob is NOT_FOUND", deleting
    ),
    "deleting-jobs-and-retention-2-toml": How(
        "the settings loader; served in-process on a moved clock: each job deleted when the block says",
        retention_config,
    ),
    "job-messages-1-python": How(
        "a program against a real server (fixture `messages_run`): prints what its comments show",
        messages_program,
    ),
    "job-messages-2-sh": How("against the same server, on the job the program made", messages_commands),
    "job-messages-3-text": How("sample output: each line matches the real `jobs messages`", messages_sample),
    "completion-callbacks-1-sh": How(
        "against a server with the section's config (fixture `callback_run`); the job it made", callbacks_cli
    ),
    "completion-callbacks-2-toml": How(
        "the settings loader, then served with: a job calls back a receiver on loopback", callbacks_config
    ),
    "completion-callbacks-3-json": How(
        "sample body: the same fields as a real delivery's", callbacks_payload
    ),
    "completion-callbacks-4-python": How(
        "run on a real delivery (verified) and on an altered one (None)", callbacks_verify
    ),
    "admin-changes-and-dry-runs-1-toml": How(
        "the settings loader with two tokens' hashes; served: acme's admin reaches acme only", admin_tokens
    ),
    "admin-changes-and-dry-runs-2-sh": How(
        "typed with the admin token on a job a worker holds; the job checked after each", admin_commands
    ),
    "batches-1-sh": How(
        "each command in a tmp directory against a real server; the batch it made", batches_cli
    ),
    "batches-2-python": How(
        "a program against a real server: its printed lines are the comments'", batches_python
    ),
    "tracing-1-python": How(
        "a program against a real server: its printed lines are the comments'; the job completed",
        tracing_python,
    ),
}


def test_every_block_is_in_the_table_and_every_entry_has_its_block() -> None:
    found = list(BLOCKS)
    assert sorted(set(found) - set(HOW)) == [], "README blocks the table does not cover: add them to HOW"
    assert sorted(set(HOW) - set(found)) == [], "HOW entries without a README block: remove or rename them"
    assert len(found) == len(set(found))


@pytest.mark.parametrize(
    "block",
    [
        pytest.param(b, id=b.id, marks=[pytest.mark.postgres] if b.id in HOW and HOW[b.id].postgres else [])
        for b in BLOCKS.values()
    ],
)
async def test_block(block: Block, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    how = HOW.get(block.id)
    if how is None:
        pytest.fail(f"README.md line {block.line}: no entry in HOW for block {block.id!r}; say how to run it")
    checked = how.check(block, Ctx(request=request, tmp_path=tmp_path))
    if checked is not None:
        await checked
