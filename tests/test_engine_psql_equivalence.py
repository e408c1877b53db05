"""Issue 12, "Equivalence with psql": the tool leaves a database exactly as psql per file would.

A set of tricky files is applied by `python -m migrate migrate` into one fresh database and by
`psql -X -v ON_ERROR_STOP=1 -f FILE` (one psql per file, as the earlier script did) into another
fresh database on the same server. The app objects' catalog and row contents must be identical
(the tool's own history tables aside).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from conftest import Database, Project, fresh_database
from engine_support import app_fingerprint, psql_or_skip, server_role, write_bytes


@pytest.fixture
def app_role(db: Database) -> Iterator[str]:
    with server_role(db) as name:
        yield name


def tricky_files(role: str) -> list[tuple[str, bytes]]:
    """(file name, exact bytes): each one something a shared session, a reset or a rewrite gets wrong."""
    files = [
        ("001_schema_and_temp.sql", """
CREATE SCHEMA IF NOT EXISTS langconnect;
SET search_path = langconnect, public;
CREATE TABLE IF NOT EXISTS documents (id int PRIMARY KEY, title text);
-- a temp table shadowing the real one, for this file only
CREATE TEMP TABLE documents (id int, title text);
INSERT INTO documents VALUES (100, 'temp only');
CREATE TEMP TABLE scratch (n int);
SELECT pg_advisory_lock(31337);
LISTEN equivalence_channel;
"""),
        ("002_seed.sql", """
SET search_path = langconnect, public;
INSERT INTO documents (id, title) VALUES (1, 'kept');
CREATE TEMP TABLE scratch (n int);
INSERT INTO scratch VALUES (1);
CREATE TABLE IF NOT EXISTS langconnect.observed (file text, what text, value text);
INSERT INTO langconnect.observed
SELECT '002', 'advisory locks held', count(*)::text FROM pg_locks
 WHERE locktype = 'advisory' AND classid = 0 AND objid = 31337 AND granted;
INSERT INTO langconnect.observed SELECT '002', 'listening', count(*)::text FROM pg_listening_channels();
"""),
        ("003_prepare.sql", """
PREPARE ins(int, text) AS INSERT INTO langconnect.documents VALUES ($1, $2);
EXECUTE ins(2, 'prepared in 003');
"""),
        ("004_prepare_again.sql", """
PREPARE ins(int, text) AS INSERT INTO langconnect.documents VALUES ($1, $2);
EXECUTE ins(3, 'prepared in 004');
"""),
        ("005_discard.sql", """
SET search_path = public;
DISCARD ALL;
CREATE TABLE IF NOT EXISTS langconnect.after_discard (n int);
INSERT INTO langconnect.after_discard VALUES (5);
"""),
        ("006_role.sql", f"""
GRANT USAGE, CREATE ON SCHEMA langconnect TO "{role}";
SET ROLE "{role}";
CREATE TABLE IF NOT EXISTS langconnect.owned_by_role (n int);
INSERT INTO langconnect.owned_by_role VALUES (6);
"""),
        ("007_after_role.sql", """
CREATE TABLE IF NOT EXISTS langconnect.owned_by_default (n int);
INSERT INTO langconnect.observed VALUES ('007', 'current_user is session_user',
                                         (current_user = session_user)::text);
"""),
        ("008_database_default.sql", """
DO $$
BEGIN
  EXECUTE format('ALTER DATABASE %I SET search_path = langconnect, public', current_database());
END
$$;
"""),
        ("009_settings.sql", """
CREATE TABLE IF NOT EXISTS settings (key text PRIMARY KEY, value text);
INSERT INTO settings VALUES ('search_path seen by 009', current_setting('search_path'));
"""),
        ("010_own_transaction.sql", """
BEGIN;
CREATE TABLE IF NOT EXISTS langconnect.audit (id int);
INSERT INTO langconnect.audit VALUES (1);
COMMIT;
"""),
        ("011_index.sql", """
CREATE INDEX CONCURRENTLY IF NOT EXISTS documents_title_idx ON langconnect.documents (title);
"""),
        ("012_psql_variables.sql", """
\\set greeting 'hello from psql'
INSERT INTO langconnect.settings VALUES ('greeting', :'greeting');
"""),
        ("013_notices.sql", """
DO $$ BEGIN RAISE NOTICE 'documents: %', (SELECT count(*) FROM langconnect.documents); END $$;
DO $$ BEGIN RAISE WARNING 'a warning an operator reads'; END $$;
INSERT INTO langconnect.settings VALUES ('noticed', 'yes');
"""),
        ("015_trailing_comment.sql",
         "INSERT INTO langconnect.settings VALUES ('trailing', 'no semicolon')\n-- the end of the file\n"),
        ("016_non_ascii.sql", """
INSERT INTO langconnect.settings VALUES ('unicode', 'naïve café ✅ 日本語 — ok');
"""),
        ("017_backslash_in_literal.sql",
         "INSERT INTO langconnect.settings VALUES ('backslash', 'line one\n\\not a meta-command\nline three');\n"),
    ]
    encoded = [(name, text.lstrip("\n").encode()) for name, text in files]
    crlf = (b"INSERT INTO langconnect.settings VALUES ('crlf', 'line one\r\nline two');\r\n"
            b"-- a CRLF comment\r\n")
    encoded.append(("014_crlf.sql", crlf))
    return sorted(encoded)


def test_the_tool_and_psql_per_file_leave_identical_databases(project: Project, db: Database, app_role: str) -> None:
    psql = psql_or_skip()
    files = tricky_files(app_role)
    for name, data in files:
        write_bytes(project, "lanconnect", name, data)
    result = project.run("migrate")
    assert result.code == 0, result.err
    assert len([line for line in result.out.splitlines() if line.startswith("[")]) == len(files)

    with fresh_database(db.server) as reference:
        for name, _data in files:
            path = project.root / "migrations" / "lanconnect" / name
            completed = subprocess.run(
                [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", reference.url, "-f", str(path)],
                capture_output=True, text=True, env=project.environ(), timeout=60)
            assert completed.returncode == 0, f"psql -f {name}: {completed.stderr}"
        expected = app_fingerprint(reference)
        # the reference is what the files mean: a few facts psql per file establishes
        assert expected["data"]["langconnect.documents"] == [
            '{"id":1,"title":"kept"}', '{"id":2,"title":"prepared in 003"}', '{"id":3,"title":"prepared in 004"}']
        assert "langconnect.settings" in expected["data"] and "public.settings" not in expected["data"]
    actual = app_fingerprint(db)
    for part in ("schemas", "relations", "functions", "settings"):
        assert actual[part] == expected[part], part
    assert sorted(actual["data"]) == sorted(expected["data"])
    for table in sorted(expected["data"]):
        assert actual["data"][table] == expected["data"][table], table
