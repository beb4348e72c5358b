/**
 * The Worker against a real `jobwarden serve`: handlers run over a Work session (and by polling), with
 * progress, assets, messages, partial results, permanent and retryable failures, and cancellation
 * reaching the handler's AbortSignal.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import { Client, JobAborted, JobStatus, MessageLevel, PartialResult, PermanentError, StopReason, Worker } from "@jobwarden/client";
import type { Job, JobContext } from "@jobwarden/client";
import { freePort, Server, tempDir } from "./support/server.js";
import { collect, until } from "./support/waiting.js";

/** Watches a job to its end and returns it as it ended. */
async function ended(client: Client, jobId: string): Promise<Job> {
  await collect(client.watchJob(jobId));
  return client.getJob(jobId);
}

/** A retry policy that retries at once, so a second attempt does not wait for the default backoff. */
const QUICK_RETRY = { initialBackoffMs: 100, maxBackoffMs: 100, multiplier: 1 };

describe("worker against a real server", () => {
  const dir = tempDir();
  let server: Server;
  let client: Client;

  before(async () => {
    server = await Server.start(join(dir.path, "worker.db"));
    client = new Client(server.address);
  });

  after(async () => {
    client.close();
    await server.stop();
    dir.remove();
  });

  function worker(options: { session?: boolean } = {}): { worker: Worker; cancelSeen: string[]; running: Promise<void> } {
    const w = new Worker(client, { concurrency: 4, leaseDurationMs: 3_000, cancelGraceMs: 5_000, ...options });
    const cancelSeen: string[] = [];
    w.register("ok", async (ctx: JobContext) => {
      await ctx.progress(50, "halfway", { done: 1, total: 2 });
      await ctx.addAsset("image", "s3://bucket/out.png", { sizeBytes: 42, metadata: { w: "640" } });
      await ctx.log("counted", { level: "OUTPUT", data: { imported: 41 } });
      await ctx.addMessages(["plain line", { text: "careful", level: MessageLevel.WARNING }]);
      return { image: "s3://bucket/out.png", width: ctx.parameters.width ?? null };
    });
    w.register("partial", () => Promise.resolve(new PartialResult({ rows: 9 }, "row 10 failed")));
    w.register("permanent", () => {
      throw new PermanentError("bad input", { reason: "BAD_INPUT", stopReason: "VALIDATION_ERROR" });
    });
    w.register("flaky", (ctx) => {
      if (ctx.job.attempt < 2) {
        throw new TypeError("upstream hiccup");
      }
      return Promise.resolve({ attempt: ctx.job.attempt });
    });
    w.register("cancellable", async (ctx) => {
      await ctx.progress(10, "started");
      await new Promise<void>((resolve) => { ctx.signal.addEventListener("abort", () => { resolve(); }, { once: true }); });
      const reason: unknown = ctx.signal.reason;
      cancelSeen.push(reason instanceof JobAborted ? `${ctx.job.id}:${reason.message}:${ctx.cancelRequested}` : "other");
      return { stopped: true };
    });
    return { worker: w, cancelSeen, running: w.run() };
  }

  for (const session of [true, false]) {
    test(`every outcome of a handler (${session ? "Work session" : "polling"})`, async () => {
      const { worker: w, cancelSeen, running } = worker({ session });
      try {
        const ok = await client.createJob("ok", { width: 640 });
        const partial = await client.createJob("partial", {});
        const permanent = await client.createJob("permanent", {}, { maxAttempts: 3 });
        const flaky = await client.createJob("flaky", {}, { maxAttempts: 3, retryPolicy: QUICK_RETRY });
        const cancellable = await client.createJob("cancellable", {});

        const okEnd = await ended(client, ok.id);
        assert.equal(okEnd.status, JobStatus.COMPLETED);
        assert.deepEqual(okEnd.result, { image: "s3://bucket/out.png", width: 640 });
        const progress = (await collect(client.listJobEvents(ok.id, { kinds: ["PROGRESS"] }))).map((e) =>
          e.kind.case === "progress" ? [e.kind.value.percent, e.kind.value.message, e.kind.value.done, e.kind.value.total] : [],
        );
        assert.deepEqual(progress[0], [50, "halfway", 1n, 2n]);
        const [asset] = await collect(client.listAssets(ok.id));
        assert.equal(asset?.uri, "s3://bucket/out.png");
        assert.equal(asset.sizeBytes, 42n);
        assert.deepEqual(asset.metadata, { w: "640" });
        assert.deepEqual(await client.getAsset(asset.id).then((a) => a.jobId), ok.id);
        const messages = await collect(client.listJobMessages(ok.id));
        assert.deepEqual(
          messages.map((m) => (m.kind.case === "log" ? [m.kind.value.message, m.kind.value.level] : [])),
          [
            ["counted", MessageLevel.OUTPUT],
            ["plain line", MessageLevel.INFO],
            ["careful", MessageLevel.WARNING],
          ],
        );
        const [counted] = messages;
        assert.ok(counted?.kind.case === "log");
        assert.deepEqual(counted.kind.value.data?.kind, { case: "structValue", value: counted.kind.value.data?.kind.value });

        const partialEnd = await ended(client, partial.id);
        assert.equal(partialEnd.status, JobStatus.PARTIAL);
        assert.deepEqual(partialEnd.result, { rows: 9 });
        assert.equal(partialEnd.error?.message, "row 10 failed");

        const permanentEnd = await ended(client, permanent.id);
        assert.equal(permanentEnd.status, JobStatus.FAILED);
        assert.equal(permanentEnd.attempt, 1);
        assert.equal(permanentEnd.error?.reason, "BAD_INPUT");
        assert.equal(permanentEnd.stopReason, StopReason.VALIDATION_ERROR);

        const flakyEnd = await ended(client, flaky.id);
        assert.equal(flakyEnd.status, JobStatus.COMPLETED);
        assert.deepEqual(flakyEnd.result, { attempt: 2 });
        const failures = await collect(client.listJobEvents(flaky.id));
        assert.ok(failures.some((e) => e.kind.case === "transition" && e.kind.value.reason.includes("upstream hiccup")));

        // The cancel reaches the handler as its AbortSignal; the job then ends CANCELLED.
        await until(async () => (await client.getJob(cancellable.id)).progress?.percent === 10, 10_000, "the handler to start");
        await client.cancelJob(cancellable.id, { reason: "user" });
        const cancelEnd = await ended(client, cancellable.id);
        assert.equal(cancelEnd.status, JobStatus.CANCELLED);
        assert.deepEqual(cancelSeen, [`${cancellable.id}:the job was cancelled:true`]);
      } finally {
        w.stop();
        await running;
      }
    });
  }
});

