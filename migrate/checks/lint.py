"""`lint`: check migration files for what the seed asks of authors, before a database sees them.

This module says which files are linted (named files, folders, or every track's files), reads
the ignore markers, and collects every finding into a LintResult; the rules and the statement
visitor live in lint_rules.py. Files are split by statements.parse_file (the same pglast split
`migrate` runs), then each statement's pglast AST is checked.
`-- migrate:lint-ignore RULE[, RULE]` in the comment lines right above a statement silences
those rules for it; before the first statement it silences them for the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from migrate.checks.lint_rules import ERROR, RULES, WARNING, FileLinter, Finding
from migrate.errors import ConfigError, MigrateError, ValidationError
from migrate.files.sqlfiles import (
    NAME_RE,
    FilesRefused,
    MigrationFile,
    checksum_of,
    decode_text,
    is_ignored,
    refused_entries,
)
from migrate.files.statements import (
    FileRefused,
    Script,
    Statement,
    allowed_schemas,
    blank_restrict_lines,
    locate,
    parse_file,
)
from migrate.paths import display_path
from migrate.settings import Settings
from migrate.tracks import build_tracks, track_names

IGNORE_MARKER = re.compile(r"^\s*--\s*migrate:lint-ignore\b(.*)$", re.IGNORECASE)
COMMENT_LINE = re.compile(r"^\s*--")


@dataclass
class LintResult:
    """Every finding of every linted file, in file order."""

    files: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]


def _ignore_markers(text: str) -> list[tuple[int, int, list[str]]]:
    """(line, column, rule ids) of every `-- migrate:lint-ignore` comment line."""
    markers = []
    for number, line in enumerate(text.split("\n"), start=1):
        match = IGNORE_MARKER.match(line)
        if match:
            rules = [r for r in re.split(r"[\s,]+", match.group(1).strip()) if r]
            markers.append((number, line.index("--") + 1, rules))
    return markers


def _comment_block_above(lines: list[str], line: int) -> set[int]:
    """The 1-based numbers of the `--` comment lines directly above `line`."""
    block = set()
    number = line - 1
    while number >= 1 and COMMENT_LINE.match(lines[number - 1]):
        block.add(number)
        number -= 1
    return block


def lint_file(settings: Settings, migration_file: MigrationFile, script: Script | None = None) -> list[Finding]:
    """Every finding of one file, ignore markers applied, in line order.

    `script`: the file as migrate already parsed it (its pglast statements are reused, not parsed again).
    """
    path = display_path(migration_file.path, settings.root)
    misnamed = []
    if migration_file.track in track_names() and not NAME_RE.match(migration_file.name):
        misnamed = [Finding(path, 1, 1, "file-name", f"{migration_file.name} is not a migration file name, so migrate "
                            "refuses the track", RULES["file-name"].fix)]
    if script is None:
        try:
            script = parse_file(migration_file, settings.root, lenient=True)
        except ValidationError as error:
            return misnamed + [_refused(path, error)]
    refused = misnamed + [_refused(path, error) for error in script.plpgsql_errors]
    if script.raws is None:
        return refused + [Finding(path, 1, 1, "lint-skipped", f"the file needs psql ({script.needs_psql}); "
                                  "it was not linted", RULES["lint-skipped"].fix)]
    text = blank_restrict_lines(migration_file.text)
    raws = script.raws
    linter = FileLinter(settings.lint, settings.schema, path, text, allowed_schemas(text))
    statements: list[Statement] = list(script.statements)
    for index, (statement, raw) in enumerate(zip(statements, raws, strict=True)):
        linter.statement_index = index

        def where(offset: int | None, statement: Statement = statement) -> tuple[int, int]:
            return locate(text, offset) if offset is not None and offset >= 0 else (statement.line, statement.column)

        linter.check(raw.stmt, where)
    findings = list(linter.findings)
    if not linter.sets_search_path:
        findings.append((-1, Finding(path, 1, 1, "safety-search-path",
                                     "the file never sets search_path, so unqualified names depend on the session",
                                     f"start the file with SET search_path = {settings.schema}, public;")))
    return sorted(_apply_ignores(findings, text, statements, path) + refused, key=lambda f: (f.line, f.column))


def _refused(path: str, error: MigrateError, rule: str = "syntax-error") -> Finding:
    """The finding for what parse_file (or reading the file) refuses: `where: problem; remedy` as a Finding.

    FileRefused names its own rule, place, problem and remedy."""
    if isinstance(error, FileRefused):
        return Finding(path, error.line, error.column, error.rule, error.problem, error.remedy)
    where, _, message = error.message.partition(": ")
    parts = where.rsplit(":", 2)
    line, column = (int(parts[1]), int(parts[2])) if len(parts) == 3 and parts[2].isdigit() else (1, 1)
    text, _, remedy = message.partition("; ")
    return Finding(path, line, column, rule, text, remedy.replace(" (nothing was applied)", "") or RULES[rule].fix)


def _apply_ignores(findings: list[tuple[int, Finding]], text: str, statements: list[Statement],
                   path: str) -> list[Finding]:
    lines = text.split("\n")
    first_line = statements[0].line if statements else len(lines) + 1
    file_wide: set[str] = set()
    by_line: dict[int, set[str]] = {}
    unknown: list[Finding] = []
    for line, column, rules in _ignore_markers(text):
        for rule in rules:
            if rule not in RULES:
                unknown.append(Finding(path, line, column, "lint-unknown-rule",
                                       f"migrate:lint-ignore names an unknown rule {rule!r}",
                                       RULES["lint-unknown-rule"].fix))
        (file_wide.update(rules) if line < first_line else by_line.setdefault(line, set()).update(rules))
    kept: list[Finding] = []
    for index, finding in findings:
        if finding.rule in file_wide:
            continue
        if index >= 0:
            silenced = set().union(*(by_line.get(n, set()) for n in _comment_block_above(lines,
                                                                                          statements[index].line)))
            if finding.rule in silenced:
                continue
        kept.append(finding)
    kept.extend(f for f in unknown if "lint-unknown-rule" not in file_wide)
    return sorted(kept, key=lambda f: (f.line, f.column))


# --- which files ------------------------------------------------------------------------------

def read_any_file(path: Path, root: Path) -> MigrationFile:
    """A .sql file given on the command line, in a track folder or not."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{display_path(path, root)}: cannot read the file ({error.strerror})") from None
    text = decode_text(data, display_path(path, root))
    match = NAME_RE.match(path.name)
    version = match.group(1) if match else ""
    return MigrationFile(
        track=path.parent.name, version=version, number=int(version) if version else 0,
        description=match.group(2) if match else path.stem, directory=path.parent, name=path.name,
        text=text, checksum=checksum_of(data),
    )


