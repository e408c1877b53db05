"""The history tables: create or upgrade them in place, read them, write their rows.

The tables keep the earlier script's names and columns (version, applied_at, description,
status, error_message) so databases it migrated keep working; newer columns are added with
ADD COLUMN IF NOT EXISTS, and only when one is missing, so a routine run takes no DDL lock.
Every identifier goes through psycopg2.sql.Identifier.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime
from typing import Any, Iterable, NamedTuple

from migrate import __version__
from migrate.tracks import Track

log = logging.getLogger("migrate")

LEGACY_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    version VARCHAR(255) NOT NULL PRIMARY KEY,
    applied_at TIMESTAMP WITHOUT TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    description TEXT,
    status TEXT NOT NULL DEFAULT 'applied',
    error_message TEXT
)
"""
ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("checksum", "TEXT"),
    ("filename", "TEXT"),
    ("execution_ms", "INTEGER"),
    ("applied_by", "TEXT"),
    ("tool_version", "TEXT"),
)


class HistoryRow(NamedTuple):
    """One row of a history table, whichever columns that table has."""

    track: str
    version: str
    status: str
    applied_at: datetime | None = None
    description: str | None = None
    error_message: str | None = None
    checksum: str | None = None
    filename: str | None = None
    execution_ms: int | None = None
    applied_by: str | None = None

    @property
    def number(self) -> int | None:
        return int(self.version) if self.version.isdigit() else None


def _table(schema: str, track: Track) -> Any:
    from psycopg2 import sql

    return sql.Identifier(schema, track.history_table)


def param_identifier(connection: Any, *names: str) -> Any:
    """A quoted name for a query that also takes %s parameters: its own `%` doubled, which
    psycopg2 would otherwise read as a placeholder (a schema named `app%s` broke the query)."""
    from psycopg2 import sql

    return sql.SQL(sql.Identifier(*names).as_string(connection).replace("%", "%%"))


def read_existing_columns(connection: Any, schema: str, tracks: Iterable[Track],
                          also: Iterable[str] = ()) -> dict[str, set[str]]:
    """For each history table (and table named in `also`) that exists: its column names."""
    names = [track.history_table for track in tracks] + list(also)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, array_agg(a.attname::text)
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind IN ('r', 'p')
             GROUP BY c.relname
            """,
            (schema, names),
        )
        return {name: set(columns) for name, columns in cursor.fetchall()}


def read_all_columns(connection: Any, schema: str, tracks: Iterable[Track]) -> dict[str, set[str]]:
    """The columns of every table this tool keeps (history tables and the attempt log) that exists."""
    from migrate.attempts import ATTEMPTS_TABLE

    return read_existing_columns(connection, schema, tracks, also=[ATTEMPTS_TABLE])


def ensure_history_tables(connection: Any, schema: str, tracks: list[Track],
                          existing: dict[str, set[str]] | None = None) -> list[str]:
    """Create the schema and tables, or add missing columns; returns what it changed.

    existing: read_all_columns as read under the run lock this session holds (saves a query).
    """
    from psycopg2 import sql

    from migrate.attempts import ATTEMPTS_TABLE, build_attempts_ddl

    # one catalog query; DDL (and its lock) only when something is missing
    if existing is None:
        existing = read_all_columns(connection, schema, tracks)
    wanted = {name for name, _ in ADDED_COLUMNS}
    todo = [t for t in tracks if t.history_table not in existing or wanted - existing[t.history_table]]
    attempts_ddl = None if ATTEMPTS_TABLE in existing else build_attempts_ddl(connection, schema)
    if not todo and attempts_ddl is None:
        return []
    changes: list[str] = []
    statements = [sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))]
    if attempts_ddl is not None:
        changes.append(f"created {schema}.{ATTEMPTS_TABLE}")
        statements.append(sql.SQL(attempts_ddl))
    for track in todo:
        table = _table(schema, track)
        if track.history_table not in existing:
            changes.append(f"created {schema}.{track.history_table}")
            statements.append(sql.SQL(LEGACY_DDL).format(table=table))
            for column in ("applied_at", "status"):
                statements.append(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
                    sql.Identifier(f"idx_{track.history_table}_{column}"), table, sql.Identifier(column)))
        else:
            missing = sorted(wanted - existing[track.history_table])
            changes.append(f"upgraded {schema}.{track.history_table} (added {', '.join(missing)})")
        for name, kind in ADDED_COLUMNS:
            statements.append(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} " + kind).format(
                table, sql.Identifier(name)))
    query = sql.SQL(";\n").join(statements)
    with connection.cursor() as cursor:
        # one simple-query message: PostgreSQL runs it as one implicit transaction
        cursor.execute(query.as_string(connection))
    for change in changes:
        log.info("%s", change)
    return changes


def read_history(connection: Any, schema: str, tracks: list[Track],
                 existing: dict[str, set[str]] | None = None) -> dict[str, list[HistoryRow]]:
    """Every row of every existing history table, by track name; creates nothing.

    existing: the tables' columns when the caller has read them (read_all_columns).
    """
    from psycopg2 import sql

    if existing is None:
        existing = read_existing_columns(connection, schema, tracks)
    rows: dict[str, list[HistoryRow]] = {track.name: [] for track in tracks}
    fields = HistoryRow._fields[1:]  # every field but track, in order
    for track in tracks:
        columns = existing.get(track.history_table)
        if columns is None:
            continue
        present = [c for c in fields if c in columns]  # an older table lacks the added columns
        query = sql.SQL("SELECT {} FROM {} ORDER BY version").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in present), _table(schema, track))
        positions = [present.index(name) if name in columns else None for name in fields]
        status = fields.index("status")
        with connection.cursor() as cursor:
            cursor.execute(query)
            found = rows[track.name]
            for values in cursor.fetchall():
                record = [None if at is None else values[at] for at in positions]
                record[status] = record[status] or "applied"  # the earlier script's table may lack status
                found.append(HistoryRow(track.name, *record))
    return rows


def build_record_applied(
    connection: Any, schema: str, track: Track, version: str, filenames: str, checksum: str, applied_by: str,
    client_ms: int | None = None,
) -> str:
    """The upsert that marks a version applied; sent in the same transaction as its SQL.

    execution_ms is measured by the server up to the row's insert, from the transaction's start,
    or with client_ms (batch mode: several versions share one transaction) from client_ms before
    the server received this message.
    """
    template = _record_applied_template(connection, schema, track.history_table, client_ms is not None)
    values = (version, f"Applied {filenames}", checksum, filenames, *since_values(client_ms), applied_by,
              f"migrate {__version__}")
    return fill(connection, template, values)


def since_sql(client_ms: bool) -> str:
    """When the version began, in SQL: the transaction's start, or (client_ms) %s seconds before this message."""
    return "(statement_timestamp() - make_interval(secs => %s))" if client_ms else "transaction_timestamp()"


