/**
 * A polling Worker stopped during its ClaimJobs long-poll: once `run()` has returned, the server has
 * seen the long-poll cancelled, so a job created right then is not claimed for the stopped worker
 * (where it would wait out the lease). Repeated, as the race it guards against is one of timing.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { join } from "node:path";
import { Client, JobStatus, Worker } from "@jobwarden/client";
import { Server, tempDir } from "./support/server.js";
import { until } from "./support/waiting.js";

const dir = tempDir();
let server: Server;

before(async () => {
  server = await Server.start(join(dir.path, "stop.db"));
});

after(async () => {
  await server.stop();
  dir.remove();
});

test("a stopped polling worker claims nothing created after run() returned", async () => {
  for (let round = 0; round < 20; round++) {
    const jobType = `stop-${round}`;
    const workerClient = new Client(server.address);
    const client = new Client(server.address);
    const worker = new Worker(workerClient, { workerId: "stopped", session: false, pollWaitMs: 1_000, leaseDurationMs: 1_500 });
    worker.register(jobType, () => Promise.resolve({}));
    const running = worker.run();
    const first = await client.createJob(jobType, {});
    // Once it is COMPLETED the worker is long-polling again (read as a caller would, not watched).
    await until(async () => (await client.getJob(first.id)).status === JobStatus.COMPLETED);
    worker.stop();
    await running;
    const next = await client.createJob(jobType, {});
    // Another worker, on a connection of its own, then claims it (with the stopped worker's long-poll
    // still open on the server, that one would win the job).
    const other = new Client(server.address);
    const claims = await other.claimJobs("other", [jobType]);
    other.close();
    assert.deepEqual(claims.map((c) => c.job?.id), [next.id], `round ${round}: the stopped worker claimed it`);
    assert.equal((await client.getJob(next.id)).status, JobStatus.RUNNING);
    workerClient.close();
    client.close();
  }
});