def _file_order(path: Path) -> tuple[int, str]:
    """Migration files by the numeric value of their number (0002 before 00010), then by name."""
    match = NAME_RE.match(path.name)
    return (int(match.group(1)) if match else -1, path.name)


def _folder_order(path: Path) -> tuple[int, str]:
    """Track folders in the order they apply (lanconnect, then client_specific), then the others by name."""
    names = track_names()
    return (names.index(path.name) if path.name in names else len(names), path.name)


def _sql_files_below(folder: Path, root: Path) -> list[Path]:
    """The .sql files of `folder` (not *.down.sql), then those of its subfolders, walked the same way;
    an entry named like one that is no regular file is refused as migrate refuses it (FilesRefused)."""
    refused = refused_entries(folder, root)
    if refused:
        raise FilesRefused(refused)
    entries = sorted(folder.iterdir())
    files = sorted((p for p in entries if p.is_file() and not is_ignored(p)), key=_file_order)
    folders = sorted((p for p in entries if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")),
                     key=_folder_order)
    return files + [f for sub in folders for f in _sql_files_below(sub, root)]


def find_paths_to_lint(settings: Settings, paths: Iterable[str] = ()) -> list[Path]:
    """The .sql files to lint, each once: the named files and every .sql file below the named folders,
    or (nothing named) the files of every track folder. Nothing to lint is a usage error (exit 2), never
    a silent pass: a CI job pointed at the wrong folder must fail."""
    given = list(paths)
    found: list[Path] = []
    if not given:
        folders = [track.directory for track in build_tracks(settings.migrations_dir)]
        refused = [line for folder in folders if folder.is_dir() for line in refused_entries(folder, settings.root)]
        if refused:
            raise FilesRefused(refused)
        for folder in folders:
            if folder.is_dir():
                found.extend(sorted((p for p in folder.iterdir() if p.is_file() and not is_ignored(p)),
                                    key=_file_order))
        if not found:
            shown = " or ".join(display_path(folder, settings.root) for folder in folders)
            raise ConfigError(f"no migration file in {shown}: write one with `inv new`, or point MIGRATIONS_DIR at "
                              "them")
    for name in given:
        path = Path(name)
        path = path if path.is_absolute() else settings.root / path
        if path.is_dir():
            below = _sql_files_below(path, settings.root)
            if not below:
                raise ConfigError(f"{name.rstrip('/') or name}: no .sql file in this folder or below it; name "
                                  "migration files, a track folder or the migrations folder")
            found.extend(below)
        elif path.is_file():
            found.append(path)
        else:
            raise ConfigError(f"{name}: no such file or folder; name migration files (or folders) to lint")
    unique: dict[Path, Path] = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def lint_paths(settings: Settings, paths: Iterable[str] = ()) -> LintResult:
    """`inv lint [PATH ...]`: every file of find_paths_to_lint, each read and linted on its own, so a file
    that cannot be read (not UTF-8, no permission) is a finding and the others are still linted."""
    result = LintResult()
    for path in find_paths_to_lint(settings, paths):
        shown = display_path(path, settings.root)
        result.files.append(shown)
        try:
            migration_file = read_any_file(path, settings.root)
        except MigrateError as error:
            result.findings.append(_refused(shown, error, "file-unreadable"))
            continue
        result.findings.extend(lint_file(settings, migration_file))
    return result
