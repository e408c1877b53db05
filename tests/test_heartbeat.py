"""A long statement logs a heartbeat on stderr; a quick one does not; --json stays clean."""

from __future__ import annotations

import json

from conftest import Database, Project


def test_a_long_statement_logs_a_heartbeat(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_slow.sql", "SELECT 1;\nSELECT pg_sleep(0.75);\n")
    result = project.run("migrate", "--json", env={"MIGRATE_HEARTBEAT_INTERVAL": "0.2"})
    assert result.code == 0, result.err
    beats = [line for line in result.err.splitlines() if "still running" in line]
    assert len(beats) >= 2, result.err
    assert beats[0].startswith("migrate: still running: lanconnect 001_slow.sql statement 2 (line 2), ")
    assert json.loads(result.out)["applied"][0]["version"] == "001"
    assert db.history() == [("001", "applied")]


def test_a_quick_migration_logs_no_heartbeat(project: Project) -> None:
    project.write("lanconnect", "001_quick.sql", "SELECT 1;\n")
    result = project.run("migrate", env={"MIGRATE_HEARTBEAT_INTERVAL": "0.5"})
    assert result.code == 0, result.err
    assert "still running" not in result.err


def test_one_heartbeat_for_the_run_names_the_version_running_now(project: Project, db: Database) -> None:
    """The run's single heartbeat follows the versions: the slow second file is the one named."""
    project.write("lanconnect", "001_first.sql", "SELECT pg_sleep(0.05);\n")
    project.write("lanconnect", "002_slow.sql", "SELECT 1;\nSELECT pg_sleep(0.75);\n")
    project.write("client_specific", "001_after.sql", "SELECT 1;\n")
    result = project.run("migrate", env={"MIGRATE_HEARTBEAT_INTERVAL": "0.2"})
    assert result.code == 0, result.err
    beats = [line for line in result.err.splitlines() if "still running" in line]
    assert len(beats) >= 2, result.err
    assert all(line.startswith("migrate: still running: lanconnect 002_slow.sql statement 2 (line 2), ")
               for line in beats), result.err
    assert db.history() == [("001", "applied"), ("002", "applied")]
    assert db.history("client_specific") == [("001", "applied")]
