"""psycopg2, and only here: connecting, waiting for the server, the run lock, error facts.

Waiting retries fast (50 ms doubling to 1 s) because this runs at every container start;
errors that retrying cannot fix (bad password, unknown database or host) fail at once.
The run lock is a session advisory lock polled with pg_try_advisory_lock, never an
unbounded blocking call, so a stuck runner turns into a clear timeout naming the holder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import time
import weakref
from typing import Any, Callable, Mapping, NamedTuple

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
# The SETs this tool made on a session after connecting (not startup options, which RESET ALL keeps):
# the runner's RESET ALL after each file undoes them, so they are sent again after every reset.
_SESSION_RESTORE: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


class ServerError(NamedTuple):
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
    session_options = migration_session_options(settings)
    if session_options:
        params["options"] = " ".join(filter(None, [params.get("options", ""), session_options]))
    return params


def migration_session_options(settings: Settings) -> str:
    """lock_timeout / statement_timeout as startup options: session defaults that RESET ALL keeps."""
    options = []
    if settings.sql_lock_timeout is not None:
        options.append(f"-c lock_timeout={settings.sql_lock_timeout}")
    if settings.statement_timeout is not None:
        options.append(f"-c statement_timeout={settings.statement_timeout}")
    return " ".join(options)


def connect(params: Mapping[str, str], secrets: list[str], connect_timeout: float | None = None) -> Any:
    """One autocommit connection; the caller decides transactions explicitly."""
    import psycopg2

    kwargs = dict(params)
    if connect_timeout is not None and "connect_timeout" not in kwargs:
        kwargs["connect_timeout"] = str(max(2, int(connect_timeout)))
    try:
        connection = psycopg2.connect(**kwargs)
    except psycopg2.OperationalError as error:
        if kwargs.get("options") and "unsupported startup parameter" in str(error):
            return _connect_then_set(kwargs, secrets)  # PgBouncer refuses startup options
        raise UnreachableError(first_line(scrub(str(error), secrets))) from None
    except psycopg2.ProgrammingError as error:
        raise ConfigError(f"invalid connection settings: {first_line(scrub(str(error), secrets))}") from None
    connection.autocommit = True
    if kwargs.get("options"):
        _set_ignored_options(connection, kwargs["options"])  # Supavisor may ignore them silently
    return connection


OPTION_PAIR = re.compile(r"(?:-c\s*|--)([A-Za-z_][\w.]*)=(\S+)")


def startup_settings(options: str) -> dict[str, str]:
    """The `-c name=value` / `--name=value` pairs of a libpq options string."""
    return {name.replace("-", "_"): value for name, value in OPTION_PAIR.findall(options or "")}


def _connect_then_set(kwargs: dict[str, str], secrets: list[str]) -> Any:
    """A pooler refused the startup options: connect without them and SET them for the session.
    SET values are session values, so a migration's RESET ALL would clear them; said once."""
    options = kwargs.pop("options")
    connection = connect(kwargs, secrets)
    wanted = startup_settings(options)
    _set(connection, wanted)
    log.warning("the server refused startup options (a pooler such as PgBouncer?): %s set with SET instead, "
                "which a migration's own RESET ALL clears until its file ends", ", ".join(sorted(wanted)) or "nothing")
    return connection


def _set_ignored_options(connection: Any, options: str) -> None:
    wanted = startup_settings(options)
    if not wanted:
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_settings WHERE name = ANY(%s) AND source <> 'client'", (list(wanted),))
        ignored = {row[0] for row in cursor.fetchall()}
    if ignored:
        _set(connection, {name: wanted[name] for name in ignored})
        log.debug("startup options ignored by the server for %s: set with SET instead", ", ".join(sorted(ignored)))


def _set(connection: Any, values: dict[str, str]) -> None:
    """SET session values, remembered so session_restore_sql can set them again after a RESET ALL."""
    if not values:
        return
    query = _set_sql(connection, values)
    with connection.cursor() as cursor:
        cursor.execute(query)
    earlier = _SESSION_RESTORE.get(connection)  # a later SET of the same name comes later: it wins
    _SESSION_RESTORE[connection] = f"{earlier}; {query}" if earlier else query  # composed once


def _set_sql(connection: Any, values: Mapping[str, str]) -> str:
    from psycopg2 import sql

    return sql.SQL("; ").join(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
                              for name, value in values.items()).as_string(connection)


