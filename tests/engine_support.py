"""Helpers for the engine tests (issue 12): runners as processes, private clusters, fingerprints.

Nothing here knows how the tool works inside: runners are `python -m migrate ...` processes
(Project.run / spawn), and every check reads the database as a user would (history tables,
attempt log, catalog, rows).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import Database, Project, Server
from pgcluster import Cluster, _bin

COUNTER_DDL = "CREATE TABLE IF NOT EXISTS public.run_counter (version text PRIMARY KEY, runs int NOT NULL)"
ATTEMPTS = "langconnect.migration_attempts"
HISTORY = "langconnect.lanconnect_migration_versions"


def count_sql(version: str) -> str:
    """One statement that records, in the database it changes, that migration `version` ran once more."""
    return (f"INSERT INTO public.run_counter VALUES ('{version}', 1) "
            f"ON CONFLICT (version) DO UPDATE SET runs = run_counter.runs + 1;")


def psql_or_skip() -> str:
    import pytest

    found = shutil.which("psql")
    if found is None:
        pytest.skip("psql is not installed (CI installs it)")
    return found


def write_bytes(project: Project, track: str, name: str, data: bytes) -> Path:
    """A migration file with exactly these bytes (Project.write dedents and re-encodes)."""
    path = project.root / "migrations" / track / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def make_project(root: Path, url: str, extra: str = "") -> Project:
    """A project folder like conftest's `project` fixture, for a database the test made itself."""
    (root / "envs").mkdir(parents=True, exist_ok=True)
    for track in ("lanconnect", "client_specific"):
        (root / "migrations" / track).mkdir(parents=True, exist_ok=True)
    (root / "envs" / "local.env").write_text(
        f"DATABASE_URL={url}\nMAX_WAIT_TIME=20\nMIGRATE_LOCK_TIMEOUT=30\n{extra}")
    return Project(root, url)


def spawn(project: Project, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`python -m migrate ARGS` in the background (for kills, crashes and concurrent runners)."""
    return subprocess.Popen([sys.executable, "-m", "migrate", *args], cwd=project.root,
                            env=project.environ(**(env or {})), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def until(check: Callable[[], Any], timeout: float = 20, what: str = "condition", step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=20)


def sleepers(db: Database, marker: str = "pg_sleep") -> list[int]:
    """Backends of this database (not ours) whose current query mentions `marker` and is running."""
    rows = db.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND backend_type = 'client backend' AND state = 'active' AND query LIKE %s "
                    "AND pid <> pg_backend_pid()", (f"%{marker}%",))
    return [row[0] for row in rows]


def lock_waiters(db: Database) -> list[int]:
    """Backends (not ours) whose last query polled an advisory lock: runners waiting for the run lock."""
    rows = db.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND query LIKE '%%advisory%%' AND pid <> pg_backend_pid()")
    return [row[0] for row in rows]


def second_runner_in_place(db: Database, second: subprocess.Popen[str], first_file: set[int] | None = None) -> bool:
    """A second runner has reached a steady place: it polls for the run lock, or runs the file (as well as,
    or instead of, the first runner whose backends in `first_file` ran it), or waits for a lock, or is done."""
    running = set(sleepers(db))
    running_twice = len(running) >= 2 or bool(first_file is not None and running - first_file)
    blocked = db.query("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND backend_type = 'client backend' AND wait_event_type = 'Lock' "
                       "AND pid <> pg_backend_pid()")[0][0] >= 1
    holders = {row[0] for row in db.query("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted")}
    pollers = db.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                       "AND query LIKE '%%advisory%%' AND pid <> pg_backend_pid() "
                       "AND backend_start > now() - interval '30 s'")
    polling = any(pid not in holders for (pid,) in pollers)
    return running_twice or blocked or polling or second.poll() is not None


def run_lock_holder(db: Database, exclude: set[int] | None = None) -> int | None:
    """The backend holding the run lock, found as a user would: pg_locks' advisory locks.

    A session-level lock (the run lock) can be held by a backend outside any transaction; one
    such holder is preferred (a per-version transaction lock cannot be held there). If every
    holder is inside a transaction (the lock session also runs the migration), any holder.
    """
    rows = db.query(
        "SELECT DISTINCT l.pid, a.state FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database() "
        "AND l.pid <> pg_backend_pid()")
    rows = [row for row in rows if row[0] not in (exclude or set())]
    idle = [pid for pid, state in rows if state == "idle"]
    if idle:
        return idle[0]
    return rows[0][0] if rows else None


def invalid_indexes(db: Database) -> list[str]:
    rows = db.query("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                    "WHERE NOT i.indisvalid ORDER BY 1")
    return [row[0] for row in rows]


def applied_versions(db: Database, track: str = "lanconnect") -> set[str]:
    if not db.query("SELECT to_regclass('langconnect.lanconnect_migration_versions')")[0][0]:
        return set()
    return {version for version, status in db.history(track) if status == "applied"}


def attempts(db: Database, version: str | None = None) -> list[tuple[Any, ...]]:
    """(version, outcome) of every attempt row, oldest first; [] when the table does not exist."""
    if not db.query("SELECT to_regclass(%s)", (ATTEMPTS,))[0][0]:
        return []
    if version is None:
        return db.query(f"SELECT version, outcome FROM {ATTEMPTS} ORDER BY id")
    return db.query(f"SELECT version, outcome FROM {ATTEMPTS} WHERE version = %s ORDER BY id", (version,))


def counter(db: Database) -> dict[str, int]:
    return {version: runs for version, runs in db.query("SELECT version, runs FROM public.run_counter")}


def status_states(project: Project, env: dict[str, str] | None = None) -> dict[str, str]:
    """version -> state from `status --json` (lanconnect track)."""
    result = project.run("status", "--json", env=env)
    assert result.code == 0, result.err
    document = json.loads(result.out)
    return {item["version"]: item["state"] for item in document["migrations"] if item["track"] == "lanconnect"}


@contextmanager
def server_role(db: Database) -> Iterator[str]:
    """A NOLOGIN role of the server's (roles are server-wide): dropped, with its grants in `db`, afterwards."""
    name = f"app_owner_{uuid.uuid4().hex[:8]}"
    db.execute(f'CREATE ROLE "{name}" NOLOGIN')
    try:
        yield name
    finally:
        connection = db.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'DROP OWNED BY "{name}"')
                cursor.execute(f'DROP ROLE IF EXISTS "{name}"')
        finally:
            connection.close()


