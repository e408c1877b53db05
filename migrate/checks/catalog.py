"""Catalog fingerprints: what a set of schemas looks like, by name and definition, never by OID.

verify compares a fingerprint taken before and after running a migration file. Keys are
human-readable object names ("column langconnect.documents.title") and values are the
definitions PostgreSQL itself prints (pg_get_indexdef, pg_get_functiondef, ...), so a file
that drops and recreates an object identically leaves the fingerprint unchanged, while a
changed default, a duplicated constraint or a new index shows up by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SYSTEM_SCHEMA_FILTER = (
    "n.nspname NOT LIKE 'pg\\_%%' AND n.nspname <> 'information_schema'"
)

# Each query returns (kind, schema, name, definition) rows for the schemas in %(schemas)s.
FINGERPRINT_QUERIES: tuple[str, ...] = (
    # schemas themselves (existence and privileges)
    """
    SELECT 'schema', n.nspname, '', coalesce(n.nspacl::text, '')
      FROM pg_namespace n WHERE n.nspname = ANY(%(schemas)s)
    """,
    # relations: tables, views, materialized views, sequences, foreign tables, composite types
    """
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
     WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f', 'c')
    """,
    # columns, with their position (a dropped and re-added column moves, and lost its data)
    """
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
       AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'c')
    """,
    # constraints of tables and of domains
    """
    SELECT 'constraint', n.nspname, coalesce(c.relname, t.typname) || '.' || con.conname,
           pg_get_constraintdef(con.oid)
      FROM pg_constraint con
      JOIN pg_namespace n ON n.oid = con.connamespace
      LEFT JOIN pg_class c ON c.oid = con.conrelid
      LEFT JOIN pg_type t ON t.oid = con.contypid
     WHERE n.nspname = ANY(%(schemas)s)
    """,
    # indexes
    """
    SELECT 'index', n.nspname, ic.relname, pg_get_indexdef(i.indexrelid)
      FROM pg_index i
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_namespace n ON n.oid = ic.relnamespace
     WHERE n.nspname = ANY(%(schemas)s)
    """,
    # functions and procedures, with their full definition
    """
    SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
           n.nspname, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           CASE WHEN p.prokind = 'a' THEN pg_get_function_result(p.oid)
                ELSE pg_get_functiondef(p.oid) END || coalesce(' | ' || p.proacl::text, '')
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = ANY(%(schemas)s)
    """,
    # triggers written by users (not the internal ones behind foreign keys)
    """
    SELECT 'trigger', n.nspname, c.relname || '.' || t.tgname,
           pg_get_triggerdef(t.oid) || ' | enabled=' || t.tgenabled::text
      FROM pg_trigger t
      JOIN pg_class c ON c.oid = t.tgrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY(%(schemas)s) AND NOT t.tgisinternal
    """,
    # row-level security policies
    """
    SELECT 'policy', n.nspname, c.relname || '.' || p.polname,
           concat_ws(' | ', p.polcmd::text, CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END,
                     (SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END, ',' ORDER BY r)
                        FROM unnest(p.polroles) AS r),
                     'using ' || pg_get_expr(p.polqual, p.polrelid),
                     'check ' || pg_get_expr(p.polwithcheck, p.polrelid))
      FROM pg_policy p
      JOIN pg_class c ON c.oid = p.polrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = ANY(%(schemas)s)
    """,
    # enum, domain, range and multirange types (composite types are relations above)
    """
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
     WHERE n.nspname = ANY(%(schemas)s) AND t.typtype IN ('e', 'd', 'r')
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
