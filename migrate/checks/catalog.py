"""Catalog and data fingerprints: what a set of schemas looks like and holds, by name, never by OID.

verify compares fingerprints taken before and after running a migration file. Keys are
human-readable object names ("column langconnect.documents.title") and values are the
definitions PostgreSQL itself prints (pg_get_indexdef, pg_get_functiondef, ...), so a file
that drops and recreates an object identically leaves the fingerprint unchanged, while a
changed default, a duplicated constraint or a new index shows up by name. Objects that belong
to an extension are not listed one by one: the extension is (name and version), so installing
pgvector into `extensions` is one object, not two hundred functions.

The data fingerprint (`read_data`) holds, per table, its row count and an order-independent hash
of its rows (and the same hash without its date/time columns, so a re-run that only moves an
`updated_at` can be told apart), and per sequence where it stands and which columns it feeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

SYSTEM_SCHEMA_FILTER = (
    "n.nspname NOT LIKE 'pg\\_%%' AND n.nspname <> 'information_schema'"
)


def _not_member(catalog: str, oid: str) -> str:
    """SQL: the object is not part of an extension (its members are the extension's, listed as one)."""
    return (f"NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = '{catalog}'::regclass AND x.objid = {oid} "
            "AND x.deptype = 'e')")


_RELATION = _not_member("pg_class", "c.oid")

# Each query returns (kind, schema, name, definition) rows for the schemas in %(schemas)s.
FINGERPRINT_QUERIES: tuple[str, ...] = (
    # schemas themselves (existence and privileges)
    """
    SELECT 'schema', n.nspname, '', coalesce(n.nspacl::text, '')
      FROM pg_namespace n WHERE n.nspname = ANY(%(schemas)s)
    """,
    # relations: tables, views, materialized views, sequences, foreign tables, composite types
    f"""
    SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                          WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                          WHEN 'f' THEN 'foreign table' ELSE 'composite type' END,
           n.nspname, c.relname,
           concat_ws(' | ', c.relkind::text, c.relpersistence::text, 'rls=' || c.relrowsecurity::text,
                     'force_rls=' || c.relforcerowsecurity::text, c.reloptions::text, c.relacl::text,
                     CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
                     CASE WHEN c.relkind = 'S' THEN
                         (SELECT concat_ws(' ', s.seqtypid::regtype::text, s.seqstart, s.seqincrement,
                                           s.seqmin, s.seqmax, s.seqcache, s.seqcycle)
                            FROM pg_sequence s WHERE s.seqrelid = c.oid) END)
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c') AND {_RELATION}
    """,
    # columns, with their position (a dropped and re-added column moves, and lost its data)
    f"""
    SELECT 'column', n.nspname, c.relname || '.' || a.attname,
           concat_ws(' | ', a.attnum::text, format_type(a.atttypid, a.atttypmod),
                     CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END,
                     'default ' || pg_get_expr(d.adbin, d.adrelid), nullif(a.attidentity, '')::text,
                     nullif(a.attgenerated, '')::text, co.collname::text, a.attacl::text)
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 0
                                AND co.collname <> 'default'
     WHERE n.nspname = ANY(%(schemas)s) AND a.attnum > 0 AND NOT a.attisdropped
       AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c') AND {_RELATION}
    """,
    # constraints of tables and of domains
    f"""
    SELECT 'constraint', n.nspname, coalesce(c.relname, t.typname) || '.' || con.conname,
           pg_get_constraintdef(con.oid)
      FROM pg_constraint con
      JOIN pg_namespace n ON n.oid = con.connamespace
      LEFT JOIN pg_class c ON c.oid = con.conrelid
      LEFT JOIN pg_type t ON t.oid = con.contypid
     WHERE n.nspname = ANY(%(schemas)s) AND {_not_member("pg_class", "con.conrelid")}
       AND {_not_member("pg_type", "con.contypid")}
    """,
    # indexes
    f"""
    SELECT 'index', n.nspname, ic.relname, pg_get_indexdef(i.indexrelid)
      FROM pg_index i
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_namespace n ON n.oid = ic.relnamespace
     WHERE n.nspname = ANY(%(schemas)s) AND {_not_member("pg_class", "i.indrelid")}
    """,
    # functions and procedures, with their full definition
    f"""
    SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
           n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           CASE WHEN p.prokind = 'a' THEN pg_get_function_result(p.oid)
                ELSE pg_get_functiondef(p.oid) END || coalesce(' | ' || p.proacl::text, '')
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = ANY(%(schemas)s) AND {_not_member("pg_proc", "p.oid")}
    """,
    # triggers written by users (not the internal ones behind foreign keys)
    f"""
    SELECT 'trigger', n.nspname, c.relname || '.' || t.tgname,
           pg_get_triggerdef(t.oid) || ' | enabled=' || t.tgenabled::text
      FROM pg_trigger t
      JOIN pg_class c ON c.oid = t.tgrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY(%(schemas)s) AND NOT t.tgisinternal AND {_RELATION}
    """,
    # row-level security policies
    f"""
    SELECT 'policy', n.nspname, c.relname || '.' || p.polname,
           concat_ws(' | ', p.polcmd::text, CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END,
                     (SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END, ',' ORDER BY r)
                        FROM unnest(p.polroles) AS r),
                     'using ' || pg_get_expr(p.polqual, p.polrelid),
                     'check ' || pg_get_expr(p.polwithcheck, p.polrelid))
      FROM pg_policy p
      JOIN pg_class c ON c.oid = p.polrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY(%(schemas)s) AND {_RELATION}
    """,
    # enum, domain, range and multirange types (composite types are relations above)
    f"""
    SELECT CASE t.typtype WHEN 'e' THEN 'enum' WHEN 'd' THEN 'domain' ELSE 'range type' END,
           n.nspname, t.typname,
           CASE t.typtype
                WHEN 'e' THEN (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                                 FROM pg_enum e WHERE e.enumtypid = t.oid)
                WHEN 'd' THEN concat_ws(' | ', format_type(t.typbasetype, t.typtypmod),
                                        CASE WHEN t.typnotnull THEN 'not null' END, t.typdefault)
                ELSE coalesce((SELECT r.rngsubtype::regtype::text FROM pg_range r WHERE r.rngtypid = t.oid), '')
           END
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE n.nspname = ANY(%(schemas)s) AND t.typtype IN ('e', 'd', 'r') AND {_not_member("pg_type", "t.oid")}
    """,
    # extensions, each one object (their members are left out above)
    """
    SELECT 'extension', n.nspname, e.extname, e.extversion
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE n.nspname = ANY(%(schemas)s)
    """,
)


def read_app_schemas(connection: Any, protected: tuple[str, ...] | list[str]) -> list[str]:
    """Every schema a migration may own: not a system schema, not a protected one."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT n.nspname FROM pg_namespace n WHERE {SYSTEM_SCHEMA_FILTER} "
            "AND NOT (n.nspname = ANY(%(protected)s)) ORDER BY 1",
            {"protected": list(protected)},
        )
        return [row[0] for row in cursor.fetchall()]


Fingerprint = dict[tuple[str, str, str], str]


@dataclass(frozen=True)
class Change:
    """One object that differs between two fingerprints."""

    verb: str  # added, removed, changed
    kind: str
    schema: str
    name: str

    def __str__(self) -> str:
        if self.kind == "schema":
            return f"{self.verb} schema {self.schema}"
        return f"{self.verb} {self.kind} {self.schema}.{self.name}"


def read_fingerprint(connection: Any, schemas: list[str] | tuple[str, ...]) -> Fingerprint:
    """(kind, schema, name) -> definition for every object of `schemas` (absent ones are empty)."""
    fingerprint: Fingerprint = {}
    if not schemas:
        return fingerprint
    with connection.cursor() as cursor:
        # pg_get_*def qualify names by the search_path, which migration files set as they please:
        # read under a fixed one so only real changes differ (SET LOCAL ends with the transaction)
        cursor.execute("BEGIN; SET LOCAL search_path = pg_catalog")
        try:
            for query in FINGERPRINT_QUERIES:
                cursor.execute(query, {"schemas": list(schemas)})
                for kind, schema, name, definition in cursor.fetchall():
                    fingerprint[(kind, schema, name)] = definition or ""
        finally:
            cursor.execute("COMMIT")
    return fingerprint


def diff_fingerprints(before: Fingerprint, after: Fingerprint) -> list[Change]:
    """What changed, one Change per object, ordered by schema and name."""
    changes = [Change("added", *key) for key in after.keys() - before.keys()]
    changes += [Change("removed", *key) for key in before.keys() - after.keys()]
    changes += [Change("changed", *key) for key in before.keys() & after.keys() if before[key] != after[key]]
    return sorted(changes, key=lambda c: (c.schema, c.name, c.kind, c.verb))


# ---- data ---------------------------------------------------------------------------------------


class TableData(NamedTuple):
    """What a table holds: its row count and order-independent hashes of its rows."""

    rows: int
    digest: str  # every column
    timeless: str  # without its date/time columns (now() defaults, touch triggers)


class SequenceState(NamedTuple):
    """Where a sequence stands and which columns it feeds (identity, serial, or a nextval default)."""

    last_value: int
    called: bool
    increment: int
    feeds: tuple[tuple[str, str, str], ...]  # (schema, table, column)

    @property
    def next_value(self) -> int:
        return self.last_value + self.increment if self.called else self.last_value

    def behind(self, other: SequenceState) -> bool:
        """Whether this state would hand out a value `other` had already passed (it moved back)."""
        return self.next_value < other.next_value if self.increment > 0 else self.next_value > other.next_value


DataPrint = dict[tuple[str, str, str], Any]  # ("table" | "sequence", schema, name) -> TableData | SequenceState

_TABLE_COLUMNS = f"""
    SELECT n.nspname, c.relname, a.attname, coalesce(b.typcategory, t.typcategory) = 'D'
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_type t ON t.oid = a.atttypid
      LEFT JOIN pg_type b ON b.oid = t.typbasetype AND t.typtype = 'd'
     WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p') AND NOT c.relispartition AND {_RELATION}
     ORDER BY 1, 2, a.attnum
"""
_SEQUENCES = f"""
    SELECT n.nspname, c.relname, s.seqincrement,
           (SELECT coalesce(json_agg(json_build_array(f.nspname, f.relname, f.attname)), '[]') FROM (
                SELECT tn.nspname, tc.relname, ta.attname
                  FROM pg_depend d
                  JOIN pg_class tc ON tc.oid = d.refobjid
                  JOIN pg_namespace tn ON tn.oid = tc.relnamespace
                  JOIN pg_attribute ta ON ta.attrelid = d.refobjid AND ta.attnum = d.refobjsubid
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
                   AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')
                UNION
                SELECT tn.nspname, tc.relname, ta.attname
                  FROM pg_depend d
                  JOIN pg_attrdef ad ON ad.oid = d.objid
                  JOIN pg_class tc ON tc.oid = ad.adrelid
                  JOIN pg_namespace tn ON tn.oid = tc.relnamespace
                  JOIN pg_attribute ta ON ta.attrelid = ad.adrelid AND ta.attnum = ad.adnum
                 WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid
           ) f)
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_sequence s ON s.seqrelid = c.oid
     WHERE n.nspname = ANY(%(schemas)s) AND c.relkind = 'S' AND {_RELATION}
     ORDER BY 1, 2
"""


def read_data(connection: Any, schemas: list[str] | tuple[str, ...]) -> DataPrint:
    """Row counts and hashes of every table of `schemas`, and every sequence's position (one snapshot).

    Read under search_path = pg_catalog, as the catalog fingerprint is: a row's text (a regclass, an
    enum of another schema) must not depend on the search_path a migration file set.
    """
    data: DataPrint = {}
    if not schemas:
        return data
    with connection.cursor() as cursor:
        cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SET LOCAL search_path = pg_catalog")
        try:
            cursor.execute(_TABLE_COLUMNS, {"schemas": list(schemas)})
            tables: dict[tuple[str, str], list[tuple[str, bool]]] = {}
            for schema, table, column, is_time in cursor.fetchall():
                columns = tables.setdefault((schema, table), [])
                if column is not None:
                    columns.append((column, bool(is_time)))
            for (schema, table), columns in tables.items():
                data[("table", schema, table)] = _table_data(cursor, schema, table, columns)
            cursor.execute(_SEQUENCES, {"schemas": list(schemas)})
            for schema, name, increment, feeds in cursor.fetchall():
                last_value, called = _sequence_position(cursor, schema, name)
                data[("sequence", schema, name)] = SequenceState(
                    last_value, called, int(increment), tuple(tuple(feed) for feed in feeds))  # type: ignore[misc]
        finally:
            cursor.execute("ROLLBACK")
    return data


def _table_data(cursor: Any, schema: str, table: str, columns: list[tuple[str, bool]]) -> TableData:
    """One table's count and hashes; a table the reader may not read is marked so (it still compares)."""
    import psycopg2
    from psycopg2 import sql

    timeless = [sql.SQL("t.{}").format(sql.Identifier(column)) for column, is_time in columns if not is_time]
    row = sql.SQL("md5(ROW({})::text)").format(sql.SQL(", ").join(timeless)) if timeless else sql.SQL("''::text")
    query = sql.SQL(
        "SELECT count(*), coalesce(md5(string_agg(h, '' ORDER BY h)), ''), coalesce(md5(string_agg(h2, '' ORDER BY "
        "h2)), '') FROM (SELECT md5(t::text) AS h, {row} AS h2 FROM {table} t) x"
    ).format(row=row, table=sql.Identifier(schema, table))
    cursor.execute("SAVEPOINT migrate_read")
    try:
        cursor.execute(query)
        rows, digest, timeless_digest = cursor.fetchone()
    except psycopg2.Error as error:
        cursor.execute("ROLLBACK TO SAVEPOINT migrate_read")
        return TableData(-1, f"unreadable: {getattr(error, 'pgcode', '')}", "")
    return TableData(int(rows), digest, timeless_digest)


