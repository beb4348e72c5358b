/**
 * A TypeScript watcher process of the mixed fleet test (tests/faults/test_mixed_fleet.py):
 *
 *     node dist/test/fleet/watcher.js HOST:PORT JOB_ID...
 *
 * Watches each job from its first event (WatchJob, after sequence 0, resumed by the SDK if the stream
 * breaks) and prints one JSON line per item on stdout: {"job", "ready": true} once the job's snapshot
 * arrived, {"job", "sequence", "kind", "status"} per event (status: the status a created or transition
 * event moved the job to, else ""), {"job", "ended": true} when the server ended the stream. Exits 0
 * once every stream ended.
 */
import { Client, JobStatus } from "@jobwarden/client";
import type { JobEvent } from "@jobwarden/client";

const [target, ...jobIds] = process.argv.slice(2);
if (target === undefined || jobIds.length === 0) {
  throw new Error("usage: watcher.js HOST:PORT JOB_ID...");
}
const client = new Client(target);

const KINDS: Record<string, string> = {
  created: "created",
  transition: "transition",
  progress: "progress",
  assetAdded: "asset_added",
  log: "log",
  cancelRequested: "cancel_requested",
  callbackAttempt: "callback_attempt",
};

function status(event: JobEvent): string {
  if (event.kind.case === "created") {
    return JobStatus[event.kind.value.status];
  }
  if (event.kind.case === "transition") {
    return JobStatus[event.kind.value.toStatus];
  }
  return "";
}

function say(record: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(record) + "\n");
}

async function watch(job: string): Promise<void> {
  for await (const item of client.watchJob(job, { afterSequence: 0 })) {
    if (item.$typeName === "jobwarden.v1.Job") {
      say({ job, ready: true });
    } else {
      say({ job, sequence: Number(item.sequence), kind: KINDS[item.kind.case ?? ""] ?? "unknown", status: status(item) });
    }
  }
  say({ job, ended: true });
}

await Promise.all(jobIds.map(watch));
