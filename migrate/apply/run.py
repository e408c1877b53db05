"""A run's pending versions applied in order, under one heartbeat, each reported once it committed.

One by one through runner.apply_version, or with batch mode through batch (loaded only then).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from migrate.apply.heartbeat import Heartbeat
from migrate.database.connection import Session
from migrate.history.recorder import Recorder
from migrate.plan import MigrationInfo
from migrate.settings import RunOptions

if TYPE_CHECKING:
    from migrate.apply.runner import Applied
    from migrate.files.statements import Script


def apply_all(session: Session, recorder: Recorder, todo: list[MigrationInfo],
              scripts: dict[tuple[str, str], list[Script]], root: Path, options: RunOptions, psql: str | None,
              committed: Callable[[Applied], None]) -> None:
    """Apply `todo` in order; `committed` is called once per version, after its commit.

    Only the run's last version waits for its WAL flush, which flushes every earlier one (runner.py).
    """
    with Heartbeat("", options.heartbeat_interval) as beat:
        if options.batch:
            from migrate.apply.batch import BatchRun, apply_in_batches

            apply_in_batches(BatchRun(session, recorder, root, options, scripts, psql, beat, committed), todo)
            return
        from migrate.apply.runner import apply_version

        for index, item in enumerate(todo, start=1):
            committed(apply_version(session, recorder, item, scripts[(item.track.name, item.version)], root,
                                    options, psql, flush=index == len(todo), beat=beat))
