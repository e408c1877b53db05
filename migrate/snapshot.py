"""Files + history -> Plan: what every command reads before it decides anything.

A run reads every migration file (disk) and opens its session (connect, run lock, history:
network round trips). The two wait on different things, so the session opens on a second
thread (`Background`) while the files are read (bench/RESULTS.md). A bad file is reported at
once without waiting for the server; the session opened meanwhile is then closed (its run
lock released) as soon as it exists.

Read-only commands (status, dry-run) take a snapshot without the lock and write nothing;
writing commands (migrate, repair, baseline) read the history only once the run lock is held.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Generic, TypeVar

from migrate.database.connection import Session, wait_until_ready
from migrate.database.run_lock import RunLock, open_locked_session, open_run_lock
from migrate.errors import ConfigError
from migrate.files.sqlfiles import FilesRefused, MigrationVersion, find_migration_versions
from migrate.history.tables import (
    ATTEMPTS_TABLE,
    HistoryRow,
    ensure_history_tables,
    ledger_warnings,
    read_all_columns,
    read_history,
    read_interrupted,
    read_ledger_access,
)
from migrate.plan import Plan, build_plan, mark_interrupted
from migrate.settings import Settings
from migrate.tracks import Track, build_tracks

T = TypeVar("T")


def find_all_versions(settings: Settings, tracks: list[Track]) -> dict[str, list[MigrationVersion]]:
    """Every version of every track on disk; bad names and unreadable files raise.

    Entries that are not regular files are gathered across the tracks: one error names them all.
    """
    if not settings.migrations_dir.is_dir():
        raise ConfigError(
            f"MIGRATIONS_DIR {settings.migrations_dir} does not exist; run from the project root "
            "or set MIGRATIONS_DIR"
        )
    versions: dict[str, list[MigrationVersion]] = {}
    refused: list[str] = []
    for track in tracks:
        try:
            versions[track.name] = find_migration_versions(track, settings.root)
        except FilesRefused as error:
            refused += error.lines
    if refused:
        raise FilesRefused(refused)
    return versions


def read_plan(settings: Settings, session: Session, tracks: list[Track],
              versions: dict[str, list[MigrationVersion]]) -> Plan:
    """The plan from these files and the history as this session reads it now."""
    history = read_history(session.connection, settings.schema, tracks)
    return build_plan(tracks, versions, history, settings.root)


def files_while_connecting(settings: Settings, tracks: list[Track], open_session: Callable[[], T]
                           ) -> tuple[dict[str, list[MigrationVersion]], T]:
    """Read the migration files while `open_session` runs on a second thread.

    `open_session` returns a tuple whose first item is the session; it is closed when the
    files turn out bad (the caller's error is raised at once).
    """
    opening = Background(open_session, discard=lambda opened: opened[0].close())  # type: ignore[index]
    try:
        versions = find_all_versions(settings, tracks)
    except BaseException:
        opening.abandon()
        raise
    return versions, opening.result()


def read_plan_snapshot(settings: Settings, timeout: float | None = None) -> Plan:
    """Files + history as they are now, without the lock and without writing anything; versions
    interrupted mid-file are marked from the attempt log (when it exists).

    Read-only: a person is waiting, so the server gets MIGRATE_READ_TIMEOUT, not MAX_WAIT_TIME.
    A ledger the platform's API roles can reach is reported among the plan's warnings (migrate closes it).
    """
    tracks = build_tracks(settings.migrations_dir)

    def open_session() -> tuple[Session, dict[str, list[HistoryRow]], dict[tuple[str, str], Any], list[str]]:
        session = wait_until_ready(settings.target, timeout, read_only=True)
        try:
            connection, schema = session.connection, settings.schema
            history, interrupted = read_history_and_interrupted(connection, schema, tracks)
            access, _ = read_ledger_access(connection, schema, tracks)
            return session, history, interrupted, ledger_warnings(schema, access)
        finally:
            session.close()  # the history is read: nothing else is asked of this server

    versions, (_, history, interrupted, exposed) = files_while_connecting(settings, tracks, open_session)
    plan = mark_interrupted(build_plan(tracks, versions, history, settings.root), interrupted)
    return plan._replace(warnings=plan.warnings + tuple(exposed)) if exposed else plan


def read_history_and_interrupted(connection: Any, schema: str, tracks: list[Track]
                                 ) -> tuple[dict[str, list[HistoryRow]], dict[tuple[str, str], Any]]:
    """The history rows and the versions interrupted mid-file (from the attempt log, when it exists); reads only."""
    existing = read_all_columns(connection, schema, tracks)
    interrupted = read_interrupted(connection, schema) if ATTEMPTS_TABLE in existing else {}
    return read_history(connection, schema, tracks, existing), interrupted


def read_plan_readonly(settings: Settings, session: Session, tracks: list[Track],
                       versions: dict[str, list[MigrationVersion]]) -> Plan:
    """status's plan, on a session the caller holds (drift reads the plan and the catalog on one session)."""
    history, interrupted = read_history_and_interrupted(session.connection, settings.schema, tracks)
    return mark_interrupted(build_plan(tracks, versions, history, settings.root), interrupted)


def open_locked_snapshot(settings: Settings) -> tuple[RunLock, list[Track], dict[str, list[MigrationVersion]],
                                                      dict[str, set[str]], dict[str, list[HistoryRow]]]:
    """For migrate: the run lock on a session of its own, the files, and the history read under the lock.

    Creates nothing: the caller ensures the history tables once bad input is ruled out.
    """
    tracks = build_tracks(settings.migrations_dir)

    def open_session() -> tuple[RunLock, dict[str, set[str]], dict[str, list[HistoryRow]]]:
        lock = open_run_lock(settings.target, settings.schema, settings.run.run_lock_timeout)
        try:
            connection = lock.session.connection
            existing = read_all_columns(connection, settings.schema, tracks)
            return lock, existing, read_history(connection, settings.schema, tracks, existing)
        except BaseException:
            lock.close()
            raise

    versions, (lock, existing, history) = files_while_connecting(settings, tracks, open_session)
    return lock, tracks, versions, existing, history


def open_locked_plan(settings: Settings) -> tuple[Session, Plan]:
    """For repair and baseline: the run lock held, the history tables in place, the plan read under the lock."""
    tracks = build_tracks(settings.migrations_dir)
    session = open_locked_session(settings.target, settings.schema, settings.run.run_lock_timeout)
    try:
        ensure_history_tables(session.connection, settings.schema, tracks)
        return session, read_plan(settings, session, tracks, find_all_versions(settings, tracks))
    except BaseException:
        session.close()
        raise


class Background(Generic[T]):
    """`call()` started on a daemon thread; `result()` joins it and returns or re-raises.

    The thread is a daemon: a caller that fails first `abandon`s the call, whose result is
    then released by `discard` as soon as it exists.
    """

    def __init__(self, call: Callable[[], T], discard: Callable[[T], None]) -> None:
        self._call = call
        self._discard = discard
        self._lock = threading.Lock()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._done = False
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name="migrate-open", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            value = self._call()
        except BaseException as error:  # handed to result(), re-raised in the caller's thread
            with self._lock:
                self._error, self._done = error, True
            return
        with self._lock:
            self._value, self._done = value, True
            abandoned = self._abandoned
        if abandoned:
            self._discard(value)

    def result(self) -> T:
        """Wait for the call; its exception is raised here, in the caller's thread."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def abandon(self) -> None:
        """The caller gave up: discard the result now if it exists, else as soon as it does."""
        with self._lock:
            self._abandoned = True
            ready = self._done and self._error is None
        if ready:
            self._discard(self._value)  # type: ignore[arg-type]
