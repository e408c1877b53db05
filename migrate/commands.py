"""The API: one function per user command, the only module that sequences the packages below.

Like Alembic's command.py: each function takes resolved Settings (and the command's own
options), raises MigrateError subclasses for expected failures, prints only through report,
and returns a typed result tests can inspect. status, dry-run and history write nothing:
they never create the history tables. cli.py is the one door into these functions.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from migrate.errors import ConfigError, MigrateError, ValidationError
from migrate.plan import Plan, build_plan, include_added, validate_plan
from migrate.report import documents, text
from migrate.settings import Settings, require_target
from migrate.snapshot import read_plan_snapshot

if TYPE_CHECKING:  # imported where they are used: a run with nothing pending never loads them
    from migrate.apply.runner import Applied
    from migrate.checks.preflight import PendingLint, Scripts
    from migrate.compose import Compose
    from migrate.plan import BaselineResult, RepairResult

log = logging.getLogger("migrate")
Ask = Callable[[str], str]


class MigrateResult:
    """What a migrate run did: the plan it read, the versions it applied, checksums it adopted."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.applied: list[Applied] = []
        self.adopted_checksums = 0


def status(settings: Settings, as_json: bool = False, drift: bool = False) -> Plan:
    """Every version of every track with its state, and how each pending one would run; read-only.

    drift: also measure drift (checks.drift) and say it in one line (a `drift` key in --json); the exit
    code stays status's: `drift` is the command whose exit code says drift."""
    from migrate.checks.preflight import pending_modes

    plan = read_plan_snapshot(settings)
    for warning in plan.warnings:
        log.warning("warning: %s", warning)
    modes = pending_modes(plan, settings)
    outcome = None
    if drift:
        from migrate.checks.drift import check_environment

        outcome = check_environment(settings.env_name, settings.root, settings=settings)
    if as_json:
        document = documents.plan_json(plan, settings.env_name, settings.target.label(), settings.root)
        for entry in document["migrations"]:
            if (entry["track"], entry["version"]) in modes:
                entry["mode"] = modes[(entry["track"], entry["version"])]
        if outcome is not None:
            document["drift"] = documents.drift_cell_json(outcome, settings.root)
        documents.print_json(document)
    else:
        text.print_status(plan, settings.env_name, settings.target.label(), modes=modes)
        if outcome is not None:
            text.print_line(f"Drift: {outcome.cell}" + (f" ({outcome.message})" if outcome.message else ""))
    return plan


def dry_run(settings: Settings, as_json: bool = False, run_added: bool = False) -> Plan:
    """Exactly what migrate would apply, in order, and how; read-only. A missing psql only warns.

    run_added: as `migrate --run-added` would, with the added files of added versions."""
    from migrate.checks.preflight import PendingLint, modes_of, require_psql

    plan = read_plan_snapshot(settings)
    plan = include_added(plan) if run_added else plan
    validate_plan(plan, settings.root)
    linting = PendingLint(settings)
    scripts = _parse_and_lint(plan, settings, linting, as_json)
    modes = modes_of(scripts)
    for warning in plan.warnings:
        log.warning("warning: %s", warning)
    try:
        require_psql(settings, scripts)
    except MigrateError as error:  # dry-run only warns: migrate will refuse (exit 4)
        log.warning("warning: %s", error.message.replace("; nothing was applied", ""))
    if as_json:
        document = documents.plan_json(plan, settings.env_name, settings.target.label(), settings.root)
        document["to_apply"] = [
            dict(documents.item_json(item, settings.root), mode=modes[(item.track.name, item.version)])
            for item in plan.to_apply()
        ]
        document["lint"] = linting.as_json()
        documents.print_json(document)
    else:
        text.print_dry_run(plan, modes, settings.env_name, settings.target.label(), settings.root)
    return plan


