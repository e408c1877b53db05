"""drift: does a live database still match the migrations its history says it has applied?

Teams edit production by hand (Studio, psql during an incident) and the migrations stop
describing it. drift rebuilds what the migrations should have produced and compares it with
what is there, object by object (checks/schema_model.py reads and compares both sides):

- **Expected**: a shadow database that looks like the target's platform (shadow.py), with each
  track applied only as far as the target's history says (shadow_apply.py): every version the
  target records as applied, and nothing else. Pending versions are listed as pending, never as
  drift. What the history says about a version decides what runs, and a note says so:
    changed  (applied, its file edited since): the file runs as it is now, since its applied text
             is not stored; a difference in what it creates may come from that edit.
    added    (applied, more files share its number now): only the files recorded as applied run.
    missing  (a history row without a file): nothing can run; what it created shows as extra.
    failed, and pending versions interrupted mid-file: not run; what a file outside a transaction
             committed before it stopped shows as extra.
- **Actual**: the target, read-only: its plan and its catalog on one session that sets
  default_transaction_read_only, the catalog in one REPEATABLE READ snapshot (read_model).
- **Deploy in progress**: a migration run holds the run lock (database/run_lock.py) while it
  applies. drift asks pg_locks (it never takes the lock, so it never delays a deploy) before it
  reads the target and again after, and re-reads the history: a run that held the lock, or
  applied anything, meanwhile makes drift stop with DeployInProgress (exit 8) instead of
  reporting half a deploy.

A finding the shadow explains (an extension the shadow's server lacks, a version not run there
because its cluster-wide statements cannot run on a shared shadow server) carries a `cause` and is
not counted as drift: it is listed, never hidden, and never passed off as a hand edit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from migrate.checks.reach import Reach, merge_all, reach_of_file
from migrate.checks.shadow_apply import ShadowApplied, apply_on_shadow, prepare
from migrate.errors import DeployInProgress
from migrate.paths import display_path
from migrate.plan import ADDED, APPLIED, CHANGED, FAILED, MISSING, PENDING, MigrationInfo, Plan
from migrate.settings import Settings

log = logging.getLogger("migrate")

# Note kinds (stable: they appear in --json; README "Drift"). The shadow's own notes keep theirs
# (missing-extension, missing-role, shadow-setup).
CHANGED_FILE = "changed-file"
ADDED_FILES = "added-files"
MISSING_FILE = "missing-file"
FAILED_VERSION = "failed-version"
INTERRUPTED = "interrupted"
CLUSTER_LEVEL = "cluster-level"

EXPECTED_STATES = (APPLIED, CHANGED, ADDED)  # what the target's history says is applied


class DriftNote(NamedTuple):
    """Something about how the expected state was built that a reader of the findings must know."""

    kind: str
    message: str
    track: str | None = None
    version: str | None = None


@dataclass
class DriftItem:
    """One finding of the comparison; `cause` set: the shadow explains it, it is not counted as drift."""

    finding: Any  # schema_model.Finding: state, kind, name, expected, actual
    cause: str | None = None

    def line(self) -> str:
        text = str(self.finding)
        return f"{text} (not counted: {self.cause})" if self.cause else text


@dataclass
class ShadowFacts:
    """Where the expected state was built, for the output."""

    database: str = ""
    server: str = ""
    why: str = ""
    disposable: bool = False
    platform: str = ""
    extensions: list[str] = field(default_factory=list)
    roles_created: list[str] = field(default_factory=list)
    dropped: bool = False


@dataclass
class DriftResult:
    """What drift compared and found for one environment."""

    environment: str
    database: str
    schema: str
    findings: list[DriftItem] = field(default_factory=list)
    pending: list[MigrationInfo] = field(default_factory=list)
    expected: list[MigrationInfo] = field(default_factory=list)  # the versions built on the shadow
    not_compared: list[str] = field(default_factory=list)
    notes: list[DriftNote] = field(default_factory=list)
    shadow: ShadowFacts = field(default_factory=ShadowFacts)
    owners: bool = True
    deploy: str | None = None  # who holds the run lock, when a deploy is in progress

    @property
    def drifted(self) -> list[DriftItem]:
        return [item for item in self.findings if item.cause is None]


def run_drift(settings: Settings, owners: bool = True) -> DriftResult:
    """Compare the target with its applied migrations built on a shadow; raises DeployInProgress (exit 8)
    when a migration run holds the run lock, Refused (exit 6) when there is no shadow server."""
    from migrate.checks.shadow import choose_server, open_shadow
    from migrate.snapshot import find_all_versions
    from migrate.tracks import build_tracks

    choose_server(settings, "drift")  # no server for a shadow: refused (exit 6) before the target is read
    tracks = build_tracks(settings.migrations_dir)
    versions = find_all_versions(settings, tracks)
    result = DriftResult(settings.env_name, settings.target.label(), settings.schema, owners=owners)
    every = _reach_of_every_file(settings, versions)  # applied and pending: what the files attach to the platform
    try:
        plan, actual = _read_target(settings, tracks, versions, every, owners, result)
    except DeployInProgress as error:
        error.result = result  # type: ignore[attr-defined]  # --json prints the document with the error in it
        raise
    result.pending = [item for item in plan.items if item.state == PENDING]
    result.expected = _expected_items(plan)
    result.notes.extend(_plan_notes(plan, settings))
    files = prepare(settings, result.expected)  # a file that does not parse is refused before a shadow exists
    with open_shadow(settings, every, "drift") as shadow:
        _describe(result.shadow, shadow)
        result.notes.extend(DriftNote(note.kind, note.message) for note in shadow.notes)
        applied = apply_on_shadow(settings, shadow, files, quiet=True)
        result.notes.extend(_skipped_notes(applied, shadow.server.label()))
        expected = _read_shadow(settings, shadow, every, owners)
        missing_extensions = {entry.name for entry in shadow.platform.entries
                              if entry.kind == "EXTENSION" and entry.name not in shadow.extensions}
    result.shadow.dropped = shadow.dropped
    from migrate.checks.schema_model import compare

    causes = _Causes(missing_extensions, applied, files.reaches, settings)
    result.findings = [DriftItem(finding, causes.of(finding)) for finding in compare(expected, actual)]
    result.not_compared = sorted(set(expected.not_compared) | set(actual.not_compared))
    return result


def _reach_of_every_file(settings: Settings, versions: dict[str, list[Any]]) -> Reach:
    return merge_all(reach_of_file(migration_file.text) for track_versions in versions.values()
                     for version in track_versions for migration_file in version.files)


def _read_target(settings: Settings, tracks: list[Any], versions: dict[str, list[Any]], every: Reach, owners: bool,
                 result: DriftResult) -> tuple[Plan, Any]:
    """The target's plan and catalog, read-only, between two looks at the run lock (see the module doc)."""
    from migrate.checks.schema_model import read_model
    from migrate.database.connection import wait_until_ready
    from migrate.snapshot import read_plan_readonly

    session = wait_until_ready(settings.target, read_only=True)
    try:
        session.set({"default_transaction_read_only": "on"})  # nothing drift sends can write
        _no_deploy(session, settings, result, "")
        plan = read_plan_readonly(settings, session, tracks, versions)
        actual = read_model(session.connection, settings.schema, every.attachments, owners=owners,
                            extensions=_extensions(every))
        _no_deploy(session, settings, result, " (it started while drift read the database)")
        after = read_plan_readonly(settings, session, tracks, versions)
        if _applied(after) != _applied(plan):
            result.deploy = "a migration run applied versions while drift read the database"
            raise DeployInProgress(
                f"a deploy is in progress on {settings.target.label()}: versions were applied while drift read "
                f"the database ({_versions(sorted(_applied(after) ^ _applied(plan)))}); drift was not measured on "
                "half a deploy: run it again when the deploy is done")
    finally:
        session.close()
    return plan, actual


