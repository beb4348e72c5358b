/** The client: one method per RPC, typed errors, request ids made once per call and retries. */
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import type { CallOptions, Client as ServiceClient, Transport } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";
import { checkJsonObject, duration, eventKind, idempotencyKey, jobStatus, stopReason, timestamp } from "./convert.js";
import { fromError, fromStatus, WatcherTooSlow } from "./errors.js";
import type { JobwardenError } from "./errors.js";
import { AdminService } from "./gen/jobwarden/v1/admin_service_pb.js";
import type {
  Asset,
  Job,
  JobEvent,
  JobEventKind,
  JobStatus,
  Lifecycle,
  StopReason,
} from "./gen/jobwarden/v1/job_pb.js";
import { JobEventKind as EventKinds } from "./gen/jobwarden/v1/job_pb.js";
import { CreateJobRequestSchema, JobService } from "./gen/jobwarden/v1/job_service_pb.js";
import type { CreateJobRequest } from "./gen/jobwarden/v1/job_service_pb.js";
import type { JobClaim } from "./gen/jobwarden/v1/worker_service_pb.js";
import { WorkerService } from "./gen/jobwarden/v1/worker_service_pb.js";
import { backoff, MAX_BACKOFF_MS, withRetry } from "./retry.js";
import { createTransport, DEFAULT_TARGET, DEFAULT_TIMEOUT_MS } from "./transport.js";
import type { TransportOptions } from "./transport.js";
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

/** Reopenings of a broken watch in a row, without an event in between, before the error is thrown. */
export const RESUME_ATTEMPTS = 8;

/** How to build a {@link Client}. */
export interface ClientOptions extends TransportOptions {
  /** Default deadline of each unary call (its retries included), in milliseconds. */
  timeoutMs?: number;
  /** An already made transport to use instead of opening one (token and tls are then ignored). */
  transport?: Transport;
}

/** A job to create: its type and parameters, and the options of {@link Client.createJob}. */
export interface NewJob extends JobOptions {
  jobType: string;
  /** Input of the job: JSON, numbers within ±(2^53 - 1) (send larger integers as strings). */
  parameters?: Record<string, unknown>;
}

/** How a job is created, beyond its type and parameters. */
export interface JobOptions {
  /** Higher runs first (-1000..1000). */
  priority?: number;
  /** Free-form labels, usable as list filters. */
  labels?: Record<string, string>;
  /** Attempts allowed (0: the server default). */
  maxAttempts?: number;
  /** How long to wait before each retry (unset: the server default). */
  retryPolicy?: { initialBackoffMs?: number; maxBackoffMs?: number; multiplier?: number };
  /** Not claimable before this time. */
  runAfter?: Date;
  /** The job expires if not terminal by this time. */
  deadline?: Date;
  /** The server POSTs a signed payload here when the job ends. */
  callbackUrl?: string;
  /** The terminal statuses that fire the callback (empty: all). */
  callbackStatuses?: (JobStatus | string)[];
  /** Start in CREATED instead of QUEUED; see {@link Client.releaseJob}. */
  hold?: boolean;
  /**
   * Idempotency key. One is made when unset, so the SDK's own retries never create a second job;
   * pass your own to make retries across calls (or processes) idempotent too.
   */
  requestId?: string;
  /** How long the job may wait to start before it EXPIRES (unset: the server's default for its type). */
  queueTimeoutMs?: number;
}

/** Filters of {@link Client.listJobs}; empty filters match everything. */
export interface JobFilters {
  statuses?: (JobStatus | string)[];
  jobTypes?: string[];
  labels?: Record<string, string>;
  stopReasons?: (StopReason | string)[];
  createdAfter?: Date;
  createdBefore?: Date;
  /** Jobs per page (0: the server default, 50; at most 500). */
  pageSize?: number;
  /** Newest first. */
  descending?: boolean;
  /** Only the children of this batch parent, in the order they were given. */
  parentId?: string;
}