def migrate(settings: Settings, as_json: bool = False, yes: bool = False, ask: Ask | None = None,
            run_added: bool = False) -> MigrateResult:
    """Apply every pending version, lanconnect first; stop at the first failure.

    Files are read and the run lock taken first (on a session of its own); the plan is read under
    the lock, then every pending file is parsed and linted and, on a confirm-guarded environment,
    the run confirmed, all before anything is written: bad input leaves the database exactly as it
    was. Files run on a second session, each as fresh as psql's (apply/file_session.py).
    """
    from migrate.checks.preflight import PendingLint, modes_of, parse_pending, require_psql
    from migrate.database.connection import this_host
    from migrate.guards import confirm, drop_and_recreate_schema, require_disposable
    from migrate.history.recorder import Recorder
    from migrate.history.tables import ensure_history_tables, read_all_columns, read_history
    from migrate.plan import checksums_to_adopt
    from migrate.snapshot import open_locked_snapshot

    if settings.safety.reset_schema:  # the earlier script's MIGRATION_RESET_SCHEMA=true
        require_disposable(settings, "MIGRATION_RESET_SCHEMA=true", yes=yes, ask=ask)
    lock, tracks, versions, existing, history = open_locked_snapshot(settings)
    connection, label = lock.session.connection, settings.target.label()
    files = None
    try:
        plan = build_plan(tracks, versions, history, settings.root)
        plan = include_added(plan) if run_added else plan  # --run-added: only the added files run, all recorded
        validate_plan(plan, settings.root)
        linting = PendingLint(settings)
        scripts = _parse_and_lint(plan, settings, linting, as_json)
        if plan.to_apply() or settings.safety.reset_schema:  # asked before anything is written
            first = f"Drop schema {settings.schema} on {label}, then apply" if settings.safety.reset_schema else "Apply"
            confirm(settings, f"{first} {len(plan.to_apply())} migration(s) to {settings.env_name}?",
                    f"nothing was applied to {settings.env_name!r}", remedy="review `dry-run` and pass --yes",
                    yes=yes, ask=ask, show=lambda: text.print_dry_run(plan, modes_of(scripts), settings.env_name,
                                                                      label, settings.root, stream=sys.stderr),
                    required=settings.safety.confirm or settings.safety.reset_schema)
        if settings.safety.reset_schema:
            drop_and_recreate_schema(connection, settings.schema)
            existing = read_all_columns(connection, settings.schema, tracks)
            plan = build_plan(tracks, versions, read_history(connection, settings.schema, tracks, existing),
                              settings.root)
            scripts = parse_pending(plan, settings)
        todo = plan.to_apply()
        psql = require_psql(settings, scripts) if todo else None  # refused before anything is written
        ensure_history_tables(connection, settings.schema, tracks, existing)  # read under this run lock
        for warning in plan.warnings:
            log.warning("warning: %s", warning)
        result = MigrateResult(plan)
        applied_by = f"{os.environ.get('USER') or os.environ.get('USERNAME') or 'unknown'}@{this_host()}"
        recorder = Recorder(lock.session, settings.schema, this_host(), applied_by)

        def committed(done: Applied) -> None:
            result.applied.append(done)
            if not as_json:
                text.print_applied(len(result.applied), len(todo), done.info.track.name,
                                   ", ".join(f.name for f in done.info.files_to_run), done.execution_ms)

        try:
            if todo:
                from migrate.apply.file_session import FileSession
                from migrate.apply.run import apply_all

                files = FileSession(settings.target)
                recorder.source = files
                apply_all(lock, files, recorder, todo, scripts, settings.root, settings.run, psql, committed)
        except MigrateError as error:
            if as_json:
                failed = todo[len(result.applied)] if len(result.applied) < len(todo) else None
                documents.print_json(documents.migrate_json(settings.env_name, label, settings.root, plan,
                                                            result.applied, 0, error, failed, linting.as_json()))
                error.reported_as_json = True  # the edge prints no second document
            raise
        recorder.source = lock.session
        for track, checksums in checksums_to_adopt(plan).values():
            count = recorder.adopt_checksums(track, checksums)
            if count:
                log.info("%s: adopted the current checksum for %d version(s) recorded without one (%s)",
                         track.name, count, ", ".join(sorted(checksums)))
            result.adopted_checksums += count
    finally:
        if files is not None:
            files.close()
        lock.close()
    if as_json:
        documents.print_json(documents.migrate_json(settings.env_name, label, settings.root, plan, result.applied,
                                                    result.adopted_checksums, lint=linting.as_json()))
    else:
        text.print_migrate_summary(len(result.applied), len(plan.items))
    return result