def _extensions(every: Reach) -> set[str]:
    """The extensions the files create (compared besides those in the app schema or used by its objects)."""
    return {name for kind, name in every.database_objects if kind == "EXTENSION"}


def _no_deploy(session: Any, settings: Settings, result: DriftResult, when: str) -> None:
    from migrate.database.run_lock import read_run_lock_holder

    holder = read_run_lock_holder(session.connection, settings.schema)
    if holder is None:
        return
    result.deploy = holder
    raise DeployInProgress(
        f"a deploy is in progress on {settings.target.label()}: a migration run holds the run lock on schema "
        f"{settings.schema!r} ({holder}){when}; drift was not measured on half a deploy: run it again when the "
        "deploy is done")


def _applied(plan: Plan) -> set[tuple[str, str, str]]:
    return {(item.track.name, item.version, item.state) for item in plan.items}


def _versions(keys: list[tuple[str, str, str]]) -> str:
    return ", ".join(dict.fromkeys(f"{track} {version}" for track, version, _ in keys))


def _expected_items(plan: Plan) -> list[MigrationInfo]:
    """The versions the target records as applied, with the files that ran (an added version: only those
    recorded), tracks in order and versions by number, as migrate applies them."""
    items = []
    for item in plan.items:
        if item.state not in EXPECTED_STATES or item.migration is None:
            continue
        if item.state == ADDED:
            recorded = set(f.name for f in item.migration.files) - set(f.name for f in item.added_files)
            item = item._replace(to_run=tuple(f for f in item.migration.files if f.name in recorded))
        items.append(item)
    return items


