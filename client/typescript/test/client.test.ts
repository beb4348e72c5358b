/** The client against a real `jobwarden serve` (SQLite in a temporary directory): every JobService call. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import {
  Client,
  InvalidArgument,
  InvalidTransition,
  JobEventKind,
  JobNotTerminal,
  JobStatus,
  JobwardenError,
  NotFound,
  RequestIdMismatch,
  TooLarge,
} from "@jobwarden/client";
import { Server, tempDir } from "./support/server.js";
import { collect } from "./support/waiting.js";

describe("client against a real server", () => {
  const dir = tempDir();
  let server: Server;
  let client: Client;

  before(async () => {
    server = await Server.start(join(dir.path, "client.db"));
    client = new Client(server.address);
  });

  after(async () => {
    client.close();
    await server.stop();
    dir.remove();
  });

  test("createJob, getJob: the job as created, parameters and labels intact", async () => {
    const job = await client.createJob("image.resize", { width: 640, tags: ["a", "b"], nested: { ok: true } }, {
      labels: { team: "web" },
      priority: 5,
    });
    assert.equal(job.status, JobStatus.QUEUED);
    const got = await client.getJob(job.id);
    assert.deepEqual(got.parameters, { width: 640, tags: ["a", "b"], nested: { ok: true } });
    assert.deepEqual(got.labels, { team: "web" });
    assert.equal(got.priority, 5);
  });

  test("createJob with the same requestId returns the first job; other content is RequestIdMismatch", async () => {
    const first = await client.createJob("dedupe", { n: 1 }, { requestId: "ts-order-17" });
    const again = await client.createJob("dedupe", { n: 1 }, { requestId: "ts-order-17" });
    assert.equal(again.id, first.id);
    await assert.rejects(client.createJob("dedupe", { n: 2 }, { requestId: "ts-order-17" }), RequestIdMismatch);
  });

  test("a number beyond ±(2^53 - 1) is refused before sending", async () => {
    await assert.rejects(client.createJob("big", { id: 2 ** 60 }), /parameters\.id/);
  });

  test("validateOnly answers as the call would and creates nothing", async () => {
    const job = await client.createJob("dry.run", {}, { validateOnly: true });
    assert.equal(job.jobType, "dry.run");
    await assert.rejects(client.getJob(job.id), NotFound);
  });

  test("a refused field is InvalidArgument with its field violation", async () => {
    const err = await client.createJob("", {}).then(
      () => assert.fail("created a job without a type"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof InvalidArgument);
    assert.equal(err.reason, "INVALID_ARGUMENT");
    assert.deepEqual(err.fieldViolations.map((v) => v.field), ["job_type"]);
  });

  test("createJobs: one outcome per item, a bad item's error returned in its place", async () => {
    const outcomes = await client.createJobs([
      { jobType: "bulk", parameters: { i: 0 } },
      { jobType: "bulk", parameters: { i: 1 }, labels: { ["x".repeat(100_000)]: "too long" } },
      { jobType: "bulk", parameters: { i: 2 } },
    ]);
    assert.equal(outcomes.length, 3);
    const [ok0, bad, ok2] = outcomes;
    assert.ok(ok0 !== undefined && !(ok0 instanceof JobwardenError));
    assert.ok(ok2 !== undefined && !(ok2 instanceof JobwardenError));
    assert.deepEqual([ok0.parameters, ok2.parameters], [{ i: 0 }, { i: 2 }]);
    assert.ok(bad instanceof InvalidArgument, bad?.constructor.name);
    assert.ok(bad.fieldViolations.every((v) => v.field.startsWith("requests[1].")), JSON.stringify(bad.fieldViolations));
    assert.ok(bad instanceof TooLarge, bad.reason);
  });

  test("listJobs pages through every match with its filters", async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 7; i++) {
      ids.add((await client.createJob("paged", { i }, { labels: { batch: "p1" } })).id);
    }
    const seen = await collect(client.listJobs({ jobTypes: ["paged"], labels: { batch: "p1" }, pageSize: 3 }));
    assert.deepEqual(new Set(seen.map((j) => j.id)), ids);
    const page = await client.listJobsPage({ jobTypes: ["paged"], pageSize: 3 });
    assert.equal(page.items.length, 3);
    assert.notEqual(page.nextPageToken, "");
    const none = await collect(client.listJobs({ jobTypes: ["paged"], statuses: ["completed"] }));
    assert.deepEqual(none, []);
  });

  test("cancelJob, then again: InvalidTransition naming from and to", async () => {
    const job = await client.createJob("to.cancel", {});
    const cancelled = await client.cancelJob(job.id, { reason: "not needed" });
    assert.equal(cancelled.status, JobStatus.CANCELLED);
    const err = await client.cancelJob(job.id).then(
      () => assert.fail("cancelled twice"),
      (e: unknown) => e,
    );
    assert.ok(err instanceof InvalidTransition);
    assert.equal(err.fromStatus, "CANCELLED");
  });

  test("hold, releaseJob, deleteJob (JobNotTerminal until it ended)", async () => {
    const held = await client.createJob("held", {}, { hold: true });
    assert.equal(held.status, JobStatus.CREATED);
    const released = await client.releaseJob(held.id);
    assert.equal(released.status, JobStatus.QUEUED);
    await assert.rejects(client.deleteJob(held.id), JobNotTerminal);
    await client.cancelJob(held.id);
    await client.deleteJob(held.id);
    await assert.rejects(client.getJob(held.id), NotFound);
  });

  test("createBatch: the parent, its children listed by parentId in order", async () => {
    const parent = await client.createBatch("report", [
      { jobType: "report.part", parameters: { part: 1 } },
      { jobType: "report.part", parameters: { part: 2 } },
    ]);
    assert.equal(parent.batch?.total, 2);
    const children = await collect(client.listJobs({ parentId: parent.id }));
    assert.deepEqual(children.map((c) => c.parameters), [{ part: 1 }, { part: 2 }]);
  });

  test("listJobEvents, getLifecycle, and a watch of an ended job", async () => {
    const job = await client.createJob("events", {});
    await client.cancelJob(job.id);
    const events = await collect(client.listJobEvents(job.id));
    assert.deepEqual(events.map((e) => e.kind.case), ["created", "transition"]);
    const transitions = await collect(client.listJobEvents(job.id, { kinds: [JobEventKind.TRANSITION] }));
    assert.equal(transitions.length, 1);
    const items = await collect(client.watchJob(job.id));
    assert.equal(items[0]?.$typeName, "jobwarden.v1.Job");
    assert.deepEqual(items.slice(1).map((e) => (e as { sequence: bigint }).sequence), [1n, 2n]);
    const lifecycle = await client.getLifecycle();
    assert.ok(lifecycle.statuses.includes(JobStatus.RUNNING));
  });

  test("getAsset of a missing asset is NotFound; setJobStatus and retryJob (local mode has every role)", async () => {
    await assert.rejects(client.getAsset("no-such-asset"), NotFound);
    const job = await client.createJob("admin", { x: 1 });
    const set = await client.setJobStatus(job.id, "CANCELLED", "ops cleanup");
    assert.equal(set.status, JobStatus.CANCELLED);
    const rerun = await client.retryJob(job.id);
    assert.equal(rerun.retryOf, job.id);
    assert.deepEqual(rerun.parameters, { x: 1 });
    const dry = await client.retryJob(job.id, { validateOnly: true });
    await assert.rejects(client.getJob(dry.id), NotFound);
  });
});
