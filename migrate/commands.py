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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from migrate import report
from migrate.database import (
    connection_params,
    open_locked_session,
    this_host,
    wait_until_ready,
)
from migrate.errors import MigrateError
from migrate.history import (
    HistoryRow,
    ensure_history_tables,
    read_all_columns,
    read_history,
    record_adopted_checksums,
)
from migrate.plan import MigrationInfo, Plan, build_plan, validate_plan
from migrate.settings import Settings
from migrate.sqlfiles import MigrationFile, MigrationVersion, find_migration_versions
from migrate.tracks import Track, build_tracks

if TYPE_CHECKING:  # imported where they are used: a run with nothing pending never loads them
    from migrate.runner import Applied
    from migrate.stack import Compose
    from migrate.statements import Script

log = logging.getLogger("migrate")


class MigrateResult:
    """What a migrate run did: the plan it read, the versions it applied, checksums it adopted."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.applied: list[Applied] = []
        self.adopted_checksums = 0


def parse_file(*args: Any, **kwargs: Any) -> Script:
    """statements.parse_file, imported on first use: pglast costs start-up time a no-op run does not need."""
    from migrate.statements import parse_file as parse

    return parse(*args, **kwargs)


def find_all_versions(settings: Settings, tracks: list[Track]) -> dict[str, list[MigrationVersion]]:
    if not settings.migrations_dir.is_dir():
        from migrate.errors import ConfigError

        raise ConfigError(
            f"MIGRATIONS_DIR {settings.migrations_dir} does not exist; run from the project root "
            "or set MIGRATIONS_DIR"
        )
    return {track.name: find_migration_versions(track, settings.root) for track in tracks}


def parse_pending(plan: Plan, settings: Settings, lint: bool = False) -> dict[tuple[str, str], list[Script]]:
    """Parse every file that would run; a syntax error anywhere stops before anything runs.

    lint: also lint each file on its own parse, then report (see _PendingLint). A file's pglast
    tree is dropped once it is linted: only its statements run, and a run of 10,000 pending
    files held every tree at once (peak 77 MB instead of ~50; bench/RESULTS.md).
    """
    todo = plan.to_apply()
    if not todo:
        return {}
    from migrate.statements import without_tree

    linting = _PendingLint(settings) if lint and settings.lint_mode != "off" else None
    scripts: dict[tuple[str, str], list[Script]] = {}
    for item in todo:
        assert item.files is not None
        parts = []
        for migration_file in item.files.files:
            script = parse_file(migration_file, settings.root, settings.executor)
            if linting is not None:
                linting.check(migration_file, script)
            parts.append(without_tree(script))
        scripts[(item.track.name, item.version)] = parts
    if linting is not None:
        linting.report()
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


def _files_while_connecting(settings: Settings, tracks: list[Track], open_session: Callable[[], Any]
                            ) -> tuple[dict[str, list[MigrationVersion]], Any]:
    """Read the migration files while `open_session` runs on a second thread (see background.py).

    A bad file is reported at once, as before, without waiting for the server; the session
    opened meanwhile is closed (its run lock released) whenever it is ready.
    """
    from migrate.background import Background

    opening = Background(open_session, discard=lambda opened: opened[0].close())
    try:
        versions = find_all_versions(settings, tracks)
    except BaseException:
        opening.abandon()
        raise
    return versions, opening.result()


def read_plan_snapshot(settings: Settings) -> Plan:
    """Files + history as they are now, without the lock and without writing anything."""
    tracks = build_tracks(settings.migrations_dir)

    def open_session() -> tuple[Any, dict[str, list[HistoryRow]]]:
        connection = wait_until_ready(settings)
        try:
            return connection, read_history(connection, settings.schema, tracks)
        finally:
            connection.close()  # the history is read: nothing else is asked of this server

    versions, (_, history) = _files_while_connecting(settings, tracks, open_session)
    return build_plan(tracks, versions, history, settings.root)


def status(settings: Settings, as_json: bool = False) -> Plan:
    """Every version of every track with its state; read-only."""
    plan = read_plan_snapshot(settings)
    _warn(plan)
    modes = pending_modes(plan, settings)
    if as_json:
        document = report.plan_json(plan, settings.env_name, _database_label(settings), settings.root)
        for entry in document["migrations"]:
            if (entry["track"], entry["version"]) in modes:
                entry["mode"] = modes[(entry["track"], entry["version"])]
        report.print_json(document)
    else:
        report.print_status(plan, settings.env_name, _database_label(settings), modes=modes)
    return plan


def pending_modes(plan: Plan, settings: Settings) -> dict[tuple[str, str], str]:
    """How each pending version would run; a file that does not parse says so instead of failing status."""
    modes: dict[tuple[str, str], str] = {}
    for item in plan.to_apply():
        assert item.files is not None
        try:
            parts = [parse_file(f, settings.root, settings.executor) for f in item.files.files]
        except MigrateError:
            modes[(item.track.name, item.version)] = "invalid SQL (see dry-run)"
            continue
        modes.update(_modes({(item.track.name, item.version): parts}))
    return modes


def _modes(scripts: dict[tuple[str, str], list[Script]]) -> dict[tuple[str, str], str]:
    modes = {}
    for key, parts in scripts.items():
        special = [s for s in parts if s.needs_psql] or [s for s in parts if not s.transactional]
        modes[key] = special[0].mode if special else "transaction"
    return modes


def dry_run(settings: Settings, as_json: bool = False) -> Plan:
    """Exactly what migrate would apply, in order, and how; read-only."""
    plan = read_plan_snapshot(settings)
    validate_plan(plan, settings.root)
    scripts = parse_pending(plan, settings, lint=True)
    modes = _modes(scripts)
    _warn(plan)
    try:
        _require_psql(settings, scripts)
    except MigrateError as error:  # dry-run only warns: migrate will refuse (exit 4)
        log.warning("warning: %s", error.message.replace("; nothing was applied", ""))
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
    if settings.reset_schema:  # the earlier script's MIGRATION_RESET_SCHEMA=true
        from migrate.guards import require_disposable

        require_disposable(settings, "MIGRATION_RESET_SCHEMA=true")
    tracks = build_tracks(settings.migrations_dir)

    def open_session() -> tuple[Any, dict[str, set[str]], dict[str, list[HistoryRow]]]:
        connection = open_locked_session(settings)
        try:
            existing = read_all_columns(connection, settings.schema, tracks)
            return connection, existing, read_history(connection, settings.schema, tracks, existing)
        except BaseException:
            connection.close()
            raise

    versions, (connection, existing, history) = _files_while_connecting(settings, tracks, open_session)
    try:
        # plan, parse and lint before writing anything: bad input leaves the database exactly as it was
        plan = build_plan(tracks, versions, history, settings.root)
        validate_plan(plan, settings.root)
        scripts = parse_pending(plan, settings, lint=True)
        if settings.confirm and not yes and (plan.to_apply() or settings.reset_schema):
            _confirm(settings, plan, scripts, ask)  # asked before anything is written
        if settings.reset_schema:
            from migrate.guards import drop_and_recreate_schema

            drop_and_recreate_schema(connection, settings.schema)
            existing = read_all_columns(connection, settings.schema, tracks)
            history = read_history(connection, settings.schema, tracks, existing)
            plan = build_plan(tracks, versions, history, settings.root)
            scripts = parse_pending(plan, settings)
        todo = plan.to_apply()
        psql = _require_psql(settings, scripts) if todo else None  # refused before anything is written
        ensure_history_tables(connection, settings.schema, tracks, existing)  # read under this run lock
        _warn(plan)
        result = MigrateResult(plan)
        try:
            if todo:
                _apply_all(connection, settings, todo, scripts, psql, result, as_json)
        except MigrateError as error:
            if as_json:
                current = todo[len(result.applied)] if len(result.applied) < len(todo) else None
                report.print_json(_migrate_json(settings, result, error, current))
                error.reported_as_json = True  # cli/tasks print no second one
            raise
        result.adopted_checksums = _adopt_checksums(connection, settings, plan)
    finally:
        connection.close()
    if as_json:
        report.print_json(_migrate_json(settings, result, None))
    else:
        report.print_migrate_summary(len(result.applied), len(plan.items), _batches(result) if settings.batch else None)
    return result


def _require_psql(settings: Settings, scripts: dict[tuple[str, str], list[Script]]) -> str | None:
    """The psql binary when a pending file needs it (None when none does); refuses when it is missing."""
    from migrate.psqlexec import require_psql

    return require_psql(settings.psql_path, [s for parts in scripts.values() for s in parts], settings.root)


def _apply_all(connection: Any, settings: Settings, todo: list[MigrationInfo],
               scripts: dict[tuple[str, str], list[Script]], psql: str | None, result: MigrateResult,
               as_json: bool) -> None:
    """Apply `todo` in order under one heartbeat; each applied version is printed once committed.

    settings.batch: runs of transactional versions share one transaction (migrate.batch, loaded only then).
    """
    from migrate.heartbeat import Heartbeat

    applied_by = f"{os.environ.get('USER') or os.environ.get('USERNAME') or 'unknown'}@{this_host()}"

    def committed(done: Applied) -> None:
        result.applied.append(done)
        if not as_json:
            item = done.info
            report.print_applied(len(result.applied), len(todo), item.track.name,
                                 item.files.filenames if item.files else item.version, done.execution_ms)

    with Heartbeat("", settings.heartbeat_interval) as beat:
        if settings.batch:
            from migrate.batch import BatchRun, apply_in_batches

            apply_in_batches(BatchRun(connection, settings, scripts, psql, applied_by, beat, committed), todo)
            return
        from migrate.runner import apply_version

        for index, item in enumerate(todo, start=1):
            committed(apply_version(connection, item, scripts[(item.track.name, item.version)],
                                    settings.schema, settings.root, applied_by, settings, psql,
                                    flush=index == len(todo), beat=beat))  # one WAL flush per run (runner.py)


def _batches(result: MigrateResult) -> tuple[int, int]:
    """Batch mode: how many batch transactions committed, and how many versions ran on their own."""
    numbers = {done.batch for done in result.applied if done.batch is not None}
    return len(numbers), sum(1 for done in result.applied if done.batch is None)


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


def _migrate_json(settings: Settings, result: MigrateResult, error: MigrateError | None,
                  failed: MigrationInfo | None = None) -> dict[str, Any]:
    todo = result.plan.to_apply()
    return {
        "environment": settings.env_name,
        "database": _database_label(settings),
        "applied": [
            dict(report.item_json(done.info, settings.root), state="applied", execution_ms=done.execution_ms,
                 mode=("psql, " if done.executor == "psql" else "")
                 + ("transaction" if done.transactional else "no transaction"), attempts=done.attempts)
            for done in result.applied
        ],
        "pending_before": len(todo),
        "failed": None if failed is None or error is None else dict(
            report.item_json(failed, settings.root), state="failed", error=error.message),
        "not_attempted": [report.item_json(item, settings.root) for item in todo[len(result.applied)
                                                                               + (failed is not None):]],
        "adopted_checksums": result.adopted_checksums,
        "batch": settings.batch,
        "error": None if error is None else {"exit_code": error.exit_code, "message": error.message},
        "warnings": list(result.plan.warnings),
    }


def _confirm(settings: Settings, plan: Plan, scripts: dict[tuple[str, str], list[Script]],
             ask: Callable[[str], str] | None) -> None:
    from migrate.guards import confirm

    confirm(settings, f"Apply {len(plan.to_apply())} migration(s) to {settings.env_name}?",
            f"nothing was applied to {settings.env_name!r}", remedy="review `dry-run` and pass --yes", ask=ask,
            show=lambda: report.print_dry_run(plan, _modes(scripts), settings.env_name, _database_label(settings),
                                              settings.root, stream=sys.stderr))


def status_environments(env: str, root: Path, as_json: bool = False, timeout: float | None = None) -> Any:
    """status for `--env all` or `--env a,b`: one table across environments; never fails on one of them."""
    from migrate.overview import DEFAULT_TIMEOUT, environment_names, read_overview

    overview = read_overview(environment_names(env, root), root, DEFAULT_TIMEOUT if timeout is None else timeout)
    if as_json:
        report.print_json(report.overview_json(overview))
    else:
        report.print_overview(overview)
    return overview


def reset(settings: Settings, yes: bool = False, ask: Callable[[str], str] | None = None) -> None:
    """Drop and recreate the app schema (history included); disposable environments only."""
    from migrate.guards import confirm, drop_and_recreate_schema, require_disposable

    require_disposable(settings, "reset")
    connection = open_locked_session(settings)
    try:
        confirm(settings, f"Drop schema {settings.schema} on {settings.env_name}?",
                f"nothing was changed on {settings.env_name!r}", yes=yes, ask=ask)
        drop_and_recreate_schema(connection, settings.schema)
    finally:
        connection.close()
    report.print_reset(settings.schema, settings.env_name, _database_label(settings))


def verify(settings: Settings, as_json: bool = False) -> Any:
    """Apply every migration twice on a scratch database; findings exit 4 (see migrate.verify)."""
    from migrate.errors import ValidationError
    from migrate.verify import run_verify

    tracks = build_tracks(settings.migrations_dir)
    versions = find_all_versions(settings, tracks)
    result = run_verify(settings, tracks, versions, _database_label(settings))
    if as_json:
        report.print_json(report.verify_json(result, settings.env_name))
    else:
        report.print_verify(result, settings.env_name)
    if result.findings:
        kinds = sorted({finding.kind for finding in result.findings})
        error = ValidationError(f"verify found {len(result.findings)} problem(s) ({', '.join(kinds)}); "
                                "see the findings above")
        error.reported_as_json = as_json
        raise error
    return result


def history(settings: Settings, limit: int = 20, as_json: bool = False) -> list[Any]:
    """The latest attempts from the attempt log, newest first; read-only."""
    from migrate.attempts import read_attempts

    if limit < 1:
        from migrate.errors import ConfigError

        raise ConfigError(f"--limit {limit}: give a positive number of attempts to show")
    connection = wait_until_ready(settings)
    try:
        attempts = read_attempts(connection, settings.schema, limit)
    finally:
        connection.close()
    if as_json:
        report.print_json({"environment": settings.env_name, "database": _database_label(settings),
                           "attempts": report.attempts_json(attempts or [])})
    else:
        report.print_attempts(attempts, settings.env_name, _database_label(settings), settings.schema)
    return attempts or []


def wait(settings: Settings, timeout: float | None = None) -> float:
    """Return the seconds it took until an authenticated SELECT 1 succeeded."""
    started = time.monotonic()
    connection = wait_until_ready(settings, timeout)
    connection.close()
    elapsed = time.monotonic() - started
    report.print_line(f"Database ready: {_database_label(settings)} ({elapsed:.2f} s)")
    return elapsed


def db_stop(settings: Settings) -> bool:
    """Stop the embedded local server, if this environment uses one and it runs."""
    from migrate.embedded import stop

    if settings.embedded_pgdata is None:
        report.print_line(f"Environment {settings.env_name!r} does not use the embedded PostgreSQL; nothing to stop.")
        return False
    stopped = stop(settings.embedded_pgdata)
    report.print_line("Embedded PostgreSQL stopped." if stopped else "Embedded PostgreSQL was not running.")
    return stopped


def db_url(settings: Settings) -> str:
    """The masked URL of this environment's database (starting the embedded one if needed)."""
    return settings.masked_dsn(connection_params(settings))


