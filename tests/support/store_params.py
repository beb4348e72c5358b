"""Store parameter records for the store's own tests, with defaults any field of which can be overridden."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jobwarden_server.store import JobClaimParams


def claim(now: dt.datetime, **overrides: Any) -> JobClaimParams:
    """alice's worker w1 claiming up to 10 `render` jobs at `now` for 30 s; `overrides` replace any of that."""
    values: dict[str, Any] = {
        "owner": "alice",
        "worker_id": "w1",
        "job_types": frozenset({"render"}),
        "limit": 10,
        "lease_duration_s": 30.0,
        "now": now,
    }
    return JobClaimParams(**(values | overrides))
