"""Applying one version exactly once, in a fresh session, as `psql -f` would run its files.

A transactional version runs inside one transaction: BEGIN and the fence open its first message,
and the session reset, the history row, its attempt row, COMMIT and the defaults fingerprint
(file_session.py) follow its last statement, alone in the last message, so a one-statement file
costs one round trip. The statements before the last go in messages of up to BATCH_STATEMENTS
(a realistic project: 1,060 round trips instead of 39,385); when such a message fails, the
transaction is rolled back and the version runs again statement by statement, which names the
failing statement exactly (can_batch: the files that always go statement by statement). The
tool's SQL always follows a newline, so a file's trailing `-- comment` cannot swallow it.

A version that cannot run in a transaction (its own BEGIN/COMMIT, CONCURRENTLY, a marker)
runs statement by statement in autocommit. Before its first statement it takes the fence and
writes a `started` attempt, so a run killed mid-file is visible (status: interrupted); such a
file is at-least-once. Which statements committed is read from the server's transaction
state after each statement, so a failure inside the file's own BEGIN ... COMMIT is reported
as rolled back, never as committed. An INVALID index of the same name left by an interrupted
`CREATE INDEX CONCURRENTLY` is dropped and rebuilt; an index that is INVALID after its build
stops the run. A version with a file that needs psql goes to psql whole (apply/psql.py).

The fence (history.recorder.fence_sql): the version's own advisory lock, then a check that no
other runner recorded it applied. The run lock makes this redundant while it is held; when it
is lost mid-file, a runner that took it over waits on the fence and then skips the version
(`AlreadyApplied`) instead of applying it a second time.

Commit flushes: a fast transactional version commits with `synchronous_commit = off` (SET
LOCAL), and a later synchronous commit flushes the WAL of every earlier one; apply/run.py prints
a version as applied only once such a flush has returned, so nothing printed can be lost.

A lock timeout (SQLSTATE 55P03, from the session's lock_timeout) is retried with backoff up to
MIGRATE_LOCK_RETRIES times, always as the whole file, and only while none of it has committed.
Every try is in the attempt log; a failure is recorded on a clean session (never under the
file's role), with SQLSTATE, message, file:line and the server's CONTEXT.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migrate.apply.heartbeat import Heartbeat
from migrate.database.connection import ServerError, server_error
from migrate.database.run_lock import lsn_number
from migrate.errors import MigrationFailed
from migrate.files.statements import Script, Statement, context_location, locate
from migrate.history.recorder import FENCE_MARK
from migrate.history.tables import APPLIED, FAILED, RETRYING, STARTED
from migrate.paths import display_path
from migrate.plan import MigrationInfo

if TYPE_CHECKING:
    from migrate.apply.file_session import FileSession
    from migrate.history.recorder import Recorder
    from migrate.settings import RunOptions

log = logging.getLogger("migrate")
LOCK_NOT_AVAILABLE = "55P03"
FENCED = "22P02"  # the fence's cast failure (recorder.FENCE_MARK in the message)
# connection exceptions (08) and the server shutting down or crashing (57P01-57P03): nothing wrong with the file
SERVER_GONE = ("08", "57P01", "57P02", "57P03")
# Before the history row: the row is written as the tool's user with the tool's settings, whatever
# the file set (its role, its search_path, its timeouts).
RESET_SESSION = "RESET SESSION AUTHORIZATION;\nRESET ROLE;\nRESET ALL"
NO_FLUSH = "SET LOCAL synchronous_commit = off"
IDLE = 0  # psycopg2.extensions.TRANSACTION_STATUS_IDLE: no transaction open, everything so far committed
EXCERPT = 300  # characters of a server message or detail kept in an error line
# A transactional file's statements but its last go to the server in messages of several statements
# (bench/RESULTS.md: one round trip per statement was most of a realistic project's time beyond the floor)
BATCH_STATEMENTS = 64  # statements per message at most
BATCH_CHARS = 64 * 1024  # characters per message at most (a statement longer than this goes alone)
BATCH_MIN_SERVER = 130000  # before PostgreSQL 13 statement_timeout covered a whole message, not each statement
# lexed differently once set: a message is lexed whole before its first statement runs
NOT_BATCHED_SETTING = re.compile(r"standard_conforming_strings|backslash_quote", re.IGNORECASE)
COPY_STATEMENT = re.compile(r"copy\b", re.IGNORECASE)  # psycopg2 cannot take COPY data inside a message


@dataclass(frozen=True)
class Applied:
    """A version that committed; `durable` once its commit (or a later one) was flushed to disk."""

    info: MigrationInfo
    execution_ms: int
    transactional: bool
    attempts: int = 1
    executor: str = "builtin"
    durable: bool = True  # committed synchronously; else durable once the WAL is flushed past commit_lsn
    commit_lsn: int | None = None


class AlreadyApplied(Exception):
    """The fence found the version recorded applied by another runner (this run's lock was taken over)."""


class StatementFailed(Exception):
    """A statement (builtin) or a psql run failed; where, what, and how many statements stay committed."""

    def __init__(self, statement: Statement | None, prefix_length: int, error: ServerError, committed: int,
                 *, path: Path | None = None, line: int | None = None,
                 span: tuple[Statement, Statement] | None = None) -> None:
        super().__init__(error.message)
        self.statement = statement
        self.span = span  # the server went away during this message of statements (which one ran is unknown)
        self.prefix_length = prefix_length
        self.error = error
        self.committed = committed
        self.path = path
        self.line = line


@dataclass
class Context:
    """One version being applied: what it is, how it runs, and who records it."""

    info: MigrationInfo
    root: Path
    recorder: Recorder
    files: FileSession
    options: RunOptions
    notices: list[str] = field(default_factory=list)
    label: str = ""
    sent: int = 0  # notices already in the attempt row sent with the last message
    started: int | None = None  # the id of this try's `started` attempt row (files outside a transaction)
    quiet: int = 0  # notices still to come that a rolled-back try of the same statements already printed

    def note(self, text: str) -> None:
        """A server notice (RAISE NOTICE/WARNING/INFO): on stderr now, prefixed by the file; kept for the log."""
        if self.quiet:
            self.quiet -= 1
        else:
            for line in text.strip().splitlines():
                log.info("%s: %s", self.label, line.strip())
        self.notices.append(text.strip())

    def take_notices(self) -> str | None:
        text = "\n".join(self.notices) if self.notices else None
        self.notices.clear()
        self.sent = 0
        return text


class _Notices(list):  # type: ignore[type-arg]
    """psycopg2 appends each notice to `connection.notices`: this list hands them to the version's context."""

    def __init__(self, context: Context) -> None:
        super().__init__()
        self.context = context

    def append(self, notice: str) -> None:  # type: ignore[override]
        self.context.note(notice)


def apply_version(
    files: FileSession,
    recorder: Recorder,
    info: MigrationInfo,
    scripts: list[Script],
    root: Path,
    options: RunOptions,
    psql: str | None = None,
    flush: Callable[[float], bool] = lambda elapsed: True,
    beat: Heartbeat | None = None,
) -> Applied:
    """Apply one pending version in a fresh session and record it; on error record `failed` and raise
    MigrationFailed; raise AlreadyApplied when another runner applied it meanwhile.

    flush(elapsed seconds): whether this version's commit waits for the WAL flush (apply/run.py decides).
    """
    assert info.migration is not None
    if beat is None:
        with Heartbeat("", options.heartbeat_interval) as own:
            return apply_version(files, recorder, info, scripts, root, options, psql, flush, own)
    label = ", ".join(display_path(s.file.path, root) for s in scripts)
    context = Context(info, root, recorder, files, options, label=label)
    beat.label = f"{info.track.name} {info.migration.filenames}"
    started = time.perf_counter()
    try:
        if any(script.needs_psql for script in scripts):
            beat.running("psql")
            return _apply_with_psql(context, scripts, psql)
        return _apply_statements(context, scripts, beat, flush)
    except (MigrationFailed, AlreadyApplied):
        raise
    except Exception as error:  # a bug or an unexpected failure still ends as a recorded, one-line failure
        failure = StatementFailed(None, 0, ServerError("", f"{type(error).__name__}: {error}", None, None, None,
                                                       None), 0)
        elapsed = int((time.perf_counter() - started) * 1000)
        fail(context, failure, all(s.transactional for s in scripts), elapsed, elapsed, [], 1)
        raise AssertionError("unreachable: fail raises") from None
    finally:
        beat.idle()
        files.connection.notices = []


def _apply_statements(context: Context, scripts: list[Script], beat: Heartbeat,
                      flush: Callable[[float], bool]) -> Applied:
    """The builtin executor: one transaction (or statement by statement), retried whole on lock timeouts."""
    info, options = context.info, context.options
    statements = [statement for script in scripts for statement in script.statements]
    transactional = all(script.transactional for script in scripts)
    batch = transactional and can_batch(scripts, context.files.connection)
    started = time.perf_counter()
    for attempt in range(1, options.lock_retries + 2):
        attempt_started = time.perf_counter()
        context.quiet = 0  # only the run right after a failed message repeats notices already printed
        context.files.start_file()
        context.files.connection.notices = _Notices(context)
        try:
            commit_lsn = None
            if transactional and batch:
                try:
                    commit_lsn = _run_in_one_transaction(context, statements, beat, flush, started, batch=True)
                except _BatchFailed as failed:
                    # which statement failed is not known: the rolled-back try is run again statement by
                    # statement, which names it (and its notices, printed once already, are not printed again)
                    log.debug("%s: %s in a message of statements; running it again statement by statement",
                              context.label, failed)
                    batch = False
                    context.files.clean()
                    context.quiet, context.sent = len(context.notices), 0
                    context.notices.clear()
                    context.files.start_file()
                    context.files.connection.notices = _Notices(context)
            if transactional and not batch:
                commit_lsn = _run_in_one_transaction(context, statements, beat, flush, started)
            elif not transactional:
                _fence_and_start(context, info)  # again on a retry: the clean session released it
                _run_statement_by_statement(context, statements, started, beat)
            return Applied(info, int((time.perf_counter() - started) * 1000), transactional, attempt,
                           durable=commit_lsn is None, commit_lsn=commit_lsn)
        except StatementFailed as failure:
            elapsed = int((time.perf_counter() - attempt_started) * 1000)
            if (failure.error.sqlstate == LOCK_NOT_AVAILABLE and attempt <= options.lock_retries
                    and failure.committed == 0 and not context.files.session.closed):
                note_retry(context, failure, elapsed, attempt)
                continue
            total_ms = int((time.perf_counter() - started) * 1000)
            fail(context, failure, transactional, total_ms, elapsed, _invalid_after(context, statements), attempt,
                 total=len(statements))
    raise AssertionError("unreachable: the last attempt either returns or fails")


def _raise_failure(context: Context, statement: Statement | None, prefix_length: int, error: Exception,
                   committed: int) -> None:
    """A statement failed: the fence's signal becomes AlreadyApplied, anything else StatementFailed."""
    facts = server_error(error)
    if facts.sqlstate == FENCED and FENCE_MARK in facts.message:
        rollback(context.files.connection)
        raise AlreadyApplied(facts.message) from None
    rollback(context.files.connection)
    raise StatementFailed(statement, prefix_length, facts, committed) from error


class _BatchFailed(Exception):
    """A message of several statements failed: the transaction is rolled back, the failing statement unknown."""


def can_batch(scripts: list[Script], connection: Any) -> bool:
    """May this transactional version's statements share messages? Not before PostgreSQL 13 (statement_timeout
    covered a whole message), not when a file changes how the server lexes what follows (a message is lexed
    whole before it runs), and not with COPY (its data cannot follow inside a message)."""
    if getattr(connection, "server_version", 0) < BATCH_MIN_SERVER:
        return False
    for script in scripts:
        if NOT_BATCHED_SETTING.search(script.file.text):
            return False
        if any(COPY_STATEMENT.match(statement.text) for statement in script.statements):
            return False
    return True


def batches(statements: list[Statement]) -> list[list[Statement]]:
    """Consecutive statements grouped into messages of at most BATCH_STATEMENTS statements and BATCH_CHARS
    characters (a longer statement alone)."""
    groups: list[list[Statement]] = []
    size = 0
    for statement in statements:
        if groups and len(groups[-1]) < BATCH_STATEMENTS and size + len(statement.text) <= BATCH_CHARS:
            groups[-1].append(statement)
            size += len(statement.text) + 3
        else:
            groups.append([statement])
            size = len(statement.text) + 3
    return groups


def _run_batches(context: Context, cursor: Any, groups: list[list[Statement]], opening: str,
                 beat: Heartbeat) -> None:
    """Send each group as one message (the first opens the transaction); a failure rolls back and raises
    _BatchFailed, or StatementFailed for the whole group when the server went away (nothing can run again)."""
    import psycopg2

    for number, group in enumerate(groups):
        query = (opening if number == 0 else "") + "\n;\n".join(statement.text for statement in group)
        try:
            beat.running(describe_span(group[0], group[-1]))
            cursor.execute(query)
        except psycopg2.Error as error:
            facts = server_error(error)
            if facts.sqlstate == FENCED and FENCE_MARK in facts.message:
                rollback(context.files.connection)
                raise AlreadyApplied(facts.message) from None
            if context.files.session.closed or (facts.sqlstate or "").startswith(SERVER_GONE):
                rollback(context.files.connection)
                raise StatementFailed(None, 0, facts, 0, span=(group[0], group[-1])) from error
            rollback(context.files.connection)
            raise _BatchFailed(f"{facts.sqlstate}: {facts.message}") from error


def _run_in_one_transaction(context: Context, statements: list[Statement], beat: Heartbeat,
                            flush: Callable[[float], bool], started: float, batch: bool = False) -> int | None:
    """Every statement in one transaction with the history rows; None when the commit waited for its
    flush, else the WAL position the flush must pass for it to be durable.

    batch: all statements but the last in messages of several (batches()); the last always goes alone,
    with the history rows and COMMIT, as every statement does without batch."""
    import psycopg2

    info, recorder = context.info, context.recorder
    assert info.migration is not None
    connection = context.files.connection
    opening = "BEGIN;\n" + _fence(context, transaction=True) + ";\n"
    last = len(statements) - 1
    durable = True
    with connection.cursor() as cursor:
        first = 0
        if batch and last > 0:
            _run_batches(context, cursor, batches(statements[:last]), opening, beat)
            first, opening = last, ""
        for index in range(first, last + 1):
            statement = statements[index]
            head = opening if index == 0 else ""
            query = head + statement.text
            if index == last:
                durable = flush(time.perf_counter() - started)
                query += ("\n;\n" + RESET_SESSION + ";\n" + ("" if durable else NO_FLUSH + ";\n")
                          + recorder.applied_sql(info.track, info.migration) + ";\n"
                          + recorder.attempt_sql(info.track, info.migration, APPLIED, notices=_pending(context))
                          + ";\nCOMMIT;\n" + context.files.closing_sql(wal_position=not durable))
            try:
                beat.running(describe(statement))
                cursor.execute(query)
            except psycopg2.Error as error:
                _raise_failure(context, statement, len(head), error, 0)
        row = cursor.fetchone()
        context.files.finished(row[0])
    _keep_late_notices(context)
    return None if durable else lsn_number(row[1])


def _fence(context: Context, *, transaction: bool) -> str:
    """The version's fence; for files added to an applied version (`--run-added`), against its new checksum."""
    info = context.info
    assert info.migration is not None
    added = info.migration.checksum if info.to_run is not None else None
    return context.recorder.fence_sql(info.track, info.version, transaction=transaction, checksum=added)


def _fence_and_start(context: Context, info: MigrationInfo) -> None:
    """Outside a transaction: the fence as a session lock (the closing reset releases it, after the history
    row committed) and a `started` attempt, in one message, before the first statement."""
    import psycopg2

    assert info.migration is not None
    recorder = context.recorder
    query = (_fence(context, transaction=False) + ";\n"
             + recorder.attempt_sql(info.track, info.migration, STARTED, duration_ms=0))
    try:
        with context.files.connection.cursor() as cursor:
            cursor.execute(query)
            context.started = int(cursor.fetchone()[0])
    except psycopg2.Error as error:
        _raise_failure(context, None, 0, error, 0)


def _run_statement_by_statement(context: Context, statements: list[Statement], started: float,
                                beat: Heartbeat) -> None:
    """Autocommit, statement by statement; `committed` follows the server's transaction state."""
    import psycopg2

    info, recorder = context.info, context.recorder
    assert info.migration is not None
    connection = context.files.connection
    committed = 0
    with connection.cursor() as cursor:
        for index, statement in enumerate(statements):
            try:
                beat.running(describe(statement))
                if statement.concurrent_index is not None:
                    _drop_invalid_index(context, statement)
                cursor.execute(statement.text)
                if statement.concurrent_index is not None:
                    _require_valid_index(context, statement, index)
            except psycopg2.Error as error:
                _raise_failure(context, statement, 0, error, committed)
            if connection.info.transaction_status == IDLE:
                committed = index + 1
        if connection.info.transaction_status != IDLE:
            rollback(connection)
            raise StatementFailed(statements[-1], 0, ServerError(
                "25000", "the file ends inside a transaction block it opened (BEGIN without COMMIT); psql rolls "
                "such a transaction back at the end of the file", None, None, None, None), committed)
        elapsed = int((time.perf_counter() - started) * 1000)
        # one message: the history row and its attempt row commit together, then the fence is released
        cursor.execute(RESET_SESSION + ";\nBEGIN;\n"
                       + recorder.applied_sql(info.track, info.migration, execution_ms=elapsed) + ";\n"
                       + recorder.attempt_sql(info.track, info.migration, APPLIED, duration_ms=elapsed,
                                              notices=_pending(context), started=context.started)
                       + ";\nCOMMIT;\n" + context.files.closing_sql())
        context.files.finished(cursor.fetchone()[0])
    _keep_late_notices(context)


def _drop_invalid_index(context: Context, statement: Statement) -> None:
    """An INVALID index of this name, left by an interrupted CONCURRENTLY build, is dropped before the
    build runs again (CREATE INDEX ... IF NOT EXISTS would skip it and leave it broken)."""
    name = _index_regclass(context, statement)
    if name is None or name[1]:
        return
    log.warning("%s: dropping INVALID index %s left by an interrupted run, to build it again", context.label, name[0])
    with context.files.connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name[0]}")  # quoted by the server's format()