def since_values(client_ms: int | None) -> tuple[float, ...]:
    """The value since_sql takes, if any."""
    return () if client_ms is None else (client_ms / 1000.0,)


def fill(connection: Any, template: str, values: tuple[Any, ...]) -> str:
    """`template`'s %s placeholders replaced by `values` quoted as SQL literals for this connection."""
    from psycopg2.extensions import encodings

    with connection.cursor() as cursor:
        return cursor.mogrify(template, values).decode(encodings[connection.encoding])


@functools.lru_cache(maxsize=64)
def _record_applied_template(connection: Any, schema: str, table: str, client_ms: bool) -> str:
    """The upsert with the table quoted once per run and %s for its values (filled by mogrify, in C):
    composing it with psycopg2.sql per migration cost ~0.1 ms, 10% of the client's time (bench/RESULTS.md)."""
    from psycopg2 import sql

    return sql.SQL(
        "INSERT INTO {table} AS h (version, applied_at, description, status, error_message, checksum, "
        "filename, execution_ms, applied_by, tool_version) VALUES (%s, CURRENT_TIMESTAMP, "
        "%s, 'applied', NULL, %s, %s, "
        "(extract(epoch FROM clock_timestamp() - {started}) * 1000)::integer, "
        "%s, %s) ON CONFLICT (version) DO UPDATE SET applied_at = EXCLUDED.applied_at, "
        "description = EXCLUDED.description, status = 'applied', error_message = NULL, "
        "checksum = EXCLUDED.checksum, filename = EXCLUDED.filename, execution_ms = EXCLUDED.execution_ms, "
        "applied_by = EXCLUDED.applied_by, tool_version = EXCLUDED.tool_version"
    ).format(
        table=param_identifier(connection, schema, table),
        started=sql.SQL(since_sql(client_ms)),
    ).as_string(connection)


def record_applied_sql_with_duration(record_sql: str, execution_ms: int) -> str:
    """The same upsert with a measured duration, for runs that span several transactions."""
    marker = "(extract(epoch FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer"
    return record_sql.replace(marker, str(int(execution_ms)), 1)


def record_failed(
    connection: Any,
    schema: str,
    track: Track,
    version: str,
    filenames: str,
    checksum: str,
    error_message: str,
    execution_ms: int,
    applied_by: str,
) -> None:
    """Upsert a `failed` row in its own transaction (the migration itself was rolled back)."""
    from psycopg2 import sql

    query = sql.SQL(
        "INSERT INTO {table} AS h (version, applied_at, description, status, error_message, checksum, "
        "filename, execution_ms, applied_by, tool_version) VALUES (%s, CURRENT_TIMESTAMP, %s, 'failed', "
        "%s, %s, %s, %s, %s, %s) ON CONFLICT (version) DO UPDATE SET applied_at = EXCLUDED.applied_at, "
        "description = EXCLUDED.description, status = 'failed', error_message = EXCLUDED.error_message, "
        "checksum = EXCLUDED.checksum, filename = EXCLUDED.filename, execution_ms = EXCLUDED.execution_ms, "
        "applied_by = EXCLUDED.applied_by, tool_version = EXCLUDED.tool_version"
    ).format(table=param_identifier(connection, schema, track.history_table))
    with connection.cursor() as cursor:
        cursor.execute(query, (version, f"Failed {filenames}", error_message, checksum, filenames,
                               execution_ms, applied_by, f"migrate {__version__}"))


def record_adopted_checksums(connection: Any, schema: str, track: Track, checksums: dict[str, str]) -> int:
    """Fill in checksums of applied rows that have none (earlier script, or a file's own INSERT)."""
    from psycopg2 import sql

    if not checksums:
        return 0
    query = sql.SQL(
        "UPDATE {} AS h SET checksum = v.checksum FROM unnest(%s::text[], %s::text[]) AS v(version, checksum) "
        "WHERE h.version = v.version AND h.checksum IS NULL AND h.status = 'applied'"
    ).format(param_identifier(connection, schema, track.history_table))
    with connection.cursor() as cursor:
        cursor.execute(query, (list(checksums), list(checksums.values())))
        return cursor.rowcount
