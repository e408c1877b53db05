"""verify: prove on a shadow database that every migration file can run again, and stays in its lane.

The seed asks authors to write SQL that can run twice and to leave the platform's schemas alone;
lint can only guess, verify checks. It builds a shadow database that looks like the target's
platform (shadow.py: its schemas, roles and extensions, on a server where cluster-wide effects
harm no one), then, in order, exactly as `migrate` would:

1. runs each version for the first time (apply_version: one fresh session, the history row),
   and compares the protected schemas before and after;
2. right after it, runs each of its files again, each in a fresh session as psql's was (a
   search_path or temp table of an earlier run never leaks), psql files through psql;
3. at the end runs the whole set once more, file by file, each in a fresh session.

Around every run it compares what the shadow holds, read on a session of its own that never runs
a file: the catalog of every non-system schema (catalog.py) and the data (row counts and a hash of
each table's rows; where each sequence stands). A later file replacing an earlier file's
function, view, policy or trigger is noted (`redefined-later`), never counted against the earlier
file, because its own re-run happened before the later file ran. Files with cluster-wide
statements (reach.py) run only on a disposable shadow server; on a shared one they are reported
and skipped.

Finding kinds (stable: they appear in --json; README "verify"):
  fails-on-first-run      error    the version fails on a fresh shadow (later versions are not run)
  fails-on-rerun          error    running the file again fails (right after its first run, or in the final pass)
  not-idempotent-schema   error    running it again changes the catalog
  not-idempotent-data     error    running it again changes rows, or moves a sequence back onto values in use
                          warning  ... only date/time values (now() defaults, touch triggers)
  protected-schema        error    it changes a platform schema's structure or privileges (no allow marker)
                          warning  it adds a function to a platform schema
  cluster-level           error    on a shared shadow server: it was not run
                          info     on a disposable one: it ran there
  redefined-later         info     a later file replaces its function, view, policy or trigger
  missing-extension, missing-role, shadow-setup   warning   the shadow could not be made like the target
Advice never asks to edit a file a database has applied: migrate refuses such a file as `changed`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from migrate.apply.file_session import FileSession
from migrate.apply.runner import apply_version
from migrate.checks.catalog import (
    Change,
    DataPrint,
    Fingerprint,
    diff_data,
    diff_fingerprints,
    read_app_schemas,
    read_column_extreme,
    read_data,
    read_fingerprint,
    sequences_moved_back,
)
from migrate.checks.reach import Reach
from migrate.checks.shadow import Shadow, open_shadow
from migrate.checks.shadow_apply import failure_hints, prepare, select_versions
from migrate.database.connection import Session, connect, connection_params, server_error, this_host
from migrate.errors import MigrateError
from migrate.files.sqlfiles import MigrationVersion
from migrate.files.statements import Script, allowed_schemas, locate
from migrate.history.recorder import Recorder
from migrate.history.tables import ensure_history_tables
from migrate.paths import display_path
from migrate.plan import MigrationInfo
from migrate.settings import Settings
from migrate.tracks import Track

log = logging.getLogger("migrate")

# Finding kinds (stable: they appear in --json output and README)
FAILS_ON_FIRST_RUN = "fails-on-first-run"
FAILS_ON_RERUN = "fails-on-rerun"
NOT_IDEMPOTENT_SCHEMA = "not-idempotent-schema"
NOT_IDEMPOTENT_DATA = "not-idempotent-data"
PROTECTED_SCHEMA = "protected-schema"
CLUSTER_LEVEL = "cluster-level"
REDEFINED_LATER = "redefined-later"
ERROR, WARNING, INFO = "error", "warning", "info"
IDLE = 0  # psycopg2.extensions.TRANSACTION_STATUS_IDLE
# a file's `result`: its first error finding's kind, else one of these
OK, NOT_RUN = "ok", "not run"

REDEFINABLE = {"function", "procedure", "aggregate", "view", "materialized view", "policy", "trigger"}
ATTACHMENTS = {"policy", "trigger", "extension"}  # attached to the platform, not changing it
NEW_CODE = {"function", "procedure", "aggregate"}
LATER_FIX = ("if no database has applied this file yet, change it; if one has, leave it as it is (migrate stops at "
             "an edited applied file: `changed`) and write a new migration (`inv new`) for anything that must change")


@dataclass
class VerifyFinding:
    """One thing verify found about one file (or a version, or the shadow itself: no track and no files)."""

    kind: str
    track: str | None
    version: str | None
    files: list[str]
    message: str
    changes: list[str] = field(default_factory=list)
    severity: str = ERROR


@dataclass
class FileRun:
    """How one file fared: its version's first run, its own re-run, its run in the final pass."""

    track: str
    version: str
    file: str
    first_run_ms: int | None = None
    second_run_ms: int | None = None
    final_run_ms: int | None = None
    result: str = NOT_RUN


