"""The scenario files: where they are, their schema, the principals and the server config they share."""

from __future__ import annotations

import functools
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema

ROOT = Path(__file__).resolve().parents[2] / "conformance" / "scenarios"
SCHEMA = ROOT / "scenario.schema.json"
SERVER_CONFIG = ROOT / "server.toml"
PRINCIPALS = ROOT / "principals.json"


def scenario_files() -> list[Path]:
    """Every scenario file, in name order (the schema and principals are not scenarios)."""
    return sorted(p for p in ROOT.glob("*.json") if p.name not in {SCHEMA.name, PRINCIPALS.name})


def load(path: Path) -> dict[str, Any]:
    """A scenario, validated against scenario.schema.json; its name must be its file's stem."""
    scenario: dict[str, Any] = json.loads(path.read_text())
    _validator().validate(scenario)
    if scenario["name"] != path.stem:
        raise ValueError(f"{path.name}: name {scenario['name']!r} must be the file's stem {path.stem!r}")
    return scenario


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def principals() -> dict[str, dict[str, Any]]:
    """principals.json, checked against the [[tokens]] of server.toml (each token's sha256 is there,
    with the same owner and roles), so the two files cannot drift apart."""
    found: dict[str, dict[str, Any]] = json.loads(PRINCIPALS.read_text())
    tokens = {t["sha256"]: t for t in tomllib.loads(SERVER_CONFIG.read_text())["tokens"]}
    for name, principal in found.items():
        entry = tokens.get(hashlib.sha256(principal["token"].encode()).hexdigest())
        if entry is None or (entry["owner"], entry["roles"]) != (principal["owner"], principal["roles"]):
            raise ValueError(f"principals.json {name}: no matching [[tokens]] entry in server.toml")
    return found


def configured_job_types() -> dict[str, str]:
    """server.toml's [job_types]: job type -> lifecycle table (the rest run on `standard`)."""
    return dict(tomllib.loads(SERVER_CONFIG.read_text()).get("job_types", {}))
