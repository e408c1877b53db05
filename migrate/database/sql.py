"""SQL helpers every writer shares: quoted names safe beside %s, literal filling, one transaction helper.

Identifiers from configuration (the app schema, table names) always go through
psycopg2.sql.Identifier, never pasted into SQL text.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def param_identifier(connection: Any, *names: str) -> Any:
    """A quoted name for a query that also takes %s parameters: its own `%` doubled, which
    psycopg2 would otherwise read as a placeholder (a schema named `app%s` broke the query)."""
    from psycopg2 import sql

    return sql.SQL(sql.Identifier(*names).as_string(connection).replace("%", "%%"))


def fill(connection: Any, template: str, values: tuple[Any, ...]) -> str:
    """`template`'s %s placeholders replaced by `values` quoted as SQL literals for this connection
    (mogrify, in C: composing with psycopg2.sql per migration cost ~0.1 ms, bench/RESULTS.md)."""
    from psycopg2.extensions import encodings

    with connection.cursor() as cursor:
        return cursor.mogrify(template, values).decode(encodings[connection.encoding])


@contextmanager
def transaction(connection: Any) -> Iterator[Any]:
    """BEGIN, the caller's statements on the yielded cursor, COMMIT; ROLLBACK on any error.

    The one hand-written transaction of the package (dbmate's doTransaction): repair,
    baseline and schema resets go through it. The apply hot path joins BEGIN and COMMIT to
    its first and last statements instead, to keep a one-statement file at one round trip.
    """
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        try:
            yield cursor
            cursor.execute("COMMIT")
        except BaseException:
            if not connection.closed:
                try:
                    cursor.execute("ROLLBACK")
                except Exception:  # the server went away: nothing is left to roll back
                    pass
            raise
