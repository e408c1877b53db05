"""The schema model drift compares (issue 15): after `migrate`, two databases built from the same files
compare equal; each hand edit on one of them, made alone, is exactly one finding naming the object, and
after its revert they compare equal again.

Both databases get the Supabase-shaped platform (supabase_fixture) and the realistic app
(tests/supabase_app), migrated by the real `migrate`. They are built once per server (module scope):
every edit is reverted before the next test reads the target. Kinds the app does not have (partitioned
and inherited tables, domains, composite types, publications of a schema or of every table, ...) are
edited on a second pair built from plain SQL (`SHAPES`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import Database, Project, Server, fresh_database
from supabase_fixture import copy_app, has_extension, install_platform

from migrate.checks.reach import merge_all, reach_of_file
from migrate.checks.schema_model import Finding, Model, compare, read_model

SCHEMA = "langconnect"


@dataclass
class Pair:
    """Two migrated databases: `expected` stays as the files left it, `target` is edited and reverted."""

    expected: Database
    target: Database
    attached: set[tuple[str, str, str]]
    model: Model  # the expected database's model, read once
    vector: bool  # the app's pgvector file ran (the server has pgvector)

    def read(self, owners: bool = True) -> Model:
        connection = self.target.connect()
        try:
            return read_model(connection, SCHEMA, self.attached, owners=owners)
        finally:
            connection.close()


def _migrated(stack: ExitStack, server: Server, root: Path, vector: bool) -> Database:
    database = stack.enter_context(fresh_database(server))
    connection = database.connect()
    try:
        install_platform(connection)
    finally:
        connection.close()
    (root / "envs").mkdir(parents=True)
    copy_app(root / "migrations", vector=vector)
    (root / "envs" / "local.env").write_text(f"DATABASE_URL={database.url}\nMAX_WAIT_TIME=5\n")
    result = Project(root, database.url).run("migrate")
    assert result.code == 0, result.err
    return database


@pytest.fixture(scope="module")
def pair(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    connection = server.connect()
    try:
        vector = has_extension(connection, "vector")
    finally:
        connection.close()
    with ExitStack() as stack:
        expected = _migrated(stack, server, tmp_path_factory.mktemp("expected"), vector)
        target = _migrated(stack, server, tmp_path_factory.mktemp("target"), vector)
        files = sorted((tmp_path_factory.getbasetemp()).glob("expected*/migrations/*/*.sql"))
        attached = merge_all(reach_of_file(path.read_text()) for path in files).attachments
        connection = expected.connect()
        try:
            model = read_model(connection, SCHEMA, attached)
        finally:
            connection.close()
        yield Pair(expected, target, attached, model, vector)


def test_after_migrate_two_databases_have_the_same_model(pair: Pair) -> None:
    actual = pair.read()
    assert compare(pair.model, actual) == []
    assert actual.objects == pair.model.objects
    assert actual.not_compared == pair.model.not_compared == []
    assert actual.major == pair.model.major >= 14
    kinds = {kind for kind, _ in actual.objects}
    assert kinds >= {"schema", "table", "column", "constraint", "index", "view", "sequence", "function", "trigger",
                     "policy", "type", "grant", "owner"}
    for key in sorted(actual.objects):
        print(key, "=>", actual.objects[key])


TOUCH = """CREATE OR REPLACE FUNCTION langconnect.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := {now};
  RETURN NEW;