# --- private clusters ------------------------------------------------------------------------------------------


def pg_ctl(cluster: Cluster, *args: str, timeout: float = 120) -> None:
    subprocess.run([_bin("pg_ctl"), "-D", str(cluster.pgdata), *args], check=True, capture_output=True,
                   user=cluster.user, timeout=timeout)


def restart(cluster: Cluster, mode: str) -> None:
    """`pg_ctl restart -m MODE`: same options, same port; waits until it accepts connections."""
    pg_ctl(cluster, "-w", "-t", "120", "-l", str(cluster.base / "log"), "-m", mode, "restart")


def crash(cluster: Cluster) -> None:
    """`pg_ctl stop -m immediate`: no checkpoint, no flush; what is not in the WAL on disk is gone."""
    pg_ctl(cluster, "-w", "-m", "immediate", "stop")


@dataclass
class Private:
    """A cluster of the test's own, one database on it, a project pointing at that database."""

    cluster: Cluster
    server: Server
    db: Database
    project: Project

    def alter_system(self, **settings: str) -> None:
        admin = self.server.connect()
        try:
            with admin.cursor() as cursor:
                for name, value in settings.items():
                    cursor.execute(f"ALTER SYSTEM SET {name} = %s", (value,))
                cursor.execute("SELECT pg_reload_conf()")
        finally:
            admin.close()


@contextmanager
def private_cluster(tmp_path: Path, extra_env: str = "") -> Iterator[Private]:
    """Start a cluster of this test's own (it may be killed, crashed, restarted), with one database."""
    cluster = Cluster()
    try:
        cluster.start()
        server = Server("private", {"host": "127.0.0.1", "port": str(cluster.port), "user": "postgres",
                                    "dbname": "postgres"})
        name = f"mt_{uuid.uuid4().hex[:12]}"
        admin = server.connect()
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        admin.close()
        db = Database(server, name, server.url(name))
        yield Private(cluster, server, db, make_project(tmp_path / "project", db.url, extra_env))
    finally:
        cluster.remove()


# --- reading a runner's output as it streams -------------------------------------------------------------------


