"""Batch mode (`migrate --batch`, MIGRATE_BATCH=true): pending transactional versions in one transaction.

Why: without it every version is its own transaction, so N versions cost N commits. In batch
mode a run of transactional versions is one transaction with a SAVEPOINT per version
(bench/RESULTS.md measures what that saves). It is opt-in because the batch holds every lock
its versions take until it commits.

Why savepoints: a failing version rolls back to its own savepoint, the versions before it
commit, and the failure is recorded and reported by runner.fail exactly as without batch
mode (same `failed` row, attempt row, message and exit code). So the database ends where a
per-version run would have ended.

Per version, as runner._run_in_one_transaction does per transaction: SAVEPOINT joined to the
first statement (BEGIN too, for the batch's first version), and to the last: a deferred-
constraint check, the session reset (runner.reset_session_sql), the history and attempt rows
and RELEASE (and COMMIT, for the batch's last version). The check is SET CONSTRAINTS ALL
IMMEDIATE inside a nested savepoint that is then rolled back: a violation is blamed on its
own version, not on the final COMMIT, and the next version still starts with every constraint
in its declared mode. Each row measures its own version: the client's time before its last
message plus the server's time in that message (statement_timestamp()), because
transaction_timestamp() is the batch's start.

What does not run in a batch ends it (what is done commits) and runs the normal way; a new
batch starts after it: files without a transaction, files that need psql, and files with a
statement that must come first in a transaction (SET TRANSACTION ...) or that would change
the transaction for the versions after it (SET CONSTRAINTS). Errors the batch itself may
cause end it the same way, the failing version rolled back to its savepoint and then run on
its own: a lock timeout (the batch holds locks; retried with the normal retry count and
backoff), out of shared memory (the batch's locks), an enum value added earlier in the batch,
pending trigger events, a statement refused inside a transaction block or a subtransaction.
A lost connection loses the whole uncommitted batch; it is reported as without batch mode.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrate.apply.heartbeat import Heartbeat
from migrate.apply.runner import (
    BEGIN,
    LOCK_NOT_AVAILABLE,
    NO_FLUSH,
    Applied,
    Context,
    StatementFailed,
    apply_version,
    describe,
    fail,
    note_retry,
    reset_session_sql,
    rollback,
    where_failed,
)
from migrate.database.connection import Session, server_error
from migrate.errors import MigrationFailed
from migrate.files.statements import Script, Statement
from migrate.history.recorder import Recorder
from migrate.history.tables import APPLIED, RETRYING
from migrate.plan import MigrationInfo
from migrate.settings import RunOptions

log = logging.getLogger("migrate")
SAVEPOINT = "migrate_batch_version"
CHECK = "migrate_batch_check"
# deferred constraints checked now, then their declared modes restored (SET CONSTRAINTS lasts the transaction)
CHECK_DEFERRED = f"SAVEPOINT {CHECK};\nSET CONSTRAINTS ALL IMMEDIATE;\nROLLBACK TO SAVEPOINT {CHECK}"
# errors the batch can cause rather than the file: the version runs again on its own
RUN_ALONE = {
    "25001": "refused inside a transaction block or subtransaction",
    "2D000": "ends the transaction",
    "53200": "out of shared memory (the batch holds many locks)",
    "55P04": "uses an enum value added earlier in the batch",
    "55006": "object in use (pending trigger events)",
}
IN_ERROR = 3  # psycopg2.extensions.TRANSACTION_STATUS_INERROR: the savepoint can still be rolled back to


@dataclass(frozen=True)
class BatchRun:
    """What every version of a batch-mode run shares."""

    session: Session
    recorder: Recorder
    root: Path
    options: RunOptions
    scripts: dict[tuple[str, str], list[Script]]
    psql: str | None
    beat: Heartbeat
    report: Callable[[Applied], None]  # called once per version, after it committed


def batch_blocker(scripts: Sequence[Script]) -> str | None:
    """Why a version cannot run inside a batch; None when it can."""
    for script in scripts:
        if script.needs_psql:
            return f"needs psql ({script.needs_psql})"
        if script.no_transaction:
            return f"no transaction: {script.no_transaction}"
        for statement in script.statements:
            if statement.sets_transaction:
                return f"{statement.sets_transaction} (statement {statement.index}, line {statement.line})"
    return None


def apply_in_batches(run: BatchRun, todo: Sequence[MigrationInfo]) -> None:
    """Apply `todo` in order: runs of batchable versions as batches, the others the normal way."""
    blockers = [batch_blocker(run.scripts[(item.track.name, item.version)]) for item in todo]
    position = batches = 0
    while position < len(todo):
        if blockers[position] is not None:
            log.debug("batch: %s version %s runs on its own: %s", todo[position].track.name,
                      todo[position].version, blockers[position])
            position = _alone(run, todo, position)
            continue
        end = position
        while end < len(todo) and blockers[end] is None:
            end += 1
        batches += 1
        position = _run_batch(run, todo, position, end, batches)


def _alone(run: BatchRun, todo: Sequence[MigrationInfo], position: int, tried: int = 0) -> int:
    """Apply todo[position] the normal way (runner.apply_version); the index after it."""
    item = todo[position]
    run.report(apply_version(run.session, run.recorder, item, run.scripts[(item.track.name, item.version)],
                             run.root, run.options, run.psql, flush=position == len(todo) - 1, beat=run.beat,
                             tried=tried))
    return position + 1


def _run_batch(run: BatchRun, todo: Sequence[MigrationInfo], start: int, end: int, number: int) -> int:
    """One transaction for todo[start:end]; the index where the run goes on."""
    done: list[Applied] = []
    for position in range(start, end):
        item = todo[position]
        closing = None
        if position == end - 1:
            closing = "COMMIT" if end == len(todo) else NO_FLUSH + ";\nCOMMIT"  # the run's last commit flushes
        started = time.perf_counter()
        try:
            done.append(_run_version(run, item, number, begin=position == start, closing=closing))
        except StatementFailed as failure:
            return _after_failure(run, todo, position, done, failure, started)
        finally:
            run.beat.idle()
    for applied in done:
        run.report(applied)
    return end


def _run_version(run: BatchRun, item: MigrationInfo, number: int, begin: bool, closing: str | None) -> Applied:
    """One version inside the open batch: its statements, rows and RELEASE; raises StatementFailed."""
    import psycopg2

    assert item.migration is not None
    statements = [s for script in run.scripts[(item.track.name, item.version)] for s in script.statements]
    run.beat.label = f"{item.track.name} {item.migration.filenames}"
    started = time.perf_counter()
    with run.session.connection.cursor() as cursor:
        for index, statement in enumerate(statements):
            prefix = ((BEGIN if begin else "") + f"SAVEPOINT {SAVEPOINT};\n") if index == 0 else ""
            query = prefix + statement.text
            if index == len(statements) - 1:
                query += ";\n" + _finish_sql(run, item, int((time.perf_counter() - started) * 1000))
                query += (";\n" + closing) if closing else ""
            try:
                run.beat.running(describe(statement))
                cursor.execute(query)
            except psycopg2.Error as error:
                raise StatementFailed(statement, len(prefix), server_error(error), 0) from error
    return Applied(item, int((time.perf_counter() - started) * 1000), True, batch=number)


def _finish_sql(run: BatchRun, item: MigrationInfo, client_ms: int) -> str:
    """Sent after a version's last statement: check deferred constraints, reset, record, RELEASE."""
    assert item.migration is not None
    # this version began client_ms before the server received its last message
    record = run.recorder.applied_sql(item.track, item.migration, client_ms=client_ms)
    attempt = run.recorder.attempt_sql(item.track, item.migration, APPLIED, client_ms=client_ms)
    return ";\n".join([CHECK_DEFERRED, reset_session_sql(run.session), record, attempt,
                       f"RELEASE SAVEPOINT {SAVEPOINT}"])


