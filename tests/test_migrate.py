"""inv migrate / python -m migrate migrate: order, atomicity, failure recording, retry."""

from __future__ import annotations

from conftest import Database, Project


def test_tracks_apply_lanconnect_first_then_client_specific(project: Project, db: Database) -> None:
    # the client file needs the lanconnect table: it only works if lanconnect runs first,
    # even though its number is lower
    project.write("client_specific", "001_client.sql", """
        INSERT INTO langconnect.run_order (who) VALUES ('client 001');
    """)
    project.write("lanconnect", "002_second.sql", "INSERT INTO langconnect.run_order (who) VALUES ('lanconnect 002');")
    project.write("lanconnect", "001_first.sql", """
        CREATE SCHEMA IF NOT EXISTS langconnect;
        CREATE TABLE langconnect.run_order (n serial PRIMARY KEY, who text NOT NULL);
        INSERT INTO langconnect.run_order (who) VALUES ('lanconnect 001');
    """)
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert [r[0] for r in db.query("SELECT who FROM langconnect.run_order ORDER BY n")] == [
        "lanconnect 001", "lanconnect 002", "client 001"]
    lines = [line for line in result.out.splitlines() if line.startswith("[")]
    assert [line.split("  ")[0] for line in lines] == [
        "[1/3] lanconnect 001_first.sql", "[2/3] lanconnect 002_second.sql", "[3/3] client_specific 001_client.sql"]


def test_versions_are_ordered_by_numeric_value_not_text(project: Project, db: Database) -> None:
    project.write("lanconnect", "00010_ten.sql", "INSERT INTO t (v) VALUES ('00010');")
    project.write("lanconnect", "0002_two.sql", "INSERT INTO t (v) VALUES ('0002');")
    project.write("lanconnect", "9_nine.sql", "INSERT INTO t (v) VALUES ('9');")
    project.write("lanconnect", "1-create.sql", "CREATE TABLE t (n serial, v text);")
    assert project.run("migrate").code == 0
    assert [r[0] for r in db.query("SELECT v FROM t ORDER BY n")] == ["0002", "9", "00010"]
    assert db.history() == [("00010", "applied"), ("0002", "applied"), ("1", "applied"), ("9", "applied")]


