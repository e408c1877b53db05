"""Before anything runs: every pending file parsed, linted, and its executor found.

A syntax error anywhere stops the run before it writes anything; lint errors are warnings,
or fatal with MIGRATE_LINT=strict; a file that needs psql is refused when psql is missing.
status and dry-run use the same classification to say how each pending version would run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from migrate.errors import MigrateError, ValidationError
from migrate.files.sqlfiles import MigrationFile
from migrate.plan import Plan
from migrate.settings import Settings

if TYPE_CHECKING:  # imported where they are used: a run with nothing pending never loads them
    from migrate.files.statements import Script

    Scripts = dict[tuple[str, str], list[Script]]

log = logging.getLogger("migrate")


def parse_file(migration_file: MigrationFile, settings: Settings) -> Script:
    """statements.parse_file, imported on first use: pglast costs start-up time a no-op run does not need."""
    from migrate.files.statements import parse_file as parse

    return parse(migration_file, settings.root, settings.run.executor)


def parse_pending(plan: Plan, settings: Settings, lint: bool = False) -> Scripts:
    """Parse every file that would run; a syntax error anywhere stops before anything runs.

    lint: also lint each file on its own parse, then report (see PendingLint). A file's pglast
    tree is dropped once it is linted: only its statements run, and a run of 10,000 pending
    files held every tree at once (peak 77 MB instead of ~50; bench/RESULTS.md).
    """
    todo = plan.to_apply()
    if not todo:
        return {}
    from migrate.files.statements import without_tree

    linting = PendingLint(settings) if lint and settings.lint.mode != "off" else None
    scripts: Scripts = {}
    for item in todo:
        assert item.migration is not None
        parts = []
        for migration_file in item.files_to_run:  # an added version: only its added files run
            script = parse_file(migration_file, settings)
            if linting is not None:
                linting.check(migration_file, script)
            parts.append(without_tree(script))
        scripts[(item.track.name, item.version)] = parts
    if linting is not None:
        linting.report()
    return scripts


def pending_modes(plan: Plan, settings: Settings) -> dict[tuple[str, str], str]:
    """How each pending version would run; a file that does not parse says so instead of failing status."""
    modes: dict[tuple[str, str], str] = {}
    for item in plan.to_apply():
        assert item.migration is not None
        try:
            parts = [parse_file(f, settings) for f in item.files_to_run]
        except MigrateError:
            modes[(item.track.name, item.version)] = "refused (see dry-run)"
            continue
        modes.update(modes_of({(item.track.name, item.version): parts}))
    return modes


def modes_of(scripts: Scripts) -> dict[tuple[str, str], str]:
    """How each parsed version runs, in the words status and dry-run print."""
    modes = {}
    for key, parts in scripts.items():
        special = [s for s in parts if s.needs_psql] or [s for s in parts if not s.transactional]
        modes[key] = special[0].mode if special else "transaction"
    return modes


def require_psql(settings: Settings, scripts: Scripts) -> str | None:
    """The psql binary when a pending file needs it (None when none does); refuses when it is missing."""
    from migrate.apply.psql import require_psql as find

    return find(settings.run.psql_path, [s for parts in scripts.values() for s in parts], settings.root)


class PendingLint:
    """Lint errors of the files about to run, file by file: warnings, or fatal with MIGRATE_LINT=strict."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.strict = settings.lint.mode == "strict"
        self.errors: list[Any] = []
        self.broken = False

    def check(self, migration_file: MigrationFile, script: Script) -> None:
        """Lint one file on the parse migrate made (pglast's tree is the costly part)."""
        if self.broken:
            return
        from migrate.checks.lint import ERROR, lint_file

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
            raise ValidationError(
                f"MIGRATE_LINT=strict: {len(self.errors)} lint error(s) in pending migration files, nothing was "
                "applied; fix them (see `inv lint`) or silence an intended one with -- migrate:lint-ignore RULE"
            )