def _parse_and_lint(plan: Plan, settings: Settings, linting: PendingLint, as_json: bool) -> Scripts:
    """preflight.parse_pending with the pending files' lint; a strict refusal's --json document carries
    the findings that refused it."""
    from migrate.checks.preflight import LintRefused, parse_pending

    try:
        return parse_pending(plan, settings, linting)
    except LintRefused as error:
        if as_json:
            documents.print_json(documents.lint_refused_json(error, linting.as_json()))
            error.reported_as_json = True
        raise


def status_environments(env: str, root: Path, as_json: bool = False, timeout: float | None = None,
                        environ: Mapping[str, str] | None = None, drift: bool = False) -> Any:
    """status for `--env all` or `--env a,b`: one table across environments; never fails on one of them.

    drift: a drift row per environment (none, N objects, deploy in progress, not checked: why)."""
    from migrate.overview import DEFAULT_TIMEOUT, add_drift, environment_names, read_overview

    overview = read_overview(environment_names(env, root), root, DEFAULT_TIMEOUT if timeout is None else timeout,
                             environ)
    for column in overview.environments:  # each environment's target line, as a single-environment run prints it
        if column.database is not None:
            log.info("environment %s: %s (from %s)", column.name, column.database, column.source)
    if drift:
        add_drift(overview, root, environ)
    if as_json:
        documents.print_json(documents.overview_json(overview))
    else:
        text.print_overview(overview)
    return overview


def reset(settings: Settings, yes: bool = False, ask: Ask | None = None) -> None:
    """Drop and recreate the app schema (history included); disposable environments only."""
    from migrate.database.run_lock import open_locked_session
    from migrate.guards import confirm, drop_and_recreate_schema, require_disposable

    require_disposable(settings, "reset", yes=yes, ask=ask)
    session = open_locked_session(settings.target, settings.schema, settings.run.run_lock_timeout)
    try:
        confirm(settings, f"Drop schema {settings.schema} on {settings.env_name}?",
                f"nothing was changed on {settings.env_name!r}", yes=yes, ask=ask, required=True,
                show=lambda: text.print_line(f"reset drops schema {settings.schema} with everything in it, history "
                                             f"included, on {settings.target.label()}", stream=sys.stderr))
        drop_and_recreate_schema(session.connection, settings.schema)
    finally:
        session.close()
    text.print_reset(settings.schema, settings.env_name, settings.target.label())


def repair(settings: Settings, dry_run: bool = False, yes: bool = False, ask: Ask | None = None) -> RepairResult:
    """Re-align stored checksums with the files (after a reviewed edit) and delete `failed` rows.

    Holds the run lock and reads the plan under it; on a MIGRATE_CONFIRM environment the changes
    are listed and confirmed before anything is written; all of them commit in one transaction.
    """
    from migrate.database.connection import this_host, wait_until_ready
    from migrate.guards import confirm
    from migrate.history.recorder import Recorder
    from migrate.plan import RepairResult, build_repair_actions, build_repair_skips
    from migrate.snapshot import find_all_versions, open_locked_plan, read_plan
    from migrate.tracks import build_tracks

    if dry_run:
        tracks = build_tracks(settings.migrations_dir)
        session = wait_until_ready(settings.target, read_only=True)
        try:
            plan = read_plan(settings, session, tracks, find_all_versions(settings, tracks))
        finally:
            session.close()
    else:
        session, plan = open_locked_plan(settings)
    try:
        for warning in plan.warnings:
            log.warning("warning: %s", warning)
        result = RepairResult(build_repair_actions(plan), dry_run, build_repair_skips(plan))
        if result.actions and not dry_run:
            preview = RepairResult(result.actions, dry_run=True)
            confirm(settings, f"Change {len(result.actions)} history row(s) on {settings.env_name}?",
                    f"no history row was changed on {settings.env_name!r}",
                    remedy="review `repair --dry-run` and pass --yes", yes=yes, ask=ask,
                    show=lambda: text.print_repair(preview, stream=sys.stderr))
            tracks = {item.track.name: item.track for item in plan.items}
            Recorder(session, settings.schema, this_host(), "repair").repair(
                (tracks[action.track], action.version, None if action.kind == "delete-failed" else action.new)
                for action in result.actions)
    finally:
        session.close()
    text.print_repair(result)
    return result