END;
$$"""
NEW_USER_TRIGGER = ("CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users "
                    "FOR EACH ROW EXECUTE FUNCTION langconnect.handle_new_user()")
READ_DOCUMENTS = ("CREATE POLICY \"Users read their own documents\" ON storage.objects FOR SELECT TO authenticated "
                  "USING (bucket_id = 'documents' AND owner = auth.uid())")
READY_COMMENT = ("COMMENT ON VIEW langconnect.ready_documents IS "
                 "'Documents whose processing is done, as their owner sees them'")
READY_VIEW = ("CREATE VIEW langconnect.ready_documents WITH (security_invoker = true) AS "
              "SELECT id, owner_id, title FROM langconnect.documents WHERE status = 'ready'; "
              "GRANT SELECT ON langconnect.ready_documents TO authenticated; " + READY_COMMENT)

# (id, the hand edit, its revert, the one finding it must give)
EDITS = [
    ("add a column", "ALTER TABLE langconnect.documents ADD COLUMN summary text",
     "ALTER TABLE langconnect.documents DROP COLUMN summary", "extra column langconnect.documents.summary"),
    ("change a default", "ALTER TABLE langconnect.documents ALTER COLUMN status SET DEFAULT 'processing'",
     "ALTER TABLE langconnect.documents ALTER COLUMN status SET DEFAULT 'draft'",
     "changed column langconnect.documents.status"),
    ("drop NOT NULL", "ALTER TABLE langconnect.documents ALTER COLUMN title DROP NOT NULL",
     "ALTER TABLE langconnect.documents ALTER COLUMN title SET NOT NULL", "changed column langconnect.documents.title"),
    ("change a column type", "ALTER TABLE langconnect.plans ALTER COLUMN max_documents TYPE bigint",
     "ALTER TABLE langconnect.plans ALTER COLUMN max_documents TYPE integer",
     "changed column langconnect.plans.max_documents"),
    ("add an index", "CREATE INDEX documents_status_idx ON langconnect.documents (status)",
     "DROP INDEX langconnect.documents_status_idx", "extra index langconnect.documents_status_idx"),
    ("add a check constraint",
     "ALTER TABLE langconnect.plans ADD CONSTRAINT plans_max_documents_check CHECK (max_documents > 0)",
     "ALTER TABLE langconnect.plans DROP CONSTRAINT plans_max_documents_check",
     "extra constraint langconnect.plans.plans_max_documents_check"),
    ("rename a constraint", "ALTER TABLE langconnect.plans RENAME CONSTRAINT plans_name_key TO plans_name_unique",
     "ALTER TABLE langconnect.plans RENAME CONSTRAINT plans_name_unique TO plans_name_key",
     "changed constraint langconnect.plans.plans_name_key"),
    ("drop a policy on storage.objects", 'DROP POLICY "Users read their own documents" ON storage.objects',
     READ_DOCUMENTS, 'missing policy storage.objects."Users read their own documents"'),
    ("change a policy's USING",
     'ALTER POLICY "Owners manage their documents" ON langconnect.documents USING (true)',
     'ALTER POLICY "Owners manage their documents" ON langconnect.documents USING (owner_id = auth.uid())',
     'changed policy langconnect.documents."Owners manage their documents"'),
    ("add a policy", 'CREATE POLICY "Anyone reads plans" ON langconnect.plans FOR SELECT USING (true)',
     'DROP POLICY "Anyone reads plans" ON langconnect.plans', 'extra policy langconnect.plans."Anyone reads plans"'),
    ("disable RLS", "ALTER TABLE langconnect.profiles DISABLE ROW LEVEL SECURITY",
     "ALTER TABLE langconnect.profiles ENABLE ROW LEVEL SECURITY", "changed table langconnect.profiles"),
    ("force RLS", "ALTER TABLE langconnect.documents FORCE ROW LEVEL SECURITY",
     "ALTER TABLE langconnect.documents NO FORCE ROW LEVEL SECURITY", "changed table langconnect.documents"),
    ("set a table option", "ALTER TABLE langconnect.documents SET (fillfactor = 70)",
     "ALTER TABLE langconnect.documents RESET (fillfactor)", "changed table langconnect.documents"),
    ("change a function body", TOUCH.format(now="clock_timestamp()"), TOUCH.format(now="now()"),
     "changed function langconnect.touch_updated_at()"),
    ("make a function SECURITY DEFINER", "ALTER FUNCTION langconnect.touch_updated_at() SECURITY DEFINER",
     "ALTER FUNCTION langconnect.touch_updated_at() SECURITY INVOKER",
     "changed function langconnect.touch_updated_at()"),
    ("set a function's search_path", "ALTER FUNCTION langconnect.touch_updated_at() SET search_path = public",
     "ALTER FUNCTION langconnect.touch_updated_at() RESET search_path",
     "changed function langconnect.touch_updated_at()"),
    ("add a function", "CREATE FUNCTION langconnect.answer() RETURNS int LANGUAGE sql AS 'SELECT 42'",
     "DROP FUNCTION langconnect.answer()", "extra function langconnect.answer()"),
    ("drop the trigger on auth.users", "DROP TRIGGER on_auth_user_created ON auth.users", NEW_USER_TRIGGER,
     "missing trigger auth.users.on_auth_user_created"),
    ("disable a trigger", "ALTER TABLE langconnect.documents DISABLE TRIGGER documents_touch",
     "ALTER TABLE langconnect.documents ENABLE TRIGGER documents_touch",
     "changed trigger langconnect.documents.documents_touch"),
    ("grant to anon", "GRANT SELECT ON langconnect.documents TO anon",
     "REVOKE SELECT ON langconnect.documents FROM anon", "extra grant langconnect.documents to anon"),
    ("revoke from authenticated", "REVOKE ALL ON langconnect.documents FROM authenticated",
     "GRANT SELECT, INSERT, UPDATE, DELETE ON langconnect.documents TO authenticated",
     "missing grant langconnect.documents to authenticated"),
    ("revoke one privilege", "REVOKE DELETE ON langconnect.documents FROM authenticated",
     "GRANT DELETE ON langconnect.documents TO authenticated", "changed grant langconnect.documents to authenticated"),
    ("a column grant", "GRANT UPDATE (title) ON langconnect.documents TO anon",
     "REVOKE UPDATE (title) ON langconnect.documents FROM anon", "extra grant langconnect.documents.title to anon"),
    ("revoke a column grant", "REVOKE UPDATE (value) ON langconnect.client_settings FROM service_role",
     "GRANT UPDATE (value) ON langconnect.client_settings TO service_role",
     "missing grant langconnect.client_settings.value to service_role"),
    ("a grant on the schema", "GRANT CREATE ON SCHEMA langconnect TO anon",
     "REVOKE CREATE ON SCHEMA langconnect FROM anon", "changed grant langconnect to anon"),
    ("revoke a function from PUBLIC", "REVOKE EXECUTE ON FUNCTION langconnect.handle_new_user() FROM PUBLIC",
     "GRANT EXECUTE ON FUNCTION langconnect.handle_new_user() TO PUBLIC",
     "missing grant langconnect.handle_new_user() to PUBLIC"),
    ("revoke a type from PUBLIC", "REVOKE USAGE ON TYPE langconnect.document_status FROM PUBLIC",
     "GRANT USAGE ON TYPE langconnect.document_status TO PUBLIC",
     "missing grant langconnect.document_status to PUBLIC"),
    ("a grant on a sequence", "GRANT USAGE ON SEQUENCE langconnect.plans_id_seq TO authenticated",
     "REVOKE USAGE ON SEQUENCE langconnect.plans_id_seq FROM authenticated",
     "extra grant langconnect.plans_id_seq to authenticated"),
    ("alter default privileges", "ALTER DEFAULT PRIVILEGES IN SCHEMA langconnect GRANT SELECT ON TABLES TO anon",
     "ALTER DEFAULT PRIVILEGES IN SCHEMA langconnect REVOKE SELECT ON TABLES FROM anon",
     "extra default privileges for role (migration user) in schema langconnect on tables to anon"),
    ("alter global default privileges", "ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
     "ALTER DEFAULT PRIVILEGES GRANT EXECUTE ON FUNCTIONS TO PUBLIC",
     "extra default privileges for role (migration user) on functions to PUBLIC"),
    ("add an enum label", "ALTER TYPE langconnect.document_status ADD VALUE 'archived'",
     "DELETE FROM pg_enum WHERE enumtypid = 'langconnect.document_status'::regtype AND enumlabel = 'archived'",
     "changed type langconnect.document_status"),
    ("change a view's security_invoker", "ALTER VIEW langconnect.ready_documents SET (security_invoker = false)",
     "ALTER VIEW langconnect.ready_documents SET (security_invoker = true)",
     "changed view langconnect.ready_documents"),
    ("drop a view", "DROP VIEW langconnect.ready_documents", READY_VIEW, "missing view langconnect.ready_documents"),
    ("add a table", "CREATE TABLE langconnect.notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text "
                    "NOT NULL DEFAULT '' CHECK (body <> 'x')); GRANT SELECT ON langconnect.notes TO anon; "
                    "COMMENT ON TABLE langconnect.notes IS 'by hand'",
     "DROP TABLE langconnect.notes", "extra table langconnect.notes"),
    ("comment on a column", "COMMENT ON COLUMN langconnect.documents.title IS 'Shown in lists'",
     "COMMENT ON COLUMN langconnect.documents.title IS NULL", "extra comment column langconnect.documents.title"),
    ("comment on a policy on storage.objects",
     'COMMENT ON POLICY "Avatar images are publicly accessible" ON storage.objects IS \'anyone\'',
     'COMMENT ON POLICY "Avatar images are publicly accessible" ON storage.objects IS NULL',
     'extra comment policy storage.objects."Avatar images are publicly accessible"'),
    ("add a table to a publication", "ALTER PUBLICATION supabase_realtime ADD TABLE langconnect.documents",
     "ALTER PUBLICATION supabase_realtime DROP TABLE langconnect.documents",
     "extra publication langconnect.documents in supabase_realtime"),
    ("drop a table from a publication", "ALTER PUBLICATION supabase_realtime DROP TABLE langconnect.client_settings",
     "ALTER PUBLICATION supabase_realtime ADD TABLE langconnect.client_settings",
     "missing publication langconnect.client_settings in supabase_realtime"),
    ("change a comment", "COMMENT ON VIEW langconnect.ready_documents IS 'Ready'", READY_COMMENT,
     "changed comment view langconnect.ready_documents"),
    ("change a sequence's increment", "ALTER SEQUENCE langconnect.plans_id_seq INCREMENT BY 10",
     "ALTER SEQUENCE langconnect.plans_id_seq INCREMENT BY 1", "changed sequence langconnect.plans_id_seq"),
    ("change the owner of a table", "ALTER TABLE langconnect.documents OWNER TO service_role",
     "ALTER TABLE langconnect.documents OWNER TO CURRENT_USER",
     "changed owner table langconnect.documents"),
    ("rename an index", "ALTER INDEX langconnect.documents_owner_idx RENAME TO documents_owner_id_idx",
     "ALTER INDEX langconnect.documents_owner_id_idx RENAME TO documents_owner_idx",
     "changed index langconnect.documents_owner_idx"),
    ("rename a trigger", "ALTER TRIGGER documents_touch ON langconnect.documents RENAME TO documents_touched",
     "ALTER TRIGGER documents_touched ON langconnect.documents RENAME TO documents_touch",
     "changed trigger langconnect.documents.documents_touch"),
    ("rename a policy",
     'ALTER POLICY "Owners manage their documents" ON langconnect.documents RENAME TO "Owners manage documents"',
     'ALTER POLICY "Owners manage documents" ON langconnect.documents RENAME TO "Owners manage their documents"',
     'changed policy langconnect.documents."Owners manage their documents"'),
    # on a platform table the files attach to, every policy and trigger is read: a rename there pairs up
    ("rename a policy on storage.objects",
     'ALTER POLICY "Users read their own documents" ON storage.objects RENAME TO "Read own documents"',
     'ALTER POLICY "Read own documents" ON storage.objects RENAME TO "Users read their own documents"',
     'changed policy storage.objects."Users read their own documents"'),
    ("add a policy on storage.objects by hand (Supabase Studio)",
     'CREATE POLICY "anyone reads everything" ON storage.objects FOR SELECT TO anon USING (true)',
     'DROP POLICY "anyone reads everything" ON storage.objects',
     'extra policy storage.objects."anyone reads everything"'),
    ("add a trigger on auth.users by hand",
     "CREATE TRIGGER audit_signup AFTER INSERT ON auth.users FOR EACH ROW "
     "EXECUTE FUNCTION langconnect.handle_new_user()",
     "DROP TRIGGER audit_signup ON auth.users",
     "extra trigger auth.users.audit_signup"),
    ("replica identity full", "ALTER TABLE langconnect.plans REPLICA IDENTITY FULL",
     "ALTER TABLE langconnect.plans REPLICA IDENTITY DEFAULT", "changed table langconnect.plans"),
    ("add a domain", "CREATE DOMAIN langconnect.email AS text NOT NULL CHECK (VALUE ~ '@')",
     "DROP DOMAIN langconnect.email", "extra type langconnect.email"),
    ("add a composite type", "CREATE TYPE langconnect.pair AS (a integer, b text)", "DROP TYPE langconnect.pair",
     "extra type langconnect.pair"),
    ("add a range type", "CREATE TYPE langconnect.score_range AS RANGE (subtype = float8)",
     "DROP TYPE langconnect.score_range", "extra type langconnect.score_range"),
    ("add a materialized view",
     "CREATE MATERIALIZED VIEW langconnect.plan_names AS SELECT name FROM langconnect.plans; "
     "CREATE INDEX plan_names_idx ON langconnect.plan_names (name)",
     "DROP MATERIALIZED VIEW langconnect.plan_names", "extra materialized view langconnect.plan_names"),
    ("add a procedure", "CREATE PROCEDURE langconnect.tidy() LANGUAGE sql AS 'SELECT 1'",
     "DROP PROCEDURE langconnect.tidy()", "extra procedure langconnect.tidy()"),
    ("add an identity to a column", "ALTER TABLE langconnect.plans ALTER COLUMN max_documents ADD GENERATED BY "
                                    "DEFAULT AS IDENTITY",
     "ALTER TABLE langconnect.plans ALTER COLUMN max_documents DROP IDENTITY",
     "changed column langconnect.plans.max_documents"),
    ("change an identity's increment", "ALTER TABLE langconnect.audit_log ALTER COLUMN id SET INCREMENT BY 5",
     "ALTER TABLE langconnect.audit_log ALTER COLUMN id SET INCREMENT BY 1", "changed column langconnect.audit_log.id"),
    ("add an extension to the app schema", "CREATE EXTENSION citext SCHEMA langconnect", "DROP EXTENSION citext",
     "extra extension citext"),
]


@pytest.mark.parametrize(("edit", "revert", "finding"), [edit[1:] for edit in EDITS], ids=[edit[0] for edit in EDITS])
def test_each_hand_edit_is_one_finding_and_its_revert_none(pair: Pair, edit: str, revert: str, finding: str) -> None:
    pair.target.execute(edit)
    try:
        after_edit = pair.read()
    finally:
        pair.target.execute(revert)
    found = compare(pair.model, after_edit)
    assert [str(f) for f in found] == [finding], [(str(f), f.expected, f.actual) for f in found]
    assert compare(pair.model, pair.read()) == []


def test_finding_reads_as_a_line() -> None:
    finding = Finding("changed", "column", "langconnect.documents.title", "text; not null", "text")
    assert str(finding) == "changed column langconnect.documents.title"


def _found(pair: Pair, edit: str, revert: str, owners: bool = True) -> list[Finding]:
    pair.target.execute(edit)
    try:
        return compare(pair.model, pair.read(owners))
    finally:
        pair.target.execute(revert)


def test_findings_carry_both_definitions_readably(pair: Pair) -> None:
    [narrowed] = _found(pair, "REVOKE DELETE ON langconnect.documents FROM authenticated",
                        "GRANT DELETE ON langconnect.documents TO authenticated")
    assert (narrowed.expected, narrowed.actual) == ("DELETE, INSERT, SELECT, UPDATE", "INSERT, SELECT, UPDATE")
    [owner] = _found(pair, "ALTER TABLE langconnect.documents OWNER TO service_role",
                     "ALTER TABLE langconnect.documents OWNER TO CURRENT_USER")
    assert (owner.expected, owner.actual) == ("(migration user)", "service_role")
    [renamed] = _found(pair, "ALTER TABLE langconnect.plans RENAME CONSTRAINT plans_name_key TO plans_name_unique",
                       "ALTER TABLE langconnect.plans RENAME CONSTRAINT plans_name_unique TO plans_name_key")
    assert (renamed.expected, renamed.actual) == ("UNIQUE (name)",
                                                  "renamed to langconnect.plans.plans_name_unique; UNIQUE (name)")
    [column] = _found(pair, "ALTER TABLE langconnect.documents ALTER COLUMN title DROP NOT NULL",
                      "ALTER TABLE langconnect.documents ALTER COLUMN title SET NOT NULL")
    assert (column.expected, column.actual) == ("text; not null", "text")
    [policy] = _found(pair, 'DROP POLICY "Users read their own documents" ON storage.objects', READ_DOCUMENTS)
    assert (policy.state, policy.actual) == ("missing", None)
    assert policy.expected == ("for select; permissive; to authenticated; "
                               "using (((bucket_id = 'documents'::text) AND (owner = auth.uid())))")
    [view] = _found(pair, "ALTER VIEW langconnect.ready_documents SET (security_invoker = false)",
                    "ALTER VIEW langconnect.ready_documents SET (security_invoker = true)")
    assert view.expected.startswith("with (security_invoker=true)\nas SELECT")
    assert view.actual.startswith("with (security_invoker=false)\nas SELECT")
    [enum] = _found(pair, "ALTER TYPE langconnect.document_status ADD VALUE 'archived' BEFORE 'failed'",
                    "DELETE FROM pg_enum WHERE enumtypid = 'langconnect.document_status'::regtype "
                    "AND enumlabel = 'archived'")
    assert (enum.expected, enum.actual) == ("enum ('draft', 'processing', 'ready', 'failed')",
                                            "enum ('draft', 'processing', 'ready', 'archived', 'failed')")


def test_without_owners_an_owner_change_is_no_drift(pair: Pair) -> None:
    connection = pair.expected.connect()
    try:
        expected = read_model(connection, SCHEMA, pair.attached, owners=False)
    finally:
        connection.close()
    assert [key for key in expected.objects if key[0] == "owner"] == []
    assert _found(pair, "ALTER TABLE langconnect.documents OWNER TO service_role; "
                        "ALTER FUNCTION langconnect.touch_updated_at() OWNER TO service_role",
                  "ALTER TABLE langconnect.documents OWNER TO CURRENT_USER; "
                  "ALTER FUNCTION langconnect.touch_updated_at() OWNER TO CURRENT_USER", owners=False) == [
        # the model without owners is compared to one with them: only the owner entries differ
        Finding("missing", "owner", name, "(migration user)", None) for name in sorted(
            name for kind, name in pair.model.objects if kind == "owner")]
    pair.target.execute("ALTER TABLE langconnect.documents OWNER TO service_role")
    try:
        assert compare(expected, pair.read(owners=False)) == []
    finally:
        pair.target.execute("ALTER TABLE langconnect.documents OWNER TO CURRENT_USER")


def test_the_history_tables_are_never_in_the_model(pair: Pair) -> None:
    history = ("lanconnect_migration_versions", "client_migration_versions", "migration_attempts")
    assert pair.target.query("SELECT count(*) FROM pg_class WHERE relnamespace = 'langconnect'::regnamespace "
                             "AND relname = ANY(%s)", (list(history),)) == [(3,)]
    edit = ("INSERT INTO langconnect.lanconnect_migration_versions (version, description) VALUES ('999', 'by hand'); "
            "ALTER TABLE langconnect.migration_attempts ADD COLUMN note text; "
            "CREATE INDEX attempts_note_idx ON langconnect.migration_attempts (note); "
            "GRANT SELECT ON langconnect.client_migration_versions TO anon; "
            "COMMENT ON TABLE langconnect.client_migration_versions IS 'ledger'")
    revert = ("DELETE FROM langconnect.lanconnect_migration_versions WHERE version = '999'; "
              "ALTER TABLE langconnect.migration_attempts DROP COLUMN note; "
              "REVOKE SELECT ON langconnect.client_migration_versions FROM anon; "
              "COMMENT ON TABLE langconnect.client_migration_versions IS NULL")
    pair.target.execute(edit)
    try:
        actual = pair.read()
    finally:
        pair.target.execute(revert)
    assert compare(pair.model, actual) == []
    assert [key for key in actual.objects if any(name in key[1] for name in history)] == []


def test_an_extension_is_one_entry_its_members_are_not_listed(pair: Pair) -> None:
    pair.target.execute("CREATE EXTENSION citext SCHEMA langconnect")
    try:
        actual = pair.read()
    finally:
        pair.target.execute("DROP EXTENSION citext")
    assert [key for key in actual.objects if "citext" in key[1]] == [("extension", "citext")]
    assert actual.objects[("extension", "citext")] == "schema langconnect"
    assert actual.not_compared == []  # its operators, casts and operator classes are the extension's
    if pair.vector:  # the app's pgvector, in the platform's `extensions` schema, is used by an app table
        assert pair.model.objects[("extension", "vector")] == "schema extensions"
        assert [key for key in pair.model.objects if key[1].startswith("extensions.")] == []
        assert pair.model.objects[("column", "langconnect.chunks.embedding")] == "extensions.vector(3)"


def test_what_the_model_cannot_compare_is_listed_never_ignored(pair: Pair) -> None:
    [(collation,)] = pair.target.query("SELECT collname FROM pg_collation WHERE collname IN ('C', 'POSIX') "
                                       "ORDER BY 1 LIMIT 1")
    edit = f"""
        CREATE OPERATOR langconnect.=== (LEFTARG = integer, RIGHTARG = integer, FUNCTION = int4eq);
        CREATE FUNCTION langconnect.status_text(langconnect.document_status) RETURNS text LANGUAGE sql
            AS 'SELECT $1::text';
        CREATE CAST (langconnect.document_status AS text)
            WITH FUNCTION langconnect.status_text(langconnect.document_status);
        CREATE RULE plans_no_delete AS ON DELETE TO langconnect.plans DO INSTEAD NOTHING;
        CREATE STATISTICS langconnect.plans_stats ON id, max_documents FROM langconnect.plans;
        CREATE TEXT SEARCH CONFIGURATION langconnect.docs (COPY = pg_catalog.simple);
        CREATE COLLATION langconnect.plain FROM "{collation}";
        CREATE AGGREGATE langconnect.total(integer) (SFUNC = int4pl, STYPE = integer);
        CREATE FOREIGN DATA WRAPPER drift_test_fdw;
        CREATE SERVER drift_test_server FOREIGN DATA WRAPPER drift_test_fdw;
        CREATE FOREIGN TABLE langconnect.remote (id integer) SERVER drift_test_server;
        CREATE OPERATOR FAMILY langconnect.fam USING btree;
        CREATE FUNCTION langconnect.on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
        CREATE EVENT TRIGGER drift_test_ddl ON ddl_command_end EXECUTE FUNCTION langconnect.on_ddl();
    """
    revert = """
        DROP EVENT TRIGGER drift_test_ddl; DROP FUNCTION langconnect.on_ddl();
        DROP OPERATOR FAMILY langconnect.fam USING btree;
        DROP FOREIGN TABLE langconnect.remote; DROP SERVER drift_test_server; DROP FOREIGN DATA WRAPPER drift_test_fdw;
        DROP AGGREGATE langconnect.total(integer); DROP COLLATION langconnect.plain;
        DROP TEXT SEARCH CONFIGURATION langconnect.docs; DROP STATISTICS langconnect.plans_stats;
        DROP RULE plans_no_delete ON langconnect.plans;
        DROP CAST (langconnect.document_status AS text);
        DROP FUNCTION langconnect.status_text(langconnect.document_status);
        DROP OPERATOR langconnect.=== (integer, integer);
    """
    pair.target.execute(edit)
    try:
        actual = pair.read()
    finally:
        pair.target.execute(revert)
    # the function behind the cast is compared; the rest is listed
    assert [str(f) for f in compare(pair.model, actual)] == [
        "extra function langconnect.on_ddl()", "extra function langconnect.status_text(langconnect.document_status)"]
    assert actual.not_compared == sorted([
        "aggregate langconnect.total(integer)",
        "cast from langconnect.document_status to text",
        "collation langconnect.plain",
        "event trigger drift_test_ddl",
        "foreign table langconnect.remote",
        "operator family langconnect.fam for access method btree",
        "operator langconnect.===(integer,integer)",
        "rule plans_no_delete on table langconnect.plans",
        "server drift_test_server",
        "statistics object langconnect.plans_stats",
        "text search configuration langconnect.docs",
    ])
    assert pair.read().not_compared == []


def test_a_missing_schema_is_one_finding(pair: Pair) -> None:
    empty = Model({}, [])
    assert [str(f) for f in compare(pair.model, empty) if f.kind != "policy" and f.kind != "trigger"] == [
        "missing schema langconnect"] + ([] if not pair.vector else ["missing extension vector"])


def test_read_model_leaves_the_connection_as_it_found_it(pair: Pair) -> None:
    connection = pair.target.connect()
    try:
        connection.autocommit = False
        read_model(connection, SCHEMA, pair.attached)
        assert connection.autocommit is False
        assert connection.get_transaction_status() == 0  # idle
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        with pytest.raises(ValueError, match="idle connection"):
            read_model(connection, SCHEMA, pair.attached)
        connection.rollback()
        with connection.cursor() as cursor:
            cursor.execute("SHOW search_path")
            assert cursor.fetchone()[0] != "pg_catalog"
    finally:
        connection.close()


# ---- kinds the app does not have: two databases built from the same SQL (no platform, no history tables) ----

SHAPES = """
CREATE SCHEMA langconnect;
CREATE FUNCTION langconnect.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TABLE langconnect.events (id bigint NOT NULL, at date NOT NULL, kind text, PRIMARY KEY (id, at))
  PARTITION BY RANGE (at);
