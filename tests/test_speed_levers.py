"""The speed changes from the benchmark (bench/RESULTS.md) keep the engine's promises.

The session (connect, run lock, history) opens on a second thread while the files are read:
a bad file is still reported at once, and the lock that session took is released.

All but a run's last migration commit without waiting for the WAL flush (SET LOCAL
synchronous_commit = off): each must still commit with its history row, a failure must still
name its file:line:column (the longer BEGIN prefix must not shift the position), and stop the run.
"""

from __future__ import annotations

import time

import pytest
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
    # a trigger on the history table sees the setting each history row is committed with
    project.write("lanconnect", "001_t.sql", """
        CREATE TABLE commit_modes (version text, setting text, seen_by_file text);
        CREATE FUNCTION log_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO commit_modes VALUES (NEW.version, current_setting('synchronous_commit'), NULL);
            RETURN NEW;
        END $$;
        CREATE TRIGGER log_commit_mode BEFORE INSERT ON langconnect.lanconnect_migration_versions
            FOR EACH ROW EXECUTE FUNCTION log_commit_mode();
    """)
    for number in range(2, 6):
        project.write("lanconnect", f"00{number}_t.sql",
                      f"INSERT INTO commit_modes VALUES ('file {number}', NULL, "
                      "current_setting('synchronous_commit'));")
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert [row[1] for row in db.history("lanconnect")] == ["applied"] * 5
    rows = db.query("SELECT version, setting FROM commit_modes WHERE setting IS NOT NULL ORDER BY version")
    # SET LOCAL just before the history row: per transaction, and the run's last one flushes
    assert rows == [("001", "off"), ("002", "off"), ("003", "off"), ("004", "off"), ("005", "on")]
    # the migrations themselves run with the server's setting: the tool changes nothing they see
    seen = db.query("SELECT seen_by_file FROM commit_modes WHERE seen_by_file IS NOT NULL")
    assert seen == [("on",)] * 4


def test_a_bad_file_is_reported_at_once_while_the_server_is_still_awaited(project: Project) -> None:
    # the session opens on a second thread while the files are read; a bad file must not wait for it
    project.write("lanconnect", "001_ok.sql", "CREATE TABLE ok (id int);")
    project.write("lanconnect", "add_users.sql", "CREATE TABLE users (id int);")
    project.env_file("down", "DATABASE_URL=postgresql://postgres@127.0.0.1:1/nowhere\n")
    unreachable = {"MAX_WAIT_TIME": "600", "MIGRATE_READ_TIMEOUT": "600"}
    for command in ("migrate", "status"):
        result = project.run(command, "--env", "down", env=unreachable, timeout=60)  # waiting would take 600 s
        assert result.code == 4, result.err
        assert result.err.strip().splitlines()[-1].startswith(
            "migrate: error: migrations/lanconnect/add_users.sql: not a migration file name"), result.err


def test_a_run_refused_for_a_bad_file_releases_the_run_lock_its_session_took(project: Project, db: Database) -> None:
    from migrate import commands
    from migrate.errors import ValidationError

    project.write("lanconnect", "001_ok.sql", "CREATE TABLE ok (id int);")
    (project.root / "migrations" / "lanconnect" / "002_bad.sql").write_bytes(b"SELECT 1; \xff")
    settings = project.settings()
    with pytest.raises(ValidationError, match="002_bad.sql:1:11: the file is not UTF-8"):
        commands.migrate(settings)  # in this process: the session thread outlives the call
    held = None
    for _ in range(100):  # the abandoned session closes as soon as it is open
        held = db.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND database = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())")
        if held == [(0,)]:
            break
        time.sleep(0.1)
    assert held == [(0,)]
    assert project.run("migrate").code == 4  # and nothing was applied
    assert db.tables("public") == []


def test_history_and_attempt_rows_are_exact_in_a_schema_whose_name_needs_quoting(project: Project,
                                                                                 db: Database) -> None:
    # the row INSERTs are composed once per run with %s placeholders: a % or quote in the schema name,
    # and quotes and percent signs in file names and values, must come through unchanged
    schema = 'app%s "data"'
    project.write("lanconnect", "001_it's_100%.sql", "CREATE TABLE t1 (id int);")
    project.write("lanconnect", "002_second.sql", "CREATE TABLE t2 (id int);")
    project.write("lanconnect", "003_fails.sql", "SELECT 1/0;")
    result = project.run("migrate", env={"MIGRATE_SCHEMA": schema})
    assert result.code == 1, result.err
    table = '"app%s ""data"""'
    assert db.query(f"SELECT version, status, filename, description, execution_ms IS NOT NULL "
                    f"FROM {table}.lanconnect_migration_versions ORDER BY version") == [
        ("001", "applied", "001_it's_100%.sql", "Applied 001_it's_100%.sql", True),
        ("002", "applied", "002_second.sql", "Applied 002_second.sql", True),
        ("003", "failed", "003_fails.sql", "Failed 003_fails.sql", True),
    ]
    assert db.query(f"SELECT version, files, outcome, sqlstate, statement_number, line, duration_ms >= 0 "
                    f"FROM {table}.migration_attempts ORDER BY id") == [
        ("001", "001_it's_100%.sql", "applied", None, None, None, True),
        ("002", "002_second.sql", "applied", None, None, None, True),
        ("003", "003_fails.sql", "failed", "22012", 1, 1, True),
    ]
    # the other queries that take parameters: the attempt log, repair, baseline
    history = project.run("history", env={"MIGRATE_SCHEMA": schema})
    assert history.code == 0, history.err
    assert "003_fails.sql" in history.out and "22012" in history.out
    (project.root / "migrations" / "lanconnect" / "003_fails.sql").write_text("SELECT 1;")
    repaired = project.run("repair", "--yes", env={"MIGRATE_SCHEMA": schema})
    assert repaired.code == 0, repaired.err
    assert db.query(f"SELECT version FROM {table}.lanconnect_migration_versions WHERE status = 'failed'") == []
    project.write("client_specific", "001_adopted.sql", "CREATE TABLE t3 (id int);")
    baseline = project.run("baseline", "--up-to", "001", "--track", "client_specific", "--yes",
                           env={"MIGRATE_SCHEMA": schema})
    assert baseline.code == 0, baseline.err
    assert db.query(f"SELECT version, status FROM {table}.client_migration_versions") == [("001", "applied")]
