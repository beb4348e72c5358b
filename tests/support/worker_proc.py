"""A worker process for the fault tests: the SDK `Worker`, plus a log of every worker call it makes.

    python worker_proc.py --target 127.0.0.1:PORT --log calls.jsonl --worker-id w1 --job-type load \
        --mode load --lease 2 --concurrency 4

Every WorkerService call (the SDK's own claims, heartbeats, completions, and the handlers' calls) is
recorded by a client interceptor as one JSON line: what was called, for which job under which lease,
when it was sent (`t0`, wall clock) and answered (`t1`), and what the server said. The tests read the
log afterwards, so a call's outcome is known even when the process was frozen or killed around it.

Modes (what the handler of `--job-type` does):

- `load`: follows the job's parameters (`steps`, `step_ms`, `asset`, `outcome`); see `_load`.
- `hold`: reports progress once, then holds the job (heartbeats keep its lease) until the process dies.
- `quick`: reports progress, adds an asset, completes.
- `fleet`: logs the handler's start and finish (job, attempt; the log adds pid and worker), reports
  progress once and works the job's `work_ms` parameter in between; returns who ran it. The mixed fleet
  test runs it beside the TypeScript worker (client/typescript/test/fleet/worker.ts), which does the same.
- `zombie`: a worker that does not stop when it loses its lease: it keeps writing progress under its
  token until refused three times, then tries an asset, a completion and a failure under the same
  token. Run it, freeze it (SIGSTOP) past its lease, resume it: every one of those writes must be refused.

SIGTERM stops the worker gracefully (the SDK's own signal handling).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import grpc
import grpc.aio

from jobwarden import errors
from jobwarden.client import Client, JobContext, PartialResult, PermanentError, Worker
from jobwarden.client._channel import channel_options
from jobwarden.v1 import worker_service_pb2

SERVICE = "/jobwarden.v1.WorkerService/"
ZOMBIE_REFUSALS = 3
ZOMBIE_MAX_STEPS = 2000
ZOMBIE_STEP_S = 0.25


class CallLog:
    """Appends one JSON object per line; flushed at once so a SIGKILL loses nothing already written."""

    def __init__(self, out: TextIO, worker_id: str) -> None:
        self._out = out
        self._base = {"pid": os.getpid(), "worker": worker_id}

    def write(self, **record: Any) -> None:
        self._out.write(json.dumps({**self._base, **record}, sort_keys=True) + "\n")
        self._out.flush()


class Recorder(grpc.aio.UnaryUnaryClientInterceptor):
    """Logs each WorkerService call with the job and lease it concerns and the server's answer."""

    def __init__(self, log: CallLog) -> None:
        self._log = log

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Any],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        method = client_call_details.method
        name = method.decode() if isinstance(method, bytes) else str(method)
        if not name.startswith(SERVICE):
            return await continuation(client_call_details, request)
        record: dict[str, Any] = {
            "call": name.removeprefix(SERVICE),
            "job": getattr(request, "job_id", ""),
            "lease": getattr(request, "lease_token", ""),
            "t0": time.time(),
        }
        if isinstance(request, worker_service_pb2.ReportProgressRequest):
            record["message"] = request.progress.message
        call = await continuation(client_call_details, request)
        try:
            response = await call
        except grpc.RpcError as err:
            failure = errors.from_rpc_error(err)
            trailers: Any = err.trailing_metadata() if isinstance(err, grpc.aio.AioRpcError) else ()
            self._log.write(
                **record,
                t1=time.time(),
                ok=False,
                code=failure.code.name,
                reason=failure.reason,
                # Whether jobwarden itself answered (a rich status), or the transport (server gone).
                rich=any(key == "grpc-status-details-bin" for key, _ in trailers or ()),
            )
            raise
        if isinstance(response, worker_service_pb2.ClaimJobsResponse):
            record["claims"] = [
                {"job": c.job.id, "lease": c.lease_token, "attempt": c.job.attempt} for c in response.claims
            ]
        self._log.write(**record, t1=time.time(), ok=True, code="OK", reason="")
        return call


