/**
 * Unit tests of the client's call logic against an in-memory JobService (connect's router transport):
 * request ids made once per call and reused on retries, what is retried, and watch resumption.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import type { ServiceImpl } from "@connectrpc/connect";
import { Client, DOMAIN, InvalidArgument, JobStatus, ShuttingDown, Unavailable, WatcherTooSlow } from "@jobwarden/client";
import type { WatchItem, WatchReconnect } from "@jobwarden/client";
import { ErrorInfoSchema, RetryInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { JobEventSchema, JobSchema } from "../src/gen/jobwarden/v1/job_pb.js";
import { JobService } from "../src/gen/jobwarden/v1/job_service_pb.js";
import type { WatchJobRequest, WatchJobResponse } from "../src/gen/jobwarden/v1/job_service_pb.js";
import { collect } from "./support/waiting.js";

function clientOf(impl: Partial<ServiceImpl<typeof JobService>>): Client {
  const transport = createRouterTransport(({ service }) => {
    service(JobService, impl);
  });
  return new Client("in-memory", { transport });
}

function unavailable(reason: string, retryDelayMs?: number): ConnectError {
  const details: ConstructorParameters<typeof ConnectError>[3] = [{ desc: ErrorInfoSchema, value: { reason, domain: DOMAIN } }];
  if (retryDelayMs !== undefined) {
    details.push({ desc: RetryInfoSchema, value: { retryDelay: durationFromMs(retryDelayMs) } });
  }
  return new ConnectError(reason.toLowerCase(), Code.Unavailable, undefined, details);
}

const job = (id: string) => create(JobSchema, { id, jobType: "t", status: JobStatus.QUEUED });
const event = (sequence: number, terminal = false): WatchJobResponse["item"] => ({
  case: "event",
  value: create(JobEventSchema, {
    sequence: BigInt(sequence),
    kind: terminal
      ? { case: "transition", value: { toStatus: JobStatus.COMPLETED } }
      : { case: "progress", value: { percent: sequence } },
  }),
});

describe("request ids and retries", () => {
  test("a call retried after UNAVAILABLE sends the same request_id; the next call a new one", async () => {
    const seen: string[] = [];
    const client = clientOf({
      createJob(request) {
        seen.push(request.requestId);
        if (seen.length < 3) {
          throw unavailable("STORE_UNAVAILABLE", 1); // the server's RetryInfo: retry after 1 ms
        }
        return { job: job("j1") };
      },
    });
    assert.equal((await client.createJob("t", {})).id, "j1");
    assert.equal(seen.length, 3);
    assert.equal(new Set(seen).size, 1);
    assert.match(seen[0] ?? "", /^[0-9a-f-]{36}$/);
    await client.createJob("t", {});
    assert.equal(new Set(seen).size, 2);
  });

  test("the caller's request_id is sent as given", async () => {
    const seen: string[] = [];
    const client = clientOf({
      cancelJob(request) {
        seen.push(request.requestId);
        return { job: job(request.jobId) };
      },
    });
    await client.cancelJob("j1", { requestId: "mine-1" });
    assert.deepEqual(seen, ["mine-1"]);
  });

  test("what a retry cannot cure is not retried; retries stop after four attempts", async () => {
    let calls = 0;
    const refusing = clientOf({
      getJob() {
        calls += 1;
        throw new ConnectError("bad id", Code.InvalidArgument, undefined, [{ desc: ErrorInfoSchema, value: { reason: "INVALID_ARGUMENT", domain: DOMAIN } }]);
      },
    });
    await assert.rejects(refusing.getJob("x"), InvalidArgument);
    assert.equal(calls, 1);
    calls = 0;
    const down = clientOf({
      getJob() {
        calls += 1;
        throw unavailable("SHUTTING_DOWN", 1);
      },
    });
    await assert.rejects(down.getJob("x"), ShuttingDown);
    assert.equal(calls, 4);
  });

  test("createJobs answers a refused item in its place, typed", async () => {
    const client = clientOf({
      createJobs(request) {
        return {
          results: request.requests.map((r, i) =>
            i === 1
              ? { result: { case: "error" as const, value: { code: Code.InvalidArgument, message: "bad", details: [] } } }
              : { result: { case: "job" as const, value: job(r.requestId) } },
          ),
        };
      },
    });
    const out = await client.createJobs([{ jobType: "a" }, { jobType: "b" }, { jobType: "c", requestId: "c-1" }]);
    assert.ok(out[1] instanceof InvalidArgument);
    assert.equal((out[2] as { id: string }).id, "c-1");
    assert.notEqual((out[0] as { id: string }).id, "");
  });
});

describe("watchJob resumption", () => {
  /** A WatchJob that serves `script[n]` on its n-th opening: items to send, then an error to end with (or none). */
  function watchClient(script: { items: WatchJobResponse["item"][]; end?: ConnectError }[], requests: WatchJobRequest[]): Client {
    return clientOf({
      async *watchJob(request) {
        const turn = script[requests.length];
        requests.push(request);
        if (turn === undefined) {
          throw new Error("opened too often");
        }
        await Promise.resolve();
        for (const item of turn.items) {
          yield { item };
        }
        if (turn.end !== undefined) {
          throw turn.end;
        }
      },
    });
  }

  const snapshot: WatchJobResponse["item"] = { case: "job", value: job("j1") };

  test("a broken stream is reopened after the last sequence: the job once, each event once", async () => {
    const requests: WatchJobRequest[] = [];
    const client = watchClient(
      [
        { items: [snapshot, event(1), event(2)], end: unavailable("SHUTTING_DOWN") },
        { items: [snapshot], end: new ConnectError("http/2 stream closed with error code CANCEL (0x8)", Code.Canceled) },
        { items: [snapshot, event(3), event(4, true)] },
      ],
      requests,
    );
    const reconnects: WatchReconnect[] = [];
    const items: WatchItem[] = [];
    for await (const item of client.watchJob("j1", { maxBackoffMs: 1, onReconnect: (r) => reconnects.push(r) })) {
      items.push(item);
    }
    assert.deepEqual(
      items.map((i) => (i.$typeName === "jobwarden.v1.Job" ? "job" : Number(i.sequence))),
      ["job", 1, 2, 3, 4],
    );
    assert.deepEqual(requests.map((r) => r.afterSequence), [0n, 2n, 2n]);
    assert.deepEqual(
      reconnects.map((r) => [r.attempt, r.error?.name]),
      [[1, "ShuttingDown"], [1, undefined], [2, "Unavailable"], [2, undefined]],
    );
  });

  test("a watch cut off as too slow comes back at once (no wait)", async () => {
    const requests: WatchJobRequest[] = [];
    const client = watchClient(
      [
        { items: [snapshot, event(1)], end: unavailable("WATCHER_TOO_SLOW") },
        { items: [snapshot, event(2, true)] },
      ],
      requests,
    );
    const reconnects: WatchReconnect[] = [];
    await collect(client.watchJob("j1", { onReconnect: (r) => reconnects.push(r) }));
    assert.ok(reconnects[0]?.error instanceof WatcherTooSlow);
    assert.equal(reconnects[0].delayMs, 0);
  });

  test("a watch that fails before its first item is not resumed; nor is one with resume off", async () => {
    const requests: WatchJobRequest[] = [];
    const client = watchClient([{ items: [], end: unavailable("SHUTTING_DOWN") }], requests);
    await assert.rejects(collect(client.watchJob("j1", { maxBackoffMs: 1 })), ShuttingDown);
    assert.equal(requests.length, 1);

    const again: WatchJobRequest[] = [];
    const once = watchClient([{ items: [snapshot, event(1)], end: unavailable("SHUTTING_DOWN") }], again);
    await assert.rejects(collect(once.watchJob("j1", { resume: false })), ShuttingDown);
    assert.equal(again.length, 1);
  });

  test("after resumeAttempts reopenings in a row without an event, the last error is thrown", async () => {
    const requests: WatchJobRequest[] = [];
    const broken = { items: [snapshot], end: unavailable("STORE_UNAVAILABLE") };
    const client = watchClient([broken, broken, broken, broken], requests);
    await assert.rejects(collect(client.watchJob("j1", { maxBackoffMs: 1, resumeAttempts: 3 })), Unavailable);
    assert.equal(requests.length, 4);
  });
});
