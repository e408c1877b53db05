"""Migrations applied to a shadow database exactly as `migrate` applies them: the expected state.

drift (the target's applied versions) and `schema dump` (every version, or up to one) need the
schema the migration files produce, built the way the target's was: each version by
apply.runner.apply_version, tracks in order and versions by number, each file in a fresh
session (apply/file_session.py), a file that needs psql through psql, recorded in the shadow's
own history tables (created as migrate creates them, so the shadow's app schema holds what the
target's does). verify runs its first pass the same way and shares `prepare` and the failure
hints below.

Use, with the files parsed before the shadow exists (a syntax error, a missing psql: refused
with nothing created):

    files = prepare(settings, select_versions(tracks, find_all_versions(settings, tracks), settings.root, upto))
    with open_shadow(settings, files.reach, "dump") as shadow:
        applied = apply_on_shadow(settings, shadow, files)

A version with a cluster-wide statement (CREATE ROLE, ALTER SYSTEM, ...) runs only on a
disposable shadow server; on a shared one it is skipped and listed in `ShadowApplied.skipped`,
so the caller can say that what it creates is missing from the expected state. A version that
fails raises ShadowFailed (exit 4) naming its files, with what the shadow lacked when that is
the likely cause; nothing after it runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from migrate.checks.reach import Reach, merge_all, reach_of_file
from migrate.errors import MigrateError, ValidationError
from migrate.files.sqlfiles import MigrationVersion
from migrate.paths import display_path
from migrate.plan import MigrationInfo, build_plan
from migrate.settings import Settings
from migrate.tracks import Track

if TYPE_CHECKING:
    from migrate.checks.shadow import Shadow
    from migrate.files.statements import Script

log = logging.getLogger("migrate")


class ShadowFiles(NamedTuple):
    """The versions to apply, in order, parsed; what each file reaches (by its display path)."""

    items: list[MigrationInfo]
    scripts: dict[tuple[str, str], list[Script]]  # (track, version) -> the files that run, parsed
    reaches: dict[str, Reach]  # display path -> what the file reaches
    psql: str | None  # psql, when a file needs it

    @property
    def reach(self) -> Reach:
        """Every file's reach, merged: what open_shadow needs (roles to create, objects left out of the copy)."""
        return merge_all(self.reaches.values())


class ShadowApplied(NamedTuple):
    """What apply_on_shadow did: the versions applied, and those skipped (cluster-wide, shared server)."""

    applied: list[MigrationInfo]
    skipped: list[tuple[MigrationInfo, list[str]]]  # the version, and its cluster-wide statements as text


class ShadowFailed(ValidationError):
    """A version failed on the shadow database: the expected state could not be built (exit 4)."""

    def __init__(self, message: str, item: MigrationInfo, files: list[str], applied: list[MigrationInfo]) -> None:
        super().__init__(message)
        self.item = item
        self.files = files
        self.applied = applied


def select_versions(tracks: list[Track], versions: dict[str, list[MigrationVersion]], root: Path,
                    upto: dict[str, str | None] | None = None) -> list[MigrationInfo]:
    """Every version on disk (tracks in order, versions by number), each track up to and including
    upto[track] (compared by number; None or absent: all of the track's versions)."""
    plan = build_plan(tracks, versions, {track.name: [] for track in tracks}, root)
    limits = {name: int(version) for name, version in (upto or {}).items() if version is not None}
    return [item for item in plan.to_apply()
            if item.track.name not in limits or (item.number is not None and item.number <= limits[item.track.name])]


def prepare(settings: Settings, items: list[MigrationInfo]) -> ShadowFiles:
    """Parse the files each item runs (its files_to_run: an item may name only some of its files) and find
    psql when one needs it; raises (exit 4) before any shadow exists."""
    from migrate.apply.psql import require_psql
    from migrate.files.statements import parse_file

    root = settings.root
    scripts = {(item.track.name, item.version): [parse_file(f, root, settings.run.executor)
                                                 for f in item.files_to_run]
               for item in items if item.migration is not None}
    every = [script for parts in scripts.values() for script in parts]
    psql = require_psql(settings.run.psql_path, every, root)
    reaches = {display_path(script.file.path, root): reach_of_file(script.file.text) for script in every}
    return ShadowFiles([item for item in items if item.migration is not None], scripts, reaches, psql)


