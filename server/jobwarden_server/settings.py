"""Server settings: defaults, the TOML config file, environment variables and flags, in that order.

Config file (all keys optional):

    listen = "127.0.0.1:50051"
    database = "jobwarden.db"            # or postgresql://user@host/db
    shutdown_grace_seconds = 10
    reaper_interval_seconds = 1           # how often expired leases and deadlines are looked for
    cancel_grace_seconds = 30             # a running job's worker has this long to confirm a cancel

    [[tokens]]                            # no tokens = local mode (loopback only, owner "default")
    sha256 = "<hex sha256 of the token>"  # printf %s "$TOKEN" | sha256sum
    owner = "acme"
    roles = ["client", "worker"]          # client, worker, admin
    name = "acme-ci"

    [retry]
    default_max_attempts = 3
    initial_backoff_seconds = 1.0
    max_backoff_seconds = 300.0
    multiplier = 2.0

    [job_types]                           # job type -> lifecycle table (default: standard)
    "report.render" = "staged"

    [lifecycles.review]                   # custom tables, checked at start-up
    initial = "QUEUED"
    transitions = [["QUEUED", "RUNNING"], ["RUNNING", "COMPLETED"], ["RUNNING", "FAILED"]]
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.domain.errors import ConfigError
from jobwarden_server.domain.lifecycle import Lifecycle, Lifecycles
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import JobStatus

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_DATABASE = "jobwarden.db"
ENV_DATABASE = "JOBWARDEN_DATABASE_URL"
ENV_LISTEN = "JOBWARDEN_LISTEN"
ENV_CONFIG = "JOBWARDEN_CONFIG"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the composition root needs."""

    listen: str = DEFAULT_LISTEN
    database: str = DEFAULT_DATABASE
    principals_by_hash: Mapping[str, Principal] = dataclasses.field(default_factory=dict)
    lifecycles: Lifecycles = dataclasses.field(default_factory=Lifecycles.build)
    retry: RetryPolicy = dataclasses.field(default_factory=RetryPolicy)
    max_request_bytes: int = 4 << 20
    subscriber_queue_size: int = 256
    shutdown_grace_s: float = 10.0
    reaper_interval_s: float = 1.0
    cancel_grace_s: float = 30.0
    """How long a worker has to confirm a cancel of a running job before the server cancels it."""

    def checked(self) -> Settings:
        """Refuse settings that would be unsafe: without tokens, only a loopback address."""
        if not self.principals_by_hash and not is_loopback(self.listen):
            raise ConfigError(
                f"refusing to listen on {self.listen} without tokens: configure [[tokens]] or use 127.0.0.1"
            )
        return self


def is_loopback(listen: str) -> bool:
    """Whether host:port names a loopback address only."""
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load(config_path: str | None = None, **overrides: Any) -> Settings:
    """Settings from the config file (if any), then environment, then non-None overrides."""
    path = config_path or os.environ.get(ENV_CONFIG)
    values: dict[str, Any] = {}
    if path:
        values.update(_from_file(Path(path)))
    if ENV_DATABASE in os.environ:
        values["database"] = os.environ[ENV_DATABASE]
    if ENV_LISTEN in os.environ:
        values["listen"] = os.environ[ENV_LISTEN]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**values).checked()


def _from_file(path: Path) -> dict[str, Any]:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"config file {path}: {err}") from err
    known = {"listen", "database", "tokens", "retry", "job_types", "lifecycles"}
    known |= {"shutdown_grace_seconds", "reaper_interval_seconds", "cancel_grace_seconds"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"config file {path}: unknown keys {unknown}")
    values: dict[str, Any] = {}
    for key in ("listen", "database"):
        if key in raw:
            values[key] = str(raw[key])
    for key in ("shutdown_grace", "reaper_interval", "cancel_grace"):
        if f"{key}_seconds" in raw:
            values[f"{key}_s"] = float(raw[f"{key}_seconds"])
    values["principals_by_hash"] = _tokens(raw.get("tokens", []))
    values["retry"] = _retry(raw.get("retry", {}))
    custom = [_lifecycle(name, spec) for name, spec in raw.get("lifecycles", {}).items()]
    values["lifecycles"] = Lifecycles.build(
        custom, {str(k): str(v) for k, v in raw.get("job_types", {}).items()}
    )
    return values


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _tokens(entries: list[Mapping[str, Any]]) -> dict[str, Principal]:
    out: dict[str, Principal] = {}
    for i, entry in enumerate(entries):
        digest = str(entry.get("sha256", "")).lower()
        owner = str(entry.get("owner", ""))
        if not _HEX64.match(digest):
            raise ConfigError(f"tokens[{i}].sha256 must be 64 hex characters (printf %s TOKEN | sha256sum)")
        if not owner:
            raise ConfigError(f"tokens[{i}].owner is required")
        try:
            roles = frozenset(Role(r) for r in entry.get("roles", ["client", "worker"]))
        except ValueError as err:
            raise ConfigError(f"tokens[{i}].roles: {err} (use client, worker, admin)") from err
        if digest in out:
            raise ConfigError(f"tokens[{i}] repeats a token")
        out[digest] = Principal(owner=owner, roles=roles, name=str(entry.get("name", owner)))
    return out


def _retry(raw: Mapping[str, Any]) -> RetryPolicy:
    try:
        policy = RetryPolicy(
            default_max_attempts=int(raw.get("default_max_attempts", 3)),
            initial_backoff_s=float(raw.get("initial_backoff_seconds", 1.0)),
            max_backoff_s=float(raw.get("max_backoff_seconds", 300.0)),
            multiplier=float(raw.get("multiplier", 2.0)),
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"[retry]: {err}") from err
    if policy.default_max_attempts < 1 or policy.initial_backoff_s < 0 or policy.multiplier < 1:
        raise ConfigError(
            "[retry]: need default_max_attempts >= 1, initial_backoff_seconds >= 0, multiplier >= 1"
        )
    return policy


def _status(where: str, value: Any) -> JobStatus:
    try:
        return JobStatus(str(value).upper())
    except ValueError as err:
        raise ConfigError(f"{where}: unknown status {value!r} (use {', '.join(JobStatus)})") from err


def _lifecycle(name: str, spec: Mapping[str, Any]) -> Lifecycle:
    where = f"lifecycles.{name}"
    pairs = spec.get("transitions", [])
    if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
        raise ConfigError(f"{where}.transitions must be a list of [from, to] pairs")
    edges = [(_status(where, a), _status(where, b)) for a, b in pairs]
    return Lifecycle.checked(name, _status(where, spec.get("initial", "QUEUED")), edges)
