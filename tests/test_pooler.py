"""A transaction-mode pooler cannot hold the run lock: migrate must refuse it (real PgBouncer)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Database, Project

PGBOUNCER = shutil.which("pgbouncer") or next(
    (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None)
pytestmark = pytest.mark.skipif(PGBOUNCER is None, reason="pgbouncer is not installed (apt-get install pgbouncer)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def pgbouncer(db: Database) -> Iterator[int]:
    """A private PgBouncer on a loopback port: database `tx` in transaction mode, `sess` in session mode."""
    assert PGBOUNCER is not None
    folder = Path(tempfile.mkdtemp(prefix="migrate-pgbouncer-"))
    os.chmod(folder, 0o777)
    port = _free_port()
    params = db.server.params
    target = f"host={params.get('host', '127.0.0.1')} port={params.get('port', '5432')} " \
             f"user={params.get('user', 'postgres')} dbname={db.name}"
    if params.get("password"):
        target += f" password={params['password']}"
    config = folder / "pgbouncer.ini"
    config.write_text(
        "[databases]\n"
        f"tx = {target} pool_mode=transaction\n"
        f"sess = {target} pool_mode=session\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        "auth_type = any\npool_mode = transaction\n"
        f"logfile = {folder}/pgbouncer.log\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
    )
    os.chmod(config, 0o644)
    command = [PGBOUNCER]
    if os.geteuid() == 0:
        command += ["-u", "embedded_postgres" if db.server.kind == "embedded" else "nobody"]
    process = subprocess.Popen([*command, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"pgbouncer did not start: {process.stderr.read()!r}") from None  # type: ignore[union-attr]
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


def test_transaction_mode_pooler_is_refused(project: Project, db: Database, pgbouncer: int) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE pooled (id int);")
    project.env_file("pooled", f"DATABASE_URL=postgresql://postgres@127.0.0.1:{pgbouncer}/tx\n")
    result = project.run("migrate", "--env", "pooled")
    assert result.code == 2, result.err
    line = result.err.strip().splitlines()[-1]
    assert line.startswith("migrate: error: the connection to postgresql://postgres@127.0.0.1:"
                           f"{pgbouncer}/tx goes through a transaction-mode pooler (port {pgbouncer})")
    assert "session mode (Supavisor/PgBouncer port 5432)" in line
    assert db.tables("langconnect") == [] and "pooled" not in db.tables("public")
    repair = project.run("repair", "--env", "pooled")
    assert repair.code == 2 and "transaction-mode pooler" in repair.err


def test_session_mode_pooler_is_accepted(project: Project, db: Database, pgbouncer: int) -> None:
    project.write("lanconnect", "001_a.sql", "CREATE TABLE pooled (id int);")
    project.env_file("pooled", f"DATABASE_URL=postgresql://postgres@127.0.0.1:{pgbouncer}/sess\n")
    result = project.run("migrate", "--env", "pooled")
    assert result.code == 0, result.err
    assert db.history() == [("001", "applied")]


def test_only_an_end_to_end_tcp_connection_skips_the_probe(db: Database, pgbouncer: int) -> None:
    import psycopg2

    from migrate.database.run_lock import _is_end_to_end_tcp

    def view(connection) -> list:  # noqa: ANN001
        with connection.cursor() as cursor:
            cursor.execute("SELECT host(inet_server_addr()), inet_server_port(), host(inet_client_addr()), "
                           "inet_client_port()")
            return list(cursor.fetchone())

    pooled = psycopg2.connect(host="127.0.0.1", port=pgbouncer, dbname="sess", user="postgres")
    try:
        assert _is_end_to_end_tcp(pooled, view(pooled)) is False
    finally:
        pooled.close()
    direct = db.connect()
    try:
        over_tcp = not db.server.params.get("host", "").startswith("/")
        assert _is_end_to_end_tcp(direct, view(direct)) is over_tcp
    finally:
        direct.close()
