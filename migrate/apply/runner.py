"""Applying one version: its statements and its history row commit together, or neither does.

A transactional version is sent statement by statement inside one transaction, with BEGIN
joined to the first statement and the history upsert, its attempt row and COMMIT joined to
the last, so a one-statement file costs one round trip and a failure still names its exact
statement. A version that cannot run in a transaction runs statement by statement in
autocommit and is recorded after its last statement; a failure says which statements were
committed, and names any INVALID index a failed CONCURRENTLY build left behind. A version
with a file that needs psql goes to psql whole (see psqlexec).

Commit flushes: each transaction but the run's last commits with `synchronous_commit = off`
(SET LOCAL, after the session reset, so only that transaction), so N migrations cost one WAL
flush instead of N (bench/RESULTS.md). Every migration stays atomic with its history row: a
server crash can lose only a suffix of those commits, each migration together with its row,
and the next run re-applies them. The last migration (and any `failed` row) commits
synchronously, which flushes the WAL of every earlier one, so exit 0 means all is on disk.

A lock timeout (SQLSTATE 55P03, from the session's lock_timeout) is retried with backoff
up to MIGRATE_LOCK_RETRIES times: the whole version when it was rolled back, the failed
statement alone when the statements before it are committed (no transaction). Every try
is appended to the attempt log: a failed one after its rollback, in its own transaction.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migrate.apply.heartbeat import Heartbeat
from migrate.database.connection import ServerError, Session, server_error
from migrate.errors import MigrationFailed
from migrate.files.statements import Script, Statement, locate
from migrate.history.tables import APPLIED, FAILED, RETRYING
from migrate.paths import display_path
from migrate.plan import MigrationInfo

if TYPE_CHECKING:
    from migrate.history.recorder import Recorder
    from migrate.settings import RunOptions

log = logging.getLogger("migrate")
BEGIN = "BEGIN;\n"
LOCK_NOT_AVAILABLE = "55P03"
# connection exceptions (08) and the server shutting down or crashing (57P01-57P03): nothing wrong with the file
SERVER_GONE = ("08", "57P01", "57P02", "57P03")
# Each file once ran in its own psql session: undo whatever session state a file set (search_path,
# role, timeouts) before the history row and before the next file. Connection-level options stay.
RESET_SESSION = "RESET SESSION AUTHORIZATION;\nRESET ROLE;\nRESET ALL"
NO_FLUSH = "SET LOCAL synchronous_commit = off"


def reset_session_sql(session: Session) -> str:
    """RESET_SESSION, then the SETs the tool itself made on this session (RESET ALL undoes them)."""
    restore = session.restore_sql
    return RESET_SESSION + (";\n" + restore if restore else "")


@dataclass(frozen=True)
class Applied:
    info: MigrationInfo
    execution_ms: int
    transactional: bool
    attempts: int = 1
    executor: str = "builtin"
    batch: int | None = None  # batch mode: which batch transaction it committed in (None: on its own)


class StatementFailed(Exception):
    """A statement (builtin) or a psql run failed; where, what, and what stays committed."""

    def __init__(self, statement: Statement | None, prefix_length: int, error: ServerError, committed: int,
                 *, path: Path | None = None, line: int | None = None) -> None:
        super().__init__(error.message)
        self.statement = statement
        self.prefix_length = prefix_length
        self.error = error
        self.committed = committed
        self.path = path
        self.line = line


@dataclass(frozen=True)
class Context:
    """One version being applied: what it is, where its files are shown from, who records it."""

    info: MigrationInfo
    root: Path
    recorder: Recorder
    session: Session


def apply_version(
    session: Session,
    recorder: Recorder,
    info: MigrationInfo,
    scripts: list[Script],
    root: Path,
    options: RunOptions,
    psql: str | None = None,
    flush: bool = True,
    beat: Heartbeat | None = None,
    *,
    tried: int = 0,
) -> Applied:
    """Apply one pending version and record it; on error record `failed` and raise MigrationFailed.

    flush=False: commit without waiting for the WAL flush; the caller's last version must flush.
    beat: the run's heartbeat (one thread for every version); without it the version starts its own.
    tried: lock-timeout attempts already made elsewhere (batch mode): the retry count and backoff go on from there.
    """
    assert info.migration is not None
    if beat is None:
        with Heartbeat("", options.heartbeat_interval) as own:
            return apply_version(session, recorder, info, scripts, root, options, psql, flush, own, tried=tried)
    context = Context(info, root, recorder, session)
    retries, delay = options.lock_retries, options.lock_retry_delay
    beat.label = f"{info.track.name} {info.migration.filenames}"
    try:
        if any(script.needs_psql for script in scripts):
            beat.running("psql")
            return _apply_with_psql(context, scripts, options, psql, retries, delay)
        return _apply_statements(context, scripts, beat, flush, retries, delay, tried)
    finally:
        beat.idle()


def _apply_statements(context: Context, scripts: list[Script], beat: Heartbeat, flush: bool,
                      retries: int, delay: float, tried: int = 0) -> Applied:
    """The builtin executor: one transaction (or statement by statement), retried on lock timeouts."""
    info, recorder, session = context.info, context.recorder, context.session
    connection = session.connection
    assert info.migration is not None
    statements = [statement for script in scripts for statement in script.statements]
    transactional = all(script.transactional for script in scripts)
    invalid_before = set() if transactional else read_invalid_indexes(connection)
    started = time.perf_counter()
    resume_at = 0
    for attempt in range(1 + tried, retries + 2):
        attempt_started = time.perf_counter()
        try:
            if transactional:
                record_sql = (recorder.applied_sql(info.track, info.migration) + ";\n"
                              + recorder.attempt_sql(info.track, info.migration, APPLIED))
                _run_in_one_transaction(session, statements, record_sql, beat, flush)
            else:
                _run_statement_by_statement(context, statements, started, resume_at, beat)
            return Applied(info, int((time.perf_counter() - started) * 1000), transactional, attempt)
        except StatementFailed as failure:
            elapsed = int((time.perf_counter() - attempt_started) * 1000)
            if failure.error.sqlstate == LOCK_NOT_AVAILABLE and attempt <= retries and not connection.closed:
                note_retry(context, failure, elapsed, attempt, retries, delay)
                if not transactional:
                    resume_at = failure.committed  # statements before it are committed: retry it alone
                continue
            total_ms = int((time.perf_counter() - started) * 1000)
            left = sorted(read_invalid_indexes(connection) - invalid_before) if not transactional else []
            fail(context, failure, transactional, total_ms, elapsed, len(statements), left, attempt)
    raise AssertionError("unreachable: the last attempt either returns or fails")


def note_retry(context: Context, failure: StatementFailed, elapsed: int, attempt: int, retries: int,
               delay: float) -> None:
    """Log the lock timeout as a `retrying` attempt and wait with backoff."""
    info, recorder = context.info, context.recorder
    assert info.migration is not None
    line, _, _ = where_failed(context, failure)
    recorder.record_attempt(recorder.attempt_sql(
        info.track, info.migration, RETRYING, duration_ms=elapsed, sqlstate=failure.error.sqlstate,
        message=failure.error.message,
        statement_number=failure.statement.index if failure.statement else None, line=line))
    wait = min(delay * (2 ** (attempt - 1)), 30.0)
    log.warning("%s version %s: lock not available (%s); retry %d of %d in %.1f s", info.track.name,
                info.version, failure.error.message, attempt, retries, wait)
    time.sleep(wait)


def _run_in_one_transaction(session: Session, statements: list[Statement], record_sql: str,
                            beat: Heartbeat | None = None, flush: bool = True) -> None:
    import psycopg2

    connection = session.connection
    last = len(statements) - 1
    with connection.cursor() as cursor:
        for index, statement in enumerate(statements):
            prefix = BEGIN if index == 0 else ""
            query = prefix + statement.text
            if index == last:
                query += (";\n" + reset_session_sql(session) + ";\n" + ("" if flush else NO_FLUSH + ";\n")
                          + record_sql + ";\nCOMMIT")
            try:
                if beat is not None:
                    beat.running(describe(statement))
                cursor.execute(query)
            except psycopg2.Error as error:
                rollback(connection)
                raise StatementFailed(statement, len(prefix), server_error(error), 0) from error


def _run_statement_by_statement(context: Context, statements: list[Statement], started: float,
                                resume_at: int = 0, beat: Heartbeat | None = None) -> None:
    import psycopg2

    info, recorder, session = context.info, context.recorder, context.session
    connection = session.connection
    assert info.migration is not None
    with connection.cursor() as cursor:
        for index in range(resume_at, len(statements)):
            statement = statements[index]
            try:
                if beat is not None:
                    beat.running(describe(statement))
                cursor.execute(statement.text)
            except psycopg2.Error as error:
                rollback(connection)
                raise StatementFailed(statement, 0, server_error(error), index) from error
        elapsed = int((time.perf_counter() - started) * 1000)
        # one simple-query message: the history row and its attempt row commit together
        cursor.execute(reset_session_sql(session) + ";\n"
                       + recorder.applied_sql(info.track, info.migration, execution_ms=elapsed) + ";\n"
                       + recorder.attempt_sql(info.track, info.migration, APPLIED, duration_ms=elapsed))


def describe(statement: Statement) -> str:
    """How a heartbeat names the running statement: `statement 3 (line 40)`."""
    return f"statement {statement.index} (line {statement.line})"


def _apply_with_psql(context: Context, scripts: list[Script], options: RunOptions, psql: str | None,
                     retries: int, delay: float) -> Applied:
    """Hand the version's files to psql; atomically with the history row when they allow it.

    psql connects with the keywords the run's session was opened with (verify's scratch database
    included), and first sends the startup options a pooler refused, as SETs.
    """
    from migrate.apply.psql import PsqlError, require_psql, run_files

    info, recorder, session = context.info, context.recorder, context.session
    connection = session.connection
    assert info.migration is not None
    psql = psql or require_psql(options.psql_path, scripts, context.root)
    assert psql is not None
    params = session.params
    session_sql = session.refused_options_sql or None
    transactional = all(script.no_transaction is None for script in scripts)
    invalid_before = set() if transactional else read_invalid_indexes(connection)
    started = time.perf_counter()
    for attempt in range(1, retries + 2):
        attempt_started = time.perf_counter()
        try:
            if transactional:
                record_sql = (recorder.applied_sql(info.track, info.migration) + ";\n"
                              + recorder.attempt_sql(info.track, info.migration, APPLIED))
                run_files(psql, params, scripts, single_transaction=True,
                          final_sql=RESET_SESSION + ";\n" + record_sql, first_sql=session_sql)
            else:
                run_files(psql, params, scripts, single_transaction=False, first_sql=session_sql)
                elapsed = int((time.perf_counter() - started) * 1000)
                with connection.cursor() as cursor:
                    cursor.execute(
                        recorder.applied_sql(info.track, info.migration, execution_ms=elapsed) + ";\n"
                        + recorder.attempt_sql(info.track, info.migration, APPLIED, duration_ms=elapsed))
            return Applied(info, int((time.perf_counter() - started) * 1000), transactional, attempt, "psql")
        except PsqlError as error:
            failure = StatementFailed(None, 0, ServerError(error.sqlstate, error.message, error.detail, None, None,
                                                           None), 0, path=error.path, line=error.line)
            elapsed = int((time.perf_counter() - attempt_started) * 1000)
            if error.sqlstate == LOCK_NOT_AVAILABLE and transactional and attempt <= retries:
                note_retry(context, failure, elapsed, attempt, retries, delay)
                continue
            total_ms = int((time.perf_counter() - started) * 1000)
            left = sorted(read_invalid_indexes(connection) - invalid_before) if not transactional else []
            fail(context, failure, transactional, total_ms, elapsed, 0, left, attempt)
    raise AssertionError("unreachable: the last attempt either returns or fails")


def read_invalid_indexes(connection: Any) -> set[str]:
    """Qualified names of every INVALID index (pg_index.indisvalid false); empty if unreadable."""
    if connection.closed:
        return set()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE NOT i.indisvalid"
            )
            return {row[0] for row in cursor.fetchall()}
    except Exception:  # the server went away: the failure message matters more
        return set()


def rollback(connection: Any) -> None:
    """End whatever transaction the failure left open; a dead connection needs nothing."""
    if connection.closed:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except Exception:  # the server went away; nothing is left to roll back
        pass


def where_failed(context: Context, failure: StatementFailed) -> tuple[int | None, int | None, str]:
    """Line, column and `file:line:column` of a failure."""
    statement, error = failure.statement, failure.error
    if statement is None:
        path = failure.path or (context.info.migration.files[0].path if context.info.migration else None)
        shown = display_path(path, context.root) if path else context.info.version
        if failure.line is None:
            return None, None, shown
        return failure.line, None, f"{shown}:{failure.line}"
    offset = statement.offset
    if error.position is not None:
        within = error.position - 1 - failure.prefix_length
        if 0 <= within < len(statement.text):
            offset += within
    line, column = locate(statement.file.text, offset)
    return line, column, f"{display_path(statement.file.path, context.root)}:{line}:{column}"


def fail(
    context: Context,
    failure: StatementFailed,
    transactional: bool,
    elapsed: int,
    attempt_ms: int,
    total: int,
    invalid_indexes: list[str],
    attempts: int,
) -> None:
    info, recorder = context.info, context.recorder
    connection = context.session.connection
    assert info.migration is not None
    statement, error = failure.statement, failure.error
    line, _, where = where_failed(context, failure)
    sqlstate = error.sqlstate or "-----"
    detail = f" ({error.detail})" if error.detail else ""
    at_statement = f" (statement {statement.index})" if statement is not None else " (psql)"
    recorded_text = f"{sqlstate}: {error.message}{detail} at {where}{at_statement}"
    if transactional:
        outcome = "rolled back"
    elif statement is None:
        outcome = "what ran before the failing line stays committed (the file runs outside a transaction)"
    elif failure.committed:
        done = ("statement 1 was committed and stays" if failure.committed == 1
                else f"statements 1-{failure.committed} were committed and stay")
        outcome = f"{done} in place (the file runs outside a transaction, {total} statements)"
    else:
        outcome = "nothing committed (the file runs outside a transaction)"
    if invalid_indexes:
        names = ", ".join(invalid_indexes)
        outcome += (f"; it left INVALID index(es) {names}: drop them (DROP INDEX CONCURRENTLY {invalid_indexes[0]}) "
                    "before running again, or CREATE INDEX ... IF NOT EXISTS will skip the broken index")
    if error.sqlstate == LOCK_NOT_AVAILABLE:
        outcome += (f"; the lock was not available after {attempts} attempt(s): find the blocking session in "
                    "pg_stat_activity, or raise MIGRATE_SQL_LOCK_TIMEOUT / MIGRATE_LOCK_RETRIES")
    recorded = "recorded as failed"
    if connection.closed:
        recorded = "could not be recorded: the connection to the server was lost"
    else:
        try:
            recorder.record_failed(info.track, info.migration, recorded_text, elapsed)
        except Exception as record_error:  # the server went away while we recorded
            recorded = f"could not be recorded ({type(record_error).__name__})"
        recorder.record_attempt(recorder.attempt_sql(
            info.track, info.migration, FAILED, duration_ms=attempt_ms, sqlstate=error.sqlstate,
            message=f"{error.message}{detail}",
            statement_number=statement.index if statement is not None else None, line=line))
    hint = f"; hint: {error.hint}" if error.hint else ""
    failed_at = f" at statement {statement.index}" if statement is not None else " in psql"
    lost = connection.closed or (error.sqlstate or "").startswith(SERVER_GONE)
    advice = ("the server ended the session, which is not the file's fault: check that the server is up and "
              "run migrate again" if lost else "fix the file and run migrate again")
    raise MigrationFailed(
        f"{where}: ERROR {sqlstate}: {error.message}{detail}{hint}; {info.track.name} version "
        f"{info.version} failed{failed_at}, {outcome}, {recorded}; {advice}"
    )
