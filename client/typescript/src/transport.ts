/**
 * How the SDK reaches a server: connect-node's gRPC transport (the gRPC protocol over HTTP/2, as the
 * server and the Python SDK speak it), with TLS/mTLS from PEM material and the bearer token and user
 * agent added to every call by an interceptor.
 */
import { readFileSync } from "node:fs";
import type { Interceptor, Transport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

/** Where `jobwarden serve` listens unless told otherwise. */
export const DEFAULT_TARGET = "127.0.0.1:50051";

/** Milliseconds a unary call may take (all its retries included) before it fails with DEADLINE_EXCEEDED. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** The SDK's version, sent in the user agent. */
export const VERSION = "0.1.0";

// Parameters and results are capped at 1 MiB each by the server, so a page of jobs can be far larger
// than 4 MiB; requests stay small (as the Python SDK's channel options).
const MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024;
const MAX_SEND_MESSAGE_BYTES = 8 * 1024 * 1024;

/** PEM data as bytes, or the path of a PEM file as a string. */
export type PemSource = Uint8Array | string;

/** How the client secures its connection (`tls: true` is `{}`: the system's trusted CAs). */
export interface TlsOptions {
  /** CA certificate(s) the server's certificate must chain to; unset trusts the system's CAs. */
  caCert?: PemSource;
  /** Client certificate (chain) for servers that require mutual TLS; needs `clientKey`. */
  clientCert?: PemSource;
  /** Private key of `clientCert`. */
  clientKey?: PemSource;
  /** Name to verify the server's certificate against, when it differs from the target's host. */
  serverName?: string;
}

/** How to reach the server. */
export interface TransportOptions {
  /** Bearer token sent on every call; unset for a server in local mode, or when mTLS identifies the caller. */
  token?: string | undefined;
  /** `true` for TLS with the system's CAs, {@link TlsOptions} for more; unset/false for plaintext. */
  tls?: boolean | TlsOptions | undefined;
  /** More interceptors, run after the SDK's own. */
  interceptors?: Interceptor[] | undefined;
}

function pem(source: PemSource | undefined): Buffer | undefined {
  if (source === undefined) {
    return undefined;
  }
  return typeof source === "string" ? readFileSync(source) : Buffer.from(source);
}

/**
 * The interceptor every call goes through: the token as `authorization: Bearer` metadata (not as
 * TLS-only call credentials: local deployments run without TLS), and who is calling.
 */
export function authInterceptor(token: string | undefined): Interceptor {
  const header = token !== undefined && token !== "" ? `Bearer ${token}` : undefined;
  return (next) => (req) => {
    if (header !== undefined) {
      req.header.set("authorization", header);
    }
    req.header.set("x-jobwarden-client", `jobwarden-typescript/${VERSION}`);
    return next(req);
  };
}

/**
 * Opens a transport to `target` (`host:port`). PEM files named in `tls` are read here, so a missing
 * file fails now rather than on first use.
 *
 * @throws Error when both halves of a client certificate are not given together, or a file cannot be read.
 */
export function createTransport(target: string, options: TransportOptions = {}): Transport {
  const tls = options.tls === true ? {} : options.tls === false ? undefined : options.tls;
  if (tls !== undefined && (tls.clientCert === undefined) !== (tls.clientKey === undefined)) {
    throw new Error("TlsOptions: clientCert and clientKey go together; give both or neither");
  }
  const nodeOptions =
    tls === undefined
      ? {}
      : {
          ca: pem(tls.caCert),
          cert: pem(tls.clientCert),
          key: pem(tls.clientKey),
          ...(tls.serverName !== undefined ? { servername: tls.serverName } : {}),
        };
  return createGrpcTransport({
    baseUrl: `${tls === undefined ? "http" : "https"}://${target}`,
    nodeOptions,
    readMaxBytes: MAX_RECEIVE_MESSAGE_BYTES,
    writeMaxBytes: MAX_SEND_MESSAGE_BYTES,
    // Keepalive pings find a connection that died silently (a peer gone without a FIN), so a watch or a
    // Work session on it fails and is reopened instead of waiting forever.
    pingIntervalMs: 30_000,
    pingTimeoutMs: 15_000,
    interceptors: [authInterceptor(options.token), ...(options.interceptors ?? [])],
  });
}
