/**
 * SDK objects as the JSON shapes scenario expectations are written against (README: "Views"), built
 * the same as the Python runner's views: times and generated ids other than the job's own left out.
 */
import { CallbackState, JobEventKind, JobStatus, MessageLevel, StopReason } from "../../src/index.js";
import type { Asset, Job, JobEvent, JobwardenError } from "../../src/index.js";
import { Code } from "../../src/index.js";

export type View = Record<string, unknown>;

const status = (value: JobStatus): string => JobStatus[value];

/** A status's name ("QUEUED"). */
export const statusName = (value: JobStatus): string => status(value);
const stopReason = (value: StopReason): string => StopReason[value];

/** A job; its job type without the scenario's prefix (so "work", not "watch-resume.work"). */
export function job(value: Job, prefix: string): View {
  const progress = value.progress;
  return {
    id: value.id,
    owner: value.owner,
    job_type: value.jobType.startsWith(prefix) ? value.jobType.slice(prefix.length) : value.jobType,
    lifecycle: value.lifecycle,
    status: status(value.status),
    attempt: value.attempt,
    max_attempts: value.maxAttempts,
    priority: value.priority,
    cancel_requested: value.cancelRequested,
    stop_reason: stopReason(value.stopReason),
    progress: {
      percent: progress?.percent ?? 0,
      message: progress?.message ?? "",
      done: Number(progress?.done ?? 0n),
      total: Number(progress?.total ?? 0n),
    },
    parameters: value.parameters ?? {},
    result: value.result ?? null,
    error: value.error === undefined
      ? null
      : { message: value.error.message, reason: value.error.reason, retryable: value.error.retryable },
    labels: { ...value.labels },
    parent: value.parentId,
    retry_of: value.retryOf,
    batch: value.batch === undefined
      ? null
      : {
          total: value.batch.total,
          created: value.batch.created,
          queued: value.batch.queued,
          running: value.batch.running,
          completed: value.batch.completed,
          partial: value.batch.partial,
          failed: value.batch.failed,
          cancelled: value.batch.cancelled,
          expired: value.batch.expired,
        },
    message_count: Number(value.messageCount),
    worker_id: value.workerId,
    // The API's UNSPECIFIED callback state is "no callback": the Python SDK's NONE.
    callback: {
      state: value.callbackState === CallbackState.UNSPECIFIED ? "NONE" : CallbackState[value.callbackState],
      attempts: value.callbackAttempts,
    },
  };
}

/** The status an event moved its job to (created and transition events), if any. */
export function eventTo(value: JobEvent): string | undefined {
  if (value.kind.case === "created") {
    return status(value.kind.value.status);
  }
  if (value.kind.case === "transition") {
    return status(value.kind.value.toStatus);
  }
  return undefined;
}

const KINDS: Partial<Record<NonNullable<JobEvent["kind"]["case"]>, string>> = {
  created: "created",
  transition: "transition",
  progress: "progress",
  assetAdded: "asset_added",
  log: "log",
  cancelRequested: "cancel_requested",
  callbackAttempt: "callback_attempt",
};

/** An event: what happened, without its time; keys that do not apply to its kind are left out. */
export function event(value: JobEvent): View {
  const view: View = {
    sequence: Number(value.sequence),
    kind: value.kind.case === undefined ? "unknown" : (KINDS[value.kind.case] ?? "unknown"),
    actor: value.actor,
  };
  const kind = value.kind;
  switch (kind.case) {
    case "created":
      view.to = status(kind.value.status);
      break;
    case "transition":
      view.from = status(kind.value.fromStatus);
      view.to = status(kind.value.toStatus);
      if (kind.value.reason !== "") {
        view.reason = kind.value.reason;
      }
      view.stop_reason = stopReason(kind.value.stopReason);
      if (kind.value.forced || kind.value.bypassedTable) {
        view.forced = kind.value.forced;
        view.bypassed_table = kind.value.bypassedTable;
      }
      break;
    case "progress":
      view.percent = kind.value.percent;
      break;
    case "assetAdded":
      view.asset_type = kind.value.assetType;
      break;
    case "log":
      // UNSPECIFIED (or a level newer than the SDK) reads as INFO, as in the Python SDK.
      view.level = kind.value.level === MessageLevel.UNSPECIFIED ? "INFO" : MessageLevel[kind.value.level];
      if (kind.value.message !== "") {
        view.message = kind.value.message;
      }
      break;
    case "cancelRequested":
      if (kind.value.reason !== "") {
        view.reason = kind.value.reason;
      }
      break;
    case "callbackAttempt":
      view.http_status = kind.value.httpStatus;
      break;
    default:
      break;
  }
  return view;
}

/** An asset, without its generated id and time. */
export function asset(value: Asset): View {
  return {
    asset_type: value.assetType,
    uri: value.uri,
    size_bytes: Number(value.sizeBytes),
    content_type: value.contentType,
    metadata: { ...value.metadata },
  };
}

/** gRPC's name of a status code ("FAILED_PRECONDITION"), from connect's ("FailedPrecondition"). */
export function codeName(code: Code): string {
  if (code === Code.Canceled) {
    return "CANCELLED"; // gRPC spells it with two Ls
  }
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** A refused call: the gRPC code's name, the ErrorInfo reason and metadata. */
export function error(err: JobwardenError): View {
  return { code: codeName(err.code), reason: err.reason, metadata: { ...err.metadata }, message: err.message };
}

export { JobEventKind };
