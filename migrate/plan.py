"""Pure planning: files on disk + history rows -> one MigrationInfo per version, with a state.

States: `pending` (no applied row; a `failed` row is retried), `applied`, `failed`,
`changed` (applied, but its files differ from the recorded checksum), `added` (applied, and
every file it was applied with is unchanged, but more files now share its number: they never
ran) and `missing` (a history row whose version matches no file: the file was deleted, or a
migration file inserted the row itself). `validate_plan` refuses to apply while anything is
changed or added; `include_added` (migrate --run-added) makes the added files work to run.

Also pure, and so here: which rows repair changes, which versions baseline marks, and
which checksums a run adopts. Nothing in this module reads a file or a database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Mapping, NamedTuple

from migrate.errors import ConfigError, ValidationError
from migrate.files.sqlfiles import MigrationFile, MigrationVersion
from migrate.history.tables import HistoryRow
from migrate.paths import display_path
from migrate.tracks import Track

PENDING, APPLIED, FAILED, CHANGED, ADDED, MISSING = "pending", "applied", "failed", "changed", "added", "missing"
STATE_ORDER = (APPLIED, PENDING, FAILED, CHANGED, ADDED, MISSING)  # how status lists and counts them


class MigrationInfo(NamedTuple):
    """What is known about one version of one track."""

    track: Track
    version: str
    number: int | None
    state: str
    migration: MigrationVersion | None = None  # its files on disk (None: missing); recorded when applied
    row: HistoryRow | None = None
    out_of_order: bool = False
    # the files the engine runs: None for all of the version's, else only these (the files of an
    # `added` version that never ran, with migrate --run-added)
    to_run: tuple[MigrationFile, ...] | None = None
    # when a file of this version that runs outside one transaction started and never reported back
    # (its latest attempt is `started`, its history row not applied): some of it may have committed
    interrupted_at: datetime | None = None

    @property
    def interrupted(self) -> bool:
        return self.interrupted_at is not None

    @property
    def needs_apply(self) -> bool:
        return self.state in (PENDING, FAILED) or (self.state == ADDED and self.to_run is not None)

    @property
    def files_to_run(self) -> tuple[MigrationFile, ...]:
        if self.to_run is not None:
            return self.to_run
        return self.migration.files if self.migration is not None else ()

    @property
    def added_files(self) -> tuple[MigrationFile, ...]:
        """The files of an `added` version that are not in its history row (they never ran)."""
        if self.state != ADDED or self.migration is None or self.row is None:
            return ()
        recorded = set(recorded_filenames(self.row, self.migration))
        return tuple(f for f in self.migration.files if f.name not in recorded)

    @property
    def checksum_to_adopt(self) -> str | None:
        if self.state == APPLIED and self.row is not None and self.row.checksum is None and self.migration:
            return self.migration.checksum
        return None


class Plan(NamedTuple):
    """Every version of every track, tracks in order, versions by number."""

    items: tuple[MigrationInfo, ...]
    warnings: tuple[str, ...] = ()

    def to_apply(self) -> list[MigrationInfo]:
        return [item for item in self.items if item.needs_apply]

    def by_state(self, state: str) -> list[MigrationInfo]:
        return [item for item in self.items if item.state == state]


def build_plan(
    tracks: list[Track],
    versions: dict[str, list[MigrationVersion]],
    history: dict[str, list[HistoryRow]],
    root: Path,
) -> Plan:
    items: list[MigrationInfo] = []
    warnings: list[str] = []
    for track in tracks:
        rows = history.get(track.name, [])
        by_number: dict[int, HistoryRow] = {}
        by_text: dict[str, HistoryRow] = {}
        for row in rows:
            if row.number is not None:
                by_number.setdefault(row.number, row)
            by_text[row.version] = row
        matched: set[str] = set()
        track_items: list[MigrationInfo] = []
        for version in versions.get(track.name, []):
            row = by_text.get(version.version) or by_number.get(version.number)
            if row is not None:
                matched.add(row.version)
            track_items.append(MigrationInfo(track, version.version, version.number,
                                             _state(version, row), version, row))
        for row in rows:
            if row.version not in matched:
                track_items.append(MigrationInfo(track, row.version, row.number, MISSING, None, row))
                warnings.append(
                    f"{track.name} version {row.version}: history row ({row.status}, "
                    f"{row.description or 'no description'}) matches no file in "
                    f"{display_path(track.directory, root)}"
                )
        highest_applied = max((i.number for i in track_items
                               if i.state in (APPLIED, CHANGED, ADDED) and i.number is not None), default=None)
        for index, item in enumerate(track_items):
            if item.needs_apply and highest_applied is not None and (item.number or 0) < highest_applied:
                track_items[index] = item._replace(out_of_order=True)
                warnings.append(f"{track.name} version {item.version} is pending but a higher version "
                                f"({highest_applied}) is already applied: it will run out of order")
        track_items.sort(key=lambda i: (i.number if i.number is not None else -1, i.version))
        items.extend(track_items)
    return Plan(tuple(items), tuple(warnings))


def _state(version: MigrationVersion, row: HistoryRow | None) -> str:
    if row is None:
        return PENDING
    if row.status == FAILED:
        return FAILED
    if row.status != APPLIED:
        return PENDING
    if _is_added(version, row):
        return ADDED
    if row.checksum is not None and row.checksum != version.checksum:
        return CHANGED
    return APPLIED


def recorded_filenames(row: HistoryRow, migration: MigrationVersion) -> list[str]:
    """The files a history row says its version was applied with (`filename`: names joined by ", ")."""
    if not row.filename:
        return []
    if row.filename in {f.name for f in migration.files}:
        return [row.filename]  # one file, even one whose name holds ", "
    return [name.strip() for name in row.filename.split(", ") if name.strip()]


def _is_added(version: MigrationVersion, row: HistoryRow) -> bool:
    """Applied with some of today's files, all of them unchanged, and more files share the number now.

    The recorded checksum must be the checksum of exactly the recorded files (MigrationVersion's rule);
    a row without a checksum (the earlier script, or a file's own INSERT) has only its file names to
    go by: a checksum adopted over every file would record the new ones as run.
    """
    recorded = set(recorded_filenames(row, version))
    names = {f.name for f in version.files}
    if not recorded or not recorded < names:
        return False
    if row.checksum is None:
        return True
    ran = tuple(f for f in version.files if f.name in recorded)
    return MigrationVersion(version.track, version.version, version.number, ran).checksum == row.checksum


def include_added(plan: Plan) -> Plan:
    """migrate --run-added: the added files of every `added` version become work to run (only those,
    in file-name order); the engine then records the version with all its files and their checksum."""
    return plan._replace(items=tuple(item._replace(to_run=item.added_files) if item.state == ADDED else item
                                     for item in plan.items))


def mark_interrupted(plan: Plan, interrupted: Mapping[tuple[str, str], datetime]) -> Plan:
    """The versions interrupted mid-file, from the attempt log's latest `started` attempts (history/
    tables.read_interrupted): only those not applied (pending, failed, or with added files) are."""
    if not interrupted:
        return plan
    return plan._replace(items=tuple(
        item._replace(interrupted_at=interrupted[(item.track.name, item.version)])
        if (item.track.name, item.version) in interrupted and item.state in (PENDING, FAILED, ADDED) else item
        for item in plan.items))


def validate_plan(plan: Plan, root: Path) -> None:
    """Refuse to apply anything while an applied version's files were edited, or files were added under
    it that never ran (unless migrate --run-added made them work to run)."""
    changed = plan.by_state(CHANGED)
    if not changed:
        _refuse_added(plan, root)
        return
    first = changed[0]
    assert first.migration is not None
    names = ", ".join(display_path(f.path, root) for f in first.migration.files)
    more = f" (and {len(changed) - 1} more changed version(s))" if len(changed) > 1 else ""
    raise ValidationError(
        f"{names}: {first.track.name} version {first.version} was applied, but its file(s) changed since "
        f"(checksum differs){more}; restore the file(s) as applied, or review the change and run "
        "`inv repair` to accept it; nothing was applied"
    )


def _refuse_added(plan: Plan, root: Path) -> None:
    added = [item for item in plan.by_state(ADDED) if item.to_run is None]
    if not added:
        return
    first = added[0]
    names = ", ".join(display_path(f.path, root) for f in first.added_files)
    more = f" (and {len(added) - 1} more version(s) with added files)" if len(added) > 1 else ""
    raise ValidationError(
        f"{names}: added under {first.track.name} version {first.version}, which was applied without it, so it "
        f"has never run{more}; rename it to a new version number, or run it now with `inv migrate --run-added` "
        "(python -m migrate migrate --run-added), which runs only the added file(s) and records the version with "
        "all its files; nothing was applied"
    )


def checksums_to_adopt(plan: Plan) -> dict[str, tuple[Track, dict[str, str]]]:
    """By track name: the applied versions recorded without a checksum, and the checksum each adopts."""
    by_track: dict[str, tuple[Track, dict[str, str]]] = {}
    for item in plan.items:
        checksum = item.checksum_to_adopt
        if checksum and item.row is not None:
            by_track.setdefault(item.track.name, (item.track, {}))[1][item.row.version] = checksum
    return by_track


# ---- repair and baseline: what they would write, decided without writing -------------------------

@dataclass(frozen=True)
class RepairAction:
    """One change repair makes (or would make, with --dry-run) to one history row."""

    track: str
    version: str
    kind: str  # "checksum" (re-aligned), "adopt" (row had none) or "delete-failed"
    files: str
    old: str | None = None
    new: str | None = None


@dataclass(frozen=True)
class RepairSkip:
    """A version repair leaves alone, and why: an `added` version's new files never ran."""

    track: str
    version: str
    files: str  # the added files
    reason: str


@dataclass
class RepairResult:
    actions: list[RepairAction] = field(default_factory=list)
    dry_run: bool = False
    skipped: list[RepairSkip] = field(default_factory=list)


@dataclass(frozen=True)
class BaselineEntry:
    track: str
    version: str
    files: str
    migration: MigrationVersion
    recorded: bool  # False: already recorded as applied with the same checksum, left alone


@dataclass
class BaselineResult:
    track: str
    up_to: str
    entries: list[BaselineEntry] = field(default_factory=list)


def build_repair_actions(plan: Plan) -> list[RepairAction]:
    """Pure: what repair changes, in plan order (tracks in order, versions by number)."""
    actions: list[RepairAction] = []
    for item in plan.items:
        files = item.migration.filenames if item.migration else (item.row.filename or "" if item.row else "")
        if item.row is None:
            continue
        if item.state == FAILED or (item.state == MISSING and item.row.status == FAILED):
            actions.append(RepairAction(item.track.name, item.row.version, "delete-failed", files,
                                        old=(item.row.error_message or "").strip().splitlines()[0]
                                        if item.row.error_message else None))
        elif item.state == CHANGED and item.migration is not None:
            actions.append(RepairAction(item.track.name, item.row.version, "checksum", files,
                                        old=item.row.checksum, new=item.migration.checksum))
        elif item.state == APPLIED and item.row.checksum is None and item.migration is not None:
            actions.append(RepairAction(item.track.name, item.row.version, "adopt", files,
                                        new=item.migration.checksum))
    return actions


def build_repair_skips(plan: Plan) -> list[RepairSkip]:
    """Pure: the versions repair must not touch. Recording an added file would claim it ran."""
    return [RepairSkip(item.track.name, item.version, ", ".join(f.name for f in item.added_files),
                       "added under an applied version, never run: repair never records a file that did not run; "
                       "rename it to a new version number, or run it with `migrate --run-added`")
            for item in plan.by_state(ADDED)]


def parse_baseline_version(version: str) -> int:
    text = str(version).strip()
    if not text.isdigit():
        raise ConfigError(f"--version {version!r}: a baseline version is a number such as 004")
    return int(text)


def select_baseline(plan: Plan, track: Track, version: str) -> BaselineResult:
    """The versions of `track` up to `version` that baseline marks applied (entries with recorded=True).

    Refuses when no file has such a version, or when one of them is recorded otherwise than
    applied with this checksum: baseline only marks unrecorded versions.
    """
    up_to = parse_baseline_version(version)
    items = [i for i in plan.items if i.track.name == track.name and i.number is not None and i.number <= up_to]
    with_files = [i for i in items if i.migration is not None]
    if not with_files:
        raise ConfigError(
            f"{track.name}: no migration file has a version up to {version} in "
            f"{track.directory}; check --version and --track"
        )
    conflicts = [i for i in items if i.row is not None and _recorded_differently(i)]
    if conflicts:
        first = conflicts[0]
        raise ValidationError(
            f"{track.name} version {first.version} is already recorded differently "
            f"({_describe_row(first)}); baseline only marks unrecorded versions: run `inv repair` "
            f"or fix the history first ({len(conflicts)} conflicting version(s)); nothing was recorded"
        )
    result = BaselineResult(track.name, version)
    result.entries = [BaselineEntry(track.name, i.version, i.migration.filenames, i.migration, i.row is None)
                      for i in with_files if i.migration is not None]
    return result


def _recorded_differently(item: MigrationInfo) -> bool:
    """True unless the row says `applied` with this file's checksum (or with none yet)."""
    row = item.row
    assert row is not None
    if item.migration is None:
        return False  # a row without a file below V: nothing to mark, status warns about it
    if row.status != APPLIED:
        return True
    return row.checksum is not None and row.checksum != item.migration.checksum


def _describe_row(item: MigrationInfo) -> str:
    row = item.row
    assert row is not None
    if row.status != APPLIED:
        return f"status {row.status}"
    now = item.migration.checksum if item.migration else "-"
    return f"applied with checksum {row.checksum}, but the file now has {now}"
