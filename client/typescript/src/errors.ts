/**
 * The errors the SDK throws, decoded from failed calls.
 *
 * Every failed call becomes one {@link JobwardenError}. The server attaches a `google.rpc.ErrorInfo`
 * (domain `jobwarden.dev`) to every non-OK status; its `reason` picks the class, so callers catch what
 * happened, not a status code:
 *
 *     try { await client.cancelJob(id); } catch (err) { if (err instanceof InvalidTransition) ... }
 *
 * When no ErrorInfo is present (a proxy, a client-side deadline, a refused connection) the class is
 * chosen by the status code instead ({@link Unavailable}, {@link DeadlineExceeded}, ...). Reason classes
 * extend their code's class where the two differ, so `instanceof Unavailable` also holds for
 * {@link ShuttingDown}, and `instanceof InvalidArgument` for {@link TooLarge}.
 *
 * The Python SDK's `jobwarden.errors` has the same classes under the same names.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import type { Status } from "./gen/google/rpc/status_pb.js";
import { ErrorReason } from "./gen/jobwarden/v1/error_reason_pb.js";

export { Code };

/** The `ErrorInfo.domain` of every error the jobwarden server sends. */
export const DOMAIN = "jobwarden.dev";

/** One invalid request field, from `google.rpc.BadRequest`. */
export interface FieldViolation {
  /** Path of the field, for example `"parameters"` or `"requests[2].labels.team"`. */
  readonly field: string;
  /** Why the value was refused. */
  readonly description: string;
}

/** What a failed call said, beyond its code and message. */
export interface ErrorDetails {
  /** `ErrorInfo.reason` (an `ErrorReason` name without its prefix), when the server sent one. */
  reason?: string | undefined;
  /** `ErrorInfo.metadata`, for example `{ from: "QUEUED", to: "COMPLETED" }`. */
  metadata?: Readonly<Record<string, string>> | undefined;
  /** The `BadRequest` field violations. */
  fieldViolations?: readonly FieldViolation[] | undefined;
  /** How long the server asked the caller to wait before retrying (`RetryInfo`), in milliseconds. */
  retryDelayMs?: number | undefined;
  /** The error this one was decoded from. */
  cause?: unknown;
}

/**
 * Root of every error thrown by the SDK.
 *
 * `code` is the gRPC status code (connect's `Code`, numbered as gRPC numbers them), `reason` the
 * server's `ErrorInfo.reason` (or the class default), `metadata`, `fieldViolations` and `retryDelayMs`
 * the status details.
 */
export class JobwardenError extends Error {
  /** The reason a class stands for; "" for classes chosen by code alone. */
  static readonly reasonName: string = "";
  /** The code a class stands for when built without one. */
  static readonly defaultCode: Code = Code.Unknown;

  readonly code: Code;
  readonly reason: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly fieldViolations: readonly FieldViolation[];
  readonly retryDelayMs: number | undefined;

  constructor(message = "", code?: Code, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    const cls = new.target;
    this.name = cls.name;
    this.code = code ?? cls.defaultCode;
    this.reason = details.reason ?? cls.reasonName;
    this.metadata = { ...(details.metadata ?? {}) };
    this.fieldViolations = [...(details.fieldViolations ?? [])];
    this.retryDelayMs = details.retryDelayMs;
  }

  /**
   * Whether the same call may succeed later unchanged: the UNAVAILABLE family (store busy, shutting
   * down, watcher cut off, no connection). DEADLINE_EXCEEDED is not: the call may have taken effect.
   */
  get retryable(): boolean {
    return this.code === Code.Unavailable;
  }
}

// Code-level classes: chosen by status code when there is no ErrorInfo (or an unknown reason). Where a
// reason has the same meaning as its code (NOT_FOUND, ...), one class serves as both.

