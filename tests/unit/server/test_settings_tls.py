"""TLS settings: the [tls] table and the --tls-* overrides, client-certificate identities, and the
rule that TLS alone never opens a non-loopback address."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobwarden_server import settings
from jobwarden_server.domain.auth import Role
from jobwarden_server.domain.errors import ConfigError
from jobwarden_server.tls import TlsSettings

# Only the PEM markers are checked when settings load; real handshakes are tested in integration.
CERT = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def pem(tmp_path: Path) -> Path:
    """A directory holding cert.pem, key.pem and ca.pem."""
    (tmp_path / "cert.pem").write_bytes(CERT)
    (tmp_path / "key.pem").write_bytes(KEY)
    (tmp_path / "ca.pem").write_bytes(CERT)
    return tmp_path


def _config(directory: Path, text: str) -> str:
    path = directory / "jobwarden.toml"
    path.write_text(text)
    return str(path)


def test_tls_table_paths_are_relative_to_the_config_file(pem: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _config(pem, '[tls]\ncert = "cert.pem"\nkey = "key.pem"\nclient_ca = "ca.pem"\n')
    monkeypatch.chdir(pem.parent)  # anywhere but the config's directory
    loaded = settings.load(path)
    assert loaded.tls == TlsSettings(cert_chain=CERT, private_key=KEY, client_ca=CERT)
    assert loaded.tls.mutual


def test_flags_override_the_tls_table_key_by_key(pem: Path) -> None:
    other = pem / "other-cert.pem"
    other.write_bytes(CERT + b"# other\n")
    path = _config(pem, '[tls]\ncert = "cert.pem"\nkey = "key.pem"\n')
    loaded = settings.load(path, tls_cert=str(other), tls_client_ca=str(pem / "ca.pem"))
    assert loaded.tls is not None
    assert loaded.tls.cert_chain == CERT + b"# other\n" and loaded.tls.private_key == KEY
    assert loaded.tls.client_ca == CERT


def test_no_tls_files_means_plaintext() -> None:
    assert settings.load(None).tls is None


def test_the_private_key_never_shows_in_a_repr(pem: Path) -> None:
    loaded = settings.load(None, tls_cert=str(pem / "cert.pem"), tls_key=str(pem / "key.pem"))
    assert "MIIE" not in repr(loaded)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tls_key": "key.pem"}, r"a key needs a cert too"),
        ({"tls_cert": "cert.pem"}, r"a cert needs a key too"),
        ({"tls_client_ca": "ca.pem"}, r"a client CA needs the server's cert and key"),
        ({"tls_cert": "cert.pem", "tls_key": "nope.pem"}, r"TLS key file .*nope\.pem: cannot read it"),
        (
            {"tls_cert": "key.pem", "tls_key": "cert.pem"},
            r"TLS cert file .*key\.pem: not a PEM file with a CERT",
        ),
    ],
)
def test_wrong_tls_files_are_refused_with_one_clear_message(
    pem: Path, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        settings.load(None, **{k: str(pem / v) for k, v in overrides.items()})


def test_client_cn_entries_map_certificates_to_owners(pem: Path) -> None:
    path = _config(
        pem,
        '[tls]\ncert = "cert.pem"\nkey = "key.pem"\nclient_ca = "ca.pem"\n'
        '[[tokens]]\nclient_cn = "worker-7"\nowner = "acme"\nroles = ["worker"]\n',
    )
    loaded = settings.load(path, listen="0.0.0.0:6000")
    principal = loaded.principals_by_cn["worker-7"]
    assert principal.owner == "acme" and principal.name == "worker-7"
    assert principal.has(Role.WORKER) and not principal.has(Role.CLIENT)
    assert loaded.principals_by_hash == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[tokens]]\nclient_cn = "w"\nowner = "a"\n', "client_cn need mutual TLS"),
        (
            '[tls]\ncert = "cert.pem"\nkey = "key.pem"\n[[tokens]]\nclient_cn = "w"\nowner = "a"\n',
            "mutual TLS",
        ),
        ('[[tokens]]\nclient_cn = "w"\nsha256 = "' + "a" * 64 + '"\nowner = "a"\n', "not both"),
        ('[[tokens]]\nclient_cn = ""\nowner = "a"\n', "must not be empty"),
        ('[[tokens]]\nclient_cn = "w"\n', "owner is required"),
        (
            '[tls]\ncert = "cert.pem"\nkey = "key.pem"\npassword = "x"\n',
            r"\[tls\]: unknown keys \['password'\]",
        ),
        ('tls = "on"\n', r"\[tls\] must be a table"),
    ],
)
def test_wrong_tls_and_client_cn_configs(pem: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings.load(_config(pem, text))


def test_tls_without_credentials_still_binds_to_loopback_only(pem: Path) -> None:
    tls = TlsSettings.from_files(pem / "cert.pem", pem / "key.pem", pem / "ca.pem")
    with pytest.raises(ConfigError, match="without tokens"):
        settings.Settings(listen="0.0.0.0:50051", tls=tls).checked()
    assert settings.Settings(listen="127.0.0.1:0", tls=tls).checked().tls is tls
