"""Pure planning: files on disk + history rows -> one MigrationInfo per version, with a state.

States: `pending` (no applied row; a `failed` row is retried), `applied`, `failed`,
`changed` (applied, but its files differ from the recorded checksum) and `missing`
(a history row whose version matches no file: the file was deleted, or a migration file
inserted the row itself). `validate_plan` refuses to apply while anything is changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from migrate.errors import ValidationError
from migrate.history import HistoryRow
from migrate.paths import display_path
from migrate.sqlfiles import MigrationVersion
from migrate.tracks import Track

PENDING, APPLIED, FAILED, CHANGED, MISSING = "pending", "applied", "failed", "changed", "missing"


class MigrationInfo(NamedTuple):
    """What is known about one version of one track."""

    track: Track
    version: str
    number: int | None
    state: str
    files: MigrationVersion | None = None
    row: HistoryRow | None = None
    out_of_order: bool = False

    @property
    def needs_apply(self) -> bool:
        return self.state in (PENDING, FAILED)

    @property
    def checksum_to_adopt(self) -> str | None:
        if self.state == APPLIED and self.row is not None and self.row.checksum is None and self.files:
            return self.files.checksum
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
                               if i.state in (APPLIED, CHANGED) and i.number is not None), default=None)
        for index, item in enumerate(track_items):
            if item.needs_apply and highest_applied is not None and (item.number or 0) < highest_applied:
                track_items[index] = MigrationInfo(item.track, item.version, item.number, item.state,
                                                   item.files, item.row, out_of_order=True)
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
    if row.checksum is not None and row.checksum != version.checksum:
        return CHANGED
    return APPLIED


def validate_plan(plan: Plan, root: Path) -> None:
    """Refuse to apply anything while an applied version's files were edited."""
    changed = plan.by_state(CHANGED)
    if not changed:
        return
    first = changed[0]
    assert first.files is not None
    names = ", ".join(display_path(f.path, root) for f in first.files.files)
    more = f" (and {len(changed) - 1} more changed version(s))" if len(changed) > 1 else ""
    raise ValidationError(
        f"{names}: {first.track.name} version {first.version} was applied, but its file(s) changed since "
        f"(checksum differs){more}; restore the file(s) as applied, or review the change and run "
        "`inv repair` to accept it; nothing was applied"
    )
