"""Driver entry for the raw sqlite3 floor."""

from __future__ import annotations

from bench.peers.floors import make_sqlite as make

__all__ = ["make"]
