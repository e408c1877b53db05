"""Migration files as text, without a server: the file's own text (CRLF kept), psql meta-commands
found where psql finds them, PL/pgSQL bodies checked before anything runs, and PostgreSQL's
CONTEXT mapped back to a file line.

These pin files/sqlfiles.py and files/statements.py (issue 12, cases 10, 11, 12, 19 and 20).
"""

from __future__ import annotations

from pathlib import Path

from migrate.checks.lint import lint_file, read_any_file
from migrate.files.sqlfiles import BOM, MigrationFile, checksum_of, find_migration_versions
from migrate.files.statements import parse_file
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
