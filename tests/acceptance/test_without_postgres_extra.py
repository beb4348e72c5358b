"""`pip install 'jobwarden[server]'` has no asyncpg (it comes with the `postgres` extra): the server must
still serve on SQLite, and a postgresql:// URL must say what to install.

The test venv has every extra, so the command runs under an import hook that makes asyncpg look not
installed, exactly as Python reports a missing package. (CI also runs scripts/check-server-extra: a
clean venv with only the `server` extra.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import proc

_WITHOUT_ASYNCPG = """
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name == "asyncpg" or name.startswith("asyncpg."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
sys.argv[0] = "jobwarden"
from jobwarden.cli.main import main

sys.exit(main())
"""
WITHOUT_ASYNCPG = [sys.executable, "-c", _WITHOUT_ASYNCPG]


async def test_serve_on_sqlite_needs_no_asyncpg(tmp_path: Path) -> None:
    with proc.serving(tmp_path / "jw.db", serve=[*WITHOUT_ASYNCPG, "serve"]) as (_, address):
        async with grpc.aio.insecure_channel(address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_a_postgresql_url_without_asyncpg_says_which_extra_to_install(command: str) -> None:
    # Nothing listens there: the answer must come before any attempt to connect.
    result = proc.run(
        [command, "--database", "postgresql://jw@127.0.0.1:1/jobs"],
        command=WITHOUT_ASYNCPG,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "error: PostgreSQL support is not installed: pip install 'jobwarden[postgres]'"
    ]