def dev_start(settings: Settings, compose: Compose | None = None) -> str:
    """The local stack: docker compose when it works here, else this environment's database + migrate.

    Returns "compose" or "migrate" (which path ran); says which, and why, before starting.
    """
    from migrate import stack

    compose = compose or stack.find_compose()
    if compose.available:
        report.print_stack_choice(f"dev-start: using {compose.reason}: db, then migration-init, then app "
                                  f"(MIGRATE_ENV={settings.env_name})")
        stack.up(compose, settings.root, settings.env_name)
        return "compose"
    report.print_stack_choice(f"dev-start: docker compose is not available ({compose.reason}); using "
                              f"{_database_label(settings)} and `inv migrate --env {settings.env_name}`")
    migrate(settings)
    return "migrate"


def start(root: Path, env_name: str = "production", compose: Compose | None = None) -> None:
    """The stack with docker compose and environment `env_name`; there is no fallback without Docker."""
    from migrate import stack

    compose = compose or stack.find_compose()
    stack.require(compose, "start", f"to migrate the {env_name} database without Docker run "
                                    f"`inv migrate --env {env_name}`")
    report.print_stack_choice(f"start: using {compose.reason}: db, then migration-init, then app "
                              f"(MIGRATE_ENV={env_name})")
    stack.up(compose, root, env_name)


