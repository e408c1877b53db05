"""Databases of the earlier script, and files that write their own history rows."""

from __future__ import annotations

import json

from conftest import Database, Project

EARLIER_SCRIPT_DDL = """
CREATE SCHEMA IF NOT EXISTS langconnect;
CREATE TABLE IF NOT EXISTS langconnect.{table} (
    version VARCHAR(255) NOT NULL PRIMARY KEY,
    applied_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    description TEXT,
    status TEXT NOT NULL DEFAULT 'applied',
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS idx_{table}_applied_at ON langconnect.{table}(applied_at);
CREATE INDEX IF NOT EXISTS idx_{table}_status ON langconnect.{table}(status);
"""


def test_tables_of_the_earlier_script_are_upgraded_in_place(project: Project, db: Database) -> None:
    for table in ("lanconnect_migration_versions", "client_migration_versions"):
        db.execute(EARLIER_SCRIPT_DDL.format(table=table))
    db.execute("CREATE TABLE public.one (id int); CREATE TABLE public.two (id int)")
    db.execute("INSERT INTO langconnect.lanconnect_migration_versions (version, applied_at, description) VALUES "
               "('001', '2024-01-02 03:04:05', 'Applied 001_one.sql'), "
               "('002', '2024-01-02 03:04:06', 'Applied 002_two.sql')")
    db.execute("INSERT INTO langconnect.client_migration_versions (version, description, status, error_message) "
               "VALUES ('001', 'Applied 001_c.sql', 'failed', 'ERROR: boom')")
    project.write("lanconnect", "001_one.sql", "CREATE TABLE one (id int);")
    project.write("lanconnect", "002_two.sql", "CREATE TABLE two (id int);")
    project.write("lanconnect", "003_three.sql", "CREATE TABLE three (id int);")
    project.write("client_specific", "001_c.sql", "CREATE TABLE c (id int);")

    result = project.run("migrate")
    assert result.code == 0, result.err
    assert "[1/2] lanconnect 003_three.sql" in result.out
    assert "[2/2] client_specific 001_c.sql" in result.out
    assert "upgraded langconnect.lanconnect_migration_versions" in result.err
    rows = db.history_rows()
    assert [(r["version"], r["status"], r["description"]) for r in rows] == [
        ("001", "applied", "Applied 001_one.sql"), ("002", "applied", "Applied 002_two.sql"),
        ("003", "applied", "Applied 003_three.sql")]
    assert str(rows[0]["applied_at"]) == "2024-01-02 03:04:05"  # kept as it was
    assert {"checksum", "filename", "execution_ms"} <= set(rows[0])
    assert all(r["checksum"] for r in rows)  # adopted for the earlier rows
    assert "adopted the current checksum for 2 version(s)" in result.err
    assert db.history("client_specific") == [("001", "applied")]
    assert sorted(db.tables("public")) == ["c", "one", "three", "two"]
    # the earlier script's indexes are still there
    assert db.query("SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'idx_lanconnect_migration_versions_%'") \
        == [(2,)]


def test_files_that_insert_their_own_history_rows(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_base.sql", """
        CREATE SCHEMA IF NOT EXISTS langconnect;
        CREATE TABLE IF NOT EXISTS langconnect.base (id int);
        -- a habit of the earlier system: record yourself, and even another track and a future version
        INSERT INTO langconnect.lanconnect_migration_versions (version, description) VALUES ('001', 'base')
            ON CONFLICT (version) DO NOTHING;
        INSERT INTO langconnect.lanconnect_migration_versions (version, description) VALUES ('007', 'x')
            ON CONFLICT (version) DO NOTHING;
        INSERT INTO langconnect.client_migration_versions (version, description) VALUES ('042', 'from lanconnect')
            ON CONFLICT (version) DO NOTHING;
    """)
    project.write("client_specific", "001_c.sql", "CREATE TABLE IF NOT EXISTS langconnect.c (id int);")
    result = project.run("migrate")
    assert result.code == 0, result.err
    rows = {r["version"]: r for r in db.history_rows()}
    assert rows["001"]["status"] == "applied" and rows["001"]["description"] == "Applied 001_base.sql"
    assert rows["001"]["checksum"] is not None
    assert rows["007"]["description"] == "x"
    assert db.history("client_specific") == [("001", "applied"), ("042", "applied")]

    status = project.run("status", "--json")
    assert status.code == 0, status.err
    states = {(m["track"], m["version"]): m["state"] for m in json.loads(status.out)["migrations"]}
    assert states == {("lanconnect", "001"): "applied", ("lanconnect", "007"): "missing",
                      ("client_specific", "001"): "applied", ("client_specific", "042"): "missing"}
    assert "lanconnect version 007: history row (applied, x) matches no file" in status.err
    assert project.run("migrate").code == 0