def _plan_notes(plan: Plan, settings: Settings) -> list[DriftNote]:
    """What the history says that changes what the expected state can be (see the module doc)."""
    notes = []
    for item in plan.items:
        key = f"{item.track.name} version {item.version}"
        files = ", ".join(display_path(f.path, settings.root) for f in item.migration.files) if item.migration else ""
        if item.state == CHANGED:
            notes.append(DriftNote(CHANGED_FILE, (
                f"{key} ({files}) was edited after it was applied (its checksum differs from the recorded one): the "
                "shadow ran the file as it is now, because the applied text is not stored; a finding on what it "
                "creates may come from that edit rather than from a hand change (`inv repair` accepts a reviewed "
                "edit)"), item.track.name, item.version))
        elif item.state == ADDED:
            added = ", ".join(f.name for f in item.added_files)
            notes.append(DriftNote(ADDED_FILES, (
                f"{key}: {added} was added under it after it was applied and never ran on the target: the shadow ran "
                "only the file(s) recorded as applied"), item.track.name, item.version))
        elif item.state == MISSING:
            status = item.row.status if item.row is not None else "applied"
            notes.append(DriftNote(MISSING_FILE, (
                f"{key} is recorded ({status}) but no file has that version: what it created cannot be expected, so "
                "it shows as extra; restore the file to compare it"), item.track.name, item.version))
        elif item.state == FAILED:
            notes.append(DriftNote(FAILED_VERSION, (
                f"{key} ({files}) is recorded as failed: it was not run on the shadow; a file that runs outside a "
                "transaction may have committed some statements before it failed, and those show as extra"),
                item.track.name, item.version))
        if item.interrupted and item.state != FAILED:
            notes.append(DriftNote(INTERRUPTED, (
                f"{key} ({files}) was interrupted mid-file ({item.interrupted_at}): it is pending, not run on the "
                "shadow; what it committed before it stopped shows as extra"), item.track.name, item.version))
    return notes


def _skipped_notes(applied: ShadowApplied, server: str) -> list[DriftNote]:
    return [DriftNote(CLUSTER_LEVEL, (
        f"{item.track.name} version {item.version} was not run on the shadow: its cluster-wide statement(s) "
        f"{', '.join(statements[:3])} cannot run on the shared shadow server {server}; findings on what it "
        "creates are not counted; use a disposable shadow server (MIGRATE_SHADOW_DISPOSABLE=true) to compare them"),
        item.track.name, item.version) for item, statements in applied.skipped]


def _describe(facts: ShadowFacts, shadow: Any) -> None:
    facts.database = shadow.name
    facts.server = shadow.server.label()
    facts.why = shadow.server.why
    facts.disposable = shadow.server.disposable
    facts.platform = shadow.platform.description
    facts.extensions = list(shadow.extensions)
    facts.roles_created = list(shadow.roles_created)


def _read_shadow(settings: Settings, shadow: Any, every: Reach, owners: bool) -> Any:
    from migrate.checks.schema_model import read_model
    from migrate.database.connection import connect, connection_params

    session = connect(connection_params(shadow.target), shadow.target.secrets(), connect_timeout=10)
    try:
        return read_model(session.connection, settings.schema, every.attachments, owners=owners,
                          extensions=_extensions(every))
    finally:
        session.close()


