"""lock_timeout / statement_timeout for migration sessions, and retrying a lock timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from conftest import Database, Project

FAST_RETRY = {"MIGRATE_SQL_LOCK_TIMEOUT": "100ms", "MIGRATE_LOCK_RETRY_DELAY": "0.1"}


@contextmanager
def holding_lock(db: Database, table: str, release_after_retry: bool = False) -> Iterator[Any]:
    """A second session holding ACCESS EXCLUSIVE on `table`; with release_after_retry, it lets go
    once the attempt log shows a `retrying` row (so the run under test has really met the lock)."""
    connection = db.connect()
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    stop = threading.Event()

    def release_after_first_retry() -> None:
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            if db.query("SELECT count(*) FROM langconnect.migration_attempts WHERE outcome = 'retrying'") != [(0,)]:
                break
            time.sleep(0.05)
        connection.cursor().execute("ROLLBACK")

    watcher = threading.Thread(target=release_after_first_retry) if release_after_retry else None
    if watcher is not None:
        watcher.start()
    try:
        yield connection
    finally:
        stop.set()
        if watcher is not None:
            watcher.join()
        connection.close()


def _attempts(db: Database) -> list[tuple[Any, ...]]:
    return db.query("SELECT version, outcome, sqlstate FROM langconnect.migration_attempts ORDER BY id")


def test_lock_timeout_is_retried_then_fails_naming_the_remedy(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_table.sql", "CREATE TABLE busy (a int);")
    assert project.run("migrate").code == 0
    project.write("lanconnect", "002_alter.sql", "ALTER TABLE busy ADD COLUMN b int;")
    with holding_lock(db, "busy"):
        result = project.run("migrate", env=dict(FAST_RETRY, MIGRATE_LOCK_RETRIES="2"))
    assert result.code == 1
    assert "lock not available (canceling statement due to lock timeout); retry 1 of 2" in result.err
    error = result.err.strip().splitlines()[-1]
    assert error.startswith("migrate: error: migrations/lanconnect/002_alter.sql:1:1: ERROR 55P03: canceling "
                            "statement due to lock timeout; lanconnect version 002 failed at statement 1, rolled back; "
                            "the lock was not available after 3 attempt(s)")
    assert db.history() == [("001", "applied"), ("002", "failed")]
    assert _attempts(db) == [("001", "applied", None), ("002", "retrying", "55P03"), ("002", "retrying", "55P03"),
                             ("002", "failed", "55P03")]
    assert db.query("SELECT count(*) FROM information_schema.columns WHERE table_name = 'busy'") == [(1,)]


def test_a_file_outside_a_transaction_is_retried_whole_only_while_nothing_committed(project: Project,
                                                                                    db: Database) -> None:
    project.write("lanconnect", "001_table.sql", "CREATE TABLE busy (a int);\nCREATE TABLE runs (n int);")
    assert project.run("migrate").code == 0
    project.write("lanconnect", "002_alter.sql", """
        -- migrate:no-transaction
        ALTER TABLE busy ADD COLUMN IF NOT EXISTS b int;
        INSERT INTO runs VALUES (1);
    """)
    with holding_lock(db, "busy", release_after_retry=True):
        result = project.run("migrate", env=dict(FAST_RETRY, MIGRATE_LOCK_RETRIES="6"))
    assert result.code == 0, result.err
    assert "retry 1 of 6 of the whole file" in result.err
    assert db.history() == [("001", "applied"), ("002", "applied")]
    assert db.query("SELECT count(*) FROM runs") == [(1,)]
    outcomes = [outcome for version, outcome, _ in _attempts(db) if version == "002"]
    assert outcomes[-1] == "applied" and set(outcomes[:-1]) == {"retrying"} and len(outcomes) >= 2


def test_a_file_outside_a_transaction_is_never_resumed_mid_file(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_table.sql", "CREATE TABLE busy (a int);\nCREATE TABLE runs (n int);")
    assert project.run("migrate").code == 0
    project.write("lanconnect", "002_alter.sql", """
        -- migrate:no-transaction
        INSERT INTO runs VALUES (1);
        ALTER TABLE busy ADD COLUMN b int;
    """)
    with holding_lock(db, "busy", release_after_retry=True):
        result = project.run("migrate", env=dict(FAST_RETRY, MIGRATE_LOCK_RETRIES="6"))
    assert result.code == 1
    assert "retry" not in result.err  # statement 1 committed: a retry would resume mid-file
    error = result.err.strip().splitlines()[-1]
    assert "lanconnect version 002 failed at statement 2, statement 1 was committed and stays in place" in error
    assert db.history() == [("001", "applied"), ("002", "failed")]
    assert db.query("SELECT count(*) FROM runs") == [(1,)]
    assert [outcome for version, outcome, _ in _attempts(db) if version == "002"] == ["failed"]


def test_timeouts_are_session_defaults_that_reset_all_keeps(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_show.sql", """
        CREATE TABLE settings_seen (lock_timeout text, statement_timeout text);
        SET lock_timeout = '1min';
        RESET ALL;
        INSERT INTO settings_seen VALUES (current_setting('lock_timeout'), current_setting('statement_timeout'));
    """)
    result = project.run("migrate", env={"MIGRATE_SQL_LOCK_TIMEOUT": "250ms", "MIGRATE_STATEMENT_TIMEOUT": "3s"})
    assert result.code == 0, result.err
    assert db.query("SELECT * FROM settings_seen") == [("250ms", "3s")]


def test_statement_timeout_stops_a_long_migration(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_slow.sql", "CREATE TABLE slow (a int);\nSELECT pg_sleep(5);")
    result = project.run("migrate", env={"MIGRATE_STATEMENT_TIMEOUT": "200ms", "MIGRATE_LOCK_RETRIES": "3"})
    assert result.code == 1
    assert "001_slow.sql:2:1: ERROR 57014: canceling statement due to statement timeout" in result.err
    assert "retry" not in result.err  # only lock timeouts are retried
    assert db.tables("public") == []
    assert db.history() == [("001", "failed")]


def test_bad_timeout_value_is_a_configuration_error(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE a (i int);")
    result = project.run("migrate", env={"MIGRATE_SQL_LOCK_TIMEOUT": "soon"})
    assert result.code == 2
    assert result.err.strip() == ("migrate: error: the process environment: MIGRATE_SQL_LOCK_TIMEOUT='soon' is not a "
                                  "PostgreSQL duration; write it like 5s, 500ms, 2min or 0 (no limit)")
    assert db.tables("langconnect") == []


def test_settings_the_tool_set_after_connecting_survive_each_files_reset(project: Project, db: Database) -> None:
    """client_connection_check_interval is SET (not a startup option): RESET ALL after a file undid it."""
    for number in (1, 2, 3):
        project.write("lanconnect", f"00{number}_seen.sql",
                      ("CREATE TABLE seen (version int, checks text);\n" if number == 1 else "")
                      + f"INSERT INTO seen VALUES ({number}, current_setting('client_connection_check_interval'));")
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.query("SELECT version, checks FROM seen ORDER BY 1") == [(1, "1s"), (2, "1s"), (3, "1s")]