def session_restore_sql(connection: Any) -> str:
    """The SETs this tool made on the session, to follow every `RESET ALL` ("" when it made none).

    Startup options (lock_timeout, statement_timeout) are session defaults that RESET ALL keeps;
    values the tool had to SET (client_connection_check_interval, a pooler's refused options)
    are not, and without this the first file's reset turned them off for the rest of the run.
    """
    return _SESSION_RESTORE.get(connection, "")


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
    """Refuse transaction-mode poolers: they cannot hold a session lock for us.

    Two signals, because a lone client of PgBouncer usually gets the same server session
    back for every transaction (the pool hands out its most recently used one):
    our backend pid changes between two transactions, or a second connection, opened
    while ours is idle, lands on our backend (impossible without a pooler in between).
    The second connection keeps a transaction open while ours asks again, so ours must
    move to another backend if it is pooled.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), host(inet_server_addr()), inet_server_port(), "
                       "host(inet_client_addr()), inet_client_port()")
        first, *server_view = cursor.fetchone()
    probe_pid = None
    probe = None
    if not _is_end_to_end_tcp(connection, server_view):
        try:
            probe = connect(connection_params(settings), settings.secrets(), connect_timeout=5)
        except Exception as error:  # too many connections, say: the first signal still applies
            log.debug("pooler probe connection failed (%s)", error)
    try:
        if probe is not None:
            with probe.cursor() as probe_cursor:
                probe_cursor.execute("BEGIN")
                probe_cursor.execute("SELECT pg_backend_pid()")
                probe_pid = probe_cursor.fetchone()[0]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            second = cursor.fetchone()[0]
    finally:
        if probe is not None:
            probe.close()
    if first != second or probe_pid == first:
        port = settings.connection.get("port", "")
        raise ConfigError(
            f"the connection to {settings.masked_dsn()} goes through a transaction-mode pooler "
            f"(port {port}): each transaction lands on another server session, so the run lock "
            "cannot be held; use the pooler's session mode (Supavisor/PgBouncer port 5432) or a "
            "direct connection"
        )


def _is_end_to_end_tcp(connection: Any, server_view: list[Any]) -> bool:
    """True when the server sees exactly our TCP socket's two ends: nothing sits in between.

    Then the probe connection (a few ms) is not needed. Unix sockets, NAT and proxies
    (including session-mode poolers) fail this test and get the probe instead.
    """
    import ipaddress

    server_addr, server_port, client_addr, client_port = server_view
    if server_addr is None or client_addr is None:
        return False
    try:
        with socket.socket(fileno=os.dup(connection.fileno())) as ours:
            if ours.family not in (socket.AF_INET, socket.AF_INET6):
                return False
            peer, local = ours.getpeername(), ours.getsockname()
        return (ipaddress.ip_address(peer[0]) == ipaddress.ip_address(server_addr) and peer[1] == server_port
                and ipaddress.ip_address(local[0]) == ipaddress.ip_address(client_addr)
                and local[1] == client_port)
    except (OSError, ValueError):
        return False


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
    """Who holds the run lock in this database (advisory locks are per database, pg_locks is not)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    high, low = unsigned >> 32, unsigned & 0xFFFFFFFF
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT a.pid, coalesce(host(a.client_addr), 'local socket'), a.application_name,
                   now() - a.backend_start
              FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
             WHERE l.locktype = 'advisory' AND l.granted
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
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


def enable_dead_client_check(connection: Any, interval_ms: int = 1000) -> None:
    """Have the server abort our work if this process dies (PostgreSQL 14+, Linux servers).

    Without it, a runner killed during a long statement leaves its backend running: the
    statement and a COMMIT already sent with it would still commit after the runner is gone,
    and the run lock stays held until the server notices. With it, the server checks the
    socket every `interval_ms` and rolls the transaction back, releasing the lock.
    """
    if getattr(connection, "server_version", 0) < 140000:
        return
    _set(connection, {"client_connection_check_interval": str(int(interval_ms))})


def open_locked_session(settings: Settings) -> Any:
    """A connection to the primary that holds the run lock: what every writing command starts with.

    Refuses transaction-mode poolers, asks the server to notice a dead client (so a killed
    runner's work is rolled back and its lock freed), then waits for the lock.
    """
    connection = wait_until_ready(settings, require_primary=True)
    try:
        ensure_session_is_pinned(connection, settings)
        enable_dead_client_check(connection)
        acquire_run_lock(connection, settings,
                         on_wait=lambda holder: log.info("waiting for the run lock (%s)", holder))
    except BaseException:
        connection.close()
        raise
    return connection
