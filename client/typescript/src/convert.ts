/** Small conversions between what callers pass and what the messages hold. */
import type { DescEnum, JsonObject, JsonValue } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Duration, Timestamp } from "@bufbuild/protobuf/wkt";
import { randomUUID } from "node:crypto";
import {
  JobEventKindSchema,
  JobStatusSchema,
  MessageLevelSchema,
  StopReasonSchema,
} from "./gen/jobwarden/v1/job_pb.js";
import type { JobEventKind, JobStatus, MessageLevel, StopReason } from "./gen/jobwarden/v1/job_pb.js";

/** The largest integer a double holds exactly: numbers beyond it are refused by the server. */
export const MAX_SAFE = Number.MAX_SAFE_INTEGER;

/** The caller's idempotency key, or a new one (so the SDK's own retries of a call stay idempotent). */
export function idempotencyKey(given?: string): string {
  return given !== undefined && given !== "" ? given : randomUUID();
}

/**
 * Checks that `value` can travel as a `google.protobuf.Struct`/`Value`: plain JSON, numbers finite and
 * within ±(2^53 - 1). Throws a `RangeError`/`TypeError` naming the path; nothing is sent then.
 */
export function checkJson(value: unknown, path: string): JsonValue {
  if (value === null || typeof value === "string" || typeof value === "boolean") {
    return value;
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new RangeError(`${path}: ${value} is not a JSON number`);
    }
    if (Math.abs(value) > MAX_SAFE) {
      throw new RangeError(`${path}: ${value} is beyond ±(2^53 - 1); send it as a string`);
    }
    return value;
  }
  if (Array.isArray(value)) {
    return value.map((item: unknown, i) => checkJson(item, `${path}[${i}]`));
  }
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    const out: JsonObject = {};
    for (const [key, item] of Object.entries(value)) {
      out[key] = checkJson(item, `${path}.${key}`);
    }
    return out;
  }
  throw new TypeError(`${path}: a ${typeof value} is not JSON`);
}

/** As {@link checkJson}, for a value that must be an object (parameters, results). */
export function checkJsonObject(value: Record<string, unknown> | undefined, path: string): JsonObject {
  return checkJson(value ?? {}, path) as JsonObject;
}

/** A name (any case, with or without its prefix, e.g. "queued" or "JOB_STATUS_QUEUED") or a value. */
function enumValue<T extends number>(schema: DescEnum, given: T | string, what: string): T {
  if (typeof given === "number") {
    return given;
  }
  const wanted = given.toUpperCase();
  const found = schema.values.find((v) => v.localName === wanted || v.name === wanted);
  if (found === undefined || found.number === 0) {
    throw new RangeError(`unknown ${what} ${JSON.stringify(given)}`);
  }
  return found.number as T;
}

export const jobStatus = (s: JobStatus | string): JobStatus => enumValue(JobStatusSchema, s, "job status");
export const stopReason = (s: StopReason | string): StopReason => enumValue(StopReasonSchema, s, "stop reason");
export const eventKind = (s: JobEventKind | string): JobEventKind => enumValue(JobEventKindSchema, s, "event kind");
export const messageLevel = (s: MessageLevel | string): MessageLevel =>
  enumValue(MessageLevelSchema, s, "message level");

/** A `Date` as a Timestamp (undefined stays unset). */
export function timestamp(date: Date | undefined): Timestamp | undefined {
  return date === undefined ? undefined : timestampFromDate(date);
}

/** Milliseconds as a Duration (undefined stays unset). */
export function duration(ms: number | undefined): Duration | undefined {
  return ms === undefined ? undefined : durationFromMs(ms);
}

/** An int64 field from a number or bigint. */
export function int64(value: number | bigint | undefined): bigint {
  return value === undefined ? 0n : BigInt(value);
}
