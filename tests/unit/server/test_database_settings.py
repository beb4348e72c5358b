"""Where the database is and how many connections to it: flag, environment, config file, in that order."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobwarden_server import settings, store
from jobwarden_server.domain.errors import ConfigError

PG = "postgresql://jw@db.internal:5432/jobs"


def _config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "jobwarden.toml"
    path.write_text(text)
    return str(path)


def test_the_database_comes_from_the_flag_then_the_environment_then_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(settings.ENV_DATABASE, raising=False)
    monkeypatch.delenv(settings.ENV_CONFIG, raising=False)
    config = _config(tmp_path, 'database = "postgresql://jw@file/jobs"\n')
    assert settings.load(config).database == "postgresql://jw@file/jobs"
    monkeypatch.setenv(settings.ENV_DATABASE, PG)
    assert settings.load(config).database == PG
    assert settings.load(config, database="other.db").database == "other.db"


def test_pool_size_is_read_from_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.ENV_CONFIG, raising=False)
    assert settings.load(_config(tmp_path, "database_pool_size = 12\n")).database_pool_size == 12
    assert settings.load(_config(tmp_path, "")).database_pool_size == settings.Settings().database_pool_size


@pytest.mark.parametrize("value", ["0", "-1", "2.5", '"5"', "true"])
def test_a_pool_size_that_is_not_a_positive_whole_number_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.delenv(settings.ENV_CONFIG, raising=False)
    with pytest.raises(ConfigError, match="database_pool_size"):
        settings.load(_config(tmp_path, f"database_pool_size = {value}\n"))


def test_logs_show_the_database_without_its_password() -> None:
    shown = store.display_url("postgresql://jw:s3cret@db.internal:5432/jobs")
    assert "s3cret" not in shown and "db.internal:5432/jobs" in shown
    assert store.display_url("jobwarden.db") == "jobwarden.db"


def test_postgresql_needs_two_pooled_connections_sqlite_one() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        settings.Settings(database=PG, database_pool_size=1).checked()
    settings.Settings(database=PG, database_pool_size=2).checked()
    settings.Settings(database="jobwarden.db", database_pool_size=1).checked()


def test_sqlite_syncs_at_checkpoints_unless_told_to_sync_every_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(settings.ENV_CONFIG, raising=False)
    assert settings.Settings().sqlite_synchronous == "NORMAL"
    assert settings.load(_config(tmp_path, 'sqlite_synchronous = "full"\n')).sqlite_synchronous == "FULL"
    with pytest.raises(ConfigError, match="sqlite_synchronous must be NORMAL or FULL"):
        settings.load(_config(tmp_path, 'sqlite_synchronous = "OFF"\n'))


@pytest.mark.parametrize(("mode", "pragma_value"), [("FULL", 2), ("NORMAL", 1)])
async def test_the_sqlite_write_connection_runs_with_the_chosen_synchronous(
    tmp_path: Path, mode: str, pragma_value: int
) -> None:
    db = store.open_store(str(tmp_path / "j.db"), sqlite_synchronous=mode)
    try:
        async with db.write_engine.connect() as conn:
            assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == pragma_value
    finally:
        await db.close()


def test_a_url_with_both_ssl_and_sslmode_is_refused() -> None:
    # sslmode (libpq's name, what most URLs carry) is taken as asyncpg's ssl; both at once is ambiguous.
    with pytest.raises(ConfigError, match="give ssl or sslmode in the URL, not both"):
        store.open_store(f"{PG}?sslmode=require&ssl=disable", pool_size=2)