@dataclass
class VerifyResult:
    """What verify did and found; `errors` decide the exit code."""

    server: str
    scratch_database: str
    runs: list[FileRun] = field(default_factory=list)
    findings: list[VerifyFinding] = field(default_factory=list)
    dropped: bool = False
    server_why: str = ""
    disposable: bool = False
    platform: str = ""
    platform_schemas: list[str] = field(default_factory=list)
    platform_extensions: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    roles_created: list[str] = field(default_factory=list)
    roles_dropped: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[VerifyFinding]:
        return [finding for finding in self.findings if finding.severity == ERROR]


class State(NamedTuple):
    """What the shadow holds at one moment: its catalog and its data."""

    catalog: Fingerprint
    data: DataPrint


def run_verify(settings: Settings, tracks: list[Track], versions: dict[str, list[MigrationVersion]]) -> VerifyResult:
    """Every version on a shadow database, each file run again right after it and once more at the end."""
    files = prepare(settings, select_versions(tracks, versions, settings.root))  # refused before anything exists
    result = VerifyResult(server="", scratch_database="")
    with open_shadow(settings, files.reach, "verify") as shadow:
        _describe(result, shadow)
        _Verifier(settings, shadow, tracks, files.items, files.scripts, files.reaches, result).run()
    result.dropped, result.roles_dropped = shadow.dropped, list(shadow.roles_dropped)
    return result


def _describe(result: VerifyResult, shadow: Shadow) -> None:
    result.server = shadow.server.label()
    result.scratch_database = shadow.name
    result.server_why = shadow.server.why
    result.disposable = shadow.server.disposable
    result.platform = shadow.platform.description
    result.platform_schemas = list(shadow.schemas)
    result.platform_extensions = list(shadow.extensions)
    result.left_out = list(shadow.platform.left_out)
    result.roles_created = list(shadow.roles_created)
    for note in shadow.notes:
        result.findings.append(VerifyFinding(note.kind, None, None, [], note.message, severity=WARNING))


