"""The schema model: every object of the app schema (and what the files attach to platform tables), as text.

drift compares two models: one read from a shadow database the migrations built (expected) and one read
from the target (actual). A model maps (kind, qualified name) to a definition PostgreSQL itself prints
(pg_get_functiondef, pg_get_indexdef, pg_get_viewdef, pg_get_expr, ...), read in one REPEATABLE READ
snapshot under `search_path = pg_catalog`, so that both sides are normalised alike (every name
qualified) and a faithful shadow gives no finding while each hand edit gives exactly one.

Choices that make "one edit, one finding" hold:
- **Each object is its own entry.** A comment (kind "comment", name "column langconnect.documents.title"),
  an owner (kind "owner", name "table langconnect.documents"), a grant (kind "grant", one per object and
  grantee: "langconnect.documents to anon", its value the sorted privileges, "WITH GRANT OPTION" marked,
  no grantor) and a default privilege (kind "default privileges", one per role, schema, object type and
  grantee) are entries of their own: adding a comment is one finding, not a changed column.
- **Default ACLs are spelled out.** A NULL ACL means acldefault()'s privileges, so an explicit ACL equal to
  the default is not drift. Global default privileges (ALTER DEFAULT PRIVILEGES without IN SCHEMA) replace
  the built-in default: only grantees whose privileges differ from it are entries ("none" when revoked).
- **Roles are compared by their part, not their name, where the name depends on who reads.** The shadow
  and the target are reached as different users (a shadow server's user, the production migration user),
  so the role that runs the migrations (the connection's current_user, on each side) is written
  `(migration user)`, and the grantee of an object's grants that is the object's owner is written
  `(owner)`: a table owned by the migration user on both sides compares equal, and changing its owner is
  one finding (the owner's grants move with it). Every other role is compared by name. `owners=False`
  leaves the owner entries out altogether (drift's --ignore-owner).
- **Names as a person writes them**, identifiers quoted only when they need it (quote_ident):
  `storage.objects."Users read their own documents"`, `langconnect.handle_new_user()`.
- **Implied objects are not repeated.** The index behind a primary key, unique or exclusion constraint is
  the constraint's (renaming the constraint renames both); NOT NULL is the column's nullability (PostgreSQL
  18 also stores it as a constraint); a view's columns are its definition (their grants and comments are
  entries); the columns of a composite type are the type's definition; an identity column's sequence is
  the column's (its parameters are in the column's definition); a range type's constructors are the type's.
- **What belongs to an object goes with it.** Model.parents says which entries each entry belongs to (a
  column's table, a grant's, owner's or comment's object, an index's table, a serial's column, what lives
  in the schema; a partition's column, index, constraint and trigger also the parent table's): compare()
  reports a table added by hand once, not once per column, grant and comment, and a missing schema once.
- **Positions are not compared**: a column's attnum depends on the columns once dropped, which differ
  between a database edited by hand and back and a fresh one.
- **Renames pair up.** compare() reports a constraint, index, trigger or policy that is missing under one
  name and extra under another on the same table, with the same definition, as one changed object
  (`actual` says "renamed to ...").
- **On a platform table the files attach policies or triggers to, every policy and trigger is read**
  (`attached` names the tables: storage.objects, auth.users, ...): a policy added there by hand (Supabase
  Studio) is "extra", one of the files' renamed there is one "changed". The shadow leaves every policy and
  trigger of those tables out of its copy of the platform, so the expected side holds only the files'.
  The platform's other tables are never compared.
- **Like with like.** PostgreSQL prints some definitions differently across major versions (15 prints a
  view's columns table-qualified, 18 does not): compare models of the same major (Model.major).

What the model leaves out: the tool's own history tables (their rows differ by design), objects that
belong to an extension (the extension is one entry: name and schema, not version, nor its comment, which
comes with the version; only extensions in the app schema, named by the caller, or used by the app's
objects), and the platform's own objects. What it
finds in the app schema and cannot compare (operators, casts of app types, rules other than a view's,
statistics objects, text search objects, collations, conversions, aggregates, operator classes and
families, foreign tables and their servers, event triggers running app functions) is listed in
`not_compared`, never silently ignored; compare() looks at `objects` only, so the caller lists both sides'
`not_compared` (an operator created by hand on the target is in the actual model's list alone).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, NamedTuple

from migrate.history.tables import own_tables

MIGRATION_USER = "(migration user)"
OWNER = "(owner)"
RENAMED_KINDS = ("constraint", "index", "trigger", "policy")
_IN_SCHEMA = ("table", "view", "materialized view", "sequence", "function", "procedure", "type")


Key = tuple[str, str]  # (kind, qualified name)


class Model(NamedTuple):
    """What one database holds: (kind, qualified name) -> normalised definition, and what was not compared.

    `parents`: the entries each dependent entry belongs to (a column's table, a grant's object, a comment's
    object, an index's table, a serial's column; a partition's column its table and its parent's column): a
    table added by hand is one finding, not one per column.
    """

    objects: dict[Key, str]
    not_compared: list[str]  # e.g. "operator langconnect.===(integer,integer)"
    parents: dict[Key, tuple[Key, ...]] = {}  # noqa: RUF012 - never mutated; read_model fills its own
    server_version: int = 0  # server_version_num of the database read (0: not read from one)

    @property
    def major(self) -> int:
        """The server's major version (15, 18): models of different majors differ in how PostgreSQL prints
        definitions (15 prints a view's columns table-qualified, 18 does not): compare like with like."""
        return self.server_version // 10000


class Finding(NamedTuple):
    """One object that differs between the expected and the actual model."""

    state: str  # "extra" (on the target only), "missing" (expected, absent), "changed"
    kind: str
    name: str
    expected: str | None
    actual: str | None

    def __str__(self) -> str:
        return f"{self.state} {self.kind} {self.name}"


def _not_member(catalog: str, oid: str) -> str:
    """SQL: the object is not part of an extension (the extension is listed as one entry)."""
    return (f"NOT EXISTS (SELECT 1 FROM pg_depend member WHERE member.classid = '{catalog}'::regclass "
            f"AND member.objid = {oid} AND member.deptype = 'e')")


def _role(expr: str) -> str:
    """SQL: a role as compared (PUBLIC, the migration user's placeholder, or its quoted name)."""
    return (f"CASE WHEN {expr} = 0 THEN 'PUBLIC' WHEN {expr} = %(me)s THEN '{MIGRATION_USER}' "
            f"ELSE quote_ident(pg_get_userbyid({expr})) END")


def _qualified(schema: str, name: str) -> str:
    return f"quote_ident({schema}) || '.' || quote_ident({name})"


def _collation(oid: str) -> str:
    """SQL: 'collate schema.name' for a collation oid."""
    return (f"(SELECT 'collate ' || {_qualified('cn.nspname', 'co.collname')} FROM pg_collation co "
            f"JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = {oid})")


# Relations of the app schema that the model holds (tables, views, materialized views, sequences, composite types)
_APP_RELATION = ("c.relnamespace = %(ns)s AND NOT (c.oid = ANY(%(skip)s::oid[])) AND "
                 + _not_member("pg_class", "c.oid"))
# Functions and procedures of the app schema, but not a range type's constructors (the type's, internally)
_APP_ROUTINE = ("p.prokind IN ('f', 'p', 'w') AND " + _not_member("pg_proc", "p.oid")
                + " AND NOT EXISTS (SELECT 1 FROM pg_depend inner_dep WHERE inner_dep.classid = 'pg_proc'::regclass "
                "AND inner_dep.objid = p.oid AND inner_dep.deptype = 'i')")
# every policy or trigger on a platform table the files attach one to (not only the names they create): one added
# there by hand is drift too; the shadow leaves all of them out of its platform copy (shadow._created_by_files)
_ATTACHED = "({name} IS NOT NULL AND (n.nspname, c.relname) IN (SELECT * FROM unnest(%(att_s)s::text[], " \
            "%(att_t)s::text[])))"

_SEQUENCE_PARAMETERS = ("concat_ws('; ', 'as ' || format_type(s.seqtypid, NULL), 'increment ' || s.seqincrement, "
                        "'minvalue ' || s.seqmin, 'maxvalue ' || s.seqmax, 'start ' || s.seqstart, "
                        "'cache ' || s.seqcache, CASE WHEN s.seqcycle THEN 'cycle' ELSE 'no cycle' END)")
# the column a sequence belongs to (deptype 'a': serial, OWNED BY; 'i': identity), for a sequence `c`
_OWNING_COLUMN = f"""
    SELECT d.deptype, {_qualified('tn.nspname', 'tc.relname')} || '.' || quote_ident(a.attname)
      FROM pg_depend d
      JOIN pg_class tc ON tc.oid = d.refobjid
      JOIN pg_namespace tn ON tn.oid = tc.relnamespace
      JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
     WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
       AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1
"""
_REL_KIND = "CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'table' END"

# Each query returns: kind, name, definition, classid, objid, objsubid, owner (role as compared, or NULL), and up
# to two entries this one belongs to (kind, name, kind, name; or NULLs): an extra or missing parent implies it
_OBJECT_QUERIES: tuple[str, ...] = (
    # the app schema
    f"""
    SELECT 'schema', quote_ident(n.nspname), '', 'pg_namespace'::regclass::oid, n.oid, 0, {_role('n.nspowner')},
           NULL, NULL, NULL, NULL
      FROM pg_namespace n WHERE n.oid = %(ns)s
    """,
    # tables
    f"""
    SELECT 'table', {_qualified('n.nspname', 'c.relname')},
           concat_ws('; ',
                     CASE c.relpersistence WHEN 'u' THEN 'unlogged' WHEN 't' THEN 'temporary' ELSE 'logged' END,
                     CASE WHEN c.relkind = 'p' THEN 'partitioned by ' || pg_get_partkeydef(c.oid) END,
                     CASE WHEN c.relispartition THEN 'partition of ' ||
                          (SELECT string_agg(pc.oid::regclass::text, ', ') FROM pg_inherits i
                             JOIN pg_class pc ON pc.oid = i.inhparent WHERE i.inhrelid = c.oid)
                          || ' ' || pg_get_expr(c.relpartbound, c.oid)
                          ELSE 'inherits ' || (SELECT string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno)
                                                 FROM pg_inherits i WHERE i.inhrelid = c.oid) END,
                     'row level security ' || CASE WHEN c.relrowsecurity THEN 'enabled' ELSE 'disabled' END
                         || CASE WHEN c.relforcerowsecurity THEN ', forced' ELSE '' END,
                     'with (' || array_to_string(c.reloptions, ', ') || ')',
                     CASE c.relreplident WHEN 'n' THEN 'replica identity nothing' WHEN 'f' THEN 'replica identity full'
                          WHEN 'i' THEN 'replica identity using index ' ||
                               (SELECT quote_ident(ri.relname) FROM pg_index i JOIN pg_class ri ON ri.oid = i.indexrelid
                                 WHERE i.indrelid = c.oid AND i.indisreplident) END,
                     'of type ' || nullif(c.reloftype, 0)::regtype::text,
                     (SELECT 'using ' || am.amname FROM pg_am am WHERE am.oid = c.relam AND am.amname <> 'heap'),
                     (SELECT 'tablespace ' || quote_ident(ts.spcname) FROM pg_tablespace ts
                       WHERE ts.oid = c.reltablespace)),
           'pg_class'::regclass::oid, c.oid, 0, {_role('c.relowner')},
           NULL, NULL,
           -- a partition belongs to its partitioned table too
           CASE WHEN c.relispartition THEN 'table' END,
           CASE WHEN c.relispartition THEN (SELECT i.inhparent::regclass::text FROM pg_inherits i
                                             WHERE i.inhrelid = c.oid LIMIT 1) END
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND {_APP_RELATION}
    """,
    # views and materialized views: options, then the query
    f"""
    SELECT CASE c.relkind WHEN 'v' THEN 'view' ELSE 'materialized view' END, {_qualified('n.nspname', 'c.relname')},
           concat_ws(E'\\n', 'with (' || array_to_string(c.reloptions, ', ') || ')',
                     (SELECT 'tablespace ' || quote_ident(ts.spcname) FROM pg_tablespace ts
                       WHERE ts.oid = c.reltablespace),
                     'as' || pg_get_viewdef(c.oid)),
           'pg_class'::regclass::oid, c.oid, 0, {_role('c.relowner')}, NULL, NULL, NULL, NULL
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('v', 'm') AND {_APP_RELATION}
    """,
    # sequences: parameters and the column that owns them (serial), never where they stand; an identity
    # column's sequence is the column's (its parameters are in the column's definition)
    f"""
    SELECT 'sequence', {_qualified('n.nspname', 'c.relname')},
           concat_ws('; ', CASE WHEN c.relpersistence = 'u' THEN 'unlogged' END, {_SEQUENCE_PARAMETERS},
                     'owned by ' || o.col),
           'pg_class'::regclass::oid, c.oid, 0, {_role('c.relowner')},
           CASE WHEN o.col IS NOT NULL THEN 'column' END, o.col, NULL, NULL
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_sequence s ON s.seqrelid = c.oid
      LEFT JOIN LATERAL ({_OWNING_COLUMN}) o(deptype, col) ON true
     WHERE c.relkind = 'S' AND o.deptype IS DISTINCT FROM 'i' AND {_APP_RELATION}
    """,
    # columns of tables (a view's columns are its definition; a composite type's, the type's)
    f"""
    SELECT 'column', {_qualified('n.nspname', 'c.relname')} || '.' || quote_ident(a.attname),
           concat_ws('; ', format_type(a.atttypid, a.atttypmod),
                     CASE WHEN a.attnotnull THEN 'not null' END,
                     CASE WHEN a.attgenerated = '' THEN 'default ' || pg_get_expr(d.adbin, d.adrelid) END,
                     CASE a.attidentity WHEN 'a' THEN 'generated always as identity'
                                        WHEN 'd' THEN 'generated by default as identity' END
                         || (SELECT ' (' || {_SEQUENCE_PARAMETERS} || ')'
                               FROM pg_depend sd JOIN pg_sequence s ON s.seqrelid = sd.objid
                              WHERE sd.classid = 'pg_class'::regclass AND sd.refclassid = 'pg_class'::regclass
                                AND sd.refobjid = c.oid AND sd.refobjsubid = a.attnum AND sd.deptype = 'i'),
                     CASE a.attgenerated WHEN 's' THEN 'generated always as (' || pg_get_expr(d.adbin, d.adrelid)
                                                       || ') stored'
                                         WHEN 'v' THEN 'generated always as (' || pg_get_expr(d.adbin, d.adrelid)
                                                       || ') virtual' END,
                     CASE WHEN a.attcollation <> t.typcollation THEN {_collation('a.attcollation')} END,
                     CASE WHEN a.attstorage <> t.typstorage THEN 'storage ' || CASE a.attstorage
                          WHEN 'p' THEN 'plain' WHEN 'e' THEN 'external' WHEN 'm' THEN 'main' ELSE 'extended' END END,
                     CASE a.attcompression WHEN 'p' THEN 'compression pglz' WHEN 'l' THEN 'compression lz4' END,
                     -- ALTER COLUMN SET STATISTICS (-1 before 17, NULL since: the default)
                     CASE WHEN a.attstattarget >= 0 THEN 'statistics ' || a.attstattarget END,
                     -- attribute options a person sets (n_distinct); some builds keep their own (pg_attver=...)
                     'with (' || (SELECT string_agg(o, ', ') FROM unnest(a.attoptions) o WHERE left(o, 3) <> 'pg_')
                              || ')'),
           'pg_class'::regclass::oid, c.oid, a.attnum::int, NULL,
           'table', {_qualified('n.nspname', 'c.relname')},
           -- an inherited column (a partition's) belongs to its parent's column too
           CASE WHEN NOT a.attislocal THEN 'column' END,
           (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid AND NOT a.attislocal
             ORDER BY i.inhseqno LIMIT 1) || '.' || quote_ident(a.attname)
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_type t ON t.oid = a.atttypid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND {_APP_RELATION}
    """,
    # constraints of tables and domains (NOT NULL is the column's or the domain's nullability)
    f"""
    SELECT 'constraint', coalesce({_qualified('n.nspname', 'c.relname')}, {_qualified('tn.nspname', 'ty.typname')})
                         || '.' || quote_ident(con.conname),
           pg_get_constraintdef(con.oid), 'pg_constraint'::regclass::oid, con.oid, 0, NULL,
           CASE WHEN c.oid IS NULL THEN 'type' ELSE 'table' END,
           coalesce({_qualified('n.nspname', 'c.relname')}, {_qualified('tn.nspname', 'ty.typname')}),
           -- a partition's (or child table's) copy of its parent's constraint belongs to that constraint too
           CASE WHEN con.conparentid <> 0 OR (c.oid IS NOT NULL AND NOT con.conislocal) THEN 'constraint' END,
           CASE WHEN con.conparentid <> 0 THEN
                     (SELECT pk.conrelid::regclass::text || '.' || quote_ident(pk.conname) FROM pg_constraint pk
                       WHERE pk.oid = con.conparentid)
                WHEN c.oid IS NOT NULL AND NOT con.conislocal THEN
                     (SELECT i.inhparent::regclass::text FROM pg_inherits i WHERE i.inhrelid = c.oid
                       ORDER BY i.inhseqno LIMIT 1) || '.' || quote_ident(con.conname) END
      FROM pg_constraint con
      LEFT JOIN pg_class c ON c.oid = con.conrelid AND con.conrelid <> 0
      LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_type ty ON ty.oid = con.contypid AND con.contypid <> 0
      LEFT JOIN pg_namespace tn ON tn.oid = ty.typnamespace
     WHERE con.contype <> 'n'
       AND ((c.oid IS NOT NULL AND c.relkind IN ('r', 'p') AND {_APP_RELATION})
            OR (ty.oid IS NOT NULL AND ty.typnamespace = %(ns)s AND {_not_member('pg_type', 'ty.oid')}))
    """,
    # indexes, but not those behind a constraint (the constraint is the entry)
    f"""
    SELECT 'index', {_qualified('n.nspname', 'ic.relname')},
           concat_ws('; ', pg_get_indexdef(i.indexrelid),
                     (SELECT 'tablespace ' || quote_ident(ts.spcname) FROM pg_tablespace ts
                       WHERE ts.oid = ic.reltablespace),
                     CASE WHEN i.indisclustered THEN 'clustered' END,
                     CASE WHEN NOT i.indisvalid THEN 'invalid' END),
           'pg_class'::regclass::oid, ic.oid, 0, NULL,
           {_REL_KIND}, {_qualified('n.nspname', 'c.relname')},
           -- a partition's index attached to its parent's index belongs to that index too
           CASE WHEN ip.inhparent IS NOT NULL THEN 'index' END, ip.inhparent::regclass::text
      FROM pg_index i
      JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_class c ON c.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = ic.relnamespace
      LEFT JOIN pg_inherits ip ON ip.inhrelid = ic.oid
     WHERE {_APP_RELATION}
       AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
                                                     AND k.contype IN ('p', 'u', 'x'))
    """,
    # functions and procedures: pg_get_functiondef has signature, body, language, volatility, security, config
    f"""
    SELECT CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
           {_qualified('n.nspname', 'p.proname')} || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           pg_get_functiondef(p.oid), 'pg_proc'::regclass::oid, p.oid, 0, {_role('p.proowner')}, NULL, NULL, NULL, NULL
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE p.pronamespace = %(ns)s AND {_APP_ROUTINE}
    """,
    # triggers written by users, on app relations and those the files attach to platform tables
    f"""
    SELECT 'trigger', {_qualified('n.nspname', 'c.relname')} || '.' || quote_ident(t.tgname),
           pg_get_triggerdef(t.oid) || '; ' || CASE t.tgenabled WHEN 'O' THEN 'enabled' WHEN 'D' THEN 'disabled'
                                                WHEN 'R' THEN 'enabled replica' ELSE 'enabled always' END,
           'pg_trigger'::regclass::oid, t.oid, 0, NULL,
           {_REL_KIND}, {_qualified('n.nspname', 'c.relname')},
           -- a partition's clone of its parent's trigger belongs to that trigger too
           CASE WHEN t.tgparentid <> 0 THEN 'trigger' END,
           (SELECT pt.tgrelid::regclass::text || '.' || quote_ident(pt.tgname) FROM pg_trigger pt
             WHERE pt.oid = t.tgparentid)
      FROM pg_trigger t
      JOIN pg_class c ON c.oid = t.tgrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE NOT t.tgisinternal AND (({_APP_RELATION}) OR {_ATTACHED.format(name='t.tgname')})
    """,
    # row-level security policies, likewise
    f"""
    SELECT 'policy', {_qualified('n.nspname', 'c.relname')} || '.' || quote_ident(p.polname),
           concat_ws('; ', 'for ' || CASE p.polcmd WHEN 'r' THEN 'select' WHEN 'a' THEN 'insert' WHEN 'w' THEN 'update'
                                                   WHEN 'd' THEN 'delete' ELSE 'all' END,
                     CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END,
                     'to ' || (SELECT string_agg(r, ', ' ORDER BY r)
                                 FROM (SELECT {_role('x')} AS r FROM unnest(p.polroles) AS x) roles),
                     'using (' || pg_get_expr(p.polqual, p.polrelid) || ')',
                     'with check (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')'),
           'pg_policy'::regclass::oid, p.oid, 0, NULL, 'table', {_qualified('n.nspname', 'c.relname')}, NULL, NULL
      FROM pg_policy p
      JOIN pg_class c ON c.oid = p.polrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE ({_APP_RELATION}) OR {_ATTACHED.format(name='p.polname')}
    """,
    # types: enums (labels in order), domains, ranges, composites
    f"""
    SELECT 'type', {_qualified('n.nspname', 't.typname')},
           CASE t.typtype
                WHEN 'e' THEN 'enum (' || coalesce((SELECT string_agg(quote_literal(e.enumlabel), ', '
                                                                      ORDER BY e.enumsortorder)
                                                      FROM pg_enum e WHERE e.enumtypid = t.oid), '') || ')'
                WHEN 'd' THEN concat_ws('; ', 'domain over ' || format_type(t.typbasetype, t.typtypmod),
                                        CASE WHEN t.typcollation <> b.typcollation THEN
                                             {_collation('t.typcollation')} END,
                                        CASE WHEN t.typnotnull THEN 'not null' END,
                                        'default ' || pg_get_expr(t.typdefaultbin, 0))
                WHEN 'r' THEN (SELECT concat_ws('; ', 'range over ' || format_type(r.rngsubtype, NULL),
                                                'multirange ' || r.rngmultitypid::regtype::text,
                                                'subtype_opclass ' || r.rngsubopc::regclass::text,
                                                CASE WHEN r.rngcollation <> 0 THEN {_collation('r.rngcollation')} END,
                                                'canonical ' || nullif(r.rngcanonical, 0)::regproc::text,
                                                'subtype_diff ' || nullif(r.rngsubdiff, 0)::regproc::text)
                                 FROM pg_range r WHERE r.rngtypid = t.oid)
                ELSE 'composite (' || coalesce((SELECT string_agg(quote_ident(a.attname) || ' '
                                                                  || format_type(a.atttypid, a.atttypmod), ', '
                                                                  ORDER BY a.attnum)
                                                  FROM pg_attribute a WHERE a.attrelid = t.typrelid AND a.attnum > 0
                                                   AND NOT a.attisdropped), '') || ')'
           END,
           'pg_type'::regclass::oid, t.oid, 0, {_role('t.typowner')}, NULL, NULL, NULL, NULL
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
      LEFT JOIN pg_type b ON b.oid = t.typbasetype
     WHERE t.typnamespace = %(ns)s AND {_not_member('pg_type', 't.oid')}
       AND (t.typtype IN ('e', 'd', 'r')
            OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c')))
    """,
    # extensions: in the app schema, named by the caller, or used by the app's objects; name and schema only
    """
    SELECT 'extension', quote_ident(e.extname), 'schema ' || quote_ident(n.nspname),
           'pg_extension'::regclass::oid, e.oid, 0, NULL, NULL, NULL, NULL, NULL
      FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
     WHERE e.extnamespace = %(ns)s OR e.extname = ANY(%(extensions)s::text[])
        OR e.oid IN (SELECT m.refobjid
                       FROM pg_depend d
                       JOIN pg_depend m ON m.classid = d.refclassid AND m.objid = d.refobjid AND m.deptype = 'e'
                                       AND m.refclassid = 'pg_extension'::regclass
                                       AND m.classid <> 'pg_language'::regclass  -- plpgsql is everyone's
                      WHERE (d.classid = 'pg_class'::regclass
                             AND d.objid IN (SELECT oid FROM pg_class WHERE relnamespace = %(ns)s))
                         OR (d.classid = 'pg_proc'::regclass
                             AND d.objid IN (SELECT oid FROM pg_proc WHERE pronamespace = %(ns)s))
                         OR (d.classid = 'pg_type'::regclass
                             AND d.objid IN (SELECT oid FROM pg_type WHERE typnamespace = %(ns)s)))
    """,
)

# Columns that are not entries (a view's, a materialized view's, a composite type's) but may have a comment:
# name, classid, objid, objsubid, and the entry the comment belongs to
_COMMENTABLE = f"""
    SELECT {_qualified('n.nspname', 'c.relname')} || '.' || quote_ident(a.attname),
           'pg_class'::regclass::oid, c.oid, a.attnum::int,
           CASE c.relkind WHEN 'c' THEN 'type' ELSE {_REL_KIND} END, {_qualified('n.nspname', 'c.relname')}
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('v', 'm', 'c') AND {_APP_RELATION}
"""

# Grants: (object as named, its ACL or the default one, its owner); one entry per object and grantee
_ACL_OBJECTS = f"""
    SELECT quote_ident(n.nspname) AS name, coalesce(n.nspacl, acldefault('n', n.nspowner)) AS acl,
           n.nspowner AS owner, 'schema' AS parent_kind, quote_ident(n.nspname) AS parent_name,
           false AS internal
      FROM pg_namespace n WHERE n.oid = %(ns)s
    UNION ALL
    SELECT {_qualified('n.nspname', 'c.relname')},
           coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner)),
           c.relowner,
           CASE WHEN o.deptype = 'i' THEN 'column' WHEN c.relkind = 'S' THEN 'sequence' ELSE {_REL_KIND} END,
           CASE WHEN o.deptype = 'i' THEN o.col ELSE {_qualified('n.nspname', 'c.relname')} END,
           o.deptype IS NOT DISTINCT FROM 'i'
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN LATERAL ({_OWNING_COLUMN}) o(deptype, col) ON c.relkind = 'S'
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND {_APP_RELATION}
    UNION ALL
    SELECT {_qualified('n.nspname', 'c.relname')} || '.' || quote_ident(a.attname), a.attacl, c.relowner,
           CASE WHEN c.relkind IN ('r', 'p') THEN 'column' ELSE {_REL_KIND} END,
           {_qualified('n.nspname', 'c.relname')} || CASE WHEN c.relkind IN ('r', 'p')
                                                          THEN '.' || quote_ident(a.attname) ELSE '' END,
           false
      FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attacl IS NOT NULL
       AND c.relkind IN ('r', 'p', 'v', 'm') AND {_APP_RELATION}
    UNION ALL
    SELECT {_qualified('n.nspname', 'p.proname')} || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           coalesce(p.proacl, acldefault('f', p.proowner)), p.proowner,
           CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
           {_qualified('n.nspname', 'p.proname')} || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           false
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE p.pronamespace = %(ns)s AND {_APP_ROUTINE}
    UNION ALL
    SELECT {_qualified('n.nspname', 't.typname')}, coalesce(t.typacl, acldefault('T', t.typowner)), t.typowner,
           'type', {_qualified('n.nspname', 't.typname')}, false
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE t.typnamespace = %(ns)s AND {_not_member('pg_type', 't.oid')}
       AND (t.typtype IN ('e', 'd', 'r')
            OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c')))
"""
_GRANTS = f"""
    SELECT o.name || ' to ' || CASE WHEN a.grantee = o.owner THEN '{OWNER}' ELSE {_role('a.grantee')} END,
           string_agg(a.privilege_type || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END, ', '
                      ORDER BY a.privilege_type), o.parent_kind, o.parent_name
      FROM ({_ACL_OBJECTS}) o, LATERAL aclexplode(o.acl) a
     WHERE NOT (o.internal AND a.grantee = o.owner)  -- an identity's sequence: its owner's implicit privileges
     GROUP BY o.name, o.owner, o.parent_kind, o.parent_name, a.grantee
"""

_DEFAULT_OBJECTS = "CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions' " \
                   "WHEN 'T' THEN 'types' WHEN 'n' THEN 'schemas' ELSE d.defaclobjtype::text END"
# Default privileges: (role, schema or NULL, objects, grantee, privileges, the built-in default's privileges or
# NULL for a schema's entry, which only adds to it)
_DEFAULT_PRIVILEGES = f"""
    SELECT {_role('d.defaclrole')}, quote_ident(n.nspname), {_DEFAULT_OBJECTS}, g.grantee,
           (SELECT string_agg(a.privilege_type || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END,
                              ', ' ORDER BY a.privilege_type)
              FROM aclexplode(d.defaclacl) a WHERE a.grantee = g.oid),
           CASE WHEN d.defaclnamespace = 0 THEN
                (SELECT string_agg(a.privilege_type || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END,
                                   ', ' ORDER BY a.privilege_type)
                   FROM aclexplode(acldefault(CASE d.defaclobjtype WHEN 'S' THEN 's' ELSE d.defaclobjtype END::"char",
                                              d.defaclrole)) a WHERE a.grantee = g.oid) END
      FROM pg_default_acl d
      LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
      CROSS JOIN LATERAL (
           SELECT DISTINCT x.grantee AS oid, {_role('x.grantee')} AS grantee
             FROM aclexplode(d.defaclacl) x
           UNION
           SELECT y.grantee, {_role('y.grantee')}
             FROM aclexplode(acldefault(CASE d.defaclobjtype WHEN 'S' THEN 's' ELSE d.defaclobjtype END::"char",
                                        d.defaclrole)) y
            WHERE d.defaclnamespace = 0) g
     WHERE d.defaclnamespace = %(ns)s OR (d.defaclnamespace = 0 AND d.defaclrole = ANY(%(roles)s::oid[]))
"""

# Publication membership of app tables: per table, per schema (FOR TABLES IN SCHEMA), and FOR ALL TABLES
_PUBLICATIONS_15 = f"""
    SELECT {_qualified('n.nspname', 'c.relname')} || ' in ' || quote_ident(p.pubname),
           concat_ws('; ', 'columns (' || (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
                                             FROM pg_attribute a
                                            WHERE a.attrelid = c.oid AND a.attnum = ANY(pr.prattrs)) || ')',
                     'where (' || pg_get_expr(pr.prqual, pr.prrelid) || ')'),
           {_qualified('n.nspname', 'c.relname')}
      FROM pg_publication_rel pr
      JOIN pg_publication p ON p.oid = pr.prpubid
      JOIN pg_class c ON c.oid = pr.prrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE {_APP_RELATION}
    UNION ALL
    SELECT 'tables in schema ' || quote_ident(n.nspname) || ' in ' || quote_ident(p.pubname), '', NULL
      FROM pg_publication_namespace pn
      JOIN pg_publication p ON p.oid = pn.pnpubid
      JOIN pg_namespace n ON n.oid = pn.pnnspid
     WHERE pn.pnnspid = %(ns)s
"""
_PUBLICATIONS_OLD = f"""
    SELECT {_qualified('n.nspname', 'c.relname')} || ' in ' || quote_ident(p.pubname), '',
           {_qualified('n.nspname', 'c.relname')}
      FROM pg_publication_rel pr
      JOIN pg_publication p ON p.oid = pr.prpubid
      JOIN pg_class c ON c.oid = pr.prrelid
      JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE {_APP_RELATION}
"""
_ALL_TABLES_PUBLICATIONS = """
    SELECT 'all tables in ' || quote_ident(p.pubname),
           concat_ws(', ', CASE WHEN p.pubinsert THEN 'insert' END, CASE WHEN p.pubupdate THEN 'update' END,
                     CASE WHEN p.pubdelete THEN 'delete' END, CASE WHEN p.pubtruncate THEN 'truncate' END)
      FROM pg_publication p WHERE p.puballtables AND %(ns)s IS NOT NULL
"""

# What the app schema holds that the model does not compare: pg_describe_object names it
_NOT_COMPARED = f"""
    SELECT pg_describe_object('pg_operator'::regclass::oid, o.oid, 0) FROM pg_operator o
     WHERE o.oprnamespace = %(ns)s AND {_not_member('pg_operator', 'o.oid')}
    UNION ALL
    SELECT pg_describe_object('pg_cast'::regclass::oid, k.oid, 0) FROM pg_cast k
     WHERE (k.castsource IN (SELECT oid FROM pg_type WHERE typnamespace = %(ns)s)
            OR k.casttarget IN (SELECT oid FROM pg_type WHERE typnamespace = %(ns)s)
            OR k.castfunc IN (SELECT oid FROM pg_proc WHERE pronamespace = %(ns)s))
       AND {_not_member('pg_cast', 'k.oid')}
    UNION ALL
    SELECT pg_describe_object('pg_rewrite'::regclass::oid, r.oid, 0)
      FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class
     WHERE r.rulename <> '_RETURN' AND {_APP_RELATION}
    UNION ALL
    SELECT pg_describe_object('pg_statistic_ext'::regclass::oid, s.oid, 0) FROM pg_statistic_ext s
     WHERE s.stxnamespace = %(ns)s AND {_not_member('pg_statistic_ext', 's.oid')}
    UNION ALL
    SELECT pg_describe_object('pg_ts_config'::regclass::oid, x.oid, 0) FROM pg_ts_config x
     WHERE x.cfgnamespace = %(ns)s AND {_not_member('pg_ts_config', 'x.oid')}
    UNION ALL
    SELECT pg_describe_object('pg_ts_dict'::regclass::oid, x.oid, 0) FROM pg_ts_dict x
     WHERE x.dictnamespace = %(ns)s AND {_not_member('pg_ts_dict', 'x.oid')}
    UNION ALL
    SELECT pg_describe_object('pg_ts_parser'::regclass::oid, x.oid, 0) FROM pg_ts_parser x
     WHERE x.prsnamespace = %(ns)s AND {_not_member('pg_ts_parser', 'x.oid')}
    UNION ALL
    SELECT pg_describe_object('pg_ts_template'::regclass::oid, x.oid, 0) FROM pg_ts_template x
     WHERE x.tmplnamespace = %(ns)s AND {_not_member('pg_ts_template', 'x.oid')}
    UNION ALL
    SELECT pg_describe_object('pg_collation'::regclass::oid, x.oid, 0) FROM pg_collation x
     WHERE x.collnamespace = %(ns)s AND {_not_member('pg_collation', 'x.oid')}
    UNION ALL
    SELECT pg_describe_object('pg_conversion'::regclass::oid, x.oid, 0) FROM pg_conversion x
     WHERE x.connamespace = %(ns)s AND {_not_member('pg_conversion', 'x.oid')}
    UNION ALL
    SELECT 'aggregate ' || p.oid::regprocedure::text FROM pg_proc p
     WHERE p.pronamespace = %(ns)s AND p.prokind = 'a' AND {_not_member('pg_proc', 'p.oid')}
    UNION ALL
    SELECT pg_describe_object('pg_opclass'::regclass::oid, x.oid, 0) FROM pg_opclass x
     WHERE x.opcnamespace = %(ns)s AND {_not_member('pg_opclass', 'x.oid')}
    UNION ALL
    SELECT pg_describe_object('pg_opfamily'::regclass::oid, x.oid, 0) FROM pg_opfamily x
     WHERE x.opfnamespace = %(ns)s AND {_not_member('pg_opfamily', 'x.oid')}
    UNION ALL
    SELECT pg_describe_object('pg_class'::regclass::oid, c.oid, 0) FROM pg_class c
     WHERE c.relkind = 'f' AND {_APP_RELATION}
    UNION ALL
    SELECT DISTINCT pg_describe_object('pg_foreign_server'::regclass, ft.ftserver, 0)
      FROM pg_foreign_table ft JOIN pg_class c ON c.oid = ft.ftrelid
     WHERE {_APP_RELATION}
    UNION ALL
    SELECT pg_describe_object('pg_event_trigger'::regclass::oid, x.oid, 0) FROM pg_event_trigger x
     WHERE x.evtfoid IN (SELECT oid FROM pg_proc WHERE pronamespace = %(ns)s)
       AND {_not_member('pg_event_trigger', 'x.oid')}
"""

# The app schema, the migration user, the tool's own relations, and the roles whose global default
# privileges matter (the migration user and every owner of an app object)
_CONTEXT = """
    SELECT (SELECT oid FROM pg_namespace WHERE nspname = %(schema)s),
           (SELECT oid FROM pg_roles WHERE rolname = current_user),
           current_setting('server_version_num')::int
"""
_SKIP_AND_ROLES = """
    WITH own AS (SELECT c.oid FROM pg_class c WHERE c.relnamespace = %(ns)s AND c.relname = ANY(%(history)s))
    SELECT ARRAY(SELECT oid FROM own
                 UNION SELECT i.indexrelid FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM own)
                 UNION SELECT d.objid FROM pg_depend d
                        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
                          AND d.refobjid IN (SELECT oid FROM own) AND d.deptype IN ('a', 'i')),
           ARRAY(SELECT %(me)s::oid
                 UNION SELECT nspowner FROM pg_namespace WHERE oid = %(ns)s
                 UNION SELECT relowner FROM pg_class WHERE relnamespace = %(ns)s
                 UNION SELECT proowner FROM pg_proc WHERE pronamespace = %(ns)s
                 UNION SELECT typowner FROM pg_type WHERE typnamespace = %(ns)s)
"""


def read_model(connection: Any, schema: str, attached: set[tuple[str, str, str]], *, owners: bool = True,
               extensions: Iterable[str] = ()) -> Model:
    """The model of `schema` and of the `attached` (schema, table, policy or trigger name) objects that migration
    files put on platform tables (Reach.attachments over every file), read in one REPEATABLE READ READ ONLY
    snapshot with search_path = pg_catalog. `owners`: include the owner entries. `extensions`: names of
    extensions the files create (besides those in the app schema and those the app's objects use).

    The connection must be idle (no transaction open); it is left idle, committed or rolled back.
    """
    import psycopg2.extensions

    autocommit = connection.autocommit
    if connection.get_transaction_status() != psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        raise ValueError("read_model needs an idle connection (no transaction in progress)")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL search_path = pg_catalog")
            try:
                model = _read(cursor, schema, attached, owners, list(extensions))
            except BaseException:
                if not connection.closed:  # a lost connection's error is the one to report
                    cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")
    finally:
        if not connection.closed:
            connection.autocommit = autocommit
    return model


def _read(cursor: Any, schema: str, attached: set[tuple[str, str, str]], owners: bool,
          extensions: list[str]) -> Model:
    cursor.execute(_CONTEXT, {"schema": schema})
    ns, me, version = cursor.fetchone()
    params: dict[str, Any] = {"ns": ns, "me": me, "history": own_tables(), "extensions": extensions}
    ordered = sorted(attached)
    params.update(att_s=[a[0] for a in ordered], att_t=[a[1] for a in ordered])
    cursor.execute(_SKIP_AND_ROLES, params)
    skip, roles = cursor.fetchone()
    params.update(skip=list(skip), roles=list(roles))

    objects: dict[Key, str] = {}
    parents: dict[Key, tuple[Key, ...]] = {}
    described: dict[tuple[int, int, int], tuple[str, Key]] = {}  # -> (the comment's name, what it belongs to)
    for query in _OBJECT_QUERIES:
        cursor.execute(query, params)
        for kind, name, definition, classid, objid, subid, owner, *belongs in cursor.fetchall():
            objects[(kind, name)] = definition or ""
            described[(int(classid), int(objid), int(subid))] = (f"{kind} {name}", (kind, name))
            found = tuple((belongs[at], belongs[at + 1]) for at in (0, 2) if belongs[at] is not None)
            if found:
                parents[(kind, name)] = found
            if owners and owner is not None:
                objects[("owner", f"{kind} {name}")] = owner
                parents[("owner", f"{kind} {name}")] = ((kind, name),)

    # what lives directly in the schema belongs to it (a missing schema is one finding)
    schema_key = next((key for key in objects if key[0] == "schema"), None)
    if schema_key is not None:
        prefix = schema_key[1] + "."
        for key in list(objects):
            if key[0] in _IN_SCHEMA and key[1].startswith(prefix):
                parents[key] = (schema_key,) + parents.get(key, ())

    # comments on every object of the model, and on the columns of views and composite types
    cursor.execute(_COMMENTABLE, params)
    for name, classid, objid, subid, parent_kind, parent_name in cursor.fetchall():
        described[(int(classid), int(objid), int(subid))] = (f"column {name}", (parent_kind, parent_name))
    if described:
        cursor.execute("SELECT classoid, objoid, objsubid, description FROM pg_description "
                       "WHERE objoid = ANY(%(oids)s::oid[])", {"oids": sorted({key[1] for key in described})})
        for classid, objid, subid, text in cursor.fetchall():
            found = described.get((int(classid), int(objid), int(subid)))
            if found is not None and found[1][0] != "extension":  # an extension's comment comes with its version
                objects[("comment", found[0])] = text
                parents[("comment", found[0])] = (found[1],)
    cursor.execute(_GRANTS, params)
    for name, privileges, parent_kind, parent_name in cursor.fetchall():
        objects[("grant", name)] = privileges
        parents[("grant", name)] = ((parent_kind, parent_name),)
    cursor.execute(_DEFAULT_PRIVILEGES, params)
    for role, in_schema, kinds, grantee, privileges, default in cursor.fetchall():
        if in_schema is None and (privileges or None) == (default or None):
            continue  # a global entry keeps the built-in default for this grantee
        where = f" in schema {in_schema}" if in_schema is not None else ""
        objects[("default privileges", f"for role {role}{where} on {kinds} to {grantee}")] = privileges or "none"
    cursor.execute(_PUBLICATIONS_15 if version >= 150000 else _PUBLICATIONS_OLD, params)
    for name, definition, table in cursor.fetchall():
        objects[("publication", name)] = definition or ""
        if table is not None:
            parents[("publication", name)] = (("table", table),)
    cursor.execute(_ALL_TABLES_PUBLICATIONS, params)
    for name, definition in cursor.fetchall():
        objects[("publication", name)] = definition or ""

    not_compared: list[str] = []
    if ns is not None:
        cursor.execute(_NOT_COMPARED, params)
        not_compared = sorted({row[0] for row in cursor.fetchall()})
    return Model(objects, not_compared, parents, int(version))


def compare(expected: Model, actual: Model) -> list[Finding]:
    """Every object that differs, one Finding each, ordered by name then kind.

    An entry that is extra (or missing) because what it belongs to is (a new table's columns, grants, owner
    and comments) is left to that one finding; so is a partition's column changed exactly as its parent's.
    A constraint, index, trigger or policy missing under one name and extra under another on the same table,
    with the same definition once its own name is set aside, is one renamed object: "changed", under the
    expected name, `actual` saying "renamed to NEW".
    """
    missing = [key for key in expected.objects if key not in actual.objects]
    extra = [key for key in actual.objects if key not in expected.objects]
    findings: list[Finding] = []
    paired: set[tuple[str, str]] = set()
    for kind in RENAMED_KINDS:
        gone = [key for key in missing if key[0] == kind]
        new = [key for key in extra if key[0] == kind]
        for old_key in gone:
            parent, old_name = split_name(old_key[1])
            shape = _without_name(expected.objects[old_key], old_name)
            matches = [key for key in new if key not in paired and split_name(key[1])[0] == parent
                       and _without_name(actual.objects[key], split_name(key[1])[1]) == shape]
            if len(matches) != 1:
                continue
            [new_key] = matches
            paired.update((old_key, new_key))
            findings.append(Finding("changed", kind, old_key[1], expected.objects[old_key],
                                    f"renamed to {new_key[1]}; {actual.objects[new_key]}"))
    gone_keys = {key for key in missing if key not in paired}
    new_keys = {key for key in extra if key not in paired}
    findings += [Finding("missing", kind, name, expected.objects[(kind, name)], None)
                 for kind, name in gone_keys if not _implied((kind, name), gone_keys, expected.parents)]
    findings += [Finding("extra", kind, name, None, actual.objects[(kind, name)])
                 for kind, name in new_keys if not _implied((kind, name), new_keys, actual.parents)]
    changed = {key: (definition, actual.objects[key]) for key, definition in expected.objects.items()
               if key in actual.objects and actual.objects[key] != definition}
    findings += [Finding("changed", kind, name, *change) for (kind, name), change in changed.items()
                 # a partition's column changed with its parent's column (ALTER TYPE reaches both) is the parent's
                 if not any(changed.get(parent) == change for parent in expected.parents.get((kind, name), ()))]
    return sorted(findings, key=lambda f: (f.name, f.kind, f.state))


def _implied(key: Key, found: set[Key], parents: dict[Key, tuple[Key, ...]]) -> bool:
    """Whether an entry that is extra (or missing) belongs, at any remove, to one that is extra (or missing) too."""
    seen = {key}
    todo = list(parents.get(key, ()))
    while todo:
        parent = todo.pop()
        if parent in seen:
            continue
        if parent in found:
            return True
        seen.add(parent)
        todo.extend(parents.get(parent, ()))
    return False


_PART = re.compile(r'"(?:[^"]|"")*"|[^".]+')


def split_name(name: str) -> tuple[str, str]:
    """("langconnect.documents", "documents_pkey") from "langconnect.documents.documents_pkey" (quotes kept)."""
    parts = _PART.findall(name)
    return ".".join(parts[:-1]), parts[-1] if parts else ""


def _without_name(definition: str, name: str) -> str:
    """A definition with its own name (as pg_get_indexdef and pg_get_triggerdef print it) set aside."""
    return definition.replace(f" {name} ", " ? ", 1)
