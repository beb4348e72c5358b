"""jobwarden with TypeScript workers: the same server, client and store as sys_jobwarden, but each worker
process is Node.js running the TypeScript SDK's Worker (client/typescript/bench/drain-worker.ts)."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.peers.drive import CONCURRENCY, Settings
from bench.peers.sys_jobwarden import Jobwarden

ROOT = Path(__file__).resolve().parents[2]
DRAIN_WORKER = ROOT / "client" / "typescript" / "dist" / "bench" / "drain-worker.js"


class JobwardenTs(Jobwarden):
    """One server over SQLite or PostgreSQL, drained by Node.js worker processes."""

    def worker_command(self, index: int) -> tuple[list[str], dict[str, str]]:
        assert self._server is not None
        node = shutil.which("node")
        if node is None or not DRAIN_WORKER.exists():
            raise RuntimeError(f"TypeScript workers need node and {DRAIN_WORKER} (orchestrate builds it)")
        return [node, str(DRAIN_WORKER), self._server.address, self.s.variant], {
            "BENCH_CONCURRENCY": str(CONCURRENCY)
        }

    def versions(self) -> dict[str, str]:
        return {**super().versions(), "@jobwarden/client": "client/typescript (this tree)"}


def make(s: Settings) -> JobwardenTs:
    """The driver's entry point."""
    return JobwardenTs(s)
