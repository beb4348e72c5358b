"""The store seam: the `Store` protocol, its parameter records, and `open_store` for a database URL.

JobChanges, Lease and NewEvent are the domain's (domain/changes.py), named here too as the parts of a
JobUpdateParams."""

from __future__ import annotations

from jobwarden_server.domain.changes import JobChanges, Lease, NewEvent
from jobwarden_server.store._feed import ChangeFeed, ChangeSink
from jobwarden_server.store._migrate import is_migrated, migrate
from jobwarden_server.store._open import display_url, open_store
from jobwarden_server.store._protocol import (
    AssetAddParams,
    CallbackAttemptParams,
    CallbackClaimParams,
    CallbackDelivery,
    Change,
    JobClaimParams,
    JobCreateParams,
    JobCreateResult,
    JobDeleteParams,
    JobDueParams,
    JobListParams,
    JobStatsParams,
    JobTypeFigures,
    JobUpdateParams,
    LeaseRenewParams,
    PageParams,
    RenewedLease,
    Replayed,
    Store,
)
from jobwarden_server.store._sql import SqlStore
from jobwarden_server.store._sqlite import SYNCHRONOUS as SQLITE_SYNCHRONOUS

__all__ = [
    "SQLITE_SYNCHRONOUS",
    "AssetAddParams",
    "CallbackAttemptParams",
    "CallbackClaimParams",
    "CallbackDelivery",
    "Change",
    "ChangeFeed",
    "ChangeSink",
    "JobChanges",
    "JobClaimParams",
    "JobCreateParams",
    "JobCreateResult",
    "JobDeleteParams",
    "JobDueParams",
    "JobListParams",
    "JobStatsParams",
    "JobTypeFigures",
    "JobUpdateParams",
    "Lease",
    "LeaseRenewParams",
    "NewEvent",
    "PageParams",
    "RenewedLease",
    "Replayed",
    "SqlStore",
    "Store",
    "display_url",
    "is_migrated",
    "migrate",
    "open_store",
]
