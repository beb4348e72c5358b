/** Unit tests of what is refused before anything is sent: values that are not JSON, reasons a worker may not give. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { PermanentError, StopReason } from "@jobwarden/client";
import { checkJson, jobStatus } from "../src/convert.js";
import { JobStatus } from "../src/gen/jobwarden/v1/job_pb.js";

describe("checkJson", () => {
  test("plain JSON passes unchanged, integers up to ±(2^53 - 1) included", () => {
    const value = { a: [1, "two", null, true], b: { c: Number.MAX_SAFE_INTEGER, d: -Number.MAX_SAFE_INTEGER, e: 0.5 } };
    assert.deepEqual(checkJson(value, "parameters"), value);
  });

  test("a number beyond ±(2^53 - 1), or not finite, is refused naming its path", () => {
    assert.throws(() => checkJson({ ids: [1, 2 ** 53] }, "parameters"), { name: "RangeError", message: /^parameters\.ids\[1\]: / });
    assert.throws(() => checkJson({ x: Number.NaN }, "result"), { name: "RangeError", message: /^result\.x: / });
  });

  test("what is not JSON (a Date, a Map, a function, undefined) is refused", () => {
    for (const bad of [new Date(0), new Map(), () => 1, undefined, 1n]) {
      assert.throws(() => checkJson({ v: bad }, "parameters"), { name: "TypeError", message: /^parameters\.v: / });
    }
  });
});

describe("names and reasons", () => {
  test("a status is taken by value or by name, in any case, with or without its prefix", () => {
    assert.equal(jobStatus("queued"), JobStatus.QUEUED);
    assert.equal(jobStatus("JOB_STATUS_RUNNING"), JobStatus.RUNNING);
    assert.equal(jobStatus(JobStatus.FAILED), JobStatus.FAILED);
    assert.throws(() => jobStatus("DONE"), RangeError);
    assert.throws(() => jobStatus("UNSPECIFIED"), RangeError);
  });

  test("PermanentError takes only the stop reasons a worker may give", () => {
    assert.equal(new PermanentError("x", { stopReason: "provider_error" }).stopReason, StopReason.PROVIDER_ERROR);
    assert.throws(() => new PermanentError("x", { stopReason: "USER_CANCELLED" }), RangeError);
    assert.throws(() => new PermanentError("x", { stopReason: StopReason.LEASE_EXPIRED }), RangeError);
  });
});
