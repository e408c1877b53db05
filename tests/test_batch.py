"""Batch mode (--batch, MIGRATE_BATCH): one transaction, a savepoint per migration, same outcomes on disk.

Each migration still commits with its history and attempt rows; a failure rolls back only its own
migration, commits the ones before it and is reported exactly as without batch mode; what cannot run
in a batch (no transaction, psql, SET TRANSACTION) splits it; a lock timeout is retried on its own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import Database, Project, fresh_database
from test_timeouts import FAST_RETRY, holding_lock

from migrate.errors import ConfigError

SUMMARY = "Applied {} migration(s) in batch mode (one transaction, savepoint each)."


def _applied_at(db: Database, track: str = "lanconnect") -> dict[str, Any]:
    table = "lanconnect_migration_versions" if track == "lanconnect" else "client_migration_versions"
    return dict(db.query(f"SELECT version, applied_at FROM langconnect.{table}"))


def _attempts(db: Database) -> list[tuple[Any, ...]]:
    return db.query("SELECT track, version, outcome, sqlstate FROM langconnect.migration_attempts ORDER BY id")


def test_batch_applies_every_migration_in_one_transaction_with_its_rows(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_slow.sql", "SET search_path = nowhere;\nSELECT pg_sleep(0.3);")
    project.write("lanconnect", "002_a.sql", "CREATE TABLE batch_a (id int);")  # search_path was reset
    project.write("lanconnect", "003_b.sql", "CREATE TABLE public.batch_b (id int);\n"
                                             "INSERT INTO batch_b VALUES (1);\nINSERT INTO batch_b VALUES (2);\n")
    project.write("client_specific", "001_c.sql", "CREATE TABLE batch_c (checks text);\n"
                                                  "INSERT INTO batch_c VALUES "
                                                  "(current_setting('client_connection_check_interval'));")
    result = project.run("migrate", "--batch")
    assert result.code == 0, result.err
    lines = result.out.strip().splitlines()
    assert [line.split("  ")[0] for line in lines[:-1]] == [
        "[1/4] lanconnect 001_slow.sql", "[2/4] lanconnect 002_a.sql", "[3/4] lanconnect 003_b.sql",
        "[4/4] client_specific 001_c.sql"]
    assert lines[-1] == SUMMARY.format(4)
    assert db.history("lanconnect") == [("001", "applied"), ("002", "applied"), ("003", "applied")]
    assert db.history("client_specific") == [("001", "applied")]
    assert db.query("SELECT to_regclass('public.batch_a') IS NOT NULL, count(*) FROM public.batch_b") == [(True, 2)]
    assert db.query("SELECT checks FROM batch_c") == [("1s",)]  # the tool's session SET survives each reset
    assert _attempts(db) == [("lanconnect", v, "applied", None) for v in ("001", "002", "003")] + [
        ("client_specific", "001", "applied", None)]
    # one transaction: every history row has its start as applied_at ...
    assert len(set(_applied_at(db).values()) | set(_applied_at(db, "client_specific").values())) == 1
    # ... yet each row measures its own migration, not the time since the batch began
    rows = {row["version"]: row["execution_ms"] for row in db.history_rows()}
    assert rows["001"] >= 300 and rows["002"] < 300 and rows["003"] < 300
    durations = dict(db.query("SELECT version, duration_ms FROM langconnect.migration_attempts "
                              "WHERE track = 'lanconnect'"))
    assert durations["001"] >= 300 and durations["002"] < 300


def test_failure_mid_batch_commits_the_ones_before_and_is_reported_as_without_batch(
        project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE batch_a (id int);")
    project.write("lanconnect", "002_b.sql", "CREATE TABLE batch_b (id int);")
    project.write("lanconnect", "003_c.sql", "CREATE TABLE batch_c (id int);\nSELECT id FROM no_such_table;\n")
    project.write("lanconnect", "004_d.sql", "CREATE TABLE batch_d (id int);")
    result = project.run("migrate", "--batch")
    assert result.code == 1
    assert [line.split("  ")[0] for line in result.out.splitlines()] == [
        "[1/4] lanconnect 001_a.sql", "[2/4] lanconnect 002_b.sql"]  # printed once committed
    error = result.err.strip().splitlines()[-1]
    assert error.startswith('migrate: error: migrations/lanconnect/003_c.sql:2:16: ERROR 42P01: relation '
                            '"no_such_table" does not exist; lanconnect version 003 failed at statement 2, '
                            "rolled back, recorded as failed; fix the file and run migrate again")
    assert db.history() == [("001", "applied"), ("002", "applied"), ("003", "failed")]
    assert db.query("SELECT to_regclass('batch_a') IS NOT NULL, to_regclass('batch_b') IS NOT NULL, "
                    "to_regclass('batch_c') IS NULL, to_regclass('batch_d') IS NULL") == [(True, True, True, True)]
    failed = db.history_rows()[2]["error_message"]
    assert failed == ('42P01: relation "no_such_table" does not exist at migrations/lanconnect/003_c.sql:2:16 '
                      "(statement 2)")
    assert db.query("SELECT version, outcome, sqlstate, statement_number, line FROM langconnect.migration_attempts "
                    "ORDER BY id") == [("001", "applied", None, None, None), ("002", "applied", None, None, None),
                                       ("003", "failed", "42P01", 2, 2)]
    # the same files without batch mode, on a database of their own: the same error, row and exit code
    with fresh_database(db.server) as other:
        project.env_file("other", f"DATABASE_URL={other.url}\n")  # the env file names the server (not the shell)
        plain = project.run("migrate", "--env", "other")
        assert (plain.code, plain.err.strip().splitlines()[-1]) == (result.code, error)
        assert other.history() == db.history()
        assert other.history_rows()[2]["error_message"] == failed


def test_a_no_transaction_file_splits_the_batch(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE batch_a (id int);")
    project.write("lanconnect", "002_b.sql", "CREATE INDEX CONCURRENTLY batch_a_id ON batch_a (id);")
    project.write("lanconnect", "003_c.sql", "CREATE TABLE batch_c (id int);")
    project.write("lanconnect", "004_d.sql", "CREATE TABLE batch_d (id int);")
    result = project.run("migrate", "--batch")
    assert result.code == 0, result.err
    assert result.out.strip().splitlines()[-1] == (
        "Applied 4 migration(s) in batch mode (2 batch transaction(s), savepoint each; 1 on their own).")
    assert db.history() == [(f"00{n}", "applied") for n in range(1, 5)]
    applied_at = _applied_at(db)
    assert applied_at["001"] < applied_at["002"] < applied_at["003"] == applied_at["004"]
    assert db.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'batch_a_id'::regclass") == [(True,)]


def test_set_transaction_runs_on_its_own(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE batch_a (level text);")
    project.write("lanconnect", "002_b.sql", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;\n"
                                             "INSERT INTO batch_a VALUES (current_setting('transaction_isolation'));")
    project.write("lanconnect", "003_c.sql", "INSERT INTO batch_a VALUES (current_setting('transaction_isolation'));")
    result = project.run("migrate", "--batch")
    assert result.code == 0, result.err
    assert db.history() == [("001", "applied"), ("002", "applied"), ("003", "applied")]
    assert db.query("SELECT level FROM batch_a") == [("serializable",), ("read committed",)]
    assert "1 on their own" in result.out


@pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed (CI installs it)")
def test_a_psql_file_splits_the_batch(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE batch_a (by text);")
    project.write("lanconnect", "002_b.sql", "\\set by psql\nINSERT INTO batch_a VALUES (:'by');\n")
    project.write("lanconnect", "003_c.sql", "INSERT INTO batch_a VALUES ('builtin');")
    result = project.run("migrate", "--batch")
    assert result.code == 0, result.err
    assert db.history() == [("001", "applied"), ("002", "applied"), ("003", "applied")]
    assert db.query("SELECT by FROM batch_a ORDER BY 1") == [("builtin",), ("psql",)]
    assert result.out.strip().splitlines()[-1].endswith("(2 batch transaction(s), savepoint each; 1 on their own).")


def test_lock_timeout_inside_the_batch_commits_the_batch_and_retries_on_its_own(
        project: Project, db: Database) -> None:
    project.write("lanconnect", "001_table.sql", "CREATE TABLE busy (a int);")
    assert project.run("migrate").code == 0
    project.write("lanconnect", "002_a.sql", "CREATE TABLE batch_a (id int);")
    project.write("lanconnect", "003_alter.sql", "ALTER TABLE busy ADD COLUMN b int;")
    project.write("lanconnect", "004_d.sql", "CREATE TABLE batch_d (id int);")
    with holding_lock(db, "busy", release_after_retry=True):
        result = project.run("migrate", "--batch", env=dict(FAST_RETRY, MIGRATE_LOCK_RETRIES="3"))
    assert result.code == 0, result.err
    assert "lanconnect version 003: lock not available (canceling statement due to lock timeout); retry 1 of 3" \
        in result.err
    assert db.history() == [(f"00{n}", "applied") for n in range(1, 5)]
    assert _attempts(db)[1:4] == [("lanconnect", "002", "applied", None), ("lanconnect", "003", "retrying", "55P03"),
                                  ("lanconnect", "003", "applied", None)]
    applied_at = _applied_at(db)
    assert applied_at["002"] < applied_at["003"] < applied_at["004"]  # committed before the retry, a new batch after


def test_lock_timeout_retries_run_out_as_without_batch(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_table.sql", "CREATE TABLE busy (a int);")
    assert project.run("migrate").code == 0
    project.write("lanconnect", "002_a.sql", "CREATE TABLE batch_a (id int);")
    project.write("lanconnect", "003_alter.sql", "ALTER TABLE busy ADD COLUMN b int;")
    project.write("lanconnect", "004_d.sql", "CREATE TABLE batch_d (id int);")
    with holding_lock(db, "busy"):
        result = project.run("migrate", "--batch", env=dict(FAST_RETRY, MIGRATE_LOCK_RETRIES="1"))
    assert result.code == 1
    assert "lanconnect version 003 failed at statement 1, rolled back; the lock was not available after 2 attempt(s)" \
        in result.err
    assert db.history() == [("001", "applied"), ("002", "applied"), ("003", "failed")]
    assert [row[2] for row in _attempts(db)[1:]] == ["applied", "retrying", "failed"]
    assert db.query("SELECT to_regclass('batch_d') IS NULL") == [(True,)]


def test_enum_value_added_earlier_in_the_batch_runs_its_user_on_its_own(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_type.sql", "CREATE TYPE mood AS ENUM ('calm');")
    assert project.run("migrate").code == 0
    project.write("lanconnect", "002_add.sql", "ALTER TYPE mood ADD VALUE 'busy';")
    project.write("lanconnect", "003_use.sql", "CREATE TABLE moods (m mood);\nINSERT INTO moods VALUES ('busy');")
    result = project.run("migrate", "--batch")
    assert result.code == 0, result.err
    assert db.history() == [("001", "applied"), ("002", "applied"), ("003", "applied")]
    assert [row[1:] for row in _attempts(db)[1:]] == [("002", "applied", None), ("003", "retrying", "55P04"),
                                                       ("003", "applied", None)]


def test_deferred_constraint_violation_is_blamed_on_its_own_migration(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_tables.sql", """
        CREATE TABLE parent (id int PRIMARY KEY);
        CREATE TABLE child (parent_id int REFERENCES parent DEFERRABLE INITIALLY DEFERRED);
    """)
    # rows in an order only an initially deferred constraint allows: still deferred after 001's check
    project.write("lanconnect", "002_ok.sql", "INSERT INTO child VALUES (1);\nINSERT INTO parent VALUES (1);")
    project.write("lanconnect", "003_bad.sql", "INSERT INTO child VALUES (2);\nSELECT 1;")
    project.write("lanconnect", "004_after.sql", "INSERT INTO parent VALUES (2);")
    result = project.run("migrate", "--batch")
    assert result.code == 1
    assert "lanconnect version 003 failed at statement 2, rolled back, recorded as failed" in result.err
    assert "ERROR 23503: insert or update on table \"child\" violates foreign key constraint" in result.err
    assert db.history() == [("001", "applied"), ("002", "applied"), ("003", "failed")]
    assert db.query("SELECT parent_id FROM child") == [(1,)]


def test_json_says_whether_batch_mode_ran(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE batch_a (id int);")
    document = json.loads(project.run("migrate", "--batch", "--json").out)
    assert document["batch"] is True and [a["version"] for a in document["applied"]] == ["001"]
    assert document["applied"][0]["mode"] == "transaction"
    project.write("lanconnect", "002_b.sql", "SELECT id FROM nowhere;")
    failed = project.run("migrate", "--json", env={"MIGRATE_BATCH": "true"})
    document = json.loads(failed.out)
    assert failed.code == 1 and document["batch"] is True and document["failed"]["version"] == "002"
    assert json.loads(project.run("migrate", "--json", "--no-batch").out)["batch"] is False


def test_migrate_batch_setting_and_flags(project: Project, db: Database, tmp_path: Path) -> None:
    assert project.settings().run.batch is False
    assert project.settings(MIGRATE_BATCH="true").run.batch is True
    assert project.settings(MIGRATE_BATCH="off").run.batch is False
    with pytest.raises(ConfigError, match="MIGRATE_BATCH='sometimes' is not a boolean"):
        project.settings(MIGRATE_BATCH="sometimes")
    project.write("lanconnect", "001_a.sql", "CREATE TABLE batch_a (id int);")
    project.write("lanconnect", "002_b.sql", "CREATE TABLE batch_b (id int);")
    plain = project.run("migrate", "--no-batch", env={"MIGRATE_BATCH": "true"})
    assert plain.code == 0 and plain.out.strip().splitlines()[-1] == "Applied 2 migration(s)."
    project.write("lanconnect", "003_c.sql", "CREATE TABLE batch_c (id int);")
    batched = project.inv("migrate", "--batch")
    assert batched.code == 0, batched.err
    assert batched.out.strip().splitlines()[-1] == SUMMARY.format(1)
    project.write("lanconnect", "004_d.sql", "CREATE TABLE batch_d (id int);")
    unbatched = project.inv("migrate", "--no-batch", env={"MIGRATE_BATCH": "true"})
    assert unbatched.out.strip().splitlines()[-1] == "Applied 1 migration(s)."


def test_batch_module_is_loaded_only_when_batch_mode_applies_something(project: Project, db: Database) -> None:
    import subprocess
    import sys

    probe = ("import sys\nfrom migrate.cli import main\ncode = main(sys.argv[1:])\n"
             "print('batch loaded' if 'migrate.apply.batch' in sys.modules else 'batch not loaded', code)")

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", probe, *args], cwd=project.root, env=project.environ(),
                              capture_output=True, text=True, timeout=120)
        return done.stdout.strip().splitlines()[-1]

    project.write("lanconnect", "001_a.sql", "CREATE TABLE batch_a (id int);")
    assert run("migrate") == "batch not loaded 0"
    assert run("migrate", "--batch") == "batch not loaded 0"  # nothing pending: the no-op path
    project.write("lanconnect", "002_b.sql", "CREATE TABLE batch_b (id int);")
    assert run("migrate", "--batch") == "batch loaded 0"
