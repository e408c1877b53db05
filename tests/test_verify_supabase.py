"""verify on a Supabase-shaped project (issue 14): the shadow looks like the target's platform, the
realistic app passes, its broken copy is reported file by file and kind by kind, a server that is
neither disposable nor named as a shadow server is refused, and the platform can come from a setup
file when the target cannot be read.

The target of each test is its own database with the platform installed (supabase_fixture); the
app is tests/supabase_app (its broken copy: tests/supabase_app_broken)."""

from __future__ import annotations

import json
from typing import Any

from conftest import Database, Project, Server, _embedded_server
from supabase_fixture import PLATFORM_SQL, VECTOR_FILE, copy_app, ensure_roles, has_extension

APP_FILES = ["lanconnect/001_schema_and_types.sql", "lanconnect/002_profiles.sql",
             "lanconnect/003_new_user_trigger.sql", "lanconnect/004_storage.sql", "lanconnect/005_documents.sql",
             VECTOR_FILE,
             "client_specific/001_client_settings.sql", "client_specific/002_branding.sql"]



def _has_vector(server: Server) -> bool:
    connection = server.connect()
    try:
        return has_extension(connection, "vector")
    finally:
        connection.close()


def _app(project: Project, server: Server, broken: bool = False) -> list[str]:
    """The app in the project's migrations (the vector file only where the shadow's server has pgvector); its
    files in the order migrate applies them."""
    copied = copy_app(project.root / "migrations", broken=broken, vector=_has_vector(server))
    return [f"migrations/{name}" for name in APP_FILES if name in copied]


def _disposable(project: Project, **more: str) -> None:
    extra = "".join(f"{key}={value}\n" for key, value in more.items())
    (project.root / "envs" / "local.env").write_text(
        f"DATABASE_URL={project.url}\nMAX_WAIT_TIME=5\nMIGRATE_DISPOSABLE=true\n{extra}")


def _verify(project: Project, **env: str) -> tuple[int, dict[str, Any], str]:
    result = project.run("verify", "--json", env=env)
    return result.code, json.loads(result.out), result.err


