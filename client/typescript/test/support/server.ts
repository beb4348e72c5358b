/**
 * The real `jobwarden serve` as a subprocess for the integration tests, bound to 127.0.0.1, on a SQLite
 * file in a temporary directory. Started through a tiny Python launcher that asks the kernel to kill it
 * when the test process dies (as tests/support/proc.py does), so no server outlives its test.
 */
import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";

/** client/typescript (this file is dist/test/support/server.js once built). */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
/** The repository's root. */
export const REPO_ROOT = resolve(PACKAGE_ROOT, "../..");
export const VENV_BIN = process.env.JOBWARDEN_VENV_BIN ?? join(REPO_ROOT, ".venv/bin");

// PR_SET_PDEATHSIG = 1, SIGKILL = 9; the setting survives exec.
const LAUNCHER =
  "import ctypes, os, sys; ctypes.CDLL('libc.so.6').prctl(1, 9); os.execv(sys.argv[1], sys.argv[1:])";

/** Runs `command` tied to this process: the kernel kills it if the tests die. */
export function spawnTied(command: string[], env: Record<string, string> = {}): ChildProcessWithoutNullStreams {
  return spawn(join(VENV_BIN, "python"), ["-c", LAUNCHER, ...command], {
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
}

/** A temporary directory, removed by the returned function. */
export function tempDir(prefix = "jobwarden-ts-"): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => { rmSync(path, { recursive: true, force: true }); } };
}

/** A free TCP port on 127.0.0.1 (for a server that must come back on the same address). */
export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once("error", fail);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => {
        if (address === null || typeof address === "string") {
          fail(new Error("no port"));
        } else {
          done(address.port);
        }
      });
    });
  });
}

/** The hex SHA-256 of a token, as the config file holds it. */
export function tokenHash(token: string): string {
  return createHash("sha256").update(token).digest("hex");
}

/** Writes a config file with `[[tokens]]` entries (and anything else as raw TOML) and returns its path. */
export function writeConfig(dir: string, tokens: Record<string, string | string[]>[], extra = ""): string {
  const lines = [extra];
  for (const token of tokens) {
    lines.push("", "[[tokens]]");
    for (const [key, value] of Object.entries(token)) {
      lines.push(`${key} = ${JSON.stringify(value)}`);
    }
  }
  const path = join(dir, "jobwarden.toml");
  writeFileSync(path, lines.join("\n") + "\n");
  return path;
}

/** A running server. */
export class Server {
  private constructor(
    readonly process: ChildProcessWithoutNullStreams,
    readonly address: string,
    private readonly stderr: string[],
  ) {}

  /**
   * Starts `jobwarden serve --listen 127.0.0.1:<port> --database <database> ...extra` (port 0: any free
   * one) and resolves once it says where it serves.
   */
  static async start(database: string, extra: string[] = [], port = 0): Promise<Server> {
    const child = spawnTied([join(VENV_BIN, "jobwarden"), "serve", "--listen", `127.0.0.1:${port}`, "--database", database, ...extra]);
    const stderr: string[] = [];
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => stderr.push(chunk));
    const lines = createInterface({ input: child.stdout });
    const address = await new Promise<string>((done, fail) => {
      lines.once("line", (line) => {
        const match = /serving on (\S+:\d+)/.exec(line);
        if (match?.[1] === undefined) {
          fail(new Error(`server did not start: ${line}`));
        } else {
          done(match[1]);
        }
      });
      child.once("exit", (code) => {
        fail(new Error(`server exited ${code}: ${stderr.join("")}`));
      });
    });
    lines.on("line", () => undefined); // keep draining stdout
    return new Server(child, address, stderr);
  }

  /** Sends `signal` and waits for the exit (SIGKILL after 15 s); returns the exit code. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | null> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) {
      return this.process.exitCode;
    }
    const exited = new Promise<number | null>((done) => this.process.once("exit", (code) => { done(code); }));
    this.process.kill(signal);
    const timer = setTimeout(() => this.process.kill("SIGKILL"), 15_000);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** What the server wrote on stderr so far. */
  get log(): string {
    return this.stderr.join("");
  }
}
