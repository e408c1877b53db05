"""verify against a real server: idempotent files pass, re-run errors and schema or data changes are
caught, protected schemas are guarded unless a file allows them, cluster-wide statements never run on
a shared server, and the shadow database always goes away.

These projects verify on their environment's own server, marked disposable (`project` below);
test_verify_supabase.py has the shadow that looks like the platform, and the servers it may live on."""

from __future__ import annotations

import json
import uuid

import pytest
from conftest import Database, Project, Server


@pytest.fixture
def project(project: Project) -> Project:
    """conftest's project, its local environment marked disposable: verify's shadow may live on its server."""
    env = project.root / "envs" / "local.env"
    env.write_text(env.read_text() + "MIGRATE_DISPOSABLE=true\n")
    return project


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
    assert "fails-on-rerun" in result.out
    assert ('migrations/lanconnect/002_plain_create.sql:2:1: ERROR 42P07: relation "things" already exists; running '
            "it again fails" in result.out)
    assert "verify found 1 problem(s) (fails-on-rerun)" in result.err
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
        ("not-idempotent-schema", ["migrations/lanconnect/001_index.sql"], ["added index langconnect.things_id_idx1"]),
        # a dropped and re-added column moves to the end, and its data is gone
        ("not-idempotent-schema", ["migrations/lanconnect/002_recreate.sql"],
         ["changed column langconnect.others.note"]),
    ]
    assert [f["result"] for f in document["files"]] == ["not-idempotent-schema", "not-idempotent-schema"]


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
    assert [f["result"] for f in document["files"]] == ["protected-schema", "ok", "protected-schema"]


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
    assert finding["kind"] == "fails-on-first-run"
    assert finding["message"].startswith("migrations/lanconnect/002_boom.sql:1:1: ERROR 22012: division by zero; it "
                                         "fails on the shadow database, so later versions were not verified")
    assert "fix the file" not in finding["message"]
    assert [f["result"] for f in document["files"]] == ["ok", "fails-on-first-run", "not run"]
    assert not _scratch_exists(db, document["scratch_database"])


def test_verify_through_inv_reports_a_table(project: Project) -> None:
    project.write("lanconnect", "001_ok.sql", "CREATE SCHEMA IF NOT EXISTS langconnect;\n")
    result = project.inv("verify")
    assert result.code == 0, result.err
    assert "verify: 1 file(s) run, re-run and run again as a set: no errors." in result.out


