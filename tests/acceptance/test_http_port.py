"""`jobwarden serve --http-listen`: start-up refusals are one line, exit status 2 and an untouched
database, like the gRPC port's; with [tls] the HTTP port serves HTTPS with the same certificate."""

from __future__ import annotations

import hashlib
import socket
import ssl
from pathlib import Path

import httpx
import pytest
from support import certs, proc

TOKEN = "token-http-acceptance"


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "jobwarden.toml"
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    path.write_text(f'[[tokens]]\nsha256 = "{digest}"\nowner = "acme"\n{extra}')
    return path


def _refused(tmp_path: Path, *args: str) -> str:
    database = tmp_path / "jw.db"
    result = proc.run(["serve", "--listen", "127.0.0.1:0", "--database", str(database), *args])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert not database.exists()  # refused before the database was touched
    return lines[0]


def test_plaintext_http_on_another_host_is_refused_without_the_opt_out(tmp_path: Path) -> None:
    line = _refused(tmp_path, "--config", str(_config(tmp_path)), "--http-listen", "0.0.0.0:8080")
    assert line == (
        "error: refusing to serve HTTP on 0.0.0.0:8080 without TLS: set [tls] cert and key (--tls-cert, "
        "--tls-key), or, behind a proxy that terminates TLS, [http] insecure = true (--http-insecure)"
    )


def test_an_http_port_in_use_is_refused_naming_the_flag(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        line = _refused(tmp_path, "--http-listen", f"127.0.0.1:{port}")
    assert line == (
        f"error: cannot listen on 127.0.0.1:{port}: the address is already in use (another jobwarden or "
        "another program listens there); stop it or choose another --http-listen"
    )


def test_with_tls_the_http_port_serves_https_with_the_grpc_ports_certificate(tmp_path: Path) -> None:
    authority = certs.Authority.create(tmp_path, "ca")
    pair = authority.server()
    tls = f'[tls]\ncert = "{pair.cert}"\nkey = "{pair.key}"\n'
    with proc.serving(
        tmp_path / "jw.db", "--config", str(_config(tmp_path, tls)), "--http-listen", "127.0.0.1:0"
    ) as (process, _):
        url = proc.dashboard_url(process)
        assert url.startswith("https://127.0.0.1:")
        trusted = ssl.create_default_context(cafile=str(authority.cert))
        with httpx.Client(verify=trusted, timeout=10) as client:
            refused = client.get(f"{url}api/jobs")
            assert refused.status_code == 401
            login = client.post(f"{url}api/session", json={"token": TOKEN})
            assert login.status_code == 200
            assert "Secure" in login.headers["set-cookie"]
            assert client.get(f"{url}api/jobs").json() == {"jobs": [], "next_page_token": ""}


def test_under_mutual_tls_a_client_certificate_identifies_the_caller_over_http(tmp_path: Path) -> None:
    authority = certs.Authority.create(tmp_path, "ca")
    pair = authority.server()
    worker = authority.client("worker-7")
    tls = (
        f'[tls]\ncert = "{pair.cert}"\nkey = "{pair.key}"\nclient_ca = "{authority.cert}"\n'
        '[[tokens]]\nclient_cn = "worker-7"\nowner = "plant"\nroles = ["client"]\n'
    )
    with proc.serving(
        tmp_path / "jw.db", "--config", str(_config(tmp_path, tls)), "--http-listen", "127.0.0.1:0"
    ) as (process, _):
        url = proc.dashboard_url(process)
        with_certificate = ssl.create_default_context(cafile=str(authority.cert))
        with_certificate.load_cert_chain(str(worker.cert), str(worker.key))
        with httpx.Client(verify=with_certificate, timeout=10) as client:
            assert client.get(f"{url}api/session").json()["owner"] == "plant"
            # A token, when sent, decides: the caller asked to be someone specific.
            as_acme = client.get(f"{url}api/session", headers={"Authorization": f"Bearer {TOKEN}"})
            assert as_acme.json()["owner"] == "acme"
        without = ssl.create_default_context(cafile=str(authority.cert))
        with httpx.Client(verify=without, timeout=10) as client, pytest.raises(httpx.HTTPError):
            client.get(f"{url}api/session")  # no certificate: the handshake fails
