"""Every human-facing table and line on stdout (the --json documents are in documents.py).

Tables and results go to stdout; progress and warnings are logs on stderr, so
`--json` output stays one clean document a machine can read.
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from migrate.paths import display_path
from migrate.plan import STATE_ORDER, MigrationInfo, Plan


def _out(stream: TextIO | None) -> TextIO:
    return stream or sys.stdout


def _when(value: datetime | None) -> str:
    """`%Y-%m-%d %H:%M:%S`, as strftime writes it for years 1000-9999, at a third of its cost (a status prints
    one per applied version)."""
    if not value:
        return ""
    return str(value)[:19] if 1000 <= value.year else value.strftime("%Y-%m-%d %H:%M:%S")


def _files(item: MigrationInfo) -> str:
    if item.migration is not None:
        return item.migration.filenames
    if item.row is not None:
        return item.row.filename or item.row.description or ""
    return ""


def _state_text(item: MigrationInfo) -> str:
    state = item.state
    if item.out_of_order:
        state += " (out-of-order)"
    if item.state == "added":
        state += ": " + ", ".join(f.name for f in item.added_files) + (" never ran" if item.to_run is None
                                                                         else " to run now")
    if item.interrupted:
        state += f" (interrupted mid-file: {_when(item.interrupted_at)})"
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

    # one format call per row (str.format pads like ljust): a status of 1000 rows printed in ~half the time
    template = "  ".join(f"{{:<{width}}}" for width in widths)

    def line(cells: list[str]) -> str:
        if len(cells) != len(widths):
            raise ValueError(f"a row of {len(cells)} cells in a table of {len(widths)} columns")
        return template.format(*cells).rstrip()

    return "\n".join([line(headers), line(["-" * width for width in widths])] + [line(row) for row in rows])


def print_status(plan: Plan, environment: str, database: str, stream: TextIO | None = None,
                 modes: dict[tuple[str, str], str] | None = None) -> None:
    out = _out(stream)
    print(f"Environment {environment}: {database}", file=out)
    for track_name, items in _by_track(plan).items():
        print(f"\n{track_name}", file=out)
        if not items:
            print("  (no migration files, no history rows)", file=out)
            continue
        rows = [[i.version, _files(i), _state_text(i), _when(i.row.applied_at if i.row else None), _duration(i)]
                for i in items]
        headers = ["version", "file(s)", "state", "applied_at", "duration"]
        if modes:  # how each pending file would run (transaction, no transaction, psql)
            for row, item in zip(rows, items, strict=True):
                row.append(modes.get((track_name, item.version), ""))
            headers.append("mode")
        print(format_table(rows, headers), file=out)
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
            assert item.migration is not None
            note = "retry of failed" if item.state == "failed" else ("out-of-order" if item.out_of_order else "")
            note = "added to an applied version (--run-added)" if item.state == "added" else note
            note = "interrupted mid-file: runs again from its start" if item.interrupted else note
            for migration_file in item.files_to_run:
                rows.append([item.version, display_path(migration_file.path, root),
                             modes[(track_name, item.version)], note])
        print(format_table(rows, ["version", "file", "mode", "note"]), file=out)


def print_line(line: str, stream: TextIO | None = None) -> None:
    """One plain result line on stdout: wait, db-stop, and how dev-start/start/stop run the stack."""
    print(line, file=_out(stream), flush=True)


def print_applied(index: int, total: int, track: str, filenames: str, execution_ms: int,
                  stream: TextIO | None = None) -> None:
    print(f"[{index}/{total}] {track} {filenames}  {execution_ms} ms", file=_out(stream), flush=True)


def print_migrate_summary(applied: int, plan_total: int, stream: TextIO | None = None) -> None:
    """The last line of a run."""
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


def print_lint(findings: list[Any], files: list[str], stream: TextIO | None = None) -> None:
    """`file:line:column rule-id severity: message (fix)` per finding, then one summary line."""
    out = _out(stream)
    for finding in findings:
        print(finding.format(), file=out)
    errors = sum(1 for f in findings if f.severity == "error")
    warnings = len(findings) - errors
    if findings:
        print(f"Lint: {errors} error(s), {warnings} warning(s) in {len(files)} file(s).", file=out)
    else:
        print(f"Lint: {len(files)} file(s) clean.", file=out)


def lint_file_line(path: str, findings: list[Any]) -> str:
    """The one line a run (migrate, dry-run) prints for a file with lint errors, as a log line on stderr:

    `lint: migrations/lanconnect/004_x.sql: 2 errors, 1 warning (idempotent-create-table; inv lint
    migrations/lanconnect/004_x.sql for details)`: the counts, the error rules, where the details are.
    """
    import shlex

    errors = [f for f in findings if f.severity == "error"]
    warnings = len(findings) - len(errors)
    counts = f"{len(errors)} error{'s' * (len(errors) != 1)}"
    counts += f", {warnings} warning{'s' * (warnings != 1)}" if warnings else ""
    rules = ", ".join(dict.fromkeys(f.rule for f in errors))
    return f"lint: {path}: {counts} ({rules}; inv lint {shlex.quote(path)} for details)"


def print_new_migration(path: Path, root: Path, stream: TextIO | None = None) -> None:
    print(display_path(path, root), file=_out(stream))


def _first_changes(changes: list[str], limit: int = 3) -> str:
    shown = "; ".join(changes[:limit])
    return shown + (f" (+{len(changes) - limit} more)" if len(changes) > limit else "")


def print_verify(result: Any, environment: str, stream: TextIO | None = None) -> None:
    """verify: where its shadow was and what from, one line per file, then the findings (errors first)."""
    from tabulate import tabulate

    out = _out(stream)
    print(f"Environment {environment}: verified on shadow database {result.scratch_database} on {result.server} "
          f"({result.server_why}), {'dropped' if result.dropped else 'NOT dropped'} afterwards", file=out)
    built = [f"schemas {', '.join(result.platform_schemas)}" if result.platform_schemas else "no schemas"]
    if result.platform_extensions:
        built.append(f"extensions {', '.join(result.platform_extensions)}")
    if result.roles_created:
        built.append(f"roles created {', '.join(result.roles_created)}")
    print(f"Platform: {result.platform} ({'; '.join(built)})", file=out)
    rows = [[run.track, run.version, run.file, _ms(run.first_run_ms), _ms(run.second_run_ms), _ms(run.final_run_ms),
             run.result] for run in result.runs]
    if rows:
        print(tabulate(rows, headers=["track", "version", "file", "first run", "re-run", "final run", "result"]),
              file=out)
    else:
        print("No migration files to verify.", file=out)
    order = {"error": 0, "warning": 1, "info": 2}
    findings = sorted(result.findings, key=lambda f: order.get(f.severity, 3))
    errors = sum(1 for f in findings if f.severity == "error")
    if findings:
        print(f"\n{len(findings)} finding(s), {errors} error(s):", file=out)
        table = [[f.severity, f.kind, ", ".join(f.files) or "(shadow)",
                  f.message + (": " + _first_changes(f.changes) if f.changes else "")] for f in findings]
        print(tabulate(table, headers=["severity", "finding", "file(s)", "detail"]), file=out)
    if not errors:
        print(f"\nverify: {len(result.runs)} file(s) run, re-run and run again as a set: no errors.", file=out)


def print_drift(result: Any, stream: TextIO | None = None) -> None:
    """drift: what was compared, one line per finding (`<state> <kind> <name>`), the pending versions, the
    notes, what is not compared, and a summary line."""
    out = _out(stream)
    shadow = result.shadow
    expected = len(result.expected)
    print(f"Environment {result.environment}: {result.database}, schema {result.schema} and what the migration files "
          f"attach to the platform, compared with its {expected} applied migration(s) built on shadow database "
          f"{shadow.database} on {shadow.server} ({shadow.why}), {'dropped' if shadow.dropped else 'NOT dropped'} "
          "afterwards", file=out)
    for item in result.findings:
        print(item.line(), file=out)
    for item in result.pending:
        print(f"pending {item.track.name} {item.version} ({_files(item)}): not applied on the target yet, not drift",
              file=out)
    for note in result.notes:
        print(f"note {note.kind}: {note.message}", file=out)
    if result.not_compared:
        print(f"not compared: {', '.join(result.not_compared)}", file=out)
    print(drift_summary(result), file=out)


def drift_summary(result: Any) -> str:
    """The last line of drift's output: the verdict, then what it does not count."""
    drifted = len(result.drifted)
    if drifted:
        line = f"drift: {drifted} object(s) differ from what the applied migrations produce on {result.database}"
    else:
        line = f"no drift: {result.database} matches its {len(result.expected)} applied migration(s)"
    extra = []
    if result.pending:
        extra.append(f"{len(result.pending)} pending migration(s), not drift")
    if len(result.findings) > drifted:
        extra.append(f"{len(result.findings) - drifted} finding(s) not counted: the shadow explains them")
    if result.not_compared:
        extra.append(f"{len(result.not_compared)} object(s) not compared: see above")
    if not result.owners:
        extra.append("owners not compared (--ignore-owner)")
    return line + (f" ({'; '.join(extra)})" if extra else "")


