"""Lint and migrate on a Supabase-shaped project: the platform's documented patterns pass, runs stay quiet.

The platform (roles, auth/storage/realtime schemas, auth.uid(), storage.buckets/objects) and the app's
two-track set are in supabase_shape.py. lint reads files only; migrate runs against both real servers
with the platform installed first, as `supabase start` would have it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, Database, Project
from supabase_shape import APP_MIGRATIONS, install_platform, write_app_migrations


def lint_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "lint" in line]


def test_lint_of_the_supabase_shaped_set_is_clean(files_project: Project) -> None:
    files = write_app_migrations(files_project)
    result = files_project.run("lint", "migrations")
    assert (result.code, result.out, result.err) == (0, f"Lint: {len(files)} file(s) clean.\n", "")
    document = json.loads(files_project.run("lint", "--json").out)
    assert (document["files"], document["findings"]) == (files, [])


def test_migrate_applies_the_supabase_shaped_set_under_strict_lint_without_a_lint_line(
        project: Project, db: Database) -> None:
    install_platform(db)
    files = write_app_migrations(project)
    result = project.run("migrate", env={"MIGRATE_LINT": "strict"})
    assert result.code == 0, result.err
    assert lint_lines(result.err) == []
    assert result.out.splitlines()[-1] == f"Applied {len(files)} migration(s)."
    # the patterns did what the platform documents: a new user gets a profile, the buckets and policies exist
    db.execute("INSERT INTO auth.users (id, email) VALUES (gen_random_uuid(), 'ada@example.com')")
    assert db.query("SELECT display_name FROM langconnect.profiles") == [("ada@example.com",)]
    assert db.query("SELECT id FROM storage.buckets ORDER BY id") == [("avatars",), ("note-attachments",)]
    assert db.query("SELECT tablename, count(*) FROM pg_policies WHERE schemaname IN ('storage', 'realtime') "
                    "GROUP BY 1 ORDER BY 1") == [("buckets", 1), ("messages", 1), ("objects", 4)]
    # and lint was right to call them idempotent: every file runs again without an error
    for (track, name), _ in APP_MIGRATIONS.items():
        db.execute((project.root / "migrations" / track / name).read_text())
    assert db.query("SELECT count(*) FROM langconnect.profiles") == [(1,)]


def test_without_the_allowlist_a_run_prints_one_line_per_file(project: Project, db: Database) -> None:
    """With MIGRATE_LINT_ALLOW=none the set has 18 findings in 4 files: 4 lines, one per file."""
    write_app_migrations(project)
    result = project.run("dry-run", env={"MIGRATE_LINT_ALLOW": "none"})
    assert result.code == 0, result.err

    def line(path: str, counts: str) -> str:
        return f"migrate: lint: {path}: {counts} (schema-protected; inv lint {path} for details)"

    assert lint_lines(result.err) == [
        line("migrations/lanconnect/002_new_user_trigger.sql", "2 errors"),
        line("migrations/lanconnect/003_avatars_bucket.sql", "6 errors, 1 warning"),
        line("migrations/lanconnect/004_rooms.sql", "2 errors"),
        line("migrations/client_specific/002_note_attachments.sql", "4 errors, 1 warning"),
    ]
    document = json.loads(project.run("dry-run", "--json", env={"MIGRATE_LINT_ALLOW": "none"}).out)
    assert (document["lint"]["errors"], document["lint"]["warnings"]) == (14, 2)
    assert {finding["rule"] for finding in document["lint"]["findings"]} == {"schema-protected",
                                                                             "schema-protected-rows"}


def test_changing_the_platform_in_the_set_is_still_one_line_and_refused_when_strict(
        project: Project, db: Database) -> None:
    install_platform(db)
    write_app_migrations(project)
    project.write("client_specific", "003_platform_change.sql", """
        SET search_path = langconnect, public;
        ALTER TABLE storage.objects ADD COLUMN IF NOT EXISTS tag text;
        GRANT ALL ON storage.buckets TO anon;
        CREATE OR REPLACE FUNCTION storage.tagged(name text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
        """)
    path = "migrations/client_specific/003_platform_change.sql"
    result = project.run("migrate", env={"MIGRATE_LINT": "strict"})
    assert result.code == 4
    assert lint_lines(result.err) == [
        f"migrate: lint: {path}: 2 errors, 1 warning (schema-protected; inv lint {path} for details)",
        "migrate: error: MIGRATE_LINT=strict: 2 lint error(s) in pending migration files, nothing was applied; fix "
        "them (see `inv lint`) or silence an intended one with -- migrate:lint-ignore RULE"]
    assert db.query("SELECT count(*) FROM pg_namespace WHERE nspname = 'langconnect'") == [(0,)]
    details = project.run("lint", path)
    assert details.out.splitlines() == [
        f"{path}:2:13 schema-protected error: ALTER TABLE storage.objects changes the protected schema storage "
        "(keep to the app schema langconnect, or add `-- migrate:allow-schema storage` to this file if the change "
        "is intended)",
        f"{path}:3:1 schema-protected error: GRANT ON storage.buckets changes the protected schema storage "
        "(keep to the app schema langconnect, or add `-- migrate:allow-schema storage` to this file if the change "
        "is intended)",
        f"{path}:4:1 schema-protected-function warning: CREATE FUNCTION storage.tagged creates a function in the "
        "protected schema storage (create it in the app schema langconnect (policies can call "
        "langconnect.tagged()), or add `-- migrate:allow-schema storage` to this file)",
        "Lint: 2 error(s), 1 warning(s) in 1 file(s).",
    ]


# --- what the embedded server cannot run (README) ---------------------------------------------

def test_the_embedded_server_lacks_what_readme_says_and_the_examples_need_none_of_it(tmp_path: Path) -> None:
    """README: the embedded server has no pgcrypto, no uuid-ossp and no platform schemas. The shipped
    examples and the `new` template create no extension it lacks (tests/test_migrate.py applies the
    examples, and tests/test_new.py the template's example, on both servers)."""
    from conftest import _embedded_server
    from pglast import parse_sql

    from migrate.files.authoring import new_migration

    connection = _embedded_server().connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM pg_available_extensions")
            available = {row[0] for row in cursor.fetchall()}
            cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname IN ('auth', 'storage', 'realtime')")
            assert cursor.fetchall() == []
    finally:
        connection.close()
    assert {"pgcrypto", "uuid-ossp"} & available == set()
    assert "vector" in available
    lines = new_migration(tmp_path / "migrations", tmp_path, "langconnect", "anything").path.read_text().splitlines()
    start = lines.index(next(line for line in lines if line.startswith("-- CREATE TABLE")))  # its example, on
    texts = [path.read_text() for path in sorted((REPO / "migrations").glob("*/*.sql"))]
    texts.append("\n".join(lines[:start] + [line[3:] for line in lines[start:]]))
    assert len(texts) == 5 and "CREATE TABLE IF NOT EXISTS langconnect.example" in texts[-1]
    needed = {statement.stmt.extname for text in texts for statement in parse_sql(text)
              if type(statement.stmt).__name__ == "CreateExtensionStmt"}
    assert needed - available == set()


def test_readme_says_how_to_point_local_at_supabase_start(files_project: Project) -> None:
    readme = (REPO / "README.md").read_text()
    url = "postgresql://postgres:postgres@127.0.0.1:54322/postgres"
    assert f"DATABASE_URL={url}" in readme and "envs/local.local.env" in readme
    assert "no `pgcrypto` and no `uuid-ossp`" in readme
    # and what it says holds: that line in local.local.env wins over the embedded server
    (files_project.root / "envs" / "local.env").write_text((REPO / "envs" / "local.env").read_text())
    (files_project.root / "envs" / "local.local.env").write_text(f"DATABASE_URL={url}\n")
    target = files_project.settings().target
    assert not target.uses_embedded
    assert (target.connection["host"], target.connection["port"], target.connection["dbname"]) == (
        "127.0.0.1", "54322", "postgres")


@pytest.mark.parametrize("name", ["001_profiles.sql", "004_rooms.sql"])
def test_the_set_would_fail_on_a_server_without_the_platform(project: Project, db: Database, name: str) -> None:
    """Why local must point at `supabase start` for such a project: without the platform the first file fails."""
    project.write("lanconnect", name, APP_MIGRATIONS[("lanconnect", name)])
    result = project.run("migrate")
    assert result.code == 1
    assert 'schema "auth" does not exist' in result.err or 'role "authenticated" does not exist' in result.err
