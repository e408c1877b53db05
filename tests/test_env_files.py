"""Issue 13, case 7: files that are not files.

Contract (see test_env_resolution.py for the whole of it): a directory, FIFO, device, symlink loop or
symlink leaving the project named like a migration is refused (exit 4) before anything runs and before
the run lock is taken, with one line each and no traceback; the history tables are not even created.
File size is bounded: a file of hundreds of MB gets a clear one-line refusal, exit 4.

Every run here is bounded in time and address space (run_bounded), so today's hang on a FIFO or
unbounded read of /dev/zero fails the test instead of the machine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Database, Project
from env_support import Outcome, history_tables_exist, no_traceback, run_bounded, run_lock_held

MEMORY_MB = 1536
BAD = "002_x.sql"


def _directory(project: Project, path: Path, tmp: Path) -> None:
    path.mkdir()
    (path / "inside.sql").write_text("CREATE TABLE public.inside (id int);\n")


def _fifo(project: Project, path: Path, tmp: Path) -> None:
    os.mkfifo(path)


def _dev_zero(project: Project, path: Path, tmp: Path) -> None:
    path.symlink_to("/dev/zero")


def _self_loop(project: Project, path: Path, tmp: Path) -> None:
    path.symlink_to(path.name)


def _two_link_loop(project: Project, path: Path, tmp: Path) -> None:
    other = path.parent / "elsewhere"
    other.symlink_to(path.name)
    path.symlink_to(other.name)


def _leaves_the_project(project: Project, path: Path, tmp: Path) -> None:
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "real.sql").write_text("CREATE TABLE public.outside (id int);\n")
    path.symlink_to(outside / "real.sql")


KINDS: dict[str, Callable[[Project, Path, Path], None]] = {
    "directory": _directory,
    "fifo": _fifo,
    "dev-zero-link": _dev_zero,
    "self-loop": _self_loop,
    "two-link-loop": _two_link_loop,
    "link-leaving-project": _leaves_the_project,
}


def _lines_naming(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if name in line]


def _assert_refused(result: Outcome, names: list[str]) -> None:
    assert not result.timed_out, f"still running after {result.seconds:.0f} s (a FIFO read blocks forever)"
    assert result.code == 4, f"exit {result.code}\n{result.out}{result.err}"
    assert no_traceback(result.err), result.err
    for name in names:
        assert len(_lines_naming(result.err, name)) == 1, f"expected one line naming {name}:\n{result.err}"


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_migration_name_that_is_not_a_regular_file_is_refused_before_anything_runs(
        project: Project, db: Database, tmp_path: Path, kind: str) -> None:
    project.write("lanconnect", "001_ok.sql", "CREATE TABLE public.ok (id int);")
    KINDS[kind](project, project.root / "migrations" / "lanconnect" / BAD, tmp_path)
    result = run_bounded(project, "migrate", timeout=10, memory_mb=MEMORY_MB)
    _assert_refused(result, [BAD])
    assert db.tables("public") == [], "001 ran although a later file was refused"
    assert not history_tables_exist(db), "the history tables were created before the files were checked"


def test_every_bad_file_gets_its_own_line(project: Project, db: Database, tmp_path: Path) -> None:
    lanconnect = project.root / "migrations" / "lanconnect"
    client = project.root / "migrations" / "client_specific"
    project.write("lanconnect", "001_ok.sql", "CREATE TABLE public.ok (id int);")
    _directory(project, lanconnect / "002_folder.sql", tmp_path)
    _fifo(project, lanconnect / "003_pipe.sql", tmp_path)
    _dev_zero(project, client / "001_zero.sql", tmp_path)
    result = run_bounded(project, "migrate", timeout=10, memory_mb=MEMORY_MB)
    _assert_refused(result, ["002_folder.sql", "003_pipe.sql", "001_zero.sql"])
    assert not history_tables_exist(db)


@pytest.mark.parametrize("command", ["status", "dry-run"])
def test_read_only_commands_refuse_a_fifo_instead_of_hanging(project: Project, db: Database, command: str) -> None:
    project.write("lanconnect", "001_ok.sql", "CREATE TABLE public.ok (id int);")
    _fifo(project, project.root / "migrations" / "lanconnect" / BAD, project.root)
    result = run_bounded(project, command, timeout=10, memory_mb=MEMORY_MB)
    _assert_refused(result, [BAD])


def test_a_fifo_is_refused_before_the_run_lock_is_taken(project: Project, db: Database, tmp_path: Path) -> None:
    """Another runner holds the lock: the bad file is reported at once, not after the lock wait."""
    (project.root / "envs" / "local.env").write_text(f"DATABASE_URL={db.url}\nMAX_WAIT_TIME=5\n"
                                                     "MIGRATE_LOCK_TIMEOUT=30\n")
    project.write("lanconnect", "001_ok.sql", "CREATE TABLE public.ok (id int);")
    _fifo(project, project.root / "migrations" / "lanconnect" / BAD, tmp_path)
    with run_lock_held(db, db.url, tmp_path):
        result = run_bounded(project, "migrate", timeout=10, memory_mb=MEMORY_MB)
    _assert_refused(result, [BAD])
    assert result.seconds < 8


def test_an_oversized_file_is_refused_with_a_clear_line(project: Project, db: Database) -> None:
    project.write("lanconnect", "001_ok.sql", "CREATE TABLE public.ok (id int);")
    big = project.root / "migrations" / "lanconnect" / "002_big.sql"
    with big.open("wb") as handle:
        handle.truncate(200 * 1024 * 1024)  # sparse: 200 MB of NUL bytes, no disk used
    result = run_bounded(project, "migrate", timeout=60, memory_mb=MEMORY_MB)
    _assert_refused(result, ["002_big.sql"])
    line = _lines_naming(result.err, "002_big.sql")[0].replace("002_big.sql", "")
    assert re.search(r"(?i)too large|too big|larger than|exceeds|size|\d+\s*(MB|MiB|bytes)", line), \
        f"the refusal does not say the file is too large: {line}"
    assert db.tables("public") == [] and not history_tables_exist(db)


def test_a_link_inside_the_project_still_works(project: Project, db: Database) -> None:
    shared = project.root / "shared"
    shared.mkdir()
    (shared / "001_shared.sql").write_text("CREATE TABLE public.shared (id int);\n")
    (project.root / "migrations" / "lanconnect" / "001_shared.sql").symlink_to(shared / "001_shared.sql")
    result = run_bounded(project, "migrate", timeout=60, memory_mb=MEMORY_MB)
    assert result.code == 0, result.err
    assert db.tables("public") == ["shared"]
    assert db.history() == [("001", "applied")]