class _Causes:
    """Why the shadow (not a hand edit) explains a finding: an extension its server lacks, a version it could
    not run (cluster-wide statements on a shared server)."""

    def __init__(self, missing_extensions: set[str], applied: ShadowApplied, reaches: dict[str, Reach],
                 settings: Settings) -> None:
        self.missing_extensions = missing_extensions
        self.skipped: dict[str, str] = {}  # qualified object name -> the version that creates it
        for item, _ in applied.skipped:
            for migration_file in item.files_to_run:
                reach = reaches.get(display_path(migration_file.path, settings.root))
                if reach is None:
                    continue
                label = f"{item.track.name} version {item.version}"
                for schema, name in reach.relations | reach.routines:
                    self.skipped.setdefault(f"{schema}.{name}", label)

    def of(self, finding: Any) -> str | None:
        if finding.kind == "extension" and finding.name in self.missing_extensions:
            return "the shadow's server lacks this extension (missing-extension note)"
        for name, label in self.skipped.items():
            if finding.name == name or finding.name.startswith(name + ".") or finding.name.startswith(name + "("):
                return f"{label} was not run on the shadow (cluster-level note)"
        return None


# ---- several environments: drift --env all, status --env all --drift --------------------------------------

NONE, DRIFT, DEPLOY, NOT_CHECKED = "none", "drift", "deploy-in-progress", "not-checked"


@dataclass
class DriftOutcome:
    """One environment's drift, or why it was not measured; `cell` is what a table shows."""

    name: str
    status: str  # NONE, DRIFT, DEPLOY or NOT_CHECKED
    cell: str
    exit_code: int
    message: str | None = None
    result: DriftResult | None = None
    error: Any = None  # the MigrateError that stopped it


def check_environment(name: str, root: Any, environ: Any = None, owners: bool = True,
                      settings: Settings | None = None) -> DriftOutcome:
    """drift for one environment of several: every expected failure becomes its outcome, never an exception."""
    from migrate.errors import EXIT_DRIFT, EXIT_OK, ConfigError, MigrateError, Refused, UnreachableError
    from migrate.settings import load_settings, require_target

    try:
        if settings is None:
            settings = load_settings(name, root, environ)
            require_target(settings)
            log.info("environment %s: %s (from %s)", name, settings.target.label(), settings.origin.where)
        result = run_drift(settings, owners)
    except DeployInProgress as error:
        return DriftOutcome(name, DEPLOY, "deploy in progress", error.exit_code, error.message,
                            getattr(error, "result", None), error)
    except MigrateError as error:
        from migrate.checks.shadow_apply import ShadowFailed

        why = ("unreachable" if isinstance(error, UnreachableError)
               else "no shadow server" if isinstance(error, Refused)
               else "a migration fails on the shadow" if isinstance(error, ShadowFailed)
               else "misconfigured" if isinstance(error, ConfigError) else f"exit {error.exit_code}")
        return DriftOutcome(name, NOT_CHECKED, f"not checked: {why}", error.exit_code, error.message, None, error)
    drifted = len(result.drifted)
    if drifted:
        return DriftOutcome(name, DRIFT, f"{drifted} object{'s' if drifted != 1 else ''}", EXIT_DRIFT, None, result)
    return DriftOutcome(name, NONE, "none", EXIT_OK, None, result)


def combined_exit(outcomes: list[DriftOutcome]) -> int:
    """drift --env all's exit code: 7 when any environment drifted (the finding a nightly job exists for);
    else the first environment's failure in list order (2, 3, 4, 6: something to fix before drift can be
    measured); else 8 when a deploy was in progress somewhere (measure again later); else 0."""
    from migrate.errors import EXIT_DEPLOY_IN_PROGRESS, EXIT_DRIFT

    if any(outcome.status == DRIFT for outcome in outcomes):
        return EXIT_DRIFT
    for outcome in outcomes:
        if outcome.status == NOT_CHECKED:
            return outcome.exit_code
    if any(outcome.status == DEPLOY for outcome in outcomes):
        return EXIT_DEPLOY_IN_PROGRESS
    return 0
