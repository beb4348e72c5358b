/** Managed workers (the SDK's Worker) running handlers a scenario describes as data. */
import { PartialResult, PermanentError, Worker } from "../../src/index.js";
import type { Handler, JobContext, JobMessage } from "../../src/index.js";
import type { Session } from "./session.js";
import type { Actor, HandlerAttempt, MessageSpec } from "./spec.js";

/** One attempt a handler ran. */
export interface Run {
  attempt: number;
  saw_cancel: boolean;
}

/**
 * An SDK Worker whose handlers follow the scenario's script: per attempt, progress, assets and messages
 * to report, then how to end (`then`). Polls with a 1 s wait; 2 s of shutdown grace, 5 s of cancel grace.
 */
export class ManagedWorker {
  readonly worker: Worker;
  readonly runs = new Map<string, Run[]>();
  readonly log: string[] = [];
  #running: Promise<void> | undefined;

  constructor(session: Session, actor: string, spec: Actor) {
    const quiet = (message: string): void => {
      this.log.push(message);
    };
    this.worker = new Worker(session.client(actor), {
      workerId: session.workerId(actor),
      concurrency: spec.concurrency ?? 4,
      leaseDurationMs: (spec.lease_duration ?? 10) * 1000,
      pollWaitMs: 1000,
      shutdownGraceMs: 2000,
      cancelGraceMs: 5000,
      session: spec.session ?? true,
      logger: { info: quiet, warn: quiet, error: quiet },
    });
    for (const [symbol, script] of Object.entries(spec.handlers ?? {})) {
      this.worker.register(session.jobType(symbol), this.#handler(script));
    }
  }

  /** Runs the worker in the background until `stop`. */
  start(): void {
    if (this.#running !== undefined) {
      throw new Error("started twice");
    }
    this.#running = this.worker.run();
  }

  /** Stops the worker and waits for it (`force`: skip the shutdown grace, as at a scenario's end). */
  async stop(force = false): Promise<void> {
    const running = this.#running;
    if (running === undefined) {
      return;
    }
    this.worker.stop();
    if (force) {
      this.worker.stop();
    }
    this.#running = undefined;
    await running;
  }

  #handler(script: HandlerAttempt[]): Handler {
    return async (ctx) => {
      const step = script[Math.min(ctx.job.attempt, script.length) - 1];
      if (step === undefined) {
        throw new Error("a handler script without attempts");
      }
      const run: Run = { attempt: ctx.job.attempt, saw_cancel: false };
      const runs = this.runs.get(ctx.job.id) ?? [];
      runs.push(run);
      this.runs.set(ctx.job.id, runs);
      return perform(ctx, step, run);
    };
  }
}

async function perform(ctx: JobContext, step: HandlerAttempt, run: Run): Promise<Record<string, unknown> | PartialResult | undefined> {
  for (const percent of step.progress ?? []) {
    await ctx.progress(percent);
  }
  for (const asset of step.assets ?? []) {
    await ctx.addAsset(asset.asset_type, asset.uri, { sizeBytes: asset.size_bytes ?? 0 });
  }
  if (step.messages !== undefined && step.messages.length > 0) {
    await ctx.addMessages(step.messages.map(message));
  }
  switch (step.then) {
    case "wait_for_cancel":
      await new Promise<void>((done) => {
        if (ctx.signal.aborted) {
          done();
        } else {
          ctx.signal.addEventListener("abort", () => { done(); }, { once: true });
        }
      });
      run.saw_cancel = ctx.cancelRequested;
      return undefined;
    case "complete":
      return step.result ?? undefined;
    case "partial":
      return new PartialResult(step.result ?? {}, step.error_message ?? "partial");
    case "fail_permanent":
      throw new PermanentError(step.error_message ?? "permanent failure", { reason: step.reason ?? "" });
    case "fail_retryable":
      throw new Error(step.error_message ?? "retryable failure");
  }
}

/** A scenario's message: plain text (INFO), or {text, level, data}. */
export function message(spec: MessageSpec): JobMessage | string {
  if (typeof spec === "string") {
    return spec;
  }
  return { text: spec.text, level: spec.level ?? "INFO", data: spec.data };
}
