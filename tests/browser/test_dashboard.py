"""The dashboard in a real headless Chromium against the real `jobwarden serve` (SQLite, token mode,
two owners), driven by tests/browser/driver.mjs; the jobs change through real gRPC calls meanwhile.

Also on PostgreSQL: the dashboard of one replica shows changes made through another.
Screenshots of the list, a job and the queues go to test-artifacts/ (and, with
JOBWARDEN_UPDATE_SCREENSHOTS=1, to docs/dashboard for the README).
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import browser, flows, pg, proc, rpc

from jobwarden.v1 import job_pb2

# The first run on a fresh machine installs Chromium and the npm packages in the fixtures (each step
# bounded by its own timeout); the per-test limit bounds the tests themselves.
pytestmark = pytest.mark.timeout(60, func_only=True)

TOKENS = {"alice": "token-alice-7f3a", "bob": "token-bob-19c2"}
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def _config(path: Path, database: str | None = None) -> Path:
    tokens = "".join(
        f'[[tokens]]\nsha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\nowner = "{owner}"\n'
        f'roles = ["client", "worker", "admin"]\n'
        for owner, token in TOKENS.items()
    )
    head = f'database = "{database}"\n' if database else ""
    path.write_text(head + "reaper_interval_seconds = 0.5\n" + tokens)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """One `jobwarden serve` for the module: its gRPC address and dashboard URL."""
    tmp = tmp_path_factory.mktemp("dashboard")
    config = _config(tmp / "jobwarden.toml")
    with proc.serving(tmp / "jw.db", "--config", str(config), "--http-listen", "127.0.0.1:0") as (
        process,
        address,
    ):
        yield address, proc.dashboard_url(process)


@pytest.fixture(scope="module")
def chromium() -> Iterator[browser.Browser]:
    with browser.chromium() as started:
        yield started


def _sign_in(chromium: browser.Browser, url: str, owner: str, viewport: dict[str, int] = DESKTOP) -> None:
    """Open the dashboard with ?token= (it moves into the HttpOnly cookie) and wait for the list."""
    landed = chromium.goto(f"{url}?token={TOKENS[owner]}", session=owner, viewport=viewport)
    assert "token" not in landed
    chromium.wait_for("#job-rows", session=owner)


async def test_a_new_job_appears_live_and_its_progress_bar_follows_the_worker(
    server: tuple[str, str], chromium: browser.Browser
) -> None:
    address, url = server
    _sign_in(chromium, url, "alice")
    async with rpc.stubs(address, TOKENS["alice"]) as alice:
        job = await flows.create(
            alice, "image.resize", labels={"team": "web"}, parameters=flows.struct(width=640)
        )
        row = f'tr[data-job-id="{job.id}"]'
        chromium.wait_for(row, session="alice")  # no reload: pushed over server-sent events
        chromium.click(f"{row} a", session="alice")
        chromium.wait_attr("#job-progress", "aria-valuenow", "0", session="alice")
        claim = await flows.claim_one(alice, "image.resize")
        chromium.wait_for("#job-fields .status", text="RUNNING", session="alice")
        await flows.progress(alice, claim, 35, "resizing tiles")
        chromium.wait_attr("#job-progress", "aria-valuenow", "35", session="alice")
        await flows.progress(alice, claim, 80, "encoding")
        chromium.wait_attr("#job-progress", "aria-valuenow", "80", session="alice")
        chromium.wait_for("#progress-message", text="encoding", session="alice")
        await flows.add_asset(alice, claim, "s3://bucket/out-640.png")
        chromium.wait_for('#timeline li[data-kind="asset_added"]', text="out-640.png", session="alice")
        assert chromium.count('#timeline li[data-kind="progress"]', session="alice") == 2
        assert chromium.count('#timeline li[data-kind="transition"]', session="alice") == 1
        await flows.complete(alice, claim, image="s3://bucket/out-640.png")
        chromium.wait_for("#job-fields .status", text="COMPLETED", session="alice")
        chromium.wait_for("#job-fields", text="out-640.png", session="alice")  # the result, read at the end
        chromium.screenshot("job.png", session="alice", full_page=True)
    assert chromium.page_errors("alice") == []


async def test_cancelling_from_the_page_asks_first_and_grpc_then_says_cancelled(
    server: tuple[str, str], chromium: browser.Browser
) -> None:
    address, url = server
    async with rpc.stubs(address, TOKENS["alice"]) as alice:
        job = await flows.create(alice, "report.render")
        chromium.goto(f"{url}#/jobs/{job.id}", session="alice")
        chromium.wait_for("#job-fields .status", text="QUEUED", session="alice")
        chromium.click("#cancel-job", session="alice")
        chromium.wait_for("#confirm", text=job.id, session="alice")
        chromium.click("#confirm button[value=no]", session="alice")  # "Keep": nothing happens
        chromium.wait_gone("#confirm[open]", session="alice")
        assert (await flows.get(alice, job.id)).status == job_pb2.JOB_STATUS_QUEUED
        chromium.click("#cancel-job", session="alice")
        chromium.click("#confirm-yes", session="alice")
        chromium.wait_for("#job-fields .status", text="CANCELLED", session="alice")
        assert (await flows.get(alice, job.id)).status == job_pb2.JOB_STATUS_CANCELLED


async def test_another_owners_jobs_are_never_shown(
    server: tuple[str, str], chromium: browser.Browser
) -> None:
    address, url = server
    _sign_in(chromium, url, "bob")
    chromium.goto(f"{url}#/", session="alice")
    chromium.wait_for("#job-rows", session="alice")
    async with rpc.stubs(address, TOKENS["alice"]) as alice, rpc.stubs(address, TOKENS["bob"]) as bob:
        theirs = await flows.create(bob, "image.resize")
        mine = await flows.create(alice, "image.resize")
        chromium.wait_for(f'tr[data-job-id="{theirs.id}"]', session="bob")
        chromium.wait_for(f'tr[data-job-id="{mine.id}"]', session="alice")
        assert chromium.count(f'tr[data-job-id="{theirs.id}"]', session="alice") == 0
        assert chromium.count(f'tr[data-job-id="{mine.id}"]', session="bob") == 0
        chromium.goto(f"{url}#/jobs/{theirs.id}", session="alice")
        chromium.wait_for('[role="alert"]', text="not found", session="alice")
        assert chromium.count("#timeline li", session="alice") == 0


async def test_a_bulk_cancel_shows_the_filters_count_first(
    server: tuple[str, str], chromium: browser.Browser
) -> None:
    address, url = server
    async with rpc.stubs(address, TOKENS["alice"]) as alice:
        made = [await flows.create(alice, "crm.import", labels={"batch": "b7"}) for _ in range(3)]
        other = await flows.create(alice, "crm.import", labels={"batch": "b8"})
        chromium.goto(f"{url}#/", session="alice")
        chromium.fill('#filters input[name="labels"]', "batch=b7", session="alice")
        chromium.click('#filters button[type="submit"]', session="alice")
        chromium.wait_for("#match-count", text="3 matching jobs", session="alice")
        chromium.click("#bulk-cancel", session="alice")
        chromium.wait_for("#confirm-text", text="3 jobs that match", session="alice")
        chromium.click("#confirm-yes", session="alice")
        chromium.wait_for('[role="status"]', text="Cancelled 3 of 3", session="alice")
        for job in made:
            assert (await flows.get(alice, job.id)).status == job_pb2.JOB_STATUS_CANCELLED
        assert (await flows.get(alice, other.id)).status == job_pb2.JOB_STATUS_QUEUED


async def test_screenshots_of_the_list_and_the_queues(
    server: tuple[str, str], chromium: browser.Browser
) -> None:
    address, url = server
    async with rpc.stubs(address, TOKENS["alice"]) as alice:
        for job_type in ("image.resize", "image.resize", "report.render", "crm.import"):
            await flows.create(alice, job_type, labels={"team": "web"})
        for job_type, outcome in (
            ("image.resize", "complete"),
            ("report.render", "fail"),
            ("crm.import", "run"),
        ):
            claim = await flows.claim_one(alice, job_type)
            await flows.progress(alice, claim, 60, "working")
            if outcome == "complete":
                await flows.complete(alice, claim)
            elif outcome == "fail":
                await flows.fail(alice, claim, "template missing")
    chromium.goto(f"{url}#/", session="alice")
    chromium.wait_for('#job-rows tr[data-job-id] .status[data-status="RUNNING"]', session="alice")
    chromium.screenshot("jobs.png", session="alice")
    chromium.goto(f"{url}#/queues", session="alice")
    chromium.wait_for('section[data-job-type="image.resize"] svg.chart', session="alice")
    chromium.screenshot("queues.png", session="alice", full_page=True)
    chromium.goto(f"{url}?token={TOKENS['alice']}", session="phone", viewport=PHONE)
    chromium.wait_for("#job-rows tr[data-job-id]", session="phone")
    chromium.screenshot("jobs-phone.png", session="phone")
    for name in ("jobs.png", "job.png", "queues.png", "jobs-phone.png"):
        assert (browser.ARTIFACTS / name).stat().st_size > 10_000
    assert chromium.page_errors("alice") == [] and chromium.page_errors("phone") == []


@pytest.mark.postgres
async def test_one_replicas_dashboard_shows_a_change_made_through_another(
    tmp_path: Path, chromium: browser.Browser
) -> None:
    async with pg.throwaway_database("jobwarden_dash") as database:
        config = _config(tmp_path / "replica.toml")
        with (
            proc.serving(database, "--config", str(config), "--http-listen", "127.0.0.1:0") as (first, _),
            proc.serving(database, "--config", str(config)) as (_, other),
        ):
            url = proc.dashboard_url(first)
            chromium.goto(f"{url}?token={TOKENS['alice']}", session="replica", viewport=DESKTOP)
            chromium.wait_for("#job-rows", session="replica")
            async with rpc.stubs(other, TOKENS["alice"]) as alice:
                job = await flows.create(alice, "image.resize")
                chromium.wait_for(f'tr[data-job-id="{job.id}"]', session="replica")
                chromium.click(f'tr[data-job-id="{job.id}"] a', session="replica")
                chromium.wait_attr("#job-progress", "aria-valuenow", "0", session="replica")
                claim = await flows.claim_one(alice, "image.resize")
                await flows.progress(alice, claim, 45, "halfway")
                chromium.wait_attr("#job-progress", "aria-valuenow", "45", session="replica")
                chromium.wait_for("#job-fields .status", text="RUNNING", session="replica")


def test_the_driver_packages_are_pinned() -> None:
    lock = (browser.HERE / "package-lock.json").read_text()
    assert '"playwright-core": "1.65.2"' in (browser.HERE / "package.json").read_text()
    assert "node_modules/playwright-core" in lock
    assert (
        subprocess.run(
            ["git", "check-ignore", "-q", str(browser.HERE / "node_modules")], check=False
        ).returncode
        == 0
    )
