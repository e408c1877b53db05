"""The docker compose stack: can it run here, and bring it up or down.

`make dev-start` must use docker compose when the machine has a working Docker engine and
otherwise fall back to the embedded PostgreSQL plus `inv migrate`, saying which and why.
That decision lives here, in one place, so it can be tested on machines without Docker.
Compose's own output goes straight to the terminal (it is compose's, not ours to reformat).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from migrate.errors import EXIT_CONFIG, EXIT_MIGRATION_FAILED, MigrateError

OFF_WORDS = {"0", "off", "false", "no", "none"}
PROBE_TIMEOUT = 15.0


class StackError(MigrateError):
    """docker compose is missing (exit 2) or `compose up` failed (exit 1)."""


@dataclass(frozen=True)
class Compose:
    """Whether `docker compose` can run a stack here; `reason` says why (not)."""

    available: bool
    reason: str
    command: tuple[str, ...] = ()


def _probe(command: list[str]) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return "no output"


def find_compose(docker: str | None = None) -> Compose:
    """Is there a docker CLI with the compose plugin and an engine that answers?

    `docker` (MIGRATE_DOCKER, read by settings) names the docker binary (default `docker`);
    `off` skips Docker on purpose.
    """
    docker = (docker or "docker").strip()
    if docker.lower() in OFF_WORDS:
        return Compose(False, f"MIGRATE_DOCKER={docker}")
    path = shutil.which(docker)
    if path is None:
        return Compose(False, f"`{docker}` is not installed")
    version = _probe([path, "compose", "version", "--short"])
    if version is None or version.returncode != 0:
        return Compose(False, "the docker compose plugin is not installed: `docker compose version` failed")
    info = _probe([path, "info", "--format", "{{.ServerVersion}}"])
    if info is None or info.returncode != 0:
        detail = _first_line((info.stderr or info.stdout) if info else "timed out")
        return Compose(False, f"no Docker engine answers ({detail})")
    return Compose(True, f"docker compose {version.stdout.strip()}", (path, "compose"))


def require(compose: Compose, what: str, instead: str) -> None:
    """Raise a clear StackError (exit 2) when compose is needed but not usable."""
    if not compose.available:
        raise StackError(f"{what} needs docker compose, which is not available here ({compose.reason}); {instead}",
                         EXIT_CONFIG)


def up(compose: Compose, root: Path, env_name: str) -> None:
    """`docker compose up --detach --build` with MIGRATE_ENV; compose waits for migration-init."""
    environ = dict(os.environ, MIGRATE_ENV=env_name)
    code = subprocess.run([*compose.command, "up", "--detach", "--build"], cwd=root, env=environ).returncode
    if code != 0:
        raise StackError(
            f"docker compose up failed (exit {code}); when migration-init failed the app was not started: "
            "read its error with `docker compose logs migration-init`",
            EXIT_MIGRATION_FAILED,
        )


def down(compose: Compose, root: Path) -> None:
    """`docker compose down`: stops the stack, keeps the database volume."""
    code = subprocess.run([*compose.command, "down"], cwd=root).returncode
    if code != 0:
        raise StackError(f"docker compose down failed (exit {code})", EXIT_MIGRATION_FAILED)
