"""Retention: the [retention] config (strict, one-line errors) and the rules it makes at a given time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from jobwarden_server import settings
from jobwarden_server.domain import retention
from jobwarden_server.domain.errors import ConfigError
from jobwarden_server.domain.retention import Retention, RetentionRule
from jobwarden_server.domain.status import JobStatus

NOW = dt.datetime(2030, 1, 10, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(1, 1.0), (604800, 604800.0), ("30s", 30.0), ("15m", 900.0), ("12h", 43200.0), ("7d", 604800.0)],
)
def test_durations_are_seconds_or_a_number_with_a_unit(value: Any, seconds: float) -> None:
    assert retention.parse_duration("retention.completed", value) == seconds


def test_never_keeps_for_good() -> None:
    assert retention.parse_duration("retention.completed", "never") is None


@pytest.mark.parametrize(
    "value", ["7 days", "7D", "1.5d", "d", "", "-1d", "0d", 0, -5, 1.5, True, "7dd", " 7d", [7], "forever"]
)
def test_anything_else_is_a_one_line_config_error(value: Any) -> None:
    with pytest.raises(ConfigError) as refused:
        retention.parse_duration("retention.completed", value)
    message = str(refused.value)
    assert message.startswith("retention.completed = ")
    assert "\n" not in message


def test_more_than_a_hundred_years_is_refused() -> None:
    with pytest.raises(ConfigError, match="between 1 second and 36500 days"):
        retention.parse_duration("retention.failed", "36501d")


def test_a_full_table_parses() -> None:
    parsed = retention.parse(
        {
            "completed": "7d",
            "failed": 3600,
            "interval_seconds": 5,
            "types": {"report.render": {"completed": "1d", "failed": "never"}},
        }
    )
    assert parsed == Retention(
        by_status={JobStatus.COMPLETED: 604800.0, JobStatus.FAILED: 3600.0},
        by_type={"report.render": {JobStatus.COMPLETED: 86400.0, JobStatus.FAILED: None}},
        interval_s=5.0,
    )
    assert parsed.enabled
    assert not retention.parse({}).enabled
    assert not retention.parse({"types": {"a": {"failed": "never"}}}).enabled


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"running": "1d"}, "unknown key 'running'; only finished jobs are deleted"),
        ({"complete": "1d"}, "unknown key 'complete'"),
        ({"interval_seconds": 0}, "retention.interval_seconds must be a number of seconds above 0"),
        ({"interval_seconds": "60"}, "retention.interval_seconds must be"),
        ({"report.render": {"completed": "1d"}}, '[retention.types."report.render"]'),
        ({"types": {"bad type": {"completed": "1d"}}}, "retention.types.bad type: not a job type"),
        ({"types": {"a": "1d"}}, "retention.types.a must be a table"),
        ({"types": {"a": {"queued": "1d"}}}, "retention.types.a: unknown key 'queued'"),
        (
            {"types": {"a": {"completed": "1 day"}}},
            'retention.types.a.completed = "1 day": give whole seconds',
        ),
        ({"types": ["a"]}, "retention.types must be tables"),
    ],
)
def test_table_errors_name_the_key(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        retention.parse(raw)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_type_rule_wins_over_the_default_for_its_status_only() -> None:
    policy = Retention(
        by_status={JobStatus.COMPLETED: 7 * 86400.0, JobStatus.FAILED: 30 * 86400.0},
        by_type={"a": {JobStatus.COMPLETED: 86400.0}, "b": {JobStatus.COMPLETED: None}},
    )
    assert policy.rules(NOW) == [
        RetentionRule(status=JobStatus.COMPLETED, before=NOW - DAY, job_types=frozenset({"a"})),
        RetentionRule(status=JobStatus.COMPLETED, before=NOW - 7 * DAY, except_types=frozenset({"a", "b"})),
        RetentionRule(status=JobStatus.FAILED, before=NOW - 30 * DAY),
    ]


def test_no_policy_makes_no_rules() -> None:
    assert Retention().rules(NOW) == []


def _load(tmp_path: Path, text: str, **overrides: Any) -> settings.Settings:
    path = tmp_path / "jobwarden.toml"
    path.write_text(text)
    return settings.load(str(path), **overrides)


def test_the_config_file_carries_the_table(tmp_path: Path) -> None:
    loaded = _load(
        tmp_path, '[retention]\ncompleted = "7d"\n[retention.types."report.render"]\ncompleted = "1d"\n'
    )
    assert loaded.retention.by_status == {JobStatus.COMPLETED: 604800.0}
    assert loaded.retention.by_type == {"report.render": {JobStatus.COMPLETED: 86400.0}}
    assert settings.Settings().retention == Retention()


def test_a_wrong_config_file_stops_the_server_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, '[retention]\ncompleted = "a week"\n')
    assert str(refused.value) == (
        'retention.completed = "a week": give whole seconds (604800), a whole number with s, m, h or d '
        '("7d"), or "never"'
    )


def test_postgresql_with_retention_needs_a_third_pooled_connection() -> None:
    policy = Retention(by_status={JobStatus.COMPLETED: 60.0})
    pg = "postgresql://u@h/db"
    with pytest.raises(ConfigError, match="at least 3 with PostgreSQL and \\[retention\\]"):
        settings.Settings(database=pg, database_pool_size=2, retention=policy).checked()
    settings.Settings(database=pg, database_pool_size=3, retention=policy).checked()
    settings.Settings(database=pg, database_pool_size=2).checked()
