"""psql files: meta-commands and COPY FROM stdin run through psql, atomically with their
history row; pg_dump's \\restrict lines pass; no psql means exit 4 before anything runs."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import Database, Project

pytestmark = pytest.mark.skipif(shutil.which("psql") is None, reason="psql is not installed (CI installs it)")

PSQL_FILE = """
\\restrict Zx9AbC
\\set fruit '''apple'''
CREATE TABLE fruits (id int PRIMARY KEY, name text);
COPY fruits (id, name) FROM stdin;
1\tpear
2\tplum
\\.
INSERT INTO fruits VALUES (3, :fruit);
SELECT format('CREATE TABLE %I (id int)', 'made_by_gexec') \\gexec
\\unrestrict Zx9AbC
"""


def test_psql_file_runs_through_psql_with_its_history_row(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_seed.sql", PSQL_FILE)
    dry = project.run("dry-run")
    assert "psql, one transaction (psql meta-command \\set on line 2)" in dry.out
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.query("SELECT id, name FROM fruits ORDER BY id") == [(1, "pear"), (2, "plum"), (3, "apple")]
    assert "made_by_gexec" in db.tables("public")
    rows = db.history_rows()
    assert [(r["version"], r["status"], r["filename"]) for r in rows] == [("001", "applied", "001_seed.sql")]
    assert rows[0]["checksum"].startswith("sha256:")
    assert db.query("SELECT outcome FROM langconnect.migration_attempts") == [("applied",)]


def test_failing_psql_file_is_rolled_back_and_recorded_with_its_line(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_seed.sql", """
        CREATE TABLE fruits (id int);
        COPY fruits FROM stdin;
        1
        \\.
        \\set ON_ERROR_STOP 1
        INSERT INTO no_such_table VALUES (1);
    """)
    result = project.run("migrate")
    assert result.code == 1
    error = result.err.strip().splitlines()[-1]
    assert error.startswith('migrate: error: migrations/lanconnect/001_seed.sql:6: ERROR 42P01: relation '
                            '"no_such_table" does not exist; lanconnect version 001 failed in psql, rolled back, '
                            "recorded as failed")
    assert "fruits" not in db.tables("public")  # --single-transaction: nothing of the file stays
    assert db.history() == [("001", "failed")]
    assert db.query("SELECT outcome, sqlstate, line FROM langconnect.migration_attempts") == [("failed", "42P01", 6)]


def test_psql_file_with_its_own_transactions_is_recorded_after_it(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_own.sql", """
        \\set n 2
        BEGIN;
        CREATE TABLE counted (n int);
        INSERT INTO counted VALUES (:n);
        COMMIT;
        CREATE INDEX CONCURRENTLY counted_n ON counted (n);
    """)
    dry = project.run("dry-run")
    assert "psql, no transaction: manages its own transactions (statement 1, line 2)" in dry.out
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.query("SELECT n FROM counted") == [(2,)]
    assert db.history() == [("001", "applied")]


def test_restrict_lines_do_not_break_a_plain_file(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_dump.sql", """
        \\restrict Qq1
        CREATE TABLE dumped (a int);
        \\unrestrict Qq1
    """)
    dry = project.run("dry-run")
    assert "  transaction" in dry.out  # a pg_dump file stays a plain, transactional file
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.tables("public") == ["dumped"]


def test_without_psql_a_psql_file_is_refused_before_anything_runs(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_plain.sql", "CREATE TABLE first (a int);")
    project.write("lanconnect", "002_seed.sql", PSQL_FILE)
    dry = project.run_process("dry-run", env={"PATH": "/nonexistent"})
    assert dry.code == 0 and "warning: migrations/lanconnect/002_seed.sql: needs psql" in dry.err
    result = project.run_process("migrate", env={"PATH": "/nonexistent"})
    assert result.code == 4
    assert result.err.strip().splitlines()[-1] == (
        "migrate: error: migrations/lanconnect/002_seed.sql: needs psql (psql meta-command \\set on line 2) but "
        "psql is not on PATH; install the PostgreSQL client (apt-get install postgresql-client) or set "
        "MIGRATE_PSQL, or rewrite the file as plain SQL; nothing was applied")
    assert db.tables("public") == []
    # refused before anything is written: not even the history tables exist
    assert db.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'langconnect'") == [(0,)]


def test_executor_psql_runs_every_file_through_psql(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_plain.sql", "CREATE TABLE plain (a int);\nINSERT INTO plain VALUES (1);")
    project.write("lanconnect", "002_broken.sql", "INSERT INTO plain VALUES (2);\nSELECT * FROM missing;")
    env = {"MIGRATE_EXECUTOR": "psql"}
    dry = project.run("dry-run", "--json", env=env)
    modes = [item["mode"] for item in json.loads(dry.out)["to_apply"]]
    assert modes == ["psql, one transaction (MIGRATE_EXECUTOR=psql)"] * 2
    refused = project.run_process("migrate", env=dict(env, PATH="/nonexistent"))
    assert refused.code == 4 and "needs psql (MIGRATE_EXECUTOR=psql)" in refused.err
    result = project.run("migrate", env=env)
    assert result.code == 1
    assert "002_broken.sql:2: ERROR 42P01" in result.err and "failed in psql, rolled back" in result.err
    assert db.query("SELECT a FROM plain") == [(1,)]
    assert db.history() == [("001", "applied"), ("002", "failed")]


def test_password_reaches_psql_through_the_environment_only(project: Project, db: Database, tmp_path) -> None:
    """psql's environment and command line, as a wrapper around it sees them: the password is in one, not the
    other. (A wrapper, since `\\!` in a migration file is refused: it runs a shell command.)"""
    argv_file, env_file = tmp_path / "psql-argv", tmp_path / "psql-pgpassword"
    wrapper = tmp_path / "psql-wrapper"
    wrapper.write_text(f"#!/bin/sh\nprintenv PGPASSWORD > {env_file}\nprintf '%s ' \"$@\" > {argv_file}\n"
                       f"exec {shutil.which('psql')} \"$@\"\n")
    wrapper.chmod(0o755)
    url = db.url.replace("postgres@", "postgres:s3cret-pw@", 1)
    project.env_file("local", f"DATABASE_URL={url}\nMAX_WAIT_TIME=5\nMIGRATE_PSQL={wrapper}\n")
    project.write("lanconnect", "001_seed.sql", """
        \\set label 'seen'
        CREATE TABLE seen (a int);
    """)
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert env_file.read_text().strip() == "s3cret-pw"
    argv = argv_file.read_text()
    assert "-v ON_ERROR_STOP=1" in argv and "--single-transaction" in argv
    assert "s3cret" not in argv


def test_psql_file_lock_timeout_is_retried_as_a_whole(project: Project, db: Database) -> None:
    from test_timeouts import FAST_RETRY, holding_lock

    project.write("lanconnect", "001_table.sql", "CREATE TABLE busy (a int);\nCREATE TABLE runs (n int);")
    assert project.run("migrate").code == 0
    project.write("lanconnect", "002_alter.sql",
                  "\\set n 1\nINSERT INTO runs VALUES (:n);\nALTER TABLE busy ADD b int;")
    with holding_lock(db, "busy", release_after_retry=True):
        result = project.run("migrate", env=dict(FAST_RETRY, MIGRATE_LOCK_RETRIES="6"))
    assert result.code == 0, result.err
    assert "retry 1 of 6" in result.err
    assert db.query("SELECT count(*) FROM runs") == [(1,)]  # each failed try was rolled back whole
    assert db.history() == [("001", "applied"), ("002", "applied")]


def test_killed_runner_takes_its_psql_with_it(project: Project, db: Database) -> None:
    """SIGKILL of the runner mid-file: psql dies too, so it cannot go on applying a file nobody will record."""
    import os
    import signal
    import subprocess
    import sys
    import time

    project.write("lanconnect", "001_slow.sql", """
        -- migrate:no-transaction
        \\set x 1
        DO $$BEGIN PERFORM pg_sleep(1); END$$;  -- psql prints nothing here (no SIGPIPE to stop it)
        CREATE TABLE after_sleep (a int);
    """)
    runner = subprocess.Popen([sys.executable, "-m", "migrate", "migrate"], cwd=project.root,
                              env=project.environ(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    others = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
              "AND query LIKE %s")
    deadline = time.monotonic() + 20
    while db.query(others, ("%pg_sleep(1)%",)) != [(1,)]:
        assert time.monotonic() < deadline, "psql never started the slow statement"
        time.sleep(0.02)
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 10
    while db.query(others, ("%",)) != [(0,)]:  # the backend ends once it finds its client gone
        assert time.monotonic() < deadline, "a session of the killed run stayed connected"
        time.sleep(0.05)
    assert "after_sleep" not in db.tables("public")
    assert db.history() == []


def test_psql_file_includes_its_neighbours_relative_to_itself(project: Project, db: Database) -> None:
    parts = project.root / "migrations" / "lanconnect" / "parts"
    parts.mkdir()
    (parts / "fruits.sql").write_text("CREATE TABLE included (a int);\n")  # a folder: not a migration itself
    project.write("lanconnect", "001_main.sql", "\\ir parts/fruits.sql\nINSERT INTO included VALUES (1);\n")
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.query("SELECT a FROM included") == [(1,)]
    assert db.history() == [("001", "applied")]
    (parts / "fruits.sql").write_text("CREATE TABLE IF NOT EXISTS included (a int);\n\nSELECT nope;\n")
    project.write("lanconnect", "002_again.sql", "\\ir parts/fruits.sql\n")
    failed = project.run("migrate")
    assert failed.code == 1
    assert "migrate: error: migrations/lanconnect/parts/fruits.sql:3: ERROR 42703" in failed.err


def test_a_crlf_psql_file_with_a_bom_runs_with_its_own_line_endings(project: Project, db: Database) -> None:
    """psql gets a copy without the BOM; the copy keeps the file's CRLF, as psql would have read it."""
    path = project.root / "migrations" / "lanconnect" / "001_crlf.sql"
    path.write_bytes(b"\xef\xbb\xbf\\set label 'x'\r\nCREATE TABLE notes (body text);\r\n"
                     b"INSERT INTO notes VALUES ('first\r\nsecond');\r\n")
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.query("SELECT body FROM notes") == [("first\r\nsecond",)]
