/**
 * The language-neutral conformance scenarios (tests/conformance/scenarios/*.json), run through the
 * TypeScript SDK: the very files the Python runner runs, validated against the same schema, against one
 * real `jobwarden serve` per store (SQLite always; PostgreSQL when JOBWARDEN_TEST_DATABASE_URL is set),
 * started with server.toml exactly as the runner contract in the scenarios' README says.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { tempDir } from "../support/server.js";
import { matches, Mismatch } from "./expect.js";
import { OPS, run } from "./runner.js";
import { serve, stores } from "./server.js";
import type { Serving } from "./server.js";
import { load, principals, scenarioFiles, schemaOps } from "./spec.js";
import { codeName } from "./views.js";
import { Code } from "../../src/index.js";

// Loaded (and validated) before any server starts: a malformed file fails the run at once.
const scenarios = scenarioFiles().map(load);
const people = principals();

for (const store of stores()) {
  describe(`conformance scenarios (${store})`, () => {
    const dir = tempDir(`jobwarden-tsconf-${store}-`);
    let server: Serving | undefined;
    before(async () => {
      server = await serve(store, dir.path);
    });
    after(async () => {
      await server?.stop();
      dir.remove();
    });
    for (const scenario of scenarios) {
      test(scenario.name, async () => {
        assert.ok(server, "the server did not start");
        await run(scenario, server.address, people);
      });
    }
  });
}

test("every op of the schema has a TypeScript mapping, and back", () => {
  assert.deepEqual(Object.keys(OPS).sort(), schemaOps().sort());
});

test("expectations match as subsets: lists item by item, numbers by value, booleans only booleans", () => {
  const actual = { status: "QUEUED", attempt: 1, progress: { percent: 50.0, message: "" }, ids: ["a", "b"] };
  matches({ status: "QUEUED", progress: { percent: 50 } }, actual);
  matches({ ids: ["a", "b"], missing: null }, actual);
  for (const wrong of [
    { status: "RUNNING" },
    { ids: ["a"] },
    { ids: ["b", "a"] },
    { attempt: true },
    { progress: { percent: 51 } },
    { missing: 0 },
  ]) {
    assert.throws(() => { matches(wrong, actual); }, Mismatch);
  }
});

test("status codes are named as gRPC names them", () => {
  assert.equal(codeName(Code.FailedPrecondition), "FAILED_PRECONDITION");
  assert.equal(codeName(Code.NotFound), "NOT_FOUND");
  assert.equal(codeName(Code.Canceled), "CANCELLED");
});