def test_a_user_who_may_not_create_databases_gets_a_clear_error(project: Project, db: Database) -> None:
    role = f"mt_nocreatedb_{db.name[-8:]}"
    db.execute(f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
    try:
        url = db.url.replace("postgres@", f"{role}@", 1)
        project.write("lanconnect", "001_ok.sql", "CREATE SCHEMA IF NOT EXISTS langconnect;\n")
        project.env_file("nocreatedb", f"DATABASE_URL={url}\nMIGRATE_DISPOSABLE=true\n")
        result = project.run("verify", "--env", "nocreatedb")
        assert result.code == 2, result.err
        assert "verify could not create a shadow database on " in result.err
        assert ("(permission denied to create database); give the user CREATEDB there, or name a server where it "
                "may with MIGRATE_SHADOW_URL") in result.err
    finally:
        db.execute(f'DROP ROLE "{role}"')


def test_a_bad_protected_schema_list_is_a_configuration_error(project: Project) -> None:
    (project.root / "envs" / "local.env").write_text(f"DATABASE_URL={project.url}\nMIGRATE_PROTECTED_SCHEMAS=auth;x\n")
    result = project.run("verify")
    assert result.code == 2
    assert result.err.strip() == ("migrate: error: envs/local.env: MIGRATE_PROTECTED_SCHEMAS holds 'auth;x', which "
                                  "is not a schema name; list names separated by commas, e.g. auth,storage")


def _errors(document: dict) -> list[tuple[str, str]]:
    return sorted((file, f["kind"]) for f in document["findings"] if f["severity"] == "error" for file in f["files"])


def test_session_state_of_one_run_never_reaches_another(project: Project) -> None:
    """Each run starts in a fresh session: a search_path, temp table or prepared statement of an earlier
    run (the file's own first run, or another file) cannot make a table "move" or "already exist"."""
    project.write("lanconnect", "001_staging.sql", """
        CREATE SCHEMA IF NOT EXISTS langconnect;
        SET search_path = langconnect;
        CREATE TABLE IF NOT EXISTS langconnect.things (id int PRIMARY KEY);
        CREATE TEMP TABLE staging (id int);
        INSERT INTO staging VALUES (1), (2);
        INSERT INTO langconnect.things SELECT id FROM staging ON CONFLICT DO NOTHING;
        PREPARE lookup AS SELECT 1;
    """)
    project.write("lanconnect", "002_widgets.sql", """
        -- no search_path of its own: the default one, as psql -f gave every file
        CREATE TABLE IF NOT EXISTS widgets (id int);
        CREATE TEMP TABLE staging (id int);
        PREPARE lookup AS SELECT 1;
    """)
    project.write("lanconnect", "003_no_transaction.sql", """
        -- migrate:no-transaction
        CREATE TEMP TABLE staging (id int);
        CREATE INDEX CONCURRENTLY IF NOT EXISTS widgets_id_idx ON widgets (id);
    """)
    code, document, err = _verify_json(project)
    assert code == 0, (err, document["findings"])
    assert document["findings"] == []
    assert [f["result"] for f in document["files"]] == ["ok", "ok", "ok"]


def test_data_changes_of_a_rerun_are_caught_and_date_times_alone_only_warn(project: Project) -> None:
    project.write("lanconnect", "001_settings.sql", """
        CREATE SCHEMA IF NOT EXISTS langconnect;
        CREATE TABLE IF NOT EXISTS langconnect.settings (
            key text PRIMARY KEY, value text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
        CREATE OR REPLACE FUNCTION langconnect.touch() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;
        DROP TRIGGER IF EXISTS settings_touch ON langconnect.settings;
        CREATE TRIGGER settings_touch BEFORE UPDATE ON langconnect.settings
            FOR EACH ROW EXECUTE FUNCTION langconnect.touch();
        INSERT INTO langconnect.settings (key, value) VALUES ('theme', 'light'), ('greeting', 'hello')
        ON CONFLICT (key) DO NOTHING;
        CREATE TABLE IF NOT EXISTS langconnect.events (id serial PRIMARY KEY, name text NOT NULL);
    """)
    project.write("lanconnect", "002_dark.sql", "UPDATE langconnect.settings SET value = 'dark' WHERE key = 'theme';\n")
    project.write("lanconnect", "003_shout.sql", """
        UPDATE langconnect.settings SET value = value || '!' WHERE key = 'greeting';
    """)
    project.write("lanconnect", "004_event.sql", "INSERT INTO langconnect.events (name) VALUES ('installed');\n")
    code, document, err = _verify_json(project)
    assert code == 4, err
    findings = [(f["severity"], f["kind"], f["files"][0].rsplit("/", 1)[1], f["changes"]) for f in document["findings"]]
    assert findings == [
        ("warning", "not-idempotent-data", "002_dark.sql",
         ["rows of langconnect.settings: only date/time values changed (2 rows)"]),
        ("error", "not-idempotent-data", "003_shout.sql",
         ["rows of langconnect.settings: row contents changed (2 rows)"]),
        ("error", "not-idempotent-data", "004_event.sql", ["rows of langconnect.events: 1 row -> 2 rows"]),
    ]
    assert [f["result"] for f in document["files"]] == ["ok", "ok", "not-idempotent-data", "not-idempotent-data"]


def test_psql_files_are_run_again_too(project: Project) -> None:
    project.write("lanconnect", "001_log.sql", """
        CREATE SCHEMA IF NOT EXISTS langconnect;
        CREATE TABLE IF NOT EXISTS langconnect.log (n int NOT NULL);
    """)
    project.write("lanconnect", "002_psql.sql", "\\set n 7\nINSERT INTO langconnect.log (n) VALUES (:n);\n")
    code, document, err = _verify_json(project)
    assert code == 4, err
    [finding] = document["findings"]
    assert (finding["kind"], finding["files"], finding["changes"]) == (
        "not-idempotent-data", ["migrations/lanconnect/002_psql.sql"], ["rows of langconnect.log: 1 row -> 2 rows"])
    assert isinstance(document["files"][1]["second_run_ms"], int)


def test_a_later_file_redefining_a_function_is_information_not_an_error(project: Project) -> None:
    project.write("lanconnect", "001_f.sql", """
        CREATE SCHEMA IF NOT EXISTS langconnect;
        CREATE OR REPLACE FUNCTION langconnect.price(n int) RETURNS int LANGUAGE sql AS $$ SELECT n * 10 $$;
        CREATE OR REPLACE VIEW langconnect.prices AS SELECT langconnect.price(1) AS one;
    """)
    project.write("lanconnect", "002_f.sql", """
        CREATE OR REPLACE FUNCTION langconnect.price(n int) RETURNS int LANGUAGE sql AS $$ SELECT n * 12 $$;
        CREATE OR REPLACE VIEW langconnect.prices AS SELECT langconnect.price(1) + langconnect.price(2) AS one;
    """)
    code, document, err = _verify_json(project)
    assert code == 0, (err, document["findings"])
    [note] = document["findings"]
    assert (note["kind"], note["severity"], note["files"]) == ("redefined-later", "info",
                                                               ["migrations/lanconnect/001_f.sql"])
    assert note["message"].startswith("a later file (migrations/lanconnect/002_f.sql) redefines function "
                                      "langconnect.price(n integer), view langconnect.prices: expected")
    result = project.run("verify")
    assert result.code == 0, result.err
    assert "verify: 2 file(s) run, re-run and run again as a set: no errors." in result.out
    assert "info        redefined-later  migrations/lanconnect/001_f.sql" in result.out


def test_running_the_whole_set_again_catches_what_single_reruns_cannot(project: Project) -> None:
    project.write("lanconnect", "001_old.sql", """
        CREATE SCHEMA IF NOT EXISTS langconnect;
        CREATE TABLE IF NOT EXISTS langconnect.old_name (id int);
    """)
    project.write("lanconnect", "002_rename.sql", "ALTER TABLE IF EXISTS langconnect.old_name RENAME TO new_name;\n")
    code, document, err = _verify_json(project)
    assert code == 4, err
    assert _errors(document) == [("migrations/lanconnect/001_old.sql", "not-idempotent-schema"),
                                 ("migrations/lanconnect/002_rename.sql", "fails-on-rerun")]
    found = {f["files"][0].rsplit("/", 1)[1]: f for f in document["findings"]}
    assert found["002_rename.sql"]["message"].startswith(
        'migrations/lanconnect/002_rename.sql:1:1: ERROR 42P07: relation "new_name" already exists; it fails when '
        "the whole set runs again (each file once more, in order), though not right after its own first run")
    assert "added table langconnect.old_name" in found["001_old.sql"]["changes"]
    assert found["001_old.sql"]["message"].startswith("running the whole set again (each file once more, in order) "
                                                      "leaves the schema changed, this file last")


def _role_exists(db: Database, role: str) -> bool:
    return bool(db.query("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)))


def test_a_file_creating_a_role_is_reported_and_not_run_on_a_shared_shadow_server(
        project: Project, db: Database, server: Server) -> None:
    role = f"report_reader_{uuid.uuid4().hex[:8]}"
    project.write("lanconnect", "001_schema.sql", "CREATE SCHEMA IF NOT EXISTS langconnect;\n")
    project.write("lanconnect", "002_reader.sql", f"""
        CREATE ROLE {role} LOGIN PASSWORD 'hunter2-secret';
        ALTER ROLE {role} SET statement_timeout = '5s';
    """)
    project.write("lanconnect", "003_reports.sql", "CREATE TABLE IF NOT EXISTS langconnect.reports (id int);\n")
    (project.root / "envs" / "staging.env").write_text(
        f"DATABASE_URL={project.url}\nMAX_WAIT_TIME=5\nMIGRATE_SHADOW_URL={server.url('postgres')}\n")
    result = project.run("verify", "--env", "staging", "--json")
    assert result.code == 4, result.err
    document = json.loads(result.out)
    [finding] = [f for f in document["findings"] if f["severity"] == "error"]
    assert (finding["kind"], finding["files"]) == ("cluster-level", ["migrations/lanconnect/002_reader.sql"])
    assert finding["message"].startswith(f"CREATE ROLE {role} (line 1), ALTER ROLE {role} SET (line 2): cluster-wide")
    assert "the shadow server is shared (MIGRATE_SHADOW_URL from envs/staging.env, shared" in finding["message"]
    assert "so this version was not run" in finding["message"]
    assert [f["result"] for f in document["files"]] == ["ok", "cluster-level", "ok"]
    assert not _role_exists(db, role)  # never created, not even for a moment
    assert "hunter2-secret" not in result.out + result.err


def test_on_a_disposable_server_a_role_file_runs_and_its_role_is_dropped_afterwards(
        project: Project, db: Database) -> None:
    role = f"report_reader_{uuid.uuid4().hex[:8]}"
    needed = f"app_reader_{uuid.uuid4().hex[:8]}"  # named by a GRANT, created by no file: the shadow creates it
    project.write("lanconnect", "001_reader.sql", f"""
        CREATE SCHEMA IF NOT EXISTS langconnect;
        CREATE TABLE IF NOT EXISTS langconnect.reports (id int);
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE {role} NOLOGIN;
          END IF;
        END $$;
        GRANT SELECT ON langconnect.reports TO {role}, {needed};
    """)
    code, document, err = _verify_json(project)
    assert code == 0, (err, document["findings"])
    [note] = document["findings"]
    assert (note["kind"], note["severity"]) == ("cluster-level", "info")
    assert note["message"].startswith(f"CREATE ROLE {role} in a DO block (line 3): cluster-wide, run on the "
                                      "disposable shadow server")
    assert document["shadow"]["roles_created"] == [needed]
    assert sorted(document["shadow"]["roles_dropped"]) == sorted([role, needed])
    assert not _role_exists(db, role) and not _role_exists(db, needed)


def test_a_role_the_files_need_on_a_shared_shadow_server_is_named(project: Project, server: Server) -> None:
    needed = f"app_reader_{uuid.uuid4().hex[:8]}"
    project.write("lanconnect", "001_grant.sql", f"""
        CREATE SCHEMA IF NOT EXISTS langconnect;
        CREATE TABLE IF NOT EXISTS langconnect.reports (id int);
        GRANT SELECT ON langconnect.reports TO {needed};
    """)
    code, document, err = _verify_json(project, MIGRATE_DISPOSABLE="false", MIGRATE_SHADOW_URL=server.url("postgres"))
    assert code == 4, err
    kinds = [(f["severity"], f["kind"]) for f in document["findings"]]
    assert kinds == [("warning", "missing-role"), ("error", "fails-on-first-run")]
    assert document["findings"][0]["message"].startswith(
        f"role {needed} does not exist on the shadow server, which is shared, so it was not created")
    assert f'role "{needed}" does not exist' in document["findings"][1]["message"]