describe("a worker's Work session across a server restart", () => {
  const dir = tempDir();
  const database = join(dir.path, "restart.db");
  let server: Server;
  let client: Client;
  let port: number;

  before(async () => {
    port = await freePort();
    server = await Server.start(database, [], port);
    client = new Client(server.address);
  });

  after(async () => {
    client.close();
    await server.stop();
    dir.remove();
  });

  test("reopens the session: the running job keeps its lease and finishes, new jobs are pushed again", async () => {
    let go: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (go = resolve));
    const started: string[] = [];
    const w = new Worker(client, { concurrency: 2, leaseDurationMs: 15_000 });
    w.register("held", async (ctx) => {
      started.push(ctx.job.id);
      await ctx.progress(10, "waiting");
      await released;
      await ctx.progress(90, "after the restart"); // a step of the new session
      return { attempt: ctx.job.attempt };
    });
    const running = w.run();
    try {
      const first = await client.createJob("held", {});
      await until(async () => (await client.getJob(first.id)).progress?.percent === 10, 10_000, "the first job to start");

      await server.stop("SIGKILL");
      server = await Server.start(database, [], port);
      go();
      const firstEnd = await ended(client, first.id);
      assert.equal(firstEnd.status, JobStatus.COMPLETED);
      assert.deepEqual(firstEnd.result, { attempt: 1 });

      const second = await client.createJob("held", {});
      const secondEnd = await ended(client, second.id);
      assert.equal(secondEnd.status, JobStatus.COMPLETED);
      assert.deepEqual(started, [first.id, second.id]);
    } finally {
      w.stop();
      await running;
    }
  });
});