def _after_failure(run: BatchRun, todo: Sequence[MigrationInfo], position: int, done: list[Applied],
                   failure: StatementFailed, started: float) -> int:
    """A version failed inside the batch: keep the ones before it, then fail, retry, or run it alone."""
    item = todo[position]
    assert item.migration is not None
    elapsed = int((time.perf_counter() - started) * 1000)
    context = Context(item, run.root, run.recorder, run.session)
    statements = [s for script in run.scripts[(item.track.name, item.version)] for s in script.statements]
    sqlstate = failure.error.sqlstate or ""
    if not _keep_before(run.session.connection, bool(done)):
        _lost_batch(context, failure, elapsed, len(statements), len(done))
    for applied in done:
        run.report(applied)
    if sqlstate == LOCK_NOT_AVAILABLE and run.options.lock_retries > 0:
        # the batch's locks are released now: retry with the normal path's count and backoff
        note_retry(context, failure, elapsed, 1, run.options.lock_retries, run.options.lock_retry_delay)
        return _alone(run, todo, position, tried=1)
    if sqlstate in RUN_ALONE:
        _note_alone(run, context, failure, elapsed, RUN_ALONE[sqlstate])
        return _alone(run, todo, position)
    fail(context, failure, True, elapsed, elapsed, len(statements), [], 1)
    raise AssertionError("unreachable: fail raises")


def _keep_before(connection: Any, any_done: bool) -> bool:
    """Roll back to the failed version's savepoint and commit the versions before it; False when
    the savepoint is gone with the transaction (connection lost, or the COMMIT itself failed)."""
    import psycopg2

    if connection.closed or connection.info.transaction_status != IN_ERROR:
        rollback(connection)
        return False
    ending = f"ROLLBACK TO SAVEPOINT {SAVEPOINT};\n{NO_FLUSH};\nCOMMIT" if any_done else "ROLLBACK"
    try:  # not flushed: the failed row (or the version run next) commits after it and flushes
        with connection.cursor() as cursor:
            cursor.execute(ending)
    except psycopg2.Error:
        rollback(connection)
        return False
    return True


def _lost_batch(context: Context, failure: StatementFailed, elapsed: int, total: int, lost: int) -> None:
    """The whole batch is rolled back: fail as the normal path does, saying the earlier ones went too."""
    try:
        fail(context, failure, True, elapsed, elapsed, total, [], 1)
    except MigrationFailed as error:
        if not lost:
            raise
        raise MigrationFailed(f"{error.message}; the {lost} version(s) before it in this batch were rolled back "
                              "with it (not recorded as applied: the next run applies them)") from None


def _note_alone(run: BatchRun, context: Context, failure: StatementFailed, elapsed: int, why: str) -> None:
    """Log the batch try as a `retrying` attempt before the version runs on its own."""
    info, error = context.info, failure.error
    assert info.migration is not None
    statement: Statement | None = failure.statement
    line, _, _ = where_failed(context, failure)
    run.recorder.record_attempt(run.recorder.attempt_sql(
        info.track, info.migration, RETRYING, duration_ms=elapsed, sqlstate=error.sqlstate, message=error.message,
        statement_number=statement.index if statement else None, line=line))
    log.info("batch: %s version %s %s (%s: %s); committed the batch so far, running it on its own",
             info.track.name, info.version, why, error.sqlstate, error.message)
