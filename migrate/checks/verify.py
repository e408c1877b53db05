"""verify: prove on a scratch database that every migration file is idempotent and stays in its lane.

The seed asks authors to write SQL that can run twice and to leave the platform's schemas
alone; lint can only guess, verify checks. On the environment's own server it creates a
scratch database with a unique name (always dropped afterwards, even on failure), applies
every version in order exactly as `migrate` does, then runs each file a second time and
compares a catalog fingerprint (catalog.py) taken before and after. Around each first run
it fingerprints the protected schemas too, so a file that changes `auth` or `storage`
without a `-- migrate:allow-schema NAME` marker is reported.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from migrate.apply.file_session import FileSession
from migrate.apply.runner import apply_version
from migrate.checks.catalog import diff_fingerprints, read_app_schemas, read_fingerprint
from migrate.database.connection import Session, connection_params, server_error, this_host, wait_until_ready
from migrate.errors import ConfigError, MigrateError
from migrate.files.sqlfiles import MigrationVersion
from migrate.files.statements import Script, allowed_schemas, locate, parse_file
from migrate.history.recorder import Recorder
from migrate.history.tables import ensure_history_tables
from migrate.paths import display_path
from migrate.plan import MigrationInfo, build_plan
from migrate.settings import Settings, Target
from migrate.tracks import Track

log = logging.getLogger("migrate")


# VerifyFinding kinds (stable: they appear in --json output)
FIRST_RUN_ERROR = "first-run-error"
SECOND_RUN_ERROR = "second-run-error"
NOT_IDEMPOTENT = "not-idempotent"
PROTECTED_SCHEMA = "protected-schema"


@dataclass
class VerifyFinding:
    """One problem verify found in one file (or one version, for a first run)."""

    kind: str
    track: str
    version: str
    files: list[str]
    message: str
    changes: list[str] = field(default_factory=list)


@dataclass
class FileRun:
    """How one file fared: its version's first run and its own second run."""

    track: str
    version: str
    file: str
    first_run_ms: int | None = None
    second_run_ms: int | None = None
    result: str = "not run"


@dataclass
class VerifyResult:
    server: str
    scratch_database: str
    runs: list[FileRun] = field(default_factory=list)
    findings: list[VerifyFinding] = field(default_factory=list)
    dropped: bool = False


def scratch_name() -> str:
    """A database name no one else uses: timestamp plus random suffix, under 63 bytes."""
    return f"migrate_verify_{time.strftime('%Y%m%d%H%M%S')}_{secrets.token_hex(4)}"


@contextmanager
def scratch_database(settings: Settings) -> Iterator[tuple[Target, str, list[bool]]]:
    """A new database on the environment's server (and the target that reaches it); dropped on exit."""
    from psycopg2 import sql

    target = settings.target
    admin = wait_until_ready(target)
    name = scratch_name()
    where = target.masked_dsn(connection_params(target))
    try:
        with admin.connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except Exception as error:
        admin.close()
        raise ConfigError(
            f"verify could not create a scratch database on {where} ({server_error(error).message}); "
            "give the user CREATEDB, or run verify against a server where it may (e.g. --env local)"
        ) from None
    log.info("verify: created scratch database %s", name)
    dropped = [False]
    try:
        yield target._replace(connection=dict(target.connection, dbname=name)), name, dropped
    finally:
        dropped[0] = _drop(settings, admin, name)
        admin.close()


def _drop(settings: Settings, admin: Session, name: str) -> bool:
    """Drop the scratch database, reconnecting if the admin session died; warn if it cannot."""
    from psycopg2 import sql

    for attempt in (1, 2):
        try:
            if admin.closed:
                admin = wait_until_ready(settings.target, timeout=min(settings.target.max_wait, 10))
            with admin.connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            log.info("verify: dropped scratch database %s", name)
            return True
        except Exception as error:  # keep going: the findings matter more than the cleanup
            if attempt == 2:
                log.warning("warning: could not drop the scratch database %s (%s); drop it by hand: "
                            "DROP DATABASE %s;", name, error, name)
            else:
                admin.close()
    return False


def run_verify(settings: Settings, tracks: list[Track], versions: dict[str, list[MigrationVersion]],
               server_label: str) -> VerifyResult:
    """Apply everything on a scratch database, then every file again; collect findings."""
    root = settings.root
    plan = build_plan(tracks, versions, {track.name: [] for track in tracks}, root)
    items = plan.to_apply()
    scripts = {(i.track.name, i.version): [parse_file(f, root, settings.run.executor) for f in i.migration.files]
               for i in items if i.migration}
    protected = list(settings.lint.protected_schemas)
    result = VerifyResult(server=server_label, scratch_database="")
    with scratch_database(settings) as (scratch, name, dropped):
        result.scratch_database = name
        files = FileSession(scratch)  # each file in a fresh session, as migrate runs it
        try:
            _verify_on(files, settings, tracks, items, scripts, protected, result)
        finally:
            files.close()
    result.dropped = dropped[0]
    return result


