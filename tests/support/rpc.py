"""Helpers for tests that talk to a real server over real gRPC on loopback."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2, status_pb2

from jobwarden.v1 import job_service_pb2_grpc, worker_service_pb2_grpc
from jobwarden_server import app, store
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.settings import Settings
from support import pg

T = TypeVar("T")

DATABASE_ENV = "JOBWARDEN_TEST_DATABASE_URL"


@dataclasses.dataclass
class Stubs:
    """Raw generated stubs on one channel, with optional bearer metadata."""

    channel: grpc.aio.Channel
    jobs: job_service_pb2_grpc.JobServiceStub
    workers: worker_service_pb2_grpc.WorkerServiceStub
    metadata: tuple[tuple[str, str], ...] = ()


@contextlib.asynccontextmanager
async def stubs(address: str, token: str | None = None) -> AsyncIterator[Stubs]:
    """A channel to `address` with both service stubs; `token` becomes bearer metadata on each call."""
    async with grpc.aio.insecure_channel(address) as channel:
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        yield Stubs(
            channel=channel,
            jobs=job_service_pb2_grpc.JobServiceStub(channel),
            workers=worker_service_pb2_grpc.WorkerServiceStub(channel),
            metadata=metadata,
        )


def principals(tokens: Mapping[str, tuple[str, frozenset[Role]]]) -> dict[str, Principal]:
    """Token -> (owner, roles) as the settings' hash table."""
    return {
        hashlib.sha256(token.encode()).hexdigest(): Principal(owner=owner, roles=roles, name=token)
        for token, (owner, roles) in tokens.items()
    }


def database_url(tmp_path: Path) -> str:
    """The database for a test server: a SQLite file in tmp_path."""
    return str(tmp_path / "jobwarden.db")


@contextlib.asynccontextmanager
async def migrated_store(tmp_path: Path, backend: str = "sqlite") -> AsyncIterator[store.Store]:
    """An open store over a migrated database of its own, closed at the end of the block: a SQLite file
    in tmp_path, or with `backend="postgres"` a throw-away PostgreSQL database."""
    async with contextlib.AsyncExitStack() as stack:
        if backend == "postgres":
            url = await stack.enter_async_context(pg.throwaway_database())
        else:
            url = database_url(tmp_path)
        await store.migrate(url)
        opened = store.open_store(url)
        stack.push_async_callback(opened.close)
        yield opened


@contextlib.asynccontextmanager
async def server(
    tmp_path: Path, *, backend: str = "sqlite", **overrides: Any
) -> AsyncIterator[app.RunningServer]:
    """An in-process server on 127.0.0.1:0 over a real database, stopped at the end of the block.

    The database is a SQLite file in tmp_path, or with `backend="postgres"` a throw-away PostgreSQL
    database (tests doing that are marked `postgres`), unless `database` is given.
    """
    async with contextlib.AsyncExitStack() as stack:
        if "database" not in overrides:
            if backend == "postgres":
                overrides["database"] = await stack.enter_async_context(pg.throwaway_database())
            else:
                overrides["database"] = database_url(tmp_path)
        settings = Settings(listen="127.0.0.1:0", **overrides)
        async with app.running(settings) as srv:
            yield srv


@dataclasses.dataclass
class RpcFailure:
    """What a failed call said: code, ErrorInfo reason and metadata, BadRequest fields."""

    code: grpc.StatusCode
    reason: str
    metadata: dict[str, str]
    fields: list[str]
    message: str


def failure(err: grpc.aio.AioRpcError) -> RpcFailure:
    """Decode the rich status of a failed call; asserts it carries exactly one ErrorInfo."""
    details = None
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            details = status_pb2.Status.FromString(value)
    assert details is not None, f"{err.code()} {err.details()} carries no google.rpc.Status"
    decoded = status_failure(details)
    assert decoded.code == err.code(), (decoded.code, err.code())
    return dataclasses.replace(decoded, message=err.details() or "")


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_failure(status: status_pb2.Status) -> RpcFailure:
    """Decode a google.rpc.Status (a call's, or one item's of a batch); asserts exactly one ErrorInfo."""
    infos, fields = [], []
    for any_detail in status.details:
        if any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_detail.Unpack(info)
            infos.append(info)
        elif any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    assert len(infos) == 1, f"expected one ErrorInfo, got {infos}"
    return RpcFailure(
        code=_CODES[status.code],
        reason=infos[0].reason,
        metadata=dict(infos[0].metadata),
        fields=fields,
        message=status.message,
    )


async def fails(call: Awaitable[Any]) -> RpcFailure:
    """Await a call that must fail, and decode why."""
    try:
        await call
    except grpc.aio.AioRpcError as err:
        return failure(err)
    raise AssertionError("the call succeeded but was expected to fail")


def env_database() -> str | None:
    """The PostgreSQL URL for tests, when set."""
    return os.environ.get(DATABASE_ENV) or None
