"""The pure rules of completion callbacks: signatures (checked with the `standardwebhooks` package),
payloads, backoff, which addresses may be called, and the [callbacks] config."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import random
from pathlib import Path

import pytest
import standardwebhooks

from jobwarden_server import settings
from jobwarden_server.domain import errors, webhooks
from jobwarden_server.domain.errors import ConfigError
from jobwarden_server.domain.records import Job, JobError, Progress
from jobwarden_server.domain.status import JobStatus, StopReason

NEW = "whsec_" + base64.b64encode(b"n" * 32).decode()
OLD = "whsec_" + base64.b64encode(b"o" * 24).decode()
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _job(**overrides: object) -> Job:
    values: dict[str, object] = {
        "id": "j1",
        "owner": "acme",
        "job_type": "render",
        "lifecycle": "standard",
        "status": JobStatus.FAILED,
        "progress": Progress(),
        "parameters": {},
        "result": None,
        "error": JobError(message="boom", reason="X"),
        "stop_reason": StopReason.MAX_ATTEMPTS_EXCEEDED,
        "attempt": 3,
        "max_attempts": 3,
        "priority": 0,
        "labels": {"order": "17"},
        "run_after": None,
        "deadline": None,
        "callback_url": "https://example.com/h",
        "cancel_requested": False,
        "version": 5,
        "create_time": NOW,
        "update_time": NOW,
        "start_time": NOW,
        "complete_time": NOW,
        "worker_id": "w",
        "lease_token": "",
        "lease_expire_time": None,
        "lease_duration_s": 0.0,
        "last_sequence": 5,
        "request_id": "",
    }
    values.update(overrides)
    return Job(**values)  # type: ignore[arg-type]


def test_signatures_verify_with_every_configured_secret() -> None:
    keys = [webhooks.parse_secret(NEW), webhooks.parse_secret(OLD)]
    body = webhooks.payload(_job())
    timestamp = int(dt.datetime.now(dt.UTC).timestamp())
    headers = webhooks.headers(keys, "msg_1", timestamp, body)
    for secret in (NEW, OLD):
        assert standardwebhooks.Webhook(secret).verify(body, headers)["data"]["job_id"] == "j1"
    tampered = body.replace('"j1"', '"j2"')
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(NEW).verify(tampered, headers)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        standardwebhooks.Webhook(NEW).verify(body, {**headers, "webhook-id": "msg_2"})


def test_the_payload_says_how_the_job_ended_and_leaves_out_a_large_result() -> None:
    data = json.loads(webhooks.payload(_job()))
    assert data["type"] == "job.failed"
    assert data["data"] == {
        "job_id": "j1",
        "job_type": "render",
        "status": "FAILED",
        "stop_reason": "MAX_ATTEMPTS_EXCEEDED",
        "complete_time": "2030-01-01T00:00:00Z",
        "attempt": 3,
        "max_attempts": 3,
        "labels": {"order": "17"},
        "result": None,
        "result_truncated": False,
        "error": {"message": "boom", "reason": "X", "retryable": False},
    }
    small = json.loads(webhooks.payload(_job(status=JobStatus.COMPLETED, error=None, result={"n": 1})))
    assert (small["data"]["result"], small["data"]["result_truncated"]) == ({"n": 1}, False)
    big = json.loads(webhooks.payload(_job(result={"blob": "x" * webhooks.MAX_RESULT_BYTES})))
    assert (big["data"]["result"], big["data"]["result_truncated"]) == (None, True)


def test_which_endings_fire() -> None:
    assert webhooks.fires(_job())
    assert not webhooks.fires(_job(callback_url=""))
    assert not webhooks.fires(_job(status=JobStatus.RUNNING))
    assert webhooks.fires(_job(callback_statuses=frozenset({JobStatus.FAILED})))
    assert not webhooks.fires(_job(callback_statuses=frozenset({JobStatus.COMPLETED})))


def test_backoff_grows_is_capped_and_keeps_at_least_half() -> None:
    policy = webhooks.CallbackPolicy(initial_backoff_s=1, max_backoff_s=10, multiplier=3)
    rng = random.Random(7)
    for attempts, nominal in [(1, 1), (2, 3), (3, 9), (4, 10), (9, 10)]:
        for _ in range(50):
            assert nominal / 2 <= policy.backoff_s(attempts, rng) <= nominal


@pytest.mark.parametrize(
    ("url", "refusal"),
    [
        ("https://example.com/h", None),
        ("https://93.184.215.14/h", None),
        ("http://127.0.0.1:8080/h", "127.0.0.1 is a loopback address"),
        ("http://[::1]/h", "::1 is a loopback address"),
        ("http://localhost/h", "localhost is a loopback name"),
        ("http://api.localhost/h", "api.localhost is a loopback name"),
        ("http://10.1.2.3/h", "10.1.2.3 is a private address"),
        ("http://172.16.0.1/h", "172.16.0.1 is a private address"),
        ("http://169.254.169.254/latest", "169.254.169.254 is a cloud metadata address"),
        ("http://169.254.1.1/h", "169.254.1.1 is a link-local address"),
        ("http://[fd00:ec2::254]/h", "fd00:ec2::254 is a cloud metadata address"),
        ("http://[::ffff:127.0.0.1]/h", "127.0.0.1 is a loopback address"),
        ("http://100.100.100.200/h", "100.100.100.200 is a cloud metadata address"),
        ("http://METADATA.google.internal./x", "metadata.google.internal is a cloud metadata service"),
        ("http:///nohost", "has no host"),
    ],
)
def test_target_refusals(url: str, refusal: str | None) -> None:
    assert webhooks.CallbackPolicy().target_refusal(url) == refusal


def test_the_allow_list_admits_non_public_networks_but_not_metadata() -> None:
    policy = webhooks.CallbackPolicy(
        allow_networks=(ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("10.1.0.0/16"))
    )
    assert policy.target_refusal("http://127.0.0.1:9/h") is None
    assert policy.target_refusal("http://localhost:9/h") is None
    assert policy.target_refusal("http://10.1.2.3/h") is None
    assert policy.target_refusal("http://10.2.0.1/h") == "10.2.0.1 is a private address"
    assert policy.target_refusal("http://169.254.169.254/h") == "169.254.169.254 is a cloud metadata address"


def test_check_needs_a_secret_for_the_owner() -> None:
    policy = webhooks.CallbackPolicy(secrets={"acme": (webhooks.parse_secret(NEW),)})
    policy.check("callback_url", "acme", "https://example.com/h")
    policy.check("callback_url", "other", "")  # no callback, nothing to sign
    with pytest.raises(errors.InvalidArgument) as refused:
        policy.check("callback_url", "other", "https://example.com/h")
    assert refused.value.reason == "CALLBACK_TARGET_REFUSED"
    assert "owner 'other'" in refused.value.message


def test_callbacks_config(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        "[callbacks]\n"
        "timeout_seconds = 3\ninitial_backoff_seconds = 0.5\nmax_backoff_seconds = 60\n"
        "horizon_seconds = 600\npoll_interval_seconds = 0.25\nconcurrency = 4\nmultiplier = 3\n"
        'allow_networks = ["127.0.0.0/8", "fd12::/16"]\n'
        "[callbacks.secrets]\n"
        f'acme = ["{NEW}", "{OLD}"]\n'
        f'solo = "{NEW}"\n'
    )
    policy = settings.load(str(config)).callbacks
    assert (policy.timeout_s, policy.initial_backoff_s, policy.max_backoff_s) == (3.0, 0.5, 60.0)
    assert (policy.horizon_s, policy.poll_interval_s, policy.concurrency, policy.multiplier) == (
        600,
        0.25,
        4,
        3,
    )
    assert policy.allow_networks == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("fd12::/16"))
    assert policy.secrets == {"acme": (b"n" * 32, b"o" * 24), "solo": (b"n" * 32,)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[callbacks]\ntimeout = 3\n", "[callbacks]: unknown keys ['timeout']"),
        ("[callbacks]\ntimeout_seconds = 0\n", "timeout_seconds must be a number of seconds above 0"),
        ("[callbacks]\nconcurrency = 0\n", "concurrency must be a whole number >= 1"),
        ("[callbacks]\nmultiplier = 0.5\n", "multiplier must be a number >= 1"),
        ('[callbacks]\nallow_networks = ["10.0.0.0/33"]\n', "allow_networks"),
        (
            "[callbacks]\ninitial_backoff_seconds = 9\nmax_backoff_seconds = 1\n",
            "max_backoff_seconds must not be below",
        ),
        (
            '[callbacks.secrets]\nacme = "nope"\n',
            "[callbacks.secrets] acme: a callback secret starts with 'whsec_'",
        ),
        ('[callbacks.secrets]\nacme = "whsec_c2hvcnQ="\n', "24 to 64 bytes, not 5"),
        ('[callbacks.secrets]\nacme = "whsec_!!!"\n', "base64"),
        (f'[callbacks.secrets]\nacme = ["{NEW}", "{NEW}", "{OLD}"]\n', "a list of two while rotating"),
    ],
)
def test_wrong_callbacks_configs_are_refused(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as refused:
        settings.load(str(config))
    assert message in str(refused.value)
