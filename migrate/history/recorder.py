"""`Recorder`: one per run, it writes every row of the history tables and the attempt log.

Like Alembic's HeadMaintainer and yoyo's mark_one/log_migration, one object owns the writes:
applied and failed rows, attempt rows, adopted checksums, repair and baseline. Its INSERT
templates are composed once per run (the table quoted, %s for the values) and filled per row
with mogrify, in C: composing each with psycopg2.sql per migration cost ~0.1 ms, 10% of the
client's time at 1000 files (bench/RESULTS.md).

An applied row and its attempt row are returned as SQL text, so the runner sends them in the
migration's own transaction (they commit with it); a failed row is written after the
rollback, in a transaction of its own, so it survives.
"""

from __future__ import annotations

from typing import Any, Iterable

from migrate import __version__
from migrate.database.sql import fill, param_identifier, transaction
from migrate.files.sqlfiles import MigrationVersion
from migrate.history.tables import ATTEMPTS_TABLE
from migrate.tracks import Track

HISTORY_COLUMNS = ("version", "applied_at", "description", "status", "error_message", "checksum", "filename",
                   "execution_ms", "applied_by", "tool_version")
TOOL_VERSION = f"migrate {__version__}"

# How a row's execution_ms (and an attempt's start) is measured:
SERVER = "server"  # by the server, from the transaction's start to this row
CLIENT = "client"  # from %s seconds before the server received this message (batch mode: shared transactions)
GIVEN = "given"    # a value the client measured (a run that spans several transactions), or NULL


def _since(timing: str) -> str:
    """When the version began, in SQL."""
    return "(statement_timestamp() - make_interval(secs => %s))" if timing == CLIENT else "transaction_timestamp()"


