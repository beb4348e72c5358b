/**
 * A real HTTP receiver of completion callbacks on 127.0.0.1: it records every request and answers the
 * n-th with answers[n-1] (the last one from then on). Signatures are checked as Standard Webhooks define
 * them: `v1,` + base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>" under the secret's key.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingHttpHeaders, Server } from "node:http";

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

export class Receiver {
  readonly received: Received[] = [];
  #server: Server | undefined;
  url = "";

  constructor(private readonly answers: number[]) {}

  async up(): Promise<void> {
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        this.received.push({ headers: request.headers, body: Buffer.concat(chunks).toString("utf8") });
        const n = this.received.length;
        response.statusCode = this.answers[Math.min(n, this.answers.length) - 1] ?? 200;
        response.end();
      });
    });
    this.#server = server;
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    const address = server.address();
    if (address === null || typeof address === "string") {
      throw new Error("the receiver has no port");
    }
    this.url = `http://127.0.0.1:${address.port}/hook`;
  }

  async down(): Promise<void> {
    const server = this.#server;
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => { done(); }));
    }
  }

  /** The `webhook-id` header of each request. */
  ids(): string[] {
    return this.received.map((r) => header(r.headers, "webhook-id"));
  }
}

function header(headers: IncomingHttpHeaders, name: string): string {
  const value = headers[name];
  return Array.isArray(value) ? (value[0] ?? "") : (value ?? "");
}

/** Whether a request carries a valid Standard Webhooks signature under `secret` ("whsec_<base64 key>"). */
export function signatureValid(received: Received, secret: string): boolean {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const id = header(received.headers, "webhook-id");
  const stamp = header(received.headers, "webhook-timestamp");
  const expected = createHmac("sha256", key).update(`${id}.${stamp}.${received.body}`).digest();
  return header(received.headers, "webhook-signature")
    .split(" ")
    .some((part) => {
      const [version, signature] = part.split(",", 2);
      if (version !== "v1" || signature === undefined) {
        return false;
      }
      const given = Buffer.from(signature, "base64");
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
}