async def _load(ctx: JobContext) -> Any:
    """Parameters: steps (progress reports), step_ms (work per step), asset (bool), outcome:
    complete | partial | permanent | flaky (fails while attempt <= flaky_attempts, then completes)."""
    params = ctx.parameters
    steps = int(params.get("steps", 2))
    for i in range(steps):
        await ctx.progress(100.0 * (i + 1) / (steps + 1), f"step {i + 1}/{steps}", done=i + 1, total=steps)
        await asyncio.sleep(float(params.get("step_ms", 50)) / 1000)  # the job's simulated work
    if params.get("asset"):
        await ctx.add_asset("output", f"memory://{ctx.job.id}/{ctx.job.attempt}", size_bytes=1)
    outcome = params.get("outcome", "complete")
    if outcome == "permanent":
        raise PermanentError("permanent failure (planned)", reason="PLANNED")
    if outcome == "flaky" and ctx.job.attempt <= int(params.get("flaky_attempts", 1)):
        raise RuntimeError(f"flaky failure on attempt {ctx.job.attempt} (planned)")
    result = {"rid": params.get("rid", ""), "attempt": ctx.job.attempt}
    if outcome == "partial":
        return PartialResult(result, "partial (planned)")
    return result


async def _hold(ctx: JobContext) -> Any:
    await ctx.progress(1.0, "holding")
    await asyncio.Event().wait()  # until the process is killed or stopped


async def _quick(ctx: JobContext) -> Any:
    await ctx.progress(50.0, "quick")
    await ctx.add_asset("output", f"memory://{ctx.job.id}/quick", size_bytes=1)
    return {"by": ctx.worker_id}


def _fleet(log: CallLog) -> Callable[[JobContext], Any]:
    async def handler(ctx: JobContext) -> Any:
        log.write(call="handler_start", job=ctx.job.id, attempt=ctx.job.attempt)
        await ctx.progress(50.0, "working")
        await asyncio.sleep(float(ctx.parameters.get("work_ms", 0)) / 1000)  # the job's simulated work
        log.write(call="handler_finish", job=ctx.job.id, attempt=ctx.job.attempt)
        return {"pid": os.getpid(), "worker": ctx.worker_id, "attempt": ctx.job.attempt}

    return handler


_KEEP: set[asyncio.Task[None]] = set()


async def _stubborn(client: Client, log: CallLog, job_id: str, lease: str) -> None:
    marker = f"zombie:{os.getpid()}"
    refused = step = 0
    while refused < ZOMBIE_REFUSALS and step < ZOMBIE_MAX_STEPS:
        step += 1
        try:
            await client.report_progress(job_id, lease, float(step % 100), f"{marker}:{step}")
        except errors.JobwardenError:
            refused += 1
        await asyncio.sleep(ZOMBIE_STEP_S)  # the pace of a worker's progress reports, not a wait
    writes = (
        lambda: client.add_asset(job_id, lease, "output", f"memory://{marker}", size_bytes=1),
        lambda: client.complete_job(job_id, lease, {"by": marker}),
        lambda: client.fail_job(job_id, lease, f"{marker} gives up", retryable=False),
    )
    for write in writes:
        try:
            await write()
        except errors.JobwardenError:
            pass
    log.write(call="zombie_done", job=job_id, lease=lease, t0=time.time(), refused=refused, steps=step)


def _zombie(client: Client, log: CallLog) -> Callable[[JobContext], Any]:
    async def handler(ctx: JobContext) -> Any:
        # Its own task, shielded: the SDK cancels a handler whose lease is lost, this worker ignores it.
        task = asyncio.create_task(_stubborn(client, log, ctx.job.id, ctx.lease_token))
        _KEEP.add(task)
        task.add_done_callback(_KEEP.discard)
        await asyncio.shield(task)
        return {"by": "zombie"}

    return handler


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--log", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--job-type", required=True)
    parser.add_argument("--mode", choices=["load", "hold", "quick", "zombie", "fleet"], required=True)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--poll-wait", type=float, default=2.0)
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace, log: CallLog) -> None:
    channel = grpc.aio.insecure_channel(args.target, options=channel_options(), interceptors=[Recorder(log)])
    client = Client(args.target, token=args.token or None, channel=channel)
    worker = Worker(
        client,
        worker_id=args.worker_id,
        concurrency=args.concurrency,
        lease_duration=args.lease,
        poll_wait=args.poll_wait,
        shutdown_grace=1.0,
        cancel_grace=0.5,
    )
    handlers = {
        "load": _load,
        "hold": _hold,
        "quick": _quick,
        "zombie": _zombie(client, log),
        "fleet": _fleet(log),
    }
    worker.register(args.job_type, handlers[args.mode])
    log.write(call="start", t0=time.time(), mode=args.mode, job_type=args.job_type)
    try:
        await worker.run(install_signal_handlers=True)
    finally:
        await channel.close()
        log.write(call="exit", t0=time.time())


def main(argv: list[str]) -> int:
    """Run the worker until SIGTERM; returns the exit code."""
    args = _arguments(argv)
    with open(args.log, "a", encoding="utf-8") as out:
        asyncio.run(_run(args, CallLog(out, args.worker_id)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
