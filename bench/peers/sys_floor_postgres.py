"""Driver entry for the raw asyncpg floor."""

from __future__ import annotations

from bench.peers.floors import make_postgres as make

__all__ = ["make"]