def _verify_on(files: FileSession, settings: Settings, tracks: list[Track], items: list[MigrationInfo],
               scripts: dict[tuple[str, str], list[Script]], protected: list[str], result: VerifyResult) -> None:
    """Every version applied once, then every file run again, on the scratch database."""
    root = settings.root
    ensure_history_tables(files.connection, settings.schema, tracks)
    recorder = Recorder(files, settings.schema, this_host(), f"verify@{this_host()}")
    first_ok: list[tuple[list[Script], dict[str, FileRun]]] = []
    for item in items:
        parts = scripts[(item.track.name, item.version)]
        runs = {display_path(s.file.path, root): FileRun(item.track.name, item.version,
                                                         display_path(s.file.path, root)) for s in parts}
        result.runs.extend(runs.values())
        before = read_fingerprint(files.connection, protected)
        started = time.perf_counter()
        try:
            apply_version(files, recorder, item, parts, root, settings.run)
        except MigrateError as error:
            for run in runs.values():
                run.result = "error on first run"
            result.findings.append(VerifyFinding(FIRST_RUN_ERROR, item.track.name, item.version, list(runs),
                                           error.message))
            break
        elapsed = int((time.perf_counter() - started) * 1000)
        for run in runs.values():
            run.first_run_ms, run.result = elapsed, "ok"
        allowed = set().union(*(allowed_schemas(s.file.text) for s in parts))
        touched = [change for change in diff_fingerprints(before, read_fingerprint(files.connection, protected))
                   if change.schema not in allowed]
        if touched:
            for run in runs.values():
                run.result = "protected schema changed"
            schemas = sorted({change.schema for change in touched})
            result.findings.append(VerifyFinding(
                PROTECTED_SCHEMA, item.track.name, item.version, list(runs),
                f"changed protected schema(s) {', '.join(schemas)}; keep to the app schema, or add "
                f"`-- migrate:allow-schema {schemas[0]}` to the file if this is intended",
                [str(change) for change in touched]))
        first_ok.append((parts, runs))
    for parts, runs in first_ok:
        for script in parts:
            run = runs[display_path(script.file.path, root)]
            files.start_file()  # a fresh session for the second run too
            _second_run(files.connection, settings, script, run, result)
            files.finished(None, reset=False)


def _second_run(connection: Any, settings: Settings, script: Script, run: FileRun, result: VerifyResult) -> None:
    everything = read_app_schemas(connection, ())
    before = read_fingerprint(connection, everything)
    started = time.perf_counter()
    error = _run_again(connection, script, settings)
    run.second_run_ms = int((time.perf_counter() - started) * 1000)
    if error is not None:
        run.result = "error on second run"
        result.findings.append(VerifyFinding(SECOND_RUN_ERROR, run.track, run.version, [run.file],
                                       f"{error}; make every statement safe to re-run (IF NOT EXISTS, "
                                       "OR REPLACE, DROP ... IF EXISTS, guarded DO blocks)"))
        return
    changes = diff_fingerprints(before, read_fingerprint(connection, read_app_schemas(connection, ())))
    if changes:
        run.result = "not idempotent"
        result.findings.append(VerifyFinding(NOT_IDEMPOTENT, run.track, run.version, [run.file],
                                       f"running it a second time changed the schema ({len(changes)} change(s)); "
                                       "guard each statement so a re-run changes nothing",
                                       [str(change) for change in changes]))


def _run_again(connection: Any, script: Script, settings: Settings) -> str | None:
    """Run one file's statements again the way migrate would; the error text, or None."""
    from contextlib import nullcontext

    import psycopg2

    from migrate.database.sql import transaction

    statement = None
    try:
        with transaction(connection) if script.transactional else nullcontext(connection.cursor()) as cursor:
            for statement in script.statements:
                cursor.execute(statement.text)
    except psycopg2.Error as raw:
        assert statement is not None
        error = server_error(raw)
        offset = statement.offset
        if error.position is not None and 0 <= error.position - 1 < len(statement.text):
            offset += error.position - 1
        line, column = locate(statement.file.text, offset)
        return (f"{display_path(statement.file.path, settings.root)}:{line}:{column}: "
                f"ERROR {error.sqlstate or '-----'}: {error.message}")
    return None