def stop(settings: Settings, compose: Compose | None = None) -> None:
    """Stop what dev-start started: the compose stack (when Docker works) and the embedded server."""
    from migrate import stack

    compose = compose or stack.find_compose()
    if compose.available:
        report.print_stack_choice(f"stop: docker compose down ({compose.reason})")
        stack.down(compose, settings.root)
    db_stop(settings)


__all__ = ["MigrateResult", "MigrationInfo", "status", "dry_run", "migrate", "wait", "db_stop", "db_url",
           "verify", "reset", "status_environments", "new", "lint",
           "dev_start", "start", "stop", "history"]


def new(settings: Settings, description: str, track: str = "lanconnect") -> Any:
    """Create the next-numbered migration file of `track` from the template; print its path."""
    from migrate.authoring import new_migration

    created = new_migration(settings, description, track)
    report.print_new_migration(created.path, settings.root)
    return created


def lint(settings: Settings, paths: list[str] | None = None, as_json: bool = False) -> Any:
    """Lint the named files (default: every migration file); exit 4 when any error is found."""
    from migrate.errors import ValidationError
    from migrate.lint import find_files_to_lint, lint_files

    result = lint_files(settings, find_files_to_lint(settings, paths or []))
    if as_json:
        report.print_json(report.lint_json(result.findings, result.files))
    else:
        report.print_lint(result.findings, result.files)
    if result.errors:
        error = ValidationError(f"lint found {len(result.errors)} error(s) in {len(result.files)} file(s); "
                                "fix them, or silence an intended one with -- migrate:lint-ignore RULE")
        error.reported_as_json = as_json
        raise error
    return result


