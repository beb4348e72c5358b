/**
 * @jobwarden/client: a client and a managed worker for jobwarden, over gRPC (HTTP/2).
 *
 *     import { Client, Worker } from "@jobwarden/client";
 *
 *     const client = new Client("127.0.0.1:50051");
 *     const job = await client.createJob("thumbnail", { url: "https://example.com/a.png" });
 *
 * Failed calls throw the errors of `errors.ts` (one class per ErrorReason). Messages are the generated
 * protobuf-es types (`Job`, `JobEvent`, `Asset`, ...), re-exported here with their enums.
 */
export { Client, RESUME_ATTEMPTS } from "./client.js";
export type {
  ClientOptions,
  JobFilters,
  JobOptions,
  MutateOptions,
  NewJob,
  Page,
  WatchItem,
  WatchOptions,
  WatchReconnect,
} from "./client.js";
export { AbortKind, JobAborted, JobContext, PartialResult, PermanentError } from "./context.js";
export type { Handler, HandlerResult } from "./context.js";
export * from "./errors.js";
export { createTransport, DEFAULT_TARGET, DEFAULT_TIMEOUT_MS, VERSION } from "./transport.js";
export type { PemSource, TlsOptions, TransportOptions } from "./transport.js";
export { Worker } from "./worker.js";
export type { WorkerLogger, WorkerOptions } from "./worker.js";
export type {
  Completion,
  Failure,
  JobMessage,
  NewAsset,
  ProgressAnswer,
  ProgressReport,
  WorkerLink,
  WriteOptions,
} from "./worker-requests.js";
export {
  CallbackState,
  JobEventKind,
  JobStatus,
  MessageLevel,
  StopReason,
} from "./gen/jobwarden/v1/job_pb.js";
export type { Asset, BatchCounts, Job, JobError, JobEvent, Lifecycle, Progress } from "./gen/jobwarden/v1/job_pb.js";
export { ErrorReason } from "./gen/jobwarden/v1/error_reason_pb.js";
export type { JobClaim } from "./gen/jobwarden/v1/worker_service_pb.js";
