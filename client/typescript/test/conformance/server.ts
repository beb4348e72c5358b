/**
 * The one `jobwarden serve` the scenarios of a store share, started exactly as the runner contract
 * says (tests/conformance/scenarios/README.md): server.toml, 127.0.0.1:0, a fresh database (a new SQLite
 * file, or a throw-away PostgreSQL database on JOBWARDEN_TEST_DATABASE_URL's server, dropped WITH (FORCE)
 * afterwards); the address from its first stdout line, its log in a file, SIGTERM at the end.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { spawnTied, VENV_BIN } from "../support/server.js";
import { SERVER_CONFIG } from "./spec.js";

export const PG_URL_ENV = "JOBWARDEN_TEST_DATABASE_URL";

/** The stores to run on: SQLite always, PostgreSQL when JOBWARDEN_TEST_DATABASE_URL is set. */
export function stores(): string[] {
  return process.env[PG_URL_ENV] ? ["sqlite", "postgres"] : ["sqlite"];
}

// CREATE/DROP DATABASE outside a transaction, through the venv's asyncpg (the driver the server uses):
// Node has no PostgreSQL client here, and this keeps the suite's dependencies to what the repo has.
const PG_RUN = "import asyncio, sys, asyncpg\n" +
  "async def main():\n" +
  "    conn = await asyncpg.connect(sys.argv[1])\n" +
  "    try:\n" +
  "        await conn.execute(sys.argv[2])\n" +
  "    finally:\n" +
  "        await conn.close()\n" +
  "asyncio.run(main())\n";

function pgRun(url: string, statement: string): void {
  execFileSync(join(VENV_BIN, "python"), ["-c", PG_RUN, url, statement], { stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 });
}

/** A fresh, empty database of `store`; `drop` removes it (nothing to do for a file in `workdir`). */
export function database(store: string, workdir: string): { url: string; drop: () => void } {
  if (store === "sqlite") {
    return { url: join(workdir, "conformance.db"), drop: () => undefined };
  }
  const base = process.env[PG_URL_ENV] ?? "";
  const name = `jobwarden_tsconf_${randomBytes(4).toString("hex")}`;
  pgRun(base, `CREATE DATABASE "${name}"`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  // FORCE: a connection the stopped server left behind must not keep the database alive.
  return { url: url.toString(), drop: () => { pgRun(base, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`); } };
}

/** A running server: its address, and `stop` (SIGTERM, then the database dropped). */
export interface Serving {
  address: string;
  stop: () => Promise<void>;
}

/** Starts `jobwarden serve --config server.toml --listen 127.0.0.1:0 --database <fresh>`. */
export async function serve(store: string, workdir: string): Promise<Serving> {
  const db = database(store, workdir);
  const logPath = join(workdir, `server-${store}.log`);
  const log = createWriteStream(logPath);
  const child = spawnTied([join(VENV_BIN, "jobwarden"), "serve", "--config", SERVER_CONFIG, "--listen", "127.0.0.1:0", "--database", db.url]);
  child.stderr.pipe(log);
  const exited = new Promise<void>((done) => child.once("exit", () => { done(); }));
  const lines = createInterface({ input: child.stdout });
  const first = await new Promise<string>((done) => {
    lines.once("line", done);
    void exited.then(() => { done(""); });
  });
  lines.on("line", () => undefined); // keep draining stdout
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      await exited;
      clearTimeout(timer);
    }
    log.end();
    db.drop();
  };
  const match = /serving on (\S+:\d+)/.exec(first);
  if (match?.[1] === undefined) {
    await stop();
    throw new Error(`server did not start: ${JSON.stringify(first)}\n${readFileSync(logPath, "utf8").slice(-3000)}`);
  }
  return { address: match[1], stop };
}
