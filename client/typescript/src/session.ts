/**
 * A worker's Work session (WorkerService.Work) as the SDK runs it: one bidirectional stream for claims
 * and writes, as the Python SDK's `_session.py`.
 *
 * Jobs are pushed as the worker frees slots (one credit per slot), so there is no polling; progress,
 * assets, messages, completions and failures are steps on the same stream, each answered by an ack
 * with its own status. Whatever is ready while a message is being written goes into the next one. The
 * worker lists the jobs it runs at least three times per lease duration; the server renews their leases
 * and says when one is cancelled or lost. When the stream breaks, the link opens a new session with
 * backoff, resends the steps not yet answered (their request_ids make that safe) and lists the jobs
 * still running in its first message.
 */
import { create } from "@bufbuild/protobuf";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Client } from "./client.js";
import { duration } from "./convert.js";
import {
  fromError,
  fromStatus,
  InvalidArgument,
  PermissionDenied,
  Unauthenticated,
  Unavailable,
  Unimplemented,
} from "./errors.js";
import type { Asset, JobEvent } from "./gen/jobwarden/v1/job_pb.js";
import { WorkRequestSchema, WorkStepSchema } from "./gen/jobwarden/v1/worker_service_pb.js";
import type {
  AddAssetResponse,
  AddMessagesResponse,
  CompleteJobResponse,
  FailJobResponse,
  ReportProgressResponse,
} from "./gen/jobwarden/v1/worker_service_pb.js";
import type { JobClaim, WorkAck, WorkLease, WorkRequest, WorkResponse, WorkStart, WorkStep } from "./gen/jobwarden/v1/worker_service_pb.js";
import type { JobwardenError } from "./errors.js";
import { backoff } from "./retry.js";
import {
  assetRequest,
  completeRequest,
  failRequest,
  messagesAnswer,
  messagesRequest,
  progressAnswer,
  progressRequest,
} from "./worker-requests.js";
import type {
  Completion,
  Failure,
  JobMessage,
  NewAsset,
  ProgressAnswer,
  ProgressReport,
  WorkerLink,
  WriteOptions,
} from "./worker-requests.js";

/** Steps per message at most (the server's limit). */
export const MAX_STEPS = 1000;

/**
 * Whether no amount of waiting cures `err`, for a session as for polling: reopening or polling again
 * would only spin. Everything else (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, ...)
 * is backed off and retried.
 */
export function isFatal(err: JobwardenError): boolean {
  return (
    err instanceof Unauthenticated ||
    err instanceof PermissionDenied ||
    err instanceof InvalidArgument ||
    err instanceof Unimplemented
  );
}

/** What the link needs from the worker it serves. */
export interface SessionOwner {
  /** How many more jobs the worker can take now. */
  freeSlots(): number;
  /** The jobs it runs: [job id, lease token]. */
  running(): [string, string][];
  onClaim(claim: JobClaim): void;
  onCancel(jobId: string): void;
  onLost(jobId: string): void;
}

/** A flag one side sets and the other waits for (with a timeout, or until a signal aborts). */
class Wake {
  #set = false;
  #waiter: (() => void) | undefined;

  set(): void {
    this.#set = true;
    this.#waiter?.();
  }

  /** Resolves true when set (and clears it), false when `timeoutMs` passed first; rejects when `signal` aborts. */
  async wait(timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    if (!this.#set && !signal.aborted) {
      // A plain timer, cleared once woken: a wait per message must not leave a timer behind each time.
      let timer: NodeJS.Timeout | undefined;
      let wakeUp: () => void = () => undefined;
      await new Promise<void>((resolve) => {
        wakeUp = () => {
          resolve();
        };
        this.#waiter = wakeUp;
        timer = setTimeout(wakeUp, Math.max(0, timeoutMs));
        signal.addEventListener("abort", wakeUp, { once: true });
      });
      clearTimeout(timer);
      signal.removeEventListener("abort", wakeUp);
      this.#waiter = undefined;
    }
    signal.throwIfAborted();
    const was = this.#set;
    this.#set = false;
    return was;
  }
}

/** The requests of one session, as an async iterable the transport reads while they are written. */
class Outbox implements AsyncIterable<WorkRequest> {
  #items: WorkRequest[] = [];
  #ended = false;
  #wake: (() => void) | undefined;

  push(request: WorkRequest): void {
    this.#items.push(request);
    this.#wake?.();
  }

