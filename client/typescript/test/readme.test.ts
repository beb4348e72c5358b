/**
 * The repository README's TypeScript example, as a reader copies it: type-checked (strict, as this
 * package's tsconfig) and run with Node.js against a real server whose address replaces the README's.
 * (tests/acceptance/test_readme.py checks every README block is run somewhere; this is where this one is.)
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import ts from "typescript";
import { Client, JobStatus } from "@jobwarden/client";
import { PACKAGE_ROOT, REPO_ROOT, Server, tempDir } from "./support/server.js";
import { collect } from "./support/waiting.js";

const BLOCK_ID = "from-typescript-1-typescript";
const README_ADDRESS = "127.0.0.1:50051";

/** The README's fenced blocks by id, `<section>-<n>-<language>`, as tests/support/readme.py names them. */
function readmeBlocks(): Map<string, string> {
  const found = new Map<string, string>();
  const perSection = new Map<string, number>();
  let section = "top";
  let language: string | undefined;
  let body: string[] = [];
  for (const line of readFileSync(join(REPO_ROOT, "README.md"), "utf8").split("\n")) {
    const fence = /^```(\S*)\s*$/.exec(line);
    if (language === undefined) {
      if (fence !== null) {
        language = fence[1] ?? "";
        body = [];
      } else if (line.startsWith("#")) {
        section = line.replace(/^#+/, "").trim().toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
      }
      continue;
    }
    if (line.startsWith("```")) {
      const n = (perSection.get(section) ?? 0) + 1;
      perSection.set(section, n);
      found.set(`${section}-${n}-${language || "text"}`, body.join("\n") + "\n");
      language = undefined;
    } else {
      body.push(line);
    }
  }
  return found;
}

describe("the README's TypeScript example", () => {
  const dir = tempDir();
  let server: Server;
  const example = readmeBlocks().get(BLOCK_ID);
  // Inside the package, so `@jobwarden/client` resolves to this build (the package's own exports).
  const outDir = join(PACKAGE_ROOT, "dist/readme");

  before(async () => {
    server = await Server.start(join(dir.path, "readme.db"));
    mkdirSync(outDir, { recursive: true });
  });

  after(async () => {
    await server.stop();
    dir.remove();
  });

  test("type-checks under the package's strict settings", () => {
    assert.ok(example !== undefined, `README.md has no block ${BLOCK_ID}`);
    const source = join(outDir, "example.ts");
    writeFileSync(source, example);
    const config = ts.getParsedCommandLineOfConfigFile(join(PACKAGE_ROOT, "tsconfig.json"), {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
      },
    });
    assert.ok(config !== undefined);
    const program = ts.createProgram([source], { ...config.options, noEmit: true });
    const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    assert.deepEqual(problems, []);
  });

  test("runs against a real server and prints what its comments say", async () => {
    assert.ok(example !== undefined);
    assert.equal(example.split(README_ADDRESS).length, 2, "the example names the server's address once");
    const js = ts.transpileModule(example.replace(README_ADDRESS, server.address), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    const program = join(outDir, "example.mjs");
    writeFileSync(program, js);
    const ran = await promisify(execFile)(process.execPath, [program], { timeout: 30_000 });
    assert.equal(ran.stderr, "");
    const printed = ran.stdout.trimEnd().split("\n");
    assert.equal(printed[0], "jobwarden.v1.Job");
    assert.ok(printed.slice(1, -1).every((line) => line === "jobwarden.v1.JobEvent"), printed.join("\n"));
    const last = printed.at(-1) ?? "";
    assert.ok(example.includes(`// ${last}\n`), `the last line printed, ${last}, is the one its comment shows`);

    const client = new Client(server.address);
    try {
      const [job] = await collect(client.listJobs());
      assert.equal(job?.status, JobStatus.COMPLETED);
      assert.deepEqual(job.result, { image: "s3://bucket/out.png" });
      const assets = await collect(client.listAssets(job.id));
      assert.deepEqual(assets.map((a) => a.uri), ["s3://bucket/out.png"]);
    } finally {
      client.close();
    }
  });
});
