"""What the SDK's Work session says when it opens, against a stand-in for grpc's stream (no network);
the session's behaviour against a real server is tested in tests/integration."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import grpc

from jobwarden.client import Claim
from jobwarden.client._session import SessionLink
from jobwarden.v1 import worker_service_pb2 as pb


class _Stream:
    """A Work stream the server ends at once; it keeps what the session wrote."""

    def __init__(self) -> None:
        self.written: list[pb.WorkRequest] = []

    async def write(self, request: pb.WorkRequest) -> None:
        self.written.append(request)

    async def read(self) -> Any:
        return grpc.aio.EOF

    async def done_writing(self) -> None:
        return None

    def cancel(self) -> None:
        return None


class _Owner:
    def free_slots(self) -> int:
        return 3

    def running(self) -> list[tuple[str, str]]:
        return []

    def on_claim(self, claim: Claim) -> None:
        raise AssertionError("nothing is claimed here")

    def on_cancel(self, job_id: str) -> None:
        raise AssertionError("nothing is cancelled here")

    def on_lost(self, job_id: str) -> None:
        raise AssertionError("nothing is lost here")


async def test_the_session_opens_with_brief_acks_and_the_worker_s_free_slots() -> None:
    stream = _Stream()
    calls: Any = SimpleNamespace(_worker_stub=SimpleNamespace(Work=lambda metadata: stream), _metadata=())
    link = SessionLink(calls, _Owner(), worker_id="w-1", job_types=["t"], lease_duration=30.0)
    link.close()  # nothing to send: the session ends when the server ends the stream
    await link.run()
    first = stream.written[0]
    assert first.start.worker_id == "w-1" and list(first.start.job_types) == ["t"]
    assert first.start.brief_acks  # the Worker reads no finished job back
    assert first.credits == 3