/** The call was cancelled, usually by the caller. */
export class Cancelled extends JobwardenError {
  static override readonly defaultCode = Code.Canceled;
}
/** The server or the transport failed without saying why. */
export class Unknown extends JobwardenError {
  static override readonly defaultCode = Code.Unknown;
}
/** A request field is malformed; `fieldViolations` names it. */
export class InvalidArgument extends JobwardenError {
  static override readonly reasonName = ErrorReason[ErrorReason.INVALID_ARGUMENT];
  static override readonly defaultCode = Code.InvalidArgument;
}
/** The call's deadline passed before the server answered; it may or may not have taken effect. */
export class DeadlineExceeded extends JobwardenError {
  static override readonly defaultCode = Code.DeadlineExceeded;
}
/** The job, asset or lifecycle does not exist, or belongs to another owner. */
export class NotFound extends JobwardenError {
  static override readonly reasonName = ErrorReason[ErrorReason.NOT_FOUND];
  static override readonly defaultCode = Code.NotFound;
}
/** The resource already exists. */
export class AlreadyExists extends JobwardenError {
  static override readonly defaultCode = Code.AlreadyExists;
}
/** The caller's role does not allow this call. */
export class PermissionDenied extends JobwardenError {
  static override readonly reasonName = ErrorReason[ErrorReason.PERMISSION_DENIED];
  static override readonly defaultCode = Code.PermissionDenied;
}
/** A server-side limit is exhausted (or a message exceeded the size limit). */
export class ResourceExhausted extends JobwardenError {
  static override readonly reasonName = ErrorReason[ErrorReason.RESOURCE_EXHAUSTED];
  static override readonly defaultCode = Code.ResourceExhausted;
}
/** The system is not in a state that allows the call. */
export class FailedPrecondition extends JobwardenError {
  static override readonly defaultCode = Code.FailedPrecondition;
}
/** The call lost a race; re-read and try again. */
export class Aborted extends JobwardenError {
  static override readonly defaultCode = Code.Aborted;
}
/** A value is outside its valid range. */
export class OutOfRange extends JobwardenError {
  static override readonly defaultCode = Code.OutOfRange;
}
/** The server does not implement this call (an older server?). */
export class Unimplemented extends JobwardenError {
  static override readonly defaultCode = Code.Unimplemented;
}
/** An unexpected server fault; the server logged it. */
export class Internal extends JobwardenError {
  static override readonly reasonName = ErrorReason[ErrorReason.INTERNAL];
  static override readonly defaultCode = Code.Internal;
}
/** The server cannot be reached or cannot serve now; retry later. */
export class Unavailable extends JobwardenError {
  static override readonly defaultCode = Code.Unavailable;
}
/** Unrecoverable data loss or corruption. */
export class DataLoss extends JobwardenError {
  static override readonly defaultCode = Code.DataLoss;
}
/** The call carries no credentials, or unknown ones. */
export class Unauthenticated extends JobwardenError {
  static override readonly reasonName = ErrorReason[ErrorReason.UNAUTHENTICATED];
  static override readonly defaultCode = Code.Unauthenticated;
}

// Reason-level classes whose meaning is narrower than their code's.

