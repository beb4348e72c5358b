"""The HTTP port's settings: off by default, [http] and --http-listen, and the gRPC port's rule
(no tokens: loopback only) plus TLS (or the explicit opt-out) on any other address."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobwarden_server import settings
from jobwarden_server.domain.errors import ConfigError

TOKEN = '[[tokens]]\nsha256 = "' + "a" * 64 + '"\nowner = "acme"\n'
CERT = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def _load(tmp_path: Path, text: str, **overrides: object) -> settings.Settings:
    path = tmp_path / "jobwarden.toml"
    path.write_text(text)
    return settings.load(str(path), **overrides)


def test_off_unless_asked_for(tmp_path: Path) -> None:
    assert _load(tmp_path, "").http_listen == ""
    assert _load(tmp_path, '[http]\nlisten = "127.0.0.1:8080"\n').http_listen == "127.0.0.1:8080"
    flag = _load(tmp_path, '[http]\nlisten = "127.0.0.1:8080"\n', http_listen="127.0.0.1:9090")
    assert flag.http_listen == "127.0.0.1:9090"


def test_a_bad_address_or_key_stops_loading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="port 'x' is not a number"):
        _load(tmp_path, '[http]\nlisten = "127.0.0.1:x"\n')
    with pytest.raises(ConfigError, match=r"\[http\]: unknown keys \['port'\]"):
        _load(tmp_path, "[http]\nport = 80\n")
    with pytest.raises(ConfigError, match="insecure must be true or false"):
        _load(tmp_path, '[http]\ninsecure = "yes"\n')


def test_another_host_needs_tokens_even_with_the_opt_out(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, '[http]\nlisten = "0.0.0.0:8080"\ninsecure = true\n')
    assert str(refused.value) == (
        "refusing to serve HTTP on 0.0.0.0:8080 without tokens: configure [[tokens]] or use 127.0.0.1"
    )


def test_another_host_needs_tls_or_the_explicit_opt_out(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"without TLS: set \[tls\] cert and key .* \[http\] insecure = true"
    ):
        _load(tmp_path, TOKEN + '[http]\nlisten = "0.0.0.0:8080"\n')
    opted_out = _load(tmp_path, TOKEN + '[http]\nlisten = "0.0.0.0:8080"\ninsecure = true\n')
    assert opted_out.http_insecure
    assert _load(tmp_path, TOKEN, http_listen="0.0.0.0:8080", http_insecure=True).http_insecure
    (tmp_path / "cert.pem").write_bytes(CERT)
    (tmp_path / "key.pem").write_bytes(KEY)
    with_tls = _load(
        tmp_path, TOKEN + '[tls]\ncert = "cert.pem"\nkey = "key.pem"\n', http_listen="0.0.0.0:8080"
    )
    assert with_tls.tls is not None and with_tls.tls.paths == (tmp_path / "cert.pem", tmp_path / "key.pem")
