"""`schema dump` (issue 15): the schema file the migrations produce, built on a shadow database, the same
bytes on every run; `--check` as a pull-request gate (exit 7 with a unified diff), and its doors.

The target of each test is its own database with the Supabase-shaped platform installed
(supabase_fixture); the app is tests/supabase_app, whose files attach policies to storage.objects and
realtime.messages and a trigger to auth.users."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest
from conftest import Database, Project, Server, _embedded_server, _system_dsn, fresh_database
from supabase_fixture import copy_app, has_extension, install_platform, platform_setup_file

from migrate.errors import EXIT_CONFIG, EXIT_DRIFT, EXIT_REFUSED

SHADOW_LINE = re.compile(r"created shadow database (migrate_dump_\w+) on ")
PLATFORM_TABLES = ("auth.users", "storage.objects", "storage.buckets", "realtime.messages")
HISTORY_TABLES = ("lanconnect_migration_versions", "client_migration_versions", "migration_attempts")



def _app(project: Project, server: Server, vector: bool | None = None) -> list[str]:
    """The app in the project's migrations (the pgvector file where the server has it), its env disposable."""
    if vector is None:
        connection = server.connect()
        try:
            vector = has_extension(connection, "vector")
        finally:
            connection.close()
    copied = copy_app(project.root / "migrations", vector=vector)
    (project.root / "envs" / "local.env").write_text(
        f"DATABASE_URL={project.url}\nMAX_WAIT_TIME=5\nMIGRATE_DISPOSABLE=true\n")
    return copied


def _shadow(err: str) -> str:
    found = SHADOW_LINE.search(err)
    assert found is not None, err
    return found.group(1)


def test_the_schema_file_holds_the_app_and_its_attachments_and_is_the_same_bytes_every_run(
        project: Project, db: Database, server: Server, platform: list[str]) -> None:
    copied = _app(project, server)
    first = project.run("schema", "dump")
    assert first.code == 0, first.err
    path = project.root / "schema.sql"
    assert first.out == ("wrote schema.sql: the schema the migrations produce (lanconnect "
                         f"{'006' if 'lanconnect/006_embeddings.sql' in copied else '005'}, client_specific 002)\n")
    text = path.read_bytes()
    second = project.run("schema", "dump")
    assert second.code == 0, second.err
    assert path.read_bytes() == text  # byte-identical across runs
    assert _shadow(first.err) != _shadow(second.err)  # two shadows, both gone
    for name in (_shadow(first.err), _shadow(second.err)):
        assert db.query("SELECT 1 FROM pg_database WHERE datname = %s", (name,)) == []
    schema = text.decode("utf-8")
    lines = schema.splitlines()
    # the header names the versions it reflects and the server's major version
    assert lines[5:8] == ["-- Versions it reflects (the last of each track):",
                          f"--   lanconnect       {'006' if 'lanconnect/006_embeddings.sql' in copied else '005'}",
                          "--   client_specific  002"]
    major = db.query("SELECT current_setting('server_version_num')::int / 10000")[0][0]
    assert lines[8].startswith(f"-- Built on PostgreSQL {major} ")
    # the app's tables, views, functions, policies and grants
    for table in ("profiles", "documents", "plans", "audit_log", "client_settings"):
        assert f"\nCREATE TABLE langconnect.{table} (\n" in schema
    assert "\nCREATE VIEW langconnect.ready_documents WITH (security_invoker='true') AS\n" in schema
    assert "\nCREATE FUNCTION langconnect.handle_new_user() RETURNS trigger\n" in schema
    assert "coalesce(NEW.raw_user_meta_data ->> 'full_name', NEW.email)" in schema  # 005's body, the last one
    assert '\nCREATE POLICY "Owners manage their documents" ON langconnect.documents TO authenticated' in schema
    assert "\nGRANT USAGE ON SCHEMA langconnect TO anon;\n" in schema
    # what the files attach to the platform's tables, under their own heading, after the app
    attached = schema.split("-- Attached to the platform's tables by the migration files\n", 1)[1]
    assert re.findall(r"^CREATE (POLICY|TRIGGER) (\"[^\"]+\"|\w+) (?:[A-Z ]+ )?ON (\w+\.\w+)", attached,
                      re.MULTILINE) == [
        ("TRIGGER", "on_auth_user_created", "auth.users"),
        ("POLICY", '"Authenticated users receive broadcasts"', "realtime.messages"),
        ("POLICY", '"Avatar images are publicly accessible"', "storage.objects"),
        ("POLICY", '"Users read their own documents"', "storage.objects"),
        ("POLICY", '"Users upload their own avatar"', "storage.objects"),
    ]
    # not the platform's own tables, not the tool's history tables, no owner, no pg_dump noise
    for table in PLATFORM_TABLES:
        assert f"CREATE TABLE {table} " not in schema
    assert "ENABLE ROW LEVEL SECURITY" not in attached  # storage.objects' own RLS belongs to the platform
    for table in HISTORY_TABLES:
        assert table not in schema
    assert "OWNER TO" not in schema and "Owner: postgres" not in schema
    assert "\\restrict" not in schema and "\\unrestrict" not in schema
    assert "Dumped from" not in schema and "Dumped by" not in schema and "database version" not in schema
    assert not re.search(r"^(SET |SELECT pg_catalog\.set_config)", schema, re.MULTILINE)
    assert "pg_attver" not in schema
    assert schema.endswith(";\n") and not schema.endswith("\n\n")
    # --check on the fresh file passes and writes nothing
    checked = project.run("schema", "dump", "--check")
    assert checked.code == 0, checked.err
    assert checked.out.startswith("schema.sql matches what the migrations produce (lanconnect ")
    assert path.read_bytes() == text
    # the target is untouched: no app schema, no bucket rows, no policy attached
    assert db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'langconnect'") == []
    assert db.query("SELECT count(*) FROM storage.buckets") == [(0,)]
    assert db.query("SELECT count(*) FROM pg_policy WHERE polrelid = 'storage.objects'::regclass") == [(0,)]


