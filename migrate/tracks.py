"""The ordered tracks: the one place that says "lanconnect before client_specific"."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple


class Track(NamedTuple):
    """A folder of migration files and the history table that records them."""

    name: str
    directory: Path
    history_table: str


TRACK_LAYOUT: tuple[tuple[str, str, str], ...] = (
    ("lanconnect", "lanconnect", "lanconnect_migration_versions"),
    ("client_specific", "client_specific", "client_migration_versions"),
)


def build_tracks(migrations_dir: Path) -> list[Track]:
    """The tracks in the order they are applied, rooted at `migrations_dir`."""
    return [
        Track(name=name, directory=migrations_dir / folder, history_table=table)
        for name, folder, table in TRACK_LAYOUT
    ]


def track_names() -> list[str]:
    return [name for name, _, _ in TRACK_LAYOUT]
