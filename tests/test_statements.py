"""Migration files as text, without a server: the file's own text (CRLF kept), psql meta-commands
found where psql finds them, PL/pgSQL bodies checked before anything runs, and PostgreSQL's
CONTEXT mapped back to a file line.

These pin files/sqlfiles.py and files/statements.py (issue 12, cases 10, 11, 12, 19 and 20).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.checks.lint import lint_file, read_any_file
from migrate.files.psqlscan import scan_psql
from migrate.files.sqlfiles import BOM, MigrationFile, checksum_of, find_migration_versions
from migrate.files.statements import FileRefused, Statement, context_location, parse_file, sql_for_pglast
from migrate.settings import Settings
from migrate.tracks import build_tracks

ROOT = Path("/project")


def _file(text: str, name: str = "001_x.sql") -> MigrationFile:
    version, _, rest = name.partition("_")
    return MigrationFile("lanconnect", version, int(version), rest[:-4], ROOT / "migrations" / "lanconnect", name,
                         text, checksum_of(text.encode()))


# --- case 12: the file's own text --------------------------------------------------------------------------------

def test_a_files_text_keeps_crlf_and_loses_only_its_bom(tmp_path: Path) -> None:
    track = build_tracks(tmp_path / "migrations")[0]
    track.directory.mkdir(parents=True)
    (track.directory / "001_crlf.sql").write_bytes(BOM + b"SELECT 'a\r\nb';\r\n")
    (track.directory / "002_lf.sql").write_bytes(b"SELECT 'a\nb';\n")
    crlf, lf = (version.files[0] for version in find_migration_versions(track, tmp_path))
    assert crlf.text == "SELECT 'a\r\nb';\r\n"
    assert lf.text == "SELECT 'a\nb';\n"
    assert crlf.checksum == lf.checksum == checksum_of(b"SELECT 'a\nb';\n")  # the checksum normalises


def test_statements_of_a_crlf_file_keep_their_text_line_and_column() -> None:
    script = parse_file(_file("-- header\r\nSELECT 'a\r\nb';\r\n\r\n  DO $$\r\nBEGIN COMMIT; END\r\n$$;\r\n"), ROOT)
    assert [(s.index, s.line, s.column, s.text) for s in script.statements] == [
        (1, 2, 1, "SELECT 'a\r\nb'"), (2, 5, 3, "DO $$\r\nBEGIN COMMIT; END\r\n$$")]
    assert script.mode == "no transaction: DO block with COMMIT (statement 2, line 5)"


def _settings(root: Path = ROOT) -> Settings:
    return Settings(env_name="test", root=root, env_file=root / "envs" / "test.env",  # type: ignore[call-arg]
                    migrations_dir=root / "migrations")


def test_lint_reads_a_crlf_file_as_written_and_places_findings(tmp_path: Path) -> None:
    path = tmp_path / "004_crlf.sql"
    path.write_bytes(BOM + b"SET search_path = langconnect, public;\r\n"
                     b"-- migrate:lint-ignore idempotent-create-schema\r\n"
                     b"CREATE SCHEMA s;\r\n"
                     b"INSERT INTO t VALUES ('x\r\ny');\r\n"
                     b"  CREATE TABLE langconnect.t (id int);\r\n")
    migration_file = read_any_file(path, tmp_path)
    assert migration_file.text.startswith("SET search_path = langconnect, public;\r\n")
    findings = [(f.line, f.column, f.rule) for f in lint_file(_settings(tmp_path), migration_file)]
    assert findings == [(6, 16, "idempotent-create-table")]


# --- cases 11 and 19: psql meta-commands where psql sees them -----------------------------------------------------

PLAIN_WITH_BACKSLASHES = {
    "standard string": "INSERT INTO t VALUES ('first\n\\set x 1\nlast');\n",
    "doubled quote": "INSERT INTO t VALUES ('it''s\n\\i x.sql');\n",
    "escape string": "INSERT INTO t VALUES (E'it\\'s\n\\i x.sql\\\\');\n",
    "dollar quote": "INSERT INTO t VALUES ($body$a\n\\set x 1\n$body$);\n",
    "nested block comment": "/* outer /* inner */\n\\i x.sql\n*/ SELECT 1;\n",
    "line comment": "SELECT 1; -- run \\gexec later\n",
    "quoted identifier": 'CREATE TABLE "odd\\name" (id int);\n',
    "copy in a string": "SELECT 'COPY t FROM stdin;';\n",
}


@pytest.mark.parametrize("kind", sorted(PLAIN_WITH_BACKSLASHES))
def test_a_backslash_psql_would_not_see_leaves_a_plain_file(kind: str) -> None:
    script = parse_file(_file(PLAIN_WITH_BACKSLASHES[kind]), ROOT)
    assert script.needs_psql is None
    assert script.mode == "transaction"
    assert script.statements  # parsed and split by pglast, so lint and the builtin executor take it


PSQL_FILES = {
    "meta-command line": ("SELECT 1;\n  \\set x 1\n", "psql meta-command \\set on line 2"),
    "query sent by \\gset": ("SELECT 1 AS one \\gset\n", "psql meta-command \\gset on line 1"),
    "after a statement on its line": ("SELECT 1; \\echo done\n", "psql meta-command \\echo on line 1"),
    "after a string": ("SELECT 'a\\b'; \\echo done\n", "psql meta-command \\echo on line 1"),
    "after an identifier holding $": ("SELECT 1 AS a$b$;\n\\echo x\n", "psql meta-command \\echo on line 2"),
    "after a closed dollar quote": ("DO $$ BEGIN END $$;\n\\echo x\n", "psql meta-command \\echo on line 2"),
    "COPY after a comment, over lines": ("-- load\nCOPY t (a)\n  FROM stdin;\n1\n\\.\nSELECT 1;\n",
                                         "COPY ... FROM stdin on line 2"),
}


@pytest.mark.parametrize("kind", sorted(PSQL_FILES))
def test_what_psql_would_run_as_a_meta_command_makes_a_psql_file(kind: str) -> None:
    text, reason = PSQL_FILES[kind]
    assert parse_file(_file(text), ROOT).needs_psql == reason


def test_copy_data_and_its_backslashes_are_data_not_meta_commands() -> None:
    text = "\\copy t from stdin\n1\t\\N\n2\t\\\\x\n\\.\nSELECT :'label', ':not_a_variable', :n::int;\n"
    psql = scan_psql(text)
    assert [meta.name for meta in psql.meta_commands] == ["copy"]
    assert [line.strip() for line in sql_for_pglast(text, psql).split("\n")] == [
        "", "", "", "", "SELECT 'label', ':not_a_variable', NULL::int;", ""]


def test_a_psql_files_sql_keeps_its_lines_for_classification() -> None:
    text = "\\set n 2\nCOPY t FROM stdin;\n1\n\\.\nBEGIN;\nSELECT :n \\gexec\nCOMMIT;\n"
    script = parse_file(_file(text), ROOT)
    assert script.mode == "psql, no transaction: manages its own transactions (statement 1, line 5) " \
                          "(psql meta-command \\set on line 1)"
    assert sql_for_pglast(text, scan_psql(text)).split("\n")[4:7] == ["BEGIN;", "SELECT NULL ;     ", "COMMIT;"]


LEAVING = {
    "\\c other": "psql meta-command \\c connects to another database",
    "\\connect other": "psql meta-command \\connect connects to another database",
    "\\! rm -rf /tmp/x": "psql meta-command \\! runs a shell command",
    "\\o | mail ops": "psql meta-command \\o pipes output to a program",
    "SELECT 1 \\g |cat": "psql meta-command \\g pipes output to a program",
    "\\copy t to program 'gzip > t.gz'": "psql meta-command \\copy runs a program",
    "\\e": "psql meta-command \\e starts an editor",
}


@pytest.mark.parametrize("line", sorted(LEAVING))
def test_meta_commands_that_leave_the_target_are_refused_with_their_place(line: str) -> None:
    text = "CREATE TABLE IF NOT EXISTS here (id int);\n\n  " + line + "\nCREATE TABLE IF NOT EXISTS there (id int);\n"
    with pytest.raises(FileRefused) as refused:
        parse_file(_file(text), ROOT)
    column = 3 + line.index("\\")
    assert refused.value.message.startswith(f"migrations/lanconnect/001_x.sql:3:{column}: {LEAVING[line]}")
    assert refused.value.message.endswith("(nothing was applied)")
    assert refused.value.exit_code == 4


@pytest.mark.parametrize("text", ["\\o out.txt\nSELECT 1;\n", "SELECT '\n\\c elsewhere\n';\n",
                                  "SELECT 1; -- \\c elsewhere\n", "SELECT 1 \\g result.txt\n"])
def test_meta_commands_that_stay_on_the_target_are_not_refused(text: str) -> None:
    parse_file(_file(text), ROOT)


def test_lint_reports_a_refused_meta_command_at_its_place(tmp_path: Path) -> None:
    path = tmp_path / "004_elsewhere.sql"
    path.write_text("\\set label 'x'\nSELECT 1;\n\\connect other\n")
    [finding] = lint_file(_settings(tmp_path), read_any_file(path, tmp_path))
    assert finding.format().startswith("004_elsewhere.sql:3:1 psql-meta-command-refused error: psql meta-command "
                                       "\\connect connects to another database")


# --- case 10: PL/pgSQL syntax errors refused before anything runs ----------------------------------------------

def _refusal(text: str) -> FileRefused:
    with pytest.raises(FileRefused) as refused:
        parse_file(_file(text), ROOT)
    return refused.value


def test_a_do_block_syntax_error_is_refused_at_its_line_and_column() -> None:
    refused = _refusal("SET search_path = langconnect, public;\nDO $$\nBEGIN\n  IF true THEN\n"
                       "    RAISE NOTICE 'checked';\n  END;\nEND\n$$;\n")
    assert refused.message == ('migrations/lanconnect/001_x.sql:6:6: PL/pgSQL error in the DO block that starts on '
                               'line 2: syntax error at or near ";"; fix the PL/pgSQL (nothing was applied)')
    assert (refused.rule, refused.exit_code) == ("plpgsql-syntax-error", 4)


def test_a_function_body_error_at_its_end_is_placed_on_its_last_written_line() -> None:
    refused = _refusal("SET search_path = langconnect, public;\n"
                       "CREATE OR REPLACE FUNCTION public.answer() RETURNS int LANGUAGE plpgsql AS $$\n"
                       "BEGIN\n  RETURN 42\nEND\n$$;\n")
    assert refused.message.startswith("migrations/lanconnect/001_x.sql:5:1: PL/pgSQL error in the body of function "
                                      "answer that starts on line 2: syntax error at end of input;")


@pytest.mark.parametrize(("body", "line", "column", "error"), [
    ("BEGIN\n  RAISE NOTICE '% and %', 1;\nEND", 4, 3, "too few parameters specified for RAISE"),
    ("BEGIN\n  PERFORM 1 +;\nEND", 4, 3, "syntax error at end of input"),
    ("<<outer>>\nBEGIN\n  NULL;\nEND inner", 6, 1, 'end label "inner" differs from block\'s label "outer"'),
    ("BEGIN\n  EXIT;\nEND", 4, 3, "EXIT cannot be used outside a loop, unless it has a label"),
    ("BEGIN\n  NULL;\nEXCEPTION WHEN no_such_thing THEN\n  NULL;\nEND", 5, 1,
     'unrecognized exception condition "no_such_thing"'),
    ("BEGIN\n  RAISE NOTICE 'oops;\n  NULL;\nEND", 4, 16, "unterminated quoted string at or near \"'oops;...\""),
])
def test_plpgsql_errors_postgresql_reports_whatever_the_catalog_holds(body: str, line: int, column: int,
                                                                     error: str) -> None:
    refused = _refusal(f"SELECT 1;\nDO $body$\n{body}\n$body$;\n")  # the body's first line is file line 3
    assert (refused.line, refused.column) == (line, column), refused.message
    assert refused.problem.endswith(f": {error}"), refused.message


@pytest.mark.parametrize("statement", [
    # pglast knows no catalog: it calls these wrong, PostgreSQL runs them
    "DO $$ DECLARE r langconnect.docs%ROWTYPE; BEGIN r.id := 1; END $$;",
    "DO $$ DECLARE r docs%ROWTYPE; BEGIN SELECT * INTO r FROM docs; GET DIAGNOSTICS r.id = ROW_COUNT; END $$;",
    "CREATE FUNCTION f() RETURNS SETOF langconnect.docs LANGUAGE plpgsql AS $$ BEGIN RETURN QUERY SELECT 1; END $$;",
    "CREATE FUNCTION f(VARIADIC a int[]) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN a[1]; END $$;",
    "CREATE FUNCTION f(OUT a int, INOUT b int) LANGUAGE plpgsql AS $$ BEGIN a := b; RETURN; END $$;",
    "CREATE FUNCTION t() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.x := 1; RETURN NEW; END $$;",
    "CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$;",
    # not PL/pgSQL, or the server's to judge (a variable only the catalog could resolve)
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
    "DO LANGUAGE plpython3u $$ this is not pl/pgsql $$;",
    "DO $$ BEGIN unknown_thing := 1; END $$;",
])
def test_bodies_pglast_cannot_judge_are_left_to_the_server(statement: str) -> None:
    parse_file(_file(statement + "\n"), ROOT)


def test_a_single_quoted_function_body_is_checked_too() -> None:
    refused = _refusal("CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql\n  AS 'BEGIN\n  RETURN 1\nEND';\n")
    assert (refused.line, refused.rule) == (4, "plpgsql-syntax-error")


def test_a_crlf_files_plpgsql_error_is_placed_on_its_line() -> None:
    refused = _refusal("SELECT 1;\r\nDO $$\r\nBEGIN\r\n  IF true THEN\r\n    NULL;\r\n  END;\r\nEND $$;\r\n")
    assert (refused.line, refused.column) == (6, 6)


def test_a_psql_files_plpgsql_error_is_refused_too() -> None:
    refused = _refusal("\\set n 1\nSELECT :n;\nDO $$\nBEGIN\n  IF true THEN NULL; END;\nEND $$;\n")
    assert (refused.line, refused.rule) == (5, "plpgsql-syntax-error")


def test_lint_reports_a_plpgsql_error_beside_the_files_other_findings(tmp_path: Path) -> None:
    path = tmp_path / "004_do.sql"
    path.write_text("SET search_path = langconnect, public;\nCREATE TABLE t (id int);\n"
                    "DO $$ BEGIN IF true THEN NULL; END; END $$;\n")
    findings = [(f.line, f.rule) for f in lint_file(_settings(tmp_path), read_any_file(path, tmp_path))]
    assert findings == [(2, "idempotent-create-table"), (3, "plpgsql-syntax-error")]


# --- case 20: a syntax error that quotes the rest of the file stays on one line --------------------------------

@pytest.mark.parametrize(("opening", "column", "problem"), [
    ("DO $$\nBEGIN\n", 4, 'unterminated dollar-quoted string at or near "$$..."'),
    ("SELECT 'never closed\n", 8, "unterminated quoted string at or near \"'never closed...\""),
    ("/* never closed\n", 1, 'unterminated /* comment at or near "/* never closed..."'),
])
def test_an_unterminated_quote_or_comment_is_reported_on_one_bounded_line(opening: str, column: int,
                                                                          problem: str) -> None:
    text = "SET search_path = langconnect, public;\n" + opening + "".join(
        f"  PERFORM {n};  -- step {n} of a long backfill\n" for n in range(1, 499))
    refused = _refusal(text)
    assert refused.message == f"migrations/lanconnect/001_x.sql:2:{column}: {problem}; fix the SQL " \
                              "(nothing was applied)"


def test_a_long_excerpt_is_cut_at_sixty_characters() -> None:
    refused = _refusal("SELECT 1;\nSELECT '" + "x" * 200 + "\n")
    assert refused.problem == "unterminated quoted string at or near \"'" + "x" * 59 + '..."'


# --- case 10, second half: PostgreSQL's CONTEXT mapped back to the file ----------------------------------------

DO_FILE = ("SET search_path = langconnect, public;\n"
           "DO $$\n"
           "BEGIN\n"
           "  PERFORM 1;\n"
           "    INSERT INTO public.nowhere VALUES (1);\n"  # body line 4, file line 5
           "END\n"
           "$$;\n")


def _statements(text: str) -> list[Statement]:
    return list(parse_file(_file(text), ROOT).statements)


def test_a_do_blocks_context_line_is_its_line_in_the_file() -> None:
    do = _statements(DO_FILE)[1]
    assert (do.body_line, do.body_of) == (2, "inline_code_block")
    assert context_location(do, "PL/pgSQL function inline_code_block line 4 at SQL statement") == (5, 5)


def test_the_outermost_do_frame_wins_over_a_called_functions_frame() -> None:
    do = _statements(DO_FILE)[1]
    context = ('PL/pgSQL function langconnect.helper(integer) line 3 at RAISE\nSQL statement "SELECT helper(3)"\n'
               "PL/pgSQL function inline_code_block line 3 at PERFORM")
    assert context_location(do, context) == (4, 3)


def test_a_do_block_whose_quote_opens_on_a_later_line() -> None:
    do = _statements("DO\n  $body$\n  BEGIN\n    RAISE EXCEPTION 'x';\n  END $body$;\n")[0]
    assert do.body_line == 2
    assert context_location(do, "PL/pgSQL function inline_code_block line 3 at RAISE") == (4, 5)


def test_a_crlf_do_block_maps_to_its_line() -> None:
    do = _statements(DO_FILE.replace("\n", "\r\n"))[1]
    assert context_location(do, "PL/pgSQL function inline_code_block line 4 at SQL statement") == (5, 5)


def test_a_functions_context_lines_map_into_its_body() -> None:
    text = ("SET check_function_bodies = off;\n"
            "CREATE OR REPLACE FUNCTION langconnect.f(n integer) RETURNS int LANGUAGE plpgsql\n"
            "AS $fn$\n"
            "DECLARE\n"
            "  x nosuchtype;\n"  # body line 3
            "BEGIN\n"
            "  RETURN n;\n"
            "END $fn$;\n")
    function = _statements(text)[1]
    assert (function.body_line, function.body_of) == (3, "f")
    assert context_location(function, 'compilation of PL/pgSQL function "f" near line 3') == (5, 3)
    assert context_location(function, "PL/pgSQL function langconnect.f(integer) line 5 at RETURN") == (7, 3)
    assert context_location(function, "PL/pgSQL function langconnect.other(integer) line 5 at RETURN") is None


@pytest.mark.parametrize("context", [None, "", "SQL statement \"SELECT 1\"", "PL/pgSQL function f() line 2 at RAISE"])
def test_no_location_without_a_frame_of_this_statements_body(context: str | None) -> None:
    assert context_location(_statements(DO_FILE)[1], context) is None


def test_a_statement_without_a_body_has_no_context_location() -> None:
    select = _statements(DO_FILE)[0]
    assert select.body_line is None
    assert context_location(select, "PL/pgSQL function inline_code_block line 4 at SQL statement") is None