class _PendingLint:
    """Lint errors of the files about to run, file by file: warnings, or fatal with MIGRATE_LINT=strict."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.strict = settings.lint_mode == "strict"
        self.errors: list[Any] = []
        self.broken = False

    def check(self, migration_file: MigrationFile, script: Script) -> None:
        """Lint one file on the parse migrate made (pglast's tree is the costly part)."""
        if self.broken:
            return
        from migrate.lint import ERROR, lint_file

        try:
            findings = lint_file(self.settings, migration_file, script)
        except Exception as error:  # a bug in lint must not block a run that did not ask for strict
            if self.strict:
                raise
            log.warning("warning: lint could not check the pending files (%s: %s); going on",
                        type(error).__name__, error)
            self.broken = True
            return
        self.errors.extend(finding for finding in findings if finding.severity == ERROR)

    def report(self) -> None:
        """After every file parsed (a syntax error anywhere comes first): log the errors, stop if strict."""
        for finding in self.errors:
            log.warning("%s: lint: %s", "error" if self.strict else "warning", finding.format())
        if self.errors and self.strict:
            from migrate.errors import ValidationError

            raise ValidationError(
                f"MIGRATE_LINT=strict: {len(self.errors)} lint error(s) in pending migration files, nothing was "
                "applied; fix them (see `inv lint`) or silence an intended one with -- migrate:lint-ignore RULE"
            )
