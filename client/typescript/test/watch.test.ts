/**
 * watchJob against a real server that goes away mid-watch: stopped (SIGTERM: SHUTTING_DOWN) and killed
 * (SIGKILL: the connection drops), then started again on the same address and SQLite file. The watcher
 * sees one unbroken stream: the job once, then every event once, in order.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import { Client, JobStatus, ShuttingDown, Unavailable } from "@jobwarden/client";
import type { WatchItem, WatchReconnect } from "@jobwarden/client";
import { freePort, Server, tempDir } from "./support/server.js";
import { until } from "./support/waiting.js";

describe("watchJob across server restarts", () => {
  const dir = tempDir();
  const database = join(dir.path, "watch.db");
  let port: number;
  let server: Server;
  let client: Client;

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

  test("resumes after the last sequence seen: no event lost, none twice", async () => {
    const job = await client.createJob("watched", {});
    const [claim] = await client.claimJobs("ts-watch-worker", ["watched"], { leaseDurationMs: 120_000 });
    assert.ok(claim !== undefined);
    const lease = claim.leaseToken;

    const items: WatchItem[] = [];
    const reconnects: WatchReconnect[] = [];
    const sequences = (): bigint[] => items.flatMap((i) => (i.$typeName === "jobwarden.v1.JobEvent" ? [i.sequence] : []));
    const watching = (async () => {
      for await (const item of client.watchJob(job.id, { maxBackoffMs: 200, resumeAttempts: 100, onReconnect: (r) => reconnects.push(r) })) {
        items.push(item);
      }
    })();

    await client.reportProgress(job.id, lease, { percent: 10 });
    await until(() => sequences().length === 3, 10_000, "created, claimed, progress 10");

    // A stop: the server ends the watch with SHUTTING_DOWN; the watch waits for it to come back.
    await server.stop("SIGTERM");
    server = await Server.start(database, [], port);
    await client.reportProgress(job.id, lease, { percent: 20 });
    await until(() => sequences().length === 4, 10_000, "progress 20 after the restart");

    // A kill: no status at all, the connection just drops.
    await server.stop("SIGKILL");
    server = await Server.start(database, [], port);
    await client.reportProgress(job.id, lease, { percent: 30 });
    await client.completeJob(job.id, lease, { result: { ok: true } });
    await watching;

    assert.equal(items.filter((i) => i.$typeName === "jobwarden.v1.Job").length, 1);
    assert.equal(items[0]?.$typeName, "jobwarden.v1.Job");
    assert.deepEqual(sequences(), [1n, 2n, 3n, 4n, 5n, 6n]);
    const last = items.at(-1);
    assert.ok(last?.$typeName === "jobwarden.v1.JobEvent" && last.kind.case === "transition");
    assert.equal(last.kind.value.toStatus, JobStatus.COMPLETED);
    // Told before each reopening (with the error) and once the stream was open again (without).
    const errors = reconnects.flatMap((r) => (r.error === undefined ? [] : [r.error]));
    assert.ok(errors.some((e) => e instanceof ShuttingDown), errors.map(String).join());
    assert.ok(errors.every((e) => e instanceof Unavailable), errors.map((e) => `${e.name}: ${e.message}`).join());
    assert.equal(reconnects.filter((r) => r.error === undefined).length, 2);
  });

  test("a watch that cannot start fails at once, typed", async () => {
    const iterator = client.watchJob("no-such-job")[Symbol.asyncIterator]();
    await assert.rejects(iterator.next(), { name: "NotFound" });
  });
});
