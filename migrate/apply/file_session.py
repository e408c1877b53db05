"""The session migration files run in: as fresh for each file as psql's session per file was.

The earlier script ran every file with `psql -f`, each in a new session, and files rely on it:
a temp table, a prepared statement, an advisory lock, a LISTEN, a SET or SET ROLE of one file
must not reach the next, and a database or role default that a file changed (ALTER DATABASE
... SET, also through EXECUTE) must apply to the files after it.

Mechanism, chosen by measurement (bench/RESULTS.md): one connection for the run, and between
two files `DISCARD ALL` (session authorization, settings, temp objects, prepared statements,
cursors, advisory locks, LISTEN, cached plans: everything a new session would not have; about
0.1 ms, where a new connection costs 2-6 ms). DISCARD ALL cannot bring in defaults changed
since the connection started, so the last message of every file also reads a fingerprint of
`pg_db_role_setting`; when it changed, the next file gets a new connection instead.

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
DEFAULTS_FINGERPRINT = ("SELECT coalesce(string_agg(xmin::text || ':' || setdatabase::text || ':' || setrole::text, "
                        "',' ORDER BY setdatabase, setrole), '') FROM pg_catalog.pg_db_role_setting")


class FileSession:
    """One connection that runs every file of a run, each file in a fresh session."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.session = self._open()
        self.defaults = self._read_defaults()
        self._dirty = False  # a file ran since the last DISCARD ALL
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

    def prepare(self) -> str:
        """Make the session fresh for the next file; the SQL to send first in that file's first message
        (the SETs the tool itself made on the session, which DISCARD ALL undid)."""
        if self._stale or self.session.closed:
            self.reopen()
        elif self._dirty:
            with self.session.connection.cursor() as cursor:
                cursor.execute("DISCARD ALL")  # alone: it refuses multi-statement messages
        self._dirty = True
        restore = self.session.restore_sql
        return restore + ";\n" if restore else ""

    def finished(self, defaults: str | None) -> None:
        """A file ran to its end; `defaults` is the fingerprint read with its last message (None: read it now;
        if that fails the next file gets a new session: the file itself is done and recorded)."""
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
                connection = self.session.connection
                with connection.cursor() as cursor:
                    if connection.info.transaction_status != 0:  # not idle: a transaction (or its error) is open
                        cursor.execute("ROLLBACK")
                    cursor.execute("DISCARD ALL")
                    if self.session.restore_sql:
                        cursor.execute(self.session.restore_sql)
                self._dirty = False
                return
        except Exception:  # the session broke: a new one records the failure
            pass
        self.reopen()

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
