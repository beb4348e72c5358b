/** Steps that observe: watching a job's stream, waiting for a status, and callback deliveries. */
import type { Job, JobEvent, WatchItem } from "../../src/index.js";
import { until } from "../support/waiting.js";
import { jobOutcome } from "./client-ops.js";
import type { Outcome } from "./client-ops.js";
import { Mismatch } from "./expect.js";
import { signatureValid } from "./receiver.js";
import type { Session } from "./session.js";
import type { Step } from "./spec.js";
import * as views from "./views.js";

const isEvent = (item: WatchItem): item is JobEvent => item.$typeName === "jobwarden.v1.JobEvent";

/** `promise`, or a Mismatch after `seconds` (`onTimeout` runs first, to stop what is waited for). */
async function within<T>(promise: Promise<T>, seconds: number, what: string, onTimeout = (): void => undefined): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_done, fail) => {
    timer = setTimeout(() => {
      onTimeout();
      fail(new Mismatch(`${what}: not within ${seconds} s`));
    }, seconds * 1000);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

function afterSequence(s: Session, step: Step): number {
  const after = step.after_sequence ?? 0;
  return typeof after === "string" ? Number(s.ref(after)) : after;
}

/**
 * WatchJob from `after_sequence` (a number or a saved cursor); with `take`, the watcher disconnects after
 * that many events. Saves the last sequence seen, to resume from.
 */
export async function watchJob(s: Session, step: Step): Promise<Outcome> {
  const cursor = afterSequence(s, step);
  const stop = new AbortController();
  const stream = s.client(step.as).watchJob(s.jobId(step.job), { afterSequence: cursor, resume: false, signal: stop.signal });
  let snapshot: Job | undefined;
  const events: JobEvent[] = [];
  const read = async (): Promise<boolean> => {
    for await (const item of stream) {
      if (!isEvent(item)) {
        snapshot = item;
        continue;
      }
      events.push(item);
      if (step.take !== undefined && events.length >= step.take) {
        return false; // leaving the loop closes the stream: a disconnect
      }
    }
    return true; // the server ended the stream
  };
  const ended = await within(read(), step.within_s ?? 10, "watch_job", () => { stop.abort(); });
  const last = events.at(-1);
  const view = {
    snapshot: snapshot === undefined ? null : views.job(snapshot, s.prefix),
    events: events.map(views.event),
    ended,
  };
  return [view, last === undefined ? cursor : Number(last.sequence)];
}

/** A watch left open in the background by `start_watch`; `finish_watch` waits for its end. */
export interface LiveWatch {
  done: Promise<void>;
  events: JobEvent[];
}

/**
 * WatchJob from `after_sequence`, returning once the snapshot arrived, so the steps that follow happen
 * while the watch is open. The stream is read in the background until it ends; saves the watch.
 */
export async function startWatch(s: Session, step: Step): Promise<Outcome> {
  const stop = new AbortController();
  s.background.add(stop);
  const stream = s.client(step.as).watchJob(s.jobId(step.job), { afterSequence: afterSequence(s, step), resume: false, signal: stop.signal });
  const first = await within(stream.next(), step.within_s ?? 10, "start_watch's snapshot", () => { stop.abort(); });
  if (first.done === true || isEvent(first.value)) {
    stop.abort();
    throw new Mismatch("start_watch: the stream did not start with the job");
  }
  const events: JobEvent[] = [];
  const done = (async (): Promise<void> => {
    for await (const item of stream) {
      if (!isEvent(item)) {
        throw new Mismatch("start_watch: a second snapshot on the stream");
      }
      events.push(item);
    }
  })();
  done.catch(() => undefined); // finish_watch reports it; a scenario that never finishes the watch does not
  const watch: LiveWatch = { done, events };
  return [{ snapshot: views.job(first.value, s.prefix) }, watch];
}

/** Until the watch `start_watch` left open ends (after the job's terminal event). */
export async function finishWatch(s: Session, step: Step): Promise<Outcome> {
  const watch = s.ref(step.watch ?? "") as LiveWatch;
  await within(watch.done, step.within_s ?? 10, "finish_watch");
  return [{ events: watch.events.map(views.event), ended: true }, watch.events];
}

/**
 * Until the job is in `status` (what the server does on its own: lease loss, retries, batches). Reads
 * the job, then watches its events after what it read, so no change slips in between.
 */
export async function awaitStatus(s: Session, step: Step): Promise<Outcome> {
  const client = s.client(step.as);
  const jobId = s.jobId(step.job);
  const want = step.status ?? "";
  let job = await client.getJob(jobId);
  if (views.statusName(job.status) !== want) {
    const stop = new AbortController();
    const stream = client.watchJob(jobId, { afterSequence: job.lastSequence, resume: false, signal: stop.signal });
    const reached = async (): Promise<boolean> => {
      for await (const item of stream) {
        if (isEvent(item) && views.eventTo(item) === want) {
          return true;
        }
      }
      return false;
    };
    if (!(await within(reached(), step.within_s ?? 10, `await_status ${want}`, () => { stop.abort(); }))) {
      throw new Mismatch(`job ${jobId} ended without reaching ${want}`);
    }
    job = await client.getJob(jobId);
  }
  return jobOutcome(s, job);
}

interface Payload {
  type: string;
  data: { job_id: string; status: string };
}

/**
 * Until the receiver got `count` requests; each delivery as the receiver saw it, its signature checked
 * with the owner's secret (principals.json).
 */
export async function awaitCallbacks(s: Session, step: Step): Promise<Outcome> {
  const name = step.receiver ?? "";
  const receiver = s.receivers.get(name);
  if (receiver === undefined) {
    throw new Error(`no receiver ${name}`);
  }
  const count = step.count ?? 1;
  await until(() => receiver.received.length >= count, (step.within_s ?? 10) * 1000, `${count} callbacks at ${name}`);
  const secret = s.principal(step.as).callback_secret ?? "";
  const answered = s.scenario.receivers?.[name]?.answers ?? [200];
  const deliveries = receiver.received.map((got, i) => {
    const payload = JSON.parse(got.body) as Payload;
    return {
      answered: answered[Math.min(i + 1, answered.length) - 1],
      type: payload.type,
      job: payload.data.job_id,
      status: payload.data.status,
      signature_valid: signatureValid(got, secret),
    };
  });
  const view = { count: deliveries.length, deliveries, webhook_ids: new Set(receiver.ids()).size };
  return [view, deliveries];
}
