"""The language-neutral conformance scenarios (scenarios/*.json), run through the Python SDK.

One real `jobwarden serve` per store for the whole module (SQLite always; PostgreSQL when
JOBWARDEN_TEST_DATABASE_URL is set), started with scenarios/server.toml exactly as every runner starts
it (scenarios/README.md). Scenarios keep apart by their job types ("<scenario>.<symbol>"), so they share
the server. Any SDK's runner executes the same files; this one is the reference.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.conformance import expect, runner, server, spec

STORES = [
    "sqlite",
    *(
        [pytest.param("postgres", marks=pytest.mark.postgres)]
        if os.environ.get("JOBWARDEN_TEST_DATABASE_URL")
        else []
    ),
]


@pytest.fixture(scope="module", params=STORES)
def address(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of the server the module's scenarios share, one per store."""
    with server.serving(request.param, tmp_path_factory.mktemp(f"conformance-{request.param}")) as found:
        yield found


@pytest.mark.parametrize("path", spec.scenario_files(), ids=lambda p: p.stem)
async def test_scenario(path: Path, address: str) -> None:
    await runner.run(spec.load(path), address, spec.principals())


def test_every_op_of_the_schema_has_a_python_mapping_and_back() -> None:
    ops = json.loads(spec.SCHEMA.read_text())["$defs"]["step"]["properties"]["op"]["enum"]
    assert sorted(ops) == sorted(runner.OPS)


def test_job_types_configured_for_other_tables_belong_to_scenarios_that_declare_them() -> None:
    declared = {
        f"{s['name']}.{symbol}": table
        for s in map(spec.load, spec.scenario_files())
        for symbol, table in s["job_types"].items()
    }
    for job_type, table in spec.configured_job_types().items():
        assert declared.get(job_type) == table, f"server.toml maps {job_type} to {table}"


def test_expectations_match_as_subsets_lists_item_by_item_numbers_by_value() -> None:
    actual = {
        "status": "QUEUED",
        "attempt": 1,
        "progress": {"percent": 50.0, "message": ""},
        "ids": ["a", "b"],
    }
    expect.matches({"status": "QUEUED", "progress": {"percent": 50}}, actual)
    expect.matches({"ids": ["a", "b"], "missing": None}, actual)
    for wrong in (
        {"status": "RUNNING"},
        {"ids": ["a"]},
        {"ids": ["b", "a"]},
        {"attempt": True},
        {"progress": {"percent": 51}},
        {"missing": 0},
    ):
        with pytest.raises(expect.Mismatch):
            expect.matches(wrong, actual)