/** One page and the token of the next (empty on the last page). */
export interface Page<T> {
  items: T[];
  nextPageToken: string;
}

/** Options of a mutating call that can be a dry run. */
export interface MutateOptions {
  requestId?: string;
  /** Only check: the answer (or the error) is the call's, but nothing changes. */
  validateOnly?: boolean;
}

/** What {@link WatchOptions.onReconnect} is told: before a reopening (`error` set) and once open again. */
export interface WatchReconnect {
  attempt: number;
  error: JobwardenError | undefined;
  delayMs: number;
}

/** How {@link Client.watchJob} watches. */
export interface WatchOptions {
  /** Send only events after this sequence (0: the whole history). */
  afterSequence?: bigint | number;
  /** Reopen a broken stream by itself (default true). */
  resume?: boolean;
  /** Reopenings in a row without an event before giving up (default 8). */
  resumeAttempts?: number;
  /** Longest wait between two reopenings (default 30 s). */
  maxBackoffMs?: number;
  onReconnect?: (info: WatchReconnect) => void;
  /** Stops the watch (the iterator then ends with an AbortError). */
  signal?: AbortSignal;
}

/** What {@link Client.watchJob} yields: the job first, then its events; tell them apart by `$typeName`. */
export type WatchItem = Job | JobEvent;

/**
 * A client of a jobwarden server.
 *
 *     const client = new Client("127.0.0.1:50051", { token: "..." });
 *     const job = await client.createJob("thumbnail", { url: "https://..." });
 *     for await (const item of client.watchJob(job.id)) console.log(item);
 *
 * Every failed call throws a {@link JobwardenError} subclass whose `cause` is the transport's error.
 * The connection is opened on first use; {@link close} is not needed (HTTP/2 sessions close when idle)
 * but stops what is in flight.
 */
export class Client implements WorkerLink {
  readonly target: string;
  readonly timeoutMs: number;
  readonly transport: Transport;
  readonly jobs: ServiceClient<typeof JobService>;
  readonly workers: ServiceClient<typeof WorkerService>;
  readonly admin: ServiceClient<typeof AdminService>;
  readonly #closing = new AbortController();

  /**
   * @param target `host:port` of the server.
   * @throws Error when a TLS file cannot be read (files are read here, not on first use).
   */
  constructor(target: string = DEFAULT_TARGET, options: ClientOptions = {}) {
    this.target = target;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.transport = options.transport ?? createTransport(target, options);
    this.jobs = createClient(JobService, this.transport);
    this.workers = createClient(WorkerService, this.transport);
    this.admin = createClient(AdminService, this.transport);
  }

  /** Cancels the calls and streams in flight. */
  close(): void {
    this.#closing.abort(new Error("client closed"));
  }

  /** A signal that fires when the client closes or `signal` fires. */
  signal(signal?: AbortSignal): AbortSignal {
    return signal === undefined ? this.#closing.signal : AbortSignal.any([this.#closing.signal, signal]);
  }

  /**
   * Runs a unary call with the client's deadline and retry policy; errors come out typed. The request
   * is built once by the caller, so its request_id is the same on every retry.
   */
  async unary<T>(call: (options: CallOptions) => Promise<T>, timeoutMs: number = this.timeoutMs): Promise<T> {
    const signal = this.signal();
    return withRetry((left) => call({ timeoutMs: left, signal }), timeoutMs, undefined, signal);
  }

  // --- JobService ---------------------------------------------------------------------------------

  /**
   * Creates a job.
   *
   * @returns The job, or the one created first with the same `requestId`.
   * @throws RangeError/TypeError `parameters` is not JSON or holds a number beyond ±(2^53 - 1); nothing was sent.
   * @throws InvalidArgument a field was refused; CallbackTargetRefused; RequestIdMismatch.
   */
  async createJob(
    jobType: string,
    parameters?: Record<string, unknown>,
    options: JobOptions & { validateOnly?: boolean } = {},
  ): Promise<Job> {
    const request = newJobRequest({ ...options, jobType, parameters }, idempotencyKey(options.requestId));
    request.validateOnly = options.validateOnly ?? false;
    const response = await this.unary((o) => this.jobs.createJob(request, o));
    return required(response.job);
  }

