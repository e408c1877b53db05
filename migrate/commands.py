"""One function per user command; the only module that sequences the others.

Each command takes resolved Settings, raises MigrateError subclasses for expected
failures, prints through report, and returns a result object tests can inspect.
status and dry-run write nothing: they never create the history tables.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from migrate import report
from migrate.database import (
    acquire_run_lock,
    connection_params,
    ensure_session_is_pinned,
    this_host,
    wait_until_ready,
)
from migrate.errors import MigrateError, Refused
from migrate.history import ensure_history_tables, read_history, record_adopted_checksums
from migrate.plan import MigrationInfo, Plan, build_plan, validate_plan
from migrate.runner import Applied, apply_version
from migrate.settings import Settings
from migrate.sqlfiles import MigrationVersion, find_migration_versions
from migrate.statements import Script, parse_file
from migrate.tracks import Track, build_tracks

log = logging.getLogger("migrate")


@dataclass
class MigrateResult:
    plan: Plan
    applied: list[Applied] = field(default_factory=list)
    adopted_checksums: int = 0


def find_all_versions(settings: Settings, tracks: list[Track]) -> dict[str, list[MigrationVersion]]:
    if not settings.migrations_dir.is_dir():
        from migrate.errors import ConfigError

        raise ConfigError(
            f"MIGRATIONS_DIR {settings.migrations_dir} does not exist; run from the project root "
            "or set MIGRATIONS_DIR"
        )
    return {track.name: find_migration_versions(track, settings.root) for track in tracks}


def parse_pending(plan: Plan, settings: Settings) -> dict[tuple[str, str], list[Script]]:
    """Parse every file that would run; a syntax error anywhere stops before anything runs."""
    scripts: dict[tuple[str, str], list[Script]] = {}
    for item in plan.to_apply():
        assert item.files is not None
        scripts[(item.track.name, item.version)] = [parse_file(f, settings.root) for f in item.files.files]
    return scripts


def _read_plan(settings: Settings, connection: Any, tracks: list[Track],
               versions: dict[str, list[MigrationVersion]]) -> Plan:
    history = read_history(connection, settings.schema, tracks)
    return build_plan(tracks, versions, history, settings.root)


def _warn(plan: Plan) -> None:
    for warning in plan.warnings:
        log.warning("warning: %s", warning)


def _database_label(settings: Settings) -> str:
    if settings.uses_embedded:
        return f"embedded PostgreSQL in {settings.embedded_pgdata}"
    return settings.masked_dsn()


def status(settings: Settings, as_json: bool = False) -> Plan:
    """Every version of every track with its state; read-only."""
    tracks = build_tracks(settings.migrations_dir)
    versions = find_all_versions(settings, tracks)
    connection = wait_until_ready(settings)
    try:
        plan = _read_plan(settings, connection, tracks, versions)
    finally:
        connection.close()
    _warn(plan)
    if as_json:
        report.print_json(report.plan_json(plan, settings.env_name, _database_label(settings), settings.root))
    else:
        report.print_status(plan, settings.env_name, _database_label(settings))
    return plan


def _modes(scripts: dict[tuple[str, str], list[Script]]) -> dict[tuple[str, str], str]:
    modes = {}
    for key, parts in scripts.items():
        reasons = [s.no_transaction or s.needs_psql for s in parts if not s.transactional]
        modes[key] = "transaction" if not reasons else f"no transaction: {reasons[0]}"
    return modes


def dry_run(settings: Settings, as_json: bool = False) -> Plan:
    """Exactly what migrate would apply, in order, and how; read-only."""
    tracks = build_tracks(settings.migrations_dir)
    versions = find_all_versions(settings, tracks)
    connection = wait_until_ready(settings)
    try:
        plan = _read_plan(settings, connection, tracks, versions)
    finally:
        connection.close()
    validate_plan(plan, settings.root)
    scripts = parse_pending(plan, settings)
    modes = _modes(scripts)
    _warn(plan)
    if as_json:
        document = report.plan_json(plan, settings.env_name, _database_label(settings), settings.root)
        document["to_apply"] = [
            dict(report.item_json(item, settings.root), mode=modes[(item.track.name, item.version)])
            for item in plan.to_apply()
        ]
        report.print_json(document)
    else:
        report.print_dry_run(plan, modes, settings.env_name, _database_label(settings), settings.root)
    return plan


def migrate(
    settings: Settings,
    as_json: bool = False,
    yes: bool = False,
    ask: Callable[[str], str] | None = None,
) -> MigrateResult:
    """Apply every pending version, lanconnect first; stop at the first failure."""
    tracks = build_tracks(settings.migrations_dir)
    versions = find_all_versions(settings, tracks)
    connection = wait_until_ready(settings, require_primary=True)
    try:
        ensure_session_is_pinned(connection, settings)
        acquire_run_lock(connection, settings,
                         on_wait=lambda holder: log.info("waiting for the run lock (%s)", holder))
        ensure_history_tables(connection, settings.schema, tracks)
        plan = _read_plan(settings, connection, tracks, versions)
        validate_plan(plan, settings.root)
        scripts = parse_pending(plan, settings)
        _warn(plan)
        todo = plan.to_apply()
        if todo and settings.confirm and not yes:
            _confirm(settings, plan, scripts, ask)
        result = MigrateResult(plan)
        applied_by = f"{os.environ.get('USER') or os.environ.get('USERNAME') or 'unknown'}@{this_host()}"
        try:
            for index, item in enumerate(todo, start=1):
                done = apply_version(connection, item, scripts[(item.track.name, item.version)],
                                     settings.schema, settings.root, applied_by,
                                     flush=index == len(todo))  # one WAL flush per run (runner.py)
                result.applied.append(done)
                if not as_json:
                    report.print_applied(index, len(todo), item.track.name,
                                         item.files.filenames if item.files else item.version, done.execution_ms)
        except MigrateError as error:
            if as_json:
                report.print_json(_migrate_json(settings, result, error))
            raise
        result.adopted_checksums = _adopt_checksums(connection, settings, plan)
    finally:
        connection.close()
    if as_json:
        report.print_json(_migrate_json(settings, result, None))
    else:
        report.print_migrate_summary(len(result.applied), len(plan.items))
    return result


def _adopt_checksums(connection: Any, settings: Settings, plan: Plan) -> int:
    adopted = 0
    by_track: dict[str, tuple[Track, dict[str, str]]] = {}
    for item in plan.items:
        checksum = item.checksum_to_adopt
        if checksum and item.row is not None:
            by_track.setdefault(item.track.name, (item.track, {}))[1][item.row.version] = checksum
    for track, checksums in by_track.values():
        count = record_adopted_checksums(connection, settings.schema, track, checksums)
        if count:
            log.info("%s: adopted the current checksum for %d version(s) recorded without one "
                     "(%s)", track.name, count, ", ".join(sorted(checksums)))
        adopted += count
    return adopted


def _migrate_json(settings: Settings, result: MigrateResult, error: MigrateError | None) -> dict[str, Any]:
    return {
        "environment": settings.env_name,
        "database": _database_label(settings),
        "applied": [
            dict(report.item_json(done.info, settings.root), state="applied", execution_ms=done.execution_ms,
                 mode="transaction" if done.transactional else "no transaction")
            for done in result.applied
        ],
        "pending_before": len(result.plan.to_apply()),
        "adopted_checksums": result.adopted_checksums,
        "error": None if error is None else {"exit_code": error.exit_code, "message": error.message},
        "warnings": list(result.plan.warnings),
    }


def _confirm(settings: Settings, plan: Plan, scripts: dict[tuple[str, str], list[Script]],
             ask: Callable[[str], str] | None) -> None:
    if ask is None and not sys.stdin.isatty():
        raise Refused(
            f"environment {settings.env_name!r} requires confirmation (MIGRATE_CONFIRM) and there is no "
            "terminal to ask; review `dry-run` and pass --yes"
        )
    report.print_dry_run(plan, _modes(scripts), settings.env_name, _database_label(settings), settings.root,
                         stream=sys.stderr)
    answer = (ask or input)(f"Apply {len(plan.to_apply())} migration(s) to {settings.env_name}? Type yes: ")
    if answer.strip().lower() != "yes":
        raise Refused(f"not confirmed: nothing was applied to {settings.env_name!r}")


def wait(settings: Settings, timeout: float | None = None) -> float:
    """Return the seconds it took until an authenticated SELECT 1 succeeded."""
    started = time.monotonic()
    connection = wait_until_ready(settings, timeout)
    connection.close()
    elapsed = time.monotonic() - started
    print(f"Database ready: {_database_label(settings)} ({elapsed:.2f} s)")
    return elapsed


def db_stop(settings: Settings) -> bool:
    """Stop the embedded local server, if this environment uses one and it runs."""
    from migrate.embedded import stop

    if settings.embedded_pgdata is None:
        print(f"Environment {settings.env_name!r} does not use the embedded PostgreSQL; nothing to stop.")
        return False
    stopped = stop(settings.embedded_pgdata)
    print("Embedded PostgreSQL stopped." if stopped else "Embedded PostgreSQL was not running.")
    return stopped


def db_url(settings: Settings) -> str:
    """The masked URL of this environment's database (starting the embedded one if needed)."""
    return settings.masked_dsn(connection_params(settings))


__all__ = ["MigrateResult", "MigrationInfo", "status", "dry_run", "migrate", "wait", "db_stop", "db_url"]
