"""The real `jobwarden serve` owns its port: a second server on it fails at once and says why, and the
first one keeps serving. Bad listen addresses stop the command with one line."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import proc

QUICKLY_S = 15.0
"""A refused start takes an interpreter start-up and a bind attempt; a server that wrongly starts
instead would run until killed."""


async def _serving(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_second_server_on_a_port_in_use_exits_at_once_and_the_first_keeps_serving(
    tmp_path: Path,
) -> None:
    with proc.serving(tmp_path / "first.db") as (first, address):
        began = time.monotonic()
        second = proc.run(
            ["serve", "--listen", address, "--database", str(tmp_path / "second.db")], timeout=QUICKLY_S
        )
        assert time.monotonic() - began < QUICKLY_S
        assert second.returncode == 2, second.stderr
        assert second.stderr.splitlines() == [
            (
                f"error: cannot listen on {address}: the address is already in use (another jobwarden or "
                "another program listens there); stop it or choose another --listen"
            )
        ]
        assert second.stdout == ""
        # It failed before touching its database.
        assert not (tmp_path / "second.db").exists()
        assert first.poll() is None
        assert await _serving(address)


async def test_a_grpc_server_that_asks_to_share_the_port_cannot(tmp_path: Path) -> None:
    # grpcio servers set SO_REUSEPORT by default; the kernel lets two such sockets share a port, and
    # then splits the connections between them. jobwarden binds without it, so nobody can join.
    with proc.serving(tmp_path / "jw.db") as (first, address):
        intruder = grpc.aio.server()  # default options: SO_REUSEPORT on
        try:
            with pytest.raises(RuntimeError, match="Failed to bind"):
                intruder.add_insecure_port(address)
        finally:
            await intruder.stop(None)
        assert first.poll() is None
        assert await _serving(address)


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("127.0.0.1:80000", "error: listen address '127.0.0.1:80000': port 80000 is out of range"),
        ("nonsense", "error: listen address 'nonsense' is not host:port"),
    ],
)
def test_a_bad_listen_address_stops_serve_with_one_line(tmp_path: Path, listen: str, message: str) -> None:
    result = proc.run(["serve", "--listen", listen, "--database", str(tmp_path / "jw.db")])
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(message)
    assert not (tmp_path / "jw.db").exists()
