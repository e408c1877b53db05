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
from migrate.files.statements import FileRefused, parse_file, sql_for_pglast
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