def test_check_fails_with_a_unified_diff_after_a_new_migration_file(
        project: Project, db: Database, server: Server, platform: list[str]) -> None:
    _app(project, server, vector=False)
    assert project.run("schema", "dump").code == 0
    committed = (project.root / "schema.sql").read_bytes()
    project.write("lanconnect", "007_invoices.sql", """
        CREATE TABLE IF NOT EXISTS langconnect.invoices (id bigint PRIMARY KEY, total numeric NOT NULL);
        DROP POLICY IF EXISTS "Invoices are private" ON storage.objects;
        CREATE POLICY "Invoices are private" ON storage.objects FOR SELECT TO service_role
          USING (bucket_id = 'invoices');
        ALTER DEFAULT PRIVILEGES IN SCHEMA langconnect GRANT SELECT ON SEQUENCES TO authenticated;
    """)
    result = project.run("schema", "dump", "--check")
    assert result.code == EXIT_DRIFT, result.err
    out = result.out.splitlines()
    assert out[:2] == ["--- schema.sql (committed)", "+++ schema.sql (from the migrations)"]
    added = [line[1:] for line in out[2:] if line.startswith("+")]  # the file's own lines start with `--`
    removed = [line[1:] for line in out[2:] if line.startswith("-")]
    assert removed == ["--   lanconnect       005"]
    assert "--   lanconnect       007" in added
    assert "CREATE TABLE langconnect.invoices (" in added
    # as the file wrote it: pg_dump's FOR ROLE <whoever ran it> differs between machines
    assert "ALTER DEFAULT PRIVILEGES IN SCHEMA langconnect GRANT SELECT ON SEQUENCES TO authenticated;" in added
    assert ("CREATE POLICY \"Invoices are private\" ON storage.objects FOR SELECT TO service_role USING "
            "((bucket_id = 'invoices'::text));") in added
    assert result.err.splitlines()[-1] == (
        "migrate: error: schema.sql differs from what the migrations produce (the diff is above): run `inv schema "
        "dump` and commit the file with the migration that changed it")
    assert (project.root / "schema.sql").read_bytes() == committed  # --check writes nothing
    # the diff is exactly what difflib makes of the two files
    assert project.run("schema", "dump").code == 0
    fresh = (project.root / "schema.sql").read_text()
    assert result.out == "".join(difflib.unified_diff(
        committed.decode().splitlines(keepends=True), fresh.splitlines(keepends=True),
        "schema.sql (committed)", "schema.sql (from the migrations)"))
    assert project.run("schema", "dump", "--check").code == 0


