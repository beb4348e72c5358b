"""Pure domain: statuses, lifecycle tables, records and errors. No I/O, no gRPC, no SQL."""

from __future__ import annotations