def print_drift_environments(outcomes: list[Any], stream: TextIO | None = None) -> None:
    """drift --env all: a section per environment, then one line per environment."""
    out = _out(stream)
    for outcome in outcomes:
        print(f"== {outcome.name} ==", file=out)
        if outcome.result is not None:
            print_drift(outcome.result, out)
        else:
            print(f"{outcome.status}: {outcome.message}", file=out)
        print("", file=out)
    print("drift: " + "; ".join(f"{outcome.name}: {outcome.cell}" for outcome in outcomes), file=out)


def _ms(value: int | None) -> str:
    return "" if value is None else f"{value} ms"


def ask(prompt: str) -> str:
    """Ask on stderr and read one line from stdin, so stdout stays tables or JSON; EOF answers ''."""
    print(prompt, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline()


def print_reset(schema: str, environment: str, database: str, stream: TextIO | None = None) -> None:
    print(f"Environment {environment}: {database}\nSchema {schema} dropped and recreated (empty); "
          "run migrate to apply every migration again.", file=_out(stream))


def _overview_cell(column: Any, key: tuple[str, str]) -> str:
    if column.plan is None:
        return column.status
    return column.state_of(key) or "-"


def print_overview(overview: Any, stream: TextIO | None = None) -> None:
    """status --env all: a row per (track, version), a column per environment, then who is behind."""
    from tabulate import tabulate

    out = _out(stream)
    names = [column.name for column in overview.environments]
    rows = [[track, version, ", ".join(files)] + [_overview_cell(c, (track, version)) for c in overview.environments]
            for track, version, files in overview.rows]
    checked = any(column.drift is not None for column in overview.environments)
    if checked:  # status --drift: a last row, under each environment's column
        rows.append(["drift", "", ""] + [column.drift.cell if column.drift else "" for column in overview.environments])
    if rows:
        print(tabulate(rows, headers=["track", "version", "file(s)", *names]), file=out)
    else:
        print("No migrations in any reachable environment.", file=out)
    print("\nEnvironments:", file=out)
    for column in overview.environments:
        if column.plan is None:
            line = f"  {column.name}: {column.status}: {column.error}"
        else:
            line = f"  {column.name}: {column.database}: {totals_line(column.plan)[len('Total: '):]}"
        if column.drift is not None:
            line += f"; drift: {column.drift.cell}"
            if column.drift.result is None and column.drift.message and column.plan is not None:
                line += f" ({column.drift.message})"
        print(line, file=out)
    reachable = [column for column in overview.environments if column.plan is not None]
    if overview.behind:
        print("", file=out)
        for late, ahead, versions in overview.behind:
            listed = ", ".join(f"{track} {version}" for track, version in versions[:10])
            listed += f" (+{len(versions) - 10} more)" if len(versions) > 10 else ""
            print(f"{late} is behind {ahead} by {len(versions)} migration(s): {listed}", file=out)
    elif len(reachable) > 1:
        print("\nAll reachable environments have the same migrations applied.", file=out)


def _short(checksum: str | None) -> str:
    if not checksum:
        return "(none)"
    algorithm, _, digest = checksum.partition(":")
    return f"{algorithm}:{digest[:12]}" if digest else checksum[:19]


def print_repair(result: Any, stream: TextIO | None = None) -> None:
    """One line per history row repair changes (or would change, with --dry-run)."""
    out = _out(stream)
    for skip in result.skipped:
        print(f"{skip.track} {skip.version} ({skip.files}): left alone: {skip.reason}", file=out)
    if not result.actions and result.skipped:
        print("No history row changed.", file=out)
        return
    if not result.actions:
        print("Nothing to repair: every applied version matches its file(s) and no version is failed.", file=out)
        return
    for action in result.actions:
        where = f"{action.track} {action.version} ({action.files or 'no file'})"
        if action.kind == "checksum":
            text = f"re-align checksum {_short(action.old)} -> {_short(action.new)}"
        elif action.kind == "adopt":
            text = f"adopt checksum {_short(action.new)} (none was recorded)"
        else:
            text = "delete the failed row, so the version is pending again"
            text += f" (error was: {action.old})" if action.old else ""
        print(f"{where}: {'would ' if result.dry_run else ''}{text}", file=out)
    count = len(result.actions)
    if result.dry_run:
        print(f"Dry run: repair would change {count} history row(s); nothing was written.", file=out)
    else:
        print(f"Repaired {count} history row(s).", file=out)


def print_baseline(result: Any, stream: TextIO | None = None) -> None:
    """Each version baseline marked as applied (not run), and those already recorded."""
    out = _out(stream)
    for entry in result.entries:
        note = "marked applied (not run)" if entry.recorded else "already applied, left alone"
        print(f"{entry.track} {entry.version} ({entry.files}): {note}", file=out)
    recorded = sum(1 for e in result.entries if e.recorded)
    print(f"Baseline {result.track} up to {result.up_to}: {recorded} version(s) marked applied without running.",
          file=out)


def _attempt_where(attempt: Any) -> str:
    parts = []
    if attempt.statement_number is not None:
        parts.append(f"statement {attempt.statement_number}")
    if attempt.line is not None:
        parts.append(f"line {attempt.line}")
    return ", ".join(parts)


def print_attempts(attempts: list[Any] | None, environment: str, database: str, schema: str,
                   stream: TextIO | None = None) -> None:
    """The attempt log, newest first: `inv history`."""
    from tabulate import tabulate

    out = _out(stream)
    print(f"Environment {environment}: {database}", file=out)
    if not attempts:
        where = f"{schema}.migration_attempts"
        print(f"No migration attempts recorded yet ({where} is empty or not created).", file=out)
        return
    rows = []
    for attempt in attempts:
        message = (attempt.message or "").strip().splitlines()[0] if attempt.message else ""
        if len(message) > 80:
            message = message[:77] + "..."
        rows.append([
            attempt.started_at.strftime("%Y-%m-%d %H:%M:%S") if attempt.started_at else "",
            attempt.track, attempt.version, attempt.files or "", attempt.outcome,
            f"{attempt.duration_ms} ms" if attempt.duration_ms is not None else "",
            attempt.sqlstate or "", _attempt_where(attempt), message, attempt.host or "",
        ])
    print(tabulate(rows, headers=["started_at", "track", "version", "file(s)", "outcome", "duration", "sqlstate",
                                  "where", "message", "host"]), file=out)


def _reflects(versions: dict[str, str | None]) -> str:
    return ", ".join(f"{track} {version or '(none)'}" for track, version in versions.items())


def print_schema_written(shown: str, versions: dict[str, str | None], stream: TextIO | None = None) -> None:
    """`schema dump`: where the schema file went and which versions it reflects."""
    print(f"wrote {shown}: the schema the migrations produce ({_reflects(versions)})", file=_out(stream), flush=True)


def print_schema_matches(shown: str, versions: dict[str, str | None], stream: TextIO | None = None) -> None:
    print(f"{shown} matches what the migrations produce ({_reflects(versions)})", file=_out(stream), flush=True)


def print_diff(lines: list[str], stream: TextIO | None = None) -> None:
    """A unified diff as difflib wrote it (each line keeps its own newline; a last line without one gets one)."""
    out = _out(stream)
    for line in lines:
        out.write(line if line.endswith("\n") else line + "\n")
    out.flush()
