/** Comparing what a step produced with what the scenario expects: a recursive subset match. */

/** A step's outcome differs from its expectation; the message names the path that differs. */
export class Mismatch extends Error {
  override name = "Mismatch";
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const show = (value: unknown): string => JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? Number(v) : v));

/**
 * Throws Mismatch unless `actual` matches `expected`. Objects: every expected key must match (keys not
 * mentioned are not compared; a missing actual key is null). Lists: same length, item by item. Numbers
 * by value; booleans only match booleans; anything else: equality.
 */
export function matches(expected: unknown, actual: unknown, path = ""): void {
  if (isObject(expected)) {
    if (!isObject(actual)) {
      throw new Mismatch(`${path || "."}: expected an object ${show(expected)}, got ${show(actual)}`);
    }
    for (const [key, value] of Object.entries(expected)) {
      matches(value, actual[key] ?? null, `${path}.${key}`);
    }
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      throw new Mismatch(`${path || "."}: expected ${expected.length} items ${show(expected)}, got ${show(actual)}`);
    }
    expected.forEach((want: unknown, i) => {
      matches(want, actual[i], `${path}[${i}]`);
    });
    return;
  }
  if (expected !== actual) {
    throw new Mismatch(`${path || "."}: expected ${show(expected)}, got ${show(actual)}`);
  }
}
