"""The faster paths of issue 16 keep what the slower ones promised (bench/RESULTS.md says what each saved).

- Files are split and classified from pglast's JSON, not its Python objects: the same statements,
  places and reasons, also where characters take more than one byte; lint still gets the objects.
- The line index and the plain-text looks before a pattern change no answer.
"""

from __future__ import annotations

import json
from pathlib import Path

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