class Recorder:
    """Every history and attempt write of one run, on one connection, for one app schema."""

    def __init__(self, connection: Any, schema: str, host: str, applied_by: str) -> None:
        self.connection = connection
        self.schema = schema
        self.host = host
        self.applied_by = applied_by
        self._templates: dict[tuple[str, ...], str] = {}

    # ---- history rows ----------------------------------------------------------------------------

    def _history_template(self, table: str, timing: str) -> str:
        key = ("history", table, timing)
        template = self._templates.get(key)
        if template is None:
            from psycopg2 import sql

            if timing == GIVEN:
                duration = sql.SQL("%s")
            else:
                duration = sql.SQL(f"(extract(epoch FROM clock_timestamp() - {_since(timing)}) * 1000)::integer")
            updates = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(column))
                                         for column in HISTORY_COLUMNS[1:])
            template = sql.SQL(
                "INSERT INTO {table} AS h ({columns}) VALUES (%s, CURRENT_TIMESTAMP, %s, %s, %s, %s, %s, {duration}, "
                "%s, %s) ON CONFLICT (version) DO UPDATE SET {updates}"
            ).format(
                table=param_identifier(self.connection, self.schema, table),
                columns=sql.SQL(", ").join(sql.Identifier(column) for column in HISTORY_COLUMNS),
                duration=duration, updates=updates,
            ).as_string(self.connection)
            self._templates[key] = template
        return template

    def _history_sql(self, track: Track, version: str, description: str, status: str, error: str | None,
                     checksum: str, filenames: str, timing: str, duration: tuple[Any, ...],
                     applied_by: str | None = None) -> str:
        values = (version, description, status, error, checksum, filenames, *duration,
                  applied_by or self.applied_by, TOOL_VERSION)
        return fill(self.connection, self._history_template(track.history_table, timing), values)

    def applied_sql(self, track: Track, migration: MigrationVersion, *, client_ms: int | None = None,
                    execution_ms: int | None = None) -> str:
        """The upsert that marks a version applied, to send in the same transaction as its SQL.

        execution_ms is measured by the server from the transaction's start; with client_ms (batch
        mode) from client_ms before the server received this message; or given (execution_ms).
        """
        if execution_ms is not None:
            timing, duration = GIVEN, (int(execution_ms),)
        elif client_ms is not None:
            timing, duration = CLIENT, (client_ms / 1000.0,)
        else:
            timing, duration = SERVER, ()
        filenames = migration.filenames
        return self._history_sql(track, migration.version, f"Applied {filenames}", "applied", None,
                                 migration.checksum, filenames, timing, duration)

    def record_failed(self, track: Track, migration: MigrationVersion, error_message: str, execution_ms: int) -> None:
        """Upsert a `failed` row in its own transaction (the migration itself was rolled back)."""
        filenames = migration.filenames
        query = self._history_sql(track, migration.version, f"Failed {filenames}", "failed", error_message,
                                  migration.checksum, filenames, GIVEN, (int(execution_ms),))
        with self.connection.cursor() as cursor:
            cursor.execute(query)

    def adopt_checksums(self, track: Track, checksums: dict[str, str]) -> int:
        """Fill in checksums of applied rows that have none (earlier script, or a file's own INSERT)."""
        from psycopg2 import sql

        if not checksums:
            return 0
        query = sql.SQL(
            "UPDATE {} AS h SET checksum = v.checksum FROM unnest(%s::text[], %s::text[]) AS v(version, checksum) "
            "WHERE h.version = v.version AND h.checksum IS NULL AND h.status = 'applied'"
        ).format(param_identifier(self.connection, self.schema, track.history_table))
        with self.connection.cursor() as cursor:
            cursor.execute(query, (list(checksums), list(checksums.values())))
            return cursor.rowcount

    def repair(self, changes: Iterable[tuple[Track, str, str | None]]) -> None:
        """In one transaction: for each (track, version, checksum), re-align the checksum, or with
        None delete the version's `failed` row (it is pending again)."""
        from psycopg2 import sql

        with transaction(self.connection) as cursor:
            for track, version, checksum in changes:
                table = param_identifier(self.connection, self.schema, track.history_table)
                if checksum is None:
                    cursor.execute(sql.SQL("DELETE FROM {} WHERE version = %s AND status = 'failed'").format(table),
                                   (version,))
                else:
                    cursor.execute(sql.SQL("UPDATE {} SET checksum = %s WHERE version = %s").format(table),
                                   (checksum, version))

    def baseline(self, track: Track, migrations: Iterable[MigrationVersion]) -> None:
        """In one transaction: each version recorded as applied without running it."""
        with transaction(self.connection) as cursor:
            for migration in migrations:
                cursor.execute(self._history_sql(
                    track, migration.version, f"Baseline {migration.filenames} (not run)", "applied", None,
                    migration.checksum, migration.filenames, GIVEN, (None,), applied_by=f"baseline@{self.host}"))

    # ---- the attempt log --------------------------------------------------------------------------

    def _attempt_template(self, timing: str) -> str:
        key = ("attempt", timing)
        template = self._templates.get(key)
        if template is None:
            from psycopg2 import sql

            if timing == GIVEN:
                started = sql.SQL("clock_timestamp() - make_interval(secs => %s)")
                duration = sql.SQL("%s")
            else:
                started = sql.SQL(_since(timing))
                duration = sql.SQL("(extract(epoch FROM clock_timestamp() - {}) * 1000)::integer").format(started)
            template = sql.SQL(
                "INSERT INTO {table} (track, version, files, started_at, duration_ms, outcome, sqlstate, message, "
                "statement_number, line, host, tool_version) VALUES (%s, %s, %s, {started}, "
                "{duration}, %s, %s, %s, %s, %s, %s, %s)"
            ).format(
                table=param_identifier(self.connection, self.schema, ATTEMPTS_TABLE), started=started,
                duration=duration,
            ).as_string(self.connection)
            self._templates[key] = template
        return template

    def attempt_sql(self, track: Track, migration: MigrationVersion, outcome: str, *, duration_ms: int | None = None,
                    sqlstate: str | None = None, message: str | None = None, statement_number: int | None = None,
                    line: int | None = None, client_ms: int | None = None) -> str:
        """The INSERT of one attempt row, timed by the server's clock.

        Without duration_ms the row measures from the version's start (the transaction's, or client_ms
        before this message in batch mode); with it, the attempt started duration_ms ago.
        """
        values: tuple[Any, ...] = (track.name, migration.version, migration.filenames)
        if duration_ms is not None:
            timing = GIVEN
            values += (int(duration_ms) / 1000.0, int(duration_ms))
        elif client_ms is not None:
            timing = CLIENT
            values += (client_ms / 1000.0,) * 2  # started_at and the duration both count from it
        else:
            timing = SERVER
        values += (outcome, sqlstate or None, message, statement_number, line, self.host, TOOL_VERSION)
        return fill(self.connection, self._attempt_template(timing), values)

    def record_attempt(self, attempt_sql: str) -> bool:
        """Write one attempt row in its own transaction; False when the server cannot take it."""
        if self.connection.closed:
            return False
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(attempt_sql)
            return True
        except Exception:  # the server went away, or the table is gone: the failure itself matters more
            return False