def baseline(settings: Settings, version: str | None, track: str | None = None, yes: bool = False,
             ask: Ask | None = None) -> BaselineResult:
    """Mark every version of `track` up to `version` (--up-to) as applied, without running any of them.

    On a MIGRATE_CONFIRM environment the count is confirmed before anything is written.
    """
    from migrate.database.connection import this_host
    from migrate.guards import confirm
    from migrate.history.recorder import Recorder
    from migrate.plan import parse_baseline_version, select_baseline
    from migrate.snapshot import open_locked_plan
    from migrate.tracks import build_tracks, track_names

    if version is None:
        raise ConfigError("baseline needs --up-to V (every version up to V is marked applied)")
    parse_baseline_version(version)
    track_name = track or track_names()[0]
    chosen = [t for t in build_tracks(settings.migrations_dir) if t.name == track_name]
    if not chosen:
        raise ConfigError(f"--track {track_name!r}: unknown track; choose one of {', '.join(track_names())}")
    session, plan = open_locked_plan(settings)
    try:
        result = select_baseline(plan, chosen[0], version)
        todo = [entry for entry in result.entries if entry.recorded]
        if todo:
            confirm(settings, f"Mark {len(todo)} {track_name} version(s) up to {version} as applied without "
                    f"running them on {settings.env_name}?", f"nothing was recorded on {settings.env_name!r}",
                    yes=yes, ask=ask)
            Recorder(session, settings.schema, this_host(), "baseline").baseline(
                chosen[0], (entry.migration for entry in todo))
    finally:
        session.close()
    text.print_baseline(result)
    return result


def verify(settings: Settings, as_json: bool = False) -> Any:
    """Every migration on a shadow database, each file run again right after its first run and the whole set
    once more; error findings exit 4, no shadow server exits 6 (see checks.verify, checks.shadow)."""
    from migrate.checks.verify import run_verify
    from migrate.snapshot import find_all_versions
    from migrate.tracks import build_tracks

    tracks = build_tracks(settings.migrations_dir)
    result = run_verify(settings, tracks, find_all_versions(settings, tracks))
    if as_json:
        documents.print_json(documents.verify_json(result, settings.env_name))
    else:
        text.print_verify(result, settings.env_name)
    if result.errors:
        kinds = sorted({finding.kind for finding in result.errors})
        error = ValidationError(f"verify found {len(result.errors)} problem(s) ({', '.join(kinds)}); "
                                "see the findings above")
        error.reported_as_json = as_json
        raise error
    return result


def drift(settings: Settings, as_json: bool = False, ignore_owner: bool = False) -> Any:
    """Compare the database with its applied migrations built on a shadow database (checks.drift): one line
    per drifted object; drift exits 7, a deploy in progress 8, no shadow server 6."""
    from migrate.checks.drift import run_drift
    from migrate.errors import DeployInProgress, DriftFound

    try:
        result = run_drift(settings, owners=not ignore_owner)
    except DeployInProgress as error:
        partial = getattr(error, "result", None)
        if as_json and partial is not None:
            documents.print_json(documents.drift_json(partial, settings.root, error))
            error.reported_as_json = True
        raise
    if as_json:
        documents.print_json(documents.drift_json(result, settings.root))
    else:
        text.print_drift(result)
    if result.drifted:
        found = DriftFound(f"drift on {settings.env_name}: {len(result.drifted)} object(s) differ from what its "
                           "applied migrations produce; put each change in a migration (`inv new`), or undo it")
        found.reported_as_json = as_json
        raise found
    return result