def _errors(document: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((file, f["kind"]) for f in document["findings"] if f["severity"] == "error" for file in f["files"])


def test_the_idempotent_app_passes_on_a_shadow_that_looks_like_the_platform(
        project: Project, db: Database, server: Server, platform: list[str]) -> None:
    files = _app(project, server)
    _disposable(project)
    code, document, err = _verify(project)
    assert code == 0, (err, [f for f in document["findings"] if f["severity"] != "info"])
    assert document["ok"] is True and document["errors"] == 0 and document["warnings"] == 0
    assert [(f["file"], f["result"]) for f in document["files"]] == [(name, "ok") for name in files]
    assert all(isinstance(f[key], int) for f in document["files"]
               for key in ("first_run_ms", "second_run_ms", "final_run_ms"))
    shadow = document["shadow"]
    assert shadow["disposable"] is True and shadow["dropped"] is True
    assert shadow["why"] == "the environment's own server, marked MIGRATE_DISPOSABLE=true"
    assert shadow["platform"].startswith("pg_dump of ")
    assert shadow["platform"].endswith(" without schema(s) langconnect")
    assert shadow["schemas"] == ["auth", "extensions", "realtime", "storage"]
    assert shadow["extensions"] == platform  # pgcrypto where the server has it
    # 005 replaces 003's function: information, never an error against 003
    [note] = [f for f in document["findings"] if f["kind"] == "redefined-later"]
    assert (note["severity"], note["files"]) == ("info", ["migrations/lanconnect/003_new_user_trigger.sql"])
    assert note["message"].startswith("a later file (migrations/lanconnect/005_documents.sql) redefines function "
                                      "langconnect.handle_new_user()")
    assert "redefined-later" not in [f["result"] for f in document["files"]]
    # the target itself is untouched, and the shadow is gone
    assert db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'langconnect'") == []
    assert db.query("SELECT count(*) FROM storage.buckets") == [(0,)]
    assert db.query("SELECT 1 FROM pg_database WHERE datname = %s", (shadow["database"],)) == []


def test_after_migrate_the_app_still_passes_its_attachments_left_out_of_the_platform_copy(
        project: Project, db: Database, server: Server, platform: list[str]) -> None:
    _app(project, server)
    _disposable(project)
    migrated = project.run("migrate")
    assert migrated.code == 0, migrated.err
    assert db.query("SELECT count(*) FROM pg_policy WHERE polrelid = 'storage.objects'::regclass") == [(3,)]
    code, document, err = _verify(project)
    assert code == 0, (err, [f for f in document["findings"] if f["severity"] != "info"])
    # what the files create on the platform's tables is created by the files in the shadow, not copied
    assert set(document["shadow"]["left_out"]) >= {
        "POLICY storage.objects Avatar images are publicly accessible", "POLICY storage.objects Users upload their own "
        "avatar", "TRIGGER auth.users on_auth_user_created", "POLICY realtime.messages Authenticated users receive "
        "broadcasts"}
    assert db.query("SELECT count(*) FROM storage.buckets") == [(2,)]  # the target keeps its rows


def test_the_broken_copy_reports_exactly_its_non_idempotent_files_by_kind(
        project: Project, server: Server, platform: list[str]) -> None:
    _app(project, server, broken=True)
    _disposable(project)
    code, document, err = _verify(project)
    assert code == 4, err
    assert _errors(document) == [
        ("migrations/client_specific/002_branding.sql", "not-idempotent-data"),  # a psql file, re-run through psql
        ("migrations/lanconnect/002_profiles.sql", "not-idempotent-schema"),
        ("migrations/lanconnect/003_new_user_trigger.sql", "fails-on-rerun"),
        ("migrations/lanconnect/004_storage.sql", "not-idempotent-data"),
        ("migrations/lanconnect/005_documents.sql", "not-idempotent-data"),
    ]
    found = {f["files"][0]: f for f in document["findings"] if f["severity"] == "error"}
    assert found["migrations/lanconnect/002_profiles.sql"]["changes"] == [
        "added index langconnect.profiles_display_name_idx1"]
    assert found["migrations/lanconnect/003_new_user_trigger.sql"]["message"].startswith(
        'migrations/lanconnect/003_new_user_trigger.sql:12:1: ERROR 42710: trigger "on_auth_user_created" for relation '
        '"users" already exists; running it again fails')
    assert found["migrations/lanconnect/004_storage.sql"]["changes"] == [
        "rows of storage.buckets: row contents changed (2 rows)"]
    assert found["migrations/lanconnect/005_documents.sql"]["changes"] == [
        "sequence langconnect.plans_id_seq moved back to 3, which langconnect.plans.id already holds (up to 3): the "
        "next insert fails with a duplicate key"]
    assert found["migrations/client_specific/002_branding.sql"]["changes"] == [
        "rows of langconnect.audit_log: 2 rows -> 3 rows"]
    for finding in found.values():  # the advice points to a new migration, never to editing an applied file
        assert "leave it as it is (migrate stops at an edited applied file: `changed`) and write a new migration " \
               "(`inv new`)" in finding["message"]
    results = {f["file"]: f["result"] for f in document["files"]}
    assert results["migrations/lanconnect/001_schema_and_types.sql"] == "ok"
    assert results["migrations/client_specific/001_client_settings.sql"] == "ok"


def test_the_app_on_a_named_shadow_server_that_is_shared(project: Project, server: Server,
                                                         platform: list[str]) -> None:
    _app(project, server)
    shadow_url = server.url("postgres")
    (project.root / "envs" / "staging.env").write_text(
        f"DATABASE_URL={project.url}\nMAX_WAIT_TIME=5\nMIGRATE_SHADOW_URL={shadow_url}\n")
    result = project.run("verify", "--env", "staging", "--json")
    document = json.loads(result.out)
    assert result.code == 0, (result.err, document["findings"])
    assert document["shadow"]["disposable"] is False
    assert document["shadow"]["why"] == ("MIGRATE_SHADOW_URL from envs/staging.env, shared: cluster-wide statements "
                                         "are not run there")
    assert document["shadow"]["roles_created"] == []


def test_a_server_that_is_neither_disposable_nor_a_named_shadow_is_refused(project: Project, db: Database,
                                                                          platform: list[str]) -> None:
    copy_app(project.root / "migrations", vector=False)
    (project.root / "envs" / "staging.env").write_text(f"DATABASE_URL={project.url}\nMAX_WAIT_TIME=5\n")
    before = db.query("SELECT count(*) FROM pg_database WHERE datname LIKE 'migrate_verify_%%'")
    result = project.run("verify", "--env", "staging", "--json")
    assert result.code == 6, result.err
    message = json.loads(result.out)["error"]["message"]
    assert message.startswith("verify needs a shadow database on a server where cluster-wide effects (roles, role "
                              "settings, databases) harm no one, and environment 'staging' names none: its own server "
                              "is not marked disposable. Set MIGRATE_SHADOW_URL in envs/staging.env")
    assert message.endswith("or run verify on an environment marked MIGRATE_DISPOSABLE=true (--env local); nothing was "
                            "changed")
    assert db.query("SELECT count(*) FROM pg_database WHERE datname LIKE 'migrate_verify_%%'") == before


def test_a_setup_file_builds_the_platform_when_the_target_cannot_be_read(project: Project, server: Server) -> None:
    connection = server.connect()
    try:
        ensure_roles(connection)  # the shadow server is shared: the platform's roles must be there already
        pgcrypto = has_extension(connection, "pgcrypto")
    finally:
        connection.close()
    _app(project, server)
    (project.root / "shadow").mkdir()
    (project.root / "shadow" / "platform.sql").write_text(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; "
        "END IF; END $$;\n" + PLATFORM_SQL + "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;\n")
    # the target's server does not answer: with MIGRATE_SHADOW_SETUP it is never asked
    (project.root / "envs" / "ci.env").write_text(
        "DATABASE_URL=postgresql://postgres@127.0.0.1:1/postgres\nMAX_WAIT_TIME=0.3\n"
        f"MIGRATE_SHADOW_URL={server.url('postgres')}\nMIGRATE_SHADOW_SETUP=shadow/platform.sql\n")
    result = project.run("verify", "--env", "ci", "--json")
    document = json.loads(result.out)
    assert result.code == 0, (result.err, document["findings"])
    assert document["shadow"]["platform"] == "MIGRATE_SHADOW_SETUP shadow/platform.sql"
    assert [f["result"] for f in document["files"]] == ["ok"] * len(document["files"])
    warnings = {f["kind"]: f["message"] for f in document["findings"] if f["severity"] == "warning"}
    # its cluster-wide statement is not run on a shared shadow server, and says so
    assert warnings.pop("shadow-setup").startswith(
        "the setup's cluster-wide statement(s) CREATE ROLE anon in a DO block (line 1) were not run: the shadow server "
        "is shared")
    if pgcrypto:
        assert warnings == {}
    else:  # the embedded server has no pgcrypto: a warning that says so and what to do, not a traceback
        assert warnings["missing-extension"].startswith(
            "extension pgcrypto is in the platform but not available on the shadow's server")
        assert "point MIGRATE_SHADOW_URL at a server that has it (for Supabase, `supabase start`'s database)" in \
            warnings["missing-extension"]


def test_an_extension_the_shadow_server_lacks_is_a_finding_that_says_what_to_do(
        project: Project, server: Server, platform: list[str]) -> None:
    embedded = _embedded_server()  # no pgcrypto there
    project.write("lanconnect", "001_tokens.sql", """
        CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;
        CREATE SCHEMA IF NOT EXISTS langconnect;
        CREATE TABLE IF NOT EXISTS langconnect.tokens (secret bytea DEFAULT extensions.gen_random_bytes(16));
    """)
    (project.root / "envs" / "local.env").write_text(
        f"DATABASE_URL={project.url}\nMAX_WAIT_TIME=5\nMIGRATE_SHADOW_URL={embedded.url('postgres')}\n"
        "MIGRATE_SHADOW_DISPOSABLE=true\n")
    code, document, err = _verify(project)
    assert code == 4, err
    [failed] = [f for f in document["findings"] if f["severity"] == "error"]
    assert failed["kind"] == "fails-on-first-run"
    assert failed["message"].startswith('migrations/lanconnect/001_tokens.sql:1:1: ERROR ')
    assert 'extension "pgcrypto" is not available' in failed["message"]
    assert "lacks that extension: point MIGRATE_SHADOW_URL at a server that has it" in failed["message"]
    missing = [f for f in document["findings"] if f["kind"] == "missing-extension"]
    if "pgcrypto" in platform:  # the target has it (PostgreSQL 15 here): its copy says it is missing
        assert [f["severity"] for f in missing] == ["warning"]
        assert missing[0]["message"].startswith("extension pgcrypto is in the platform but not available")
    else:
        assert missing == []
    assert document["shadow"]["dropped"] is True


def test_changing_the_platform_is_an_error_attaching_to_it_is_not(project: Project, platform: list[str]) -> None:
    project.write("lanconnect", "001_attach.sql", """
        DROP POLICY IF EXISTS "Anyone reads avatars" ON storage.objects;
        CREATE POLICY "Anyone reads avatars" ON storage.objects FOR SELECT USING (bucket_id = 'avatars');
    """)
    project.write("lanconnect", "002_change.sql", """
        ALTER TABLE storage.objects ADD COLUMN IF NOT EXISTS app_tag text;
        GRANT SELECT ON auth.users TO authenticated;
    """)
    project.write("lanconnect", "003_helper.sql", """
        CREATE OR REPLACE FUNCTION storage.app_owner_of(name text) RETURNS uuid LANGUAGE sql AS $$ SELECT NULL::uuid $$;
    """)
    project.write("lanconnect", "004_allowed.sql", """
        -- migrate:allow-schema storage
        CREATE INDEX IF NOT EXISTS objects_owner_idx ON storage.objects (owner);
    """)
    _disposable(project)
    code, document, err = _verify(project)
    assert code == 4, err
    found = [(f["severity"], f["kind"], f["files"][0].rsplit("/", 1)[1], f["changes"]) for f in document["findings"]]
    assert found == [
        ("error", "protected-schema", "002_change.sql",
         ["changed table auth.users", "added column storage.objects.app_tag"]),
        ("warning", "protected-schema", "003_helper.sql", ["added function storage.app_owner_of(name text)"]),
    ]
    assert [f["result"] for f in document["files"]] == ["ok", "protected-schema", "ok", "ok"]