CREATE TABLE langconnect.events_2025 PARTITION OF langconnect.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE langconnect.events_2026 PARTITION OF langconnect.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE langconnect.base (id integer, note text);
CREATE TABLE langconnect.derived (extra integer) INHERITS (langconnect.base);
CREATE TYPE langconnect.pair AS (a integer, b text);
CREATE DOMAIN langconnect.email AS text CONSTRAINT email_has_at CHECK (VALUE ~ '@');
CREATE TABLE langconnect.people (id integer PRIMARY KEY, email langconnect.email, name text COLLATE "C",
  name_upper text GENERATED ALWAYS AS (upper(name)) STORED, nick text);
CREATE VIEW langconnect.people_names AS SELECT id, name FROM langconnect.people;
CREATE MATERIALIZED VIEW langconnect.people_count AS SELECT count(*) AS n FROM langconnect.people;
CREATE SEQUENCE langconnect.counter;
"""

SHAPE_EDITS = [
    ("add an index on a partitioned table", "CREATE INDEX events_kind_idx ON langconnect.events (kind)",
     "DROP INDEX langconnect.events_kind_idx", "extra index langconnect.events_kind_idx"),
    ("add a column to a partitioned table", "ALTER TABLE langconnect.events ADD COLUMN note text",
     "ALTER TABLE langconnect.events DROP COLUMN note", "extra column langconnect.events.note"),
    ("add a check to a partitioned table",
     "ALTER TABLE langconnect.events ADD CONSTRAINT events_kind_check CHECK (kind <> '')",
     "ALTER TABLE langconnect.events DROP CONSTRAINT events_kind_check",
     "extra constraint langconnect.events.events_kind_check"),
    ("add a trigger on a partitioned table", "CREATE TRIGGER events_noop AFTER INSERT ON langconnect.events "
                                             "FOR EACH ROW EXECUTE FUNCTION langconnect.noop()",
     "DROP TRIGGER events_noop ON langconnect.events", "extra trigger langconnect.events.events_noop"),
    ("add a partition", "CREATE TABLE langconnect.events_2027 PARTITION OF langconnect.events "
                        "FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')",
     "DROP TABLE langconnect.events_2027", "extra table langconnect.events_2027"),
    ("detach a partition", "ALTER TABLE langconnect.events DETACH PARTITION langconnect.events_2026",
     "ALTER TABLE langconnect.events ATTACH PARTITION langconnect.events_2026 "
     "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')", "changed table langconnect.events_2026"),
    ("add a column to an inherited table", "ALTER TABLE langconnect.base ADD COLUMN flag boolean",
     "ALTER TABLE langconnect.base DROP COLUMN flag", "extra column langconnect.base.flag"),
    ("change a domain's check", "ALTER DOMAIN langconnect.email DROP CONSTRAINT email_has_at; "
                                "ALTER DOMAIN langconnect.email ADD CONSTRAINT email_has_at CHECK (VALUE ~ '.@.')",
     "ALTER DOMAIN langconnect.email DROP CONSTRAINT email_has_at; "
     "ALTER DOMAIN langconnect.email ADD CONSTRAINT email_has_at CHECK (VALUE ~ '@')",
     "changed constraint langconnect.email.email_has_at"),
    ("set a domain default", "ALTER DOMAIN langconnect.email SET DEFAULT 'nobody@example.com'",
     "ALTER DOMAIN langconnect.email DROP DEFAULT", "changed type langconnect.email"),
    ("add an attribute to a composite type", "ALTER TYPE langconnect.pair ADD ATTRIBUTE c date",
     "ALTER TYPE langconnect.pair DROP ATTRIBUTE c", "changed type langconnect.pair"),
    ("comment on a composite type", "COMMENT ON TYPE langconnect.pair IS 'two things'",
     "COMMENT ON TYPE langconnect.pair IS NULL", "extra comment type langconnect.pair"),
    ("comment on a view's column", "COMMENT ON COLUMN langconnect.people_names.name IS 'as written'",
     "COMMENT ON COLUMN langconnect.people_names.name IS NULL", "extra comment column langconnect.people_names.name"),
    ("grant on a view's column", "GRANT SELECT (name) ON langconnect.people_names TO PUBLIC",
     "REVOKE SELECT (name) ON langconnect.people_names FROM PUBLIC",
     "extra grant langconnect.people_names.name to PUBLIC"),
    ("change a column's collation", "ALTER TABLE langconnect.people ALTER COLUMN nick TYPE text COLLATE \"C\"",
     "ALTER TABLE langconnect.people ALTER COLUMN nick TYPE text COLLATE \"default\"",
     "changed column langconnect.people.nick"),
    ("change a column type on a partitioned table", "ALTER TABLE langconnect.events ALTER COLUMN kind TYPE varchar(20)",
     "ALTER TABLE langconnect.events ALTER COLUMN kind TYPE text", "changed column langconnect.events.kind"),
    ("change an inherited column's default", "ALTER TABLE langconnect.base ALTER COLUMN note SET DEFAULT 'n/a'",
     "ALTER TABLE langconnect.base ALTER COLUMN note DROP DEFAULT", "changed column langconnect.base.note"),
    ("index a materialized view", "CREATE UNIQUE INDEX people_count_idx ON langconnect.people_count (n)",
     "DROP INDEX langconnect.people_count_idx", "extra index langconnect.people_count_idx"),
    ("set a column's statistics target", "ALTER TABLE langconnect.people ALTER COLUMN nick SET STATISTICS 500",
     "ALTER TABLE langconnect.people ALTER COLUMN nick SET STATISTICS -1", "changed column langconnect.people.nick"),
    ("replica identity using an index", "ALTER TABLE langconnect.people REPLICA IDENTITY USING INDEX people_pkey",
     "ALTER TABLE langconnect.people REPLICA IDENTITY DEFAULT", "changed table langconnect.people"),
    ("a standalone sequence's cache", "ALTER SEQUENCE langconnect.counter CACHE 20",
     "ALTER SEQUENCE langconnect.counter CACHE 1", "changed sequence langconnect.counter"),
    ("a publication FOR ALL TABLES", "CREATE PUBLICATION drift_everything FOR ALL TABLES",
     "DROP PUBLICATION drift_everything", "extra publication all tables in drift_everything"),
    ("a publication FOR TABLES IN SCHEMA", "CREATE PUBLICATION drift_schema FOR TABLES IN SCHEMA langconnect",
     "DROP PUBLICATION drift_schema", "extra publication tables in schema langconnect in drift_schema"),
    ("a publication of some columns", "CREATE PUBLICATION drift_some FOR TABLE langconnect.people (id, name) "
                                      "WHERE (id > 0)",
     "DROP PUBLICATION drift_some", "extra publication langconnect.people in drift_some"),
    ("comment on the schema", "COMMENT ON SCHEMA langconnect IS 'the app'", "COMMENT ON SCHEMA langconnect IS NULL",
     "extra comment schema langconnect"),
    ("comment on a function", "COMMENT ON FUNCTION langconnect.noop() IS 'does nothing'",
     "COMMENT ON FUNCTION langconnect.noop() IS NULL", "extra comment function langconnect.noop()"),
    ("comment on a constraint", "COMMENT ON CONSTRAINT people_pkey ON langconnect.people IS 'the id'",
     "COMMENT ON CONSTRAINT people_pkey ON langconnect.people IS NULL",
     "extra comment constraint langconnect.people.people_pkey"),
    ("comment on a sequence", "COMMENT ON SEQUENCE langconnect.counter IS 'counts'",
     "COMMENT ON SEQUENCE langconnect.counter IS NULL", "extra comment sequence langconnect.counter"),
    ("make a table unlogged", "ALTER TABLE langconnect.base SET UNLOGGED", "ALTER TABLE langconnect.base SET LOGGED",
     "changed table langconnect.base"),
    ("drop a table", "DROP TABLE langconnect.people CASCADE",
     "CREATE TABLE langconnect.people (id integer PRIMARY KEY, email langconnect.email, name text COLLATE \"C\", "
     "name_upper text GENERATED ALWAYS AS (upper(name)) STORED, nick text); "
     "CREATE VIEW langconnect.people_names AS SELECT id, name FROM langconnect.people; "
     "CREATE MATERIALIZED VIEW langconnect.people_count AS SELECT count(*) AS n FROM langconnect.people",
     # the views that depend on it go with it: each is an object of its own
     "missing table langconnect.people, missing materialized view langconnect.people_count, "
     "missing view langconnect.people_names"),
]


@pytest.fixture(scope="module")
def shapes(server: Server) -> Iterator[Pair]:
    with ExitStack() as stack:
        expected, target = (stack.enter_context(fresh_database(server)) for _ in range(2))
        for database in (expected, target):
            database.execute(SHAPES)
        connection = expected.connect()
        try:
            model = read_model(connection, SCHEMA, set())
        finally:
            connection.close()
        yield Pair(expected, target, set(), model, False)


def test_the_shapes_compare_equal_and_their_kinds_are_modelled(shapes: Pair) -> None:
    actual = shapes.read()
    assert compare(shapes.model, actual) == []
    objects = actual.objects
    assert objects[("table", "langconnect.events")] == "logged; partitioned by RANGE (at); row level security disabled"
    assert objects[("table", "langconnect.events_2025")] == (
        "logged; partition of langconnect.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01'); "
        "row level security disabled")
    assert objects[("table", "langconnect.derived")] == "logged; inherits langconnect.base; row level security disabled"
    assert objects[("type", "langconnect.pair")] == "composite (a integer, b text)"
    assert objects[("type", "langconnect.email")] == "domain over text"
    assert objects[("constraint", "langconnect.email.email_has_at")] == "CHECK ((VALUE ~ '@'::text))"
    assert objects[("column", "langconnect.people.name")] == 'text; collate pg_catalog."C"'
    assert objects[("column", "langconnect.people.name_upper")] == "text; generated always as (upper(name)) stored"
    assert objects[("sequence", "langconnect.counter")] == ("as bigint; increment 1; minvalue 1; maxvalue "
                                                            "9223372036854775807; start 1; cache 1; no cycle")
    assert ("column", "langconnect.people_names.name") not in objects  # a view's columns are its definition


@pytest.mark.parametrize(("edit", "revert", "finding"), [edit[1:] for edit in SHAPE_EDITS],
                         ids=[edit[0] for edit in SHAPE_EDITS])
def test_each_edit_of_the_shapes_is_one_finding(shapes: Pair, edit: str, revert: str, finding: str) -> None:
    found = _found(shapes, edit, revert)
    assert ", ".join(str(f) for f in found) == finding, [(str(f), f.expected, f.actual) for f in found]
    assert compare(shapes.model, shapes.read()) == []


def test_a_failed_read_rolls_back_and_a_lost_connection_reports_its_own_error(pair: Pair) -> None:
    import psycopg2

    connection = pair.target.connect()
    try:
        # a value psycopg2 cannot send fails a query after BEGIN
        with pytest.raises(psycopg2.ProgrammingError, match="can't adapt"):
            read_model(connection, SCHEMA, pair.attached, extensions=[object()])  # type: ignore[list-item]
        assert connection.get_transaction_status() == 0 and connection.autocommit is True  # rolled back
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        assert compare(pair.model, read_model(connection, SCHEMA, pair.attached)) == []
        pair.target.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg2.OperationalError):  # the lost connection, not a failed ROLLBACK
            read_model(connection, SCHEMA, pair.attached)
    finally:
        connection.close()


def test_a_role_without_privileges_reads_the_same_model(pair: Pair) -> None:
    """drift may read a target as a role that owns nothing (owners aside, it sees what the migration user sees)."""
    connection = pair.expected.connect()
    try:
        expected = read_model(connection, SCHEMA, pair.attached, owners=False)
    finally:
        connection.close()
    connection = pair.target.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET ROLE pg_monitor")  # a role of its own that holds no privilege in the app
        actual = read_model(connection, SCHEMA, pair.attached, owners=False)
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == ("pg_monitor",)
    finally:
        connection.close()
    assert compare(expected, actual) == []