  /** No more requests: the stream's write side is closed (the server then ends the session). */
  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<WorkRequest, void, undefined> {
    for (;;) {
      const next = this.#items.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#ended) {
        return;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }
}

interface Pending {
  step: WorkStep;
  resolve: (ack: WorkAck) => void;
  reject: (err: JobwardenError) => void;
}

type StepCase = NonNullable<WorkStep["step"]["case"]>;

/** The answer in the ack of each kind of step. */
interface StepAnswers {
  progress: ReportProgressResponse;
  asset: AddAssetResponse;
  complete: CompleteJobResponse;
  fail: FailJobResponse;
  messages: AddMessagesResponse;
}

/** Keeps a Work session open for a worker (reopening it when it breaks) and sends its steps. */
export class SessionLink implements WorkerLink {
  readonly #client: Client;
  readonly #owner: SessionOwner;
  readonly #start: WorkStart;
  readonly #leaseDurationMs: number;
  readonly #log: (message: string) => void;
  #pending: Pending[] = [];
  readonly #inflight = new Map<string, Pending>();
  #credits = 0;
  #claimsStopped = false;
  #stopSent = false;
  readonly #wake = new Wake();
  #closing = false;
  #failed: JobwardenError | undefined;
  readonly #ended = new AbortController();

  constructor(
    client: Client,
    owner: SessionOwner,
    options: { workerId: string; jobTypes: string[]; leaseDurationMs: number; warn?: (message: string) => void },
  ) {
    this.#client = client;
    this.#owner = owner;
    this.#leaseDurationMs = options.leaseDurationMs;
    this.#log = options.warn ?? (() => undefined);
    this.#start = create(WorkRequestSchema, {
      // Brief acks: the worker never reads a finished job back, so its acks need not carry it.
      start: { workerId: options.workerId, jobTypes: options.jobTypes, leaseDuration: duration(options.leaseDurationMs), briefAcks: true },
    }).start as WorkStart;
  }

  /**
   * Keeps a session open until {@link close} and every step was answered.
   *
   * @throws JobwardenError the server refused the session in a way that opening it again cannot cure.
   */
  async run(): Promise<void> {
    for (let failures = 0; ; failures++) {
      try {
        await this.#session();
        return;
      } catch (err) {
        const error = fromError(err);
        if (isFatal(error) || this.#ended.signal.aborted) {
          this.#failAll(error);
          throw error;
        }
        this.#requeue();
        const delay = error.retryDelayMs ?? backoff(failures);
        this.#log(`work session broke (${error.message || error.name}); reopening in ${Math.round(delay)} ms`);
        try {
          await sleep(delay, undefined, { signal: this.#ended.signal });
        } catch {
          this.#failAll(error);
          throw error;
        }
      }
    }
  }

  /** Tells the server the worker can take `count` more jobs. */
  grant(count = 1): void {
    this.#credits += count;
    this.#wake.set();
  }

  /** Asks for no more jobs (the worker is stopping); steps go on until {@link close}. */
  stopClaims(): void {
    this.#claimsStopped = true;
    this.#wake.set();
  }

  /** Ends the session once every step sent so far is answered. */
  close(): void {
    this.#closing = true;
    this.#wake.set();
  }

  /** Ends the session now, answered or not (the steps still waiting fail). */
  abort(): void {
    this.#ended.abort();
  }

  async #session(): Promise<void> {
    const outbox = new Outbox();
    const stream = new AbortController();
    const signal = AbortSignal.any([stream.signal, this.#ended.signal, this.#client.signal()]);
    this.#credits = 0; // a new session is owed nothing: the start grants what is free now
    this.#stopSent = this.#claimsStopped;
    outbox.push(
      create(WorkRequestSchema, {
        start: this.#start,
        credits: this.#owner.freeSlots(),
        stopClaims: this.#claimsStopped,
        holding: this.#holding(), // jobs started in an earlier session go on being renewed
      }),
    );
    if (this.#pending.length > 0) {
      this.#wake.set(); // the steps a broken session left unanswered go at once, not at the next listing
    }
    let senderError: unknown;
    const sender = this.#send(outbox, signal).catch((err: unknown) => {
      if (!signal.aborted) {
        senderError = err;
        stream.abort();
      }
    });
    try {
      for await (const response of this.#client.workers.work(outbox, { signal })) {
        this.#received(response);
      }
      if (this.#inflight.size > 0 || this.#pending.length > 0 || !this.#closing) {
        throw new Unavailable("the server ended the work session");
      }
    } catch (err) {
      throw fromError(senderError ?? err);
    } finally {
      stream.abort();
      outbox.end();
      await sender;
    }
  }

  async #send(outbox: Outbox, signal: AbortSignal): Promise<void> {
    // The server renews the leases the worker lists, and pushes claims only while it hears from it: list
    // the running jobs at least three times per lease duration, in a message of their own when idle.
    const every = this.#leaseDurationMs / 3;
    let listedAt = Date.now();
    for (;;) {
      const woken = await this.#wake.wait(listedAt + every - Date.now(), signal);
      if (!woken) {
        listedAt = Date.now();
        outbox.push(create(WorkRequestSchema, { holding: this.#holding() }));
        continue;
      }
      if (this.#closing && this.#pending.length === 0 && this.#inflight.size === 0) {
        outbox.end();
        return;
      }
      const batch = this.#pending.splice(0, MAX_STEPS);
      const credits = this.#credits;
      this.#credits = 0;
      const stop = this.#claimsStopped && !this.#stopSent;
      this.#stopSent = this.#claimsStopped;
      if (batch.length === 0 && credits === 0 && !stop) {
        continue;
      }
      for (const pending of batch) {
        this.#inflight.set(pending.step.stepId, pending);
      }
      const request = create(WorkRequestSchema, { credits, steps: batch.map((p) => p.step), stopClaims: stop });
      if (Date.now() - listedAt >= every) {
        listedAt = Date.now();
        request.holding = this.#holding();
      }
      outbox.push(request);
      if (this.#pending.length > 0) {
        this.#wake.set();
      }
    }
  }

  #received(response: WorkResponse): void {
    for (const claim of response.claims) {
      this.#owner.onClaim(claim);
    }
    for (const ack of response.acks) {
      const sent = this.#inflight.get(ack.stepId);
      if (sent === undefined) {
        continue;
      }
      this.#inflight.delete(ack.stepId);
      if (ack.status === undefined || ack.status.code === 0) {
        sent.resolve(ack);
      } else {
        sent.reject(fromStatus(ack.status));
      }
    }
    for (const jobId of response.cancelJobIds) {
      this.#owner.onCancel(jobId);
    }
    for (const jobId of response.lostJobIds) {
      this.#owner.onLost(jobId);
    }
    if (this.#closing && this.#inflight.size === 0) {
      this.#wake.set(); // the sender may end the session now
    }
  }

  #holding(): WorkLease[] {
    return this.#owner.running().map(([jobId, leaseToken]) => ({ jobId, leaseToken, $typeName: "jobwarden.v1.WorkLease" }));
  }

  /** Steps sent to a session that broke go first in the next one (same request_ids). */
  #requeue(): void {
    this.#pending.unshift(...this.#inflight.values());
    this.#inflight.clear();
  }

  #failAll(err: JobwardenError): void {
    this.#failed = err;
    for (const pending of [...this.#pending, ...this.#inflight.values()]) {
      pending.reject(err);
    }
    this.#pending = [];
    this.#inflight.clear();
  }

  async #step<K extends StepCase>(kind: K, request: Extract<WorkStep["step"], { case: K }>["value"]): Promise<StepAnswers[K]> {
    if (this.#failed !== undefined) {
      throw this.#failed;
    }
    const step = create(WorkStepSchema, { stepId: randomUUID().replaceAll("-", ""), step: { case: kind, value: request } as WorkStep["step"] });
    const ack = await new Promise<WorkAck>((resolve, reject) => {
      this.#pending.push({ step, resolve, reject });
      this.#wake.set();
    });
    if (ack.result.case !== kind) {
      throw new Unavailable(`the ack of a ${kind} step carries no ${kind} answer`);
    }
    return ack.result.value as StepAnswers[K];
  }

  // --- the worker calls, as the client has them ------------------------------------------------------

  async reportProgress(jobId: string, leaseToken: string, progress: ProgressReport, options?: WriteOptions): Promise<ProgressAnswer> {
    return progressAnswer(await this.#step("progress", progressRequest(jobId, leaseToken, progress, options)));
  }

  async addAsset(jobId: string, leaseToken: string, asset: NewAsset, options?: WriteOptions): Promise<Asset> {
    const answer = await this.#step("asset", assetRequest(jobId, leaseToken, asset, options));
    return required(answer.asset);
  }

  async addMessages(jobId: string, leaseToken: string, messages: (JobMessage | string)[], options?: WriteOptions): Promise<JobEvent[]> {
    return messagesAnswer(await this.#step("messages", messagesRequest(jobId, leaseToken, messages, options)));
  }

  /** As the client's completeJob, as a step of the session; its acks are brief, so there is no job to answer with. */
  async completeJob(jobId: string, leaseToken: string, completion: Completion, options?: WriteOptions): Promise<void> {
    await this.#step("complete", completeRequest(jobId, leaseToken, completion, options));
  }

  /** As the client's failJob, as a step of the session; its acks are brief, so there is no job to answer with. */
  async failJob(jobId: string, leaseToken: string, failure: Failure, options?: WriteOptions): Promise<void> {
    await this.#step("fail", failRequest(jobId, leaseToken, failure, options));
  }
}

function required<T>(value: T | undefined): T {
  if (value === undefined) {
    throw new Unavailable("the server's answer lacks its payload");
  }
  return value;
}

