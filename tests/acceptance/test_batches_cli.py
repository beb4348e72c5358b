"""`jobwarden batches create` and `batches show`, the real command against the real `jobwarden serve`,
both subprocesses; a worker in this process (the SDK) runs the children."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import proc

from jobwarden.client import Client


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with proc.serving(tmp_path_factory.mktemp("batches") / "batches.db") as (_, addr):
        yield addr


def batches(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return proc.run(["batches", *args, "--address", address])


def ok(address: str, *args: str) -> str:
    result = batches(address, *args)
    assert (result.returncode, result.stderr) == (0, ""), (result.returncode, result.stdout, result.stderr)
    return result.stdout


def drain(address: str, job_type: str) -> None:
    async def work() -> None:
        async with Client(address) as client:
            for claim in await client.claim_jobs("w-cli", [job_type], max_jobs=10):
                await client.complete_job(claim.job.id, claim.lease_token, {"size": claim.job.parameters})

    asyncio.run(work())


def test_create_from_a_file_and_options_then_show(address: str, tmp_path: Path) -> None:
    kind = f"cli.{uuid.uuid4().hex[:8]}"
    children = tmp_path / "children.json"
    children.write_text(json.dumps([{"job_type": kind, "parameters": {"w": 64}}, {"job_type": kind}]))
    out = ok(address, "create", "cli.report", "--children", f"@{children}", "--child", f'{kind}:{{"w": 128}}')
    parent_id = out.strip()
    uuid.UUID(parent_id)

    drain(address, kind)
    shown = ok(address, "show", parent_id)
    assert "status:      COMPLETED" in shown
    assert "batch:       3 children: 3 completed" in shown
    assert shown.count(kind) == 3, shown  # the children's table, one row each
    as_json = json.loads(ok(address, "show", parent_id, "--json"))
    assert as_json["batch"]["batch"] == {
        "total": 3,
        "created": 0,
        "queued": 0,
        "running": 0,
        "completed": 3,
        "partial": 0,
        "failed": 0,
        "cancelled": 0,
        "expired": 0,
    }
    assert [c["parameters"] for c in as_json["children"]] == [{"w": 64}, {}, {"w": 128}]
    assert {c["parent_id"] for c in as_json["children"]} == {parent_id}


def test_validate_only_and_refusals(address: str) -> None:
    kind = f"cli.{uuid.uuid4().hex[:8]}"
    out = ok(address, "create", "cli.report", "--child", kind, "--child", kind, "--validate-only")
    assert out == "valid: a batch of 2 children (nothing was created)\n"
    listed = proc.run(["jobs", "list", "--type", kind, "--json", "--address", address])
    assert json.loads(listed.stdout) == []
    refused = batches(address, "create", "cli.report", "--child", kind, "--child", "has space")
    assert refused.returncode == 1
    assert "children[1].job_type" in refused.stderr
    usage = batches(address, "create", "cli.report")
    assert usage.returncode == 2 and "--children or --child" in usage.stderr