/** The job's lifecycle table does not allow this status change; the job is unchanged. */
export class InvalidTransition extends FailedPrecondition {
  static override readonly reasonName = ErrorReason[ErrorReason.INVALID_TRANSITION];
  /** The job's status when the change was refused (`metadata.from`), or "". */
  get fromStatus(): string {
    return this.metadata.from ?? "";
  }
  /** The status the call tried to move the job to (`metadata.to`), or "". */
  get toStatus(): string {
    return this.metadata.to ?? "";
  }
}
/** The job's lifecycle table is missing from the server's config (an operator must add it back). */
export class LifecycleNotConfigured extends FailedPrecondition {
  static override readonly reasonName = ErrorReason[ErrorReason.LIFECYCLE_NOT_CONFIGURED];
  /** The missing table's name (`metadata.lifecycle`), or "". */
  get lifecycle(): string {
    return this.metadata.lifecycle ?? "";
  }
}
/** The call needs a job that has ended (retryJob, deleteJob), and this one has not: cancel it first. */
export class JobNotTerminal extends FailedPrecondition {
  static override readonly reasonName = ErrorReason[ErrorReason.JOB_NOT_TERMINAL];
  /** The job's status when the call was refused (`metadata.status`), or "". */
  get status(): string {
    return this.metadata.status ?? "";
  }
}
/** The lease token is stale or unknown: the job was rescued, finished or never leased to you. */
export class LeaseLost extends Aborted {
  static override readonly reasonName = ErrorReason[ErrorReason.LEASE_LOST];
}
/** The job changed since the etag sent was read. */
export class EtagMismatch extends Aborted {
  static override readonly reasonName = ErrorReason[ErrorReason.ETAG_MISMATCH];
}
/** A request_id was reused with different request content. */
export class RequestIdMismatch extends AlreadyExists {
  static override readonly reasonName = ErrorReason[ErrorReason.REQUEST_ID_MISMATCH];
}
/** A progress percent outside 0..100, or done greater than total. */
export class ProgressOutOfRange extends InvalidArgument {
  static override readonly reasonName = ErrorReason[ErrorReason.PROGRESS_OUT_OF_RANGE];
}
/** A string, map or message exceeds a size limit. */
export class TooLarge extends InvalidArgument {
  static override readonly reasonName = ErrorReason[ErrorReason.TOO_LARGE];
}
/** The server refuses to call this callback_url, or has no signing secret for the caller's owner. */
export class CallbackTargetRefused extends InvalidArgument {
  static override readonly reasonName = ErrorReason[ErrorReason.CALLBACK_TARGET_REFUSED];
}
/** The page token is malformed or belongs to another query. */
export class InvalidPageToken extends InvalidArgument {
  static override readonly reasonName = ErrorReason[ErrorReason.INVALID_PAGE_TOKEN];
}
/** The server's database is busy or unreachable; retry later. */
export class StoreUnavailable extends Unavailable {
  static override readonly reasonName = ErrorReason[ErrorReason.STORE_UNAVAILABLE];
}
/** The server is shutting down; retry later or on another replica. */
export class ShuttingDown extends Unavailable {
  static override readonly reasonName = ErrorReason[ErrorReason.SHUTTING_DOWN];
}
/** The watch fell too far behind and was cut off; resume from the last sequence seen. */
export class WatcherTooSlow extends Unavailable {
  static override readonly reasonName = ErrorReason[ErrorReason.WATCHER_TOO_SLOW];
}

type ErrorClass = typeof JobwardenError;

const CLASSES: readonly ErrorClass[] = [
  Cancelled,
  Unknown,
  InvalidArgument,
  DeadlineExceeded,
  NotFound,
  AlreadyExists,
  PermissionDenied,
  ResourceExhausted,
  FailedPrecondition,
  Aborted,
  OutOfRange,
  Unimplemented,
  Internal,
  Unavailable,
  DataLoss,
  Unauthenticated,
  InvalidTransition,
  LifecycleNotConfigured,
  JobNotTerminal,
  LeaseLost,
  EtagMismatch,
  RequestIdMismatch,
  ProgressOutOfRange,
  TooLarge,
  CallbackTargetRefused,
  InvalidPageToken,
  StoreUnavailable,
  ShuttingDown,
  WatcherTooSlow,
];

/** The class of each reason the server sends, keyed by the generated `ErrorReason` enum's names. */
export const BY_REASON: ReadonlyMap<string, ErrorClass> = new Map(
  CLASSES.filter((cls) => cls.reasonName !== "").map((cls) => [cls.reasonName, cls]),
);

// The code-level class of each code: the root of the hierarchy for that code (a reason class shares
// its parent's code and is not listed here).
const BY_CODE: ReadonlyMap<Code, ErrorClass> = new Map(
  CLASSES.filter((cls) => Object.getPrototypeOf(cls) === JobwardenError).map((cls) => [cls.defaultCode, cls]),
);

const CODES: ReadonlyMap<number, Code> = new Map(
  Object.values(Code)
    .filter((v): v is Code => typeof v === "number")
    .map((code) => [code as number, code]),
);

