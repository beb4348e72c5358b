"""`jobwarden serve --log-format json`: every line the server writes to stderr is one JSON object, and
the records about a job carry its id. A format it does not know stops it at start-up in one line."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from support import flows, proc, rpc


async def test_every_stderr_line_is_a_json_record_and_a_jobs_records_name_it(tmp_path: Path) -> None:
    with proc.serving(tmp_path / "jw.db", "--log-format", "json") as (server, address):
        async with rpc.stubs(address) as s:
            job = await flows.create(s)
            claim = await flows.claim_one(s)
            await flows.fail(s, claim)  # at INFO (a claim or a completion is logged at DEBUG)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0
        assert server.stderr is not None
        lines = server.stderr.read().splitlines()
    records = [json.loads(line) for line in lines]  # fails on any line that is not one JSON object
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    about_job = [record for record in records if record.get("job_id") == job.id]
    assert [record["message"].split(" to=")[1].split()[0] for record in about_job] == ["FAILED"]
    assert {record["logger"] for record in about_job} == {"jobwarden_server.service.writer"}
    assert any(record["message"].startswith("jobwarden listening on") for record in records)


def test_an_unknown_log_format_is_refused_in_one_line(tmp_path: Path) -> None:
    result = proc.run(
        ["serve", "--listen", "127.0.0.1:0", "--database", str(tmp_path / "x.db"), "--log-format", "xml"]
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: log_format must be text or json, not 'xml'"]
    assert not (tmp_path / "x.db").exists()


def test_the_config_file_chooses_json_too(tmp_path: Path) -> None:
    config = tmp_path / "jobwarden.toml"
    config.write_text('log_format = "json"\n')
    result = proc.run(["migrate", "--config", str(config), "--database", str(tmp_path / "m.db")])
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert records and all(record["level"] == "INFO" for record in records)
    assert any("Running upgrade" in record["message"] for record in records)
