"""The run lock: concurrent runners apply each migration exactly once; waiters wait or time out."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import Database, Project

COUNTER = "CREATE TABLE public.run_counter (version int PRIMARY KEY, runs int NOT NULL)"


def _counted(version: int, extra: str = "") -> str:
    """A migration that records, in the database it changes, how often it ran."""
    return (f"{extra}INSERT INTO public.run_counter VALUES ({version}, 1) "
            f"ON CONFLICT (version) DO UPDATE SET runs = run_counter.runs + 1;\n")


def _spawn(project: Project, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "migrate", *args], cwd=project.root,
                            env=project.environ(**(env or {})), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_sleeper(db: Database, timeout: float = 20) -> int:
    """The backend pid of the runner once it is inside pg_sleep (so it holds the run lock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = db.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND query LIKE '%%pg_sleep%%' AND pid <> pg_backend_pid() AND state = 'active'")
        if rows:
            return rows[0][0]
        time.sleep(0.05)
    raise AssertionError("the runner never reached pg_sleep")


def test_eight_runners_at_once_apply_each_migration_exactly_once(project: Project, db: Database) -> None:
    db.execute(COUNTER)
    for version in range(1, 51):
        project.write("lanconnect", f"{version:03d}_m.sql", _counted(version))
    runners = [_spawn(project, "migrate") for _ in range(8)]
    results = [(runner.wait(timeout=120), runner.stdout.read(), runner.stderr.read())  # type: ignore[union-attr]
               for runner in runners]
    for code, _out, err in results:
        assert code == 0, err
    assert db.query("SELECT count(*), min(runs), max(runs) FROM public.run_counter") == [(50, 1, 1)]
    assert sum(out.count("] lanconnect ") for _c, out, _e in results) == 50
    assert sum("Nothing to apply" in out for _c, out, _e in results) >= 1
    history = db.history()
    assert len(history) == 50 and {status for _v, status in history} == {"applied"}


def test_second_runner_waits_for_the_lock_then_finds_nothing_to_do(project: Project, db: Database) -> None:
    db.execute(COUNTER)
    project.write("lanconnect", "001_long.sql", _counted(1, "SELECT pg_sleep(1.5);\n"))
    first = _spawn(project, "migrate")
    try:
        _wait_for_sleeper(db)
        second = project.run("migrate")
    finally:
        first_code = first.wait(timeout=60)
    assert first_code == 0, first.stderr.read()  # type: ignore[union-attr]
    assert second.code == 0, second.err
    assert "waiting for the run lock (held by pid" in second.err
    assert "Nothing to apply: the database is up to date." in second.out
    assert db.query("SELECT version, runs FROM public.run_counter") == [(1, 1)]


def test_lock_timeout_exits_5_naming_the_holder(project: Project, db: Database) -> None:
    db.execute(COUNTER)
    project.write("lanconnect", "001_long.sql", _counted(1, "SELECT pg_sleep(3);\n"))
    first = _spawn(project, "migrate")
    try:
        pid = _wait_for_sleeper(db)
        started = time.monotonic()
        second = project.run("migrate", env={"MIGRATE_LOCK_TIMEOUT": "0.5"})
        waited = time.monotonic() - started
        repair = project.run("repair", env={"MIGRATE_LOCK_TIMEOUT": "0.3"})
    finally:
        first.wait(timeout=60)
    assert second.code == 5
    line = second.err.strip().splitlines()[-1]
    assert line.startswith("migrate: error: another migration run holds the lock on schema 'langconnect' "
                           f"(held by pid {pid} from ")
    assert "application 'migrate'" in line and "after waiting 0.5 s" in line
    assert "raise MIGRATE_LOCK_TIMEOUT" in line
    assert waited < 2.5
    assert repair.code == 5 and f"held by pid {pid}" in repair.err
    assert db.query("SELECT version, runs FROM public.run_counter") == [(1, 1)]
    assert db.history() == [("001", "applied")]
