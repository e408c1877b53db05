"""The run lock: concurrent runners apply each migration exactly once; waiters wait or time out."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import Database, Project

COUNTER = "CREATE TABLE public.run_counter (version int PRIMARY KEY, runs int NOT NULL)"
GATE = "CREATE TABLE public.gate (opened_at timestamptz)"
# holds its transaction (and so the run lock) until the test inserts a row into public.gate
WAIT_FOR_GATE = ("DO $$ BEGIN WHILE NOT EXISTS (SELECT 1 FROM public.gate) LOOP PERFORM pg_sleep(0.05); "
                 "END LOOP; END $$;\n")


def _counted(version: int, extra: str = "") -> str:
    """A migration that records, in the database it changes, how often it ran."""
    return (f"{extra}INSERT INTO public.run_counter VALUES ({version}, 1) "
            f"ON CONFLICT (version) DO UPDATE SET runs = run_counter.runs + 1;\n")


def _spawn(project: Project, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "migrate", *args], cwd=project.root,
                            env=project.environ(**(env or {})), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_lock_waiter(db: Database, timeout: float = 20) -> None:
    """Until another session polls for the run lock (its last query mentions advisory locks, and it holds none:
    the holder's own lock session and its files' fence hold theirs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                    "AND query LIKE '%%advisory%%' AND pid <> pg_backend_pid() "
                    "AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"):
            return
        time.sleep(0.05)
    raise AssertionError("no runner started waiting for the lock")


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


def _run_lock_holder(db: Database) -> int:
    """The backend pid holding this database's run lock (advisory lock on the schema's key)."""
    from migrate.database.run_lock import lock_key

    unsigned = lock_key("langconnect") & 0xFFFFFFFFFFFFFFFF
    rows = db.query("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s::bigint::oid "
                    "AND objid = %s::bigint::oid AND objsubid = 1 AND database = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database())",
                    (unsigned >> 32, unsigned & 0xFFFFFFFF))
    assert len(rows) == 1, rows
    return int(rows[0][0])


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
    db.execute(GATE)
    project.write("lanconnect", "001_long.sql", _counted(1, WAIT_FOR_GATE))
    first = _spawn(project, "migrate")
    second = None
    try:
        _wait_for_sleeper(db)
        second = _spawn(project, "migrate")
        _wait_for_lock_waiter(db)
    finally:
        db.execute("INSERT INTO public.gate VALUES (now())")
        first_code = first.wait(timeout=60)
        second_out, second_err = second.communicate(timeout=60) if second else ("", "")
    assert first_code == 0, first.stderr.read()  # type: ignore[union-attr]
    assert second is not None and second.returncode == 0, second_err
    assert "waiting for the run lock (held by pid" in second_err
    assert "Nothing to apply: the database is up to date." in second_out
    assert db.query("SELECT version, runs FROM public.run_counter") == [(1, 1)]


def test_lock_timeout_exits_5_naming_the_holder(project: Project, db: Database) -> None:
    db.execute(COUNTER)
    db.execute(GATE)
    project.write("lanconnect", "001_long.sql", _counted(1, WAIT_FOR_GATE))
    first = _spawn(project, "migrate")
    try:
        sleeper = _wait_for_sleeper(db)
        pid = _run_lock_holder(db)
        assert pid != sleeper  # the run lock lives on a session of its own, not on the one running the file
        started = time.monotonic()
        second = project.run("migrate", env={"MIGRATE_LOCK_TIMEOUT": "0.5"})
        waited = time.monotonic() - started
        repair = project.run("repair", env={"MIGRATE_LOCK_TIMEOUT": "0.3"})
        baseline = project.run("baseline", "--up-to", "1", env={"MIGRATE_LOCK_TIMEOUT": "0.3"})
    finally:
        db.execute("INSERT INTO public.gate VALUES (now())")
        first.wait(timeout=60)
    assert second.code == 5
    line = second.err.strip().splitlines()[-1]
    assert line.startswith("migrate: error: another migration run holds the lock on schema 'langconnect' "
                           f"(held by pid {pid} from ")
    assert "application 'migrate'" in line and "after waiting 0.5 s" in line
    assert "raise MIGRATE_LOCK_TIMEOUT" in line
    assert waited < 5
    assert repair.code == 5 and f"held by pid {pid}" in repair.err
    assert baseline.code == 5 and f"held by pid {pid}" in baseline.err
    assert first.returncode == 0
    assert db.query("SELECT version, runs FROM public.run_counter") == [(1, 1)]
    assert db.history() == [("001", "applied")]


def test_lock_is_per_database_and_names_the_holder_in_this_one(project: Project, db: Database) -> None:
    from conftest import fresh_database

    from migrate.database.run_lock import lock_key

    with fresh_database(db.server) as other_db:
        other = other_db.connect()
        here = db.connect()
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s), pg_backend_pid()", (lock_key("langconnect"),))
                other_pid = cursor.fetchone()[1]
            project.write("lanconnect", "001_a.sql", "CREATE TABLE per_db (id int);")
            free = project.run("migrate", env={"MIGRATE_LOCK_TIMEOUT": "0.3"})
            assert free.code == 0, free.err  # a runner on another database does not block this one
            project.write("lanconnect", "002_b.sql", "CREATE TABLE per_db_2 (id int);")
            with here.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s), pg_backend_pid()", (lock_key("langconnect"),))
                here_pid = cursor.fetchone()[1]
            blocked = project.run("migrate", env={"MIGRATE_LOCK_TIMEOUT": "0.3"})
            assert blocked.code == 5
            assert f"held by pid {here_pid} from " in blocked.err and f"pid {other_pid} " not in blocked.err
        finally:
            here.close()
            other.close()
