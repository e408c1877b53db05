"""The attempt log: every try recorded, a failed one surviving its rollback, shown by `history`."""

from __future__ import annotations

import json

from conftest import Database, Project


def test_history_shows_applied_and_failed_attempts_newest_first(project: Project, db: Database) -> None:
    empty = project.inv("history")
    assert empty.code == 0, empty.err
    assert "No migration attempts recorded yet" in empty.out
    assert db.tables("langconnect") == []  # history is read-only: it creates nothing

    project.write("lanconnect", "001_ok.sql", "CREATE TABLE ok (a int);")
    project.write("lanconnect", "002_bad.sql", "CREATE TABLE half (a int);\n\nINSERT INTO nowhere VALUES (1);")
    assert project.run("migrate").code == 1
    assert "half" not in db.tables("public")  # the migration was rolled back, its attempt row was not
    rows = db.query("SELECT track, version, files, outcome, sqlstate, statement_number, line, host, tool_version, "
                    "duration_ms >= 0, started_at <= now() FROM langconnect.migration_attempts ORDER BY id")
    assert [row[:7] for row in rows] == [
        ("lanconnect", "001", "001_ok.sql", "applied", None, None, None),
        ("lanconnect", "002", "002_bad.sql", "failed", "42P01", 2, 3),
    ]
    assert all(row[7] and row[8].startswith("migrate ") and row[9] and row[10] for row in rows)
    message = db.query("SELECT message FROM langconnect.migration_attempts WHERE outcome = 'failed'")[0][0]
    assert message == 'relation "nowhere" does not exist'

    project.write("lanconnect", "002_bad.sql", "CREATE TABLE half (a int);")
    assert project.run("migrate").code == 0

    shown = project.inv("history", "--limit", "2")
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert lines[1].split() == ["started_at", "track", "version", "file(s)", "outcome", "duration", "sqlstate",
                                "where", "message", "host"]
    assert " 002  002_bad.sql  applied " in lines[3]
    assert " 002  002_bad.sql  failed " in lines[4]
    assert "42P01" in lines[4] and "statement 2, line 3" in lines[4] and 'relation "nowhere"' in lines[4]
    assert len(lines) == 5  # --limit 2

    document = json.loads(project.run("history", "--json").out)
    assert [(a["version"], a["outcome"]) for a in document["attempts"]] == [
        ("002", "applied"), ("002", "failed"), ("001", "applied")]


def test_attempt_table_is_added_to_an_existing_history(project: Project, db: Database) -> None:
    """A database migrated by the earlier script gets the attempt log without losing anything."""
    db.execute("""
        CREATE SCHEMA langconnect;
        CREATE TABLE langconnect.lanconnect_migration_versions (
            version VARCHAR(255) NOT NULL PRIMARY KEY,
            applied_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP,
            description TEXT, status TEXT NOT NULL DEFAULT 'applied', error_message TEXT);
        INSERT INTO langconnect.lanconnect_migration_versions (version, description)
            VALUES ('001', 'Applied 001_a.sql');
    """)
    project.write("lanconnect", "001_a.sql", "CREATE TABLE a (i int);")
    project.write("lanconnect", "002_b.sql", "CREATE TABLE b (i int);")
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert "created langconnect.migration_attempts" in result.err
    assert db.history() == [("001", "applied"), ("002", "applied")]
    assert db.query("SELECT version, outcome FROM langconnect.migration_attempts") == [("002", "applied")]


def test_history_limit_must_be_positive(project: Project, db: Database) -> None:
    result = project.run("history", "--limit", "0")
    assert result.code == 2
    assert result.err.splitlines()[-1] == "migrate: error: --limit 0: give a positive number of attempts to show"