class _Verifier:
    """One verify run on one shadow: the runs, the observations between them, the findings."""

    observer: Session  # a session on the shadow that only reads (opened by run)

    def __init__(self, settings: Settings, shadow: Shadow, tracks: list[Track], items: list[MigrationInfo],
                 scripts: dict[tuple[str, str], list[Script]], reaches: dict[str, Reach], result: VerifyResult) -> None:
        self.settings = settings
        self.shadow = shadow
        self.tracks = tracks
        self.items = items
        self.scripts = scripts
        self.reaches = reaches
        self.result = result
        self.protected = set(settings.lint.protected_schemas)
        self.runs: dict[str, FileRun] = {}
        self.flagged: set[str] = set()  # files with an error from their re-run: the final pass does not repeat it
        self.defined: dict[tuple[str, str, str], str] = {}  # redefinable object -> the file that last defined it
        self.skipped: list[str] = []  # files not run: cluster-wide on a shared server

    def label(self, script: Script) -> str:
        return display_path(script.file.path, self.settings.root)

    def run(self) -> None:
        files = FileSession(self.shadow.target)  # each file in a fresh session, as migrate runs it
        self.observer = connect(connection_params(self.shadow.target), self.shadow.target.secrets(),
                                connect_timeout=10)  # reads the shadow; never runs a file
        try:
            ensure_history_tables(files.connection, self.settings.schema, self.tracks)
            recorder = Recorder(files, self.settings.schema, this_host(), f"verify@{this_host()}")
            done = self._first_pass(files, recorder)
            if done is not None:
                self._final_pass(files, done)
        finally:
            files.close()
            self.observer.close()

    def observe(self) -> State:
        schemas = read_app_schemas(self.observer.connection, ())
        return State(read_fingerprint(self.observer.connection, schemas), read_data(self.observer.connection, schemas))

    def add(self, kind: str, run: FileRun | None, files: list[str], message: str, changes: list[str] | None = None,
            severity: str = ERROR, item: MigrationInfo | None = None) -> None:
        track = run.track if run else item.track.name if item else None
        version = run.version if run else item.version if item else None
        self.result.findings.append(VerifyFinding(kind, track, version, files, message, changes or [], severity))
        if severity == ERROR:
            for name in files:
                if self.runs[name].result in (OK, NOT_RUN):
                    self.runs[name].result = kind

    # ---- pass 1: each version's first run, then each of its files again ----------------------------------

    def _first_pass(self, files: FileSession, recorder: Recorder) -> list[Script] | None:
        """The files that ran, in order; None when a version failed its first run (no final pass then)."""
        done: list[Script] = []
        for item in self.items:  # every file is listed, also those a failure leaves unrun
            for script in self.scripts[(item.track.name, item.version)]:
                self.runs[self.label(script)] = FileRun(item.track.name, item.version, self.label(script))
                self.result.runs.append(self.runs[self.label(script)])
        state = self.observe()
        for item in self.items:
            parts = self.scripts[(item.track.name, item.version)]
            names = [self.label(script) for script in parts]
            if not self._cluster_allowed(parts):
                continue
            started = time.perf_counter()
            try:
                apply_version(files, recorder, item, parts, self.settings.root, self.settings.run)
            except MigrateError as error:
                self._first_run_failed(item, names, error)
                return None
            elapsed = int((time.perf_counter() - started) * 1000)
            after = self.observe()
            for name in names:
                self.runs[name].first_run_ms, self.runs[name].result = elapsed, OK
            changes = diff_fingerprints(state.catalog, after.catalog)
            self._protected(parts, changes)
            self._redefinitions(names, changes)
            state = after
            for script in parts:
                state = self._rerun(files, script, state)
            done.extend(parts)
        return done

    def _cluster_allowed(self, parts: list[Script]) -> bool:
        """Report cluster-wide statements; False (the version is not run) on a shared shadow server."""
        names = [self.label(script) for script in parts]
        found = {name: self.reaches[name].cluster for name in names if self.reaches[name].cluster}
        server = self.shadow.server
        for name, statements in found.items():
            listed = ", ".join(str(statement) for statement in statements[:4])
            more = f" (+{len(statements) - 4} more)" if len(statements) > 4 else ""
            if server.disposable:
                self.add(CLUSTER_LEVEL, self.runs[name], [name], (
                    f"{listed}{more}: cluster-wide, run on the disposable shadow server ({server.why}); the roles "
                    "verify or the files created there are dropped afterwards, other cluster-wide changes stay"),
                    severity=INFO)
            else:
                self.add(CLUSTER_LEVEL, self.runs[name], [name], (
                    f"{listed}{more}: cluster-wide (roles, databases, tablespaces and server settings are shared by "
                    f"every database on {server.label()}), and the shadow server is shared ({server.why}), so this "
                    "version was not run and the files after it were verified without it; to verify it, use a "
                    "disposable shadow server (MIGRATE_SHADOW_URL with MIGRATE_SHADOW_DISPOSABLE=true, or an "
                    "environment marked MIGRATE_DISPOSABLE=true)"))
        if not all(self.shadow.may_run(self.reaches[name]) for name in names):
            self.skipped.extend(names)
            for name in names:
                self.runs[name].result = CLUSTER_LEVEL if name in found else NOT_RUN
            return False
        return True

    def _first_run_failed(self, item: MigrationInfo, names: list[str], error: MigrateError) -> None:
        head = error.message.split(f"; {item.track.name} version {item.version} failed", 1)[0]
        hints = failure_hints(self.shadow, head, self.skipped)
        hints.append("if it runs on the target, the shadow differs from it there; if it fails everywhere and no "
                     "database has applied it yet, fix it")
        for name in names:
            self.runs[name].result = FAILS_ON_FIRST_RUN
        self.add(FAILS_ON_FIRST_RUN, None, names, f"{head}; it fails on the shadow database, so later versions were "
                 f"not verified; {'; '.join(hints)}", item=item)

    def _protected(self, parts: list[Script], changes: list[Change]) -> None:
        """Changes to the platform's schemas: attaching (policies, triggers, extensions) is allowed, a new
        function is a warning, any other change an error; a file may allow a schema with a marker."""
        allowed = set().union(*(allowed_schemas(script.file.text) for script in parts))
        touched = [c for c in changes if c.schema in self.protected and c.schema not in allowed
                   and c.kind not in ATTACHMENTS]
        names = [self.label(script) for script in parts]
        added_code = [c for c in touched if c.kind in NEW_CODE and c.verb == "added"]
        structure = [c for c in touched if c not in added_code]
        run = self.runs[names[0]]
        if structure:
            schemas = sorted({change.schema for change in structure})
            self.add(PROTECTED_SCHEMA, run, names, (
                f"changes the structure or privileges of platform schema(s) {', '.join(schemas)}, which the platform "
                "owns (attaching policies and triggers to its tables is fine); keep to the app schema, or add "
                f"`-- migrate:allow-schema {schemas[0]}` to the file if this is intended"),
                [str(change) for change in structure])
        if added_code:
            schemas = sorted({change.schema for change in added_code})
            self.add(PROTECTED_SCHEMA, run, names, (
                f"creates function(s) in platform schema(s) {', '.join(schemas)}; the app schema is the safer home "
                f"(the platform may replace its schemas), or add `-- migrate:allow-schema {schemas[0]}`"),
                [str(change) for change in added_code], severity=WARNING)

    def _redefinitions(self, names: list[str], changes: list[Change]) -> None:
        """A function, view, policy or trigger an earlier file defined, replaced by this version: noted once per
        earlier file; this version becomes the one that defines it."""
        by_file: dict[str, list[str]] = {}
        for change in changes:
            key = (change.kind, change.schema, change.name)
            if change.kind not in REDEFINABLE:
                continue
            earlier = self.defined.get(key)
            if change.verb == "changed" and earlier is not None and earlier not in names:
                by_file.setdefault(earlier, []).append(f"{change.kind} {change.schema}.{change.name}")
            if change.verb == "removed":
                self.defined.pop(key, None)
            else:
                self.defined[key] = names[0]
        later = ", ".join(names)
        for earlier, objects in by_file.items():
            run = self.runs[earlier]
            self.add(REDEFINED_LATER, run, [earlier], (
                f"a later file ({later}) redefines {', '.join(objects)}: expected when a migration replaces what an "
                "earlier one defined; nothing to do (its own re-run was checked before the later file ran)"),
                severity=INFO)

    # ---- re-runs ----------------------------------------------------------------------------------------

    def _rerun(self, files: FileSession, script: Script, before: State) -> State:
        """The file again, right after its first run; findings against the state before it."""
        name = self.label(script)
        run = self.runs[name]
        started = time.perf_counter()
        error = self._run_file(files, script)
        run.second_run_ms = int((time.perf_counter() - started) * 1000)
        after = self.observe()
        if error is not None:
            self.flagged.add(name)
            self.add(FAILS_ON_RERUN, run, [name], f"{error}; running it again fails: make each statement safe to "
                     "re-run (IF NOT EXISTS, OR REPLACE, DROP ... IF EXISTS, a DO block that checks the catalog); "
                     + LATER_FIX)
            return after
        if self._judge(run, name, before, after, "running it again"):
            self.flagged.add(name)
        return after

    def _judge(self, run: FileRun, name: str, before: State, after: State, doing: str) -> bool:
        """Findings for what a run changed; True when one is an error."""
        error = False
        schema = diff_fingerprints(before.catalog, after.catalog)
        if schema:
            error = True
            self.add(NOT_IDEMPOTENT_SCHEMA, run, [name], (
                f"{doing} changes the schema ({len(schema)} change(s)): guard each statement so a second run changes "
                f"nothing (a named index with IF NOT EXISTS, ADD COLUMN IF NOT EXISTS, ...); " + LATER_FIX),
                [str(change) for change in schema])
        data = diff_data(before.data, after.data)
        rows = [change for change in data if not change.time_only]
        collisions = self._collisions(before.data, after.data)
        if rows or collisions:
            error = True
            self.add(NOT_IDEMPOTENT_DATA, run, [name], (
                f"{doing} changes data: use INSERT ... ON CONFLICT DO NOTHING (or a WHERE NOT EXISTS), an UPDATE "
                "whose WHERE skips rows already updated, and never move a sequence back (ALTER SEQUENCE ... "
                "RESTART, setval) below the values it handed out; " + LATER_FIX),
                [str(change) for change in rows] + collisions)
        elif data:
            self.add(NOT_IDEMPOTENT_DATA, run, [name], (
                f"{doing} changes only date/time values (a now() in an UPDATE, or a trigger such as "
                "touch_updated_at): harmless unless something reads them; an UPDATE whose WHERE skips rows already "
                "updated avoids it"), [str(change) for change in data], severity=WARNING)
        return error

    def _collisions(self, before: DataPrint, after: DataPrint) -> list[str]:
        """Sequences a run moved back onto values already in use (or, feeding no column, already handed out)."""
        found = []
        for schema, name, old, new in sequences_moved_back(before, after):
            if not new.feeds:
                found.append(f"sequence {schema}.{name} moved back: its next value was {old.next_value}, now "
                             f"{new.next_value}, so it hands out values again")
                continue
            for table_schema, table, column in new.feeds:
                try:
                    extreme = read_column_extreme(self.observer.connection, table_schema, table, column,
                                                  largest=new.increment > 0)
                except Exception:  # noqa: BLE001 - a column that cannot be compared (not a number): say it moved
                    extreme = None
                if extreme is not None and (new.next_value <= extreme if new.increment > 0
                                            else new.next_value >= extreme):
                    found.append(f"sequence {schema}.{name} moved back to {new.next_value}, which "
                                 f"{table_schema}.{table}.{column} already holds (up to {extreme}): the next insert "
                                 "fails with a duplicate key")
        return found

    def _final_pass(self, files: FileSession, done: list[Script]) -> None:
        """The whole set once more, file by file; what it leaves changed is the last changer's finding."""
        base = state = self.observe()
        last: dict[tuple[str, str, str], str] = {}
        for script in done:
            name = self.label(script)
            run = self.runs[name]
            started = time.perf_counter()
            error = self._run_file(files, script)
            run.final_run_ms = int((time.perf_counter() - started) * 1000)
            after = self.observe()
            if error is not None and name not in self.flagged:
                self.flagged.add(name)
                self.add(FAILS_ON_RERUN, run, [name], (
                    f"{error}; it fails when the whole set runs again (each file once more, in order), though not "
                    "right after its own first run: a later file changed what it expects; make it check for that "
                    "state, or " + LATER_FIX))
            if error is None:
                for change in diff_fingerprints(state.catalog, after.catalog):
                    last[(change.kind, change.schema, change.name)] = name
                for data_change in diff_data(state.data, after.data):
                    last[("rows", data_change.schema, data_change.name)] = name
                collisions = self._collisions(state.data, after.data)
                if collisions and name not in self.flagged:
                    self.flagged.add(name)
                    self.add(NOT_IDEMPOTENT_DATA, run, [name], (
                        "when the whole set runs again, it moves a sequence back onto values the files after it "
                        "used: never RESTART (or setval) a sequence below the values it handed out; " + LATER_FIX),
                        collisions)
            state = after
        self._left_changed(base, state, last)

    def _left_changed(self, base: State, end: State, last: dict[tuple[str, str, str], str]) -> None:
        """What the whole set's second run left different from before it, by the file that changed it last."""
        schema: dict[str, list[str]] = {}
        rows: dict[str, list[str]] = {}
        for change in diff_fingerprints(base.catalog, end.catalog):
            owner = last.get((change.kind, change.schema, change.name))
            if owner is not None and owner not in self.flagged:
                schema.setdefault(owner, []).append(str(change))
        for data_change in diff_data(base.data, end.data):
            owner = last.get(("rows", data_change.schema, data_change.name))
            if owner is not None and owner not in self.flagged and not data_change.time_only:
                rows.setdefault(owner, []).append(str(data_change))
        doing = "running the whole set again (each file once more, in order)"
        for owner, changes in schema.items():
            self.add(NOT_IDEMPOTENT_SCHEMA, self.runs[owner], [owner], (
                f"{doing} leaves the schema changed, this file last: it undoes what a later file did, or the "
                f"other way round; " + LATER_FIX), changes)
        for owner, changes in rows.items():
            self.add(NOT_IDEMPOTENT_DATA, self.runs[owner], [owner], (
                f"{doing} leaves data changed, this file last; " + LATER_FIX), changes)

    def _run_file(self, files: FileSession, script: Script) -> str | None:
        """Run one file again as migrate would (one transaction unless it cannot; psql files through psql),
        in a fresh session, recording nothing; the error as `file:line:column: ERROR ...`, or None."""
        files.start_file()
        try:
            if script.needs_psql:
                return self._run_with_psql(files, script)
            return self._run_statements(files.connection, script)
        finally:
            files.connection.notices = []
            files.finished(None, reset=False)

    def _run_statements(self, connection: Any, script: Script) -> str | None:
        """A builtin file: in one transaction when it can, else statement by statement in autocommit (a file
        left inside its own BEGIN is rolled back, as psql does at the end of a file)."""
        import psycopg2

        statement = None
        try:
            with connection.cursor() as cursor:
                if script.transactional:
                    cursor.execute("BEGIN")
                for statement in script.statements:
                    cursor.execute(statement.text)
                if script.transactional:
                    cursor.execute("COMMIT")
                elif connection.info.transaction_status != IDLE:
                    cursor.execute("ROLLBACK")
        except psycopg2.Error as raw:
            error = server_error(raw)
            if not connection.closed and connection.info.transaction_status != IDLE:
                with connection.cursor() as cursor:
                    cursor.execute("ROLLBACK")
            if statement is None:
                return f"{self.label(script)}: ERROR {error.sqlstate or '-----'}: {error.message}"
            offset = statement.offset
            if error.position is not None and 0 <= error.position - 1 < len(statement.text):
                offset += error.position - 1
            line, column = locate(statement.file.text, offset)
            return f"{self.label(script)}:{line}:{column}: ERROR {error.sqlstate or '-----'}: {error.message}"
        return None

    def _run_with_psql(self, files: FileSession, script: Script) -> str | None:
        from migrate.apply.psql import PsqlError, require_psql, run_files

        psql = require_psql(self.settings.run.psql_path, [script], self.settings.root)
        assert psql is not None
        session: Session = files.session
        try:
            run_files(psql, session.params, [script], single_transaction=script.no_transaction is None,
                      first_sql=session.restore_sql or None)
        except PsqlError as error:
            where = self.label(script) + (f":{error.line}" if error.line else "")
            return f"{where}: ERROR {error.sqlstate or '-----'}: {error.message}"
        return None
