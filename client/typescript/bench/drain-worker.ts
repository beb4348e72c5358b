/**
 * A TypeScript worker process for `scripts/bench --peers --ts-workers`, as a user writes one: the SDK
 * Worker, a handler per job, signals honoured; the twin of bench/peers/jobwarden_worker.py.
 *
 * `node dist/bench/drain-worker.js ADDRESS noop|progress`; concurrency from BENCH_CONCURRENCY.
 */
import { Client, Worker } from "@jobwarden/client";
import type { JobContext } from "@jobwarden/client";

const JOB_TYPE = "bench.peers";

const [address, variant] = process.argv.slice(2);
if (address === undefined || (variant !== "noop" && variant !== "progress")) {
  console.error("usage: drain-worker.js ADDRESS noop|progress");
  process.exit(2);
}

function noop(): Promise<Record<string, never>> {
  return Promise.resolve({});
}

async function withProgress(ctx: JobContext): Promise<Record<string, never>> {
  await ctx.progress(50, "halfway");
  return {};
}

const client = new Client(address);
const worker = new Worker(client, { concurrency: Number(process.env.BENCH_CONCURRENCY ?? "16") });
worker.register(JOB_TYPE, variant === "progress" ? withProgress : noop);
await worker.run({ installSignalHandlers: true });
client.close();
