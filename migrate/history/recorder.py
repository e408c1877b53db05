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
from migrate.database.run_lock import version_lock_key
from migrate.database.sql import fill, param_identifier, transaction
from migrate.files.sqlfiles import MigrationVersion
from migrate.history.tables import ATTEMPTS_TABLE
from migrate.tracks import Track

# The fence's signal: a cast of this text to integer fails, naming the version, when it is already applied.
# (A plain-SQL guard: a PL/pgSQL DO block would cost ~0.1 ms per version, measured.)
FENCE_MARK = "migrate-fence: "
NOTICES_LIMIT = 4000  # characters of server notices kept in an attempt row

HISTORY_COLUMNS = ("version", "applied_at", "description", "status", "error_message", "checksum", "filename",
                   "execution_ms", "applied_by", "tool_version")
TOOL_VERSION = f"migrate {__version__}"

# How a row's execution_ms (and an attempt's start) is measured:
SERVER = "server"  # by the server, from the start of the version's transaction to this row
GIVEN = "given"    # a value the client measured (a run that spans several transactions), or NULL


class Recorder:
    """Every history and attempt write of one run, for one app schema.

    `source` is what holds the run's connection (a database Session, or the apply engine's file
    session, which may replace its connection between files); it is asked on every write.
    """

    def __init__(self, source: Any, schema: str, host: str, applied_by: str) -> None:
        self.source = source
        self.schema = schema
        self.host = host
        self.applied_by = applied_by
        self._templates: dict[tuple[str, ...], str] = {}

    @property
    def connection(self) -> Any:
        return self.source.connection

    # ---- history rows ----------------------------------------------------------------------------

    def _history_template(self, table: str, timing: str, keep_applied: bool = False) -> str:
        """keep_applied: the upsert leaves a row that says `applied` as it is (a failure never overwrites
        a version another runner applied)."""
        key = ("history", table, timing, str(keep_applied))
        template = self._templates.get(key)
        if template is None:
            from psycopg2 import sql

            if timing == GIVEN:
                duration = sql.SQL("%s")
            else:
                duration = sql.SQL("(extract(epoch FROM clock_timestamp() - transaction_timestamp()) * 1000)::integer")
            updates = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(column))
                                         for column in HISTORY_COLUMNS[1:])
            template = sql.SQL(
                "INSERT INTO {table} AS h ({columns}) VALUES (%s, CURRENT_TIMESTAMP, %s, %s, %s, %s, %s, {duration}, "
                "%s, %s) ON CONFLICT (version) DO UPDATE SET {updates}"
                + (" WHERE h.status IS DISTINCT FROM 'applied'" if keep_applied else "")
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
        template = self._history_template(track.history_table, timing, keep_applied=status == "failed")
        return fill(self.connection, template, values)

    def applied_sql(self, track: Track, migration: MigrationVersion, *, execution_ms: int | None = None) -> str:
        """The upsert that marks a version applied, to send in the same transaction as its SQL.

        execution_ms is measured by the server from the transaction's start, or given (a file that
        ran outside one transaction).
        """
        if execution_ms is not None:
            timing, duration = GIVEN, (int(execution_ms),)
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

    def fence_sql(self, track: Track, version: str, *, transaction: bool, checksum: str | None = None) -> str:
        """Exactly once, even if the run lock was lost: take the version's own advisory lock, then fail
        (SQLSTATE 22P02, message with FENCE_MARK) if another runner recorded the version applied.

        transaction: inside the version's transaction (the lock ends with it); else a session lock, which
        the reset after the file releases. Two runners applying one version queue on this lock, and the
        second finds the first's row once it committed. checksum: the version is applied already, and this
        run adds files to it (`migrate --run-added`): it is done when its row has this, the new, checksum.
        """
        lock = "pg_advisory_xact_lock" if transaction else "pg_advisory_lock"
        key = ("fence", track.history_table, lock, str(checksum is not None))
        template = self._templates.get(key)
        if template is None:
            from psycopg2 import sql

            template = sql.SQL("SELECT {lock}(%s); SELECT (%s || h.version)::integer FROM {table} AS h "
                               "WHERE h.version = %s AND h.status = 'applied'"
                               + (" AND h.checksum = %s" if checksum is not None else "")).format(
                lock=sql.Identifier(lock), table=param_identifier(self.connection, self.schema, track.history_table)
            ).as_string(self.connection)
            self._templates[key] = template
        values = (version_lock_key(self.schema, track.name, version), f"{FENCE_MARK}{track.name} version ", version)
        return fill(self.connection, template, values + ((checksum,) if checksum is not None else ()))

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
                started = sql.SQL("transaction_timestamp()")
                duration = sql.SQL("(extract(epoch FROM clock_timestamp() - {}) * 1000)::integer").format(started)
            template = sql.SQL(
                "INSERT INTO {table} (track, version, files, started_at, duration_ms, outcome, sqlstate, message, "
                "statement_number, line, host, tool_version, notices) VALUES (%s, %s, %s, {started}, "
                "{duration}, %s, %s, %s, %s, %s, %s, %s, %s)"
            ).format(
                table=param_identifier(self.connection, self.schema, ATTEMPTS_TABLE), started=started,
                duration=duration,
            ).as_string(self.connection)
            self._templates[key] = template
        return template

    def attempt_sql(self, track: Track, migration: MigrationVersion, outcome: str, *, duration_ms: int | None = None,
                    sqlstate: str | None = None, message: str | None = None, statement_number: int | None = None,
                    line: int | None = None, notices: str | None = None, started: int | None = None) -> str:
        """The INSERT of one attempt row, timed by the server's clock (or, with `started`, the UPDATE that
        ends the `started` row of that id: one row per try, its duration measured from its start).

        Without duration_ms the row measures from the start of the version's transaction; with it,
        the attempt started duration_ms ago. An INSERT of outcome `started` returns the row's id.
        """
        if started is not None:
            return self._finish_sql(started, outcome, sqlstate, message, statement_number, line, notices)
        values: tuple[Any, ...] = (track.name, migration.version, migration.filenames)
        if duration_ms is not None:
            timing = GIVEN
            values += (int(duration_ms) / 1000.0, int(duration_ms))
        else:
            timing = SERVER
        values += (outcome, sqlstate or None, message, statement_number, line, self.host, TOOL_VERSION,
                   notices[-NOTICES_LIMIT:] if notices else None)
        query = fill(self.connection, self._attempt_template(timing), values)
        return query + " RETURNING id" if outcome == "started" else query

    def _finish_sql(self, attempt_id: int, outcome: str, sqlstate: str | None, message: str | None,
                    statement_number: int | None, line: int | None, notices: str | None) -> str:
        key = ("finish",)
        template = self._templates.get(key)
        if template is None:
            from psycopg2 import sql

            template = sql.SQL(
                "UPDATE {table} SET "
                "duration_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::integer, outcome = %s, "
                "sqlstate = %s, message = %s, statement_number = %s, line = %s, "
                "notices = right(coalesce(notices || E'\\n', '') || %s, %s) WHERE id = %s"
            ).format(table=param_identifier(self.connection, self.schema, ATTEMPTS_TABLE)).as_string(self.connection)
            self._templates[key] = template
        return fill(self.connection, template, (outcome, sqlstate or None, message, statement_number, line,
                                                notices or "", NOTICES_LIMIT, attempt_id))

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

    def add_notices(self, track: Track, migration: MigrationVersion, notices: str) -> None:
        """Notices that arrived with a version's last message, after its attempt row was sent: added to
        that row (the version's newest attempt), so the attempt log keeps what the file printed."""
        from psycopg2 import sql

        table = param_identifier(self.connection, self.schema, ATTEMPTS_TABLE)
        query = sql.SQL("UPDATE {t} SET notices = right(coalesce(notices || E'\\n', '') || %s, %s) WHERE id = "
                        "(SELECT max(id) FROM {t} WHERE track = %s AND version = %s)").format(t=table)
        with self.connection.cursor() as cursor:
            cursor.execute(query, (notices, NOTICES_LIMIT, track.name, migration.version))
