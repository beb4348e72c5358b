/**
 * The TypeScript runner of the language-neutral conformance scenarios (tests/conformance/scenarios):
 * each step through its op (one SDK call), its outcome saved and compared with its expectation, as
 * the runner contract in the scenarios' README says and the Python runner (the reference) does.
 */
import { JobwardenError } from "../../src/index.js";
import * as client from "./client-ops.js";
import type { Outcome } from "./client-ops.js";
import { matches, Mismatch } from "./expect.js";
import * as observe from "./observe-ops.js";
import { Session } from "./session.js";
import type { Principal, Scenario, Step } from "./spec.js";
import { checkTransitions } from "./tables.js";
import * as views from "./views.js";
import * as worker from "./worker-ops.js";

type Op = (s: Session, step: Step) => Promise<Outcome>;

export const OPS: Record<string, Op> = {
  create_job: client.createJob,
  create_jobs: client.createJobs,
  create_batch: client.createBatch,
  get_job: client.getJob,
  list_jobs: client.listJobs,
  cancel_job: client.cancelJob,
  release_job: client.releaseJob,
  set_job_status: client.setJobStatus,
  retry_job: client.retryJob,
  delete_job: client.deleteJob,
  list_job_events: client.listJobEvents,
  list_assets: client.listAssets,
  get_lifecycle: client.getLifecycle,
  claim_jobs: worker.claimJobs,
  report_progress: worker.reportProgress,
  add_asset: worker.addAsset,
  add_messages: worker.addMessages,
  complete_job: worker.completeJob,
  fail_job: worker.failJob,
  start_worker: worker.startWorker,
  stop_worker: worker.stopWorker,
  handler_runs: worker.handlerRuns,
  watch_job: observe.watchJob,
  start_watch: observe.startWatch,
  finish_watch: observe.finishWatch,
  await_status: observe.awaitStatus,
  await_callbacks: observe.awaitCallbacks,
  check_transitions: (s, step) => checkTransitions(s, step, runStep),
};

/** Runs every step of `scenario` against the server at `address`; a Mismatch names the first that differs. */
export async function run(scenario: Scenario, address: string, principals: Record<string, Principal>): Promise<void> {
  const s = new Session(scenario, address, principals);
  try {
    await s.open();
    for (const [symbol, lifecycle] of Object.entries(scenario.job_types)) {
      await runStep(s, { op: "get_lifecycle", job_type: symbol, expect: { name: lifecycle } }, `job type '${symbol}'`);
    }
    for (const [i, step] of scenario.steps.entries()) {
      await runStep(s, step, `step ${i} (${step.op})`);
    }
  } finally {
    await s.close();
  }
}

/**
 * One step: call its op; save what it returned; compare with `expect` (a `refused` expectation wants the
 * call refused; without one the call must succeed).
 */
export async function runStep(s: Session, step: Step, where: string): Promise<void> {
  const expected = step.expect;
  const wantsError = expected !== undefined && "refused" in expected;
  const op = OPS[step.op];
  if (op === undefined) {
    throw new Error(`${where}: no mapping for op ${step.op}`);
  }
  let outcome: Outcome;
  try {
    outcome = await op(s, step);
  } catch (err) {
    if (err instanceof JobwardenError) {
      if (!wantsError) {
        throw new Mismatch(`${where}: refused: ${err.name} ${views.codeName(err.code)}/${err.reason}: ${err.message}`, { cause: err });
      }
      compare(s, expected, { refused: views.error(err) }, where);
      return;
    }
    if (err instanceof Mismatch) {
      throw new Mismatch(`${where}: ${err.message}`, { cause: err });
    }
    throw err;
  }
  if (wantsError) {
    throw new Mismatch(`${where}: succeeded, but ${JSON.stringify(expected.refused)} was expected`);
  }
  s.save(step.save, outcome[1]);
  if (expected !== undefined) {
    compare(s, expected, outcome[0], where);
  }
}

function compare(s: Session, expected: unknown, actual: unknown, where: string): void {
  try {
    matches(s.resolve(expected), actual);
  } catch (err) {
    if (err instanceof Mismatch) {
      throw new Mismatch(`${where}: ${err.message}`, { cause: err });
    }
    throw err;
  }
}
