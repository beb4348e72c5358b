/** A running scenario: its actors (one SDK client each), managed workers, receivers and saved values. */
import { Client } from "../../src/index.js";
import type { Job, JobClaim } from "../../src/index.js";
import { Mismatch } from "./expect.js";
import { ManagedWorker } from "./handlers.js";
import { Receiver } from "./receiver.js";
import type { Actor, Principal, Scenario } from "./spec.js";

export const isJob = (value: unknown): value is Job =>
  typeof value === "object" && value !== null && (value as { $typeName?: unknown }).$typeName === "jobwarden.v1.Job";
export const isClaim = (value: unknown): value is JobClaim =>
  typeof value === "object" && value !== null && (value as { $typeName?: unknown }).$typeName === "jobwarden.v1.JobClaim";

/** What the steps of one scenario share. `open` starts its receivers, `close` stops everything. */
export class Session {
  readonly name: string;
  readonly prefix: string;
  readonly defaultActor: string;
  readonly saved = new Map<string, unknown>();
  readonly clients = new Map<string, Client>();
  readonly workers = new Map<string, ManagedWorker>();
  readonly receivers = new Map<string, Receiver>();
  /** Streams read in the background (start_watch), stopped at the end. */
  readonly background = new Set<AbortController>();

  constructor(
    readonly scenario: Scenario,
    readonly address: string,
    readonly principals: Record<string, Principal>,
  ) {
    this.name = scenario.name;
    this.prefix = `${this.name}.`;
    const first = Object.keys(scenario.actors)[0];
    if (first === undefined) {
      throw new Error("a scenario needs an actor");
    }
    this.defaultActor = first;
  }

  async open(): Promise<void> {
    for (const [name, spec] of Object.entries(this.scenario.receivers ?? {})) {
      const receiver = new Receiver(spec.answers);
      await receiver.up();
      this.receivers.set(name, receiver);
      this.saved.set(`$${name}`, receiver);
    }
  }

  async close(): Promise<void> {
    for (const stream of this.background) {
      stream.abort();
    }
    await Promise.allSettled([...this.workers.values()].map((w) => w.stop(true)));
    for (const client of this.clients.values()) {
      client.close();
    }
    await Promise.allSettled([...this.receivers.values()].map((r) => r.down()));
  }

  // --- actors -----------------------------------------------------------------------------------

  actor(name: string | undefined): Actor {
    const actor = this.scenario.actors[name ?? this.defaultActor];
    if (actor === undefined) {
      throw new Error(`no actor ${String(name)}`);
    }
    return actor;
  }

  /** The SDK client of `actor` (default: the first actor declared), opened on first use. */
  client(actor: string | undefined): Client {
    const name = actor ?? this.defaultActor;
    let client = this.clients.get(name);
    if (client === undefined) {
      const token = this.principal(name).token;
      client = new Client(this.address, { token, timeoutMs: 10_000 });
      this.clients.set(name, client);
    }
    return client;
  }

  principal(actor: string | undefined): Principal {
    const principal = this.principals[this.actor(actor).principal];
    if (principal === undefined) {
      throw new Error(`no principal for actor ${String(actor)}`);
    }
    return principal;
  }

  /** The worker id an actor claims under (its own name unless it declares one). */
  workerId(actor: string | undefined): string {
    return this.actor(actor).worker_id ?? actor ?? this.defaultActor;
  }

  /** The managed SDK Worker of `actor` (built from its `handlers` on first use). */
  managed(actor: string): ManagedWorker {
    let worker = this.workers.get(actor);
    if (worker === undefined) {
      worker = new ManagedWorker(this, actor, this.actor(actor));
      this.workers.set(actor, worker);
    }
    return worker;
  }

  // --- names ------------------------------------------------------------------------------------

  /** The job type a symbol stands for in this scenario: "<scenario name>.<symbol>". */
  jobType(symbol: string): string {
    return this.prefix + symbol;
  }

  /** Job types of symbols; none given: every type the scenario declares (so lists stay inside it). */
  jobTypes(symbols: string[] | undefined): string[] {
    return (symbols ?? Object.keys(this.scenario.job_types)).map((s) => this.jobType(s));
  }

  /** A scenario's request id, made unique to it (undefined: let the SDK generate one). */
  requestId(given: string | undefined): string | undefined {
    return given === undefined ? undefined : `${this.name}:${given}`;
  }

  /** A value saved by an earlier step. */
  ref(name: string): unknown {
    if (!this.saved.has(name)) {
      throw new Error(`${name} was not saved by an earlier step`);
    }
    return this.saved.get(name);
  }

  /** The job id `ref` names: a saved job, or a saved claim's job. */
  jobId(ref: string | undefined): string {
    const value = this.ref(ref ?? "");
    if (isClaim(value)) {
      return value.job?.id ?? "";
    }
    if (isJob(value)) {
      return value.id;
    }
    throw new Error(`${String(ref)} is not a job or a claim`);
  }

  /** A claim saved by a claim_jobs step. */
  claim(ref: string | undefined): JobClaim {
    const value = this.ref(ref ?? "");
    if (!isClaim(value)) {
      throw new Error(`${String(ref)} is not a claim`);
    }
    return value;
  }

  /** `value` with every "$name" replaced: a saved job's or claim's id, a receiver's URL, or the saved value. */
  resolve(value: unknown): unknown {
    if (Array.isArray(value)) {
      return value.map((v: unknown) => this.resolve(v));
    }
    if (typeof value === "object" && value !== null) {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.resolve(v)]));
    }
    if (typeof value === "string" && value.startsWith("$")) {
      const saved = this.ref(value);
      if (isJob(saved) || isClaim(saved)) {
        return this.jobId(value);
      }
      if (saved instanceof Receiver) {
        return saved.url;
      }
      return saved;
    }
    return value;
  }

  /** Saves `value` under a name, or each item of a list under the name in the same place. */
  save(names: string | (string | null)[] | undefined, value: unknown): void {
    if (names === undefined) {
      return;
    }
    if (typeof names === "string") {
      if (Array.isArray(value)) {
        if (value.length === 0) {
          throw new Mismatch(`nothing to save as ${names}`);
        }
        this.saved.set(names, value[0]);
      } else {
        this.saved.set(names, value);
      }
      return;
    }
    const items = Array.isArray(value) ? (value as unknown[]) : [];
    if (names.length > items.length) {
      throw new Mismatch(`${items.length} values to save as ${JSON.stringify(names)}`);
    }
    names.forEach((name, i) => {
      if (name !== null) {
        this.saved.set(name, items[i]);
      }
    });
  }
}
