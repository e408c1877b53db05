"""Shared pieces of the issue-13 tests (tests/test_env_*.py): a password server standing in for
staging, the machine server's app schema before/after, a held run lock, bounded runs, and the
checks on the one stderr line that names every command's target.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
from conftest import REPO, SYSTEM_DSN_DEFAULT, Database, Project, Server
from pgcluster import Cluster

# The staging server's superuser password: characters that must be percent-encoded in a URL.
STAGING_PASSWORD = "Qz7/Kw@Xj Vy"


# --- a password-auth server standing in for staging -------------------------------------------


@dataclass
class PasswordServer:
    """A private cluster with scram-sha-256 auth; tests create their own databases on it."""

    cluster: Cluster
    password: str

    @property
    def port(self) -> int:
        return self.cluster.port

    def server(self) -> Server:
        return Server("password-cluster", {"host": "127.0.0.1", "port": str(self.cluster.port), "user": "postgres",
                                           "password": self.password, "dbname": "postgres"})

    def url(self, dbname: str, user: str = "postgres", password: str | None = None, host: str = "127.0.0.1") -> str:
        """A correct URL: user and password percent-encoded."""
        password = self.password if password is None else password
        return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{self.port}/{dbname}"


@contextmanager
def password_server(password: str = STAGING_PASSWORD, listen: str = "127.0.0.1",
                    hba_extra: str = "") -> Iterator[PasswordServer]:
    """Start a private password cluster listening on `listen` (comma list), removed afterwards."""
    cluster = Cluster(password=password)
    try:
        if hba_extra:
            hba = cluster.pgdata / "pg_hba.conf"
            subprocess.run(["sh", "-c", f"printf '%s\\n' '{hba_extra}' >> '{hba}'"], check=True,
                           user=cluster.user, timeout=30)
        if listen == "127.0.0.1":
            cluster.start()
        else:
            from pgcluster import _bin

            cluster._run([_bin("pg_ctl"), "-D", str(cluster.pgdata), "-w", "-l", str(cluster.base / "log"),
                          "-o", f"-h {listen} -p {cluster.port} -k {cluster.base}", "start"])
        yield PasswordServer(cluster, password)
    finally:
        cluster.remove()


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (eth0's), or None."""
    try:
        output = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        output = ""
    for word in output.split():
        if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", word) and not word.startswith("127."):
            return word
    return None


# --- history in a database --------------------------------------------------------------------


def versions(db: Database, track: str = "lanconnect") -> list[tuple[str, str]]:
    """(version, status) rows of a track's history table; [] when the table does not exist."""
    table = "lanconnect_migration_versions" if track == "lanconnect" else "client_migration_versions"
    if not db.query("SELECT to_regclass(%s) IS NOT NULL", (f"langconnect.{table}",))[0][0]:
        return []
    return db.history(track)


def history_tables_exist(db: Database) -> bool:
    return bool(db.query("SELECT to_regclass('langconnect.lanconnect_migration_versions') IS NOT NULL")[0][0])


# --- the machine's own server: nothing may land there by libpq defaults -----------------------


def _default_databases() -> list[str]:
    """Databases libpq's defaults reach on the machine server: `postgres` and the OS user's name."""
    import getpass

    return list(dict.fromkeys(["postgres", getpass.getuser()]))


def _machine_connect(dbname: str) -> Any:
    params = dict(psycopg2.extensions.parse_dsn(SYSTEM_DSN_DEFAULT), dbname=dbname)
    connection = psycopg2.connect(**params, connect_timeout=3)
    connection.autocommit = True
    return connection


def _machine_state() -> dict[str, tuple[Any, ...]] | None:
    """Per default database of the machine server: its langconnect relations and history row counts."""
    try:
        _machine_connect("postgres").close()
    except psycopg2.Error:
        return None
    state: dict[str, tuple[Any, ...]] = {}
    for dbname in _default_databases():
        try:
            connection = _machine_connect(dbname)
        except psycopg2.Error:
            continue  # no such database: nothing can land there
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'langconnect'")
                exists = bool(cursor.fetchone()[0])
                cursor.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                               "WHERE n.nspname = 'langconnect' ORDER BY 1")
                relations = tuple(row[0] for row in cursor.fetchall())
                counts = []
                for name in ("lanconnect_migration_versions", "client_migration_versions", "migration_attempts"):
                    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (f"langconnect.{name}",))
                    if cursor.fetchone()[0]:
                        cursor.execute(f"SELECT count(*) FROM langconnect.{name}")
                        counts.append((name, cursor.fetchone()[0]))
                state[dbname] = (exists, relations, tuple(counts))
        finally:
            connection.close()
    return state