def _sequence_position(cursor: Any, schema: str, name: str) -> tuple[int, bool]:
    import psycopg2
    from psycopg2 import sql

    cursor.execute("SAVEPOINT migrate_read")
    try:
        cursor.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.Identifier(schema, name)))
        last_value, called = cursor.fetchone()
    except psycopg2.Error:
        cursor.execute("ROLLBACK TO SAVEPOINT migrate_read")
        return 0, False
    return int(last_value), bool(called)


@dataclass(frozen=True)
class DataChange:
    """A table whose rows differ between two data fingerprints."""

    schema: str
    name: str
    detail: str
    time_only: bool = False  # only date/time columns differ

    def __str__(self) -> str:
        return f"rows of {self.schema}.{self.name}: {self.detail}"


def diff_data(before: DataPrint, after: DataPrint) -> list[DataChange]:
    """Tables present in both whose rows differ (tables that come or go are schema changes)."""
    changes = []
    for key in sorted(before.keys() & after.keys()):
        kind, schema, name = key
        old, new = before[key], after[key]
        if kind != "table" or old == new:
            continue
        if old.rows != new.rows:
            changes.append(DataChange(schema, name, f"{_rows(old.rows)} -> {_rows(new.rows)}"))
        elif old.timeless == new.timeless and old.digest != new.digest:
            changes.append(DataChange(schema, name, f"only date/time values changed ({_rows(new.rows)})", True))
        else:
            changes.append(DataChange(schema, name, f"row contents changed ({_rows(new.rows)})"))
    return changes


def _rows(count: int) -> str:
    return "unreadable" if count < 0 else f"{count} row" + ("" if count == 1 else "s")


def sequences_moved_back(before: DataPrint, after: DataPrint) -> list[tuple[str, str, SequenceState, SequenceState]]:
    """(schema, name, before, after) of every sequence that would hand out a value again."""
    moved = []
    for key in sorted(before.keys() & after.keys()):
        kind, schema, name = key
        if kind == "sequence" and after[key].behind(before[key]):
            moved.append((schema, name, before[key], after[key]))
    return moved


def read_column_extreme(connection: Any, schema: str, table: str, column: str, largest: bool = True) -> Any:
    """max (or min) of one column: the values a sequence that feeds it must not hand out again."""
    from psycopg2 import sql

    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("SELECT {}({}) FROM {}").format(sql.SQL("max" if largest else "min"),
                                                              sql.Identifier(column), sql.Identifier(schema, table)))
        return cursor.fetchone()[0]
