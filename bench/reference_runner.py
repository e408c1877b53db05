"""The earlier design, rebuilt for the benchmark: one psql process per file, then a second
connection that upserts the history row.

This follows database/migrate.py as DESIGN.md describes it (legacy history tables, pending =
versions without an `applied` row, `psql -v ON_ERROR_STOP=1 -f FILE`, then an upsert on a new
connection; `--status` prints each track). One deliberate difference: versions are the digit
prefix of any length (the earlier script wanted exactly three digits), so that sets of 1000 and
more files can be compared. It is a yardstick, not a product: no checksums, no lock.

Usage (connection from DATABASE_URL, psql from REFERENCE_PSQL or PATH):
    python bench/reference_runner.py ROOT [--status]
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import parse_dsn

TRACKS = (("lanconnect", "lanconnect_migration_versions"), ("client_specific", "client_migration_versions"))
NAME_RE = re.compile(r"^(\d+)_.*\.sql$")
DDL = """
CREATE SCHEMA IF NOT EXISTS langconnect;
CREATE TABLE IF NOT EXISTS {table} (
    version VARCHAR(255) NOT NULL PRIMARY KEY,
    applied_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    description TEXT,
    status TEXT NOT NULL DEFAULT 'applied',
    error_message TEXT
);
CREATE INDEX IF NOT EXISTS {applied_idx} ON {table} (applied_at);
CREATE INDEX IF NOT EXISTS {status_idx} ON {table} (status);
"""
UPSERT = """
INSERT INTO {table} (version, description, status, error_message) VALUES (%s, %s, %s, %s)
ON CONFLICT (version) DO UPDATE SET applied_at = CURRENT_TIMESTAMP, description = EXCLUDED.description,
    status = EXCLUDED.status, error_message = EXCLUDED.error_message
"""


def params() -> dict[str, str]:
    return dict(parse_dsn(os.environ["DATABASE_URL"]))


def get_connection():  # noqa: ANN201 - psycopg2 connection
    return psycopg2.connect(**params())


def files_of(root: Path, track: str) -> list[tuple[str, Path]]:
    found = []
    directory = root / "migrations" / track
    if directory.is_dir():
        for path in sorted(directory.iterdir()):
            match = NAME_RE.match(path.name)
            if match:
                found.append((match.group(1), path))
    return found


def ensure_tables(connection) -> None:  # noqa: ANN001
    with connection.cursor() as cursor:
        for _, table in TRACKS:
            cursor.execute(sql.SQL(DDL).format(
                table=sql.Identifier("langconnect", table),
                applied_idx=sql.Identifier(f"idx_{table}_applied_at"),
                status_idx=sql.Identifier(f"idx_{table}_status")))
    connection.commit()


def applied_versions(connection, table: str, statuses: tuple[str, ...] = ("applied",)) -> dict[str, str]:  # noqa: ANN001
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", (f"langconnect.{table}",))
        if cursor.fetchone()[0] is None:
            return {}
        cursor.execute(sql.SQL("SELECT version, status FROM {} WHERE status = ANY(%s)").format(
            sql.Identifier("langconnect", table)), (list(statuses),))
        return dict(cursor.fetchall())


def psql_command(path: Path) -> list[str]:
    p = params()
    psql = os.environ.get("REFERENCE_PSQL") or shutil.which("psql") or "psql"
    command = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", p.get("host", "localhost"),
               "-p", p.get("port", "5432"), "-U", p.get("user", "postgres"), "-d", p.get("dbname", "postgres"),
               "-f", str(path)]
    return command


def record(table: str, version: str, description: str, status: str, error: str | None) -> None:
    connection = get_connection()  # the second connection, as in the earlier script
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL(UPSERT).format(table=sql.Identifier("langconnect", table)),
                           (version, description, status, error))
        connection.commit()
    finally:
        connection.close()


def migrate(root: Path) -> int:
    connection = get_connection()
    ensure_tables(connection)
    environment = dict(os.environ)
    if params().get("password"):
        environment["PGPASSWORD"] = params()["password"]
    count = 0
    for track, table in TRACKS:
        done = applied_versions(connection, table)
        for version, path in files_of(root, track):
            if version in done:
                continue
            result = subprocess.run(psql_command(path), env=environment, capture_output=True, text=True)
            if result.returncode != 0:
                record(table, version, f"Failed {path.name}", "failed", result.stderr.strip())
                print(f"failed: {track} {path.name}: {result.stderr.strip()}", file=sys.stderr)
                return 1
            record(table, version, f"Applied {path.name}", "applied", None)
            count += 1
            print(f"applied {track} {path.name}")
    connection.close()
    print(f"Applied {count} migration(s)." if count else "No pending migrations.")
    return 0


def status(root: Path) -> int:
    connection = get_connection()
    for track, table in TRACKS:
        rows = applied_versions(connection, table, ("applied", "failed"))
        print(f"{track}:")
        for version, path in files_of(root, track):
            print(f"  {version}  {path.name}  {rows.get(version, 'pending')}")
    connection.close()
    return 0


if __name__ == "__main__":
    root = Path(sys.argv[1])
    sys.exit(status(root) if "--status" in sys.argv[2:] else migrate(root))
