"""What SQL reaches outside its schema, read from the text (no server): cluster-wide statements, the
roles it names and creates, the objects it attaches to the platform; and how a pg_dump of the platform
is cut into entries, leaving out what the migration files create themselves."""

from __future__ import annotations

from migrate.checks.reach import merge_all, reach_of_file, read_reach
from migrate.checks.shadow import leave_out, split_platform


def test_cluster_wide_statements_are_found_with_their_lines() -> None:
    reach = read_reach("""CREATE SCHEMA IF NOT EXISTS langconnect;
CREATE ROLE report_reader LOGIN PASSWORD 'x';
ALTER ROLE report_reader SET statement_timeout = '5s';
GRANT authenticated TO report_reader;
ALTER USER report_reader WITH NOLOGIN;
DROP ROLE IF EXISTS old_reader;
ALTER SYSTEM SET work_mem = '64MB';
CREATE DATABASE reports;
ALTER DATABASE postgres SET "app.settings.jwt_exp" = '3600';
CREATE TABLESPACE fast LOCATION '/ssd';
COMMENT ON ROLE report_reader IS 'reads reports';
CREATE USER MAPPING FOR CURRENT_USER SERVER reports_server;
GRANT SELECT ON langconnect.reports TO report_reader;
""")
    assert [str(statement) for statement in reach.cluster] == [
        "CREATE ROLE report_reader (line 2)", "ALTER ROLE report_reader SET (line 3)",
        "GRANT authenticated TO report_reader (line 4)", "ALTER ROLE report_reader (line 5)",
        "DROP ROLE old_reader (line 6)", "ALTER SYSTEM SET work_mem (line 7)", "CREATE DATABASE reports (line 8)",
        "ALTER DATABASE postgres SET (line 9)", "CREATE TABLESPACE fast (line 10)",
        "COMMENT ON ROLE report_reader (line 11)"]
    assert reach.roles_created == {"report_reader"}
    assert reach.roles_expected == {"authenticated", "old_reader"}


def test_do_blocks_are_read_and_dynamic_sql_is_searched_for_its_words() -> None:
    reach = read_reach("""DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
    CREATE ROLE anon NOLOGIN;
  END IF;
  EXECUTE format('ALTER ROLE %I SET search_path = %L', 'authenticator', 'app');
  CREATE TYPE langconnect.status AS ENUM ('a');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
""")
    assert [str(statement) for statement in reach.cluster] == [
        "CREATE ROLE anon in a DO block (line 1)", "EXECUTE of ALTER ROLE ... in a DO block (line 1)"]
    assert reach.roles_created == {"anon"}
    assert ("langconnect", "status") in reach.relations


def test_a_psql_file_is_read_without_its_meta_commands_and_an_unreadable_one_by_its_words() -> None:
    assert [str(s) for s in reach_of_file("\\set r reader\nCREATE ROLE reader;\nSELECT :'r';\n").cluster] == [
        "CREATE ROLE reader (line 2)"]
    unreadable = reach_of_file("\\set r reader\nCREATE ROLE :r;\n")  # `:r` is no SQL pglast can read
    assert [str(s) for s in unreadable.cluster] == ["CREATE ROLE (line 2)"]
    assert unreadable.readable is False


def test_roles_named_and_objects_attached_to_the_platform() -> None:
    reach = merge_all([read_reach("""SET search_path = langconnect, public;
CREATE TABLE documents (id int);
CREATE POLICY "Avatar images are public" ON storage.objects FOR SELECT TO anon USING (bucket_id = 'avatars');
CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users FOR EACH ROW EXECUTE FUNCTION handle_new_user();
CREATE OR REPLACE FUNCTION public.handle_new_user() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN RETURN NEW; END $f$;
ALTER TABLE documents OWNER TO app_owner;
ALTER DEFAULT PRIVILEGES FOR ROLE app_owner IN SCHEMA langconnect GRANT SELECT ON TABLES TO authenticated;
SET ROLE service_role;
"""), read_reach("RESET search_path; CREATE TABLE notes (id int); CREATE INDEX notes_idx ON notes (id);")])
    assert reach.roles_expected == {"anon", "app_owner", "authenticated", "service_role"}
    assert reach.attachments == {("storage", "objects", "Avatar images are public"),
                                 ("auth", "users", "on_auth_user_created")}
    assert reach.relations == {("langconnect", "documents"), ("public", "notes"), ("public", "notes_idx")}
    assert reach.routines == {("public", "handle_new_user")}
    assert reach.cluster == []