def _require_valid_index(context: Context, statement: Statement, index: int) -> None:
    name = _index_regclass(context, statement)
    if name is not None and not name[1]:
        raise StatementFailed(statement, 0, ServerError(
            "XX002", f"index {name[0]} is INVALID after its build", None,
            f"drop it (DROP INDEX CONCURRENTLY {name[0]};) and run migrate again", None, None), index)


def _index_regclass(context: Context, statement: Statement) -> tuple[str, bool] | None:
    """(the index's qualified, quoted name, is it valid) for a CONCURRENTLY build's index; None if absent.

    Resolved in the file's own session, so its search_path at that point applies."""
    assert statement.concurrent_index is not None
    table, index = statement.concurrent_index
    with context.files.connection.cursor() as cursor:
        cursor.execute(
            "SELECT format('%%I.%%I', n.nspname, c.relname), i.indisvalid FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE i.indrelid = to_regclass(%s) AND c.relname = %s", (table, index))
        row = cursor.fetchone()
    return (str(row[0]), bool(row[1])) if row else None


def _invalid_after(context: Context, statements: list[Statement]) -> list[str]:
    """INVALID indexes the file's CONCURRENTLY builds left (after a failure), for the message."""
    left: list[str] = []
    for statement in statements:
        if statement.concurrent_index is None:
            continue
        try:
            name = _index_regclass(context, statement)
        except Exception:  # the session is gone: the failure message matters more
            return left
        if name is not None and not name[1]:
            left.append(name[0])
    return left


