"""psycopg2, and only here: connecting, waiting for the server, the run lock, error facts.

Waiting retries fast (50 ms doubling to 1 s) because this runs at every container start;
errors that retrying cannot fix (bad password, unknown database or host) fail at once.
The run lock is a session advisory lock polled with pg_try_advisory_lock, never an
unbounded blocking call, so a stuck runner turns into a clear timeout naming the holder.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from migrate.errors import ConfigError, LockTimeout, UnreachableError
from migrate.settings import Settings, scrub

log = logging.getLogger("migrate")

PERMANENT_CONNECT_ERRORS = (
    "password authentication failed",
    "no password supplied",
    "does not exist",  # role or database
    "could not translate host name",
    "name or service not known",
    "nodename nor servname",
    "no pg_hba.conf entry",
    "permission denied for database",
    "invalid connection option",
    "invalid sslmode",
    "server does not support ssl",
    "certificate verify failed",
)
TRANSIENT_CONNECT_ERRORS = ("temporary failure in name resolution", "the database system is")
# Retry and lock polls grow from 50 ms to at most this: a poll of a local server costs well under
# a millisecond, and a 1 s step let migrations start up to a second after the server (or the lock)
# became available (bench/RESULTS.md: target 250 ms).
MAX_POLL_INTERVAL = 0.1


@dataclass(frozen=True)
class ServerError:
    """What PostgreSQL said about a failed statement, as plain facts."""

    sqlstate: str
    message: str
    detail: str | None
    hint: str | None
    position: int | None
    context: str | None


def connection_params(settings: Settings) -> dict[str, str]:
    """libpq keywords for this environment; starts the embedded server when it is used."""
    params = dict(settings.connection)
    if settings.embedded_pgdata is not None:
        from migrate.embedded import ensure_running

        params.update(ensure_running(settings.embedded_pgdata))
        params.pop("password", None)
        params.pop("sslmode", None)
    params.setdefault("application_name", settings.application_name)
    return params


def connect(params: Mapping[str, str], secrets: list[str], connect_timeout: float | None = None) -> Any:
    """One autocommit connection; the caller decides transactions explicitly."""
    import psycopg2

    kwargs = dict(params)
    if connect_timeout is not None and "connect_timeout" not in kwargs:
        kwargs["connect_timeout"] = str(max(2, int(connect_timeout)))
    try:
        connection = psycopg2.connect(**kwargs)
    except psycopg2.OperationalError as error:
        raise UnreachableError(first_line(scrub(str(error), secrets))) from None
    except psycopg2.ProgrammingError as error:
        raise ConfigError(f"invalid connection settings: {first_line(scrub(str(error), secrets))}") from None
    connection.autocommit = True
    return connection


def first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    if not lines:
        return "unknown error"
    # libpq puts the useful part ("FATAL: ...") on the last line of a multi-host message
    for line in lines:
        if "FATAL:" in line or "error:" in line.lower():
            return line
    return lines[0]


def is_permanent(message: str) -> bool:
    lowered = message.lower()
    if any(word in lowered for word in TRANSIENT_CONNECT_ERRORS):
        return False
    return any(word in lowered for word in PERMANENT_CONNECT_ERRORS)


def wait_until_ready(
    settings: Settings,
    timeout: float | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    require_primary: bool = False,
) -> Any:
    """An open, ready connection; retries transient failures until `timeout` seconds pass."""
    timeout = settings.max_wait if timeout is None else timeout
    deadline = time.monotonic() + timeout
    params = connection_params(settings)
    where = settings.masked_dsn(params)
    delay = 0.05
    attempts = 0
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        try:
            connection = connect(params, settings.secrets(), connect_timeout=min(max(remaining, 2), 10))
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_is_in_recovery()")
                in_recovery = cursor.fetchone()[0]
            if require_primary and in_recovery:
                connection.close()
                raise UnreachableError(
                    f"{where} is a read-only standby; point DATABASE_URL at the primary server"
                )
            if attempts > 1:
                log.info("database ready after %d attempts", attempts)
            return connection
        except UnreachableError as error:
            if is_permanent(error.message) or "read-only standby" in error.message:
                raise UnreachableError(f"cannot connect to {where}: {error.message}") from None
            last = error.message
        except Exception as error:  # server went away between connect and SELECT 1
            last = first_line(scrub(str(error), settings.secrets()))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UnreachableError(
                f"database at {where} not ready after {timeout:g} s ({attempts} attempts): {last}; "
                "check that the server is running, or raise MAX_WAIT_TIME"
            )
        log.debug("database not ready (%s); retrying in %.2f s", last, delay)
        sleep(min(delay, remaining))
        delay = min(delay * 2, settings.wait_max_interval, MAX_POLL_INTERVAL)


def lock_key(schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for one app schema."""
    digest = hashlib.sha256(f"migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def ensure_session_is_pinned(connection: Any, settings: Settings) -> None:
    """Refuse transaction-mode poolers: they cannot hold a session lock for us."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        first = cursor.fetchone()[0]
        cursor.execute("SELECT pg_backend_pid()")
        second = cursor.fetchone()[0]
    if first != second:
        port = settings.connection.get("port", "")
        raise ConfigError(
            f"the connection to {settings.masked_dsn()} goes through a transaction-mode pooler "
            f"(port {port}): each transaction lands on another server session, so the run lock "
            "cannot be held; use the pooler's session mode (Supavisor/PgBouncer port 5432) or a "
            "direct connection"
        )


def acquire_run_lock(
    connection: Any,
    settings: Settings,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_wait: Callable[[str], None] | None = None,
) -> None:
    """Hold the schema's advisory lock for this session, polling until the lock timeout."""
    key = lock_key(settings.schema)
    deadline = time.monotonic() + settings.lock_timeout
    delay = 0.05
    announced = False
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            if cursor.fetchone()[0]:
                return
            # who holds it is asked only when told (pg_locks x pg_stat_activity is no poll for 7 waiters)
            if not announced and on_wait is not None:
                on_wait(describe_lock_holder(connection, key))
                announced = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                holder = describe_lock_holder(connection, key)
                raise LockTimeout(
                    f"another migration run holds the lock on schema {settings.schema!r} ({holder}) "
                    f"after waiting {settings.lock_timeout:g} s; let it finish, or raise MIGRATE_LOCK_TIMEOUT"
                )
            sleep(min(delay, remaining))
            delay = min(delay * 2, MAX_POLL_INTERVAL)


def describe_lock_holder(connection: Any, key: int) -> str:
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    high, low = unsigned >> 32, unsigned & 0xFFFFFFFF
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.pid, coalesce(host(a.client_addr), 'local socket'), a.application_name,
                   now() - a.backend_start
              FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted
               AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid AND l.objsubid = 1
            """,
            (high, low),
        )
        row = cursor.fetchone()
    if row is None:
        return "holder not visible"
    return f"held by pid {row[0]} from {row[1]}, application {row[2] or '(none)'!r}"


def server_error(error: Exception) -> ServerError:
    """The SQLSTATE, message and position of a psycopg2 error."""
    diag = getattr(error, "diag", None)
    position = getattr(diag, "statement_position", None)
    return ServerError(
        sqlstate=getattr(error, "pgcode", None) or "",
        message=(getattr(diag, "message_primary", None) or first_line(str(error))),
        detail=getattr(diag, "message_detail", None),
        hint=getattr(diag, "message_hint", None),
        position=int(position) if position else None,
        context=getattr(diag, "context", None),
    )


def this_host() -> str:
    return socket.gethostname()
