"""status and dry-run: every state, the exact plan, and strictly read-only."""

from __future__ import annotations

import json

from conftest import Database, Project


def _seed(project: Project) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE a (id int);")
    project.write("lanconnect", "002_b.sql", "CREATE TABLE b (id int);")
    project.write("client_specific", "001_c.sql", "CREATE TABLE c (id int);")


def test_status_and_dry_run_create_nothing(project: Project, db: Database) -> None:
    _seed(project)
    before = db.catalog_fingerprint()
    status = project.run("status")
    dry = project.run("dry-run")
    inv_status = project.inv("status")
    inv_dry = project.inv("dry-run")
    assert [status.code, dry.code, inv_status.code, inv_dry.code] == [0, 0, 0, 0], status.err + dry.err
    assert db.catalog_fingerprint() == before
    assert db.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'langconnect'") == [(0,)]
    assert "001_a.sql" in status.out and "pending" in status.out
    assert "Total: 3 pending" in status.out


def test_dry_run_lists_exactly_what_migrate_applies_in_order(project: Project, db: Database) -> None:
    _seed(project)
    project.write("lanconnect", "003_index.sql", "CREATE INDEX CONCURRENTLY a_id ON a (id);")
    dry = project.run("dry-run", "--json")
    assert dry.code == 0, dry.err
    planned = [(m["track"], m["version"], m["files"], m["mode"]) for m in json.loads(dry.out)["to_apply"]]
    assert planned == [
        ("lanconnect", "001", ["migrations/lanconnect/001_a.sql"], "transaction"),
        ("lanconnect", "002", ["migrations/lanconnect/002_b.sql"], "transaction"),
        ("lanconnect", "003", ["migrations/lanconnect/003_index.sql"],
         "no transaction: CREATE INDEX CONCURRENTLY (statement 1, line 1)"),
        ("client_specific", "001", ["migrations/client_specific/001_c.sql"], "transaction"),
    ]
    text = project.run("dry-run").out
    assert text.index("001_a.sql") < text.index("002_b.sql") < text.index("003_index.sql") < text.index("001_c.sql")
    assert "no transaction: CREATE INDEX CONCURRENTLY" in text
    applied = project.run("migrate", "--json")
    assert applied.code == 0, applied.err
    done = [(m["track"], m["version"]) for m in json.loads(applied.out)["applied"]]
    assert done == [(p[0], p[1]) for p in planned]
    assert "Nothing to apply" in project.run("dry-run").out


def test_status_shows_every_state(project: Project, db: Database) -> None:
    _seed(project)
    assert project.run("migrate").code == 0
    # changed: an applied file edited; missing: an applied file deleted
    project.write("lanconnect", "001_a.sql", "CREATE TABLE a (id bigint);")
    (project.root / "migrations" / "client_specific" / "001_c.sql").unlink()
    # failed: a new file that breaks; pending: one after it
    project.write("lanconnect", "003_bad.sql", "SELECT * FROM nowhere;")
    db.execute("INSERT INTO langconnect.lanconnect_migration_versions (version, status, error_message) "
               "VALUES ('003', 'failed', 'boom: relation nowhere\nsecond line')")
    project.write("lanconnect", "004_next.sql", "CREATE TABLE d (id int);")
    result = project.run("status", "--json")
    assert result.code == 0, result.err
    states = {(m["track"], m["version"]): m["state"] for m in json.loads(result.out)["migrations"]}
    assert states == {
        ("lanconnect", "001"): "changed",
        ("lanconnect", "002"): "applied",
        ("lanconnect", "003"): "failed",
        ("lanconnect", "004"): "pending",
        ("client_specific", "001"): "missing",
    }
    text = project.run("status")
    assert "failed: boom: relation nowhere" in text.out and "second line" not in text.out
    assert "Total: 1 applied, 1 pending, 1 failed, 1 changed, 1 missing" in text.out
    assert "client_specific version 001: history row" in text.err  # the missing one is a warning, not fatal


def test_dry_run_refuses_a_syntax_error_in_a_pending_file(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE a (id int);\nCREATE TABEL b (id int);\n")
    result = project.run("dry-run")
    assert result.code == 4
    last = result.err.strip().splitlines()[-1]  # after the target line
    assert last == ('migrate: error: migrations/lanconnect/001_a.sql:2:8: syntax error at or near '
                    '"TABEL"; fix the SQL (nothing was applied)')


def _attempt(db: Database, version: str, outcome: str, started_at: str) -> None:
    db.execute("INSERT INTO langconnect.migration_attempts (track, version, files, started_at, outcome) "
               "VALUES ('lanconnect', %s, %s, %s, %s)", (version, f"{version}_x.sql", started_at, outcome))


def test_a_version_interrupted_mid_file_is_shown_as_such(project: Project, db: Database) -> None:
    """The attempt log's latest `started` attempt of a version that is not applied: a file that runs outside one
    transaction began and never reported back, so some of it may have committed (at-least-once)."""
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    assert project.run("migrate").code == 0
    for version in ("002", "003", "004"):
        project.write("lanconnect", f"{version}_x.sql", "-- migrate:no-transaction\nSELECT 1;")
    _attempt(db, "001", "started", "2026-01-02 03:00:00+00")  # older than its applied attempt
    _attempt(db, "002", "started", "2026-01-02 03:04:05+00")  # interrupted
    _attempt(db, "003", "started", "2026-01-02 03:00:00+00")
    _attempt(db, "003", "failed", "2026-01-02 03:00:01+00")   # a later attempt reported back
    [(started_at,)] = db.query("SELECT started_at FROM langconnect.migration_attempts WHERE version = '002'")
    status = project.run("status")  # the server's time zone, as this test's own session reads it
    assert status.code == 0, status.err
    rows = {line.split()[0]: line for line in status.out.splitlines() if line[:3] in ("001", "002", "003", "004")}
    assert f"pending (interrupted mid-file: {started_at:%Y-%m-%d %H:%M:%S})" in rows["002"]
    assert [version for version, line in rows.items() if "interrupted" in line] == ["002"]
    document = json.loads(project.run("status", "--json").out)
    flags = {item["version"]: (item["state"], item["interrupted"]) for item in document["migrations"]}
    assert flags == {"001": ("applied", False), "002": ("pending", True), "003": ("pending", False),
                     "004": ("pending", False)}
    [item] = [item for item in document["migrations"] if item["version"] == "002"]
    assert item["interrupted_at"] == started_at.isoformat()
    dry = project.run("dry-run")
    assert dry.code == 0, dry.err
    assert "interrupted mid-file: runs again from its start" in [line for line in dry.out.splitlines()
                                                                 if "002_x.sql" in line][0]


def test_status_reads_no_attempt_log_where_there_is_none(project: Project, db: Database) -> None:
    """A database the earlier script migrated: history tables, no attempt log. status reads it and creates nothing."""
    db.execute("CREATE SCHEMA langconnect; CREATE TABLE langconnect.lanconnect_migration_versions "
               "(version varchar(255) PRIMARY KEY, applied_at timestamp DEFAULT now(), description text, "
               "status text NOT NULL DEFAULT 'applied', error_message text)")
    db.execute("INSERT INTO langconnect.lanconnect_migration_versions (version) VALUES ('001')")
    project.write("lanconnect", "001_a.sql", "SELECT 1;")
    project.write("lanconnect", "002_b.sql", "SELECT 2;")
    document = json.loads(project.run("status", "--json").out)
    assert [(item["state"], item["interrupted"]) for item in document["migrations"]] == [
        ("applied", False), ("pending", False)]
    assert db.query("SELECT to_regclass('langconnect.migration_attempts')") == [(None,)]
