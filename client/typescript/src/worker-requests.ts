/**
 * The requests of a worker's writes and what their answers mean, built once for both ways of sending
 * them: a unary call each (the client), or a step of a Work session (the session link).
 */
import { create, fromJson } from "@bufbuild/protobuf";
import { timestampDate, ValueSchema } from "@bufbuild/protobuf/wkt";
import type { Asset, JobEvent, MessageLevel, StopReason } from "./gen/jobwarden/v1/job_pb.js";
import { JobErrorSchema, StopReason as StopReasons } from "./gen/jobwarden/v1/job_pb.js";
import {
  AddAssetRequestSchema,
  AddMessagesRequestSchema,
  CompleteJobRequestSchema,
  FailJobRequestSchema,
  ReportProgressRequestSchema,
} from "./gen/jobwarden/v1/worker_service_pb.js";
import type {
  AddAssetRequest,
  AddMessagesRequest,
  AddMessagesResponse,
  CompleteJobRequest,
  FailJobRequest,
  ReportProgressRequest,
  ReportProgressResponse,
} from "./gen/jobwarden/v1/worker_service_pb.js";
import { checkJson, checkJsonObject, idempotencyKey, int64, messageLevel, stopReason } from "./convert.js";

/** A progress report: percent 0..100, an optional status line, and units done of total. */
export interface ProgressReport {
  percent: number;
  message?: string;
  done?: number | bigint;
  total?: number | bigint;
}

/** An output to attach to a job. */
export interface NewAsset {
  assetType: string;
  uri: string;
  storagePath?: string;
  sizeBytes?: number | bigint;
  contentType?: string;
  sha256?: string;
  metadata?: Record<string, string>;
}

/** A message to attach to a job: a log line, a warning, an intermediate output (level OUTPUT, data). */
export interface JobMessage {
  text?: string;
  /** DEBUG, INFO (the default), WARNING, ERROR or OUTPUT. */
  level?: MessageLevel | string;
  /** Any JSON value, numbers within ±(2^53 - 1). */
  data?: unknown;
}

/** How a job finishes well: COMPLETED with `result`, or PARTIAL with `errorMessage` as well. */
export interface Completion {
  result?: Record<string, unknown>;
  partial?: boolean;
  errorMessage?: string;
}

/** How an attempt fails: `retryable` re-queues it while attempts are left. */
export interface Failure {
  message: string;
  reason?: string;
  retryable?: boolean;
  /** One of the worker's own: RESOURCE_LIMIT_EXCEEDED, VALIDATION_ERROR, PROVIDER_ERROR, INTERNAL_ERROR. */
  stopReason?: StopReason | string;
}

/** Per-call options of a worker write. */
export interface WriteOptions {
  /** Idempotency key; one is made when unset, and reused by the SDK's own retries. */
  requestId?: string;
}

/** What a progress report answers. */
export interface ProgressAnswer {
  /** The renewed lease expiry, when the server said. */
  leaseExpireTime: Date | undefined;
  /** A client asked to cancel the job: stop and fail it. */
  cancelRequested: boolean;
}

/**
 * How a worker's writes reach the server: the client's unary calls or a Work session's steps. Both have
 * these methods with the same meaning and answers; the worker reads nothing back from a completion or a
 * failure (a session's brief acks carry no job).
 */
export interface WorkerLink {
  reportProgress(jobId: string, leaseToken: string, progress: ProgressReport, options?: WriteOptions): Promise<ProgressAnswer>;
  addAsset(jobId: string, leaseToken: string, asset: NewAsset, options?: WriteOptions): Promise<Asset>;
  addMessages(jobId: string, leaseToken: string, messages: (JobMessage | string)[], options?: WriteOptions): Promise<JobEvent[]>;
  completeJob(jobId: string, leaseToken: string, completion: Completion, options?: WriteOptions): Promise<unknown>;
  failJob(jobId: string, leaseToken: string, failure: Failure, options?: WriteOptions): Promise<unknown>;
}

export function progressRequest(jobId: string, leaseToken: string, p: ProgressReport, o: WriteOptions = {}): ReportProgressRequest {
  return create(ReportProgressRequestSchema, {
    jobId,
    leaseToken,
    progress: { percent: p.percent, message: p.message ?? "", done: int64(p.done), total: int64(p.total) },
    requestId: idempotencyKey(o.requestId),
  });
}

export function progressAnswer(response: ReportProgressResponse): ProgressAnswer {
  return {
    leaseExpireTime: response.leaseExpireTime === undefined ? undefined : timestampDate(response.leaseExpireTime),
    cancelRequested: response.cancelRequested,
  };
}

export function assetRequest(jobId: string, leaseToken: string, a: NewAsset, o: WriteOptions = {}): AddAssetRequest {
  return create(AddAssetRequestSchema, {
    jobId,
    leaseToken,
    asset: {
      assetType: a.assetType,
      uri: a.uri,
      storagePath: a.storagePath ?? "",
      sizeBytes: int64(a.sizeBytes),
      contentType: a.contentType ?? "",
      sha256: a.sha256 ?? "",
      metadata: { ...(a.metadata ?? {}) },
    },
    requestId: idempotencyKey(o.requestId),
  });
}

/** @throws RangeError/TypeError when a message's level is unknown or its data is not JSON; nothing is sent. */
export function messagesRequest(
  jobId: string,
  leaseToken: string,
  messages: (JobMessage | string)[],
  o: WriteOptions = {},
): AddMessagesRequest {
  return create(AddMessagesRequestSchema, {
    jobId,
    leaseToken,
    messages: messages.map((m, i) => {
      const msg = typeof m === "string" ? { text: m } : m;
      return {
        message: msg.text ?? "",
        level: messageLevel(msg.level ?? "INFO"),
        data: msg.data === undefined ? undefined : fromJson(ValueSchema, checkJson(msg.data, `messages[${i}].data`)),
      };
    }),
    requestId: idempotencyKey(o.requestId),
  });
}

export function messagesAnswer(response: AddMessagesResponse): JobEvent[] {
  return response.events;
}

/** @throws RangeError/TypeError when the result is not JSON; nothing is sent. */
export function completeRequest(jobId: string, leaseToken: string, c: Completion, o: WriteOptions = {}): CompleteJobRequest {
  const partial = c.partial ?? false;
  const message = c.errorMessage ?? "";
  return create(CompleteJobRequestSchema, {
    jobId,
    leaseToken,
    result: checkJsonObject(c.result, "result"),
    partial,
    error: partial || message !== "" ? create(JobErrorSchema, { message }) : undefined,
    requestId: idempotencyKey(o.requestId),
  });
}

export function failRequest(jobId: string, leaseToken: string, f: Failure, o: WriteOptions = {}): FailJobRequest {
  return create(FailJobRequestSchema, {
    jobId,
    leaseToken,
    error: { message: f.message, reason: f.reason ?? "", retryable: f.retryable ?? false },
    stopReason: f.stopReason === undefined ? StopReasons.UNSPECIFIED : stopReason(f.stopReason),
    requestId: idempotencyKey(o.requestId),
  });
}
