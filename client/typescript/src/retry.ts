/** How long the SDK waits before trying again, and the retry of unary calls the server did not process. */
import { setTimeout as sleep } from "node:timers/promises";
import { DeadlineExceeded, fromError } from "./errors.js";
import type { JobwardenError } from "./errors.js";

/** The longest wait between two reopenings of a stream, unless told otherwise. */
export const MAX_BACKOFF_MS = 30_000;

/**
 * Exponential in the attempt (from `baseMs`), capped at `capMs`, with jitter so a fleet does not retry
 * in lockstep (as the Python SDK's `backoff`).
 */
export function backoff(attempt: number, baseMs = 500, capMs = MAX_BACKOFF_MS, random = Math.random): number {
  const delay = Math.min(capMs, baseMs * 2 ** attempt);
  return delay * (0.5 + random() / 2);
}

/**
 * The retry policy of unary calls, as the Python SDK's gRPC service config: up to 4 attempts, backoff
 * from 200 ms doubling to at most 2 s, only for UNAVAILABLE (the server never processed the call or
 * said "try again"). Every mutating call carries a request_id made once per call, so even a retry of a
 * call that did take effect is answered with its first result.
 */
export interface RetryPolicy {
  maxAttempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
}

export const UNARY_RETRY: RetryPolicy = { maxAttempts: 4, initialBackoffMs: 200, maxBackoffMs: 2_000 };

/**
 * Runs `attempt` until it succeeds, fails with an error that is not retryable, runs out of attempts,
 * or would outlast `timeoutMs` (all attempts together). Each attempt is given the time that is left.
 * A server's RetryInfo delay is honoured (within what is left).
 *
 * @throws JobwardenError the last attempt's error, decoded.
 */
export async function withRetry<T>(
  attempt: (timeoutMs: number) => Promise<T>,
  timeoutMs: number,
  policy: RetryPolicy = UNARY_RETRY,
  signal?: AbortSignal,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let n = 0; ; n++) {
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new DeadlineExceeded("deadline exceeded while retrying");
    }
    let error: JobwardenError;
    try {
      return await attempt(left);
    } catch (err) {
      error = fromError(err);
    }
    if (!error.retryable || n + 1 >= policy.maxAttempts || signal?.aborted === true) {
      throw error;
    }
    const delay =
      error.retryDelayMs ?? Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** n) * Math.random();
    if (Date.now() + delay >= deadline) {
      throw error;
    }
    await sleep(delay, undefined, signal === undefined ? undefined : { signal });
  }
}
