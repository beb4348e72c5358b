/**
 * check_transitions: every edge of a lifecycle table is taken, every other pair is refused (the Python
 * runner's tables.py, step for step). For every status of `reach` (in file order) a fresh job is brought
 * there; as an admin every other status but RUNNING is asked for: a pair the table lacks must be refused
 * FAILED_PRECONDITION / INVALID_TRANSITION naming both ends and leave the job as it was (same etag);
 * CancelJob where the table has no edge to CANCELLED and ReleaseJob from anything but CREATED are refused
 * the same way; every edge of the table is taken on a fresh job. A job left QUEUED is claimed for an hour
 * ("parked") so the next recipe's claim finds its own job.
 */
import { InvalidTransition, JobwardenError } from "../../src/index.js";
import type { Client, Job } from "../../src/index.js";
import { comparePairs } from "./client-ops.js";
import type { Outcome } from "./client-ops.js";
import { Mismatch } from "./expect.js";
import type { Session } from "./session.js";
import type { Step } from "./spec.js";
import { codeName, statusName } from "./views.js";

const STATUSES = ["CREATED", "QUEUED", "RUNNING", "COMPLETED", "PARTIAL", "FAILED", "CANCELLED", "EXPIRED"];

export type StepRunner = (s: Session, step: Step, where: string) => Promise<void>;

export async function checkTransitions(s: Session, step: Step, run: StepRunner): Promise<Outcome> {
  const table = step.table ?? { initial: "", transitions: [] };
  const reach = step.reach ?? {};
  const legal = new Set(table.transitions.map(([a, b]) => `${a}->${b}`));
  await run(
    s,
    {
      op: "get_lifecycle",
      ...(step.as === undefined ? {} : { as: step.as }),
      job_type: step.job_type ?? "",
      expect: { initial: table.initial, transitions: table.transitions.map(([a, b]) => [a, b]).sort(comparePairs) },
    },
    "get_lifecycle",
  );
  const statuses = new Set([table.initial, ...table.transitions.flat()]);
  const missing = [...statuses].filter((x) => !(x in reach)).sort();
  if (missing.length > 0) {
    throw new Mismatch(`reach has no recipe for ${JSON.stringify(missing)}`);
  }
  const check = new Check(s, step, legal, run);
  for (const status of Object.keys(reach)) {
    await check.refusalsFrom(status);
    for (const target of STATUSES) {
      if (legal.has(`${status}->${target}`) && target !== "RUNNING") {
        await check.edge(status, target);
      }
    }
  }
  if (check.failures.length > 0) {
    throw new Mismatch(check.failures.join("\n"));
  }
  return [{ refusals: check.refused, edges_taken: check.taken }, undefined];
}

class Check {
  readonly client: Client;
  readonly admin: Client;
  readonly failures: string[] = [];
  refused = 0;
  taken = 0;

  constructor(
    readonly s: Session,
    readonly step: Step,
    readonly legal: Set<string>,
    readonly run: StepRunner,
  ) {
    this.client = s.client(step.as);
    this.admin = s.client(step.admin);
  }

  async reach(status: string): Promise<Job> {
    const recipe = this.step.reach?.[status] ?? [];
    for (const [i, recipeStep] of recipe.entries()) {
      await this.run(this.s, recipeStep, `reach[${status}][${i}]`);
    }
    const job = await this.client.getJob(this.s.jobId("$job"));
    if (statusName(job.status) !== status) {
      throw new Mismatch(`the recipe for ${status} left the job ${statusName(job.status)}`);
    }
    return job;
  }

  async refusalsFrom(status: string): Promise<void> {
    const job = await this.reach(status);
    for (const target of STATUSES) {
      if (target !== status && target !== "RUNNING" && !this.legal.has(`${status}->${target}`)) {
        await this.refusedCall(`set_job_status ${status}->${target}`, () => this.admin.setJobStatus(job.id, target, "conformance"), status, target);
      }
    }
    if (!this.legal.has(`${status}->CANCELLED`)) {
      await this.refusedCall(`cancel_job from ${status}`, () => this.client.cancelJob(job.id), status);
    }
    if (status !== "CREATED") {
      await this.refusedCall(`release_job from ${status}`, () => this.client.releaseJob(job.id), status);
    }
    const after = await this.client.getJob(job.id);
    if (after.status !== job.status || after.etag !== job.etag) {
      this.failures.push(`${status}: refused calls changed the job to ${statusName(after.status)} (${after.etag})`);
    }
    await this.park(after);
  }

  async refusedCall(what: string, call: () => Promise<Job>, status: string, target = ""): Promise<void> {
    try {
      await call();
    } catch (err) {
      if (err instanceof InvalidTransition) {
        this.refused += 1;
        const named = [err.metadata.from, target === "" ? "" : err.metadata.to];
        if (named[0] !== status || named[1] !== target) {
          this.failures.push(`${what}: refused naming ${JSON.stringify(err.metadata)}`);
        }
        return;
      }
      if (err instanceof JobwardenError) {
        this.failures.push(`${what}: refused with ${codeName(err.code)}/${err.reason}, not INVALID_TRANSITION`);
        return;
      }
      throw err;
    }
    this.failures.push(`${what}: allowed, but the table has no such edge`);
  }

  async edge(status: string, target: string): Promise<void> {
    const job = await this.reach(status);
    let moved: Job;
    try {
      moved = await this.admin.setJobStatus(job.id, target, "conformance");
    } catch (err) {
      if (err instanceof JobwardenError) {
        this.failures.push(`edge ${status}->${target}: refused with ${err.name}: ${err.message}`);
        return;
      }
      throw err;
    }
    if (statusName(moved.status) !== target) {
      this.failures.push(`edge ${status}->${target}: the job is ${statusName(moved.status)}`);
    }
    this.taken += 1;
    await this.park(moved);
  }

  /** Claims a job left QUEUED for an hour, so the next recipe's claim gets its own job. */
  async park(job: Job): Promise<void> {
    if (statusName(job.status) !== "QUEUED") {
      return;
    }
    const worker = this.step.worker ?? "";
    const claims = await this.s.client(worker).claimJobs(this.s.workerId(worker), [job.jobType], { maxJobs: 1, leaseDurationMs: 3_600_000 });
    const ids = claims.map((c) => c.job?.id);
    if (ids.length !== 1 || ids[0] !== job.id) {
      throw new Mismatch(`parking ${job.id} claimed ${JSON.stringify(ids)}`);
    }
  }
}
