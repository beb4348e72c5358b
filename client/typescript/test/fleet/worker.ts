/**
 * A TypeScript worker process of the mixed fleet test (tests/faults/test_mixed_fleet.py):
 *
 *     node dist/test/fleet/worker.js --target HOST:PORT --log worker.jsonl --worker-id ts1 \
 *         --job-type fleet --lease 2 --concurrency 4
 *
 * The SDK Worker over a Work session. Its handler logs its start and finish (one JSON line each, with
 * job id, attempt, pid and worker id, written synchronously so a SIGKILL loses nothing already written),
 * reports progress once, works the job's `work_ms` parameter and returns who ran it (as the Python
 * worker's `fleet` mode in tests/support/worker_proc.py does). SIGTERM stops it gracefully.
 */
import { appendFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { Client, Worker } from "@jobwarden/client";

const { values } = parseArgs({
  options: {
    target: { type: "string" },
    log: { type: "string" },
    "worker-id": { type: "string" },
    "job-type": { type: "string", default: "fleet" },
    lease: { type: "string", default: "2" },
    concurrency: { type: "string", default: "4" },
  },
});
const target = values.target;
const logPath = values.log;
const workerId = values["worker-id"];
if (target === undefined || logPath === undefined || workerId === undefined) {
  throw new Error("usage: worker.js --target HOST:PORT --log FILE --worker-id ID [--job-type T --lease S --concurrency N]");
}
function log(record: Record<string, unknown>): void {
  appendFileSync(logPath ?? "", JSON.stringify({ pid: process.pid, worker: workerId, lang: "typescript", ...record }) + "\n");
}

const worker = new Worker(new Client(target), {
  workerId,
  concurrency: Number(values.concurrency),
  leaseDurationMs: Number(values.lease) * 1000,
  shutdownGraceMs: 1_000,
});
worker.register(values["job-type"], async (ctx) => {
  log({ call: "handler_start", job: ctx.job.id, attempt: ctx.job.attempt });
  await ctx.progress(50, "working");
  const workMs = ctx.parameters.work_ms;
  await new Promise((resolve) => setTimeout(resolve, typeof workMs === "number" ? workMs : 0)); // the job's simulated work
  log({ call: "handler_finish", job: ctx.job.id, attempt: ctx.job.attempt });
  return { pid: process.pid, worker: workerId, attempt: ctx.job.attempt };
});
log({ call: "start" });
await worker.run({ installSignalHandlers: true });
log({ call: "exit" });