  /**
   * Creates up to 1000 jobs in one call and one transaction; each is answered on its own.
   *
   * @returns One outcome per job, in order: the created Job, or the error createJob would have thrown
   *   for it (returned, not thrown; its field under `requests[i].`).
   * @throws InvalidArgument no jobs, more than 1000, or too large a request; nothing was created.
   */
  async createJobs(jobs: NewJob[]): Promise<(Job | JobwardenError)[]> {
    const requests = jobs.map((job) => newJobRequest(job, idempotencyKey(job.requestId)));
    const response = await this.unary((o) => this.jobs.createJobs({ requests }, o));
    return response.results.map((r) =>
      r.result.case === "job" ? r.result.value : fromStatus(r.result.value ?? { code: 2, message: "no result", details: [], $typeName: "google.rpc.Status" }),
    );
  }

  /**
   * Creates a batch: a parent job and its children (1..10,000), in one transaction or not at all. The
   * server drives the parent; page the children with `listJobs({ parentId })`.
   *
   * @throws Error a child has a requestId (the batch's covers them); nothing was sent.
   */
  async createBatch(
    jobType: string,
    children: NewJob[],
    options: {
      parameters?: Record<string, unknown>;
      labels?: Record<string, string>;
      callbackUrl?: string;
      callbackStatuses?: (JobStatus | string)[];
    } & MutateOptions = {},
  ): Promise<Job> {
    const items = children.map((child) => {
      if (child.requestId !== undefined) {
        throw new Error("a batch's children take no requestId: the batch's covers them");
      }
      return newJobRequest(child, "");
    });
    const request = {
      jobType,
      parameters: checkJsonObject(options.parameters, "parameters"),
      labels: { ...(options.labels ?? {}) },
      children: items,
      callbackUrl: options.callbackUrl ?? "",
      callbackStatuses: (options.callbackStatuses ?? []).map(jobStatus),
      requestId: idempotencyKey(options.requestId),
      validateOnly: options.validateOnly ?? false,
    };
    const response = await this.unary((o) => this.jobs.createBatch(request, o));
    return required(response.job);
  }

  /** @throws NotFound no such job, or not the caller's. */
  async getJob(jobId: string): Promise<Job> {
    const response = await this.unary((o) => this.jobs.getJob({ jobId }, o));
    return required(response.job);
  }

  /** One page of the caller's jobs. */
  async listJobsPage(filters: JobFilters = {}, pageToken = ""): Promise<Page<Job>> {
    const request = {
      statuses: (filters.statuses ?? []).map(jobStatus),
      jobTypes: filters.jobTypes ?? [],
      labels: { ...(filters.labels ?? {}) },
      stopReasons: (filters.stopReasons ?? []).map(stopReason),
      createdAfter: timestamp(filters.createdAfter),
      createdBefore: timestamp(filters.createdBefore),
      pageSize: filters.pageSize ?? 0,
      pageToken,
      descending: filters.descending ?? false,
      parentId: filters.parentId ?? "",
    };
    const response = await this.unary((o) => this.jobs.listJobs(request, o));
    return { items: response.jobs, nextPageToken: response.nextPageToken };
  }

  /** Every matching job, fetching pages as the iteration needs them. */
  listJobs(filters: JobFilters = {}): AsyncIterable<Job> {
    return paged((token) => this.listJobsPage(filters, token));
  }

