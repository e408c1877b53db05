"""The closed ledger and the roles that do not own it.

Row-level security with no policy hides every row from a role that neither owns the ledger nor has
BYPASSRLS. Such a role must be refused, not shown every migration as pending (and then re-apply
them); a migrating role that does not own an open ledger warns instead of failing; the owner's next
migrate closes it. Roles are cluster-wide: each test makes its own and drops it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import Database, Project
from platform_roles import ensure_api_roles


@pytest.fixture
def runner(db: Database) -> Iterator[str]:
    role = f"mt_runner_{db.name[-8:]}"
    db.execute(f'CREATE ROLE "{role}" LOGIN')
    connection = db.connect()
    try:
        ensure_api_roles(connection)
    finally:
        connection.close()
    try:
        yield role
    finally:
        db.execute(f'DROP OWNED BY "{role}"')
        db.execute(f'DROP ROLE "{role}"')


def _as(project: Project, db: Database, role: str) -> None:
    project.env_file("runner", f"DATABASE_URL={db.url.replace('postgres@', f'{role}@', 1)}\nMAX_WAIT_TIME=5\n")


def test_a_role_that_cannot_see_the_ledgers_rows_is_refused_not_shown_everything_pending(
        project: Project, db: Database, runner: str) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    assert project.run("migrate").code == 0  # the owner (postgres) creates a closed ledger
    db.execute(f'GRANT USAGE ON SCHEMA langconnect TO "{runner}"; '
               f'GRANT SELECT ON ALL TABLES IN SCHEMA langconnect TO "{runner}"')
    _as(project, db, runner)
    for command in ("status", "migrate"):
        result = project.run(command, "--env", "runner")
        assert result.code == 2, result.out + result.err
        assert result.err.strip().splitlines()[-1] == (
            "migrate: error: langconnect.lanconnect_migration_versions has row-level security and no policy, so its "
            f"rows are hidden from user '{runner}', which does not own it: run as the role that owns the ledger (the "
            f"one that migrates), give '{runner}' BYPASSRLS, or add a policy for it")
    assert db.history() == [("001", "applied")]
    for table in ("lanconnect_migration_versions", "client_migration_versions", "migration_attempts"):
        db.execute(f'CREATE POLICY ledger_reader ON langconnect.{table} FOR SELECT TO "{runner}" USING (true)')
    status = project.run("status", "--env", "runner", "--json")
    assert status.code == 0, status.err
    assert [m["state"] for m in json.loads(status.out)["migrations"]] == ["applied"]


def test_an_open_ledger_the_runner_does_not_own_is_reported_and_the_owner_closes_it(
        project: Project, db: Database, runner: str) -> None:
    # the earlier script's tables, owned by postgres, open to anon; a second role migrates with grants
    for table in ("lanconnect_migration_versions", "client_migration_versions"):
        db.execute(f"CREATE SCHEMA IF NOT EXISTS langconnect; CREATE TABLE langconnect.{table} (version VARCHAR(255) "
                   "NOT NULL PRIMARY KEY, applied_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP, "
                   "description TEXT, status TEXT NOT NULL DEFAULT 'applied', error_message TEXT)")
        db.execute(f"GRANT SELECT ON langconnect.{table} TO anon")
        for column, kind in (("checksum", "TEXT"), ("filename", "TEXT"), ("execution_ms", "INTEGER"),
                             ("applied_by", "TEXT"), ("tool_version", "TEXT")):
            db.execute(f"ALTER TABLE langconnect.{table} ADD COLUMN {column} {kind}")
    db.execute(f'GRANT CREATE ON DATABASE "{db.name}" TO "{runner}"; GRANT ALL ON SCHEMA langconnect TO "{runner}"; '
               f'GRANT ALL ON ALL TABLES IN SCHEMA langconnect TO "{runner}"')
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS langconnect.a (id int);")
    _as(project, db, runner)
    result = project.run("migrate", "--env", "runner")
    assert result.code == 0, result.err
    assert ("migrate: warning: langconnect.lanconnect_migration_versions (the migration ledger) is reachable by anon "
            "and row-level security is off: "
            "a platform API key could read or write it; its owner must revoke them (REVOKE ALL ON "
            "langconnect.lanconnect_migration_versions FROM anon) and enable row-level security") in result.err
    assert db.history() == [("001", "applied")]
    owner = project.run("migrate")
    assert owner.code == 0, owner.err
    assert ("migrate: closed langconnect.lanconnect_migration_versions (it was reachable by anon; privileges revoked "
            "from PUBLIC, anon, authenticated, row-level security enabled)") in owner.err
    assert db.query("SELECT relrowsecurity FROM pg_class WHERE oid = 'langconnect.lanconnect_migration_versions'"
                    "::regclass") == [(True,)]
    assert db.query("SELECT has_table_privilege('anon', 'langconnect.lanconnect_migration_versions', 'SELECT')") \
        == [(False,)]
    again = project.run("migrate")
    assert again.code == 0 and "closed" not in again.err  # closed once; a routine run changes nothing


def test_status_json_lists_the_exposure_among_its_warnings(project: Project, db: Database, runner: str) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS public.a (id int);")
    assert project.run("migrate").code == 0
    db.execute("GRANT INSERT ON langconnect.migration_attempts TO PUBLIC")
    status = project.run("status", "--json")
    assert status.code == 0, status.err
    assert json.loads(status.out)["warnings"] == [
        "langconnect.migration_attempts (the migration ledger) is reachable by PUBLIC, anon, authenticated: a "
        "platform API key could read or write it; the next migrate revokes them and enables row-level security"]
