"""The physical floor for applying files: one psycopg2 connection, and per file one round trip
`BEGIN; <file>; INSERT history row; COMMIT`. No parsing, no checksums, no lock, no report.

Nothing real can be faster while keeping one transaction (and one commit) per migration, so the
tool's apply time is compared against this process, started the same way (whole process).

Usage (connection from DATABASE_URL):
    python bench/floor.py ROOT            apply pending files
    python bench/floor.py ROOT --status   print every file with applied/pending
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import psycopg2

TRACKS = (("lanconnect", "floor_lanconnect"), ("client_specific", "floor_client"))
NAME_RE = re.compile(r"^(\d+)_.*\.sql$")


def files_of(root: Path, track: str) -> list[tuple[str, Path]]:
    directory = root / "migrations" / track
    if not directory.is_dir():
        return []
    return [(m.group(1), p) for p in sorted(directory.iterdir()) if (m := NAME_RE.match(p.name))]


def main(root: Path, show_status: bool) -> int:
    connection = psycopg2.connect(os.environ["DATABASE_URL"])
    connection.autocommit = True
    cursor = connection.cursor()
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
            elif version not in applied:
                cursor.execute("BEGIN;\n" + path.read_text() + f"\n;INSERT INTO langconnect.{table} (version) "
                               f"VALUES ('{version}');\nCOMMIT")
    connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), "--status" in sys.argv[2:]))
