"""Connecting: libpq keywords from a Target, one session, waiting for the server, error facts.

Waiting retries fast (50 ms doubling to 1 s) because this runs at every container start;
errors that retrying cannot fix (bad password, unknown database or host) fail at once.
Every connection comes back as a `Session`: a psycopg2 connection plus what the tool knows
about it, the libpq keywords it was opened with (a psql child reuses them) and the SETs the
tool made on it, which a migration's `RESET ALL` undoes and the runner sends again.
"""

from __future__ import annotations

import logging
import re
import socket
import time
from typing import Any, Callable, Mapping, NamedTuple

from migrate.errors import ConfigError, UnreachableError
from migrate.settings import Target, scrub

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


class Session:
    """An autocommit connection, the keywords it was opened with, and the SETs the tool made on it."""

    def __init__(self, connection: Any, params: Mapping[str, str], secrets: list[str]) -> None:
        self.connection = connection
        self.params = dict(params)
        self.secrets = secrets
        # the SETs this tool made after connecting (not startup options, which RESET ALL keeps): the
        # runner's RESET ALL after each file undoes them, so they are sent again after every reset
        self.restore_sql = ""
        # the startup options a pooler refused, as SETs (a psql child sends them first)
        self.refused_options_sql = ""

    @property
    def closed(self) -> bool:
        return bool(self.connection.closed)

    def close(self) -> None:
        self.connection.close()

    def set(self, values: Mapping[str, str]) -> None:
        """SET session values, remembered in restore_sql so they can be set again after a RESET ALL."""
        if not values:
            return
        from psycopg2 import sql

        query = sql.SQL("; ").join(sql.SQL("SET {} = {}").format(sql.Identifier(name), sql.Literal(value))
                                   for name, value in values.items()).as_string(self.connection)
        with self.connection.cursor() as cursor:
            cursor.execute(query)
        # a later SET of the same name comes later: it wins; composed once, sent after every reset
        self.restore_sql = f"{self.restore_sql}; {query}" if self.restore_sql else query


class ServerError(NamedTuple):
    """What PostgreSQL said about a failed statement, as plain facts."""

    sqlstate: str
    message: str
    detail: str | None
    hint: str | None
    position: int | None
    context: str | None


def connection_params(target: Target) -> dict[str, str]:
    """libpq keywords for this target; starts the embedded server when it is used.

    A target without a host is refused: libpq would fill it from PGHOST or its own default and
    reach whatever server this machine runs (settings refuse it first, naming the setting).
    """
    params = dict(target.connection)
    if target.embedded_pgdata is None and not (params.get("host") or params.get("hostaddr")):
        raise ConfigError("no database server is named (no host); set DATABASE_URL or POSTGRES_HOST")
    if target.embedded_pgdata is not None:
        from migrate.database.embedded import ensure_running

        params.update(ensure_running(target.embedded_pgdata))
        params.pop("password", None)
        params.pop("sslmode", None)
    params.setdefault("application_name", target.application_name)
    # the tool sends and reads UTF-8 whatever the database's encoding (a SQL_ASCII database with a
    # non-ASCII RAISE NOTICE gave a UnicodeEncodeError traceback); psql children get PGCLIENTENCODING
    params["client_encoding"] = "UTF8"
    session_options = migration_session_options(target)
    if session_options:
        params["options"] = " ".join(filter(None, [params.get("options", ""), session_options]))
    return params


def migration_session_options(target: Target) -> str:
    """lock_timeout / statement_timeout as startup options: session defaults that RESET ALL keeps."""
    options = []
    if target.lock_timeout is not None:
        options.append(f"-c lock_timeout={target.lock_timeout}")
    if target.statement_timeout is not None:
        options.append(f"-c statement_timeout={target.statement_timeout}")
    return " ".join(options)


def connect(params: Mapping[str, str], secrets: list[str], connect_timeout: float | None = None) -> Session:
    """One autocommit session; the caller decides transactions explicitly."""
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
    session = Session(connection, kwargs, secrets)
    if kwargs.get("options"):
        _set_ignored_options(session, kwargs["options"])  # Supavisor may ignore them silently
    return session