@dataclass
class Stream:
    """Reads a process's stdout and stderr line by line on two threads, as they arrive."""

    process: subprocess.Popen[str]
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._threads = [threading.Thread(target=self._pump, args=(self.process.stdout, self.out), daemon=True),
                         threading.Thread(target=self._pump, args=(self.process.stderr, self.err), daemon=True)]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _pump(pipe: Any, lines: list[str]) -> None:
        for line in iter(pipe.readline, ""):
            lines.append(line.rstrip("\n"))

    def wait(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout=timeout)
        for thread in self._threads:
            thread.join(timeout=10)
        return code

    def applied_lines(self) -> list[str]:
        return [line for line in list(self.out) if line.startswith("[")]


def printed_versions(lines: list[str]) -> set[str]:
    """Versions named by `[i/N] lanconnect 012_x.sql  3 ms` lines."""
    versions = set()
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[0].startswith("[") and parts[1] == "lanconnect":
            versions.add(parts[2].split("_", 1)[0])
    return versions


# --- fingerprints for comparing two databases -----------------------------------------------------------------

TOOL_TABLES = ("lanconnect_migration_versions", "client_migration_versions", "migration_attempts")


def app_fingerprint(db: Database) -> dict[str, Any]:
    """Catalog and data of every app object, without the tool's own history tables (and their indexes,
    sequences), so a database migrated by the tool compares with one migrated by psql alone."""
    system = "('pg_catalog', 'information_schema', 'pg_toast')"
    tool = "(" + ", ".join(f"'{name}'" for name in TOOL_TABLES) + ")"
    relations = db.query(
        f"""
        SELECT n.nspname, c.relname, c.relkind::text, pg_get_userbyid(c.relowner),
               coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                           || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                           || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''),
                                           ', ' ORDER BY a.attnum)
                           FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid
                                AND d.adnum = a.attnum
                          WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), ''),
               CASE WHEN c.relkind = 'i' THEN pg_get_indexdef(c.oid) END,
               CASE WHEN c.relkind = 'i' THEN (SELECT indisvalid FROM pg_index WHERE indexrelid = c.oid) END,
               coalesce(c.relacl::text, '')
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN {system} AND n.nspname NOT LIKE 'pg\\_%%'
           AND NOT EXISTS (
               SELECT 1 FROM pg_class t JOIN pg_namespace tn ON tn.oid = t.relnamespace
                WHERE tn.nspname = 'langconnect' AND t.relname IN {tool}
                  AND (t.oid = c.oid
                       OR t.oid = (SELECT indrelid FROM pg_index WHERE indexrelid = c.oid)
                       OR EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.objid = c.oid AND dep.refobjid = t.oid)))
         ORDER BY 1, 2
        """)
    functions = db.query(
        f"""
        SELECT n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.prosrc,
               pg_get_userbyid(p.proowner)
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname NOT IN {system} ORDER BY 1, 2, 3
        """)
    schemas = db.query(f"SELECT nspname, pg_get_userbyid(nspowner), coalesce(nspacl::text, '') FROM pg_namespace "
                       f"WHERE nspname NOT IN {system} AND nspname NOT LIKE 'pg\\_%%' ORDER BY 1")
    settings = db.query("SELECT coalesce(setconfig, '{}')::text FROM pg_db_role_setting s "
                        "JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = current_database() "
                        "AND s.setrole = 0")
    data: dict[str, list[str]] = {}
    for schema, name, kind, *_ in relations:
        if kind in ("r", "p"):
            rows = db.query(f'SELECT row_to_json(t)::text FROM "{schema}"."{name}" t ORDER BY 1')
            data[f"{schema}.{name}"] = [row[0] for row in rows]
    return {"relations": relations, "functions": functions, "schemas": schemas, "settings": settings,
            "data": data}


# --- a mixed migration set for the kill, crash and restart storms ---------------------------------------------

KNOB = "(SELECT seconds FROM public.knob)"


@dataclass(frozen=True)
class Planned:
    """One version of the mixed set: how it runs and what it leaves behind."""

    version: str
    transactional: bool  # its effects commit with its history row (exactly once), or not (at least once)
    index: str | None = None  # the index it builds CONCURRENTLY