  /**
   * Cancels a job: at once if it has not started; a RUNNING job gets `cancelRequested` and its worker
   * stops it (it then becomes CANCELLED).
   *
   * @throws InvalidTransition the job already ended; EtagMismatch the job changed since `etag` was read.
   */
  async cancelJob(jobId: string, options: { reason?: string; etag?: string } & MutateOptions = {}): Promise<Job> {
    const request = {
      jobId,
      reason: options.reason ?? "",
      etag: options.etag ?? "",
      requestId: idempotencyKey(options.requestId),
      validateOnly: options.validateOnly ?? false,
    };
    const response = await this.unary((o) => this.jobs.cancelJob(request, o));
    return required(response.job);
  }

  /** Moves a held (CREATED) job to QUEUED. @throws InvalidTransition the job is not held. */
  async releaseJob(jobId: string, options: MutateOptions = {}): Promise<Job> {
    const request = { jobId, requestId: idempotencyKey(options.requestId), validateOnly: options.validateOnly ?? false };
    const response = await this.unary((o) => this.jobs.releaseJob(request, o));
    return required(response.job);
  }

  /** Deletes a finished job with its events and assets. @throws JobNotTerminal; NotFound. */
  async deleteJob(jobId: string, options: { requestId?: string } = {}): Promise<void> {
    const request = { jobId, requestId: idempotencyKey(options.requestId) };
    await this.unary((o) => this.jobs.deleteJob(request, o));
  }

  /**
   * Streams a job: first the Job, then every JobEvent in order; it ends after the terminal event.
   *
   * With `resume` (the default), a stream that started and then broke on a retryable failure (the
   * server restarting or shutting down, the watch cut off as too slow, a lost connection) is reopened
   * after the last sequence seen, so the caller sees one unbroken stream: the job once, then each event
   * once, in order. Only `resumeAttempts` reopenings in a row that bring no event are tried; then the
   * last error is thrown. A watch that cannot start at all fails at once, like any call.
   */
  async *watchJob(jobId: string, options: WatchOptions = {}): AsyncGenerator<WatchItem, void, undefined> {
    const resume = options.resume ?? true;
    const attempts = options.resumeAttempts ?? RESUME_ATTEMPTS;
    const maxBackoffMs = options.maxBackoffMs ?? MAX_BACKOFF_MS;
    let cursor = BigInt(options.afterSequence ?? 0);
    let snapshotSent = false;
    let failures = 0;
    let broken = false;
    for (;;) {
      // One controller per stream: leaving the loop early (break, return) stops the server's stream.
      const stream = new AbortController();
      const signal = AbortSignal.any([stream.signal, this.signal(options.signal)]);
      let error: JobwardenError;
      try {
        for await (const response of this.jobs.watchJob({ jobId, afterSequence: cursor }, { signal })) {
          const item = response.item;
          if (item.case === "job") {
            // Every (re)opened stream starts with the job: that is when it is open again.
            if (broken) {
              options.onReconnect?.({ attempt: failures, error: undefined, delayMs: 0 });
            }
            broken = false;
            if (!snapshotSent) {
              snapshotSent = true;
              yield item.value;
            }
          } else if (item.case === "event") {
            failures = 0;
            cursor = item.value.sequence;
            yield item.value;
          }
        }
        return;
      } catch (err) {
        error = fromError(err);
        if (options.signal?.aborted === true || !(resume && snapshotSent && error.retryable && failures < attempts)) {
          throw error;
        }
      } finally {
        stream.abort();
      }
      failures += 1;
      broken = true;
      // A watch cut off as too slow may come back at once: it is the consumer that was late.
      const delayMs = error instanceof WatcherTooSlow ? 0 : (error.retryDelayMs ?? backoff(failures, 500, maxBackoffMs));
      options.onReconnect?.({ attempt: failures, error, delayMs });
      if (delayMs > 0) {
        await sleep(delayMs, undefined, { signal: this.signal(options.signal) });
      }
    }
  }

