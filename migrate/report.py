"""Every human-facing table and line, and the --json documents.

Tables and results go to stdout; progress and warnings are logs on stderr, so
`--json` output stays one clean document a machine can read.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from migrate.paths import display_path
from migrate.plan import MigrationInfo, Plan

STATE_ORDER = ("applied", "pending", "failed", "changed", "missing")


def _out(stream: TextIO | None) -> TextIO:
    return stream or sys.stdout


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _files(item: MigrationInfo) -> str:
    if item.files is not None:
        return item.files.filenames
    if item.row is not None:
        return item.row.filename or item.row.description or ""
    return ""


def _state_text(item: MigrationInfo) -> str:
    state = item.state
    if item.out_of_order:
        state += " (out-of-order)"
    if item.state == "failed" and item.row is not None and item.row.error_message:
        state += ": " + item.row.error_message.strip().splitlines()[0]
    return state


def _duration(item: MigrationInfo) -> str:
    if item.row is None or item.row.execution_ms is None:
        return ""
    return f"{item.row.execution_ms} ms"


def format_table(rows: list[list[str]], headers: list[str]) -> str:
    """The text tabulate(rows, headers, disable_numparse=True) prints ("simple" format).

    Written out because tabulate costs ~30 ms to import and ~90 ms per 1000 rows (number
    parsing and wcwidth on every cell): status of 10,000 files spent most of its time there
    (bench/RESULTS.md). Every cell is text; widths are len(), as for ASCII file names.
    """
    widths = [len(header) + 2 for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths])] + [line(row) for row in rows])


def print_status(plan: Plan, environment: str, database: str, stream: TextIO | None = None) -> None:
    out = _out(stream)
    print(f"Environment {environment}: {database}", file=out)
    for track_name, items in _by_track(plan).items():
        print(f"\n{track_name}", file=out)
        if not items:
            print("  (no migration files, no history rows)", file=out)
            continue
        rows = [[i.version, _files(i), _state_text(i), _when(i.row.applied_at if i.row else None), _duration(i)]
                for i in items]
        print(format_table(rows, headers=["version", "file(s)", "state", "applied_at", "duration"]), file=out)
    print("\n" + totals_line(plan), file=out)


def totals_line(plan: Plan) -> str:
    counts = Counter(item.state for item in plan.items)
    parts = [f"{counts[state]} {state}" for state in STATE_ORDER if counts[state]]
    return "Total: " + (", ".join(parts) if parts else "no migrations")


def print_dry_run(plan: Plan, modes: dict[tuple[str, str], str], environment: str, database: str,
                  root: Path, stream: TextIO | None = None) -> None:
    out = _out(stream)
    todo = plan.to_apply()
    print(f"Environment {environment}: {database}", file=out)
    if not todo:
        print("Nothing to apply: the database is up to date.", file=out)
        return
    print(f"migrate would apply {len(todo)} migration(s), in this order:", file=out)
    for track_name, items in _by_track(plan).items():
        pending = [i for i in items if i.needs_apply]
        if not pending:
            continue
        print(f"\n{track_name}", file=out)
        rows = []
        for item in pending:
            assert item.files is not None
            note = "retry of failed" if item.state == "failed" else ("out-of-order" if item.out_of_order else "")
            for migration_file in item.files.files:
                rows.append([item.version, display_path(migration_file.path, root),
                             modes[(track_name, item.version)], note])
        print(format_table(rows, headers=["version", "file", "mode", "note"]), file=out)


def print_applied(index: int, total: int, track: str, filenames: str, execution_ms: int,
                  stream: TextIO | None = None) -> None:
    print(f"[{index}/{total}] {track} {filenames}  {execution_ms} ms", file=_out(stream), flush=True)


def print_migrate_summary(applied: int, plan_total: int, stream: TextIO | None = None) -> None:
    out = _out(stream)
    if applied == 0:
        print("Nothing to apply: the database is up to date.", file=out)
    else:
        print(f"Applied {applied} migration(s).", file=out)


def _by_track(plan: Plan) -> dict[str, list[MigrationInfo]]:
    grouped: dict[str, list[MigrationInfo]] = {}
    for item in plan.items:
        grouped.setdefault(item.track.name, []).append(item)
    return grouped


def item_json(item: MigrationInfo, root: Path) -> dict[str, Any]:
    row = item.row
    return {
        "track": item.track.name,
        "version": item.version,
        "state": item.state,
        "out_of_order": item.out_of_order,
        "files": [display_path(f.path, root) for f in item.files.files] if item.files else [],
        "checksum": item.files.checksum if item.files else None,
        "recorded_checksum": row.checksum if row else None,
        "applied_at": row.applied_at.isoformat() if row and row.applied_at else None,
        "execution_ms": row.execution_ms if row else None,
        "error": row.error_message if row and item.state == "failed" else None,
    }


def print_json(document: dict[str, Any], stream: TextIO | None = None) -> None:
    print(json.dumps(document, indent=2, default=str), file=_out(stream))


def plan_json(plan: Plan, environment: str, database: str, root: Path) -> dict[str, Any]:
    counts = Counter(item.state for item in plan.items)
    return {
        "environment": environment,
        "database": database,
        "migrations": [item_json(item, root) for item in plan.items],
        "totals": {state: counts[state] for state in STATE_ORDER},
        "warnings": list(plan.warnings),
    }
