"""How paths are shown to people: relative to the project root when they are inside it."""

from __future__ import annotations

from pathlib import Path


def display_path(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)