def _pending(context: Context) -> str | None:
    """Notices so far, for the attempt row sent with the last message (later ones are added after)."""
    context.sent = len(context.notices)
    return "\n".join(context.notices) if context.notices else None


def _keep_late_notices(context: Context) -> None:
    """Notices that arrived with the last message were not in its attempt row: add them now (rare)."""
    late = context.notices[context.sent:]
    if late and context.info.migration is not None:
        context.recorder.add_notices(context.info.track, context.info.migration, "\n".join(late))


def note_retry(context: Context, failure: StatementFailed, elapsed: int, attempt: int) -> None:
    """Log the lock timeout as a `retrying` attempt (on a clean session) and wait with backoff."""
    info, recorder, options = context.info, context.recorder, context.options
    assert info.migration is not None
    line, _, _ = where_failed(context, failure)
    context.files.clean()
    recorder.record_attempt(recorder.attempt_sql(
        info.track, info.migration, RETRYING, duration_ms=elapsed, sqlstate=failure.error.sqlstate,
        message=failure.error.message, statement_number=failure.statement.index if failure.statement else None,
        line=line, notices=context.take_notices(), started=context.started))
    context.started = None
    wait = min(options.lock_retry_delay * (2 ** (attempt - 1)), 30.0)
    log.warning("%s version %s: lock not available (%s); retry %d of %d of the whole file in %.1f s",
                info.track.name, info.version, failure.error.message, attempt, options.lock_retries, wait)
    time.sleep(wait)