def apply_on_shadow(settings: Settings, shadow: Shadow, files: ShadowFiles, quiet: bool = False) -> ShadowApplied:
    """Apply `files.items` in their order on the shadow, each as migrate would; see the module doc.

    quiet: the files' server notices and the history tables' creation, logged at INFO as migrate logs them,
    are about the shadow, not the target: kept off stderr (unless --verbose) for drift and dump."""
    with _QuietInfo(quiet and not log.isEnabledFor(logging.DEBUG)):
        return _apply(settings, shadow, files)


class _QuietInfo(logging.Filter):
    """While active, drops the `migrate` logger's INFO records (warnings and errors still pass)."""

    def __init__(self, active: bool) -> None:
        super().__init__()
        self.active = active

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO

    def __enter__(self) -> None:
        if self.active:
            log.addFilter(self)

    def __exit__(self, *exc: object) -> None:
        log.removeFilter(self)


def _apply(settings: Settings, shadow: Shadow, files: ShadowFiles) -> ShadowApplied:
    from migrate.apply.file_session import FileSession
    from migrate.apply.runner import apply_version
    from migrate.database.connection import this_host
    from migrate.history.recorder import Recorder
    from migrate.history.tables import ensure_history_tables

    tracks = list({item.track.name: item.track for item in files.items}.values())
    applied: list[MigrationInfo] = []
    skipped: list[tuple[MigrationInfo, list[str]]] = []
    session = FileSession(shadow.target)
    try:
        if files.items:  # as migrate leaves it; with nothing applied the target may not even have the app schema
            ensure_history_tables(session.connection, settings.schema, tracks)
        recorder = Recorder(session, settings.schema, this_host(), f"shadow@{this_host()}")
        for item in files.items:
            parts = files.scripts[(item.track.name, item.version)]
            names = [display_path(script.file.path, settings.root) for script in parts]
            cluster = [str(statement) for name in names for statement in files.reaches[name].cluster]
            if not all(shadow.may_run(files.reaches[name]) for name in names):
                log.info("%s: not run on the shadow: cluster-wide statement(s) %s, and the shadow server is shared",
                         ", ".join(names), ", ".join(cluster[:3]))
                skipped.append((item, cluster))
                continue
            try:
                apply_version(session, recorder, item, parts, settings.root, settings.run, files.psql)
            except MigrateError as error:
                head = error.message.split(f"; {item.track.name} version {item.version} failed", 1)[0]
                hints = failure_hints(shadow, head, [f"{done.track.name} version {done.version}"
                                                     for done, _ in skipped])
                raise ShadowFailed(f"{head}; {item.track.name} version {item.version} fails on the shadow database, "
                                   f"so the expected state could not be built; {'; '.join(hints)}",
                                   item, names, applied) from None
            applied.append(item)
    finally:
        session.close()
    return ShadowApplied(applied, skipped)


def failure_hints(shadow: Shadow, head: str, skipped: list[str]) -> list[str]:
    """What likely made a file fail on the shadow when it ran on the target: what the shadow lacks."""
    hints = []
    lowered = head.lower()
    if "extension" in lowered and ("not available" in lowered or "control file" in lowered):
        hints.append(f"the shadow's server ({shadow.server.label()}) lacks that extension: point "
                     "MIGRATE_SHADOW_URL at a server that has it (for Supabase, `supabase start`'s database)")
    elif "does not exist" in lowered:
        hints.append("the shadow lacks what the file expects: see the missing-role, missing-extension and "
                     "shadow-setup notes, or describe the platform in MIGRATE_SHADOW_SETUP")
    if skipped:
        hints.append(f"{', '.join(skipped)} did not run (cluster-level), which may be why")
    return hints
