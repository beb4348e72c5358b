/**
 * Steps on the worker side of the SDK: the unary worker calls of `Client` (claim, progress, assets,
 * messages, complete, fail) and the managed `Worker`.
 */
import { jobOutcome, withRequestId } from "./client-ops.js";
import type { Outcome } from "./client-ops.js";
import { message } from "./handlers.js";
import type { Session } from "./session.js";
import type { Step } from "./spec.js";
import * as views from "./views.js";

export async function claimJobs(s: Session, step: Step): Promise<Outcome> {
  const claims = await s.client(step.as).claimJobs(s.workerId(step.as), s.jobTypes(step.job_types), {
    maxJobs: step.max_jobs ?? 1,
    leaseDurationMs: (step.lease_duration ?? 30) * 1000,
    waitMs: (step.wait ?? 0) * 1000,
    ...withRequestId(s, step),
  });
  const jobs = claims.flatMap((c) => (c.job === undefined ? [] : [c.job]));
  const view = { count: claims.length, ids: jobs.map((j) => j.id), claims: jobs.map((j) => ({ job: views.job(j, s.prefix) })) };
  return [view, claims];
}

export async function reportProgress(s: Session, step: Step): Promise<Outcome> {
  const claim = s.claim(step.claim);
  const answer = await s.client(step.as).reportProgress(
    s.jobId(step.claim),
    claim.leaseToken,
    { percent: step.percent ?? 0, message: step.message ?? "", done: step.done ?? 0, total: step.total ?? 0 },
    withRequestId(s, step),
  );
  return [{ cancel_requested: answer.cancelRequested, lease_renewed: answer.leaseExpireTime !== undefined }, answer];
}

export async function addAsset(s: Session, step: Step): Promise<Outcome> {
  const claim = s.claim(step.claim);
  const asset = await s.client(step.as).addAsset(
    s.jobId(step.claim),
    claim.leaseToken,
    {
      assetType: step.asset_type ?? "",
      uri: step.uri ?? "",
      sizeBytes: step.size_bytes ?? 0,
      contentType: step.content_type ?? "",
      metadata: step.metadata ?? {},
    },
    withRequestId(s, step),
  );
  return [views.asset(asset), asset];
}

export async function addMessages(s: Session, step: Step): Promise<Outcome> {
  const claim = s.claim(step.claim);
  const events = await s.client(step.as).addMessages(
    s.jobId(step.claim),
    claim.leaseToken,
    (step.messages ?? []).map(message),
    withRequestId(s, step),
  );
  return [{ count: events.length, events: events.map(views.event) }, events];
}

export async function completeJob(s: Session, step: Step): Promise<Outcome> {
  const claim = s.claim(step.claim);
  const completion: { result?: Record<string, unknown>; partial: boolean; errorMessage: string } = {
    partial: step.partial ?? false,
    errorMessage: step.error_message ?? "",
  };
  if (step.result !== undefined && step.result !== null) {
    completion.result = step.result;
  }
  const job = await s.client(step.as).completeJob(s.jobId(step.claim), claim.leaseToken, completion, withRequestId(s, step));
  return jobOutcome(s, job);
}

export async function failJob(s: Session, step: Step): Promise<Outcome> {
  const claim = s.claim(step.claim);
  const failure: { message: string; reason: string; retryable: boolean; stopReason?: string } = {
    message: step.error_message ?? "failed",
    reason: step.reason ?? "",
    retryable: step.retryable ?? false,
  };
  if (step.stop_reason !== undefined) {
    failure.stopReason = step.stop_reason;
  }
  const job = await s.client(step.as).failJob(s.jobId(step.claim), claim.leaseToken, failure, withRequestId(s, step));
  return jobOutcome(s, job);
}

export function startWorker(s: Session, step: Step): Promise<Outcome> {
  s.managed(step.as ?? "").start();
  return Promise.resolve([{}, undefined]);
}

export async function stopWorker(s: Session, step: Step): Promise<Outcome> {
  await s.managed(step.as ?? "").stop();
  return [{}, undefined];
}

export function handlerRuns(s: Session, step: Step): Promise<Outcome> {
  const runs = s.managed(step.as ?? "").runs.get(s.jobId(step.job)) ?? [];
  const view = { count: runs.length, runs: runs.map((r) => ({ attempt: r.attempt, saw_cancel: r.saw_cancel })) };
  return Promise.resolve([view, runs]);
}