DUMP = """--
-- PostgreSQL database dump
--

\\restrict abc123

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: storage; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA storage;


--
-- Name: objects; Type: TABLE; Schema: storage; Owner: -
--

CREATE TABLE storage.objects (
    id uuid NOT NULL,
    bucket_id text
);


--
-- Name: objects Avatar images are public; Type: POLICY; Schema: storage; Owner: -
--

CREATE POLICY "Avatar images are public" ON storage.objects FOR SELECT USING ((bucket_id = 'avatars'::text));


--
-- Name: handle_new_user(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.handle_new_user() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN RETURN NEW; END; $$;


--
-- Name: FUNCTION handle_new_user(); Type: ACL; Schema: public; Owner: -
--

GRANT ALL ON FUNCTION public.handle_new_user() TO service_role;


--
-- Name: TABLE objects; Type: ACL; Schema: storage; Owner: -
--

GRANT ALL ON TABLE storage.objects TO anon;


--
-- Name: vector; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA extensions;


--
-- Name: EXTENSION vector; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON EXTENSION vector IS 'vector data type and ivfflat and hnsw access methods';


--
-- Name: app_changes; Type: PUBLICATION; Schema: -; Owner: -
--

CREATE PUBLICATION app_changes WITH (publish = 'insert, update, delete, truncate');


--
-- Name: app_changes notes; Type: PUBLICATION TABLE; Schema: public; Owner: -
--

ALTER PUBLICATION app_changes ADD TABLE ONLY public.notes;

\\unrestrict abc123
"""


def test_a_dump_is_cut_into_its_entries_and_what_the_files_create_is_left_out() -> None:
    preamble, entries = split_platform(DUMP)
    assert "SET statement_timeout = 0;" in preamble and "\\restrict" not in preamble
    assert [entry.label for entry in entries] == [
        "SCHEMA storage", "TABLE storage.objects", "POLICY storage.objects Avatar images are public",
        "FUNCTION public.handle_new_user()", "ACL ON FUNCTION public.handle_new_user()", "ACL ON TABLE storage.objects",
        "EXTENSION vector", "COMMENT EXTENSION vector", "PUBLICATION app_changes",
        "PUBLICATION TABLE public.app_changes notes"]
    files = read_reach("""CREATE POLICY "Avatar images are public" ON storage.objects FOR SELECT USING (true);
CREATE OR REPLACE FUNCTION public.handle_new_user() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE EXTENSION vector WITH SCHEMA extensions;
CREATE PUBLICATION app_changes FOR TABLE public.notes;
""")
    kept, left = leave_out(entries, files)
    assert left == ["POLICY storage.objects Avatar images are public", "FUNCTION public.handle_new_user()",
                    "ACL ON FUNCTION public.handle_new_user()", "EXTENSION vector", "COMMENT EXTENSION vector",
                    "PUBLICATION app_changes", "PUBLICATION TABLE public.app_changes notes"]
    assert [entry.label for entry in kept] == ["SCHEMA storage", "TABLE storage.objects",
                                               "ACL ON TABLE storage.objects"]
    # CREATE EXTENSION IF NOT EXISTS finds the platform's copy and does nothing: the copy keeps it
    kept, left = leave_out(entries, read_reach("CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA extensions;"))
    assert left == [] and len(kept) == len(entries)


def test_a_setup_file_without_dump_headers_is_one_entry_per_statement() -> None:
    preamble, entries = split_platform("CREATE SCHEMA auth;\n\nCREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql "
                                       "AS $$ SELECT NULL::uuid; $$;\nCREATE EXTENSION IF NOT EXISTS pgcrypto;\n")
    assert preamble == ""
    assert [(entry.line, entry.sql.split("(")[0]) for entry in entries] == [
        (1, "CREATE SCHEMA auth"), (3, "CREATE FUNCTION auth.uid"), (4, "CREATE EXTENSION IF NOT EXISTS pgcrypto")]
