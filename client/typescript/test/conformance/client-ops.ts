/** Steps on the client side of the SDK (`Client`): one op, one SDK method. */
import { JobwardenError } from "../../src/index.js";
import type { Client, Job, NewJob } from "../../src/index.js";
import type { Session } from "./session.js";
import type { Step } from "./spec.js";
import * as views from "./views.js";

/** [the view an expectation is compared with, the value a `save` stores]. */
export type Outcome = [unknown, unknown];

const ms = (seconds: number | undefined): number | undefined => (seconds === undefined ? undefined : seconds * 1000);

/** A job to create, from a step's fields (as `create_job` takes them). */
export function newJob(s: Session, spec: Step): NewJob {
  const policy = spec.retry_policy;
  const job: NewJob = {
    jobType: s.jobType(spec.job_type ?? ""),
    priority: spec.priority ?? 0,
    labels: spec.labels ?? {},
    maxAttempts: spec.max_attempts ?? 0,
    callbackUrl: String(s.resolve(spec.callback_url ?? "")),
    callbackStatuses: spec.callback_statuses ?? [],
    hold: spec.hold ?? false,
  };
  if (spec.parameters !== undefined) {
    job.parameters = spec.parameters;
  }
  if (policy !== undefined) {
    job.retryPolicy = {};
    if (policy.initial_backoff !== undefined) {
      job.retryPolicy.initialBackoffMs = policy.initial_backoff * 1000;
    }
    if (policy.max_backoff !== undefined) {
      job.retryPolicy.maxBackoffMs = policy.max_backoff * 1000;
    }
    if (policy.multiplier !== undefined) {
      job.retryPolicy.multiplier = policy.multiplier;
    }
  }
  const requestId = s.requestId(spec.request_id);
  if (requestId !== undefined) {
    job.requestId = requestId;
  }
  const queueTimeoutMs = ms(spec.queue_timeout);
  if (queueTimeoutMs !== undefined) {
    job.queueTimeoutMs = queueTimeoutMs;
  }
  if (spec.deadline_in !== undefined) {
    job.deadline = new Date(Date.now() + spec.deadline_in * 1000);
  }
  return job;
}

export function jobOutcome(s: Session, job: Job): Outcome {
  return [views.job(job, s.prefix), job];
}

export async function createJob(s: Session, step: Step): Promise<Outcome> {
  const { jobType, parameters, ...options } = newJob(s, step);
  return jobOutcome(s, await s.client(step.as).createJob(jobType, parameters, options));
}

export async function createJobs(s: Session, step: Step): Promise<Outcome> {
  const results = await s.client(step.as).createJobs((step.jobs ?? []).map((j) => newJob(s, j)));
  const outcomes = results.map((r) => (r instanceof JobwardenError ? { refused: views.error(r) } : views.job(r, s.prefix)));
  return [{ outcomes }, results];
}

export async function createBatch(s: Session, step: Step): Promise<Outcome> {
  const options: NonNullable<Parameters<Client["createBatch"]>[2]> = {
    callbackUrl: String(s.resolve(step.callback_url ?? "")),
  };
  if (step.parameters !== undefined) {
    options.parameters = step.parameters;
  }
  const requestId = s.requestId(step.request_id);
  if (requestId !== undefined) {
    options.requestId = requestId;
  }
  const children = (step.children ?? []).map((child) => newJob(s, child));
  return jobOutcome(s, await s.client(step.as).createBatch(s.jobType(step.job_type ?? ""), children, options));
}

export async function getJob(s: Session, step: Step): Promise<Outcome> {
  return jobOutcome(s, await s.client(step.as).getJob(s.jobId(step.job)));
}

export async function listJobs(s: Session, step: Step): Promise<Outcome> {
  const page = await s.client(step.as).listJobsPage({
    statuses: step.statuses ?? [],
    jobTypes: s.jobTypes(step.job_types),
    parentId: step.parent === undefined ? "" : s.jobId(step.parent),
    pageSize: 500,
  });
  const jobs = page.items;
  return [{ count: jobs.length, ids: jobs.map((j) => j.id), jobs: jobs.map((j) => views.job(j, s.prefix)) }, jobs];
}

/** `{requestId}` when the step names one (otherwise the SDK makes its own). */
export function withRequestId(s: Session, step: Step): { requestId?: string } {
  const requestId = s.requestId(step.request_id);
  return requestId === undefined ? {} : { requestId };
}

export async function cancelJob(s: Session, step: Step): Promise<Outcome> {
  const job = await s.client(step.as).cancelJob(s.jobId(step.job), { reason: step.reason ?? "", ...withRequestId(s, step) });
  return jobOutcome(s, job);
}

export async function releaseJob(s: Session, step: Step): Promise<Outcome> {
  return jobOutcome(s, await s.client(step.as).releaseJob(s.jobId(step.job), withRequestId(s, step)));
}

export async function setJobStatus(s: Session, step: Step): Promise<Outcome> {
  const job = await s.client(step.as).setJobStatus(s.jobId(step.job), step.status ?? "", step.reason ?? "conformance", {
    force: step.force ?? false,
    ...withRequestId(s, step),
  });
  return jobOutcome(s, job);
}

export async function retryJob(s: Session, step: Step): Promise<Outcome> {
  return jobOutcome(s, await s.client(step.as).retryJob(s.jobId(step.job), withRequestId(s, step)));
}

export async function deleteJob(s: Session, step: Step): Promise<Outcome> {
  await s.client(step.as).deleteJob(s.jobId(step.job), withRequestId(s, step));
  return [{}, undefined];
}

export async function listJobEvents(s: Session, step: Step): Promise<Outcome> {
  const events = [];
  for await (const e of s.client(step.as).listJobEvents(s.jobId(step.job), { kinds: step.kinds ?? [] })) {
    events.push(e);
  }
  return [{ count: events.length, events: events.map(views.event) }, events];
}

export async function listAssets(s: Session, step: Step): Promise<Outcome> {
  const assets = [];
  for await (const a of s.client(step.as).listAssets(s.jobId(step.job))) {
    assets.push(a);
  }
  return [{ count: assets.length, assets: assets.map(views.asset) }, assets];
}

export async function getLifecycle(s: Session, step: Step): Promise<Outcome> {
  const table = await s.client(step.as).getLifecycle(s.jobType(step.job_type ?? ""));
  const status = views.statusName;
  const transitions = table.transitions
    .map((t) => [status(t.fromStatus), status(t.toStatus)])
    .sort(comparePairs);
  return [{ name: table.name, initial: status(table.initialStatus), transitions }, table];
}

/** Orders [from, to] pairs as Python sorts lists of strings. */
export function comparePairs(a: string[], b: string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] ?? "";
    const y = b[i] ?? "";
    if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  return a.length - b.length;
}
