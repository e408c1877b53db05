"""A run's pending versions applied in order: each in a fresh session, under one heartbeat, the run
lock checked before each, and each reported only once it is durable.

Reporting: a fast version commits without waiting for its WAL flush (runner.py); it is reported
(printed, returned in JSON) only once it is on disk: when a later synchronous commit returned
(it flushed everything before it), or when the server's WAL flush position passed the version's
commit, which a small thread asks the run lock's session every POLL seconds while lines wait, so
no line is held back behind a slow migration. A version commits synchronously when it took SLOW
seconds, when it is the run's last, and when lines have waited WAIT seconds or EVERY versions:
a run of fast migrations pays one flush per EVERY versions instead of one per version, and what
it reports stays at most that far behind what it committed.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from migrate.apply.file_session import FileSession
from migrate.apply.heartbeat import Heartbeat
from migrate.database.run_lock import RunLock
from migrate.errors import MigrationFailed
from migrate.history.recorder import Recorder
from migrate.plan import MigrationInfo
from migrate.settings import RunOptions

if TYPE_CHECKING:
    from migrate.apply.runner import Applied
    from migrate.files.statements import Script

log = logging.getLogger("migrate")
POLL = 0.05  # seconds between two looks at the server's WAL flush position while lines wait
SLOW = 0.05  # a version that took this long commits synchronously: a flush costs nothing beside it
WAIT = 0.1  # seconds the oldest unreported version may wait before a commit flushes it
EVERY = 10  # versions at most between two synchronous commits


class Reporter:
    """Applied versions waiting for a flush, reported in order once one has happened."""

    def __init__(self, lock: RunLock, committed: Callable[[Applied], None]) -> None:
        self.lock = lock
        self.committed = committed
        self.waiting: list[tuple[float, Applied]] = []
        self.mutex = threading.Lock()
        self.stop = threading.Event()

    def due(self, elapsed: float) -> bool:
        """Should the version that has run `elapsed` seconds commit synchronously?"""
        with self.mutex:
            waited = time.monotonic() - self.waiting[0][0] if self.waiting else 0.0
            return elapsed >= SLOW or waited >= WAIT or len(self.waiting) >= EVERY - 1

    def add(self, done: Applied) -> None:
        with self.mutex:
            self.waiting.append((time.monotonic(), done))
            if done.durable:
                self._report()

    def durable_now(self) -> None:
        """A synchronous commit has just returned (a failed row): everything waiting is on disk."""
        with self.mutex:
            self._report()

    def flush(self, patience: float = 5.0) -> None:
        """At the run's end (its last version was skipped by the fence): report what the WAL flush reaches."""
        deadline = time.monotonic() + patience
        while self.waiting and time.monotonic() < deadline and self._report_flushed():
            time.sleep(POLL)

    def _report_flushed(self) -> bool:
        """Report the waiting versions the server's WAL flush has passed; False if it cannot tell."""
        flushed = self.lock.flushed_lsn()
        if flushed is None:
            return False
        with self.mutex:
            while self.waiting and (self.waiting[0][1].commit_lsn or 0) <= flushed:
                self.committed(self.waiting.pop(0)[1])
        return True

    def _report(self) -> None:
        for _, done in self.waiting:
            self.committed(done)
        self.waiting.clear()

    def watch(self) -> None:
        """The thread's loop: while lines wait, report those the server has flushed to disk."""
        while not self.stop.wait(POLL):
            if self.waiting:
                self._report_flushed()


def apply_all(lock: RunLock, files: FileSession, recorder: Recorder, todo: list[MigrationInfo],
              scripts: dict[tuple[str, str], list[Script]], root: Path, options: RunOptions, psql: str | None,
              committed: Callable[[Applied], None]) -> None:
    """Apply `todo` in order; `committed` is called once per version, once it is durable.

    Stops before a version when the run lock's session is gone (RunLockLost); a version another
    runner applied meanwhile (the fence) is skipped with a line saying so.
    """
    from migrate.apply.runner import AlreadyApplied, apply_version

    reporter = Reporter(lock, committed)
    watcher = threading.Thread(target=reporter.watch, name="migrate-flush", daemon=True)
    watcher.start()
    try:
        with Heartbeat("", options.heartbeat_interval) as beat:
            for index, item in enumerate(todo):
                lock.check()
                last = index == len(todo) - 1
                try:
                    done = apply_version(files, recorder, item, scripts[(item.track.name, item.version)], root,
                                         options, psql, lambda elapsed, last=last: last or reporter.due(elapsed),
                                         beat)
                except AlreadyApplied:
                    log.warning("%s version %s was applied by another runner meanwhile (this run's lock was taken "
                                "over); skipped", item.track.name, item.version)
                    continue
                except MigrationFailed as error:
                    if getattr(error, "recorded", False):
                        reporter.durable_now()  # the failed row committed synchronously, flushing the earlier ones
                    raise
                reporter.add(done)
        reporter.flush()  # the last version was skipped by the fence: flush what waits
    finally:
        reporter.stop.set()
        watcher.join()
