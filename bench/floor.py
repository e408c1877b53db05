"""The physical floor for applying files: one psycopg2 connection, and per file one round trip
`BEGIN; <file>; INSERT history row; COMMIT`. No parsing, no checksums, no lock, no report.

Nothing real can be faster while keeping one transaction (and one commit) per migration, so the
tool's apply time is compared against this process, started the same way (whole process).

Files that cannot run that way are run as the tool must run them, and no cheaper: ROOT/floor.json
(written by the benchmark for its realistic set) lists them with their statements, which run one by
one in autocommit before the history row (CREATE INDEX CONCURRENTLY refuses a transaction block),
or marks a file that needs psql (COPY ... FROM stdin, `\\set`): psql runs it in one transaction with
the history row as its last command. The floor never splits or parses a file itself.

Usage (connection from DATABASE_URL, psql from REFERENCE_PSQL or PATH):
    python bench/floor.py ROOT            apply pending files
    python bench/floor.py ROOT --status   print every file with applied/pending
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg2

TRACKS = (("lanconnect", "floor_lanconnect"), ("client_specific", "floor_client"))
NAME_RE = re.compile(r"^(\d+)_.*\.sql$")


def files_of(root: Path, track: str) -> list[tuple[str, Path]]:
    directory = root / "migrations" / track
    if not directory.is_dir():
        return []
    return [(m.group(1), p) for p in sorted(directory.iterdir()) if (m := NAME_RE.match(p.name))]


def run_with_psql(path: Path, record: str) -> None:
    """The file through psql in one transaction, its history row the transaction's last command."""
    psql = os.environ.get("REFERENCE_PSQL") or shutil.which("psql") or "psql"
    subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d",
                    os.environ["DATABASE_URL"], "-f", str(path), "-c", record], check=True,
                   stdout=subprocess.DEVNULL)


def main(root: Path, show_status: bool) -> int:
    connection = psycopg2.connect(os.environ["DATABASE_URL"])
    connection.autocommit = True
    cursor = connection.cursor()
    plan_file = root / "floor.json"
    plan: dict[str, dict[str, Any]] = json.loads(plan_file.read_text()) if plan_file.exists() else {}
    if not show_status:
        cursor.execute("CREATE SCHEMA IF NOT EXISTS langconnect; " + "; ".join(
            f"CREATE TABLE IF NOT EXISTS langconnect.{table} (version text PRIMARY KEY, "
            "applied_at timestamp DEFAULT CURRENT_TIMESTAMP)" for _, table in TRACKS))
    for track, table in TRACKS:
        cursor.execute("SELECT to_regclass(%s)", (f"langconnect.{table}",))
        applied: set[str] = set()
        if cursor.fetchone()[0] is not None:
            cursor.execute(f"SELECT version FROM langconnect.{table}")
            applied = {row[0] for row in cursor.fetchall()}
        for version, path in files_of(root, track):
            if show_status:
                print(version, path.name, "applied" if version in applied else "pending")
                continue
            if version in applied:
                continue
            record = f"INSERT INTO langconnect.{table} (version) VALUES ('{version}')"
            how = plan.get(f"migrations/{track}/{path.name}", {})
            if how.get("psql"):
                run_with_psql(path, record)
            elif "statements" in how:
                for statement in how["statements"]:
                    cursor.execute(statement)
                cursor.execute(record)
            else:
                cursor.execute("BEGIN;\n" + path.read_text() + f"\n;{record};\nCOMMIT")
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), "--status" in sys.argv[2:]))