def test_after_migrate_publication_membership_and_a_comment_on_an_attached_policy_are_in_the_file(
        project: Project, db: Database, server: Server, platform: list[str]) -> None:
    """The target already holds what the files made: the platform's copy leaves it out (no shadow-setup warning),
    the files make it again in the shadow, and the schema file shows it."""
    _app(project, server, vector=False)
    project.write("lanconnect", "007_realtime.sql", """
        DO $$
        BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = 'supabase_realtime'
                          AND schemaname = 'langconnect' AND tablename = 'documents') THEN
            ALTER PUBLICATION supabase_realtime ADD TABLE langconnect.documents;
          END IF;
        END
        $$;
        COMMENT ON POLICY "Avatar images are publicly accessible" ON storage.objects IS 'avatars are public';
    """)
    migrated = project.run("migrate")
    assert migrated.code == 0, migrated.err
    result = project.run("schema", "dump")
    assert result.code == 0, result.err
    assert "warning" not in result.err, result.err
    text = (project.root / "schema.sql").read_text()
    app, attached = text.split("-- Attached to the platform's tables by the migration files\n", 1)
    assert "\nALTER PUBLICATION supabase_realtime ADD TABLE ONLY langconnect.documents;\n" in app
    assert ("\nCOMMENT ON POLICY \"Avatar images are publicly accessible\" ON storage.objects IS "
            "'avatars are public';\n") in attached
    assert "CREATE PUBLICATION" not in text  # the platform's publication: only the app's membership


def test_in_ci_the_platform_from_a_setup_file_gives_the_same_file_and_the_target_is_never_read(
        project: Project, db: Database, server: Server, platform: list[str]) -> None:
    """The pull-request gate needs no production credentials: MIGRATE_SHADOW_SETUP describes the platform, the
    shadow lives on CI's server, and the file is the same bytes as one built from a copy of the real platform."""
    _app(project, server, vector=False)
    assert project.run("schema", "dump").code == 0
    (project.root / "shadow").mkdir()
    (project.root / "shadow" / "platform.sql").write_text(platform_setup_file())
    (project.root / "envs" / "ci.env").write_text(
        "DATABASE_URL=postgresql://postgres@127.0.0.1:1/postgres\nMAX_WAIT_TIME=0.3\n"
        f"MIGRATE_SHADOW_URL={server.url('postgres')}\nMIGRATE_SHADOW_SETUP=shadow/platform.sql\n")
    result = project.run("schema", "dump", "--check", "--env", "ci")
    assert result.code == 0, (result.out, result.err)
    assert result.out.startswith("schema.sql matches what the migrations produce")


def test_check_without_the_file_says_to_write_it_and_creates_no_shadow(
        project: Project, db: Database, server: Server, platform: list[str]) -> None:
    _app(project, server, vector=False)
    result = project.run("schema", "dump", "--check")
    assert result.code == EXIT_CONFIG
    assert result.out == ""
    assert result.err.splitlines()[-1] == (
        "migrate: error: schema.sql does not exist, so there is nothing to check: run `inv schema dump` (python -m "
        "migrate schema dump) to write it from the migrations, and commit it")
    assert "shadow database" not in result.err
    assert not (project.root / "schema.sql").exists()


def test_out_and_the_inv_door(project: Project, db: Database, server: Server, platform: list[str]) -> None:
    _app(project, server, vector=False)
    (project.root / "db").mkdir()
    written = project.inv("schema", "dump", "--out", "db/schema.sql")
    assert written.code == 0, written.err
    assert written.out.startswith("wrote db/schema.sql: the schema the migrations produce (lanconnect 005, ")
    assert (project.root / "db" / "schema.sql").read_text().startswith("-- Schema file: ")
    assert not (project.root / "schema.sql").exists()
    checked = project.inv("schema", "dump", "--check", "--out", "db/schema.sql")
    assert checked.code == 0, checked.err
    assert checked.out.startswith("db/schema.sql matches what the migrations produce")
    # a hand edit of the file fails the gate through inv too, exit 7
    path = project.root / "db" / "schema.sql"
    path.write_text(path.read_text().replace("max_documents integer NOT NULL", "max_documents bigint NOT NULL"))
    edited = project.inv("schema", "dump", "--check", "--out", "db/schema.sql")
    assert edited.code == EXIT_DRIFT, edited.err
    assert "-    max_documents bigint NOT NULL\n+    max_documents integer NOT NULL\n" in edited.out
    # a folder that does not exist: exit 2 before any shadow
    missing = project.inv("schema", "dump", "--out", "nowhere/schema.sql")
    assert missing.code == EXIT_CONFIG
    assert "cannot write the schema file to" in missing.err and "its folder does not exist" in missing.err
    assert "shadow database" not in missing.err