def drift_environments(env: str, root: Path, as_json: bool = False, ignore_owner: bool = False,
                       environ: Mapping[str, str] | None = None) -> Any:
    """drift for `--env all` or `--env a,b`: a section per environment, one after the other (each builds its
    own shadow); the exit code by checks.drift.combined_exit."""
    from migrate.checks.drift import check_environment, combined_exit
    from migrate.overview import environment_names

    outcomes = [check_environment(name, root, environ, owners=not ignore_owner)
                for name in environment_names(env, root)]
    code = combined_exit(outcomes)
    if as_json:
        documents.print_json({"environments": [documents.drift_cell_json(o, root) for o in outcomes],
                              "exit_code": code})
    else:
        text.print_drift_environments(outcomes)
    if code:
        error = MigrateError("drift --env " + env + ": " + "; ".join(f"{o.name}: {o.cell}" for o in outcomes),
                             exit_code=code)
        error.reported_as_json = as_json
        raise error
    return outcomes


def schema_dump(settings: Settings, check: bool = False, out: str | None = None, owners: bool = False) -> Any:
    """Write the schema file (default schema.sql at the project root, or `out`): the app schema and what the files
    attach to the platform's tables, built on a shadow database after every migration (checks.schema_dump).

    check: write nothing; exit 7 (DriftFound) with a unified diff on stdout when the committed file differs from
    what the migrations produce, exit 2 when it does not exist. owners: keep the objects' owners (off: they
    differ from machine to machine)."""
    from migrate.checks.schema_dump import (
        build_diff,
        committed_major,
        find_committed,
        produce_schema_file,
        require_writable,
        schema_file_path,
        write_schema_file,
    )
    from migrate.errors import DriftFound
    from migrate.paths import display_path
    from migrate.snapshot import find_all_versions
    from migrate.tracks import build_tracks

    path = schema_file_path(settings, out)
    shown = display_path(path, settings.root)
    committed = find_committed(path) if check else None
    if check and committed is None:  # said before any shadow exists
        raise ConfigError(f"{shown} does not exist, so there is nothing to check: run `inv schema dump` (python -m "
                          "migrate schema dump) to write it from the migrations, and commit it")
    if not check:
        require_writable(path)
    tracks = build_tracks(settings.migrations_dir)
    produced = produce_schema_file(settings, tracks, find_all_versions(settings, tracks), owners=owners)
    if not check:
        write_schema_file(path, produced.text)
        text.print_schema_written(shown, produced.versions)
        return produced
    assert committed is not None
    diff = build_diff(committed, produced.text, shown)
    if not diff:
        text.print_schema_matches(shown, produced.versions)
        return produced
    text.print_diff(diff)
    was = committed_major(committed)
    hint = (f" (it was built on PostgreSQL {was}, this shadow runs {produced.server_major}: view definitions and "
            "expressions differ between major versions; build it on one major version everywhere)"
            if was is not None and produced.server_major is not None and was != produced.server_major else "")
    raise DriftFound(f"{shown} differs from what the migrations produce (the diff is above){hint}: run `inv schema "
                     "dump` and commit the file with the migration that changed it")


def history(settings: Settings, limit: int = 20, as_json: bool = False) -> list[Any]:
    """The latest attempts from the attempt log, newest first; read-only."""
    from migrate.database.connection import wait_until_ready
    from migrate.history.tables import read_attempts

    if limit < 1:
        raise ConfigError(f"--limit {limit}: give a positive number of attempts to show")
    session = wait_until_ready(settings.target, read_only=True)
    try:
        attempts = read_attempts(session.connection, settings.schema, limit)
    finally:
        session.close()
    if as_json:
        documents.print_json({"environment": settings.env_name, "database": settings.target.label(),
                              "attempts": documents.attempts_json(attempts or [])})
    else:
        text.print_attempts(attempts, settings.env_name, settings.target.label(), settings.schema)
    return attempts or []


