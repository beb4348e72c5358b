/** Unit tests of error decoding: status details into the class of their reason (or code). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { anyPack, durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  Aborted,
  BY_REASON,
  DOMAIN,
  ErrorReason,
  FailedPrecondition,
  fromError,
  fromStatus,
  InvalidArgument,
  InvalidTransition,
  JobwardenError,
  LeaseLost,
  ShuttingDown,
  TooLarge,
  Unavailable,
  Unknown,
} from "@jobwarden/client";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../src/gen/google/rpc/status_pb.js";
import { ErrorReasonSchema } from "../src/gen/jobwarden/v1/error_reason_pb.js";

function info(reason: string, metadata: Record<string, string> = {}, domain = DOMAIN) {
  return create(ErrorInfoSchema, { reason, domain, metadata });
}

describe("error classes", () => {
  test("every ErrorReason of the protos has its class, named after it", () => {
    const reasons = ErrorReasonSchema.values.filter((v) => v.number !== 0).map((v) => v.localName);
    assert.deepEqual([...BY_REASON.keys()].sort(), [...reasons].sort());
    for (const [reason, cls] of BY_REASON) {
      const err = new cls("m");
      assert.equal(err.reason, reason);
      assert.ok(err instanceof JobwardenError);
      // The class name is the reason in PascalCase (INVALID_TRANSITION: InvalidTransition).
      assert.equal(cls.name.toLowerCase(), reason.replaceAll("_", "").toLowerCase());
    }
  });

  test("reason classes extend their code's class, and carry its code", () => {
    assert.ok(new InvalidTransition() instanceof FailedPrecondition);
    assert.ok(new LeaseLost() instanceof Aborted);
    assert.ok(new TooLarge() instanceof InvalidArgument);
    assert.ok(new ShuttingDown() instanceof Unavailable);
    assert.equal(new ShuttingDown().code, Code.Unavailable);
    assert.equal(new ShuttingDown().retryable, true);
    assert.equal(new LeaseLost().retryable, false);
  });
});

describe("fromStatus (a status inside a reply)", () => {
  test("ErrorInfo picks the class; metadata, field violations and retry delay are kept", () => {
    const status = create(StatusSchema, {
      code: Code.FailedPrecondition,
      message: "QUEUED -> COMPLETED is not allowed",
      details: [
        anyPack(ErrorInfoSchema, info(ErrorReason[ErrorReason.INVALID_TRANSITION], { from: "QUEUED", to: "COMPLETED" })),
        anyPack(BadRequestSchema, create(BadRequestSchema, { fieldViolations: [{ field: "status", description: "no edge" }] })),
        anyPack(RetryInfoSchema, create(RetryInfoSchema, { retryDelay: durationFromMs(1500) })),
      ],
    });
    const err = fromStatus(status);
    assert.ok(err instanceof InvalidTransition);
    assert.equal(err.code, Code.FailedPrecondition);
    assert.equal(err.message, "QUEUED -> COMPLETED is not allowed");
    assert.equal(err.fromStatus, "QUEUED");
    assert.equal(err.toStatus, "COMPLETED");
    assert.deepEqual(err.fieldViolations, [{ field: "status", description: "no edge" }]);
    assert.equal(err.retryDelayMs, 1500);
  });

  test("a reason from another domain, or an unknown one, falls back to the code", () => {
    const foreign = fromStatus(create(StatusSchema, { code: Code.Aborted, details: [anyPack(ErrorInfoSchema, info("LEASE_LOST", {}, "proxy.example"))] }));
    assert.ok(foreign instanceof Aborted && !(foreign instanceof LeaseLost));
    assert.equal(foreign.reason, "LEASE_LOST");
    const unknown = fromStatus(create(StatusSchema, { code: Code.Unavailable, details: [anyPack(ErrorInfoSchema, info("SOMETHING_NEW"))] }));
    assert.ok(unknown instanceof Unavailable);
    const noCode = fromStatus(create(StatusSchema, { code: 99 }));
    assert.ok(noCode instanceof Unknown);
  });
});

describe("fromError (a failed call)", () => {
  test("the status details of a ConnectError pick the class", () => {
    const raw = new ConnectError("lease is stale", Code.Aborted, undefined, [
      { desc: ErrorInfoSchema, value: { reason: "LEASE_LOST", domain: DOMAIN } },
    ]);
    const err = fromError(raw);
    assert.ok(err instanceof LeaseLost);
    assert.equal(err.message, "lease is stale");
    assert.equal(err.cause, raw);
  });

  test("a dropped connection is Unavailable (retryable), whatever code the HTTP/2 stack gave it", () => {
    const reset = Object.assign(new Error("socket hang up"), { code: "ECONNRESET" });
    for (const raw of [
      new ConnectError("reset", Code.Aborted, undefined, undefined, reset),
      new ConnectError("http/2 stream closed with error code CANCEL (0x8)", Code.Canceled),
      new ConnectError("tls", Code.Internal, undefined, undefined, Object.assign(new Error("x"), { code: "ERR_TLS_CERT_ALTNAME_INVALID" })),
    ]) {
      const err = fromError(raw);
      assert.ok(err instanceof Unavailable, `${raw.message}: ${err.name}`);
      assert.equal(err.retryable, true);
    }
    // A call the caller aborted stays Cancelled, not retryable.
    const aborted = fromError(new ConnectError("This operation was aborted", Code.Canceled));
    assert.equal(aborted.code, Code.Canceled);
    assert.equal(aborted.retryable, false);
  });

  test("an error that is typed already is returned as it is; anything else is Unknown", () => {
    const typed = new ShuttingDown("bye");
    assert.equal(fromError(typed), typed);
    assert.ok(fromError(new Error("boom")) instanceof Unknown);
  });
});
