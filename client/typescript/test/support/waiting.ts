/** Waiting for a condition, bounded by a timeout (never a fixed sleep standing in for one). */
import { setTimeout as sleep } from "node:timers/promises";

/** Resolves as soon as `condition()` holds; rejects after `withinMs`. Prefer awaiting a stream where there is one. */
export async function until(condition: () => boolean | Promise<boolean>, withinMs = 10_000, what = "the condition"): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await condition())) {
    if (Date.now() > deadline) {
      throw new Error(`waited ${withinMs} ms for ${what}`);
    }
    await sleep(20);
  }
}

/** Every item of an async iterable, as an array. */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) {
    out.push(item);
  }
  return out;
}
