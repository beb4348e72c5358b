"""The config file: tokens, lifecycles per job type, and clear errors for wrong files."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from jobwarden_server import settings
from jobwarden_server.domain.auth import Role
from jobwarden_server.domain.errors import ConfigError
from jobwarden_server.domain.stall import StallAction, StallRule
from jobwarden_server.domain.status import JobStatus


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "jobwarden.toml"
    path.write_text(text)
    return str(path)


def test_full_config(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"secret").hexdigest()
    path = _write(
        tmp_path,
        f"""
listen = "0.0.0.0:6000"
database = "x.db"
max_streams_per_owner = 7
watch_queue_size = 9
[[tokens]]
sha256 = "{digest}"
owner = "acme"
roles = ["worker"]
[job_types]
"render" = "review"
[lifecycles.review]
initial = "QUEUED"
transitions = [["QUEUED", "RUNNING"], ["RUNNING", "COMPLETED"], ["RUNNING", "FAILED"]]
[retry]
default_max_attempts = 5
""",
    )
    loaded = settings.load(path)
    assert loaded.listen == "0.0.0.0:6000"
    principal = loaded.principals_by_hash[digest]
    assert principal.owner == "acme" and principal.has(Role.WORKER) and not principal.has(Role.CLIENT)
    table = loaded.lifecycles.for_job_type("render")
    assert table.name == "review" and table.allows(JobStatus.RUNNING, JobStatus.COMPLETED)
    assert loaded.lifecycles.for_job_type("other").name == "standard"
    assert loaded.retry.default_max_attempts == 5
    assert (loaded.max_streams_per_owner, loaded.subscriber_queue_size) == (7, 9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[lifecycles.bad]\ntransitions = [["QUEUED","RUNNING"],["RUNNING","QUEUED"]]',
            "cannot reach a terminal state",
        ),
        (
            '[lifecycles.bad]\ntransitions = [["QUEUED","RUNNING"],["RUNNING","DONE"]]',
            "unknown status 'DONE'",
        ),
        (
            '[lifecycles.bad]\ntransitions = [["QUEUED","RUNNING"],["RUNNING","FAILED"],["FAILED","QUEUED"]]',
            "FAILED",
        ),
        ('[job_types]\n"x" = "nope"', "unknown lifecycle 'nope'"),
        ('[[tokens]]\nsha256 = "abc"\nowner = "a"', "64 hex"),
        ("surprise = 1", "unknown keys"),
        ("listen = ", "config file"),
        ('max_streams_per_owner = "many"', "max_streams_per_owner must be a whole number"),
        ("watch_queue_size = 0", "watch_queue_size must be a whole number"),
        ('[queue_timeouts]\n"x" = "soon"', "queue_timeouts.x must be a number of seconds"),
        ('[queue_timeouts]\n"x" = 0.5', "queue_timeouts.x must be between 1 s and 366 days"),
        ('[job_types]\n"x" = "simple"\n[queue_timeouts]\n"x" = 60', "lifecycle 'simple' has no EXPIRED"),
        ("queue_timeouts = 5", "queue_timeouts must be a table"),
        ("stall = 5", r"\[stall\] must be a table"),
        ("[stall]\nafter = 5", r"\[stall\]: unknown keys \['after'\]; per job type"),
        ('[stall.types."x"]\naction = "fail"', "stall.types.x.after is required"),
        ('[stall.types."x"]\nafter = 0', "stall.types.x.after = 0: must be above 0"),
        ('[stall.types."x"]\nafter = "soon"', "stall.types.x.after = 'soon': give seconds"),
        ('[stall.types."x"]\nafter = "never"', "stall.types.x.after = 'never': give seconds"),
        (
            '[stall.types."x"]\nafter = 9\naction = "kill"',
            'stall.types.x.action = \'kill\': use "flag" or "fail"',
        ),
        ('[stall.types."x"]\nafter = 9\nwhen = 1', r"stall.types.x: unknown keys \['when'\]"),
        ('[stall.types."bad type"]\nafter = 9', "stall.types.bad type: not a job type"),
        (
            (
                '[lifecycles.nofail]\ntransitions = [["QUEUED","RUNNING"],["RUNNING","COMPLETED"]]\n'
                '[job_types]\n"x" = "nofail"\n[stall.types."x"]\nafter = 9\naction = "fail"'
            ),
            "lifecycle 'nofail' has no RUNNING -> FAILED",
        ),
        ('log_format = "xml"', "log_format must be text or json, not 'xml'"),
    ],
)
def test_wrong_configs_are_refused_with_a_clear_message(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings.load(_write(tmp_path, text))


def test_log_format_from_the_file_and_the_flag_over_it(tmp_path: Path) -> None:
    path = _write(tmp_path, 'log_format = "json"')
    assert settings.load().log_format == "text"
    assert settings.load(path).log_format == "json"
    assert settings.load(path, log_format="text").log_format == "text"
    with pytest.raises(ConfigError, match="log_format must be text or json, not 'JSON'"):
        settings.load(log_format="JSON")


def test_queue_timeouts_per_job_type(tmp_path: Path) -> None:
    loaded = settings.load(_write(tmp_path, '[queue_timeouts]\n"report.render" = 3600\n"mail" = 1.5'))
    assert loaded.queue_timeouts == {"report.render": 3600.0, "mail": 1.5}


def test_stall_rules_per_job_type(tmp_path: Path) -> None:
    text = '[stall.types."report.render"]\nafter = "5m"\naction = "fail"\n[stall.types."mail"]\nafter = 2.5'
    loaded = settings.load(_write(tmp_path, text))
    assert loaded.stall == {
        "report.render": StallRule(after_s=300.0, action=StallAction.FAIL),
        "mail": StallRule(after_s=2.5, action=StallAction.FLAG),
    }
    assert settings.load(_write(tmp_path, "")).stall == {}


def test_no_tokens_means_loopback_only() -> None:
    with pytest.raises(ConfigError, match="without tokens"):
        settings.Settings(listen="0.0.0.0:50051").checked()
    for ok in ("127.0.0.1:1", "localhost:1", "[::1]:1"):
        assert settings.Settings(listen=ok).checked().listen == ok


@pytest.mark.parametrize(
    "listen", ["127.0.0.1:0", "127.0.0.1:1", "127.0.0.1:65535", "localhost:50051", "[::1]:0"]
)
def test_listen_ports_from_1_to_65535_and_0_for_any_free_port_are_accepted(listen: str) -> None:
    assert settings.Settings(listen=listen).checked().listen == listen


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("127.0.0.1:65536", "port 65536 is out of range; use 1-65535 \\(or 0 for any free port\\)"),
        ("127.0.0.1:80000", "port 80000 is out of range"),
        ("127.0.0.1:-1", "port '-1' is not a number"),
        ("127.0.0.1:http", "port 'http' is not a number"),
        ("127.0.0.1:", "port '' is not a number"),
        ("127.0.0.1", "is not host:port"),
        (":50051", "is not host:port"),
        ("nonsense", "is not host:port"),
        ("::1:50051", "put an IPv6 host in brackets"),
        ("[127.0.0.1]:50051", "is not an IPv6 address in brackets"),
        ("[::1:50051", "is not an IPv6 address in brackets"),
        ("bad host:50051", "is not a host name or IP address"),
        ("unix:/tmp/jw.sock", "is not a number; give host:port"),
    ],
)
def test_malformed_listen_addresses_are_refused_before_anything_else(listen: str, message: str) -> None:
    # Even without tokens: the address itself is the mistake, not the missing tokens.
    with pytest.raises(ConfigError, match=f"listen address '{re.escape(listen)}'.*{message}"):
        settings.Settings(listen=listen).checked()


@pytest.mark.parametrize("source", ["flag", "environment", "file"])
def test_a_port_out_of_range_is_refused_wherever_it_comes_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    monkeypatch.delenv(settings.ENV_CONFIG, raising=False)
    monkeypatch.delenv(settings.ENV_LISTEN, raising=False)
    config = _write(tmp_path, 'listen = "127.0.0.1:80000"\n' if source == "file" else "")
    if source == "environment":
        monkeypatch.setenv(settings.ENV_LISTEN, "127.0.0.1:80000")
    with pytest.raises(ConfigError, match="port 80000 is out of range"):
        settings.load(config, listen="127.0.0.1:80000" if source == "flag" else None)
