/**
 * Unit tests of the Work session link against an in-memory WorkerService (connect's router transport):
 * what a new session says first, and steps resent with their request ids after the stream breaks.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { Client, DOMAIN, LeaseLost } from "@jobwarden/client";
import type { JobClaim } from "@jobwarden/client";
import { ErrorInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";
import { JobSchema } from "../src/gen/jobwarden/v1/job_pb.js";
import { JobClaimSchema, WorkerService, WorkResponseSchema } from "../src/gen/jobwarden/v1/worker_service_pb.js";
import type { WorkRequest } from "../src/gen/jobwarden/v1/worker_service_pb.js";
import { SessionLink } from "../src/session.js";
import type { SessionOwner } from "../src/session.js";

type Reply = MessageInitShape<typeof WorkResponseSchema>;

/** A WorkerService whose n-th Work session is `sessions[n]`: given each request, what to answer (or throw). */
function clientOf(sessions: ((request: WorkRequest) => Reply | undefined)[], seen: WorkRequest[][]): Client {
  const transport = createRouterTransport(({ service }) => {
    service(WorkerService, {
      async *work(requests) {
        const answer = sessions[seen.length];
        const mine: WorkRequest[] = [];
        seen.push(mine);
        if (answer === undefined) {
          throw new ConnectError("no more sessions", Code.Unavailable);
        }
        for await (const request of requests) {
          mine.push(request);
          const reply = answer(request);
          if (reply !== undefined) {
            yield create(WorkResponseSchema, reply);
          }
        }
      },
    });
  });
  return new Client("in-memory", { transport });
}

class Owner implements SessionOwner {
  claims: JobClaim[] = [];
  cancelled: string[] = [];
  lost: string[] = [];
  freeSlots(): number {
    return 2 - this.claims.length;
  }
  running(): [string, string][] {
    return this.claims.map((c) => [c.job?.id ?? "", c.leaseToken]);
  }
  onClaim(claim: JobClaim): void {
    this.claims.push(claim);
  }
  onCancel(jobId: string): void {
    this.cancelled.push(jobId);
  }
  onLost(jobId: string): void {
    this.lost.push(jobId);
  }
}

const claim = create(JobClaimSchema, { job: create(JobSchema, { id: "j1", jobType: "t" }), leaseToken: "L1" });

function ackAll(request: WorkRequest): Reply {
  return {
    acks: request.steps.map((s) => ({
      stepId: s.stepId,
      status: { code: 0 },
      result: s.step.case === "progress" ? { case: "progress" as const, value: { cancelRequested: true } } : { case: undefined },
    })),
  };
}

describe("SessionLink", () => {
  test("a step unanswered when the stream broke is resent with its request id; the new session lists held jobs first", async () => {
    const seen: WorkRequest[][] = [];
    const client = clientOf(
      [
        // Session 1: pushes a claim, then breaks when the first step arrives (unanswered).
        (request) => {
          if (request.start !== undefined) {
            return { claims: [claim] };
          }
          if (request.steps.length > 0) {
            throw new ConnectError("connection reset", Code.Unavailable);
          }
          return undefined;
        },
        // Session 2: answers every step.
        ackAll,
      ],
      seen,
    );
    const owner = new Owner();
    const link = new SessionLink(client, owner, { workerId: "w1", jobTypes: ["t"], leaseDurationMs: 30_000 });
    const running = link.run();
    await waitFor(() => owner.claims.length === 1);
    const answer = await link.reportProgress("j1", "L1", { percent: 10 });
    assert.equal(answer.cancelRequested, true);
    link.close();
    await running;

    assert.equal(seen.length, 2);
    const [first, second] = seen;
    assert.ok(first !== undefined && second !== undefined);
    assert.equal(first[0]?.start?.workerId, "w1");
    assert.equal(first[0].start.briefAcks, true); // the worker reads no finished job back
    assert.equal(first[0].credits, 2);
    // The new session starts by listing the job held from the first one, and by granting what is free.
    assert.deepEqual(second[0]?.holding.map((h) => [h.jobId, h.leaseToken]), [["j1", "L1"]]);
    assert.equal(second[0].credits, 1);
    const sentFirst = first.flatMap((r) => r.steps);
    const sentSecond = second.flatMap((r) => r.steps);
    assert.equal(sentFirst.length, 1);
    assert.equal(sentSecond.length, 1);
    const progress = (r: (typeof sentFirst)[number] | undefined) => (r?.step.case === "progress" ? r.step.value.requestId : undefined);
    assert.ok(progress(sentFirst[0]) !== undefined);
    assert.equal(progress(sentSecond[0]), progress(sentFirst[0]));
  });

  test("a refused step fails alone, typed; cancel_job_ids and lost_job_ids reach the owner", async () => {
    const seen: WorkRequest[][] = [];
    const client = clientOf(
      [
        (request) => {
          if (request.start !== undefined) {
            return { cancelJobIds: ["j7"], lostJobIds: ["j8"] };
          }
          if (request.steps.length === 0) {
            return undefined;
          }
          return {
            acks: request.steps.map((s) => ({
              stepId: s.stepId,
              status: {
                code: Code.Aborted,
                message: "lease lost",
                details: [anyPack(ErrorInfoSchema, create(ErrorInfoSchema, { reason: "LEASE_LOST", domain: DOMAIN }))],
              },
            })),
          };
        },
      ],
      seen,
    );
    const owner = new Owner();
    const link = new SessionLink(client, owner, { workerId: "w1", jobTypes: ["t"], leaseDurationMs: 30_000 });
    const running = link.run();
    await assert.rejects(link.failJob("j8", "L8", { message: "x" }), LeaseLost);
    await waitFor(() => owner.lost.length === 1);
    assert.deepEqual([owner.cancelled, owner.lost], [["j7"], ["j8"]]);
    link.close();
    await running;
    assert.equal(seen.length, 1);
  });
});

/** Resolves once `condition()` holds (the link's callbacks run as the in-memory stream delivers). */
async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
