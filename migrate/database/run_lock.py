"""The run lock and the session that holds it: what every writing command starts with.

`migrate` holds the lock on a connection of its own (`RunLock`) that runs no migration SQL:
nothing a file does (DISCARD ALL, pg_advisory_unlock_all(), RESET) can release it. That
connection is kept alive (keepalives, no idle timeouts) and checked before every version;
if the server ends it anyway, the run stops before the next version (`RunLockLost`), and the
per-version fence (history.recorder.fence_sql) keeps a version from being applied twice by a
runner that took the lock meanwhile. repair, baseline and reset run no file: they hold the
lock on the session they work on (`open_locked_session`).

The run lock is a session advisory lock polled with pg_try_advisory_lock, never an
unbounded blocking call, so a stuck runner turns into a clear timeout naming the holder.
Transaction-mode poolers are refused: they cannot hold a session lock.
"""

from __future__ import annotations

import hashlib
import logging
import os
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from migrate.database.connection import MAX_POLL_INTERVAL, Session, connect, connection_params, wait_until_ready
from migrate.errors import EXIT_LOCK, ConfigError, LockTimeout, MigrateError

if TYPE_CHECKING:
    from migrate.settings import Target

log = logging.getLogger("migrate")


def lock_key(schema: str) -> int:
    """A stable signed 64-bit advisory-lock key for one app schema."""
    digest = hashlib.sha256(f"migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def require_pinned_session(session: Session, reconnect: Callable[[], Session]) -> None:
    """Refuse transaction-mode poolers: they cannot hold a session lock for us.

    Two signals, because a lone client of PgBouncer usually gets the same server session
    back for every transaction (the pool hands out its most recently used one):
    our backend pid changes between two transactions, or a second connection, opened
    while ours is idle, lands on our backend (impossible without a pooler in between).
    The second connection keeps a transaction open while ours asks again, so ours must
    move to another backend if it is pooled.
    """
    connection = session.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), host(inet_server_addr()), inet_server_port(), "
                       "host(inet_client_addr()), inet_client_port()")
        first, *server_view = cursor.fetchone()
    probe_pid = None
    probe = None
    if not _is_end_to_end_tcp(connection, server_view):
        try:
            probe = reconnect()
        except Exception as error:  # too many connections, say: the first signal still applies
            log.debug("pooler probe connection failed (%s)", error)
    try:
        if probe is not None:
            with probe.connection.cursor() as probe_cursor:
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
        from migrate.settings import masked_dsn

        port = session.params.get("port", "")
        raise ConfigError(
            f"the connection to {masked_dsn(session.params)} goes through a transaction-mode pooler "
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
    session: Session,
    schema: str,
    run_lock_timeout: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_wait: Callable[[str], None] | None = None,
) -> None:
    """Hold the schema's advisory lock for this session, polling until the lock timeout."""
    key = lock_key(schema)
    connection = session.connection
    deadline = time.monotonic() + run_lock_timeout
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
                    f"another migration run holds the lock on schema {schema!r} ({holder}) "
                    f"after waiting {run_lock_timeout:g} s; let it finish, or raise MIGRATE_LOCK_TIMEOUT"
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