@contextmanager
def machine_server_watched() -> Iterator[list[dict[str, tuple[Any, ...]] | None]]:
    """Yields [before]; afterwards appends `after`. A langconnect schema the run created in one of the
    machine server's default databases (absent before, present after) is dropped again."""
    before = _machine_state()
    states: list[dict[str, tuple[Any, ...]] | None] = [before]
    try:
        yield states
    finally:
        after = _machine_state()
        states.append(after)
        for dbname, (exists, _, _) in (after or {}).items():
            if before is not None and exists and not before.get(dbname, (False,))[0]:
                connection = _machine_connect(dbname)
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("DROP SCHEMA IF EXISTS langconnect CASCADE")  # created by the run under test
                finally:
                    connection.close()


# --- runs that may hang or eat memory on today's code -----------------------------------------


@dataclass
class Outcome:
    code: int | None  # None: it did not finish within the time allowed (it was killed)
    out: str
    err: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.code is None


def run_bounded(project: Project, *args: str, env: dict[str, str] | None = None, timeout: float = 30,
                door: str = "python", memory_mb: int | None = None, cwd: Path | None = None) -> Outcome:
    """Run a door with a deadline (the process group is killed after `timeout`) and an optional
    address-space limit, so a hang or an unbounded read fails the test instead of the machine."""
    if door == "python":
        command = [sys.executable, "-m", "migrate", *args]
    else:
        import shutil

        command = [shutil.which("inv") or "inv", "--search-root", str(REPO), *args]

    def limit() -> None:
        if memory_mb is not None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 1024 * 1024, memory_mb * 1024 * 1024))

    began = time.monotonic()
    process = subprocess.Popen(command, cwd=cwd or project.root, env=project.environ(**(env or {})),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=limit)
    try:
        out, err = process.communicate(timeout=timeout)
        return Outcome(process.returncode, out, err, time.monotonic() - began)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        return Outcome(None, out, err, time.monotonic() - began)


# --- a run lock held by another runner --------------------------------------------------------


@contextmanager
def run_lock_held(db: Database, url: str, folder: Path) -> Iterator[None]:
    """Another `python -m migrate` holds the run lock of `db` (its migration sleeps) until the block ends."""
    root = folder / "holder"
    (root / "envs").mkdir(parents=True)
    (root / "migrations" / "lanconnect").mkdir(parents=True)
    (root / "migrations" / "client_specific").mkdir(parents=True)
    (root / "envs" / "local.env").write_text(f"DATABASE_URL={url}\nMAX_WAIT_TIME=10\n")
    (root / "migrations" / "lanconnect" / "001_hold.sql").write_text("SELECT pg_sleep(120);\n")
    holder = Project(root, url)
    process = subprocess.Popen([sys.executable, "-m", "migrate", "migrate"], cwd=root, env=holder.environ(),
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not db.query("SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                           "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database() "
                           "AND l.pid <> pg_backend_pid()"):
            assert process.poll() is None, "the lock holder ended early"
            assert time.monotonic() < deadline, "the lock holder never started its migration"
            time.sleep(0.05)
        yield
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND pid <> pg_backend_pid()")


# --- output checks ----------------------------------------------------------------------------


def target_lines(err: str, env: str, piece: str) -> list[str]:
    """The stderr lines that name environment `env` and contain `piece` (the database's name)."""
    word = re.compile(rf"(?<![\w-]){re.escape(env)}(?![\w-])")
    return [line for line in err.splitlines()
            if re.search(r"(?i)\benvironment\b", line) and word.search(line) and piece in line]


def target_line(err: str, env: str, piece: str) -> str:
    """The stderr line that names environment `env` and contains `piece` (the database's name)."""
    lines = target_lines(err, env, piece)
    if not lines:
        raise AssertionError(f"no stderr line names environment {env!r} and {piece!r}; stderr was:\n{err}")
    return lines[0]


def fragments(secret: str, size: int = 3) -> set[str]:
    """Every substring of `secret` of length `size` (any longer one contains one of these)."""
    return {secret[i:i + size] for i in range(len(secret) - size + 1)}


def assert_no_fragment(secret: str, *texts: str) -> None:
    for text in texts:
        leaked = sorted(f for f in fragments(secret) if f in text)
        assert not leaked, f"fragments {leaked} of the password were printed:\n{text}"


def no_traceback(text: str) -> bool:
    return "Traceback (most recent call last)" not in text
