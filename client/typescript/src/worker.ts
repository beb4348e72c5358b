/**
 * The managed worker: claim, run handlers, keep leases alive, finish jobs, shut down cleanly (the
 * Python SDK's `Worker`, with the same rules).
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import type { Client } from "./client.js";
import { AbortKind, JobContext, PartialResult, PermanentError } from "./context.js";
import type { Handler, HandlerResult } from "./context.js";
import { fromError, JobwardenError, LeaseLost, NotFound } from "./errors.js";
import type { StopReason } from "./gen/jobwarden/v1/job_pb.js";
import type { JobClaim } from "./gen/jobwarden/v1/worker_service_pb.js";
import { backoff } from "./retry.js";
import { isFatal, SessionLink } from "./session.js";
import type { SessionOwner } from "./session.js";
import type { WorkerLink } from "./worker-requests.js";

const FINISH_ATTEMPTS = 5;
const MIN_EMPTY_POLL_MS = 1_000;
// The server caps error messages; a stack-sized message would be refused and lose the failure.
const MAX_MESSAGE_CHARS = 4000;

/** Where the worker says what it does; `console` by default, with `info` silenced. */
export interface WorkerLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

const DEFAULT_LOGGER: WorkerLogger = {
  info: () => undefined,
  warn: (message) => {
    console.warn(`jobwarden: ${message}`);
  },
  error: (message) => {
    console.error(`jobwarden: ${message}`);
  },
};

/** How a {@link Worker} runs. */
export interface WorkerOptions {
  /** The id recorded on claimed jobs (default: host, pid and a random suffix). */
  workerId?: string;
  /** At most this many handlers run at once (default 4). */
  concurrency?: number;
  /** How long a lease lasts without renewal (default 30 s; the server allows 1 s..1 h). */
  leaseDurationMs?: number;
  /** How long each ClaimJobs long-poll waits for work, without a session (default 10 s; at most 60 s). */
  pollWaitMs?: number;
  /** How long {@link Worker.stop} lets running handlers finish before their jobs are handed back (default 30 s). */
  shutdownGraceMs?: number;
  /** How long a handler has to stop by itself after a cancel request (default 5 s). */
  cancelGraceMs?: number;
  /** Run a Work session (the default); false polls with the unary calls, a heartbeat per job. */
  session?: boolean;
  logger?: WorkerLogger;
}

function defaultWorkerId(): string {
  // pid alone collides across containers (everyone is pid 1); the suffix keeps restarts apart too.
  return `${hostname().slice(0, 64)}-${process.pid}-${randomUUID().slice(0, 8)}`;
}

interface Run {
  ctx: JobContext;
  done: Promise<void>;
}

/**
 * Runs handlers for claimed jobs, with lease renewal, cancellation and graceful shutdown.
 *
 *     const worker = new Worker(client, { concurrency: 8 });
 *     worker.register("thumbnail", async (ctx) => {
 *       await ctx.progress(50, "resizing");
 *       return { uri: "s3://..." };
 *     });
 *     await worker.run({ installSignalHandlers: true });
 *
 * A handler's outcome decides how the job ends: a returned object (or nothing) completes it, a
 * {@link PartialResult} finishes it PARTIAL, a {@link PermanentError} fails it for good and any other
 * error fails the attempt as retryable. When a client cancels the job, `ctx.signal` aborts, and the job
 * is failed with "cancelled" (recorded CANCELLED) once the handler returns or `cancelGraceMs` passed.
 * When the lease is lost, `ctx.signal` aborts and nothing is reported: the job is someone else's now.
 *
 * By default the worker runs a Work session (one stream: pushed claims, steps, lease renewal); with
 * `session: false` it long-polls ClaimJobs and sends a heartbeat per job. A Worker runs once.
 */
export class Worker implements SessionOwner {
  readonly client: Client;
  readonly workerId: string;
  readonly concurrency: number;
  readonly leaseDurationMs: number;
  readonly pollWaitMs: number;
  readonly shutdownGraceMs: number;
  readonly cancelGraceMs: number;
  readonly session: boolean;
  readonly #log: WorkerLogger;
  readonly #handlers = new Map<string, Handler>();
  readonly #runs = new Set<Run>();
  /**
   * The runs whose handler has not returned yet: each takes one of `concurrency` slots. A run whose
   * handler returned is only reporting its outcome and frees its slot at once (see `#freeSlot`).
   */
  readonly #slotsTaken = new Set<Run>();
  readonly #handbacks = new Set<Promise<void>>();
  #link: WorkerLink;
  #sessionLink: SessionLink | undefined;
  readonly #stopping = new AbortController();
  readonly #force = new AbortController();
  #slotFreed: (() => void) | undefined;
  #started = false;