def read_run_lock_holder(connection: Any, schema: str) -> str | None:
    """Who holds the schema's run lock now, as describe_lock_holder says it; None when no one does.

    Read from pg_locks only (no lock is taken), so drift can ask a production database whether a
    deploy is under way without ever standing in its way; any user can read pg_locks (the holder's
    address and application need pg_read_all_stats, else they show as unknown).
    """
    unsigned = lock_key(schema) & 0xFFFFFFFFFFFFFFFF
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT l.pid
              FROM pg_catalog.pg_locks l
             WHERE l.locktype = 'advisory' AND l.granted
               AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
               AND l.classid = %s::bigint::oid AND l.objid = %s::bigint::oid AND l.objsubid = 1
            """,
            (unsigned >> 32, unsigned & 0xFFFFFFFF),
        )
        row = cursor.fetchone()
    if row is None:
        return None
    holder = describe_lock_holder(connection, lock_key(schema))
    return holder if holder != "holder not visible" else f"held by pid {row[0]}"


def enable_dead_client_check(session: Session, interval_ms: int = 1000) -> None:
    """Have the server abort our work if this process dies (PostgreSQL 14+, Linux servers).

    Without it, a runner killed during a long statement leaves its backend running: the
    statement and a COMMIT already sent with it would still commit after the runner is gone,
    and the run lock stays held until the server notices. With it, the server checks the
    socket every `interval_ms` and rolls the transaction back, releasing the lock.
    """
    if getattr(session.connection, "server_version", 0) < 140000:
        return
    session.set({"client_connection_check_interval": str(int(interval_ms))})


def open_locked_session(target: Target, schema: str, run_lock_timeout: float) -> Session:
    """A session on the primary that holds the run lock: what every writing command starts with.

    Refuses transaction-mode poolers, asks the server to notice a dead client (so a killed
    runner's work is rolled back and its lock freed), then waits for the lock.
    """
    session = wait_until_ready(target, require_primary=True)
    try:
        require_pinned_session(session, lambda: connect(connection_params(target), target.secrets(),
                                                          connect_timeout=5))
        enable_dead_client_check(session)
        acquire_run_lock(session, schema, run_lock_timeout,
                         on_wait=lambda holder: log.info("waiting for the run lock (%s)", holder))
    except BaseException:
        session.close()
        raise
    return session


# The lock connection only sleeps between checks: the server must not end it for being idle, and a
# proxy or NAT that silently drops it is noticed by TCP keepalives within about a minute.
KEEPALIVES = {"keepalives": "1", "keepalives_idle": "20", "keepalives_interval": "10", "keepalives_count": "3"}
NEVER_IDLE_OUT = {"idle_in_transaction_session_timeout": "0", "statement_timeout": "0"}


class RunLockLost(MigrateError):
    """The connection holding the run lock is gone: another runner may hold it now."""

    exit_code = EXIT_LOCK


class RunLock:
    """The run lock, held by a session of its own that never runs migration SQL.

    It also reads the history (reading is not migration SQL), so a run with nothing to do needs
    no other connection.
    """

    def __init__(self, session: Session, schema: str) -> None:
        self.session = session
        self.schema = schema
        self.guard = threading.Lock()  # the run's flusher thread uses this session too (flush())

    def flushed_lsn(self) -> int | None:
        """How far the server's WAL is flushed to disk (None if this session cannot say): a migration
        that committed without waiting for its flush is durable once this passes its commit."""
        with self.guard:
            try:
                with self.session.connection.cursor() as cursor:
                    cursor.execute("SELECT pg_current_wal_flush_lsn()::text")
                    return lsn_number(cursor.fetchone()[0])
            except Exception:  # the session is gone: check() says so before the next version
                return None

    def check(self) -> None:
        """Raise RunLockLost when the lock's session is gone (asked before every version).

        An idle session the server ended has a termination message waiting on its socket: only
        then is a round trip made to be sure, so a healthy check costs one select() call.
        """
        connection = self.session.connection
        with self.guard:
            if not connection.closed:
                readable, _, _ = select.select([connection.fileno()], [], [], 0)
                if not readable:
                    return
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT 1")
                    return
                except Exception:  # the server ended the session: the lock went with it
                    pass
        raise RunLockLost(
            f"the session holding the run lock on schema {self.schema!r} was ended by the server (or the network); "
            "another runner may hold the lock now, so this run stopped before its next version; every version "
            "recorded as applied is complete: run migrate again"
        )

    def close(self) -> None:
        self.session.close()


def open_run_lock(target: Target, schema: str, run_lock_timeout: float) -> RunLock:
    """Connect (keepalives on), refuse poolers, and wait for the run lock on a session of its own."""
    params = dict(connection_params(target), **KEEPALIVES)
    session = wait_until_ready(target, require_primary=True, params=params)
    try:
        require_pinned_session(session, lambda: connect(params, target.secrets(), connect_timeout=5))
        enable_dead_client_check(session)
        values = dict(NEVER_IDLE_OUT)
        if getattr(session.connection, "server_version", 0) >= 140000:
            values["idle_session_timeout"] = "0"
        session.set(values)
        acquire_run_lock(session, schema, run_lock_timeout,
                         on_wait=lambda holder: log.info("waiting for the run lock (%s)", holder))
    except BaseException:
        session.close()
        raise
    return RunLock(session, schema)


def lsn_number(text: str) -> int:
    """A pg_lsn's text (`16/B374D848`) as a number that orders like the LSN."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def version_lock_key(schema: str, track: str, version: str) -> int:
    """The advisory-lock key of one version (the fence): distinct from the run lock's key."""
    return lock_key(f"{schema}\0{track}\0{version}")
