"""Transactions decided by the SQL itself: the classification agrees with the real server,
non-transactional files run statement by statement, and their failures say what stays."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg2
import pytest
from conftest import Database, Project

from migrate.files.sqlfiles import MigrationFile
from migrate.files.statements import parse_file

# Statements PostgreSQL refuses inside a transaction block (PreventInTransactionBlock, or
# "invalid transaction termination" for a DO block that commits). {db} is the test database.
REFUSED_IN_TRANSACTION = [
    ("CREATE INDEX CONCURRENTLY t_a ON t (a)", "CREATE INDEX CONCURRENTLY"),
    ("DROP INDEX CONCURRENTLY IF EXISTS t_missing", "DROP INDEX CONCURRENTLY"),
    ("REINDEX TABLE CONCURRENTLY t", "REINDEX CONCURRENTLY"),
    ("REINDEX SCHEMA public", "REINDEX SCHEMA"),
    ("REINDEX DATABASE {db}", "REINDEX DATABASE"),
    ("REINDEX SYSTEM {db}", "REINDEX SYSTEM"),
    ("VACUUM t", "VACUUM"),
    ("CLUSTER", "CLUSTER without a table"),
    ("CREATE DATABASE {db}_x", "CREATE DATABASE"),
    ("DROP DATABASE IF EXISTS {db}_x", "DROP DATABASE"),
    ("ALTER DATABASE {db} SET TABLESPACE pg_default", "ALTER DATABASE SET TABLESPACE"),
    ("ALTER SYSTEM SET work_mem = '8MB'", "ALTER SYSTEM"),
    ("CREATE TABLESPACE ts_x LOCATION '/nonexistent'", "CREATE TABLESPACE"),
    ("DROP TABLESPACE IF EXISTS ts_x", "DROP TABLESPACE"),
    ("ALTER TABLE parted DETACH PARTITION part1 CONCURRENTLY", "DETACH PARTITION CONCURRENTLY"),
    ("CREATE SUBSCRIPTION sub_x CONNECTION 'dbname=nowhere' PUBLICATION pub_x", "CREATE SUBSCRIPTION"),
    ("DISCARD ALL", "DISCARD ALL"),
    ("COMMIT PREPARED 'nothing'", "manages its own transactions"),
    ("ROLLBACK PREPARED 'nothing'", "manages its own transactions"),
    ("DO $$BEGIN PERFORM 1; COMMIT; END$$", "DO block with COMMIT"),
    ("DO LANGUAGE plpgsql $body$BEGIN IF true THEN ROLLBACK; END IF; END$body$", "DO block with ROLLBACK"),
]
ALLOWED_IN_TRANSACTION = [
    "CREATE INDEX t_b ON t (a)",
    "REINDEX TABLE t",
    "ANALYZE t",
    "DISCARD PLANS",
    "ALTER TYPE mood ADD VALUE 'meh'",
    "CREATE SUBSCRIPTION sub_y CONNECTION 'dbname=nowhere' PUBLICATION pub_y WITH (connect = false)",
    "DO $$BEGIN PERFORM 1; END$$",
    "REFRESH MATERIALIZED VIEW mv",
]
SETUP = """
CREATE TABLE t (a int);
CREATE TYPE mood AS ENUM ('ok');
CREATE MATERIALIZED VIEW mv AS SELECT 1 AS one;
CREATE TABLE parted (a int) PARTITION BY RANGE (a);
CREATE TABLE part1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
"""


def _classify(sql_text: str, tmp_path: Path) -> str | None:
    path = tmp_path / "001_x.sql"
    path.write_text(sql_text)
    migration_file = MigrationFile("lanconnect", "001", 1, "x", path.parent, path.name, sql_text, "sha256:x")
    return parse_file(migration_file, tmp_path).no_transaction


def _in_transaction_block(db: Database, statement: str) -> str | None:
    """The SQLSTATE PostgreSQL raises for `statement` inside BEGIN, or None when it is accepted."""
    connection = db.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            try:
                cursor.execute(statement)
            except psycopg2.Error as error:
                return error.pgcode
            finally:
                cursor.execute("ROLLBACK")
    finally:
        connection.close()
    return None


def test_statements_refused_in_a_transaction_block_are_the_ones_the_server_refuses(
        db: Database, tmp_path: Path) -> None:
    db.execute(SETUP)
    for template, reason in REFUSED_IN_TRANSACTION:
        statement = template.format(db=db.name)
        assert reason in (_classify(statement + ";\n", tmp_path) or ""), statement
        assert _in_transaction_block(db, statement) in ("25001", "2D000"), statement
    for statement in ALLOWED_IN_TRANSACTION:
        assert _classify(statement + ";\n", tmp_path) is None, statement
        assert _in_transaction_block(db, statement) is None, statement


def test_concurrent_index_file_runs_outside_a_transaction_and_status_shows_it(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_table.sql", "CREATE TABLE items (a int);")
    project.write("lanconnect", "002_index.sql", """
        -- built without blocking writes
        CREATE INDEX CONCURRENTLY items_a ON items (a);
    """)
    dry = project.run("dry-run")
    assert dry.code == 0, dry.err
    assert "no transaction: CREATE INDEX CONCURRENTLY (statement 1, line 2)" in dry.out
    status = project.inv("status")
    assert status.code == 0, status.err
    assert status.out.splitlines()[3].split()[-1] == "mode"
    rows = {line.split()[0]: line.split(None, 3)[2:] for line in status.out.splitlines()[5:7]}
    assert rows == {"001": ["pending", "transaction"],
                    "002": ["pending", "no transaction: CREATE INDEX CONCURRENTLY (statement 1, line 2)"]}
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.history() == [("001", "applied"), ("002", "applied")]
    assert db.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_a'::regclass") == [(True,)]
    applied = json.loads(project.run("history", "--json").out)["attempts"]
    assert [(a["version"], a["outcome"]) for a in applied] == [("002", "applied"), ("001", "applied")]


def test_failed_concurrent_index_names_the_invalid_index_and_the_statement(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_table.sql", "CREATE TABLE items (a int);\nINSERT INTO items VALUES (1), (1);")
    project.write("lanconnect", "002_index.sql", """
        CREATE INDEX CONCURRENTLY items_plain ON items (a);

        CREATE UNIQUE INDEX CONCURRENTLY items_unique ON items (a);
    """)
    result = project.run("migrate")
    assert result.code == 1
    error = result.err.strip().splitlines()[-1]
    assert error.startswith("migrate: error: migrations/lanconnect/002_index.sql:3:1: ERROR 23505: "
                            'could not create unique index "items_unique"')
    assert "failed at statement 2, statement 1 was committed and stays in place" in error
    assert "it left INVALID index(es) public.items_unique: drop them (DROP INDEX CONCURRENTLY public.items_unique)" \
        in error
    assert db.history() == [("001", "applied"), ("002", "failed")]
    assert db.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_plain'::regclass") == [(True,)]
    assert db.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_unique'::regclass") == [(False,)]
    row = db.query("SELECT outcome, sqlstate, statement_number, line FROM langconnect.migration_attempts "
                   "WHERE version = '002'")
    assert row == [("failed", "23505", 2, 3)]


def test_do_block_that_commits_runs_outside_a_transaction(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_batches.sql", """
        CREATE TABLE batches (n int);
        DO $$
        BEGIN
          FOR i IN 1..3 LOOP
            INSERT INTO batches VALUES (i);
            COMMIT;
          END LOOP;
        END
        $$;
    """)
    dry = project.run("dry-run")
    assert "no transaction: DO block with COMMIT (statement 2, line 2)" in dry.out
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.query("SELECT count(*) FROM batches") == [(3,)]
    assert db.history() == [("001", "applied")]


@pytest.mark.parametrize("marker", [
    "-- migrate:no-transaction",
    "-- migrate:up transaction:false",
    "-- transactional: false",
    "-- postgres-migrations disable-transaction",
])
def test_markers_run_the_file_statement_by_statement(project: Project, db: Database, marker: str) -> None:
    project.write("lanconnect", "001_marked.sql", f"{marker}\nCREATE TABLE kept (a int);\nSELECT 1 / 0;\n")
    result = project.run("migrate")
    assert result.code == 1
    assert "001_marked.sql:3:1: ERROR 22012: division by zero" in result.err
    assert "statement 1 was committed" in result.err
    assert db.tables("public") == ["kept"]  # committed before the failure: no transaction around the file
    assert db.history() == [("001", "failed")]
