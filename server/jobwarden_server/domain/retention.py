"""Retention: how long finished jobs are kept, per terminal status and per job type, and which jobs
that makes due for deletion at a given time. Pure: the config is parsed here, the store deletes.

The config (all keys optional; a duration is whole seconds, or a whole number with s, m, h or d):

    [retention]
    completed = "7d"                  # a terminal status (completed, partial, failed, cancelled,
    failed = "30d"                    # expired) -> how long after its complete_time a job is kept
    interval_seconds = 60             # how often the server looks for jobs past their retention

    [retention.types."report.render"] # per job type, status by status, over the defaults above
    completed = "1d"
    failed = "never"                  # keep these for good, whatever the default says

A status with no duration is kept for good. Only finished jobs are ever deleted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from jobwarden_server.domain import limits
from jobwarden_server.domain.errors import ConfigError, InvalidArgument
from jobwarden_server.domain.status import TERMINAL, JobStatus

NEVER = "never"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
MAX_SECONDS = 36_500 * 86_400
"""A hundred years: long enough for any policy, short enough that `now - retention` is a valid time."""
DEFAULT_INTERVAL_S = 60.0
BATCH = 500
"""Jobs deleted per write: each batch is one short transaction, so other writes never wait long."""
DELETE_REPLAY_S = 86_400.0
"""How long a DeleteJob's request_id is remembered, so that a retry is answered as the delete was."""

_DURATION = re.compile(r"([1-9][0-9]{0,11})([smhd])")
_STATUS_KEYS = {s.value.lower(): s for s in sorted(TERMINAL)}
Durations = Mapping[JobStatus, float | None]
"""Terminal status -> seconds a job is kept after it ended (None: for good)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetentionRule:
    """Jobs due for deletion: in `status`, ended before `before`, of one of `job_types` (empty: any
    type) and of none of `except_types` (types with a rule of their own for this status)."""

    status: JobStatus
    before: dt.datetime
    job_types: frozenset[str] = frozenset()
    except_types: frozenset[str] = frozenset()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Retention:
    """How long finished jobs are kept: per status, and per job type over that. Empty: for good."""

    by_status: Durations = dataclasses.field(default_factory=dict)
    by_type: Mapping[str, Durations] = dataclasses.field(default_factory=dict)
    interval_s: float = DEFAULT_INTERVAL_S
    batch: int = BATCH

    @property
    def enabled(self) -> bool:
        """Whether any job is ever deleted by retention."""
        durations = [*self.by_status.values(), *(s for d in self.by_type.values() for s in d.values())]
        return any(seconds is not None for seconds in durations)

    def rules(self, now: dt.datetime) -> list[RetentionRule]:
        """What is due at `now`: a rule per job type and status it names, then one per status for every
        other type. A type's own entry wins over the default, "never" included."""
        found: list[RetentionRule] = []
        for job_type, durations in sorted(self.by_type.items()):
            for status, seconds in sorted(durations.items()):
                if seconds is not None:
                    found.append(
                        RetentionRule(
                            status=status, before=_before(now, seconds), job_types=frozenset({job_type})
                        )
                    )
        for status, seconds in sorted(self.by_status.items()):
            if seconds is not None:
                own = frozenset(t for t, durations in self.by_type.items() if status in durations)
                found.append(RetentionRule(status=status, before=_before(now, seconds), except_types=own))
        return found


def _before(now: dt.datetime, seconds: float) -> dt.datetime:
    return now - dt.timedelta(seconds=seconds)


def parse_duration(where: str, value: Any) -> float | None:
    """A retention: whole seconds, "<n>s|m|h|d", or "never" (None). ConfigError in one line otherwise."""
    if value == NEVER:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = int(match[1]) * UNITS[match[2]]
    else:
        raise ConfigError(
            f"{where} = {_shown(value)}: give whole seconds (604800), a whole number with s, m, h or d "
            f'("7d"), or "never"'
        )
    if not 1 <= seconds <= MAX_SECONDS:
        raise ConfigError(f"{where} = {_shown(value)}: must be between 1 second and 36500 days")
    return float(seconds)


def _shown(value: Any) -> str:
    """A value as it would be written in TOML (near enough for a message)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _durations(where: str, raw: Mapping[str, Any]) -> dict[JobStatus, float | None]:
    durations: dict[JobStatus, float | None] = {}
    for key, value in raw.items():
        status = _STATUS_KEYS.get(key)
        if status is None:
            raise ConfigError(
                f"{where}: unknown key {key!r}; only finished jobs are deleted, by status: "
                f"{', '.join(_STATUS_KEYS)}"
            )
        durations[status] = parse_duration(f"{where}.{key}", value)
    return durations


def parse(raw: Any) -> Retention:
    """The [retention] table of the config; ConfigError naming the key that is wrong."""
    if not isinstance(raw, Mapping):
        raise ConfigError("[retention] must be a table")
    rest = {k: v for k, v in raw.items() if k not in ("types", "interval_seconds")}
    if any(isinstance(v, Mapping) for v in rest.values()):
        nested = next(k for k, v in rest.items() if isinstance(v, Mapping))
        raise ConfigError(f'[retention.{nested}]: per job type, write [retention.types."{nested}"]')
    values: dict[str, Any] = {"by_status": _durations("retention", rest)}
    if "interval_seconds" in raw:
        interval = raw["interval_seconds"]
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise ConfigError("retention.interval_seconds must be a number of seconds above 0")
        values["interval_s"] = float(interval)
    types = raw.get("types", {})
    if not isinstance(types, Mapping):
        raise ConfigError('retention.types must be tables: [retention.types."report.render"]')
    by_type: dict[str, dict[JobStatus, float | None]] = {}
    for job_type, table in types.items():
        where = f"retention.types.{job_type}"
        try:
            limits.check_job_type(where, str(job_type))
        except InvalidArgument as err:
            raise ConfigError(f"{where}: not a job type ({err.description})") from None
        if not isinstance(table, Mapping):
            raise ConfigError(
                f'{where} must be a table: [retention.types."{job_type}"] with completed = "1d", …'
            )
        by_type[str(job_type)] = _durations(where, table)
    values["by_type"] = by_type
    return Retention(**values)
