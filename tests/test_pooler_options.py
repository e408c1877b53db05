"""Through PgBouncer (session mode), which refuses startup options: the SQL timeouts still apply."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Database, Project

pytestmark = pytest.mark.skipif(shutil.which("pgbouncer") is None, reason="pgbouncer is not installed")


@pytest.fixture
def bouncer(db: Database) -> Iterator[str]:
    """A session-mode PgBouncer in front of this test's server; yields a DATABASE_URL through it."""
    params = db.server.params
    if params.get("host", "").startswith("/") or params.get("password"):
        pytest.skip("the PgBouncer test runs against a TCP server with trust authentication")
    folder = Path(tempfile.mkdtemp(prefix="migrate-pgbouncer-"))
    os.chmod(folder, 0o777)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (folder / "users.txt").write_text(f'"{params.get("user", "postgres")}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"[databases]\n* = host={params.get('host', '127.0.0.1')} port={params.get('port', '5432')}\n"
        f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n"
        f"auth_file = {folder}/users.txt\npool_mode = session\nunix_socket_dir =\n"
        f"logfile = {folder}/pgbouncer.log\npidfile = {folder}/pgbouncer.pid\n")
    for path in folder.iterdir():
        os.chmod(path, 0o666)
    command = ["pgbouncer", "-d"] + (["-u", "nobody"] if os.geteuid() == 0 else []) + [str(folder / "pgbouncer.ini")]
    subprocess.run(command, check=True, capture_output=True, timeout=10)
    pid_file = folder / "pgbouncer.pid"
    deadline = time.monotonic() + 5
    while not pid_file.exists():
        assert time.monotonic() < deadline, (folder / "pgbouncer.log").read_text()
        time.sleep(0.02)
    try:
        yield f"postgresql://{params.get('user', 'postgres')}@127.0.0.1:{port}/{db.name}"
    finally:
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        shutil.rmtree(folder, ignore_errors=True)


def test_timeouts_apply_through_a_pooler_that_refuses_startup_options(project: Project, db: Database,
                                                                       bouncer: str) -> None:
    project.env_file("local", f"DATABASE_URL={bouncer}\nMAX_WAIT_TIME=5\n")
    project.write("lanconnect", "001_seen.sql", """
        CREATE TABLE seen (by text, lock_timeout text);
        INSERT INTO seen VALUES ('builtin', current_setting('lock_timeout'));
    """)
    project.write("lanconnect", "002_seen.sql", """
        \\set by psql
        INSERT INTO seen VALUES (:'by', current_setting('lock_timeout'));
    """)
    # the SET values follow the tool's RESET ALL after each file: a later file still has them
    project.write("lanconnect", "003_seen.sql", "INSERT INTO seen VALUES ('later', current_setting('lock_timeout'));")
    result = project.run("migrate", env={"MIGRATE_SQL_LOCK_TIMEOUT": "250ms"})
    assert result.code == 0, result.err
    assert "the server refused startup options (a pooler such as PgBouncer?): lock_timeout set with SET" in result.err
    assert db.query("SELECT by, lock_timeout FROM seen ORDER BY 1") == [("builtin", "250ms"), ("later", "250ms"),
                                                                  ("psql", "250ms")]
    assert db.history() == [("001", "applied"), ("002", "applied"), ("003", "applied")]
