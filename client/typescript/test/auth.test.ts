/**
 * Tokens, owners and TLS against real servers: a config with two tokens (owners isolated from each
 * other, roles enforced), and a mutual-TLS server whose client certificate names the caller.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import { Client, JobStatus, NotFound, PermissionDenied, Unauthenticated, Unavailable } from "@jobwarden/client";
import { authority, issue } from "./support/certs.js";
import { Server, tempDir, tokenHash, writeConfig } from "./support/server.js";
import { collect } from "./support/waiting.js";

const ACME = "acme-token-0123456789";
const GLOBEX = "globex-token-9876543210";

describe("tokens and owners", () => {
  const dir = tempDir();
  let server: Server;

  before(async () => {
    const config = writeConfig(dir.path, [
      { sha256: tokenHash(ACME), owner: "acme", roles: ["client", "worker", "admin"] },
      { sha256: tokenHash(GLOBEX), owner: "globex", roles: ["client"] },
    ]);
    server = await Server.start(join(dir.path, "auth.db"), ["--config", config]);
  });

  after(async () => {
    await server.stop();
    dir.remove();
  });

  test("each token sees its owner's jobs only; another owner's job is NotFound", async () => {
    const acme = new Client(server.address, { token: ACME });
    const globex = new Client(server.address, { token: GLOBEX });
    try {
      const job = await acme.createJob("private", { secret: 1 });
      assert.equal(job.owner, "acme");
      await assert.rejects(globex.getJob(job.id), NotFound);
      await assert.rejects(globex.cancelJob(job.id), NotFound);
      assert.deepEqual((await collect(globex.listJobs())).map((j) => j.id), []);
      assert.deepEqual((await collect(acme.listJobs())).map((j) => j.id), [job.id]);
    } finally {
      acme.close();
      globex.close();
    }
  });

  test("roles: a client-only token may not work or administer jobs", async () => {
    const acme = new Client(server.address, { token: ACME });
    const globex = new Client(server.address, { token: GLOBEX });
    try {
      const job = await globex.createJob("mine", {});
      await assert.rejects(globex.claimJobs("w", ["mine"]), PermissionDenied);
      await assert.rejects(globex.setJobStatus(job.id, JobStatus.CANCELLED, "ops"), PermissionDenied);
      const other = await acme.createJob("theirs", {});
      assert.equal((await acme.setJobStatus(other.id, "CANCELLED", "ops")).status, JobStatus.CANCELLED);
    } finally {
      acme.close();
      globex.close();
    }
  });

  test("no token or an unknown one is Unauthenticated", async () => {
    const anonymous = new Client(server.address);
    const stranger = new Client(server.address, { token: "not-a-token" });
    try {
      await assert.rejects(anonymous.listJobsPage(), Unauthenticated);
      await assert.rejects(stranger.createJob("x", {}), Unauthenticated);
    } finally {
      anonymous.close();
      stranger.close();
    }
  });
});

describe("TLS and mutual TLS", () => {
  const dir = tempDir();
  let server: Server;
  let ca: string;
  let worker7: { cert: string; key: string };
  let stranger: { cert: string; key: string };

  before(async () => {
    ca = authority(dir.path, "test");
    authority(dir.path, "other");
    // The server's certificate names a host only (no IP): dialling 127.0.0.1 needs serverName.
    const serverPair = issue(dir.path, "test", "server", { commonName: "jobs.internal", altNames: ["DNS:jobs.internal"], usage: "serverAuth" });
    worker7 = issue(dir.path, "test", "worker-7", { commonName: "worker-7", usage: "clientAuth" });
    stranger = issue(dir.path, "other", "stranger", { commonName: "worker-7", usage: "clientAuth" });
    const config = writeConfig(dir.path, [
      { client_cn: "worker-7", owner: "acme", roles: ["client", "worker"] },
      { sha256: tokenHash(ACME), owner: "acme-by-token", roles: ["client"] },
    ]);
    server = await Server.start(join(dir.path, "tls.db"), [
      "--config", config, "--tls-cert", serverPair.cert, "--tls-key", serverPair.key, "--tls-client-ca", ca,
    ]);
  });

  after(async () => {
    await server.stop();
    dir.remove();
  });

  test("the client certificate identifies the caller; a token takes precedence", async () => {
    const byCert = new Client(server.address, {
      tls: { caCert: ca, clientCert: worker7.cert, clientKey: worker7.key, serverName: "jobs.internal" },
    });
    const byToken = new Client(server.address, {
      token: ACME,
      tls: { caCert: ca, clientCert: worker7.cert, clientKey: worker7.key, serverName: "jobs.internal" },
    });
    try {
      assert.equal((await byCert.createJob("tls", {})).owner, "acme");
      assert.equal((await byToken.createJob("tls", {})).owner, "acme-by-token");
    } finally {
      byCert.close();
      byToken.close();
    }
  });

  test("the handshake fails (Unavailable) without the right certificates or name", async () => {
    const cases = {
      "no client certificate": { caCert: ca, serverName: "jobs.internal" },
      "a certificate from another CA": { caCert: ca, clientCert: stranger.cert, clientKey: stranger.key, serverName: "jobs.internal" },
      "the server's name not given": { caCert: ca, clientCert: worker7.cert, clientKey: worker7.key },
      "the server's CA not trusted": { clientCert: worker7.cert, clientKey: worker7.key, serverName: "jobs.internal" },
    };
    for (const [what, tls] of Object.entries(cases)) {
      // A short deadline: a failed handshake is UNAVAILABLE and retried within it, as any call is.
      const client = new Client(server.address, { tls, timeoutMs: 600 });
      try {
        await assert.rejects(client.listJobsPage(), Unavailable, what);
      } finally {
        client.close();
      }
    }
  });

  test("a client certificate without its key is refused before any call", () => {
    assert.throws(() => new Client(server.address, { tls: { caCert: ca, clientCert: worker7.cert } }), /go together/);
  });
});
