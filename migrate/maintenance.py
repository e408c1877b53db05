"""History maintenance: `repair` (accept reviewed edits, clear failures) and `baseline`.

Both write history rows without running any migration, so both hold the run lock for their
whole run and read the plan only after it is held: a migrate running at the same moment
either finishes first or waits for us. Each one writes in a single transaction, so a crash
leaves the history as it was. Like Flyway's `repair` and `baseline`, and like them never
used implicitly: a changed file blocks `migrate` until a person decides.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from migrate import __version__, report
from migrate.database import (
    open_locked_session,
    this_host,
    wait_until_ready,
)
from migrate.errors import ConfigError, ValidationError
from migrate.guards import confirm
from migrate.history import ensure_history_tables, param_identifier, read_existing_columns, read_history
from migrate.plan import APPLIED, CHANGED, FAILED, MISSING, MigrationInfo, Plan, build_plan
from migrate.settings import Settings
from migrate.tracks import Track, build_tracks, track_names

log = logging.getLogger("migrate")


@dataclass(frozen=True)
class RepairAction:
    """One change repair makes (or would make, with --dry-run) to one history row."""

    track: str
    version: str
    kind: str  # "checksum" (re-aligned), "adopt" (row had none) or "delete-failed"
    files: str
    old: str | None = None
    new: str | None = None


@dataclass
class RepairResult:
    actions: list[RepairAction] = field(default_factory=list)
    dry_run: bool = False


@dataclass(frozen=True)
class BaselineEntry:
    track: str
    version: str
    files: str
    recorded: bool  # False: already recorded as applied with the same checksum, left alone


@dataclass
class BaselineResult:
    track: str
    up_to: str
    entries: list[BaselineEntry] = field(default_factory=list)


def _open_locked(settings: Settings) -> Any:
    """A primary connection holding the run lock, with the history tables in place."""
    connection = open_locked_session(settings)
    try:
        ensure_history_tables(connection, settings.schema, build_tracks(settings.migrations_dir))
    except BaseException:
        connection.close()
        raise
    return connection


def _plan(settings: Settings, connection: Any, tracks: list[Track]) -> Plan:
    from migrate.commands import find_all_versions

    versions = find_all_versions(settings, tracks)
    history = read_history(connection, settings.schema, tracks)
    return build_plan(tracks, versions, history, settings.root)


def build_repair_actions(plan: Plan) -> list[RepairAction]:
    """Pure: what repair changes, in plan order (tracks in order, versions by number)."""
    actions: list[RepairAction] = []
    for item in plan.items:
        files = item.files.filenames if item.files else (item.row.filename or "" if item.row else "")
        if item.row is None:
            continue
        if item.state == FAILED or (item.state == MISSING and item.row.status == FAILED):
            actions.append(RepairAction(item.track.name, item.row.version, "delete-failed", files,
                                        old=(item.row.error_message or "").strip().splitlines()[0]
                                        if item.row.error_message else None))
        elif item.state == CHANGED and item.files is not None:
            actions.append(RepairAction(item.track.name, item.row.version, "checksum", files,
                                        old=item.row.checksum, new=item.files.checksum))
        elif item.state == APPLIED and item.row.checksum is None and item.files is not None:
            actions.append(RepairAction(item.track.name, item.row.version, "adopt", files,
                                        new=item.files.checksum))
    return actions


def repair(settings: Settings, dry_run: bool = False, yes: bool = False,
           ask: Callable[[str], str] | None = None) -> RepairResult:
    """Re-align stored checksums with the files and delete `failed` rows (pending again).

    On a MIGRATE_CONFIRM environment the changes are listed and confirmed before anything is written.
    """
    tracks = build_tracks(settings.migrations_dir)
    if dry_run:
        connection = wait_until_ready(settings)
    else:
        connection = _open_locked(settings)
    try:
        plan = _plan(settings, connection, tracks)
        for warning in plan.warnings:
            log.warning("warning: %s", warning)
        result = RepairResult(build_repair_actions(plan), dry_run)
        if result.actions and not dry_run:
            preview = RepairResult(result.actions, dry_run=True)
            confirm(settings, f"Change {len(result.actions)} history row(s) on {settings.env_name}?",
                    f"no history row was changed on {settings.env_name!r}",
                    remedy="review `repair --dry-run` and pass --yes", yes=yes, ask=ask,
                    show=lambda: report.print_repair(preview, stream=sys.stderr))
            _apply_repair(connection, settings.schema, tracks, result.actions)
    finally:
        connection.close()
    report.print_repair(result)
    return result


def _apply_repair(connection: Any, schema: str, tracks: list[Track], actions: list[RepairAction]) -> None:
    from psycopg2 import sql

    by_name = {track.name: track for track in tracks}
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        try:
            for action in actions:
                table = param_identifier(connection, schema, by_name[action.track].history_table)
                if action.kind == "delete-failed":
                    cursor.execute(sql.SQL("DELETE FROM {} WHERE version = %s AND status = 'failed'").format(table),
                                   (action.version,))
                else:
                    cursor.execute(sql.SQL("UPDATE {} SET checksum = %s WHERE version = %s").format(table),
                                   (action.new, action.version))
            cursor.execute("COMMIT")
        except BaseException:
            if not connection.closed:
                cursor.execute("ROLLBACK")
            raise


def _parse_version(version: str) -> int:
    text = str(version).strip()
    if not text.isdigit():
        raise ConfigError(f"--version {version!r}: a baseline version is a number such as 004")
    return int(text)


def baseline(settings: Settings, version: str, track: str | None = None, yes: bool = False,
             ask: Callable[[str], str] | None = None) -> BaselineResult:
    """Mark every version of `track` up to `version` as applied, without running any of them.

    On a MIGRATE_CONFIRM environment the count is confirmed before anything is written.
    """
    up_to = _parse_version(version)
    track_name = track or track_names()[0]
    tracks = build_tracks(settings.migrations_dir)
    chosen = [t for t in tracks if t.name == track_name]
    if not chosen:
        raise ConfigError(f"--track {track_name!r}: unknown track; choose one of {', '.join(track_names())}")
    target = chosen[0]
    connection = _open_locked(settings)
    try:
        plan = _plan(settings, connection, tracks)
        items = [i for i in plan.items if i.track.name == target.name and i.number is not None
                 and i.number <= up_to]
        with_files = [i for i in items if i.files is not None]
        if not with_files:
            raise ConfigError(
                f"{target.name}: no migration file has a version up to {version} in "
                f"{target.directory}; check --version and --track"
            )
        conflicts = [i for i in items if i.row is not None and _recorded_differently(i)]
        if conflicts:
            first = conflicts[0]
            raise ValidationError(
                f"{target.name} version {first.version} is already recorded differently "
                f"({_describe_row(first)}); baseline only marks unrecorded versions: run `inv repair` "
                f"or fix the history first ({len(conflicts)} conflicting version(s)); nothing was recorded"
            )
        result = BaselineResult(target.name, version)
        todo = [i for i in with_files if i.row is None]
        result.entries = [BaselineEntry(target.name, i.version, i.files.filenames if i.files else "",
                                        i.row is None) for i in with_files]
        if todo:
            confirm(settings, f"Mark {len(todo)} {target.name} version(s) up to {version} as applied without "
                    f"running them on {settings.env_name}?", f"nothing was recorded on {settings.env_name!r}",
                    yes=yes, ask=ask)
            _record_baseline(connection, settings.schema, target, todo)
    finally:
        connection.close()
    report.print_baseline(result)
    return result


def _recorded_differently(item: MigrationInfo) -> bool:
    """True unless the row says `applied` with this file's checksum (or with none yet)."""
    row = item.row
    assert row is not None
    if item.files is None:
        return False  # a row without a file below V: nothing to mark, status warns about it
    if row.status != APPLIED:
        return True
    return row.checksum is not None and row.checksum != item.files.checksum


def _describe_row(item: MigrationInfo) -> str:
    row = item.row
    assert row is not None
    if row.status != APPLIED:
        return f"status {row.status}"
    return f"applied with checksum {row.checksum}, but the file now has {item.files.checksum if item.files else '-'}"


def _record_baseline(connection: Any, schema: str, track: Track, items: list[MigrationInfo]) -> None:
    from psycopg2 import sql

    existing = read_existing_columns(connection, schema, [track])
    assert track.history_table in existing
    query = sql.SQL(
        "INSERT INTO {} (version, applied_at, description, status, error_message, checksum, filename, "
        "execution_ms, applied_by, tool_version) VALUES (%s, CURRENT_TIMESTAMP, %s, 'applied', NULL, %s, %s, "
        "NULL, %s, %s)"
    ).format(param_identifier(connection, schema, track.history_table))
    applied_by = f"baseline@{this_host()}"
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        try:
            for item in items:
                assert item.files is not None
                cursor.execute(query, (item.version, f"Baseline {item.files.filenames} (not run)",
                                       item.files.checksum, item.files.filenames, applied_by,
                                       f"migrate {__version__}"))
            cursor.execute("COMMIT")
        except BaseException:
            if not connection.closed:
                cursor.execute("ROLLBACK")
            raise
