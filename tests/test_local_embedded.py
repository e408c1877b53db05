"""A new user's path: `inv migrate` on the embedded local database, `inv status`, `inv db-stop`."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from conftest import REPO, Project


def test_inv_migrate_status_and_db_stop_on_the_embedded_database() -> None:
    base = Path(tempfile.mkdtemp(prefix="migrate-local-"))
    os.chmod(base, 0o755)
    root = base / "project"
    shutil.copytree(REPO / "envs", root / "envs", ignore=shutil.ignore_patterns("*.local.env"))
    shutil.copytree(REPO / "migrations", root / "migrations")
    project = Project(root, "")
    try:
        first = project.inv("migrate")
        assert first.code == 0, first.err
        assert "starting the embedded PostgreSQL" in first.err
        assert (root / ".pgdata" / "PG_VERSION").exists()
        assert "Applied 4 migration(s)." in first.out
        status = project.inv("status")
        assert status.code == 0, status.err
        assert "Total: 4 applied" in status.out
        assert "starting the embedded PostgreSQL" not in status.err  # reused, not restarted
        stop = project.inv("db-stop")
        assert stop.code == 0 and "Embedded PostgreSQL stopped." in stop.out
        assert not (root / ".pgdata" / "postmaster.pid").exists()
        again = project.inv("status")  # started on demand again, data kept
        assert again.code == 0 and "Total: 4 applied" in again.out
    finally:
        project.inv("db-stop")
        shutil.rmtree(base, ignore_errors=True)
