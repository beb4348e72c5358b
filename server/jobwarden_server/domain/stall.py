"""Stall detection: per job type, how long a running job's progress may stand still while its worker
keeps the lease, and what the server does then. Pure: the config is parsed here; the rule that acts
on a job is decisions.stall, run by the reaper.

Liveness and progress are different questions. A worker that dies or loses the network stops renewing
its lease, and the reaper ends the attempt when the lease runs out. A worker whose heartbeat goes on
while the job itself hangs (a stuck call, a deadlock in the job's own code) keeps its lease for ever;
only the progress standing still shows it. The config (all keys optional):

    [stall.types."report.render"]   # per job type; types without an entry are never flagged
    after = 300                     # seconds (or "5m", "2h") the progress may stand still
    action = "fail"                 # "flag" (default): mark the job stalled and record an event;
                                    # "fail": also end the attempt (retried while attempts are left)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from collections.abc import Mapping
from typing import Any

from jobwarden_server.domain import limits
from jobwarden_server.domain.errors import ConfigError, InvalidArgument
from jobwarden_server.domain.lifecycle import Lifecycles
from jobwarden_server.domain.retention import UNITS
from jobwarden_server.domain.status import JobStatus

MAX_AFTER_S = 366 * 86_400.0
_DURATION = re.compile(r"([1-9][0-9]{0,11})([smhd])")


class StallAction(enum.StrEnum):
    """What the server does with a job whose progress stood still for its type's `after`."""

    FLAG = "flag"
    """Mark it stalled (Job.stalled, a stalled event); the worker may still finish it."""
    FAIL = "fail"
    """Mark it and end its attempt as a failure (decisions.stall says how)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StallRule:
    """One job type's stall detection."""

    after_s: float
    action: StallAction = StallAction.FLAG

    def stood_still(self, progress_time: dt.datetime | None, now: dt.datetime) -> bool:
        """Whether progress last changed at `progress_time` has stood still too long by `now`."""
        return progress_time is not None and progress_time + dt.timedelta(seconds=self.after_s) <= now


StallRules = Mapping[str, StallRule]
"""Job type -> its stall rule."""


def _after(where: str, value: Any) -> float:
    """Seconds (a number above 0, fractions allowed) or a whole number with s, m, h or d."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value)):
        seconds = float(int(match[1]) * UNITS[match[2]])
    else:
        raise ConfigError(
            f'{where} = {value!r}: give seconds (300) or a whole number with s, m, h or d ("5m")'
        )
    if not 0 < seconds <= MAX_AFTER_S:
        raise ConfigError(f"{where} = {value!r}: must be above 0 and at most 366 days")
    return seconds


def parse(raw: Any, lifecycles: Lifecycles) -> dict[str, StallRule]:
    """The [stall] table of the config; ConfigError naming the key that is wrong. A type whose action
    is `fail` must be governed by a lifecycle table that lets a running job fail."""
    if not isinstance(raw, Mapping):
        raise ConfigError("[stall] must be a table")
    unknown = sorted(set(raw) - {"types"})
    if unknown:
        raise ConfigError(f'[stall]: unknown keys {unknown}; per job type, write [stall.types."<type>"]')
    types = raw.get("types", {})
    if not isinstance(types, Mapping):
        raise ConfigError('stall.types must be tables: [stall.types."report.render"]')
    rules: dict[str, StallRule] = {}
    for job_type, table in types.items():
        where = f"stall.types.{job_type}"
        try:
            limits.check_job_type(where, str(job_type))
        except InvalidArgument as err:
            raise ConfigError(f"{where}: not a job type ({err.description})") from None
        if not isinstance(table, Mapping):
            raise ConfigError(f'{where} must be a table: [stall.types."{job_type}"] with after = 300')
        extra = sorted(set(table) - {"after", "action"})
        if extra:
            raise ConfigError(f"{where}: unknown keys {extra} (use after, action)")
        if "after" not in table:
            raise ConfigError(f"{where}.after is required (seconds the progress may stand still)")
        try:
            action = StallAction(table.get("action", StallAction.FLAG.value))
        except ValueError:
            raise ConfigError(f'{where}.action = {table["action"]!r}: use "flag" or "fail"') from None
        lifecycle = lifecycles.for_job_type(str(job_type))
        if action is StallAction.FAIL and not lifecycle.allows(JobStatus.RUNNING, JobStatus.FAILED):
            raise ConfigError(
                f'{where}.action = "fail": lifecycle {lifecycle.name!r} has no RUNNING -> FAILED'
            )
        rules[str(job_type)] = StallRule(after_s=_after(f"{where}.after", table["after"]), action=action)
    return rules
