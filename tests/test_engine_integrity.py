"""Issue 12, cases 8-11 and 15-20: exactly once, nothing recorded that did not run, true output.

Each test reproduces a case as a user met it and asserts what must hold; see `issues show 12`.
Tests that crash or restart a server do it on a cluster of their own (engine_support.private_cluster).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from conftest import Database, Project, fresh_database
from engine_support import (
    COUNTER_DDL,
    Stream,
    applied_versions,
    attempts,
    count_sql,
    counter,
    crash,
    invalid_indexes,
    kill,
    printed_versions,
    private_cluster,
    psql_or_skip,
    restart,
    run_lock_holder,
    second_runner_in_place,
    sleepers,
    spawn,
    status_states,
    until,
)

GATE_DDL = "CREATE TABLE public.gate (opened_at timestamptz)"
WAIT_FOR_GATE = ("DO $$ BEGIN WHILE NOT EXISTS (SELECT 1 FROM public.gate) LOOP PERFORM pg_sleep(0.05); "
                 "END LOOP; END $$;")
KNOB_DDL = "CREATE TABLE public.knob (seconds float NOT NULL); INSERT INTO public.knob VALUES (30)"
SLEEP_BY_KNOB = "SELECT pg_sleep((SELECT seconds FROM public.knob));"


def _gone(db: Database, timeout: float = 10) -> None:
    """Until no backend of this database runs pg_sleep (a killed runner's work was rolled back)."""
    until(lambda: not sleepers(db), timeout=timeout, what="the killed runner's backend to end")


# --- case 8 ------------------------------------------------------------------------------------------------------

def test_case08_every_version_printed_as_applied_survives_a_crash(tmp_path: Path) -> None:
    with private_cluster(tmp_path) as private:
        db, project = private.db, private.project
        # the WAL writer flushes async commits late: what a crash loses is what was not flushed at commit
        private.alter_system(wal_writer_delay="10s")
        db.execute(COUNTER_DDL)
        for version in range(1, 31):
            project.write("lanconnect", f"{version:03d}_small.sql", count_sql(f"{version:03d}"))
        project.write("lanconnect", "031_slow.sql", "SELECT pg_sleep(60);")
        project.write("lanconnect", "032_after.sql", count_sql("032"))
        runner = Stream(spawn(project, "migrate"))
        try:
            until(lambda: sleepers(db) and any(line.startswith("[30/32]") for line in runner.out), timeout=30,
                  what="versions 001-030 printed as applied and 031 running")
            printed = printed_versions(runner.out)
            crash(private.cluster)
        finally:
            kill(runner.process)
        private.cluster.start()
        assert printed == {f"{v:03d}" for v in range(1, 31)}
        recorded = applied_versions(db)
        lost = sorted(printed - recorded)
        assert not lost, f"printed as applied, then lost in the crash: {lost}"
        assert all(counter(db).get(v) == 1 for v in printed)


# --- case 9 ------------------------------------------------------------------------------------------------------

def test_case09_a_file_added_under_an_applied_version_is_never_recorded_unrun(
        project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.first_a (id int);")
    assert project.run("migrate").code == 0
    project.write("lanconnect", "001_b.sql", "CREATE TABLE IF NOT EXISTS public.added_b (id int);")
    stopped = project.run("migrate")
    assert stopped.code == 4, stopped.err
    assert "001_b.sql" in stopped.err
    assert "added_b" not in db.tables("public")
    project.run("repair", "--yes")  # the advice users followed; whatever it says, it must not claim 001_b ran
    rows = db.history_rows()
    assert [row["version"] for row in rows] == ["001"]
    assert "added_b" not in db.tables("public")
    assert "001_b.sql" not in (rows[0]["filename"] or ""), "repair recorded 001_b.sql, which never ran"
    assert status_states(project)["001"] != "applied", "status claims 001 (with 001_b.sql) applied; 001_b never ran"
    again = project.run("migrate")
    assert again.code != 0 or "added_b" in db.tables("public"), "migrate exits 0 with 001_b.sql never run"


# --- case 10 -----------------------------------------------------------------------------------------------------

PLPGSQL_ERRORS = {
    "do-block": ("SET search_path = langconnect, public;\n"
                 "DO $$\n"
                 "BEGIN\n"
                 "  IF true THEN\n"
                 "    RAISE NOTICE 'checked';\n"
                 "  END;\n"  # line 6: END IF is missing
                 "END\n"
                 "$$;\n", 6),
    "function-body": ("SET search_path = langconnect, public;\n"
                      "CREATE OR REPLACE FUNCTION public.answer() RETURNS int LANGUAGE plpgsql AS $$\n"
                      "BEGIN\n"
                      "  RETURN 42\n"
                      "END\n"  # line 5: the ; after RETURN 42 is missing
                      "$$;\n", 5),
}


@pytest.mark.parametrize("kind", sorted(PLPGSQL_ERRORS))
def test_case10_plpgsql_syntax_errors_are_refused_before_anything_runs(
        project: Project, db: Database, kind: str) -> None:
    text, line = PLPGSQL_ERRORS[kind]
    project.write("lanconnect", "001_ok.sql", "CREATE TABLE IF NOT EXISTS public.before_it (id int);")
    (project.root / "migrations" / "lanconnect" / "002_plpgsql.sql").write_text(text)
    where = re.compile(rf"002_plpgsql\.sql:{line}:\d+")
    lint = project.run("lint")
    assert lint.code == 4, lint.out + lint.err
    assert where.search(lint.out + lint.err), lint.out + lint.err
    dry = project.run("dry-run")
    assert dry.code == 4, dry.out + dry.err
    assert "002_plpgsql.sql" in dry.err
    result = project.run("migrate")
    assert result.code == 4, result.err
    assert where.search(result.err), result.err
    assert "before_it" not in db.tables("public"), "version 001 was applied before the refusal"
    assert applied_versions(db) == set()


def test_case10_an_error_inside_a_do_block_is_located_at_its_line(project: Project, db: Database) -> None:
    (project.root / "migrations" / "lanconnect" / "001_do.sql").write_text(
        "SET search_path = langconnect, public;\n"
        "DO $$\n"
        "BEGIN\n"
        "  PERFORM 1;\n"
        "  INSERT INTO public.nowhere VALUES (1);\n"  # line 5
        "END\n"
        "$$;\n")
    result = project.run("migrate")
    assert result.code == 1
    error = [line for line in result.err.splitlines() if line.startswith("migrate: error:")][-1]
    assert re.search(r"001_do\.sql:5(:\d+)?\b", error), error
    assert "42P01" in error
    recorded = db.history_rows()[0]
    assert recorded["status"] == "failed"
    assert "inline_code_block" in (recorded["error_message"] or ""), "the server's CONTEXT was dropped"


# --- case 11 -----------------------------------------------------------------------------------------------------

BACKSLASH_LINES = {
    "string-literal": ("CREATE TABLE IF NOT EXISTS public.notes (body text);\n"
                       "INSERT INTO public.notes VALUES ('first line\n"
                       "\\not a meta-command\n"
                       "last line');\n", "first line\n\\not a meta-command\nlast line"),
    "dollar-quote": ("CREATE TABLE IF NOT EXISTS public.notes (body text);\n"
                     "INSERT INTO public.notes VALUES ($body$first line\n"
                     "\\set x 1\n"
                     "last line$body$);\n", "first line\n\\set x 1\nlast line"),
    "block-comment": ("CREATE TABLE IF NOT EXISTS public.notes (body text);\n"
                      "/* usage:\n"
                      "\\i not_a_file.sql\n"
                      "*/\n"
                      "INSERT INTO public.notes VALUES ('plain');\n", "plain"),
}


@pytest.mark.parametrize("kind", sorted(BACKSLASH_LINES))
def test_case11_a_backslash_line_inside_sql_does_not_make_a_psql_file(
        project: Project, db: Database, kind: str) -> None:
    text, stored = BACKSLASH_LINES[kind]
    (project.root / "migrations" / "lanconnect" / "001_notes.sql").write_text(text)
    dry = project.run("dry-run", "--json")
    assert dry.code == 0, dry.err
    [item] = json.loads(dry.out)["to_apply"]
    assert item["mode"] == "transaction", item["mode"]
    # without psql the file must still run: it is plain SQL
    result = project.run("migrate", env={"MIGRATE_PSQL": str(project.root / "no-psql-here")})
    assert result.code == 0, result.err
    assert db.query("SELECT body FROM public.notes") == [(stored,)]


def test_case11_strict_lint_is_not_bypassed_by_a_backslash_line(project: Project, db: Database) -> None:
    (project.root / "migrations" / "lanconnect" / "001_notes.sql").write_text(
        "CREATE TABLE public.notes (body text);\n"  # no IF NOT EXISTS: a lint error
        "INSERT INTO public.notes VALUES ('first line\n"
        "\\not a meta-command\n"
        "last line');\n")
    lint = project.run("lint")
    assert lint.code == 4, lint.out + lint.err
    assert "idempotent-create-table" in lint.out
    result = project.run("migrate", env={"MIGRATE_LINT": "strict"})
    assert result.code == 4, result.err
    assert "idempotent-create-table" in result.err
    assert "notes" not in db.tables("public")


# --- case 15 -----------------------------------------------------------------------------------------------------

def test_case15_a_psql_file_is_applied_once_when_the_lock_session_is_terminated(
        project: Project, db: Database) -> None:
    psql_or_skip()
    db.execute(COUNTER_DDL)
    db.execute(GATE_DDL)
    project.write("lanconnect", "001_psql.sql", f"""
        \\set label 'psql file'
        {count_sql("001")}
        {WAIT_FOR_GATE}
    """)
    first = spawn(project, "migrate")
    second = None
    try:
        first_file = set(until(lambda: sleepers(db), what="psql to run the file"))
        holder = run_lock_holder(db, exclude=first_file)
        assert holder is not None, "no backend holds an advisory lock while the file runs"
        db.execute("SELECT pg_terminate_backend(%s)", (holder,))
        second = spawn(project, "migrate", env={"MIGRATE_LOCK_TIMEOUT": "90"})

        until(lambda: second_runner_in_place(db, second, first_file), timeout=15,
              what="the second runner to wait, or to run the file")
        time.sleep(1.0)
    finally:
        db.execute("INSERT INTO public.gate VALUES (now())")
        first_out, first_err = first.communicate(timeout=60)
        second_out, second_err = second.communicate(timeout=60) if second else ("", "")
    assert counter(db) == {"001": 1}, "the file ran twice: the second runner applied it again"
    assert db.history() == [("001", "applied")]
    assert [outcome for _v, outcome in attempts(db, "001")].count("applied") == 1
    assert second is not None and second.returncode == 0, second_err
    assert "Traceback" not in first_err + second_err


# --- case 16 -----------------------------------------------------------------------------------------------------

def test_case16_an_invalid_index_left_by_a_kill_is_never_recorded_applied(project: Project, db: Database) -> None:
    db.execute("CREATE TABLE public.items (a int); INSERT INTO public.items SELECT g FROM generate_series(1, 1000) g")
    project.write("lanconnect", "001_index.sql",
                  "CREATE INDEX CONCURRENTLY IF NOT EXISTS items_a_idx ON public.items (a);")
    writer = db.connect()  # an open writing transaction: CREATE INDEX CONCURRENTLY waits for it
    try:
        with writer.cursor() as cursor:
            cursor.execute("BEGIN; INSERT INTO public.items VALUES (0)")
        runner = spawn(project, "migrate")
        waiting = until(lambda: db.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND query ILIKE '%%CONCURRENTLY%%' AND pid <> pg_backend_pid()"), what="the index build to wait")
        kill(runner)
        try:
            until(lambda: not db.query("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (waiting[0][0],)),
                  timeout=5, what="the server to notice the dead runner")
        except AssertionError:
            db.execute("SELECT pg_terminate_backend(%s)", (waiting[0][0],))  # as a crash would
    finally:
        with writer.cursor() as cursor:
            cursor.execute("ROLLBACK")
        writer.close()
    assert invalid_indexes(db) == ["items_a_idx"]  # the interrupted build left it INVALID
    again = project.run("migrate")
    broken = "items_a_idx" in invalid_indexes(db)
    assert not ("001" in applied_versions(db) and broken), (
        "version 001 recorded applied while its index items_a_idx is INVALID")
    if again.code != 0:
        assert "items_a_idx" in again.err, again.err  # stopped, saying which index and what to do
    else:
        assert not broken


# --- case 17 -----------------------------------------------------------------------------------------------------

def test_case17_a_killed_runners_psql_work_ends_with_it(project: Project, db: Database) -> None:
    psql_or_skip()
    db.execute(COUNTER_DDL)
    db.execute(KNOB_DDL)
    project.write("lanconnect", "001_psql.sql", f"""
        \\set label 'psql file'
        {count_sql("001")}
        {SLEEP_BY_KNOB}
    """)
    runner = spawn(project, "migrate")
    until(lambda: sleepers(db), what="psql to run the file")
    kill(runner)
    killed_at = time.monotonic()
    try:
        until(lambda: not sleepers(db), timeout=5, what="the psql statement to end with its runner")
    except AssertionError:
        raise AssertionError("the statement the killed runner's psql sent still runs "
                             f"{time.monotonic() - killed_at:.1f} s after the kill") from None
    db.execute("UPDATE public.knob SET seconds = 0")
    again = project.run("migrate")
    assert again.code == 0, again.err
    assert counter(db) == {"001": 1}


# --- case 18 -----------------------------------------------------------------------------------------------------

def test_case18_a_non_transactional_file_killed_mid_way_is_visible(project: Project, db: Database) -> None:
    db.execute("CREATE TABLE public.effects (version text NOT NULL)")
    db.execute(KNOB_DDL)
    project.write("lanconnect", "001_no_tx.sql", f"""
        -- migrate:no-transaction
        INSERT INTO public.effects VALUES ('001');
        {SLEEP_BY_KNOB}
    """)
    runner = spawn(project, "migrate")
    until(lambda: sleepers(db), what="the file's second statement")
    kill(runner)
    _gone(db)
    executions = db.query("SELECT count(*) FROM public.effects")[0][0]
    assert executions == 1
    assert len(attempts(db, "001")) >= executions, "the interrupted execution left no attempt row"
    status = project.run("status", "--json")
    [item] = [item for item in json.loads(status.out)["migrations"] if item["version"] == "001"]
    assert item["state"] != "applied" and item["interrupted"], f"status shows the interrupted version as plain " \
                                                                f"{item['state']!r}"
    assert "pending (interrupted mid-file: " in project.run("status").out
    db.execute("UPDATE public.knob SET seconds = 0")
    again = project.run("migrate")
    assert again.code == 0, again.err
    executions = db.query("SELECT count(*) FROM public.effects")[0][0]
    assert executions == 2  # at-least-once: the whole file ran again
    assert len(attempts(db, "001")) >= executions, "an execution of the file left no attempt row"
    assert db.history() == [("001", "applied")]


# --- case 19 -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("meta", ["\\c", "\\connect"])
def test_case19_a_psql_file_cannot_connect_elsewhere(project: Project, db: Database, meta: str) -> None:
    psql_or_skip()
    with fresh_database(db.server) as other:
        project.write("lanconnect", "001_elsewhere.sql", f"""
            CREATE TABLE public.here (id int);
            {meta} {other.name}
            CREATE TABLE public.there (id int);
        """)
        result = project.run("migrate")
        there = other.tables("public")
    assert there == [], "the file committed in another database"
    assert "here" not in db.tables("public")
    assert result.code == 4, result.err
    assert "001_elsewhere.sql" in result.err and meta in result.err
    assert applied_versions(db) == set()


# --- case 20 -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "mode"), [("psql", "fast"), ("psql", "immediate"), ("plain", "immediate")])
def test_case20_a_server_restart_during_a_file_is_a_migration_failure(tmp_path: Path, kind: str, mode: str) -> None:
    with private_cluster(tmp_path) as private:
        db, project = private.db, private.project
        project.write("lanconnect", "001_first.sql", "CREATE TABLE IF NOT EXISTS public.first (id int);")
        if kind == "psql":
            psql_or_skip()
            project.write("lanconnect", "002_slow.sql", "\\set label 'psql file'\nSELECT pg_sleep(30);\n")
        else:
            project.write("lanconnect", "002_slow.sql", "SELECT pg_sleep(30);\n")
        runner = Stream(spawn(project, "migrate"))
        until(lambda: sleepers(db), what="002 to run")
        restart(private.cluster, mode)
        code = runner.wait(timeout=60)
    errors = [line for line in runner.err if line.startswith("migrate: error:")]
    assert code == 1, "\n".join(runner.err)
    assert len(errors) == 1, runner.err
    assert "002_slow.sql" in errors[0]
    assert "Traceback" not in "\n".join(runner.err)


def test_case20_a_read_only_database_is_not_a_lost_connection(project: Project, db: Database) -> None:
    db.execute(f'ALTER DATABASE "{db.name}" SET default_transaction_read_only = on')
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    result = project.run("migrate")
    assert result.code != 0
    assert "Traceback" not in result.err
    assert "lost the connection" not in result.err, result.err
    assert "read-only" in result.err


def test_case20_a_history_table_missing_a_column_is_not_a_lost_connection(project: Project, db: Database) -> None:
    """A history table from an older tool without `status`, every version recorded: nothing to apply."""
    db.execute("CREATE SCHEMA langconnect; CREATE TABLE langconnect.lanconnect_migration_versions "
               "(version varchar(255) PRIMARY KEY, applied_at timestamptz DEFAULT now(), description text)")
    db.execute("INSERT INTO langconnect.lanconnect_migration_versions (version) VALUES ('001'), ('002')")
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    project.write("lanconnect", "002_b.sql", "CREATE TABLE IF NOT EXISTS public.b (id int);")
    result = project.run("migrate")
    assert "Traceback" not in result.err
    assert "lost the connection" not in result.err, result.err
    if result.code != 0:
        assert result.code != 3, result.err  # the server is reachable; the table is what is wrong
        assert "status" in result.err, result.err  # the column it needs is named
    assert db.query("SELECT version FROM langconnect.lanconnect_migration_versions ORDER BY 1") == [
        ("001",), ("002",)]
    assert db.tables("public") == []  # nothing recorded was run again


def test_case20_an_unterminated_dollar_quote_error_is_bounded(project: Project, db: Database) -> None:
    body = "".join(f"  PERFORM {n};  -- step {n} of a long backfill\n" for n in range(1, 499))
    (project.root / "migrations" / "lanconnect" / "001_long.sql").write_text(
        "SET search_path = langconnect, public;\nDO $$\nBEGIN\n" + body)  # 501 lines, $$ never closed
    result = project.run("migrate")
    assert result.code == 4
    assert "001_long.sql" in result.err
    assert len(result.err.splitlines()) < 10, f"{len(result.err.splitlines())} stderr lines"
    assert len(result.err) < 3000, f"{len(result.err)} characters on stderr"
    assert applied_versions(db) == set()

