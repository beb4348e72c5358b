/**
 * The scenario files of tests/conformance/scenarios: where they are, their JSON Schema validation, the
 * principals and the server config they share. The same files the Python runner reads.
 */
import { Ajv2020 } from "ajv/dist/2020.js";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { REPO_ROOT } from "../support/server.js";

export const ROOT = join(REPO_ROOT, "tests/conformance/scenarios");
export const SCHEMA = join(ROOT, "scenario.schema.json");
export const SERVER_CONFIG = join(ROOT, "server.toml");
export const PRINCIPALS = join(ROOT, "principals.json");

/** A message a handler or add_messages sends: plain text (INFO), or text with a level and data. */
export type MessageSpec = string | { text: string; level?: string; data?: unknown };

/** What a managed worker's handler does on one attempt. */
export interface HandlerAttempt {
  progress?: number[];
  assets?: { asset_type: string; uri: string; size_bytes?: number }[];
  messages?: MessageSpec[];
  then: "complete" | "partial" | "fail_retryable" | "fail_permanent" | "wait_for_cancel";
  result?: Record<string, unknown> | null;
  error_message?: string;
  reason?: string;
}

export interface Actor {
  principal: string;
  worker_id?: string;
  handlers?: Record<string, HandlerAttempt[]>;
  session?: boolean;
  lease_duration?: number;
  concurrency?: number;
}

/** A step, as scenario.schema.json allows it (every field but `op` optional; the op says which apply). */
export interface Step {
  op: string;
  as?: string;
  save?: string | (string | null)[];
  expect?: Record<string, unknown>;
  job_type?: string;
  parameters?: Record<string, unknown>;
  priority?: number;
  labels?: Record<string, string>;
  max_attempts?: number;
  retry_policy?: { initial_backoff?: number; max_backoff?: number; multiplier?: number };
  callback_url?: string;
  callback_statuses?: string[];
  hold?: boolean;
  request_id?: string;
  queue_timeout?: number;
  deadline_in?: number;
  jobs?: Step[];
  children?: Step[];
  job?: string;
  parent?: string;
  claim?: string;
  job_types?: string[];
  statuses?: string[];
  reason?: string;
  status?: string;
  force?: boolean;
  kinds?: string[];
  max_jobs?: number;
  lease_duration?: number;
  wait?: number;
  percent?: number;
  message?: string;
  done?: number;
  total?: number;
  asset_type?: string;
  uri?: string;
  size_bytes?: number;
  content_type?: string;
  metadata?: Record<string, string>;
  messages?: MessageSpec[];
  result?: Record<string, unknown> | null;
  partial?: boolean;
  error_message?: string;
  retryable?: boolean;
  stop_reason?: string;
  after_sequence?: number | string;
  take?: number;
  within_s?: number;
  receiver?: string;
  count?: number;
  table?: { initial: string; transitions: [string, string][] };
  reach?: Record<string, Step[]>;
  admin?: string;
  worker?: string;
  watch?: string;
}

export interface Scenario {
  name: string;
  description: string;
  job_types: Record<string, string>;
  actors: Record<string, Actor>;
  receivers?: Record<string, { answers: number[] }>;
  steps: Step[];
}

export interface Principal {
  token: string;
  owner: string;
  roles: string[];
  callback_secret?: string;
}

/** Every scenario file, in name order (the schema and principals are not scenarios). */
export function scenarioFiles(): string[] {
  const skip = new Set([basename(SCHEMA), basename(PRINCIPALS)]);
  return readdirSync(ROOT)
    .filter((name) => name.endsWith(".json") && !skip.has(name))
    .sort()
    .map((name) => join(ROOT, name));
}

/** The schema's list of ops (every one must have a mapping here). */
export function schemaOps(): string[] {
  const schema = JSON.parse(readFileSync(SCHEMA, "utf8")) as { $defs: { step: { properties: { op: { enum: string[] } } } } };
  return schema.$defs.step.properties.op.enum;
}

let validator: ((data: unknown) => boolean) & { errors?: unknown } | undefined;

function validate(): ((data: unknown) => boolean) & { errors?: unknown } {
  if (validator === undefined) {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    validator = ajv.compile(JSON.parse(readFileSync(SCHEMA, "utf8")) as object);
  }
  return validator;
}

/** A scenario, validated against scenario.schema.json; its name must be its file's stem. */
export function load(path: string): Scenario {
  // JSON.parse keeps member order for non-numeric keys: the first actor is the default one, and
  // check_transitions' `reach` runs in file order.
  const scenario: unknown = JSON.parse(readFileSync(path, "utf8"));
  const check = validate();
  if (!check(scenario)) {
    throw new Error(`${basename(path)} does not match scenario.schema.json: ${JSON.stringify(check.errors, null, 1)}`);
  }
  const valid = scenario as Scenario;
  const stem = basename(path, ".json");
  if (valid.name !== stem) {
    throw new Error(`${basename(path)}: name ${JSON.stringify(valid.name)} must be the file's stem ${JSON.stringify(stem)}`);
  }
  return valid;
}

/**
 * principals.json, checked against server.toml's [[tokens]] (each token's sha256 is there, with the
 * same owner and roles), so the two files cannot drift apart.
 */
export function principals(): Record<string, Principal> {
  const found = JSON.parse(readFileSync(PRINCIPALS, "utf8")) as Record<string, Principal>;
  const tokens = new Map(configuredTokens().map((t) => [t.sha256, t]));
  for (const [name, principal] of Object.entries(found)) {
    const entry = tokens.get(createHash("sha256").update(principal.token).digest("hex"));
    if (entry?.owner !== principal.owner || JSON.stringify(entry.roles) !== JSON.stringify(principal.roles)) {
      throw new Error(`principals.json ${name}: no matching [[tokens]] entry in server.toml`);
    }
  }
  return found;
}

/**
 * server.toml's [[tokens]] tables. Only as much TOML as they use is read: `key = value` lines whose
 * values are JSON too (strings, arrays of strings), up to the next table header.
 */
export function configuredTokens(): { sha256: string; owner: string; roles: string[] }[] {
  const tokens: Record<string, unknown>[] = [];
  let current: Record<string, unknown> | undefined;
  for (const raw of readFileSync(SERVER_CONFIG, "utf8").split("\n")) {
    const line = raw.replace(/\s+#.*$/, "").trim();
    if (line.startsWith("[")) {
      current = line === "[[tokens]]" ? {} : undefined;
      if (current !== undefined) {
        tokens.push(current);
      }
      continue;
    }
    const match = /^([A-Za-z0-9_]+)\s*=\s*(.+)$/.exec(line);
    if (current !== undefined && match?.[1] !== undefined && match[2] !== undefined) {
      current[match[1]] = JSON.parse(match[2]) as unknown;
    }
  }
  return tokens as { sha256: string; owner: string; roles: string[] }[];
}