  constructor(client: Client, options: WorkerOptions = {}) {
    this.client = client;
    this.workerId = options.workerId ?? defaultWorkerId();
    this.concurrency = options.concurrency ?? 4;
    this.leaseDurationMs = options.leaseDurationMs ?? 30_000;
    this.pollWaitMs = options.pollWaitMs ?? 10_000;
    this.shutdownGraceMs = options.shutdownGraceMs ?? 30_000;
    this.cancelGraceMs = options.cancelGraceMs ?? 5_000;
    this.session = options.session ?? true;
    this.#log = options.logger ?? DEFAULT_LOGGER;
    this.#link = client;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1) {
      throw new RangeError("concurrency must be at least 1");
    }
    if (this.leaseDurationMs <= 0) {
      throw new RangeError("leaseDurationMs must be positive");
    }
  }

  /** Registers `handler` for jobs of `jobType`. @throws Error the type has a handler already. */
  register(jobType: string, handler: Handler): this {
    if (this.#handlers.has(jobType)) {
      throw new Error(`a handler for ${JSON.stringify(jobType)} is already registered`);
    }
    this.#handlers.set(jobType, handler);
    return this;
  }

  /** The job types this worker claims. */
  get jobTypes(): string[] {
    return [...this.#handlers.keys()].sort();
  }

  /** How many handlers are running now. */
  get runningJobs(): number {
    return this.#slotsTaken.size;
  }

  /**
   * Asks {@link run} to stop: claim no more, let running handlers finish, then return. A second call
   * skips what is left of the shutdown grace period.
   */
  stop(): void {
    if (this.#stopping.signal.aborted) {
      this.#force.abort();
    }
    this.#stopping.abort();
    this.#slotFreed?.(); // a polling loop waiting for a free slot stops waiting
  }

  /**
   * Claims and runs jobs until {@link stop}. On stop, running handlers get `shutdownGraceMs` to finish;
   * the rest are aborted and their jobs failed as retryable ("worker shutting down"), so another worker
   * picks them up.
   *
   * @param options.installSignalHandlers make SIGINT and SIGTERM call stop (the second one skips the grace).
   * @throws JobwardenError claiming failed in a way retrying cannot fix (credentials, permission, an
   *   invalid request); running jobs are shut down first.
   */
  async run(options: { installSignalHandlers?: boolean } = {}): Promise<void> {
    if (this.#handlers.size === 0) {
      throw new Error("register at least one handler before run()");
    }
    if (this.#started) {
      throw new Error("a Worker runs once; create a new one");
    }
    this.#started = true;
    const onSignal = (): void => {
      this.stop();
    };
    if (options.installSignalHandlers === true) {
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
    }
    this.#log.info(`worker ${this.workerId} claiming ${this.jobTypes.join(", ")} (concurrency ${this.concurrency})`);
    try {
      await (this.session ? this.#serveSession() : this.#poll());
    } finally {
      this.#stopping.abort();
      try {
        await this.#drain();
      } finally {
        await this.#closeSession();
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
        this.#log.info(`worker ${this.workerId} stopped`);
      }
    }
  }

  // --- the Work session (default) ------------------------------------------------------------------

  async #serveSession(): Promise<void> {
    const link = new SessionLink(this.client, this, {
      workerId: this.workerId,
      jobTypes: this.jobTypes,
      leaseDurationMs: this.leaseDurationMs,
      warn: (message) => {
        this.#log.warn(message);
      },
    });
    this.#sessionLink = link;
    this.#link = link;
    const session = link.run();
    // A session that ends before stop was refused for good: its error is thrown (after the drain).
    let failed: unknown;
    const ended = session.then(
      () => undefined,
      (err: unknown) => {
        failed = err ?? new Error("the work session failed");
      },
    );
    await Promise.race([ended, aborted(this.#stopping.signal)]);
    if (failed !== undefined) {
      throw fromError(failed);
    }
    this.#sessionEnded = ended;
    link.stopClaims(); // stopping: running jobs still report through the session
  }

  #sessionEnded: Promise<void> | undefined;

  /** Once every outcome is reported, end the session (waiting a little for the last answers). */
  async #closeSession(): Promise<void> {
    const link = this.#sessionLink;
    if (link === undefined || this.#sessionEnded === undefined) {
      return;
    }
    await Promise.allSettled([...this.#handbacks]);
    link.close();
    const timer = new AbortController();
    const waited = await Promise.race([
      this.#sessionEnded.then(() => true),
      sleepUnless(Math.max(5_000, this.cancelGraceMs), timer.signal).then(() => false),
    ]);
    timer.abort(); // the timer must not keep the process alive
    if (!waited) {
      link.abort();
      await this.#sessionEnded;
    }
  }

  freeSlots(): number {
    return this.#stopping.signal.aborted ? 0 : Math.max(0, this.concurrency - this.#slotsTaken.size);
  }

  running(): [string, string][] {
    return [...this.#runs]
      .filter((run) => run.ctx.abortKind !== AbortKind.LeaseLost)
      .map((run) => [run.ctx.job.id, run.ctx.leaseToken]);
  }

  onClaim(claim: JobClaim): void {
    if (this.#stopping.signal.aborted) {
      // Pushed just as the worker stops: hand it straight back.
      const ctx = new JobContext(this.#link, claim, this.workerId, this.cancelGraceMs);
      const handback = this.#fail(ctx, "worker shutting down", { retryable: true }).catch((err: unknown) => {
        this.#log.error(`job ${ctx.job.id}: handing it back failed: ${String(err)}`);
      });
      this.#handbacks.add(handback);
      void handback.then(() => this.#handbacks.delete(handback));
      return;
    }
    this.#start(claim);
  }

  onCancel(jobId: string): void {
    for (const run of this.#runs) {
      if (run.ctx.job.id === jobId) {
        run.ctx.requestCancel();
      }
    }
  }

  onLost(jobId: string): void {
    for (const run of this.#runs) {
      if (run.ctx.job.id === jobId) {
        this.#log.warn(`job ${jobId}: lease lost; abandoning it`);
        run.ctx.setAbort(AbortKind.LeaseLost);
      }
    }
  }

  #isStopping(): boolean {
    return this.#stopping.signal.aborted;
  }

  // --- polling (session: false) --------------------------------------------------------------------

  async #poll(): Promise<void> {
    let failures = 0;
    const stopping = this.#stopping.signal;
    while (!stopping.aborted) {
      const free = this.concurrency - this.#slotsTaken.size;
      if (free <= 0) {
        await new Promise<void>((resolve) => (this.#slotFreed = resolve));
        continue;
      }
      const started = Date.now();
      let claims: JobClaim[];
      try {
        // Stopping cancels a long-poll in flight; a claim made just then is not lost: its lease expires.
        claims = await this.client.claimJobs(this.workerId, this.jobTypes, {
          maxJobs: Math.min(free, 100),
          leaseDurationMs: this.leaseDurationMs,
          waitMs: this.pollWaitMs,
          signal: stopping,
        });
      } catch (err) {
        if (this.#isStopping()) {
          await this.#fence();
          return;
        }
        const error = fromError(err);
        if (isFatal(error)) {
          this.#log.error(`worker ${this.workerId} cannot claim jobs (${error.message}); stopping`);
          throw error;
        }
        const delay = error.retryDelayMs ?? backoff(failures);
        failures += 1;
        this.#log.warn(`claiming failed (${error.message}); retrying in ${Math.round(delay)} ms`);
        await sleepUnless(delay, stopping);
        continue;
      }
      failures = 0;
      for (const claim of claims) {
        this.#start(claim);
      }
      // An empty answer that came back at once must not make a busy loop: poll at most once a second.
      const idle = MIN_EMPTY_POLL_MS - (Date.now() - started);
      if (claims.length === 0 && idle > 0) {
        await sleepUnless(idle, stopping);
      }
    }
  }

  /**
   * One round trip on the connection the cancelled long-poll used, before {@link run} returns. Node's
   * HTTP/2 stack sends the long-poll's RST_STREAM a little later than the abort itself, so without it a
   * job created right after `run()` returned could reach the server first and be claimed for this
   * stopped worker (and wait out its lease). Frames of one connection are read in order: once this
   * call is answered, the server has seen the cancel. Its outcome does not matter.
   */
  async #fence(): Promise<void> {
    await this.client.getLifecycle(this.jobTypes[0]).catch(() => undefined);
  }

  async #heartbeat(ctx: JobContext, done: AbortSignal): Promise<void> {
    const interval = this.leaseDurationMs / 3;
    let retryAt: number | undefined;
    while (!done.aborted) {
      // Any report (the handler's own progress too) renews the lease, so count from the last one.
      const due = retryAt ?? ctx.lastReportMs + interval;
      if (due > Date.now()) {
        await sleepUnless(due - Date.now(), done);
        continue;
      }
      retryAt = undefined;
      try {
        await ctx.report(); // resends the latest progress
      } catch (err) {
        if (err instanceof LeaseLost || err instanceof NotFound) {
          this.#log.warn(`job ${ctx.job.id}: lease lost; abandoning it`);
          return;
        }
        this.#log.warn(`job ${ctx.job.id}: heartbeat failed (${fromError(err).message}); retrying`);
        retryAt = Date.now() + Math.min(interval, 2_000);
      }
    }
  }

  // --- running one job -----------------------------------------------------------------------------

  #start(claim: JobClaim): void {
    const ctx = new JobContext(this.#link, claim, this.workerId, this.cancelGraceMs);
    const run: Run = { ctx, done: Promise.resolve() };
    this.#runs.add(run);
    this.#slotsTaken.add(run);
    run.done = this.#runJob(run)
      .catch((err: unknown) => {
        this.#log.error(`job runner crashed: ${String(err)}`);
      })
      .finally(() => {
        this.#runs.delete(run);
        this.#freeSlot(run);
      });
  }

  /**
   * The run's handler is done: its slot may take the next job while its outcome is reported. Waiting
   * for the report's answer first would add a round trip to the server (and, on a session, a commit)
   * to every job's turn of a slot; on a session the new credit then rides in the very message that
   * carries the outcome. A run frees its slot once.
   */
  #freeSlot(run: Run): void {
    if (!this.#slotsTaken.delete(run)) {
      return;
    }
    this.#slotFreed?.();
    if (!this.#stopping.signal.aborted) {
      this.#sessionLink?.grant(1);
    }
  }

  async #runJob(run: Run): Promise<void> {
    const ctx = run.ctx;
    const job = ctx.job;
    const handler = this.#handlers.get(job.jobType);
    if (handler === undefined) {
      // The server sent a type we did not ask for; let another worker have it.
      await this.#fail(ctx, `worker ${this.workerId} has no handler for ${JSON.stringify(job.jobType)}`, { retryable: true });
      return;
    }
    this.#log.info(`job ${job.id} (${job.jobType}): started, attempt ${job.attempt}`);
    // A session renews its jobs' leases itself; a polling worker keeps each lease alive.
    const heartbeatDone = new AbortController();
    const heartbeat = this.#sessionLink === undefined ? this.#heartbeat(ctx, heartbeatDone.signal) : Promise.resolve();
    type Outcome = { kind: "returned"; value: HandlerResult } | { kind: "threw"; error: unknown } | { kind: "given up" };
    const handled: Promise<Outcome> = Promise.resolve()
      .then(() => handler(ctx))
      .then(
        (value): Outcome => ({ kind: "returned", value }),
        (error: unknown): Outcome => ({ kind: "threw", error }),
      );
    const outcome = await Promise.race([handled, ctx.givenUp.then((): Outcome => ({ kind: "given up" }))]);
    ctx.disarm();
    heartbeatDone.abort();
    await heartbeat;
    this.#freeSlot(run);
    await this.#settle(ctx, outcome);
  }

  async #settle(
    ctx: JobContext,
    outcome: { kind: "returned"; value: HandlerResult } | { kind: "threw"; error: unknown } | { kind: "given up" },
  ): Promise<void> {
    const abort = ctx.abortKind;
    if (abort === AbortKind.LeaseLost) {
      this.#log.warn(`job ${ctx.job.id}: lease lost; its outcome is not reported`);
      return;
    }
    if (abort === AbortKind.Cancelled) {
      await this.#fail(ctx, "cancelled", { retryable: false });
      return;
    }
    if (outcome.kind === "given up") {
      await this.#fail(ctx, abort === AbortKind.Shutdown ? "worker shutting down" : "handler abandoned", { retryable: true });
      return;
    }
    if (outcome.kind === "returned") {
      await this.#complete(ctx, outcome.value);
      return;
    }
    const error = outcome.error;
    if (error instanceof LeaseLost) {
      this.#log.warn(`job ${ctx.job.id}: lease lost; its outcome is not reported`);
    } else if (error instanceof PermanentError) {
      this.#log.info(`job ${ctx.job.id}: failed permanently: ${error.message}`);
      await this.#fail(ctx, error.message || error.name, { reason: error.reason, stopReason: error.stopReason });
    } else {
      const name = error instanceof Error ? error.name : typeof error;
      const message = error instanceof Error ? error.message : String(error);
      this.#log.warn(`job ${ctx.job.id}: handler threw (${name}: ${message}); it will be retried if attempts are left`);
      await this.#fail(ctx, message || name, { reason: name, retryable: true });
    }
  }

  async #complete(ctx: JobContext, value: HandlerResult): Promise<void> {
    let result: Record<string, unknown> | undefined;
    let partial = false;
    let message = "";
    if (value instanceof PartialResult) {
      result = value.result;
      partial = true;
      message = value.errorMessage || "partial result";
    } else if (value === undefined || (typeof value === "object" && !Array.isArray(value))) {
      result = value ?? undefined;
    } else {
      await this.#fail(ctx, `handler returned ${typeof value}, not an object`, { retryable: false });
      return;
    }
    const requestId = randomUUID();
    try {
      await this.#finish(ctx, () =>
        this.#link.completeJob(ctx.job.id, ctx.leaseToken, { result, partial, errorMessage: message.slice(0, MAX_MESSAGE_CHARS) }, { requestId }),
      );
    } catch (err) {
      // Not JSON, or a number no double holds: retrying won't help.
      await this.#fail(ctx, `the handler's result cannot be sent: ${err instanceof Error ? err.message : String(err)}`, {
        retryable: false,
      });
      return;
    }
    this.#log.info(`job ${ctx.job.id}: ${partial ? "partial" : "completed"}`);
  }

  async #fail(
    ctx: JobContext,
    message: string,
    options: { reason?: string; retryable?: boolean; stopReason?: StopReason | undefined } = {},
  ): Promise<void> {
    const requestId = randomUUID();
    await this.#finish(ctx, () =>
      this.#link.failJob(
        ctx.job.id,
        ctx.leaseToken,
        {
          message: message.slice(0, MAX_MESSAGE_CHARS),
          reason: options.reason ?? "",
          retryable: options.retryable ?? false,
          ...(options.stopReason !== undefined ? { stopReason: options.stopReason } : {}),
        },
        { requestId },
      ),
    );
  }

  /**
   * Sends a job's outcome, retried with the same request_id, so a retry of a call that did reach the
   * server returns its first answer instead of LEASE_LOST. Errors other than the server's (a result
   * that cannot be sent) are thrown.
   */
  async #finish(ctx: JobContext, call: () => Promise<unknown>): Promise<void> {
    for (let attempt = 0; attempt < FINISH_ATTEMPTS; attempt++) {
      try {
        await call();
        return;
      } catch (err) {
        if (!(err instanceof JobwardenError)) {
          throw err;
        }
        if (err instanceof LeaseLost || err instanceof NotFound) {
          this.#log.warn(`job ${ctx.job.id}: lease lost before its outcome was reported`);
          return;
        }
        if (!err.retryable || attempt === FINISH_ATTEMPTS - 1) {
          this.#log.error(`job ${ctx.job.id}: reporting its outcome failed: ${err.message}`);
          return;
        }
        await sleep(err.retryDelayMs ?? backoff(attempt));
      }
    }
  }

  // --- shutdown -------------------------------------------------------------------------------------

  async #drain(): Promise<void> {
    if (this.#runs.size === 0) {
      return;
    }
    if (!this.#force.signal.aborted) {
      this.#log.info(`waiting up to ${this.shutdownGraceMs} ms for ${this.#runs.size} running job(s)`);
      const graceOver = new AbortController();
      await Promise.race([
        Promise.allSettled([...this.#runs].map((run) => run.done)),
        sleepUnless(this.shutdownGraceMs, AbortSignal.any([this.#force.signal, graceOver.signal])),
      ]);
      graceOver.abort(); // the grace timer must not keep the process alive
    }
    const left = [...this.#runs];
    for (const run of left) {
      run.ctx.setAbort(AbortKind.Shutdown);
    }
    // Each runner now reports its job as retryable (or its result, if it finished meanwhile).
    await Promise.allSettled(left.map((run) => run.done));
  }
}

/** Resolves when `signal` aborts (never rejects). */
function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) {
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    signal.addEventListener(
      "abort",
      () => {
        resolve();
      },
      { once: true },
    );
  });
}

/** Sleeps `ms`, or less if `signal` aborts first (never rejects). */
async function sleepUnless(ms: number, signal: AbortSignal): Promise<void> {
  await sleep(ms, undefined, { signal }).catch(() => undefined);
}
