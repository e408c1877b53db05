"""verify against a real server: idempotent files pass, re-run errors and schema drift are caught,
protected schemas are guarded unless a file allows them, and the scratch database always goes away."""

from __future__ import annotations

import json

from conftest import Database, Project


def _scratch_exists(db: Database, name: str) -> bool:
    return bool(db.query("SELECT 1 FROM pg_database WHERE datname = %s", (name,)))


def _verify_json(project: Project, **env: str) -> tuple[int, dict, str]:
    result = project.run("verify", "--json", env=env)
    return result.code, json.loads(result.out), result.err


def test_idempotent_files_pass_and_the_scratch_database_is_dropped(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_base.sql", """
        SET search_path = langconnect, public;
        CREATE TABLE IF NOT EXISTS langconnect.items (id int PRIMARY KEY, name text NOT NULL DEFAULT '');
        CREATE INDEX IF NOT EXISTS items_name_idx ON langconnect.items (name);
        CREATE OR REPLACE FUNCTION langconnect.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
        DROP TRIGGER IF EXISTS items_t ON langconnect.items;
        CREATE OR REPLACE FUNCTION langconnect.t() RETURNS trigger LANGUAGE plpgsql AS
            'BEGIN RETURN NEW; END';
        CREATE TRIGGER items_t BEFORE UPDATE ON langconnect.items FOR EACH ROW EXECUTE FUNCTION langconnect.t();
        ALTER TABLE langconnect.items ENABLE ROW LEVEL SECURITY;
        DROP POLICY IF EXISTS items_all ON langconnect.items;
        CREATE POLICY items_all ON langconnect.items USING (true);
    """)
    project.write("client_specific", "001_extra.sql", """
        ALTER TABLE langconnect.items ADD COLUMN IF NOT EXISTS extra jsonb;
        CREATE INDEX CONCURRENTLY IF NOT EXISTS items_extra_idx ON langconnect.items (id);
    """)
    code, document, err = _verify_json(project)
    assert code == 0, err
    assert document["ok"] is True and document["findings"] == []
    assert [(f["track"], f["version"], f["result"]) for f in document["files"]] == [
        ("lanconnect", "001", "ok"), ("client_specific", "001", "ok")]
    assert all(isinstance(f["first_run_ms"], int) and isinstance(f["second_run_ms"], int)
               for f in document["files"])
    assert document["scratch_database"].startswith("migrate_verify_")
    assert document["scratch_dropped"] is True
    assert not _scratch_exists(db, document["scratch_database"])
    # the environment's own database is never touched
    assert db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'langconnect'") == []


def test_an_error_on_the_second_run_is_caught_with_file_line_and_column(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_ok.sql", "CREATE SCHEMA IF NOT EXISTS langconnect;\n")
    project.write("lanconnect", "002_plain_create.sql", """
        SET search_path = langconnect, public;
        CREATE TABLE langconnect.things (id int);
    """)
    result = project.run("verify")
    assert result.code == 4, result.err
    assert "second-run-error" in result.out
    assert ('migrations/lanconnect/002_plain_create.sql:2:1: ERROR 42P07: relation "things" already exists'
            in result.out)
    assert "verify found 1 problem(s) (second-run-error)" in result.err
    assert "dropped afterwards" in result.out


def test_a_second_run_that_changes_the_schema_is_caught(project: Project) -> None:
    project.write("lanconnect", "001_index.sql", """
        CREATE SCHEMA IF NOT EXISTS langconnect;
        CREATE TABLE IF NOT EXISTS langconnect.things (id int, label text DEFAULT 'a');
        CREATE INDEX ON langconnect.things (id);
        ALTER TABLE langconnect.things ALTER COLUMN label SET DEFAULT 'a';
    """)
    project.write("lanconnect", "002_recreate.sql", """
        CREATE TABLE IF NOT EXISTS langconnect.others (id int, note text);
        ALTER TABLE langconnect.others DROP COLUMN IF EXISTS note;
        ALTER TABLE langconnect.others ADD COLUMN IF NOT EXISTS note text;
    """)
    code, document, _ = _verify_json(project)
    assert code == 4
    assert [(f["kind"], f["files"], f["changes"]) for f in document["findings"]] == [
        ("not-idempotent", ["migrations/lanconnect/001_index.sql"], ["added index langconnect.things_id_idx1"]),
        # a dropped and re-added column moves to the end, and its data is gone
        ("not-idempotent", ["migrations/lanconnect/002_recreate.sql"], ["changed column langconnect.others.note"]),
    ]
    assert [f["result"] for f in document["files"]] == ["not idempotent", "not idempotent"]


def test_files_setting_different_search_paths_are_not_flagged(project: Project) -> None:
    # pg_get_viewdef qualifies names by the session's search_path, which each file sets its own way
    project.write("lanconnect", "001_a.sql", """
        CREATE SCHEMA IF NOT EXISTS langconnect;
        SET search_path = langconnect, public;
        CREATE TABLE IF NOT EXISTS things (id int);
    """)
    project.write("lanconnect", "002_b.sql", """
        SET search_path = public;
        CREATE TABLE IF NOT EXISTS public.roots (id int PRIMARY KEY);
        CREATE INDEX IF NOT EXISTS things_id_idx ON langconnect.things (id);
        CREATE OR REPLACE VIEW langconnect.v AS SELECT t.id FROM langconnect.things t JOIN roots r ON r.id = t.id;
    """)
    code, document, err = _verify_json(project)
    assert code == 0, (document["findings"], err)


def test_a_file_touching_a_protected_schema_is_caught_unless_it_allows_it(project: Project) -> None:
    project.write("lanconnect", "001_storage.sql", """
        CREATE SCHEMA IF NOT EXISTS storage;
        CREATE TABLE IF NOT EXISTS storage.buckets (id text PRIMARY KEY);
    """)
    project.write("lanconnect", "002_allowed.sql", """
        -- migrate:allow-schema storage, auth
        CREATE SCHEMA IF NOT EXISTS auth;
        CREATE TABLE IF NOT EXISTS storage.objects (id text PRIMARY KEY);
    """)
    project.write("lanconnect", "003_other.sql", """
        -- migrate:allow-schema storage
        CREATE SCHEMA IF NOT EXISTS realtime;
    """)
    code, document, _ = _verify_json(project)
    assert code == 4
    first, third = document["findings"]
    assert (first["kind"], first["version"]) == ("protected-schema", "001")
    # PostgreSQL 18 also lists the NOT NULL constraint; both list these
    assert {"added schema storage", "added table storage.buckets", "added column storage.buckets.id",
            "added index storage.buckets_pkey"} <= set(first["changes"])
    assert "-- migrate:allow-schema storage" in first["message"]
    assert (third["kind"], third["version"], third["changes"]) == ("protected-schema", "003",
                                                                   ["added schema realtime"])
    assert [f["result"] for f in document["files"]] == ["protected schema changed", "ok",
                                                        "protected schema changed"]


def test_protected_schemas_are_configurable_per_environment(project: Project) -> None:
    project.write("lanconnect", "001_storage.sql", "CREATE SCHEMA IF NOT EXISTS storage;\n")
    project.write("lanconnect", "002_billing.sql", "CREATE SCHEMA IF NOT EXISTS billing;\n")
    code, document, _ = _verify_json(project, MIGRATE_PROTECTED_SCHEMAS="billing, vault")
    assert code == 4
    assert [(f["version"], f["changes"]) for f in document["findings"]] == [("002", ["added schema billing"])]


def test_a_first_run_failure_is_a_finding_and_the_scratch_database_is_still_dropped(
        project: Project, db: Database) -> None:
    project.write("lanconnect", "001_ok.sql", "CREATE SCHEMA IF NOT EXISTS langconnect;\n")
    project.write("lanconnect", "002_boom.sql", "SELECT 1/0;\n")
    project.write("lanconnect", "003_never.sql", "CREATE TABLE IF NOT EXISTS langconnect.never (id int);\n")
    code, document, _ = _verify_json(project)
    assert code == 4
    [finding] = document["findings"]
    assert finding["kind"] == "first-run-error"
    assert finding["message"].startswith("migrations/lanconnect/002_boom.sql:1:1: ERROR 22012: division by zero")
    assert [f["result"] for f in document["files"]] == ["ok", "error on first run"]
    assert not _scratch_exists(db, document["scratch_database"])


def test_verify_through_inv_reports_a_table(project: Project) -> None:
    project.write("lanconnect", "001_ok.sql", "CREATE SCHEMA IF NOT EXISTS langconnect;\n")
    result = project.inv("verify")
    assert result.code == 0, result.err
    assert "1 file(s) applied twice: no findings." in result.out


def test_a_user_who_may_not_create_databases_gets_a_clear_error(project: Project, db: Database) -> None:
    role = f"mt_nocreatedb_{db.name[-8:]}"
    db.execute(f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
    try:
        url = db.url.replace("postgres@", f"{role}@", 1)
        project.write("lanconnect", "001_ok.sql", "CREATE SCHEMA IF NOT EXISTS langconnect;\n")
        project.env_file("nocreatedb", f"DATABASE_URL={url}\n")
        result = project.run("verify", "--env", "nocreatedb")
        assert result.code == 2, result.err
        assert "verify could not create a scratch database on " in result.err
        assert ("(permission denied to create database); give the user CREATEDB, or run verify against a server "
                "where it may (e.g. --env local)") in result.err
    finally:
        db.execute(f'DROP ROLE "{role}"')


def test_a_bad_protected_schema_list_is_a_configuration_error(project: Project) -> None:
    (project.root / "envs" / "local.env").write_text(f"DATABASE_URL={project.url}\nMIGRATE_PROTECTED_SCHEMAS=auth;x\n")
    result = project.run("verify")
    assert result.code == 2
    assert result.err.strip() == ("migrate: error: envs/local.env: MIGRATE_PROTECTED_SCHEMAS holds 'auth;x', which "
                                  "is not a schema name; list names separated by commas, e.g. auth,storage")
