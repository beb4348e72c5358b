/** What a handler sees of its job ({@link JobContext}), and the ways a handler can end a job. */
import type { JsonObject } from "@bufbuild/protobuf";
import { LeaseLost, NotFound } from "./errors.js";
import type { Asset, Job, JobEvent, MessageLevel, Progress, StopReason } from "./gen/jobwarden/v1/job_pb.js";
import { StopReason as StopReasons } from "./gen/jobwarden/v1/job_pb.js";
import type { JobClaim } from "./gen/jobwarden/v1/worker_service_pb.js";
import { stopReason as toStopReason } from "./convert.js";
import type { JobMessage, NewAsset, ProgressReport, WorkerLink } from "./worker-requests.js";

// The stop reasons a worker may give; the others are the server's to record.
const WORKER_STOP_REASONS: ReadonlySet<StopReason> = new Set([
  StopReasons.RESOURCE_LIMIT_EXCEEDED,
  StopReasons.VALIDATION_ERROR,
  StopReasons.PROVIDER_ERROR,
  StopReasons.INTERNAL_ERROR,
]);

/**
 * Throw from a handler to fail the job for good, without another attempt. Any other error fails only
 * the current attempt: the server re-queues the job while attempts are left.
 */
export class PermanentError extends Error {
  /** Machine-readable reason, for example "BAD_INPUT". */
  readonly reason: string;
  /** Why the job stopped: RESOURCE_LIMIT_EXCEEDED, VALIDATION_ERROR, PROVIDER_ERROR or INTERNAL_ERROR. */
  readonly stopReason: StopReason | undefined;

  /** @throws RangeError `stopReason` is unknown or one only the server records. */
  constructor(message: string, options: { reason?: string; stopReason?: StopReason | string } = {}) {
    super(message);
    this.name = "PermanentError";
    this.reason = options.reason ?? "";
    this.stopReason = options.stopReason === undefined ? undefined : toStopReason(options.stopReason);
    if (this.stopReason !== undefined && !WORKER_STOP_REASONS.has(this.stopReason)) {
      throw new RangeError(`stop reason ${String(options.stopReason)} is recorded by the server; a worker cannot give it`);
    }
  }
}

/** Return this from a handler to finish the job PARTIAL: some output, some failure. */
export class PartialResult {
  constructor(
    readonly result: Record<string, unknown>,
    readonly errorMessage: string,
  ) {}
}

/** What a handler returns: a result object (COMPLETED), a {@link PartialResult}, or nothing. */
// `void` lets a handler that returns nothing (`async (ctx) => { ... }`) be one.
// eslint-disable-next-line @typescript-eslint/no-invalid-void-type
export type HandlerResult = Record<string, unknown> | PartialResult | undefined | void;

/** `async (ctx) => result`. */
export type Handler = (ctx: JobContext) => Promise<HandlerResult>;

/** Why a handler is asked to stop, ordered by precedence: a lost lease beats a cancel, which beats a shutdown. */
export enum AbortKind {
  None = 0,
  Shutdown = 1,
  Cancelled = 2,
  LeaseLost = 3,
}

/** The `reason` of a job's aborted {@link JobContext.signal}. */
export class JobAborted extends Error {
  constructor(readonly kind: AbortKind) {
    super(
      kind === AbortKind.Cancelled
        ? "the job was cancelled"
        : kind === AbortKind.LeaseLost
          ? "the job's lease was lost"
          : "the worker is shutting down",
    );
    this.name = "AbortError";
  }
}

/**
 * The job a handler is running, and the handler's line to the server.
 *
 * `signal` is aborted when the handler should stop: a client cancelled the job (the worker reports it
 * CANCELLED after `cancelGraceMs`, whether the handler returned or not), the lease was lost (nothing
 * more is reported), or the worker is shutting down and its grace period ran out (the job is handed
 * back for another attempt). Pass it on to whatever the handler awaits (`fetch(url, { signal })`).
 */
export class JobContext {
  readonly job: Job;
  readonly leaseToken: string;
  readonly workerId: string;
  readonly #link: WorkerLink;
  readonly #controller = new AbortController();
  readonly #cancelGraceMs: number;
  #abort = AbortKind.None;
  #cancelSeen = false;
  #progress: ProgressReport;
  #reporting: Promise<unknown> = Promise.resolve();
  #cancelTimer: NodeJS.Timeout | undefined;
  #giveUp: () => void = () => undefined;
  /** Resolves when the worker stops waiting for the handler (lease lost, shutdown, cancel grace over). */
  readonly givenUp: Promise<void>;
  /** When the lease was last renewed by a report (ms since the epoch). */
  lastReportMs = Date.now();

