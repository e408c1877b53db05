"""Issue 12, "Concurrency": many runners, some killed; the run lock's session lost mid-file.

- 8 and 16 runners start at once on 50 pending migrations and 2 of them are SIGKILLed at random
  moments: every migration ran exactly once, and every runner not killed exits 0.
- While a slow file runs (plain, and a psql file) with a second runner waiting, the server ends
  the session that holds the run lock: `pg_terminate_backend` (the holder found through pg_locks'
  advisory locks), or `idle_session_timeout` set on a cluster of the test's own. The file's effect
  still happens exactly once.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from conftest import Database, Project
from engine_support import (
    COUNTER_DDL,
    attempts,
    count_sql,
    counter,
    kill,
    private_cluster,
    psql_or_skip,
    run_lock_holder,
    second_runner_in_place,
    sleepers,
    spawn,
    until,
)

GATE_DDL = "CREATE TABLE public.gate (opened_at timestamptz)"
WAIT_FOR_GATE = ("DO $$ BEGIN WHILE NOT EXISTS (SELECT 1 FROM public.gate) LOOP PERFORM pg_sleep(0.05); "
                 "END LOOP; END $$;")


@pytest.mark.parametrize("runners", [8, 16])
def test_runners_with_two_killed_apply_each_migration_exactly_once(project: Project, db: Database,
                                                                   runners: int) -> None:
    seed = int(os.environ.get("MIGRATE_TEST_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)
    db.execute(COUNTER_DDL)
    for number in range(1, 51):
        version = f"{number:03d}"
        project.write("lanconnect", f"{version}_m.sql", count_sql(version) + "\nSELECT pg_sleep(0.03);")
    processes = [spawn(project, "migrate", env={"MIGRATE_LOCK_TIMEOUT": "60"}) for _ in range(runners)]
    victims = rng.sample(range(runners), 2)
    started = time.monotonic()
    for victim, moment in zip(victims, sorted(rng.uniform(0.3, 2.0) for _ in victims), strict=True):
        time.sleep(max(0.0, started + moment - time.monotonic()))
        kill(processes[victim])
    results = {}
    for index, process in enumerate(processes):
        if index not in victims:
            out, err = process.communicate(timeout=120)
            results[index] = (process.returncode, out, err)
    for index, (code, _out, err) in results.items():
        assert code == 0, f"seed {seed}: runner {index} exited {code}: {err}"
        assert "Traceback" not in err
    runs = counter(db)
    assert runs == {f"{n:03d}": 1 for n in range(1, 51)}, f"seed {seed}: {runs}"
    history = db.history()
    assert len(history) == 50 and {status for _v, status in history} == {"applied"}
    assert sum(outcome == "applied" for _v, outcome in attempts(db)) == 50


def _slow_file(project: Project, kind: str) -> None:
    if kind == "psql":
        psql_or_skip()
        project.write("lanconnect", "001_slow.sql", f"\\set label 'slow'\n{count_sql('001')}\n{WAIT_FOR_GATE}\n")
    else:
        project.write("lanconnect", "001_slow.sql", f"{count_sql('001')}\n{WAIT_FOR_GATE}\n")
    project.write("lanconnect", "002_after.sql", count_sql("002"))


def _finish(db: Database, first: object, second: object) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    db.execute("INSERT INTO public.gate VALUES (now())")
    done = []
    for process in (first, second):
        out, err = process.communicate(timeout=60)  # type: ignore[attr-defined]
        done.append((process.returncode, out, err))  # type: ignore[attr-defined]
    return done[0], done[1]


@pytest.mark.parametrize("kind", ["plain", "psql"])
def test_lock_session_terminated_by_the_server_while_a_slow_file_runs(project: Project, db: Database,
                                                                      kind: str) -> None:
    db.execute(COUNTER_DDL)
    db.execute(GATE_DDL)
    _slow_file(project, kind)
    first = spawn(project, "migrate")
    second = None
    try:
        first_file = set(until(lambda: sleepers(db), what="the slow file to run"))
        second = spawn(project, "migrate", env={"MIGRATE_LOCK_TIMEOUT": "90"})
        until(lambda: second_runner_in_place(db, second), timeout=15, what="the second runner to wait")
        holder = run_lock_holder(db, exclude=first_file)
        if holder is None:  # the lock's session is the one running the file
            holder = run_lock_holder(db)
        assert holder is not None, "no backend holds an advisory lock"
        db.execute("SELECT pg_terminate_backend(%s)", (holder,))
        time.sleep(1.0)
        until(lambda: second_runner_in_place(db, second, first_file), timeout=15,
              what="the second runner to move on")
        time.sleep(0.5)
    finally:
        (first_code, _o1, first_err), (second_code, _o2, second_err) = _finish(db, first, second or first)
    assert counter(db).get("001") == 1, "the slow file's effect happened twice (or never)"
    assert db.history() == [("001", "applied"), ("002", "applied")]
    assert second_code == 0, second_err
    assert "Traceback" not in first_err + second_err


@pytest.mark.parametrize("kind", ["plain", "psql"])
def test_idle_session_timeout_ends_the_lock_session_while_a_slow_file_runs(tmp_path: Path, kind: str) -> None:
    with private_cluster(tmp_path) as private:
        db, project = private.db, private.project
        db.execute(COUNTER_DDL)
        db.execute(GATE_DDL)
        _slow_file(project, kind)
        private.alter_system(idle_session_timeout="1s")
        first = spawn(project, "migrate")
        second = None
        try:
            until(lambda: sleepers(db), what="the slow file to run")
            second = spawn(project, "migrate", env={"MIGRATE_LOCK_TIMEOUT": "90"})
            until(lambda: second_runner_in_place(db, second), timeout=15, what="the second runner to wait")
            time.sleep(3.0)  # well past the idle timeout of any idle session
        finally:
            (first_code, _o1, first_err), (second_code, _o2, second_err) = _finish(db, first, second or first)
        private.alter_system(idle_session_timeout="0")
        assert counter(db).get("001") == 1, "the slow file's effect happened twice (or never)"
        assert db.history() == [("001", "applied"), ("002", "applied")]
        assert second_code == 0, second_err
        assert "Traceback" not in first_err + second_err
