"""The real `jobwarden serve --tls-*` with mutual TLS, and the real CLI with --tls-* options.

Identity comes from the client certificate: the config maps the common names "alice-cli" and
"bob-cli" to two owners, and no bearer token is used anywhere.
"""

from __future__ import annotations

import dataclasses
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import certs, proc


@dataclasses.dataclass(frozen=True)
class Served:
    address: str
    ca: certs.Authority
    alice: certs.Pair
    bob: certs.Pair


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("tls-cli")
    ca = certs.Authority.create(root / "pki", "cli")
    server = ca.server()
    config = root / "jobwarden.toml"
    config.write_text(
        '[[tokens]]\nclient_cn = "alice-cli"\nowner = "alice"\n\n'
        '[[tokens]]\nclient_cn = "bob-cli"\nowner = "bob"\n'
    )
    flags = ["--config", str(config), "--tls-cert", str(server.cert), "--tls-key", str(server.key)]
    with proc.serving(root / "tls.db", *flags, "--tls-client-ca", str(ca.cert)) as (_, address):
        yield Served(address=address, ca=ca, alice=ca.client("alice-cli"), bob=ca.client("bob-cli"))


def jobs(
    served: Served, *args: str, pair: certs.Pair | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    tls = ["--tls-ca", str(served.ca.cert)]
    if pair is not None:
        tls += ["--tls-cert", str(pair.cert), "--tls-key", str(pair.key)]
    return proc.run(["jobs", *args, "--address", served.address, *tls], env=env)


def test_cli_over_mtls_creates_and_gets_jobs_of_its_certificates_owner(served: Served) -> None:
    job_type = f"tls.{uuid.uuid4().hex[:8]}"
    created = jobs(served, "create", job_type, pair=served.alice)
    assert created.returncode == 0, created.stderr
    job_id = created.stdout.strip()
    uuid.UUID(job_id)

    got = jobs(served, "get", job_id, "--json", pair=served.alice)
    assert got.returncode == 0, got.stderr
    assert f'"id": "{job_id}"' in got.stdout and '"owner": "alice"' in got.stdout

    # The same options from the environment; bob's certificate does not reach alice's job.
    env = {"JOBWARDEN_TLS_CERT": str(served.bob.cert), "JOBWARDEN_TLS_KEY": str(served.bob.key)}
    as_bob = jobs(served, "get", job_id, env=env)
    assert as_bob.returncode == 1
    assert as_bob.stderr.startswith("error: NOT_FOUND")


@pytest.mark.parametrize("how", ["plaintext", "no client certificate"])
def test_cli_without_tls_or_without_a_client_certificate_cannot_connect(served: Served, how: str) -> None:
    if how == "plaintext":
        result = proc.run(["jobs", "list", "--address", served.address])
    else:
        result = jobs(served, "list")
    assert result.returncode == 3, (result.stdout, result.stderr)
    assert f"the server at {served.address} is unavailable" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_bad_tls_key_path_exits_2_with_one_line(tmp_path: Path) -> None:
    server = certs.Authority.create(tmp_path, "bad").server()
    missing = tmp_path / "no-such-key.pem"
    result = proc.run(
        [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            str(tmp_path / "x.db"),
            "--tls-cert",
            str(server.cert),
            "--tls-key",
            str(missing),
        ]
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: TLS key file {missing}: cannot read it (No such file or directory)"
    ]
    assert not (tmp_path / "x.db").exists()  # refused before touching the database