def test_failure_rolls_back_records_failed_row_and_stops(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_ok.sql", "CREATE TABLE ok_table (id int);")
    project.write("lanconnect", "002_bad.sql", """
        CREATE TABLE half_done (id int);
        -- the next statement fails: half_done must not survive
        INSERT INTO no_such_table VALUES (1);
    """)
    project.write("lanconnect", "003_never.sql", "CREATE TABLE never_run (id int);")
    project.write("client_specific", "001_client.sql", "CREATE TABLE client_never (id int);")
    result = project.run("migrate")
    assert result.code == 1
    error_line = result.err.strip().splitlines()[-1]
    assert error_line.startswith(
        'migrate: error: migrations/lanconnect/002_bad.sql:3:13: ERROR 42P01: relation "no_such_table" does not exist')
    assert "rolled back" in error_line and "recorded as failed" in error_line
    # announced only after commit: the failed file never shows as applied
    assert "002_bad.sql" not in result.out
    assert "[1/4] lanconnect 001_ok.sql" in result.out
    assert db.tables("public") == ["ok_table"]
    rows = db.history_rows()
    assert [(r["version"], r["status"]) for r in rows] == [("001", "applied"), ("002", "failed")]
    assert rows[1]["error_message"] == (
        '42P01: relation "no_such_table" does not exist at migrations/lanconnect/002_bad.sql:3:13 (statement 2)')
    assert db.history("client_specific") == []

    status = project.run("status")
    assert status.code == 0
    assert 'failed: 42P01: relation "no_such_table" does not exist' in status.out

    # fix the file and run again: applied, failed row replaced
    project.write("lanconnect", "002_bad.sql", "CREATE TABLE half_done (id int);")
    again = project.run("migrate")
    assert again.code == 0, again.err
    assert db.history() == [("001", "applied"), ("002", "applied"), ("003", "applied")]
    assert db.history_rows()[1]["error_message"] is None
    assert db.history("client_specific") == [("001", "applied")]
    assert db.tables("public") == ["client_never", "half_done", "never_run", "ok_table"]


def test_runtime_error_inside_a_do_block_names_its_line_in_the_file(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_div.sql", """
        CREATE TABLE numbers (n int);
        INSERT INTO numbers VALUES (1);

        DO $$
        BEGIN
            PERFORM 1 / 0;
        END
        $$;
    """)
    result = project.run("migrate")
    assert result.code == 1
    # inside a DO block the error is located at its line in the file, from PostgreSQL's CONTEXT
    assert "migrations/lanconnect/001_div.sql:6:5: ERROR 22012: division by zero" in result.err
    assert ('[CONTEXT: SQL statement "SELECT 1 / 0" PL/pgSQL function inline_code_block line 3 at PERFORM]'
            in result.err)
    assert db.tables("public") == []
    assert db.history_rows()[0]["error_message"].startswith("22012: division by zero at ")


def test_nothing_pending_is_success(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE a (id int);")
    assert project.run("migrate").code == 0
    again = project.run("migrate")
    assert again.code == 0
    assert "Nothing to apply: the database is up to date." in again.out
    empty_project_result = project.run("migrate", env={"MIGRATIONS_DIR": str(project.root / "migrations")})
    assert empty_project_result.code == 0


def test_session_settings_of_one_file_do_not_leak_into_the_next(project: Project, db: Database) -> None:
    # each file used to run in its own psql session: SET in one must not change the next
    project.write("lanconnect", "001_schema.sql", """
        CREATE SCHEMA IF NOT EXISTS langconnect;
        SET search_path = langconnect, public;
        CREATE TABLE in_app_schema (id int);
    """)
    project.write("lanconnect", "002_default.sql", "CREATE TABLE in_default_schema (id int);")
    assert project.run("migrate").code == 0, "migrate failed"
    assert "in_default_schema" in db.tables("public")
    assert "in_app_schema" in db.tables("langconnect")


def test_a_statement_with_percent_signs_and_unicode_runs_verbatim(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_text.sql", "CREATE TABLE t (v text); INSERT INTO t VALUES ('100% é ✓ %s %(x)s');")
    assert project.run("migrate").code == 0
    assert db.query("SELECT v FROM t") == [("100% é ✓ %s %(x)s",)]


def test_shared_number_is_one_version_applied_in_file_name_order(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_b_second.sql", "INSERT INTO t (v) VALUES ('b');")
    project.write("lanconnect", "001_a_first.sql", "CREATE TABLE t (n serial, v text); INSERT INTO t (v) VALUES ('a');")
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert [r[0] for r in db.query("SELECT v FROM t ORDER BY n")] == ["a", "b"]
    rows = db.history_rows()
    assert len(rows) == 1
    assert rows[0]["version"] == "001" and rows[0]["filename"] == "001_a_first.sql, 001_b_second.sql"


def test_shipped_example_migrations_apply_on_plain_postgresql(project: Project, db: Database) -> None:
    from conftest import REPO

    result = project.run("migrate", env={"MIGRATIONS_DIR": str(REPO / "migrations")})
    assert result.code == 0, result.err
    assert {"collections", "documents", "user_preferences"} <= set(db.tables("langconnect"))
    # and they are idempotent: running every file again changes nothing and raises nothing
    for path in sorted((REPO / "migrations" / "lanconnect").glob("*.sql")) + sorted(
            (REPO / "migrations" / "client_specific").glob("*.sql")):
        db.execute(path.read_text())
    assert db.query("SELECT count(*) FROM pg_trigger WHERE tgname = 'collections_touch_updated_at'") == [(1,)]


def test_history_row_records_checksum_filename_and_duration(project: Project, db: Database) -> None:
    from migrate.files.sqlfiles import checksum_of

    path = project.write("lanconnect", "001_a.sql", "CREATE TABLE a (id int);")
    assert project.run("migrate").code == 0
    row = db.history_rows()[0]
    assert row["checksum"] == checksum_of(path.read_bytes())
    assert row["checksum"].startswith("sha256:")
    assert row["filename"] == "001_a.sql"
    assert row["description"] == "Applied 001_a.sql"
    assert isinstance(row["execution_ms"], int) and row["execution_ms"] >= 0
    assert row["applied_at"] is not None
