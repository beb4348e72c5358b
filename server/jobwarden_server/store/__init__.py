"""The store seam: the `Store` protocol, its parameter records, and `open_store` for a database URL."""

from __future__ import annotations

from jobwarden_server.store._protocol import (
    AssetAddParams,
    Change,
    JobChanges,
    JobClaimParams,
    JobCreateParams,
    JobCreateResult,
    JobListParams,
    JobUpdateParams,
    Lease,
    NewEvent,
    PageParams,
    Store,
)

__all__ = [
    "AssetAddParams",
    "Change",
    "JobChanges",
    "JobClaimParams",
    "JobCreateParams",
    "JobCreateResult",
    "JobListParams",
    "JobUpdateParams",
    "Lease",
    "NewEvent",
    "PageParams",
    "Store",
]