  /** Made by the Worker for each claimed job. */
  constructor(link: WorkerLink, claim: JobClaim, workerId: string, cancelGraceMs: number) {
    if (claim.job === undefined) {
      throw new Error("a claim without its job");
    }
    this.job = claim.job;
    this.leaseToken = claim.leaseToken;
    this.workerId = workerId;
    this.#link = link;
    this.#cancelGraceMs = cancelGraceMs;
    this.#progress = fromProgress(claim.job.progress);
    this.givenUp = new Promise((resolve) => {
      this.#giveUp = resolve;
    });
  }

  /** Aborted when the handler should stop; its `reason` is a {@link JobAborted}. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** The job's input. */
  get parameters(): JsonObject {
    return this.job.parameters ?? {};
  }

  /** Whether a client asked to cancel the job. */
  get cancelRequested(): boolean {
    return this.#cancelSeen;
  }

  /** Why the handler was asked to stop (None while it runs normally). */
  get abortKind(): AbortKind {
    return this.#abort;
  }

  /**
   * Reports progress, which also renews the lease.
   *
   * @throws LeaseLost the job is no longer this worker's; ProgressOutOfRange invalid values.
   */
  async progress(percent: number, message = "", counts: { done?: number | bigint; total?: number | bigint } = {}): Promise<void> {
    await this.report({ percent, message, ...counts });
  }

  /** Attaches an output to the job. @throws LeaseLost. */
  async addAsset(assetType: string, uri: string, options: Omit<NewAsset, "assetType" | "uri"> = {}): Promise<Asset> {
    return this.#guard(this.#link.addAsset(this.job.id, this.leaseToken, { ...options, assetType, uri }));
  }

  /**
   * Attaches a message to the job: a log line, a warning, an intermediate output (level OUTPUT with
   * `data`). Watchers see it at once; `Client.listJobMessages` lists it.
   */
  async log(text: string, options: { level?: MessageLevel | string; data?: unknown } = {}): Promise<JobEvent> {
    const [event] = await this.addMessages([{ text, ...options }]);
    if (event === undefined) {
      throw new Error("the server recorded no event for the message");
    }
    return event;
  }

  /** Attaches several messages in one write, in order (a string is an INFO message). */
  async addMessages(messages: (JobMessage | string)[]): Promise<JobEvent[]> {
    return this.#guard(this.#link.addMessages(this.job.id, this.leaseToken, messages));
  }

  async #guard<T>(call: Promise<T>): Promise<T> {
    try {
      return await call;
    } catch (err) {
      // NOT_FOUND for a job we hold means it is gone for us, which is the same as a lost lease.
      if (err instanceof LeaseLost || err instanceof NotFound) {
        this.setAbort(AbortKind.LeaseLost);
      }
      throw err;
    }
  }

  /**
   * Sends `progress`, or without it (the heartbeat) resends the last accepted progress. One report at
   * a time, so a heartbeat never puts older progress back; a value is kept only once accepted.
   */
  report(progress?: ProgressReport): Promise<void> {
    const turn = this.#reporting.then(async () => {
      const sent = progress ?? this.#progress;
      const answer = await this.#guard(this.#link.reportProgress(this.job.id, this.leaseToken, sent));
      this.#progress = sent;
      this.lastReportMs = Date.now();
      if (answer.cancelRequested) {
        this.requestCancel();
      }
    });
    this.#reporting = turn.catch(() => undefined);
    return turn;
  }

  /** A client asked to cancel the job: abort the signal, and give the handler `cancelGraceMs` to stop. */
  requestCancel(): void {
    if (this.#cancelSeen) {
      return;
    }
    this.#cancelSeen = true;
    this.setAbort(AbortKind.Cancelled);
    if (this.#abort === AbortKind.Cancelled) {
      this.#cancelTimer = setTimeout(this.#giveUp, this.#cancelGraceMs);
    }
  }

  /** Asks the handler to stop for `kind` (if it outranks the reason already given). */
  setAbort(kind: AbortKind): void {
    if (kind <= this.#abort) {
      return;
    }
    this.#abort = kind;
    if (!this.#controller.signal.aborted) {
      this.#controller.abort(new JobAborted(kind));
    }
    if (kind === AbortKind.LeaseLost || kind === AbortKind.Shutdown) {
      this.#giveUp();
    }
  }

  /** The run is over: no cancel timer may fire after it. */
  disarm(): void {
    clearTimeout(this.#cancelTimer);
  }
}

function fromProgress(p: Progress | undefined): ProgressReport {
  return { percent: p?.percent ?? 0, message: p?.message ?? "", done: p?.done ?? 0n, total: p?.total ?? 0n };
}
