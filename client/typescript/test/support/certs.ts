/**
 * Certificates made on the fly with `openssl` for the TLS tests (as tests/support/certs.py makes them
 * for Python's): a CA, a server certificate, client certificates, as PEM files in a directory.
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

/** A self-signed CA in `dir` as `<name>-ca.pem` (+ key); returns the certificate's path. */
export function authority(dir: string, name: string): string {
  openssl(dir, ["req", "-x509", ...EC, "-keyout", `${name}-ca-key.pem`, "-out", `${name}-ca.pem`, "-days", "2", "-subj", `/CN=jobwarden ${name} CA`]);
  return join(dir, `${name}-ca.pem`);
}

/** A certificate signed by CA `ca` (made by {@link authority}); returns its and its key's paths. */
export function issue(
  dir: string,
  ca: string,
  stem: string,
  options: { commonName: string; altNames?: string[]; usage: "serverAuth" | "clientAuth" },
): { cert: string; key: string } {
  openssl(dir, ["req", ...EC, "-keyout", `${stem}-key.pem`, "-out", `${stem}.csr`, "-subj", `/CN=${options.commonName}`]);
  const ext = [`extendedKeyUsage=${options.usage}`, "basicConstraints=critical,CA:FALSE"];
  if (options.altNames !== undefined) {
    ext.push(`subjectAltName=${options.altNames.join(",")}`);
  }
  writeFileSync(join(dir, `${stem}.ext`), ext.join("\n") + "\n");
  openssl(dir, [
    "x509", "-req", "-in", `${stem}.csr`, "-CA", `${ca}-ca.pem`, "-CAkey", `${ca}-ca-key.pem`, "-CAcreateserial",
    "-out", `${stem}.pem`, "-days", "2", "-extfile", `${stem}.ext`,
  ]);
  return { cert: join(dir, `${stem}.pem`), key: join(dir, `${stem}-key.pem`) };
}