OPTION_PAIR = re.compile(r"(?:-c\s*|--)([A-Za-z_][\w.]*)=(\S+)")


def startup_settings(options: str) -> dict[str, str]:
    """The `-c name=value` / `--name=value` pairs of a libpq options string."""
    return {name.replace("-", "_"): value for name, value in OPTION_PAIR.findall(options or "")}


def _connect_then_set(kwargs: dict[str, str], secrets: list[str]) -> Session:
    """A pooler refused the startup options: connect without them and SET them for the session.
    SET values are session values, so a migration's RESET ALL would clear them; said once."""
    options = kwargs.pop("options")
    session = connect(kwargs, secrets)
    wanted = startup_settings(options)
    session.set(wanted)
    session.refused_options_sql = session.restore_sql
    log.warning("the server refused startup options (a pooler such as PgBouncer?): %s set with SET instead, "
                "which a migration's own RESET ALL clears until its file ends", ", ".join(sorted(wanted)) or "nothing")
    return session


def _set_ignored_options(session: Session, options: str) -> None:
    wanted = startup_settings(options)
    if not wanted:
        return
    with session.connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_settings WHERE name = ANY(%s) AND source <> 'client'", (list(wanted),))
        ignored = {row[0] for row in cursor.fetchall()}
    if ignored:
        session.set({name: wanted[name] for name in ignored})
        log.debug("startup options ignored by the server for %s: set with SET instead", ", ".join(sorted(ignored)))


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
    target: Target,
    timeout: float | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    require_primary: bool = False,
    params: Mapping[str, str] | None = None,
    read_only: bool = False,
) -> Session:
    """An open, ready session; retries transient failures until `timeout` seconds pass.

    params: the libpq keywords to use instead of the target's own (verify's scratch database).
    read_only: a person waits for status, dry-run or history: by default give up after the target's
    read_wait (MIGRATE_READ_TIMEOUT, ~10 s), not MAX_WAIT_TIME (a container waiting for its server).
    """
    setting = "MAX_WAIT_TIME"
    if timeout is None:
        timeout = target.max_wait
        if read_only and target.read_wait < timeout:
            timeout, setting = target.read_wait, "MIGRATE_READ_TIMEOUT"
    deadline = time.monotonic() + timeout
    params = connection_params(target) if params is None else params
    where = target.masked_dsn(params)
    delay = 0.05
    attempts = 0
    while True:
        attempts += 1
        remaining = deadline - time.monotonic()
        try:
            session = connect(params, target.secrets(), connect_timeout=min(max(remaining, 2), 10))
            with session.connection.cursor() as cursor:
                cursor.execute("SELECT pg_is_in_recovery()")
                in_recovery = cursor.fetchone()[0]
            if require_primary and in_recovery:
                session.close()
                raise UnreachableError(
                    f"{where} is a read-only standby; point DATABASE_URL at the primary server"
                )
            if attempts > 1:
                log.info("database ready after %d attempts", attempts)
            return session
        except UnreachableError as error:
            if is_permanent(error.message) or "read-only standby" in error.message:
                raise UnreachableError(f"cannot connect to {where}: {error.message}") from None
            last = error.message
        except Exception as error:  # server went away between connect and SELECT 1
            last = first_line(scrub(str(error), target.secrets()))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UnreachableError(
                f"database at {where} not ready after {timeout:g} s ({attempts} attempts): {last}; "
                f"check that the server is running, or raise {setting}"
            )
        if attempts == 1:  # say once what the wait is for, and for how long
            log.info("waiting up to %g s for the database at %s (%s)", timeout, where, last)
        log.debug("database not ready (%s); retrying in %.2f s", last, delay)
        sleep(min(delay, remaining))
        delay = min(delay * 2, target.wait_max_interval, MAX_POLL_INTERVAL)


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