  /** One page of a job's recorded events, in sequence order (of `kinds`, if given). */
  async listJobEventsPage(
    jobId: string,
    options: { pageSize?: number; kinds?: (JobEventKind | string)[] } = {},
    pageToken = "",
  ): Promise<Page<JobEvent>> {
    const request = { jobId, pageSize: options.pageSize ?? 0, pageToken, kinds: (options.kinds ?? []).map(eventKind) };
    const response = await this.unary((o) => this.jobs.listJobEvents(request, o));
    return { items: response.events, nextPageToken: response.nextPageToken };
  }

  /** All of a job's recorded events (of `kinds`, if given), fetching pages as needed. */
  listJobEvents(jobId: string, options: { pageSize?: number; kinds?: (JobEventKind | string)[] } = {}): AsyncIterable<JobEvent> {
    return paged((token) => this.listJobEventsPage(jobId, options, token));
  }

  /** All the messages workers attached to a job (its `log` events), in the order they were added. */
  listJobMessages(jobId: string, options: { pageSize?: number } = {}): AsyncIterable<JobEvent> {
    return this.listJobEvents(jobId, { ...options, kinds: [EventKinds.LOG] });
  }

  /** One page of a job's assets, in the order they were added. */
  async listAssetsPage(jobId: string, options: { pageSize?: number } = {}, pageToken = ""): Promise<Page<Asset>> {
    const request = { jobId, pageSize: options.pageSize ?? 0, pageToken };
    const response = await this.unary((o) => this.jobs.listAssets(request, o));
    return { items: response.assets, nextPageToken: response.nextPageToken };
  }

  /** All of a job's assets, fetching pages as needed. */
  listAssets(jobId: string, options: { pageSize?: number } = {}): AsyncIterable<Asset> {
    return paged((token) => this.listAssetsPage(jobId, options, token));
  }

  /** @throws NotFound no such asset, or not the caller's. */
  async getAsset(assetId: string): Promise<Asset> {
    const response = await this.unary((o) => this.jobs.getAsset({ assetId }, o));
    return required(response.asset);
  }

  /** The lifecycle table governing jobs of `jobType` (empty: the default table). */
  async getLifecycle(jobType = ""): Promise<Lifecycle> {
    const response = await this.unary((o) => this.jobs.getLifecycle({ jobType }, o));
    return required(response.lifecycle);
  }

  // --- AdminService (tokens with the admin role) ----------------------------------------------------

  /**
   * Moves a job to `status` directly, as an admin; `force` allows a change the lifecycle table has no
   * edge for. @throws PermissionDenied; InvalidTransition; NotFound.
   */
  async setJobStatus(
    jobId: string,
    status: JobStatus | string,
    reason: string,
    options: { force?: boolean } & MutateOptions = {},
  ): Promise<Job> {
    const request = {
      jobId,
      status: jobStatus(status),
      reason,
      force: options.force ?? false,
      requestId: idempotencyKey(options.requestId),
      validateOnly: options.validateOnly ?? false,
    };
    const response = await this.unary((o) => this.admin.setJobStatus(request, o));
    return required(response.job);
  }

  /** Runs an ended job again as a new job whose `retryOf` is the old one. @throws JobNotTerminal. */
  async retryJob(jobId: string, options: MutateOptions = {}): Promise<Job> {
    const request = { jobId, requestId: idempotencyKey(options.requestId), validateOnly: options.validateOnly ?? false };
    const response = await this.unary((o) => this.admin.retryJob(request, o));
    return required(response.job);
  }

  // --- WorkerService, low level (the managed loop is Worker) ---------------------------------------

