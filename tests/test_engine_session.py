"""Issue 12, cases 1-7 and 12-14: each file runs as psql would run it, in a session of its own.

Each test reproduces a case as a user met it and asserts what must hold; see `issues show 12`.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Database, Project, Server
from engine_support import (
    ATTEMPTS,
    Stream,
    attempts,
    make_project,
    psql_or_skip,
    second_runner_in_place,
    server_role,
    sleepers,
    spawn,
    status_states,
    until,
    write_bytes,
)

GATE_DDL = "CREATE TABLE public.gate (opened_at timestamptz)"
# holds the file (and its transaction) until the test inserts a row into public.gate
WAIT_FOR_GATE = ("DO $$ BEGIN WHILE NOT EXISTS (SELECT 1 FROM public.gate) LOOP PERFORM pg_sleep(0.05); "
                 "END LOOP; END $$;")


@pytest.fixture
def app_role(db: Database) -> Iterator[str]:
    """A role of the server's, with no rights on the tool's schema; dropped (with its grants) after the test."""
    with server_role(db) as name:
        yield name


# --- case 1 ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("release", ["SELECT pg_advisory_unlock_all();", "DISCARD ALL;"],
                         ids=["pg_advisory_unlock_all", "discard_all"])
def test_case01_a_file_cannot_release_the_run_lock(project: Project, db: Database, release: str) -> None:
    """A file that drops every advisory lock of its session must not let a second runner in."""
    db.execute(GATE_DDL)
    db.execute("CREATE TABLE public.effects (version text NOT NULL)")
    project.write("lanconnect", "001_release.sql", f"""
        CREATE TABLE IF NOT EXISTS public.released (id int);
        {release}
    """)
    project.write("lanconnect", "002_slow.sql", f"""
        INSERT INTO public.effects VALUES ('002');
        {WAIT_FOR_GATE}
    """)
    first = spawn(project, "migrate")
    second = None
    try:
        until(lambda: sleepers(db), what="the first runner to hold version 002 open")
        second = spawn(project, "migrate", env={"MIGRATE_LOCK_TIMEOUT": "90"})
        try:
            until(lambda: second_runner_in_place(db, second), timeout=10, what="the second runner to start")
        except AssertionError:
            pass  # it may poll in a way not visible here; the effects below decide
        time.sleep(0.5)
    finally:
        db.execute("INSERT INTO public.gate VALUES (now())")
        first_out, first_err = first.communicate(timeout=60)
        second_out, second_err = second.communicate(timeout=60) if second else ("", "")
    assert db.query("SELECT count(*) FROM public.effects") == [(1,)], (
        "version 002 ran twice: a second runner applied it while the first still did")
    assert [outcome for _v, outcome in attempts(db, "002")] == ["applied"]
    assert first.returncode == 0, first_err
    assert second is not None and second.returncode == 0, second_err
    assert db.history() == [("001", "applied"), ("002", "applied")]


# --- case 2 ------------------------------------------------------------------------------------------------------

def test_case02_a_temp_table_of_an_earlier_file_does_not_swallow_rows(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_documents.sql", """
        SET search_path = langconnect, public;
        CREATE TABLE IF NOT EXISTS documents (id int, title text);
    """)
    project.write("lanconnect", "002_staging.sql", """
        SET search_path = langconnect, public;
        CREATE TEMP TABLE documents (id int, title text);
        INSERT INTO documents VALUES (0, 'staging only');
    """)
    project.write("lanconnect", "003_seed.sql", """
        SET search_path = langconnect, public;
        INSERT INTO documents (id, title) VALUES (1, 'kept');
    """)
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.history() == [("001", "applied"), ("002", "applied"), ("003", "applied")]
    assert db.query("SELECT id, title FROM langconnect.documents") == [(1, "kept")], (
        "003's row went into 002's temp table and was lost")


def test_case02_two_files_may_prepare_the_same_statement_name(project: Project, db: Database) -> None:
    for version in (1, 2):
        project.write("lanconnect", f"00{version}_prepare.sql", f"""
            CREATE TABLE IF NOT EXISTS public.prepared_rows (n int);
            PREPARE ins(int) AS INSERT INTO public.prepared_rows VALUES ($1);
            EXECUTE ins({version});
        """)
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert "42P05" not in result.err
    assert db.history() == [("001", "applied"), ("002", "applied")]
    assert db.query("SELECT n FROM public.prepared_rows ORDER BY n") == [(1,), (2,)]


def test_case02_two_files_may_create_the_same_temp_table(project: Project, db: Database) -> None:
    for version in (1, 2):
        project.write("lanconnect", f"00{version}_scratch.sql", f"""
            CREATE TABLE IF NOT EXISTS public.totals (n int);
            CREATE TEMP TABLE scratch (n int);
            INSERT INTO scratch VALUES ({version});
            INSERT INTO public.totals SELECT n FROM scratch;
        """)
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert "42P07" not in result.err
    assert db.history() == [("001", "applied"), ("002", "applied")]
    assert db.query("SELECT n FROM public.totals ORDER BY n") == [(1,), (2,)]


def test_case02_an_advisory_lock_taken_by_a_file_ends_with_the_file(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_lock.sql", "SELECT pg_advisory_lock(424242);")
    project.write("lanconnect", "002_look.sql", """
        CREATE TABLE IF NOT EXISTS public.seen AS
        SELECT count(*) AS held FROM pg_locks
         WHERE locktype = 'advisory' AND classid = 0 AND objid = 424242 AND granted;
    """)
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.query("SELECT held FROM public.seen") == [(0,)], "001's advisory lock was still held during 002"


def test_case02_each_file_starts_in_a_fresh_session(project: Project, db: Database, app_role: str) -> None:
    """Role, authorization, custom settings, LISTEN, prepared statements, temp objects: nothing carries over."""
    db.execute(f'GRANT USAGE, CREATE ON SCHEMA public TO "{app_role}"')
    project.write("lanconnect", "001_dirty.sql", f"""
        SET statement_timeout = '123s';
        SET myapp.flag = 'on';
        LISTEN migrate_test_channel;
        PREPARE leftover AS SELECT 1;
        CREATE TEMP TABLE leftover_temp (n int);
        SET ROLE "{app_role}";
    """)
    project.write("lanconnect", "002_look.sql", """
        CREATE TABLE IF NOT EXISTS public.session_seen AS SELECT
            current_user = session_user AS own_role,
            current_setting('statement_timeout') AS statement_timeout,
            coalesce(current_setting('myapp.flag', true), '') AS flag,
            (SELECT count(*) FROM pg_listening_channels()) AS listening,
            (SELECT count(*) FROM pg_prepared_statements) AS prepared,
            (SELECT count(*) FROM pg_class WHERE relpersistence = 't'
                AND relnamespace = pg_my_temp_schema()) AS temp_objects;
    """)
    result = project.run("migrate")
    assert result.code == 0, result.err
    default_timeout = db.query("SELECT current_setting('statement_timeout')")[0][0]
    seen = db.query("SELECT own_role, statement_timeout, flag, listening, prepared, temp_objects "
                    "FROM public.session_seen")
    assert seen == [(True, default_timeout, "", 0, 0, 0)]


# --- case 3 ------------------------------------------------------------------------------------------------------

def test_case03_database_defaults_changed_by_an_earlier_file_apply_to_later_files(
        project: Project, db: Database) -> None:
    project.write("lanconnect", "001_defaults.sql", """
        DO $$
        BEGIN
          EXECUTE format('ALTER DATABASE %I SET search_path = langconnect, public', current_database());
        END
        $$;
    """)
    project.write("lanconnect", "002_settings.sql",
                  "CREATE TABLE IF NOT EXISTS settings (key text PRIMARY KEY, value text);")
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.query("SELECT to_regclass('langconnect.settings') IS NOT NULL, "
                    "to_regclass('public.settings') IS NOT NULL") == [(True, False)], (
        "002 did not see the search_path default 001 gave the database (psql per file would have)")


# --- case 4 ------------------------------------------------------------------------------------------------------

def test_case04_a_lock_timeout_retry_reruns_the_whole_file(project: Project, db: Database) -> None:
    db.execute("CREATE TABLE public.busy (id int)")
    project.write("lanconnect", "001_own_transaction.sql", """
        BEGIN;
        CREATE TABLE IF NOT EXISTS public.audit (id int);
        INSERT INTO public.audit VALUES (1);
        ALTER TABLE public.busy ADD COLUMN IF NOT EXISTS note text;
        COMMIT;
    """)
    blocker = db.connect()
    try:
        with blocker.cursor() as cursor:
            cursor.execute("BEGIN; SELECT * FROM public.busy")  # ACCESS SHARE: the ALTER waits, then times out
        runner = Stream(spawn(project, "migrate", env={"MIGRATE_SQL_LOCK_TIMEOUT": "300ms",
                                                       "MIGRATE_LOCK_RETRIES": "5",
                                                       "MIGRATE_LOCK_RETRY_DELAY": "0.5"}))

        def retried() -> bool:
            return (any(outcome == "retrying" for _v, outcome in attempts(db, "001"))
                    or any("retry" in line for line in runner.err) or runner.process.poll() is not None)

        try:
            until(retried, timeout=20, what="a lock-timeout retry")
        except AssertionError:
            pass  # release the lock anyway; what the run did is checked below
    finally:
        with blocker.cursor() as cursor:
            cursor.execute("ROLLBACK")
        blocker.close()
    code = runner.wait(timeout=60)
    assert code == 0, "\n".join(runner.err)
    assert db.history() == [("001", "applied")]
    assert "audit" in db.tables("public"), (
        "recorded applied, but the retry resumed at the ALTER: the table the ROLLBACK undid was never made again")
    assert db.query("SELECT id FROM public.audit") == [(1,)]
    assert db.query("SELECT count(*) FROM information_schema.columns WHERE table_name = 'busy' "
                    "AND column_name = 'note'") == [(1,)]


# --- case 5 ------------------------------------------------------------------------------------------------------

def test_case05_a_failure_after_set_role_is_still_recorded(project: Project, db: Database, app_role: str) -> None:
    db.execute("CREATE TABLE public.items (a int); INSERT INTO public.items VALUES (1), (1)")
    db.execute(f'ALTER TABLE public.items OWNER TO "{app_role}"; GRANT CREATE ON SCHEMA public TO "{app_role}"')
    project.write("lanconnect", "001_unique.sql", f"""
        -- migrate:no-transaction
        SET ROLE "{app_role}";
        CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS items_a_key ON public.items (a);
    """)
    result = project.run("migrate")
    assert result.code == 1, result.err
    assert "Traceback" not in result.err
    assert "001_unique.sql" in result.err and "23505" in result.err
    assert "InsufficientPrivilege" not in result.err and "could not be recorded" not in result.err
    assert db.history() == [("001", "failed")]
    assert ("001", "failed") in attempts(db, "001")
    row = db.query(f"SELECT sqlstate FROM {ATTEMPTS} WHERE version = '001' AND outcome = 'failed'")
    assert row == [("23505",)]
    assert status_states(project)["001"] == "failed"


# --- case 6 ------------------------------------------------------------------------------------------------------

COMMITTED_CLAIM = re.compile(r"statements? [\d-]+ (?:was|were) committed")


def test_case06_a_failure_inside_a_files_own_transaction_is_not_called_committed(
        project: Project, db: Database) -> None:
    project.write("lanconnect", "001_own.sql", """
        BEGIN;
        CREATE TABLE IF NOT EXISTS public.own_t (id int);
        INSERT INTO public.own_t VALUES (1);
        INSERT INTO public.nowhere VALUES (1);
        COMMIT;
    """)
    result = project.run("migrate")
    assert result.code == 1
    assert "001_own.sql" in result.err and "42P01" in result.err
    assert "own_t" not in db.tables("public")  # the file's own ROLLBACK undid statements 1-3
    assert not COMMITTED_CLAIM.search(result.err), result.err
    assert db.history() == [("001", "failed")]
    message = db.history_rows()[0]["error_message"] or ""
    assert not COMMITTED_CLAIM.search(message), message


# --- case 7 ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ending", ["\n-- end of file\n", "\n-- end of file", "\n/* end */\n-- end\n"],
                         ids=["comment-line", "comment-without-newline", "block-and-line-comments"])
def test_case07_a_last_statement_without_semicolon_before_a_comment_runs(
        project: Project, db: Database, ending: str) -> None:
    text = "CREATE TABLE IF NOT EXISTS public.trailing (id int);\nINSERT INTO public.trailing VALUES (1)" + ending
    write_bytes(project, "lanconnect", "001_trailing.sql", text.encode())
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert "syntax error" not in result.err
    assert db.history() == [("001", "applied")]
    assert db.query("SELECT id FROM public.trailing") == [(1,)]


# --- case 12 -----------------------------------------------------------------------------------------------------

def test_case12_a_crlf_file_runs_with_its_own_line_endings(project: Project, db: Database) -> None:
    text = ("CREATE TABLE IF NOT EXISTS public.crlf (body text);\r\n"
            "INSERT INTO public.crlf VALUES ('first\r\nsecond');\r\n"
            "CREATE OR REPLACE FUNCTION public.crlf_fn() RETURNS text LANGUAGE sql AS $$SELECT 'a\r\nb'$$;\r\n")
    write_bytes(project, "lanconnect", "001_crlf.sql", text.encode())
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.query("SELECT body FROM public.crlf") == [("first\r\nsecond",)], "the CR psql keeps was dropped"
    assert db.query("SELECT public.crlf_fn()") == [("a\r\nb",)]


def test_case12_the_checksum_still_ignores_line_endings(project: Project, db: Database) -> None:
    """Only the checksum normalises: re-saving an applied file with CRLF is not a change."""
    write_bytes(project, "lanconnect", "001_crlf.sql", b"CREATE TABLE IF NOT EXISTS public.crlf (body text);\n")
    assert project.run("migrate").code == 0
    write_bytes(project, "lanconnect", "001_crlf.sql", b"CREATE TABLE IF NOT EXISTS public.crlf (body text);\r\n")
    assert status_states(project) == {"001": "applied"}


# --- case 13 -----------------------------------------------------------------------------------------------------

@pytest.fixture
def sql_ascii_db(server: Server) -> Iterator[Database]:
    name = f"mt_ascii_{uuid.uuid4().hex[:10]}"
    admin = server.connect()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
                       "TEMPLATE template0")
    admin.close()
    try:
        yield Database(server, name, server.url(name))
    finally:
        admin = server.connect()
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            cursor.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


def test_case13_non_ascii_notice_on_a_sql_ascii_database(sql_ascii_db: Database, tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", sql_ascii_db.url)
    project.write("lanconnect", "001_check.sql", """
        DO $$ BEGIN RAISE NOTICE '✅ operator check passed'; END $$;
        CREATE TABLE IF NOT EXISTS public.after_notice (label text);
        INSERT INTO public.after_notice VALUES ('naïve ✅');
    """)
    result = project.run("migrate")
    assert "Traceback" not in result.err, result.err
    assert "UnicodeEncodeError" not in result.err
    assert result.code == 0, result.err
    assert sql_ascii_db.history() == [("001", "applied")]
    stored = sql_ascii_db.query("SELECT encode(convert_to(label, 'SQL_ASCII'), 'hex') FROM public.after_notice")
    assert stored == [("naïve ✅".encode().hex(),)]  # the file's bytes, as psql would send them


# --- case 14 -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("executor", ["builtin", "psql"])
def test_case14_notices_and_warnings_are_shown_and_kept(project: Project, db: Database, executor: str) -> None:
    env = {}
    if executor == "psql":
        env = {"MIGRATE_EXECUTOR": "psql", "MIGRATE_PSQL": psql_or_skip()}
    project.write("lanconnect", "001_checks.sql", """
        CREATE TABLE IF NOT EXISTS public.checked (id int);
        DO $$ BEGIN RAISE NOTICE 'operator check: % rows', 42; END $$;
        DO $$ BEGIN RAISE WARNING 'heads up: slow backfill ahead'; END $$;
    """)
    result = project.run("migrate", env=env)
    assert result.code == 0, result.err
    lines = result.err.splitlines()
    assert any("operator check: 42 rows" in line and "001_checks.sql" in line for line in lines), result.err
    assert any("heads up: slow backfill ahead" in line and "001_checks.sql" in line for line in lines), result.err
    kept = db.query(f"SELECT row_to_json(a)::text FROM {ATTEMPTS} a WHERE version = '001' AND outcome = 'applied'")
    assert len(kept) == 1
    assert "operator check: 42 rows" in kept[0][0], "the attempt log does not keep the file's notices"