def test_owners_are_kept_only_when_asked(project: Project, db: Database, server: Server,
                                         platform: list[str]) -> None:
    _app(project, server, vector=False)
    result = project.run("schema", "dump", "--owners", "--out", "owned.sql")
    assert result.code == 0, result.err
    user = db.query("SELECT current_user")[0][0]
    text = (project.root / "owned.sql").read_text()
    assert f"ALTER TABLE langconnect.documents OWNER TO {user};" in text
    assert "\\restrict" not in text and "Dumped from" not in text


def test_a_migration_that_fails_on_the_shadow_writes_nothing(project: Project, db: Database, server: Server,
                                                             platform: list[str]) -> None:
    _app(project, server, vector=False)
    project.write("client_specific", "003_broken.sql", "ALTER TABLE langconnect.nowhere ADD COLUMN x int;\n")
    result = project.run("schema", "dump")
    assert result.code == 4, result.err
    last = result.err.splitlines()[-1]
    assert last.startswith("migrate: error: migrations/client_specific/003_broken.sql:1:")
    assert 'relation "langconnect.nowhere" does not exist' in last
    assert "client_specific version 003 fails on the shadow database" in last
    assert not (project.root / "schema.sql").exists()
    assert db.query("SELECT 1 FROM pg_database WHERE datname = %s", (_shadow(result.err),)) == []


def test_no_shadow_server_is_refused_with_exit_6(project: Project, db: Database, platform: list[str]) -> None:
    copy_app(project.root / "migrations", vector=False)
    (project.root / "envs" / "staging.env").write_text(f"DATABASE_URL={project.url}\nMAX_WAIT_TIME=5\n")
    result = project.run("schema", "dump", "--env", "staging")
    assert result.code == EXIT_REFUSED
    assert result.err.splitlines()[-1].startswith(
        "migrate: error: schema dump needs a shadow database on a server where cluster-wide effects")
    assert "or run schema dump on an environment marked MIGRATE_DISPOSABLE=true (--env local)" in result.err
    assert not (project.root / "schema.sql").exists()
    assert db.query("SELECT 1 FROM pg_namespace WHERE nspname = 'langconnect'") == []


def test_schema_takes_the_one_action_dump(files_project: Project) -> None:
    wrong = files_project.run("schema", "load")
    assert wrong.code == EXIT_CONFIG
    assert wrong.err.splitlines()[-1] == (
        "migrate: error: schema takes one action, dump (got 'load'): `schema dump [--check] [--out FILE] [--owners]`")
    bare = files_project.run("schema")
    assert bare.code == EXIT_CONFIG and "(got 'no action')" in bare.err
    elsewhere = files_project.run("status", "--check")
    assert elsewhere.code == EXIT_CONFIG
    assert elsewhere.err.splitlines()[-1] == (
        "migrate: error: --check, --out and --owners are options of `schema dump`, not of the status command")
    as_json = files_project.run("schema", "dump", "--json")
    assert as_json.code == EXIT_CONFIG
    assert as_json.err.splitlines()[-1].startswith("migrate: error: `schema dump` has no --json output")
    assert not (files_project.root / "schema.sql").exists()


@pytest.mark.skipif(_system_dsn() is None, reason="needs the machine's PostgreSQL beside the embedded one")
def test_the_two_servers_write_the_same_file_but_for_what_the_server_deparses(tmp_path: Path) -> None:
    """PostgreSQL 15 and the embedded 18: pg_dump's noise is gone on both (this machine's 15 stamps every column
    with a pg_attver option); what remains is the server's own text: its major version in the header, a view's
    columns (15 qualifies them), and a GRANT ALL (15 has no MAINTAIN privilege, so pg_dump 18 lists them)."""
    import psycopg2

    dsn = _system_dsn()
    assert dsn is not None
    texts = {}
    for server in (Server("system", dict(psycopg2.extensions.parse_dsn(dsn))), _embedded_server()):
        with fresh_database(server) as database:
            connection = database.connect()
            try:
                install_platform(connection)
            finally:
                connection.close()
            root = tmp_path / server.kind
            (root / "envs").mkdir(parents=True)
            project = Project(root, database.url)
            _app(project, server, vector=False)
            result = project.run("schema", "dump")
            assert result.code == 0, result.err
            texts[server.kind] = (root / "schema.sql").read_text()
            majors = database.query("SELECT current_setting('server_version_num')::int / 10000")[0][0]
            texts[server.kind + "-major"] = str(majors)
            if server.kind == "embedded" and texts["system-major"] != str(majors):
                # the file another major version built fails --check, and the error says why
                (root / "schema.sql").write_text(texts["system"])
                checked = project.run("schema", "dump", "--check")
                assert checked.code == EXIT_DRIFT
                assert (f"(it was built on PostgreSQL {texts['system-major']}, this shadow runs {majors}: view "
                        "definitions and expressions differ between major versions; build it on one major version "
                        "everywhere)") in checked.err
    if texts["system-major"] == texts["embedded-major"]:
        assert texts["system"] == texts["embedded"]
        return
    changed = [line for line in difflib.unified_diff(texts["system"].splitlines(), texts["embedded"].splitlines(),
                                                     lineterm="", n=0)
               if line[:1] in "+-"][2:]
    assert texts["system-major"] == "15", "the expected differences below are PostgreSQL 15's"
    assert changed == [
        "--- Built on PostgreSQL 15 (view definitions and expressions are written by the server: they can",
        "+-- Built on PostgreSQL 18 (view definitions and expressions are written by the server: they can",
        "- SELECT documents.id,", "-    documents.owner_id,", "-    documents.title",
        "+ SELECT id,", "+    owner_id,", "+    title",
        "-  WHERE (documents.status = 'ready'::langconnect.document_status);",
        "+  WHERE (status = 'ready'::langconnect.document_status);",
        "-GRANT SELECT,INSERT,REFERENCES,DELETE,TRIGGER,TRUNCATE,UPDATE ON TABLE langconnect.profiles TO service_role;",
        "+GRANT ALL ON TABLE langconnect.profiles TO service_role;",
    ]