  /**
   * Leases up to `maxJobs` QUEUED jobs of the given types; with `waitMs`, long-polls for work. A retry
   * with the same request_id gets the jobs the first call claimed instead of claiming more.
   */
  async claimJobs(
    workerId: string,
    jobTypes: string[],
    options: { maxJobs?: number; leaseDurationMs?: number; waitMs?: number; requestId?: string; signal?: AbortSignal } = {},
  ): Promise<JobClaim[]> {
    const waitMs = options.waitMs ?? 0;
    const request = {
      workerId,
      jobTypes,
      maxJobs: options.maxJobs ?? 1,
      leaseDuration: duration(options.leaseDurationMs ?? 30_000),
      wait: waitMs > 0 ? duration(waitMs) : undefined,
      requestId: idempotencyKey(options.requestId),
    };
    // The deadline must outlast the long-poll, or every empty poll would end in DEADLINE_EXCEEDED.
    const signal = this.signal(options.signal);
    const response = await withRetry(
      (left) => this.workers.claimJobs(request, { timeoutMs: left, signal }),
      this.timeoutMs + waitMs,
      undefined,
      signal,
    );
    return response.claims;
  }

  async reportProgress(jobId: string, leaseToken: string, progress: ProgressReport, options?: WriteOptions): Promise<ProgressAnswer> {
    const request = progressRequest(jobId, leaseToken, progress, options);
    return progressAnswer(await this.unary((o) => this.workers.reportProgress(request, o)));
  }

  async addAsset(jobId: string, leaseToken: string, asset: NewAsset, options?: WriteOptions): Promise<Asset> {
    const request = assetRequest(jobId, leaseToken, asset, options);
    return required((await this.unary((o) => this.workers.addAsset(request, o))).asset);
  }

  async addMessages(jobId: string, leaseToken: string, messages: (JobMessage | string)[], options?: WriteOptions): Promise<JobEvent[]> {
    const request = messagesRequest(jobId, leaseToken, messages, options);
    return messagesAnswer(await this.unary((o) => this.workers.addMessages(request, o)));
  }

  async completeJob(jobId: string, leaseToken: string, completion: Completion, options?: WriteOptions & { validateOnly?: boolean }): Promise<Job> {
    const request = completeRequest(jobId, leaseToken, completion, options);
    request.validateOnly = options?.validateOnly ?? false;
    return required((await this.unary((o) => this.workers.completeJob(request, o))).job);
  }

  async failJob(jobId: string, leaseToken: string, failure: Failure, options?: WriteOptions & { validateOnly?: boolean }): Promise<Job> {
    const request = failRequest(jobId, leaseToken, failure, options);
    request.validateOnly = options?.validateOnly ?? false;
    return required((await this.unary((o) => this.workers.failJob(request, o))).job);
  }
}

/** The request of one job, with the given request id. */
function newJobRequest(job: NewJob, requestId: string): CreateJobRequest {
  const init: MessageInitShape<typeof CreateJobRequestSchema> = {
    jobType: job.jobType,
    parameters: checkJsonObject(job.parameters, "parameters"),
    priority: job.priority ?? 0,
    labels: { ...(job.labels ?? {}) },
    maxAttempts: job.maxAttempts ?? 0,
    runAfter: timestamp(job.runAfter),
    deadline: timestamp(job.deadline),
    callbackUrl: job.callbackUrl ?? "",
    hold: job.hold ?? false,
    requestId,
    queueTimeout: duration(job.queueTimeoutMs),
    callbackStatuses: (job.callbackStatuses ?? []).map(jobStatus),
  };
  if (job.retryPolicy !== undefined) {
    init.retryPolicy = {
      initialBackoff: duration(job.retryPolicy.initialBackoffMs),
      maxBackoff: duration(job.retryPolicy.maxBackoffMs),
      multiplier: job.retryPolicy.multiplier ?? 0,
    };
  }
  return create(CreateJobRequestSchema, init);
}

/** Yields every item of every page, fetching the next page when the iteration reaches it. */
async function* paged<T>(fetch: (token: string) => Promise<Page<T>>): AsyncGenerator<T, void, undefined> {
  let token = "";
  do {
    const page = await fetch(token);
    yield* page.items;
    token = page.nextPageToken;
  } while (token !== "");
}

function required<T>(value: T | undefined): T {
  if (value === undefined) {
    throw fromError(new Error("the server's answer lacks its payload"));
  }
  return value;
}
