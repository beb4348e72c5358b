"""Fan-out of committed job events to watchers and of new work to waiting claimers."""

from __future__ import annotations
