/**
 * A worker's slot takes the next job as soon as the handler returns, while the finished job's outcome
 * is still being reported: waiting for that answer would add a round trip to every job's turn.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { join } from "node:path";
import { Client, JobStatus, Worker } from "@jobwarden/client";
import type { Job } from "@jobwarden/client";
import { Server, tempDir } from "./support/server.js";
import { collect, until } from "./support/waiting.js";

/** A client whose completions reach the server only once `answer()` is called. */
class SlowCompletions extends Client {
  readonly asked: string[] = [];
  answer: () => void = () => undefined;
  readonly #answered = new Promise<void>((resolve) => (this.answer = resolve));

  override async completeJob(...args: Parameters<Client["completeJob"]>): Promise<Job> {
    this.asked.push(args[0]);
    await this.#answered;
    return super.completeJob(...args);
  }
}

const dir = tempDir();
let server: Server;

before(async () => {
  server = await Server.start(join(dir.path, "slots.db"));
});

after(async () => {
  await server.stop();
  dir.remove();
});

test("a slot takes the next job while the last one's outcome is still being reported", async () => {
  const client = new Client(server.address);
  const workerClient = new SlowCompletions(server.address);
  const worker = new Worker(workerClient, { concurrency: 1, session: false, pollWaitMs: 1_000 });
  const started: string[] = [];
  worker.register("slots", (ctx) => {
    started.push(ctx.job.id);
    return Promise.resolve({});
  });
  const running = worker.run();
  try {
    const first = await client.createJob("slots", {});
    const jobs = [first, await client.createJob("slots", {})];
    // Never, if the slot waited for the first job's answer.
    await until(() => started.length === 2, 10_000, "the second job to start while the first is reported");
    assert.equal(workerClient.asked[0], first.id); // the first is still being reported
    assert.equal((await client.getJob(first.id)).status, JobStatus.RUNNING);
    workerClient.answer();
    for (const job of jobs) {
      await collect(client.watchJob(job.id));
      assert.equal((await client.getJob(job.id)).status, JobStatus.COMPLETED);
    }
    assert.deepEqual(started, jobs.map((j) => j.id));
  } finally {
    workerClient.answer(); // a failed check must not leave the worker waiting on its report
    worker.stop();
    await running;
    workerClient.close();
    client.close();
  }
});
