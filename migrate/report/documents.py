"""Every --json document: one per command, and the error document for a command that failed first.

A command given --json prints exactly one document on stdout, success or failure; logs stay
on stderr. The keys are stable: scripts read them.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from migrate.paths import display_path
from migrate.plan import STATE_ORDER, MigrationInfo, Plan


def item_json(item: MigrationInfo, root: Path) -> dict[str, Any]:
    row = item.row
    return {
        "track": item.track.name,
        "version": item.version,
        "state": item.state,
        "out_of_order": item.out_of_order,
        "files": [display_path(f.path, root) for f in item.migration.files] if item.migration else [],
        "added_files": [display_path(f.path, root) for f in item.added_files],
        "checksum": item.migration.checksum if item.migration else None,
        "recorded_checksum": row.checksum if row else None,
        "applied_at": row.applied_at.isoformat() if row and row.applied_at else None,
        "execution_ms": row.execution_ms if row else None,
        "error": row.error_message if row and item.state == "failed" else None,
        "interrupted": item.interrupted,
        "interrupted_at": item.interrupted_at.isoformat() if item.interrupted_at else None,
    }


def print_json(document: dict[str, Any], stream: TextIO | None = None) -> None:
    print(json.dumps(document, indent=2, default=str), file=stream or sys.stdout)


def plan_json(plan: Plan, environment: str, database: str, root: Path) -> dict[str, Any]:
    counts = Counter(item.state for item in plan.items)
    return {
        "environment": environment,
        "database": database,
        "migrations": [item_json(item, root) for item in plan.items],
        "totals": {state: counts[state] for state in STATE_ORDER},
        "warnings": list(plan.warnings),
    }


def lint_json(findings: list[Any], files: list[str]) -> dict[str, Any]:
    """`inv lint --json`, and the `lint` key of migrate's and dry-run's documents: every finding."""
    errors = sum(1 for f in findings if f.severity == "error")
    return {
        "files": list(files),
        "findings": [finding.as_json() for finding in findings],
        "errors": errors,
        "warnings": len(findings) - errors,
    }


def verify_json(result: Any, environment: str) -> dict[str, Any]:
    """verify's document: the shadow it used, every file's runs, every finding (with its severity)."""
    findings = [{"kind": f.kind, "severity": f.severity, "track": f.track, "version": f.version, "files": f.files,
                 "message": f.message, "changes": f.changes} for f in result.findings]
    return {
        "environment": environment,
        "server": result.server,
        "scratch_database": result.scratch_database,
        "scratch_dropped": result.dropped,
        "shadow": {
            "database": result.scratch_database,
            "server": result.server,
            "why": result.server_why,
            "disposable": result.disposable,
            "platform": result.platform,
            "schemas": result.platform_schemas,
            "extensions": result.platform_extensions,
            "left_out": result.left_out,
            "roles_created": result.roles_created,
            "roles_dropped": result.roles_dropped,
            "dropped": result.dropped,
        },
        "files": [{"track": r.track, "version": r.version, "file": r.file, "first_run_ms": r.first_run_ms,
                   "second_run_ms": r.second_run_ms, "final_run_ms": r.final_run_ms, "result": r.result}
                  for r in result.runs],
        "findings": findings,
        "errors": sum(1 for f in result.findings if f.severity == "error"),
        "warnings": sum(1 for f in result.findings if f.severity == "warning"),
        "notes": sum(1 for f in result.findings if f.severity == "info"),
        "ok": not any(f.severity == "error" for f in result.findings),
    }


def overview_json(overview: Any) -> dict[str, Any]:
    return {
        "environments": [
            dict({"name": c.name, "status": c.status, "database": c.database, "error": c.error,
                  "totals": ({state: sum(1 for i in c.plan.items if i.state == state) for state in STATE_ORDER}
                             if c.plan is not None else None)},
                 **({"drift": drift_cell_json(c.drift, overview.root)} if c.drift is not None else {}))
            for c in overview.environments
        ],
        "migrations": [
            {"track": track, "version": version, "files": files,
             "states": {c.name: c.state_of((track, version)) for c in overview.environments}}
            for track, version, files in overview.rows
        ],
        "behind": [
            {"environment": late, "behind": ahead,
             "versions": [{"track": track, "version": version} for track, version in versions]}
            for late, ahead, versions in overview.behind
        ],
    }


def drift_json(result: Any, root: Path, error: Any = None) -> dict[str, Any]:
    """drift's document: every finding with both definitions, the pending versions, the notes, what is not
    compared, the shadow it used; `error` (deploy in progress) in the same object every command uses."""
    shadow = result.shadow
    return {
        "environment": result.environment,
        "database": result.database,
        "schema": result.schema,
        "drift": bool(result.drifted) and error is None,
        "drifted": len(result.drifted),
        "findings": [
            {"state": item.finding.state, "kind": item.finding.kind, "name": item.finding.name,
             "expected": item.finding.expected, "actual": item.finding.actual, "counted": item.cause is None,
             "cause": item.cause}
            for item in result.findings
        ],
        "pending": [item_json(item, root) for item in result.pending],
        "compared_with": [{"track": item.track.name, "version": item.version,
                           "files": [display_path(f.path, root) for f in item.files_to_run]}
                          for item in result.expected],
        "not_compared": list(result.not_compared),
        "notes": [{"kind": note.kind, "message": note.message, "track": note.track, "version": note.version}
                  for note in result.notes],
        "owners_compared": result.owners,
        "shadow": {"database": shadow.database, "server": shadow.server, "why": shadow.why,
                   "disposable": shadow.disposable, "platform": shadow.platform, "extensions": shadow.extensions,
                   "roles_created": shadow.roles_created, "dropped": shadow.dropped} if shadow.database else None,
        "deploy_in_progress": result.deploy,
        "error": None if error is None else {"exit_code": error.exit_code, "message": error.message},
    }


def drift_cell_json(outcome: Any, root: Path) -> dict[str, Any]:
    """One environment of `drift --env all` and of `status --env all --drift`."""
    document: dict[str, Any] = {"name": outcome.name, "status": outcome.status, "summary": outcome.cell,
                                "exit_code": outcome.exit_code, "message": outcome.message}
    if outcome.result is not None:
        document["drift"] = drift_json(outcome.result, root, outcome.error)
    return document


def error_json(error: Any) -> dict[str, Any]:
    """The document `--json` prints when a command fails before it could print its own."""
    return {"error": {"exit_code": error.exit_code, "message": error.message}}


def lint_refused_json(error: Any, lint: dict[str, Any] | None) -> dict[str, Any]:
    """migrate's and dry-run's document when MIGRATE_LINT=strict refused the run: the error and why."""
    return dict(error_json(error), lint=lint)


def attempts_json(attempts: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": a.id, "track": a.track, "version": a.version, "files": a.files,
            "started_at": a.started_at.isoformat() if a.started_at else None, "duration_ms": a.duration_ms,
            "outcome": a.outcome, "sqlstate": a.sqlstate, "message": a.message,
            "statement_number": a.statement_number, "line": a.line, "host": a.host, "tool_version": a.tool_version,
        }
        for a in attempts
    ]


def migrate_json(environment: str, database: str, root: Path, plan: Plan, applied: list[Any], adopted: int,
                 error: Any = None, failed: MigrationInfo | None = None,
                 lint: dict[str, Any] | None = None) -> dict[str, Any]:
    """migrate's document: what was applied, what failed and what was not attempted; `lint`: the findings
    of the files it was about to apply (lint_json's shape; null with MIGRATE_LINT=off)."""
    todo = plan.to_apply()
    return {
        "environment": environment,
        "database": database,
        "applied": [
            dict(item_json(done.info, root), state="applied", execution_ms=done.execution_ms,
                 mode=("psql, " if done.executor == "psql" else "")
                 + ("transaction" if done.transactional else "no transaction"), attempts=done.attempts)
            for done in applied
        ],
        "pending_before": len(todo),
        "failed": None if failed is None or error is None else dict(
            item_json(failed, root), state="failed", error=error.message),
        "not_attempted": [item_json(item, root) for item in todo[len(applied) + (failed is not None):]],
        "adopted_checksums": adopted,
        "error": None if error is None else {"exit_code": error.exit_code, "message": error.message},
        "warnings": list(plan.warnings),
        "lint": lint,
    }
