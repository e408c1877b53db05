"""Issue 13, case 8: the ledger lets no one in.

Contract (see test_env_resolution.py for the whole of it): the history tables and the attempt log are
created, and upgraded in place, with privileges revoked from PUBLIC and from the platform's API roles
(`anon`, `authenticated`) where they exist, and row-level security enabled with no policy; status warns
when an existing ledger is exposed. Supabase-shaped: the roles exist (NOLOGIN, created idempotently and
never dropped: they are cluster-wide), the app schema is exposed to them and its default privileges
grant them every new table.
"""

from __future__ import annotations

import psycopg2
import pytest
from conftest import Database, Project
from platform_roles import API_ROLES, ensure_api_roles, expose_schema_to_api_roles

LEDGER = ("lanconnect_migration_versions", "client_migration_versions", "migration_attempts")


@pytest.fixture
def supabase_db(db: Database) -> Database:
    connection = db.connect()
    try:
        ensure_api_roles(connection)
    finally:
        connection.close()
    return db


def _denied(db: Database, role: str, statement: str) -> str | None:
    """The SQLSTATE `statement` fails with under `role` (None: it succeeded)."""
    connection = db.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {role}")
            try:
                cursor.execute(statement)
            except psycopg2.Error as error:
                assert error.pgcode != "42501" or "permission denied for table" in str(error) or \
                    "permission denied for relation" in str(error), f"denied for another reason: {error}"
                return error.pgcode
            return None
    finally:
        connection.close()


def _assert_closed(db: Database) -> None:
    for role in API_ROLES:
        for table in LEDGER:
            assert _denied(db, role, f"SELECT * FROM langconnect.{table}") == "42501", \
                f"{role} can read langconnect.{table}"
        assert _denied(db, role, "INSERT INTO langconnect.lanconnect_migration_versions (version, status) "
                                 "VALUES ('999', 'failed')") == "42501", f"{role} can write the ledger"
    rows = db.query(
        """
        SELECT c.relname, c.relrowsecurity,
               (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid),
               coalesce((SELECT array_agg(DISTINCT a.grantee::regrole::text ORDER BY a.grantee::regrole::text)
                           FROM aclexplode(c.relacl) a WHERE a.grantee <> c.relowner), '{}')
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'langconnect' AND c.relname = ANY(%s) ORDER BY 1
        """, (list(LEDGER),))
    assert len(rows) == len(LEDGER)
    for name, rls, policies, grantees in rows:
        assert rls, f"langconnect.{name} has row-level security off"
        assert policies == 0, f"langconnect.{name} has a policy"
        assert not {"-", "anon", "authenticated"} & set(grantees), f"langconnect.{name} is granted to {grantees}"
    assert db.query("SELECT count(*) FROM langconnect.lanconnect_migration_versions")[0][0] >= 1  # owner reads


def _files(project: Project) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE IF NOT EXISTS langconnect.a (id int);")
    project.write("client_specific", "001_c.sql", "CREATE TABLE IF NOT EXISTS langconnect.c (id int);")


def test_new_ledger_is_closed_to_api_roles_despite_default_grants(project: Project, supabase_db: Database) -> None:
    connection = supabase_db.connect()
    try:
        expose_schema_to_api_roles(connection)
    finally:
        connection.close()
    _files(project)
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert _denied(supabase_db, "anon", "SELECT * FROM langconnect.a") is None  # the app's own tables stay exposed
    _assert_closed(supabase_db)


@pytest.mark.parametrize("shape", ["earlier run", "earlier script"])
def test_an_exposed_ledger_is_closed_by_the_next_migrate(project: Project, supabase_db: Database, shape: str) -> None:
    _files(project)
    if shape == "earlier run":
        assert project.run("migrate").code == 0
        tables = LEDGER
    else:  # database/migrate.py's DDL, with the schema's default grants
        connection = supabase_db.connect()
        try:
            expose_schema_to_api_roles(connection)
        finally:
            connection.close()
        for table in LEDGER[:2]:
            supabase_db.execute(
                f"CREATE TABLE langconnect.{table} (version VARCHAR(255) NOT NULL PRIMARY KEY, applied_at TIMESTAMP "
                "WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP, description TEXT, status TEXT NOT NULL DEFAULT "
                "'applied', error_message TEXT)")
        supabase_db.execute("INSERT INTO langconnect.lanconnect_migration_versions (version) VALUES ('001')")
        tables = LEDGER[:2]
    supabase_db.execute("GRANT USAGE ON SCHEMA langconnect TO anon, authenticated")
    for table in tables:
        supabase_db.execute(f"GRANT ALL ON langconnect.{table} TO anon, authenticated, PUBLIC")
        supabase_db.execute(f"ALTER TABLE langconnect.{table} DISABLE ROW LEVEL SECURITY")
    assert _denied(supabase_db, "anon", "SELECT * FROM langconnect.lanconnect_migration_versions") is None
    result = project.run("migrate")
    assert result.code == 0, result.err
    _assert_closed(supabase_db)


def test_status_warns_about_an_exposed_ledger_and_changes_nothing(project: Project, supabase_db: Database) -> None:
    _files(project)
    assert project.run("migrate").code == 0
    supabase_db.execute("GRANT USAGE ON SCHEMA langconnect TO anon")
    supabase_db.execute("GRANT SELECT ON langconnect.lanconnect_migration_versions TO anon")
    result = project.run("status")
    assert result.code == 0, result.err
    warnings = [line for line in result.err.splitlines()
                if "lanconnect_migration_versions" in line and "anon" in line]
    assert warnings, f"status did not warn that the ledger is readable by anon:\n{result.err}"
    # status is read-only: it reports, the next migrate repairs
    assert _denied(supabase_db, "anon", "SELECT * FROM langconnect.lanconnect_migration_versions") is None
