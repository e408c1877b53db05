"""Applying one version: its statements and its history row commit together, or neither does.

A transactional version is sent statement by statement inside one transaction, with BEGIN
joined to the first statement and the history upsert and COMMIT joined to the last, so a
one-statement file costs one round trip and a failure still names its exact statement.
A version that cannot run in a transaction runs statement by statement in autocommit and
is recorded after its last statement; a failure says which statements were committed.

Commit flushes: each transaction but the run's last commits with `synchronous_commit = off`
(SET LOCAL, so only that transaction), so N migrations cost one WAL flush instead of N
(bench/RESULTS.md: a flush costs ~0.5-1 ms per migration there). This keeps every
migration atomic with its history row: a server crash can lose only a suffix of those
commits, each migration together with its row, and the next run re-applies them. The last
migration (and any `failed` row) commits synchronously, which flushes the WAL of every
earlier one, so exit 0 still means everything is on disk.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrate.database import ServerError, server_error
from migrate.errors import MigrationFailed, ValidationError
from migrate.history import build_record_applied, record_applied_sql_with_duration, record_failed
from migrate.paths import display_path
from migrate.plan import MigrationInfo
from migrate.statements import Script, Statement, locate

log = logging.getLogger("migrate")
BEGIN = "BEGIN;\n"
BEGIN_NO_FLUSH = "BEGIN;\nSET LOCAL synchronous_commit = off;\n"


@dataclass(frozen=True)
class Applied:
    info: MigrationInfo
    execution_ms: int
    transactional: bool


class _StatementFailed(Exception):
    def __init__(self, statement: Statement, prefix_length: int, error: ServerError, committed: int) -> None:
        super().__init__(error.message)
        self.statement = statement
        self.prefix_length = prefix_length
        self.error = error
        self.committed = committed


def apply_version(
    connection: Any, info: MigrationInfo, scripts: list[Script], schema: str, root: Path, applied_by: str,
    flush: bool = True,
) -> Applied:
    """Apply one pending version and record it; on error record `failed` and raise MigrationFailed.

    flush=False: commit without waiting for the WAL flush; the caller's last version must flush.
    """
    assert info.files is not None
    for script in scripts:
        if script.needs_psql:
            raise ValidationError(
                f"{display_path(script.file.path, root)}: needs psql ({script.needs_psql}), which this "
                "tool does not run; rewrite it as plain SQL (nothing was applied)"
            )
    statements = [statement for script in scripts for statement in script.statements]
    transactional = all(script.transactional for script in scripts)
    record_sql = build_record_applied(connection, schema, info.track, info.version, info.files.filenames,
                                      info.files.checksum, applied_by)
    started = time.perf_counter()
    try:
        if transactional:
            _run_in_one_transaction(connection, statements, record_sql, BEGIN if flush else BEGIN_NO_FLUSH)
        else:
            _run_statement_by_statement(connection, statements, record_sql, started)
    except _StatementFailed as failure:
        elapsed = int((time.perf_counter() - started) * 1000)
        _fail(connection, info, failure, transactional, schema, root, applied_by, elapsed, len(statements))
    return Applied(info, int((time.perf_counter() - started) * 1000), transactional)


def _run_in_one_transaction(connection: Any, statements: list[Statement], record_sql: str,
                            begin: str = BEGIN) -> None:
    import psycopg2

    last = len(statements) - 1
    with connection.cursor() as cursor:
        for index, statement in enumerate(statements):
            prefix = begin if index == 0 else ""
            query = prefix + statement.text
            if index == last:
                query += ";\n" + record_sql + ";\nCOMMIT"
            try:
                cursor.execute(query)
            except psycopg2.Error as error:
                _rollback(connection)
                raise _StatementFailed(statement, len(prefix), server_error(error), 0) from error


def _run_statement_by_statement(
    connection: Any, statements: list[Statement], record_sql: str, started: float
) -> None:
    import psycopg2

    with connection.cursor() as cursor:
        for index, statement in enumerate(statements):
            try:
                cursor.execute(statement.text)
            except psycopg2.Error as error:
                _rollback(connection)
                raise _StatementFailed(statement, 0, server_error(error), index) from error
        elapsed = int((time.perf_counter() - started) * 1000)
        cursor.execute(record_applied_sql_with_duration(record_sql, elapsed))


def _rollback(connection: Any) -> None:
    """End whatever transaction the failure left open; a dead connection needs nothing."""
    if connection.closed:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except Exception:  # the server went away; nothing is left to roll back
        pass


def _fail(
    connection: Any,
    info: MigrationInfo,
    failure: _StatementFailed,
    transactional: bool,
    schema: str,
    root: Path,
    applied_by: str,
    elapsed: int,
    total: int,
) -> None:
    assert info.files is not None
    statement, error = failure.statement, failure.error
    offset = statement.offset
    if error.position is not None:
        within = error.position - 1 - failure.prefix_length
        if 0 <= within < len(statement.text):
            offset += within
    line, column = locate(statement.file.text, offset)
    where = f"{display_path(statement.file.path, root)}:{line}:{column}"
    sqlstate = error.sqlstate or "-----"
    detail = f" ({error.detail})" if error.detail else ""
    recorded_text = f"{sqlstate}: {error.message}{detail} at {where} (statement {statement.index})"
    if transactional:
        outcome = "rolled back"
    elif failure.committed:
        outcome = (f"statements 1-{failure.committed} of {total} were committed and stay in place "
                   "(the file runs outside a transaction)")
    else:
        outcome = "nothing committed (the file runs outside a transaction)"
    recorded = "recorded as failed"
    if connection.closed:
        recorded = "could not be recorded: the connection to the server was lost"
    else:
        try:
            record_failed(connection, schema, info.track, info.version, info.files.filenames,
                          info.files.checksum, recorded_text, elapsed, applied_by)
        except Exception as record_error:  # the server went away while we recorded
            recorded = f"could not be recorded ({type(record_error).__name__})"
    hint = f"; hint: {error.hint}" if error.hint else ""
    raise MigrationFailed(
        f"{where}: ERROR {sqlstate}: {error.message}{detail}{hint}; {info.track.name} version "
        f"{info.version} failed at statement {statement.index}, {outcome}, {recorded}; "
        "fix the file and run migrate again"
    )