/** Builds the class that `reason` (in our domain) or else `code` picks. */
function typed(code: Code, message: string, details: ErrorDetails, domain: string): JobwardenError {
  // Reasons mean something only in our own domain: a proxy's ErrorInfo keeps its reason string but
  // must not be mistaken for one of ours.
  const byReason = details.reason !== undefined && domain === DOMAIN ? BY_REASON.get(details.reason) : undefined;
  const cls = byReason ?? BY_CODE.get(code) ?? Unknown;
  return new cls(message, code, details);
}

interface Decoded {
  details: ErrorDetails;
  domain: string;
}

function decode(find: <Desc extends DescMessage>(schema: Desc) => MessageShape<Desc>[]): Decoded {
  const details: ErrorDetails = {};
  let domain = "";
  const [info] = find(ErrorInfoSchema);
  if (info !== undefined) {
    domain = info.domain;
    details.reason = info.reason;
    details.metadata = { ...info.metadata };
  }
  details.fieldViolations = find(BadRequestSchema).flatMap((bad) =>
    bad.fieldViolations.map((v) => ({ field: v.field, description: v.description })),
  );
  const [retry] = find(RetryInfoSchema);
  if (retry?.retryDelay !== undefined) {
    details.retryDelayMs = durationMs(retry.retryDelay);
  }
  return { details, domain };
}

/**
 * Decodes a `google.rpc.Status` carried inside a reply (one per item of CreateJobs, one per step of a
 * Work session) exactly as the same status ending a call would be.
 */
export function fromStatus(status: Status): JobwardenError {
  const { details, domain } = decode((schema) =>
    status.details.flatMap((any) => {
      const unpacked = anyUnpack(any, schema);
      return unpacked === undefined ? [] : [unpacked];
    }),
  );
  const code = CODES.get(status.code) ?? Code.Unknown;
  return typed(code, status.message, details, domain);
}

// A connection that drops under a call (the server killed, a proxy restarting, a reset) is what gRPC
// itself reports as UNAVAILABLE, and what a retry can cure; Node's HTTP/2 stack reports it as one of
// these system errors, which connect maps to ABORTED or INTERNAL. Only errors without ErrorInfo are
// remapped: a status the server sent keeps its code.
const CONNECTION_LOST = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "ERR_STREAM_DESTROYED",
  "ERR_STREAM_PREMATURE_CLOSE",
  "ERR_HTTP2_INVALID_STREAM",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_STREAM_CANCEL",
]);

// A TLS handshake that fails (a certificate not trusted, a name that does not match, no client
// certificate for a mutual-TLS server) never reaches the server either: gRPC says UNAVAILABLE.
const TLS_FAILURE = /^(ERR_SSL_|ERR_TLS_|UNABLE_TO_|CERT_|DEPTH_ZERO_SELF_SIGNED|SELF_SIGNED_CERT)/;

const PEER_RESET = /^http\/2 stream closed with error code (CANCEL|INTERNAL_ERROR|NO_ERROR|REFUSED_STREAM)|premature end|missing (grpc-)?status/i;

function lostConnection(err: unknown): boolean {
  for (let cause = err, depth = 0; cause instanceof Error && depth < 8; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === "string" && (CONNECTION_LOST.has(code) || TLS_FAILURE.test(code))) {
      return true;
    }
    cause = cause.cause;
  }
  return false;
}

/**
 * Decodes whatever a call threw into the matching {@link JobwardenError}; an error that is one already
 * is returned as it is. Never throws.
 */
export function fromError(err: unknown): JobwardenError {
  if (err instanceof JobwardenError) {
    return err;
  }
  const connectError = ConnectError.from(err);
  const { details, domain } = decode((schema) => connectError.findDetails(schema));
  details.cause = err;
  let code = connectError.code;
  if (details.reason === undefined && code !== Code.Unavailable && code !== Code.Canceled && lostConnection(err)) {
    code = Code.Unavailable;
  }
  // A stream the server reset without a status (a server stopping resets the streams opened as it
  // stopped), or a response cut short, is a connection loss too: no status ever arrived. A call the
  // caller aborted never gets here with these messages.
  if (details.reason === undefined && PEER_RESET.test(connectError.rawMessage)) {
    code = Code.Unavailable;
  }
  return typed(code, connectError.rawMessage, details, domain);
}