def describe(statement: Statement) -> str:
    """How a heartbeat names the running statement: `statement 3 (line 40)`."""
    return f"statement {statement.index} (line {statement.line})"


def describe_span(first: Statement, last: Statement) -> str:
    """How a heartbeat names a message of statements: `statements 3-9 (lines 40-95)`."""
    if first is last:
        return describe(first)
    return f"statements {first.index}-{last.index} (lines {first.line}-{last.line})"


def _apply_with_psql(context: Context, scripts: list[Script], psql: str | None) -> Applied:
    """Hand the version's files to psql; atomically with the history row when they allow it.

    psql connects with the keywords of the run's file session and first sends the SETs the tool
    made on it (the dead-client check, options a pooler refused) and the fence; its notices
    reach stderr line by line as psql prints them.
    """
    from migrate.apply.psql import PsqlError, require_psql, run_files

    info, recorder, files, options = context.info, context.recorder, context.files, context.options
    assert info.migration is not None
    psql = psql or require_psql(options.psql_path, scripts, context.root)
    assert psql is not None
    transactional = all(script.no_transaction is None for script in scripts)
    started = time.perf_counter()
    for attempt in range(1, options.lock_retries + 2):
        attempt_started = time.perf_counter()
        files.start_file()
        session_sql = files.session.restore_sql
        invalid_before = set() if transactional else read_invalid_indexes(files.connection)
        try:
            if transactional:
                record_sql = (recorder.applied_sql(info.track, info.migration) + ";\n"
                              + recorder.attempt_sql(info.track, info.migration, APPLIED))
                first = ";\n".join(filter(None, [session_sql, _fence(context, transaction=True)]))
                run_files(psql, files.session.params, scripts, single_transaction=True,
                          final_sql=RESET_SESSION + ";\n" + record_sql, first_sql=first, on_notice=context.note)
                files.finished(None)  # nothing ran on the file session: psql had its own
                context.sent = 0
                _keep_late_notices(context)  # psql printed them after its attempt row was composed
            else:
                _fence_and_start(context, info)
                run_files(psql, files.session.params, scripts, single_transaction=False, first_sql=session_sql or None,
                          on_notice=context.note)
                left = sorted(read_invalid_indexes(files.connection) - invalid_before)
                if left:
                    raise PsqlError(None, None, "XX002", f"the file left INVALID index(es) {', '.join(left)}",
                                    f"drop them (DROP INDEX CONCURRENTLY {left[0]};) and run migrate again")
                elapsed = int((time.perf_counter() - started) * 1000)
                with files.connection.cursor() as cursor:
                    cursor.execute("BEGIN;\n" + recorder.applied_sql(info.track, info.migration, execution_ms=elapsed)
                                   + ";\n" + recorder.attempt_sql(info.track, info.migration, APPLIED,
                                                                  duration_ms=elapsed, notices=_pending(context),
                                                                  started=context.started)
                                   + ";\nCOMMIT;\n" + files.closing_sql())
                    files.finished(cursor.fetchone()[0])
            return Applied(info, int((time.perf_counter() - started) * 1000), transactional, attempt, "psql")
        except PsqlError as error:
            if error.sqlstate == FENCED and FENCE_MARK in error.message:
                raise AlreadyApplied(error.message) from None
            failure = StatementFailed(None, 0, ServerError(error.sqlstate, error.message, error.detail, None, None,
                                                           error.context), 0, path=error.path, line=error.line)
            elapsed = int((time.perf_counter() - attempt_started) * 1000)
            if error.sqlstate == LOCK_NOT_AVAILABLE and transactional and attempt <= options.lock_retries:
                note_retry(context, failure, elapsed, attempt)
                continue
            total_ms = int((time.perf_counter() - started) * 1000)
            left = [] if transactional else sorted(read_invalid_indexes(files.connection) - invalid_before)
            fail(context, failure, transactional, total_ms, elapsed, left, attempt)
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
    """End whatever transaction the failure left open; a dead connection, or none open, needs nothing."""
    if connection.closed or connection.info.transaction_status == IDLE:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("ROLLBACK")
    except Exception:  # the server went away; nothing is left to roll back
        pass


