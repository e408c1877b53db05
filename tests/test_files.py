"""Bad input is refused before anything is applied, naming file, line and column."""

from __future__ import annotations

from conftest import Database, Project


def _assert_untouched(db: Database) -> None:
    assert db.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'langconnect'") == [(0,)]
    assert db.tables("public") == []


def test_bad_name_is_an_error_naming_the_file(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_ok.sql", "CREATE TABLE ok (id int);")
    project.write("lanconnect", "add_users.sql", "CREATE TABLE users (id int);")
    result = project.run("migrate")
    assert result.code == 4
    assert result.err.strip().splitlines()[-1] == (
        "migrate: error: migrations/lanconnect/add_users.sql: not a migration file name: expected "
        "<digits>_<description>.sql such as 004_add_user_preferences.sql; rename it, or end it in .down.sql "
        "to have it ignored")
    _assert_untouched(db)
    assert project.run("status").code == 4


def test_down_files_readme_and_gitkeep_are_ignored(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_ok.sql", "CREATE TABLE ok (id int);")
    project.write("lanconnect", "001_ok.down.sql", "DROP TABLE ok;")
    project.write("lanconnect", "README.md", "# notes")
    project.write("lanconnect", ".gitkeep", "")
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.tables("public") == ["ok"]
    assert db.history() == [("001", "applied")]


def test_syntax_error_in_a_later_file_stops_before_anything_runs(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_ok.sql", "CREATE TABLE ok (id int);")
    project.write("client_specific", "001_bad.sql", "-- comment\nSELECT 1;\n\nINSERT INTO x VALUES (1,;\n")
    result = project.run("migrate")
    assert result.code == 4
    last = result.err.strip().splitlines()[-1]  # after the target line
    assert last == ('migrate: error: migrations/client_specific/001_bad.sql:4:25: syntax error at or '
                    'near ";"; fix the SQL (nothing was applied)')
    _assert_untouched(db)


def test_empty_file_is_refused(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_empty.sql", "\n   \n")
    result = project.run("migrate")
    assert result.code == 4
    assert "migrations/lanconnect/001_empty.sql:1:1: the migration file is empty" in result.err
    _assert_untouched(db)


def test_comment_only_file_is_refused(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_todo.sql", "-- TODO\n")
    result = project.run("migrate")
    assert result.code == 4
    assert "001_todo.sql:1:1: the migration file holds no SQL statement, only comments" in result.err
    _assert_untouched(db)


def test_non_utf8_file_is_refused_with_its_position(project: Project, db: Database) -> None:
    path = project.root / "migrations" / "lanconnect" / "001_latin1.sql"
    path.write_bytes(b"SELECT 1;\nSELECT 'caf\xe9';\n")
    result = project.run("migrate")
    assert result.code == 4
    last = result.err.strip().splitlines()[-1]  # after the target line
    assert last == ("migrate: error: migrations/lanconnect/001_latin1.sql:2:12: the file is not UTF-8 "
                    "(byte 0xe9); re-save it as UTF-8")
    _assert_untouched(db)


def test_bom_and_crlf_files_apply(project: Project, db: Database) -> None:
    path = project.root / "migrations" / "lanconnect" / "001_windows.sql"
    path.write_bytes(b"\xef\xbb\xbfCREATE TABLE w (id int);\r\nINSERT INTO w VALUES (1);\r\n")
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.query("SELECT id FROM w") == [(1,)]

