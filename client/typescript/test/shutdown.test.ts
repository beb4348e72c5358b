/**
 * A worker process stopped with SIGTERM: handlers that finish within the shutdown grace report their
 * outcome; the others see their AbortSignal and their jobs are handed back (failed as retryable, so
 * QUEUED again for another worker). The process then exits by itself.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Client, JobStatus } from "@jobwarden/client";
import { PACKAGE_ROOT, Server, spawnTied, tempDir } from "./support/server.js";
import { collect, until } from "./support/waiting.js";

describe("worker shutdown on SIGTERM", () => {
  const dir = tempDir();
  let server: Server;
  let client: Client;

  before(async () => {
    server = await Server.start(join(dir.path, "shutdown.db"));
    client = new Client(server.address);
  });

  after(async () => {
    client.close();
    await server.stop();
    dir.remove();
  });

  test("finishes what it can within the grace, hands the rest back, exits 0", async () => {
    const graceful = await client.createJob("graceful", {});
    const stubborn = await client.createJob("stubborn", {}, { maxAttempts: 3 });
    const child = spawnTied([process.execPath, join(PACKAGE_ROOT, "dist/test/fixtures/shutdown-worker.js"), server.address]);
    const lines: string[] = [];
    createInterface({ input: child.stdout }).on("line", (line) => lines.push(line));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => { resolve(code); }));
    try {
      await until(() => lines.filter((l) => l.startsWith("running ")).length === 2, 15_000, "both handlers to start");
      child.kill("SIGTERM");
      assert.equal(await exited, 0);
    } finally {
      child.kill("SIGKILL");
    }
    assert.deepEqual(lines.slice(2), [`aborted ${stubborn.id}: the worker is shutting down`, "stopped"]);

    const done = await client.getJob(graceful.id);
    assert.equal(done.status, JobStatus.COMPLETED);
    assert.deepEqual(done.result, { finished: "after SIGTERM" });

    const handedBack = await client.getJob(stubborn.id);
    assert.equal(handedBack.status, JobStatus.QUEUED);
    const events = await collect(client.listJobEvents(stubborn.id, { kinds: ["TRANSITION"] }));
    const last = events.at(-1);
    assert.ok(last?.kind.case === "transition");
    assert.equal(last.kind.value.toStatus, JobStatus.QUEUED);
    assert.match(last.kind.value.reason, /worker shutting down/);
  });
});