def where_failed(context: Context, failure: StatementFailed) -> tuple[int | None, int | None, str]:
    """Line, column and `file:line:column` of a failure; inside a DO block or function, its line there."""
    statement, error = failure.statement, failure.error
    if statement is None and failure.span is not None:
        first = failure.span[0]
        return first.line, first.column, f"{display_path(first.file.path, context.root)}:{first.line}:{first.column}"
    if statement is None:
        assert context.info.migration is not None
        path = failure.path or context.info.files_to_run[0].path
        shown = display_path(path, context.root)
        if failure.line is None:
            return None, None, shown
        return failure.line, None, f"{shown}:{failure.line}"
    inside = context_location(statement, error.context)
    if inside is not None:
        line, column = inside
    else:
        offset = statement.offset
        if error.position is not None:
            within = error.position - 1 - failure.prefix_length
            if 0 <= within < len(statement.text):
                offset += within
        line, column = locate(statement.file.text, offset)
    return line, column, f"{display_path(statement.file.path, context.root)}:{line}:{column}"


def _bounded(text: str | None) -> str:
    """One line of at most EXCERPT characters (a message can quote a whole file)."""
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= EXCERPT else line[:EXCERPT - 3] + "..."


def fail(
    context: Context,
    failure: StatementFailed,
    transactional: bool,
    elapsed: int,
    attempt_ms: int,
    invalid_indexes: list[str],
    attempts: int,
    total: int = 0,
) -> None:
    """Record the failure on a clean session (a new one if needed) and raise MigrationFailed saying what
    committed, what was rolled back, where it failed and what to do."""
    info, recorder = context.info, context.recorder
    assert info.migration is not None
    statement, error = failure.statement, failure.error
    line, _, where = where_failed(context, failure)
    sqlstate = error.sqlstate or "-----"
    message = _bounded(error.message)
    detail = f" ({_bounded(error.detail)})" if error.detail else ""
    context_line = f" [CONTEXT: {_bounded(error.context)}]" if error.context else ""
    span = None  # the message of statements the server went away in
    if failure.span is not None:
        first, last = failure.span
        span = f"statement {first.index}" if first is last else f"statements {first.index}-{last.index}"
    at_statement = (f" (statement {statement.index})" if statement is not None
                    else f" ({span})" if span else " (psql)")
    recorded_text = f"{sqlstate}: {message}{detail} at {where}{at_statement}{context_line}"
    if transactional:
        outcome = "rolled back"
    elif statement is None:
        outcome = "what ran before the failing line stays committed (the file runs outside a transaction)"
    elif failure.committed:
        done = ("statement 1 was committed and stays" if failure.committed == 1
                else f"statements 1-{failure.committed} were committed and stay")
        outcome = (f"{done} in place (the file runs outside a transaction, {total} statements); statement "
                   f"{statement.index} and whatever its own transaction held were rolled back")
    else:
        outcome = "nothing committed (the file runs outside a transaction)"
    if invalid_indexes:
        names = ", ".join(invalid_indexes)
        outcome += (f"; it left INVALID index(es) {names}: drop them (DROP INDEX CONCURRENTLY {invalid_indexes[0]}) "
                    "before running again, or CREATE INDEX ... IF NOT EXISTS will skip the broken index")
    if error.sqlstate == LOCK_NOT_AVAILABLE:
        outcome += (f"; the lock was not available after {attempts} attempt(s): find the blocking session in "
                    "pg_stat_activity, or raise MIGRATE_SQL_LOCK_TIMEOUT / MIGRATE_LOCK_RETRIES")
    lost = context.files.session.closed or (error.sqlstate or "").startswith(SERVER_GONE)
    recorded = "recorded as failed"
    try:
        context.files.clean()  # ROLLBACK, DISCARD ALL (the file's role and settings gone), or a new session
        recorder.record_failed(info.track, info.migration, recorded_text, elapsed)
        recorder.record_attempt(recorder.attempt_sql(
            info.track, info.migration, FAILED, duration_ms=attempt_ms, sqlstate=error.sqlstate,
            message=f"{message}{detail}{context_line}",
            statement_number=statement.index if statement is not None else None, line=line,
            notices=context.take_notices(), started=context.started))
    except Exception as record_error:  # the server is gone: say so, the failure itself matters more
        recorded = f"could not be recorded ({type(record_error).__name__}: the server did not answer)"
    hint = f"; hint: {_bounded(error.hint)}" if error.hint else ""
    failed_at = (f" at statement {statement.index}" if statement is not None
                 else f" in {span}" if span else " in psql")
    advice = ("the server ended the session, which is not the file's fault: check that the server is up and "
              "run migrate again" if lost else "fix the file (or write a new migration) and run migrate again")
    raised = MigrationFailed(
        f"{where}: ERROR {sqlstate}: {message}{detail}{hint}{context_line}; {info.track.name} version "
        f"{info.version} failed{failed_at}, {outcome}, {recorded}; {advice}"
    )
    raised.recorded = recorded == "recorded as failed"  # type: ignore[attr-defined]
    raise raised