def wait(settings: Settings, timeout: float | None = None) -> float:
    """Return the seconds it took until an authenticated SELECT 1 succeeded."""
    from migrate.database.connection import wait_until_ready

    started = time.monotonic()
    wait_until_ready(settings.target, timeout).close()
    elapsed = time.monotonic() - started
    text.print_line(f"Database ready: {settings.target.label()} ({elapsed:.2f} s)")
    return elapsed


def db_stop(settings: Settings) -> bool:
    """Stop the embedded local server, if this environment uses one and it runs."""
    from migrate.database.embedded import stop

    pgdata = settings.target.embedded_pgdata
    if pgdata is None:
        text.print_line(f"Environment {settings.env_name!r} does not use the embedded PostgreSQL; nothing to stop.")
        return False
    stopped = stop(pgdata)
    text.print_line("Embedded PostgreSQL stopped." if stopped else "Embedded PostgreSQL was not running.")
    return stopped


def new(settings: Settings, description: str, track: str = "lanconnect") -> Any:
    """Create the next-numbered migration file of `track` from the template; print its path."""
    from migrate.files.authoring import new_migration

    created = new_migration(settings.migrations_dir, settings.root, settings.schema, description, track)
    text.print_new_migration(created.path, settings.root)
    return created


def lint(settings: Settings, paths: list[str] | None = None, as_json: bool = False) -> Any:
    """Lint the named files (default: every migration file); exit 4 when any error is found."""
    from migrate.checks.lint import lint_paths

    result = lint_paths(settings, paths or [])
    if as_json:
        documents.print_json(documents.lint_json(result.findings, result.files))
    else:
        text.print_lint(result.findings, result.files)
    if result.errors:
        error = ValidationError(f"lint found {len(result.errors)} error(s) in {len(result.files)} file(s); "
                                "fix them, or silence an intended one with -- migrate:lint-ignore RULE")
        error.reported_as_json = as_json
        raise error
    return result


def dev_start(settings: Settings, compose: Compose | None = None) -> str:
    """The local stack: docker compose when it works here, else this environment's database + migrate.

    Returns "compose" or "migrate" (which path ran); says which, and why, before starting.
    """
    from migrate import compose as stack

    compose = compose or stack.find_compose(settings.docker)
    if compose.available:
        text.print_line(f"dev-start: using {compose.reason}: db, then migration-init, then app "
                        f"(MIGRATE_ENV={settings.env_name})")
        stack.up(compose, settings.root, settings.env_name)
        return "compose"
    require_target(settings)  # only now does this machine connect: the compose stack picks its own server
    text.print_line(f"dev-start: docker compose is not available ({compose.reason}); using "
                    f"{settings.target.label()} and `inv migrate --env {settings.env_name}`")
    log.info("%s", settings.target_line())
    migrate(settings)
    return "migrate"


def start(root: Path, env_name: str = "production", compose: Compose | None = None,
          docker: str | None = None) -> None:
    """The stack with docker compose and environment `env_name`; there is no fallback without Docker."""
    from migrate import compose as stack

    compose = compose or stack.find_compose(docker)
    stack.require(compose, "start", f"to migrate the {env_name} database without Docker run "
                                    f"`inv migrate --env {env_name}`")
    text.print_line(f"start: using {compose.reason}: db, then migration-init, then app (MIGRATE_ENV={env_name})")
    stack.up(compose, root, env_name)


def stop(settings: Settings, compose: Compose | None = None) -> None:
    """Stop what dev-start started: the compose stack (when Docker works) and the embedded server."""
    from migrate import compose as stack

    compose = compose or stack.find_compose(settings.docker)
    if compose.available:
        text.print_line(f"stop: docker compose down ({compose.reason})")
        stack.down(compose, settings.root)
    db_stop(settings)
