"""The Makefile: aliases of Invoke tasks only, and `make dev-start` run for real without Docker.

dev-start runs in a throw-away copy of the project, so it depends on nothing in the work tree:
once pointed at the test database (envs/local.local.env), once on the embedded PostgreSQL it
starts in the copy (stopped again by `make stop`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, Database

TARGETS = {
    "dev-start": ["inv dev-start"],
    "start": ["inv start --env production"],
    "stop": ["inv stop"],
    "status": ["inv status --env local"],
    "migrate": ["inv migrate --env local"],
    "test": ["inv test"],
}
NO_DOCKER = "dev-start: docker compose is not available ("


def make(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("PG", "POSTGRES_", "MIGRATE_", "DATABASE_URL", "MAX_WAIT", "PYTHONPATH", "MAKE"))}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def docker_engine_answers() -> bool:
    from migrate.compose import find_compose

    return find_compose(None).available


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_make_n_shows_one_inv_alias_per_target(target: str) -> None:
    result = make("-n", target)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == TARGETS[target]


def test_make_env_selects_the_environment_of_status_and_migrate() -> None:
    assert make("-n", "status", "ENV=staging").stdout.splitlines() == ["inv status --env staging"]
    assert make("-n", "migrate", "ENV=production").stdout.splitlines() == ["inv migrate --env production"]


def test_every_target_is_phony_and_every_recipe_is_one_inv_line() -> None:
    text = (REPO / "Makefile").read_text()
    phony = next(line for line in text.splitlines() if line.startswith(".PHONY:")).split()[1:]
    assert sorted(phony) == sorted(TARGETS)
    recipes = [line.strip() for line in text.splitlines() if line.startswith("\t")]
    assert len(recipes) == len(TARGETS)
    assert all(recipe.startswith("$(INV) ") for recipe in recipes)


@pytest.fixture
def project_copy() -> Iterator[Path]:
    """A copy of the project in a folder the embedded server's own user can enter."""
    base = Path(tempfile.mkdtemp(prefix="migrate-make-"))
    os.chmod(base, 0o755)
    root = base / "project"
    root.mkdir()
    for name in ("Makefile", "tasks.py"):
        shutil.copy2(REPO / name, root / name)
    for folder in ("migrate", "migrations", "envs"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.local.env"))
    try:
        yield root
    finally:
        from migrate.database.embedded import stop

        if (root / ".pgdata").exists():
            stop(root / ".pgdata")
        shutil.rmtree(base, ignore_errors=True)


def expected_history() -> dict[str, list[tuple[str, str]]]:
    return {track: sorted((p.name.split("_")[0], "applied") for p in (REPO / "migrations" / track).glob("*.sql"))
            for track in ("lanconnect", "client_specific")}


def test_make_dev_start_without_docker_migrates_the_test_database(project_copy: Path, db: Database) -> None:
    if docker_engine_answers():
        pytest.skip("a Docker engine answers here: dev-start would start the compose stack")
    (project_copy / "envs" / "local.local.env").write_text(f"DATABASE_URL={db.url}\n")
    result = make("dev-start", cwd=project_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    first = result.stdout.splitlines()[1]  # after make's echo of the recipe
    assert first.startswith(NO_DOCKER), result.stdout
    assert "; using postgresql://postgres@" in first and "and `inv migrate --env local`" in first
    expected = expected_history()
    assert db.history("lanconnect") == expected["lanconnect"]
    assert db.history("client_specific") == expected["client_specific"]
    assert not (project_copy / ".pgdata").exists()  # the configured database, not an embedded one


def test_make_dev_start_falls_back_to_the_embedded_database_and_make_stop_stops_it(project_copy: Path) -> None:
    result = make("dev-start", cwd=project_copy, env={"MIGRATE_DOCKER": "off"})
    assert result.returncode == 0, result.stdout + result.stderr
    pgdata = project_copy / ".pgdata"
    assert (f"dev-start: docker compose is not available (MIGRATE_DOCKER=off); using embedded PostgreSQL in "
            f"{pgdata} and `inv migrate --env local`") in result.stdout
    status = subprocess.run(["inv", "status", "--json"], cwd=project_copy, capture_output=True, text=True,
                            timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("PG")})
    assert status.returncode == 0, status.stderr
    states = {(m["track"], m["version"]): m["state"] for m in json.loads(status.stdout)["migrations"]}
    expected = expected_history()
    assert states == {(track, version): "applied" for track, rows in expected.items() for version, _ in rows}
    assert (pgdata / "postmaster.pid").exists()
    stopped = make("stop", cwd=project_copy, env={"MIGRATE_DOCKER": "off"})
    assert stopped.returncode == 0, stopped.stderr
    assert "Embedded PostgreSQL stopped." in stopped.stdout
    assert not (pgdata / "postmaster.pid").exists()


def test_make_dev_start_names_a_missing_docker_binary(project_copy: Path, db: Database) -> None:
    """MIGRATE_DOCKER names the docker binary; a missing one is said, and the fallback still runs."""
    if docker_engine_answers():
        pytest.skip("a Docker engine answers here")
    (project_copy / "envs" / "local.local.env").write_text(f"DATABASE_URL={db.url}\n")
    result = make("dev-start", cwd=project_copy, env={"MIGRATE_DOCKER": "/nonexistent/docker"})
    assert result.returncode == 0, result.stderr
    assert "dev-start: docker compose is not available (`/nonexistent/docker` is not installed)" in result.stdout


def test_make_start_without_docker_fails_clearly_and_touches_nothing(project_copy: Path) -> None:
    result = make("start", cwd=project_copy, env={"MIGRATE_DOCKER": "off"})
    assert result.returncode == 2
    assert re.search(r"make: \*\*\* \[Makefile:\d+: start\] Error 2", result.stderr)
    assert ("migrate: error: start needs docker compose, which is not available here (MIGRATE_DOCKER=off); "
            "to migrate the production database without Docker run `inv migrate --env production`") in result.stderr
    assert not (project_copy / ".pgdata").exists()


FAKE_DOCKER = """#!/bin/sh
# A stand-in docker CLI with a working engine: records each call, fails `compose up` on request.
echo "$* MIGRATE_ENV=${MIGRATE_ENV:-}" >> "$FAKE_DOCKER_LOG"
case "$1 $2" in
  "compose version") echo "2.99.0";;
  "info --format") echo "28.2.2";;
  "compose up") exit "${FAKE_COMPOSE_UP_EXIT:-0}";;
esac
"""


def fake_docker(folder: Path) -> tuple[Path, Path]:
    docker = folder / "fake-docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    return docker, folder / "docker.log"


def test_make_dev_start_start_and_stop_use_docker_compose_when_an_engine_answers(project_copy: Path) -> None:
    docker, log = fake_docker(project_copy.parent)
    env = {"MIGRATE_DOCKER": str(docker), "FAKE_DOCKER_LOG": str(log)}
    result = make("dev-start", cwd=project_copy, env=env)
    assert result.returncode == 0, result.stderr
    assert ("dev-start: using docker compose 2.99.0: db, then migration-init, then app (MIGRATE_ENV=local)"
            in result.stdout)
    assert "compose up --detach --build MIGRATE_ENV=local" in log.read_text().splitlines()
    assert not (project_copy / ".pgdata").exists()  # compose's db, not the embedded one
    started = make("start", cwd=project_copy, env=env)
    assert started.returncode == 0, started.stderr
    assert "compose up --detach --build MIGRATE_ENV=production" in log.read_text().splitlines()
    stopped = make("stop", cwd=project_copy, env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert "compose down MIGRATE_ENV=" in log.read_text().splitlines()
    assert "Embedded PostgreSQL was not running." in stopped.stdout


def test_make_dev_start_says_where_to_read_a_failed_migration_init(project_copy: Path) -> None:
    docker, log = fake_docker(project_copy.parent)
    result = make("dev-start", cwd=project_copy,
                  env={"MIGRATE_DOCKER": str(docker), "FAKE_DOCKER_LOG": str(log), "FAKE_COMPOSE_UP_EXIT": "1"})
    assert result.returncode == 2  # make's own code for a failed recipe; the task's code is in make's line
    assert re.search(r"make: \*\*\* \[Makefile:\d+: dev-start\] Error 1", result.stderr)
    assert ("migrate: error: docker compose up failed (exit 1); when migration-init failed the app was not "
            "started: read its error with `docker compose logs migration-init`") in result.stderr
