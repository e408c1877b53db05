"""`status --env all` (or `--env local,staging`): every environment side by side, read-only.

Each environment is read on its own thread with a short connect timeout, so one unreachable
or misconfigured environment shows up as such in its column instead of failing (or slowing
down) the others. Then the overview says which environments are behind which: B is behind A
when a version applied on A is not applied on B.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from migrate.errors import (
    EXIT_CONFIG,
    EXIT_MIGRATION_FAILED,
    EXIT_UNREACHABLE,
    ConfigError,
    MigrateError,
    UnreachableError,
)
from migrate.plan import ADDED, APPLIED, CHANGED, Plan
from migrate.settings import ENV_NAME_RE

log = logging.getLogger("migrate")

PREFERRED_ORDER = ("local", "dev", "development", "test", "staging", "preprod", "production", "prod")
OK, UNREACHABLE, MISCONFIGURED, ERROR = "ok", "unreachable", "misconfigured", "error"
DEFAULT_TIMEOUT = 5.0


@dataclass
class EnvironmentStatus:
    """One environment's column: its plan, or why there is none."""

    name: str
    status: str = OK
    database: str | None = None
    source: str | None = None  # where its target came from (an env file, the shell), as the target line says
    error: str | None = None
    plan: Plan | None = None
    drift: Any = None  # status --drift: checks.drift.DriftOutcome
    _states: dict[tuple[str, str], str] | None = field(default=None, repr=False)

    def state_of(self, key: tuple[str, str]) -> str | None:
        """applied/pending/failed/changed/missing; None when unknown (no plan, or no such version)."""
        if self.plan is None:
            return None
        if self._states is None:
            self._states = {(item.track.name, item.version): item.state for item in self.plan.items}
        return self._states.get(key)


@dataclass
class Overview:
    environments: list[EnvironmentStatus]
    rows: list[tuple[str, str, list[str]]] = field(default_factory=list)  # (track, version, files)
    behind: list[tuple[str, str, list[tuple[str, str]]]] = field(default_factory=list)
    root: Path | None = None


def environment_names(env: str, root: Path) -> list[str]:
    """`all` -> every envs/*.env except *.local.env (local, staging, production first); or the list."""
    if env == "all":
        envs_dir = root / "envs"
        names = [p.name[:-len(".env")] for p in envs_dir.glob("*.env") if not p.name.endswith(".local.env")]
        if not names:
            raise ConfigError(f"--env all: no environment files in {envs_dir}")
    else:
        names = [name.strip() for name in env.split(",") if name.strip()]
        for name in names:
            if not ENV_NAME_RE.match(name):
                raise ConfigError(f"invalid environment name {name!r} in --env {env!r}: "
                                  "use letters, digits, '-' or '_', separated by commas")
    unique = list(dict.fromkeys(names))
    if env == "all":
        unique.sort(key=lambda n: (PREFERRED_ORDER.index(n) if n in PREFERRED_ORDER else len(PREFERRED_ORDER), n))
    return unique


def read_environment(name: str, root: Path, timeout: float, environ: Mapping[str, str] | None = None
                     ) -> EnvironmentStatus:
    """One environment's plan, read-only; every expected failure becomes its status."""
    from migrate.database.connection import wait_until_ready
    from migrate.settings import load_settings, require_target
    from migrate.snapshot import find_all_versions, read_plan
    from migrate.tracks import build_tracks

    column = EnvironmentStatus(name)
    try:
        settings = load_settings(name, root, environ)
        require_target(settings)
        column.database, column.source = settings.target.label(), settings.origin.where
        tracks = build_tracks(settings.migrations_dir)
        versions = find_all_versions(settings, tracks)
        session = wait_until_ready(settings.target, timeout=min(settings.target.max_wait, timeout))
        try:
            column.plan = read_plan(settings, session, tracks, versions)
        finally:
            session.close()
    except UnreachableError as error:
        column.status, column.error = UNREACHABLE, error.message
    except ConfigError as error:
        column.status, column.error = MISCONFIGURED, error.message
    except MigrateError as error:
        column.status, column.error = ERROR, error.message
    except Exception as error:  # one broken environment must not hide the others
        column.status, column.error = ERROR, f"{type(error).__name__}: {error}"
    return column


def read_overview(names: list[str], root: Path, timeout: float = DEFAULT_TIMEOUT,
                  environ: Mapping[str, str] | None = None) -> Overview:
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        columns = list(pool.map(lambda name: read_environment(name, root, timeout, environ), names))
    overview = build_overview(columns)
    overview.root = root
    return overview


def add_drift(overview: Overview, root: Path, environ: Mapping[str, str] | None = None) -> None:
    """status --drift: each environment's drift, one after the other (each builds a shadow database; two at
    once on one server would race over the roles a disposable shadow creates and drops)."""
    from migrate.checks.drift import NOT_CHECKED, DriftOutcome, check_environment

    for column in overview.environments:
        if column.plan is None:
            code = {UNREACHABLE: EXIT_UNREACHABLE, MISCONFIGURED: EXIT_CONFIG}.get(column.status, EXIT_MIGRATION_FAILED)
            column.drift = DriftOutcome(column.name, NOT_CHECKED, f"not checked: {column.status}", code, column.error)
        else:
            column.drift = check_environment(column.name, root, environ)


def build_overview(columns: list[EnvironmentStatus]) -> Overview:
    """Pure: the union of (track, version) rows in track order, and who is behind whom."""
    from migrate.tracks import track_names

    order = {name: index for index, name in enumerate(track_names())}
    files: dict[tuple[str, str], list[str]] = {}
    numbers: dict[tuple[str, str], int] = {}
    for column in columns:
        for item in column.plan.items if column.plan else ():
            key = (item.track.name, item.version)
            numbers[key] = item.number if item.number is not None else -1
            if item.migration is not None:
                files[key] = [f.name for f in item.migration.files]
            files.setdefault(key, [])
    keys = sorted(files, key=lambda k: (order.get(k[0], len(order)), numbers[k], k[1]))
    overview = Overview(columns, [(track, version, files[(track, version)]) for track, version in keys])
    reachable = [c for c in columns if c.plan is not None]
    for late in reachable:
        for ahead in reachable:
            if late is ahead:
                continue
            missing = [key for key in keys if ahead.state_of(key) in (APPLIED, CHANGED, ADDED)
                       and late.state_of(key) not in (APPLIED, CHANGED, ADDED)]
            if missing:
                overview.behind.append((late.name, ahead.name, missing))
    return overview
