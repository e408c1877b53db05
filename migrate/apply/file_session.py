"""The session migration files run in: as fresh for each file as psql's session per file was.

The earlier script ran every file with `psql -f`, each in a new session, and files rely on it:
a temp table, a prepared statement, an advisory lock, a LISTEN, a SET or SET ROLE of one file
must not reach the next, and a database or role default that a file changed (ALTER DATABASE
... SET, also through EXECUTE) must apply to the files after it.

Mechanism, chosen by measurement (bench/RESULTS.md): one connection for the run, and after each
file what `DISCARD ALL` does (session authorization, settings, temp objects, prepared
statements, cursors, advisory locks, LISTEN, cached plans: everything a new session would not
have), sent as its nine parts at the end of the file's last message, after its COMMIT
(`closing_sql`): DISCARD ALL itself refuses multi-statement messages, and its own round trip
per file cost 0.1 ms here, where a new connection costs 2-6 ms. After a failure the session is
reset with a real DISCARD ALL before the failure is recorded (`clean`). None of it can bring in
defaults changed since the connection started, so the last message also reads a fingerprint of
`pg_db_role_setting`; when it changed, the next file gets a new connection.

The run lock is not here: it lives on a connection of its own (database.run_lock), so the
DISCARD ALL (or a file's own pg_advisory_unlock_all()) cannot release it.
"""

from __future__ import annotations

import logging
from typing import Any

from migrate.database.connection import Session, connect, connection_params
from migrate.database.run_lock import KEEPALIVES, enable_dead_client_check
from migrate.settings import Target

log = logging.getLogger("migrate")

# Any change to a database or role default (ALTER DATABASE/ROLE ... SET/RESET) writes a new row
# version of pg_db_role_setting, so the row versions' xmin say whether defaults changed. Cheap: a
# tiny catalog, read in the same message as a file's COMMIT.
# what DISCARD ALL runs, in the order its documentation gives, as statements a message may hold
DISCARD_EQUIVALENT = ("CLOSE ALL;\nSET SESSION AUTHORIZATION DEFAULT;\nRESET ALL;\nDEALLOCATE ALL;\nUNLISTEN *;\n"
                      "SELECT pg_advisory_unlock_all();\nDISCARD PLANS;\nDISCARD TEMP;\nDISCARD SEQUENCES;\n")
DEFAULTS_FINGERPRINT = ("SELECT coalesce(string_agg(xmin::text || ':' || setdatabase::text || ':' || setrole::text, "
                        "',' ORDER BY setdatabase, setrole), '') FROM pg_catalog.pg_db_role_setting")


class FileSession:
    """One connection that runs every file of a run, each file in a fresh session."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.session = self._open()
        self.defaults = self._read_defaults()
        self._dirty = False  # SQL ran since the session was last reset
        self._stale = False  # database or role defaults changed: reconnect before the next file

    @property
    def connection(self) -> Any:
        return self.session.connection

    def _open(self) -> Session:
        session = connect(dict(connection_params(self.target), **KEEPALIVES), self.target.secrets(), connect_timeout=10)
        enable_dead_client_check(session)
        if getattr(session.connection, "server_version", 0) >= 140000:
            # it waits, idle, while a psql child runs a file (and holds the file's fence): the server must
            # not end it for that; restored after every DISCARD ALL like the tool's other SETs
            session.set({"idle_session_timeout": "0"})
        return session

    def _read_defaults(self) -> str:
        with self.session.connection.cursor() as cursor:
            cursor.execute(DEFAULTS_FINGERPRINT)
            return str(cursor.fetchone()[0])

    def start_file(self) -> None:
        """Ready the session for the next file: a new one if defaults changed or it broke; a real DISCARD
        ALL if something ran on it without the closing reset (verify's second runs)."""
        if self._stale or self.session.closed:
            self.reopen()
        elif self._dirty:
            self._discard()
        self._dirty = True

    def closing_sql(self, wal_position: bool = False) -> str:
        """To follow a file's COMMIT in its last message: the reset, the tool's SETs again, and the defaults
        fingerprint (with wal_position, also where the WAL ends: the flush that makes the commit durable)."""
        restore = self.session.restore_sql
        fingerprint = (f"SELECT ({DEFAULTS_FINGERPRINT}), pg_current_wal_insert_lsn()::text" if wal_position
                       else DEFAULTS_FINGERPRINT)
        return DISCARD_EQUIVALENT + (restore + ";\n" if restore else "") + fingerprint

    def finished(self, defaults: str | None, reset: bool = True) -> None:
        """A file ran to its end; `defaults` is the fingerprint read with its last message (None: read it now;
        if that fails the next file gets a new session: the file itself is done and recorded). reset: the
        closing SQL ran (or nothing ran on this session)."""
        if reset:
            self._dirty = False
        if defaults is None:
            try:
                defaults = self._read_defaults()
            except Exception:  # the session broke after the file committed: start the next file afresh
                self._stale = True
                return
        if defaults != self.defaults:
            log.debug("database or role defaults changed: the next file gets a new session")
            self.defaults = defaults
            self._stale = True

    def clean(self) -> None:
        """After a failure: end any transaction and make the session fresh (no role, no settings of the
        file), reconnecting when the session is gone, so the failure is recorded as the tool's own user."""
        try:
            if not self.session.closed:
                self._discard()
                return
        except Exception:  # the session broke: a new one records the failure
            pass
        self.reopen()

    def _discard(self) -> None:
        connection = self.session.connection
        with connection.cursor() as cursor:
            if connection.info.transaction_status != 0:  # not idle: a transaction (or its error) is open
                cursor.execute("ROLLBACK")
            cursor.execute("DISCARD ALL")  # alone: it refuses multi-statement messages
            if self.session.restore_sql:
                cursor.execute(self.session.restore_sql)
        self._dirty = False

    def reopen(self) -> None:
        """A new connection in place of the old one (defaults changed, or the old one is gone)."""
        try:
            self.session.close()
        except Exception:  # already gone
            pass
        self.session = self._open()
        self.defaults = self._read_defaults()
        self._dirty = self._stale = False

    def close(self) -> None:
        self.session.close()
