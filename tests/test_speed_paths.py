"""The faster paths of issue 16 keep what the slower ones promised (bench/RESULTS.md says what each saved).

- Files are split and classified from pglast's JSON, not its Python objects: the same statements,
  places and reasons, also where characters take more than one byte; lint still gets the objects.
- The line index and the plain-text looks before a pattern change no answer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Database, Project

from migrate.files.psqlscan import scan_psql
from migrate.files.sqlfiles import MigrationFile, checksum_of
from migrate.files.statements import _json_statements, allowed_schemas, locate, parse_file, without_tree


def _file(text: str, name: str = "001_x.sql") -> MigrationFile:
    data = text.encode()
    return MigrationFile("lanconnect", "001", 1, "x", Path("/p/migrations/lanconnect"), name, text, checksum_of(data))


# --- the parse ---------------------------------------------------------------------------------------------------

def test_statements_after_multibyte_characters_keep_their_text_line_and_column() -> None:
    text = ("-- café ☕ 😀\nSELECT 'é';\n  CREATE INDEX CONCURRENTLY \"ünï\" ON \"tä\" (a);\n"
            "DO $$ BEGIN RAISE NOTICE 'ö'; END $$;\nCREATE FUNCTION fé() RETURNS int LANGUAGE plpgsql AS $b$\n"
            "BEGIN RETURN 1; END $b$;\n")
    script = parse_file(_file(text), Path("/p"))
    found = [(s.index, s.text, s.line, s.column, s.no_transaction, s.concurrent_index, s.body_line, s.body_of)
             for s in script.statements]
    assert found == [
        (1, "SELECT 'é'", 2, 1, None, None, None, None),
        (2, 'CREATE INDEX CONCURRENTLY "ünï" ON "tä" (a)', 3, 3, "CREATE INDEX CONCURRENTLY", ('"tä"', "ünï"), None,
         None),
        (3, "DO $$ BEGIN RAISE NOTICE 'ö'; END $$", 4, 1, None, None, 4, "inline_code_block"),
        (4, "CREATE FUNCTION fé() RETURNS int LANGUAGE plpgsql AS $b$\nBEGIN RETURN 1; END $b$", 5, 1, None, None,
         5, "fé"),
    ]
    for statement in script.statements:
        assert text[statement.offset:].startswith(statement.text)


def test_a_json_document_written_another_way_is_decoded_whole_with_the_same_result() -> None:
    from pglast import parser

    document = parser.parse_sql_json("SELECT 1; CREATE INDEX CONCURRENTLY i ON t (a); DO $$ BEGIN NULL; END $$")
    reformatted = json.dumps(json.loads(document), indent=1)
    assert _json_statements(document) == _json_statements(reformatted)
    assert [kind for kind, *_ in _json_statements(document)] == ["SelectStmt", "IndexStmt", "DoStmt"]


def test_lint_gets_pglast_objects_parsed_on_first_use_and_dropped_with_the_copy() -> None:
    script = parse_file(_file("SELECT 1;\nCREATE TABLE t (id int);\n"), Path("/p"))
    assert "raws" not in script.__dict__  # nothing built until asked
    raws = script.raws
    assert raws is not None and [type(raw.stmt).__name__ for raw in raws] == ["SelectStmt", "CreateStmt"]
    assert "raws" not in without_tree(script).__dict__
    assert script.document is not None and without_tree(script).document is None  # the parse's JSON, reused once
    psql_file = parse_file(_file("\\set x 1\nSELECT :x;\n"), Path("/p"))
    assert psql_file.raws is None


def test_the_line_index_answers_for_each_text_even_of_the_same_length() -> None:
    first, second = "a\nbc\nd", "ab\nc\nd"
    assert [locate(first, offset) for offset in range(len(first))] == [
        (1, 1), (1, 2), (2, 1), (2, 2), (2, 3), (3, 1)]
    assert [locate(second, offset) for offset in range(len(second))] == [
        (1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (3, 1)]
    assert locate(first, 5) == (3, 1)


def test_markers_and_psql_text_are_found_in_any_case_and_beside_any_character() -> None:
    for text in ("-- MIGRATE:NO-TRANSACTION\nSELECT 1;\n", "-- ½\n-- migrate:no-transaction\nSELECT 1;\n"):
        assert parse_file(_file(text), Path("/p")).no_transaction == f"marker {text.splitlines()[-2].strip()!r}"
    for text in ("COPY t FROM STDIN;\n1\n\\.\n", "-- ½\nCOPY t FROM Stdin;\n1\n\\.\n"):
        assert scan_psql(text).copies
    assert not scan_psql("SELECT 'stdin';\n").needs_psql
    assert allowed_schemas("-- é\n-- MIGRATE:ALLOW-SCHEMA storage\n") == {"storage"}


# --- statements sent several to a message (a transactional file's all but its last) -------------------------------

def test_statements_are_grouped_by_count_and_size_with_a_long_one_alone() -> None:
    from migrate.apply.runner import BATCH_CHARS, BATCH_STATEMENTS, batches

    text = "".join(f"SELECT {n};\n" for n in range(1, BATCH_STATEMENTS + 3))
    text += f"SELECT '{'x' * BATCH_CHARS}';\nSELECT 0;\n"
    statements = list(parse_file(_file(text), Path("/p")).statements)
    groups = batches(statements)
    assert [len(group) for group in groups] == [BATCH_STATEMENTS, 2, 1, 1]
    assert [s for group in groups for s in group] == statements


def test_a_file_runs_in_few_messages_and_its_notices_print_once_in_order(project: Project, db: Database) -> None:
    body = "".join(f"DO $$ BEGIN RAISE NOTICE 'step {n}'; END $$;\n" for n in range(1, 6))
    project.write("lanconnect", "001_steps.sql", "CREATE TABLE seen (query text);\n" + body
                  + "INSERT INTO seen SELECT current_query();\nSELECT 1;\n")
    result = project.run("migrate")
    assert result.code == 0, result.err
    notices = [line for line in result.err.splitlines() if "NOTICE" in line]
    assert notices == [f"migrate: migrations/lanconnect/001_steps.sql: NOTICE:  step {n}" for n in range(1, 6)]
    # the INSERT shared its message with the statements before it: this is what the speed comes from
    assert db.query("SELECT query LIKE 'BEGIN;%%step 5%%current_query()%%' FROM seen") == [(True,)]
    assert db.query("SELECT notices FROM langconnect.migration_attempts") == [
        ("\n".join(f"NOTICE:  step {n}" for n in range(1, 6)),)]


def test_a_failure_inside_a_message_names_its_statement_and_prints_each_notice_once(
        project: Project, db: Database) -> None:
    project.write("lanconnect", "001_ok.sql", "CREATE TABLE kept (id int);\n")
    project.write("lanconnect", "002_fails.sql",
                  "CREATE TABLE gone (id int);\n"
                  "DO $$ BEGIN RAISE NOTICE 'before'; END $$;\n"
                  "INSERT INTO gone VALUES (1);\n"
                  "SELECT 1 / (SELECT count(*) - 1 FROM gone);\n"  # division by zero: an error without a position
                  "DO $$ BEGIN RAISE NOTICE 'after'; END $$;\n"
                  "SELECT 2;\n")
    result = project.run("migrate")
    assert result.code == 1
    assert [line for line in result.err.splitlines() if "NOTICE" in line] == [
        "migrate: migrations/lanconnect/002_fails.sql: NOTICE:  before"]
    error = result.err.strip().splitlines()[-1]
    assert error.startswith("migrate: error: migrations/lanconnect/002_fails.sql:4:1: ERROR 22012: division by zero; "
                            "lanconnect version 002 failed at statement 4, rolled back"), error
    assert db.history("lanconnect") == [("001", "applied"), ("002", "failed")]
    assert db.tables("public") == ["kept"]
    assert db.query("SELECT outcome, statement_number, line, notices FROM langconnect.migration_attempts "
                    "WHERE version = '002'") == [("failed", 4, 4, "NOTICE:  before")]


def test_an_error_with_a_position_inside_a_message_names_its_line_and_column(project: Project) -> None:
    project.write("lanconnect", "001_missing.sql", "CREATE TABLE a (id int);\nCREATE TABLE b (id int);\n"
                                                   "INSERT INTO a SELECT id FROM  nowhere;\nSELECT 1;\n")
    result = project.run("migrate")
    assert result.code == 1
    assert result.err.strip().splitlines()[-1].startswith(
        'migrate: error: migrations/lanconnect/001_missing.sql:3:31: ERROR 42P01: relation "nowhere" does not exist')


def test_a_file_that_changes_how_strings_are_lexed_is_sent_statement_by_statement(project: Project,
                                                                                 db: Database) -> None:
    # a message is lexed whole before it runs: the SET must take effect before the next statement is read
    project.write("lanconnect", "001_old_dump.sql", "SET standard_conforming_strings = off;\n"
                                                    "CREATE TABLE s AS SELECT 'a\\\\b'::text AS v;\nSELECT 1;\n")
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert db.query("SELECT v FROM s") == [("a\\b",)]


# --- lint's tree, read lazily from pglast's JSON (files/tree.py) ------------------------------------------------

TRICKY = [
    "SELECT 0, NULL, 1.5, true, false, 'x', B'101', X'1F', -1, 2147483648, 1e10, $1, ARRAY[1,2], '{}'::int[], E'\\n'",
    "CREATE TABLE é (\"ü\" int DEFAULT 0, b text COLLATE \"C\", CHECK (\"ü\" > 0)) ; SELECT 'ünï', \"ü\" FROM é; "
    "-- 😀\nSELECT 1",
    "CREATE FOREIGN TABLE ft (a int) SERVER s OPTIONS (table_name 't')",
    "VALUES (1, 'a'), (2, NULL)",
    "INSERT INTO t (a, b) VALUES (1, DEFAULT) ON CONFLICT (a) DO UPDATE SET b = EXCLUDED.b WHERE t.a > 0 RETURNING *",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT * FROM r",
    "ALTER TABLE ONLY s.t ADD COLUMN IF NOT EXISTS c int NOT NULL DEFAULT 0, DROP CONSTRAINT IF EXISTS k, "
    "ALTER COLUMN d TYPE bigint USING d::bigint, ALTER COLUMN e SET DEFAULT now()",
    "CREATE OR REPLACE FUNCTION f(a int, OUT b text, VARIADIC c int[] DEFAULT '{}') RETURNS SETOF record "
    "LANGUAGE sql IMMUTABLE AS 'select 1'",
    "CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$",
    "GRANT SELECT (a, b), UPDATE ON TABLE t TO r WITH GRANT OPTION; REVOKE ALL ON SCHEMA s FROM PUBLIC CASCADE",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t USING gin (to_tsvector('english', b)) INCLUDE (c) "
    "WHERE a IS NOT NULL",
    "CREATE TYPE mood AS ENUM ('sad', 'ok'); ALTER TYPE mood ADD VALUE IF NOT EXISTS 'happy' BEFORE 'ok'",
    "CREATE POLICY p ON t AS RESTRICTIVE FOR ALL TO authenticated USING (auth.uid() = owner) WITH CHECK (true)",
    "CREATE TRIGGER tr BEFORE INSERT OR UPDATE OF a ON t FOR EACH ROW WHEN (NEW.a IS DISTINCT FROM OLD.a) "
    "EXECUTE FUNCTION f()",
    "SELECT a FROM t WHERE b IN (1, 2) AND c BETWEEN 1 AND 2 OR d LIKE 'x%' ORDER BY 1 DESC NULLS LAST LIMIT 10 "
    "OFFSET 5 FOR UPDATE SKIP LOCKED",
    "COMMENT ON COLUMN t.a IS 'é'; COMMENT ON FUNCTION f(int) IS NULL",
    "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'r') THEN CREATE ROLE r; END IF; END $$",
    "CREATE MATERIALIZED VIEW IF NOT EXISTS mv AS SELECT count(*) FILTER (WHERE a > 0) OVER (PARTITION BY b) "
    "FROM t WITH NO DATA",
    "CREATE TABLE p (a int) PARTITION BY RANGE (a); CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (MINVALUE) TO (10)",
    "DROP FUNCTION IF EXISTS f(int, text), g() CASCADE; DROP TABLE IF EXISTS a, b.c RESTRICT",
    "CREATE SEQUENCE IF NOT EXISTS s AS bigint START 1 INCREMENT BY 2 CACHE 10 OWNED BY t.a",
    "SET LOCAL search_path TO a, \"B\", public; RESET ALL; SET TIME ZONE 'UTC'; SET ROLE NONE",
    "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions VERSION '1.3' CASCADE",
    "ALTER DEFAULT PRIVILEGES IN SCHEMA s GRANT SELECT ON TABLES TO r",
    "CREATE DOMAIN d AS int CHECK (VALUE > 0) NOT NULL; CREATE TYPE c AS (a int, b text); "
    "CREATE TYPE r AS RANGE (subtype = int)",
    "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN UPDATE SET b = s.b WHEN NOT MATCHED THEN INSERT "
    "VALUES (s.a, s.b)",
    "SELECT xmlelement(name foo, 1), json_object('a': 1), CAST(1 AS numeric(10, 2)), "
    "interval '1 day' hour to minute, t.* FROM t",
    "CREATE TABLE t2 (LIKE t INCLUDING ALL, id int GENERATED ALWAYS AS IDENTITY (START 5) PRIMARY KEY, "
    "g int GENERATED ALWAYS AS (id * 2) STORED, EXCLUDE USING gist (a WITH =))",
    "CREATE TEMP TABLE tt ON COMMIT DROP AS SELECT 1 AS a; CREATE UNLOGGED TABLE u (a int)",
    "  \n-- only a comment then a statement\nSELECT 'x'  ",
    "ALTER TABLE t RENAME COLUMN a TO b; ALTER TABLE t SET SCHEMA s; ALTER TABLE t OWNER TO r; "
    "ALTER FUNCTION f() SECURITY DEFINER",
    "CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING; CREATE VIEW v WITH (security_invoker = true) AS SELECT 1 "
    "WITH LOCAL CHECK OPTION",
    "TRUNCATE a, b RESTART IDENTITY; DELETE FROM t USING u WHERE t.a = u.a; UPDATE t SET (a, b) = (SELECT 1, 2) FROM u",
    "CREATE STATISTICS st (dependencies) ON a, b FROM t; CLUSTER t USING i; ANALYZE t (a); VACUUM (VERBOSE) t",
    "LOCK TABLE t IN ACCESS EXCLUSIVE MODE NOWAIT; NOTIFY ch, 'x'; LISTEN ch; PREPARE q (int) AS SELECT $1; "
    "EXECUTE q(1)",
]


def _same_tree(ours: object, pglast_node: object, path: str) -> None:
    """Every attribute of every node as pglast gives it: class name, value and type (False is not 0, nor None)."""
    from pglast import ast

    if isinstance(pglast_node, ast.Node):
        assert type(ours).__name__ == type(pglast_node).__name__, path
        for attribute in pglast_node:
            _same_tree(getattr(ours, attribute), getattr(pglast_node, attribute), f"{path}.{attribute}")
    elif isinstance(pglast_node, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(pglast_node), path
        for index, (mine, theirs) in enumerate(zip(ours, pglast_node, strict=True)):
            _same_tree(mine, theirs, f"{path}[{index}]")
    else:
        assert type(ours) is type(pglast_node) and ours == pglast_node, (path, ours, pglast_node)


def test_the_lazy_tree_is_pglast_s_tree_attribute_for_attribute() -> None:
    import sys

    from conftest import REPO
    from pglast import parser

    from migrate.files.tree import raw_statements

    sys.path.insert(0, str(REPO / "bench"))
    from realistic import generate

    texts = TRICKY + [generated.text for generated in generate(24) if not generated.psql]
    count = 0
    for text in texts:
        theirs = parser.parse_sql(text)
        _same_tree(raw_statements(text), theirs, repr(text[:40]))
        count += len(theirs)
    assert count > 1500


def test_lint_finds_the_same_on_the_lazy_tree_as_on_pglast_s_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    from pglast import parser

    from migrate.checks.lint_rules import FileLinter
    from migrate.files.tree import raw_statements
    from migrate.settings import LintOptions

    text = ";\n".join(TRICKY) + ";\nCREATE TABLE auth.users2 (id int);\nCREATE INDEX i2 ON t (a);\n"
    findings = []
    for build in (raw_statements, parser.parse_sql):
        monkeypatch.setattr("migrate.files.tree.raw_statements", build)  # DO bodies go the same way
        linter = FileLinter(LintOptions(), "app", "x.sql", text, set())
        for raw in build(text):
            linter.check(raw.stmt, lambda offset: (0, offset or 0))
        findings.append([f for _, f in linter.findings])
    assert findings[0] == findings[1] and len(findings[0]) > 10


# --- environment files read without python-dotenv when every line is plain -----------------------------------------

@pytest.mark.parametrize("text", [
    "DATABASE_URL=postgresql://postgres@127.0.0.1:5432/app\nMAX_WAIT_TIME=60\n",
    "# a comment\n\n  # indented comment\nexport MIGRATE_SCHEMA=app\nEMPTY=\nREF=${OTHER:-x}/y\nA=b=c\n",
    "KEY=value   \nKEY=second\n\tTAB=1\n",
    "URL=postgresql://u:p%40ss@host/db?sslmode=require&x=1\n",
    "KEY=\"quoted value\"\n", "KEY='single'\n", "KEY=a # comment\n", "KEY=a#b\n", "KEY=a\\nb\n",
    "KEY=with space\n", "KEY\n", "bad line\n", "\ufeffKEY=bom\n", "KEY=crlf\r\nOTHER=2\r\n", "KEY=é\n",
    "KEY=\"multi\nline\"\n", "export KEY\n", "K.E.Y=dotted\n", "  KEY  =  spaced  \n", "",
])
def test_an_environment_file_reads_as_python_dotenv_reads_it(tmp_path: Path, text: str) -> None:
    from dotenv import dotenv_values

    from migrate.settings import read_dotenv

    path = tmp_path / "local.env"
    path.write_text(text, encoding="utf-8", newline="")
    assert read_dotenv(path) == dotenv_values(path, interpolate=False)


def test_status_times_are_written_as_strftime_writes_them() -> None:
    import datetime

    from migrate.report.text import _when

    utc, india = datetime.UTC, datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    for value in (datetime.datetime(2026, 1, 2, 3, 4, 5), datetime.datetime(2026, 12, 31, 23, 59, 59, 999999),
                  datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=utc), datetime.datetime(1999, 1, 2, 3, 4, 5, 7, india),
                  datetime.datetime(999, 1, 2, 3, 4, 5), datetime.datetime(9999, 12, 31)):
        assert _when(value) == value.strftime("%Y-%m-%d %H:%M:%S")
    assert _when(None) == ""