def test_the_filter_keeps_a_function_body_whole_and_drops_only_pg_dump_noise() -> None:
    """Pure: what pg_dump writes between entries goes, a SET inside a function body stays, pg_attver goes."""
    from migrate.checks.reach import read_reach
    from migrate.checks.schema_dump import select_entries, split_dump

    dump = "\n".join([
        "--", "-- PostgreSQL database dump", "--", "", "\\restrict abc123", "",
        "-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)", "-- Dumped by pg_dump version 18.6", "",
        "SET statement_timeout = 0;", "SELECT pg_catalog.set_config('search_path', '', false);", "",
        "--", "-- Name: f(); Type: FUNCTION; Schema: langconnect; Owner: -", "--", "",
        "CREATE FUNCTION langconnect.f() RETURNS void", "    LANGUAGE plpgsql", "    AS $$", "BEGIN",
        "SET search_path = public;", "END", "$$;", "", "",
        "SET default_tablespace = '';", "", "SET default_table_access_method = heap;", "",
        "--", "-- Name: t; Type: TABLE; Schema: langconnect; Owner: -", "--", "",
        "CREATE TABLE langconnect.t (", "    c integer", ");",
        "ALTER TABLE ONLY langconnect.t ALTER COLUMN c SET (pg_attver=45742048);", "", "",
        "--", "-- Name: objects Mine; Type: POLICY; Schema: storage; Owner: -", "--", "",
        'CREATE POLICY "Mine" ON storage.objects USING (true);', "", "",
        "--", '-- Name: POLICY "Mine" ON objects; Type: COMMENT; Schema: storage; Owner: -', "--", "",
        "COMMENT ON POLICY \"Mine\" ON storage.objects IS 'mine';", "", "",
        "--", "-- Name: objects platform_own; Type: POLICY; Schema: storage; Owner: -", "--", "",
        "CREATE POLICY platform_own ON storage.objects USING (true);", "", "",
        "--", "-- Name: buckets; Type: TABLE; Schema: storage; Owner: -", "--", "",
        "CREATE TABLE storage.buckets (id text);", "", "",
        "--", "-- PostgreSQL database dump complete", "--", "", "\\unrestrict abc123", "",
    ])
    major, entries = split_dump(dump)
    assert major == 15
    files = read_reach('CREATE POLICY "Mine" ON storage.objects USING (true);')
    kept = select_entries(entries, "langconnect", files)
    assert [(entry.kind, entry.schema, entry.name) for entry in kept] == [
        ("FUNCTION", "langconnect", "f()"), ("TABLE", "langconnect", "t"), ("POLICY", "storage", "objects Mine"),
        ("COMMENT", "storage", 'POLICY "Mine" ON objects')]
    assert kept[0].sql.splitlines()[-3:] == ["SET search_path = public;", "END", "$$;"]
    assert kept[1].sql == "CREATE TABLE langconnect.t (\n    c integer\n);"
    assert kept[3].sql == "COMMENT ON POLICY \"Mine\" ON storage.objects IS 'mine';"