class MixedSet:
    """Transactional, slow, CONCURRENTLY, marker, DO-with-COMMIT and psql files; each counts its runs.

    Slow files sleep public.knob.seconds (set it to 0 before the completing run). The index builds
    call a slow immutable function per row, so they last about a second and can be interrupted.
    `add_copy()` appends one more of each kind (a storm keeps the runners busy with it).
    """

    def __init__(self, project: Project, db: Database, psql: bool = True, seconds: float = 0.4) -> None:
        self.project, self.db, self.psql = project, db, psql
        self.planned: list[Planned] = []
        self.copies = 0
        db.execute(COUNTER_DDL)
        db.execute(f"CREATE TABLE public.knob (seconds float NOT NULL); INSERT INTO public.knob VALUES ({seconds})")
        db.execute("CREATE FUNCTION public.slow_id(int) RETURNS int IMMUTABLE LANGUAGE plpgsql AS "
                   "$$ BEGIN PERFORM pg_sleep(0.0004); RETURN $1; END $$")
        db.execute("CREATE TABLE public.big (a int, b int); "
                   "INSERT INTO public.big SELECT g, g FROM generate_series(1, 800) g")

    def _add(self, text: str, transactional: bool, index: str | None = None) -> None:
        version = f"{len(self.planned) + 1:03d}"
        self.project.write("lanconnect", f"{version}_m.sql", text.replace("{V}", version))
        self.planned.append(Planned(version, transactional, index))

    def add_copy(self) -> None:
        copy = self.copies
        self.copies += 1
        self._add("CREATE TABLE IF NOT EXISTS public.t_{V} (id int);\n" + count_sql("{V}"), True)
        self._add(count_sql("{V}") + f"\nSELECT pg_sleep({KNOB});", True)
        self._add(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS big_slow_{copy} "
                  f"ON public.big (public.slow_id(a + {copy}));", False, f"big_slow_{copy}")
        self._add("-- migrate:no-transaction\n" + count_sql("{V}") + f"\nSELECT pg_sleep({KNOB});\n"
                  "CREATE TABLE IF NOT EXISTS public.t_{V} (id int);", False)
        self._add("DO $$ BEGIN\n  " + count_sql("{V}") + f"\n  COMMIT;\n  PERFORM pg_sleep({KNOB});\nEND $$;",
                  False)
        if self.psql:
            self._add("\\set label '{V}'\n" + count_sql("{V}") + f"\nSELECT pg_sleep({KNOB});", True)
            self._add("\\set label '{V}'\nBEGIN;\n" + count_sql("{V}") + "\nCOMMIT;", False)
        self._add(count_sql("{V}"), True)

    def all_applied(self) -> bool:
        return applied_versions(self.db) >= {item.version for item in self.planned}


def finish_mixed_set(project: Project, db: Database, mixed: MixedSet, seed: object) -> None:
    """After a storm: one more plain run completes the set (or stops at the one allowed place, an INVALID index
    an interrupted build left, named with what to do), and every file's effects are there exactly once."""
    final = project.run("migrate", timeout=120)
    assert "Traceback" not in final.err, final.err
    if final.code != 0:
        broken = invalid_indexes(db)
        assert broken and any(name in final.err for name in broken), f"seed {seed}: {final.err}"
    else:
        assert applied_versions(db) == {item.version for item in mixed.planned}, f"seed {seed}"
    check_mixed_set(db, mixed.planned, seed)


def check_mixed_set(db: Database, planned: list[Planned], seed: object) -> None:
    """History matches effects: exactly once for transactional versions, at least once for the rest;
    no INVALID index under an applied version; every execution of a non-transactional file is logged."""
    applied = applied_versions(db)
    runs = counter(db)
    invalid = set(invalid_indexes(db))
    problems = []
    for item in planned:
        ran = runs.get(item.version, 0)
        if item.transactional:
            expected = 1 if item.version in applied else 0
            if ran != expected:
                problems.append(f"{item.version}: transactional, applied={item.version in applied}, ran {ran} time(s)")
        else:
            if item.version in applied and item.index is None and ran < 1:
                problems.append(f"{item.version}: recorded applied but never ran")
            logged = len(attempts(db, item.version))
            if logged < ran:
                problems.append(f"{item.version}: ran {ran} time(s), {logged} attempt row(s)")
        if item.index and item.version in applied and item.index in invalid:
            problems.append(f"{item.version}: recorded applied with its index {item.index} INVALID")
    assert not problems, f"seed {seed}: " + "; ".join(problems)
