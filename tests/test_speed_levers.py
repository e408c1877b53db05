"""The speed changes from the benchmark (bench/RESULTS.md) keep the engine's promises.

All but a run's last migration commit without waiting for the WAL flush (SET LOCAL
synchronous_commit = off): each must still commit with its history row, a failure must still
name its file:line:column (the longer BEGIN prefix must not shift the position), and stop the run.
"""

from __future__ import annotations

from conftest import Database, Project


def test_failure_after_unflushed_commits_keeps_them_and_names_the_column(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS speed_a (id int);")
    project.write("lanconnect", "002_b.sql", "CREATE TABLE IF NOT EXISTS speed_b (id int);\n"
                                             "SELECT id FROM no_such_table;\n")
    project.write("lanconnect", "003_c.sql", "CREATE TABLE IF NOT EXISTS speed_c (id int);")
    result = project.run("migrate")
    assert result.code == 1
    assert "migrations/lanconnect/002_b.sql:2:16: ERROR 42P01: relation \"no_such_table\" does not exist" in result.err
    assert db.history("lanconnect") == [("001", "applied"), ("002", "failed")]
    assert db.query("SELECT to_regclass('speed_a') IS NOT NULL, to_regclass('speed_b') IS NULL, "
                    "to_regclass('speed_c') IS NULL") == [(True, True, True)]


def test_many_migrations_are_all_recorded_and_the_session_setting_does_not_leak(
        project: Project, db: Database) -> None:
    for number in range(1, 6):
        project.write("lanconnect", f"00{number}_t.sql",
                      f"CREATE TABLE IF NOT EXISTS speed_{number} AS SELECT current_setting('synchronous_commit') "
                      "AS setting;")
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert [row[1] for row in db.history("lanconnect")] == ["applied"] * 5
    settings = [db.query(f"SELECT setting FROM speed_{number}")[0][0] for number in range(1, 6)]
    assert settings == ["off", "off", "off", "off", "on"]  # SET LOCAL: per transaction; the last flushes
