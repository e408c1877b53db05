"""The lint rules: RULES, Finding, and the statement visitor that walks one file's pglast tree.

Three families of rules, each with a stable id (README lists them all):
- `idempotent-*` (errors): a file must be safe to run twice, because a run that dies
  between a statement and its history row, or a hand re-run, runs it again;
- `schema-protected*`: a migration keeps to the app schema and never changes the platform's
  schemas (auth, storage, ...) unless the file says `-- migrate:allow-schema X`. What the platform
  documents as the app's to do is allowed, for the whole project, by LintOptions.allow
  (MIGRATE_LINT_ALLOW): its policies on storage.objects, its triggers on auth.users calling app
  functions, rows of storage.buckets. A new function in a platform schema, and rows of a platform
  table the allowlist does not name, are warnings; anything else there is an error;
- `safety-*` (warnings): statements that lock or rewrite a table, or lose data.

FileLinter walks a file's statements in order, remembering what earlier statements guarantee
(an object dropped IF EXISTS, with a function's signature; a table created here, temporary or
not; the search_path). PL/pgSQL DO bodies are parsed too: an IF that checks the catalog in the
right sense, or an EXCEPTION handler for the SQLSTATE a second run raises, is a guard (Guard);
an unguarded statement inside a DO block is checked like any other. Which files, and the ignore
markers, are lint.py's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrate.settings import LintOptions

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Rule:
    """A lint rule: its id, how bad a finding is, and the general remedy."""

    id: str
    severity: str
    summary: str
    fix: str


RULES: dict[str, Rule] = {rule.id: rule for rule in (
    Rule("idempotent-create-table", ERROR, "CREATE TABLE (or TABLE AS / MATERIALIZED VIEW) without IF NOT EXISTS",
         "write CREATE TABLE IF NOT EXISTS"),
    Rule("idempotent-create-index", ERROR, "CREATE INDEX without IF NOT EXISTS (or without a name)",
         "name the index and write CREATE INDEX IF NOT EXISTS name ON ..."),
    Rule("idempotent-create-schema", ERROR, "CREATE SCHEMA without IF NOT EXISTS",
         "write CREATE SCHEMA IF NOT EXISTS"),
    Rule("idempotent-create-extension", ERROR, "CREATE EXTENSION without IF NOT EXISTS",
         "write CREATE EXTENSION IF NOT EXISTS"),
    Rule("idempotent-create-sequence", ERROR, "CREATE SEQUENCE without IF NOT EXISTS",
         "write CREATE SEQUENCE IF NOT EXISTS"),
    Rule("idempotent-add-column", ERROR, "ALTER TABLE ... ADD COLUMN without IF NOT EXISTS",
         "write ADD COLUMN IF NOT EXISTS"),
    Rule("idempotent-create-function", ERROR, "CREATE FUNCTION/PROCEDURE without OR REPLACE",
         "write CREATE OR REPLACE FUNCTION, or DROP FUNCTION IF EXISTS it (same argument types) earlier in the file"),
    Rule("idempotent-create-view", ERROR, "CREATE VIEW without OR REPLACE",
         "write CREATE OR REPLACE VIEW, or DROP VIEW IF EXISTS it earlier in the file"),
    Rule("idempotent-create-trigger", ERROR, "CREATE TRIGGER without OR REPLACE or an earlier DROP TRIGGER IF EXISTS",
         "put DROP TRIGGER IF EXISTS name ON table before it, or write CREATE OR REPLACE TRIGGER (PostgreSQL 14+)"),
    Rule("idempotent-create-policy", ERROR, "CREATE POLICY without an earlier DROP POLICY IF EXISTS",
         "put DROP POLICY IF EXISTS name ON table before it"),
    Rule("idempotent-create-type", ERROR, "CREATE TYPE/DOMAIN not guarded",
         "wrap it in a DO block that checks pg_type first, or put DROP TYPE IF EXISTS before it"),
    Rule("idempotent-add-constraint", ERROR, "ALTER TABLE ... ADD CONSTRAINT not guarded",
         "wrap it in a DO block that checks pg_constraint first, or put "
         "ALTER TABLE ... DROP CONSTRAINT IF EXISTS name before it"),
    Rule("idempotent-drop", ERROR, "DROP without IF EXISTS", "write DROP ... IF EXISTS"),
    Rule("schema-protected", ERROR, "creates, alters or drops an object in a protected schema",
         "keep to the app schema, or add `-- migrate:allow-schema NAME` to the file if the change is intended"),
    Rule("schema-protected-function", WARNING, "creates a function in a protected schema",
         "create it in the app schema (policies can call it there), or add `-- migrate:allow-schema NAME` to the file"),
    Rule("schema-protected-rows", WARNING, "writes rows of a platform table the lint allowlist does not name",
         "leave the platform's rows to the platform, or allow them with MIGRATE_LINT_ALLOW=rows:SCHEMA.TABLE"),
    Rule("safety-create-index-concurrently", WARNING,
         "CREATE INDEX without CONCURRENTLY on a table this file did not create (blocks writes while it builds)",
         "write CREATE INDEX CONCURRENTLY IF NOT EXISTS, in a file of its own since it runs outside a transaction"),
    Rule("safety-add-column-not-null", WARNING,
         "ADD COLUMN ... NOT NULL without a DEFAULT (fails on a non-empty table)",
         "add a DEFAULT, or add the column nullable, backfill it, then SET NOT NULL"),
    Rule("safety-alter-column-type", WARNING, "ALTER COLUMN ... TYPE (may rewrite the table under an exclusive lock)",
         "add a new column, backfill it and switch over, or make sure the table is small"),
    Rule("safety-drop-column", WARNING, "DROP COLUMN (loses data, breaks code that still reads it)",
         "stop using the column in the application first; keep a backup"),
    Rule("safety-drop-table", WARNING, "DROP TABLE (loses data)",
         "make sure the data is no longer needed; keep a backup"),
    Rule("safety-search-path", WARNING, "the file never sets search_path",
         "start the file with SET search_path = <schema>, public;"),
    Rule("lint-unknown-rule", WARNING, "a lint-ignore marker names a rule that does not exist",
         "use a rule id from `inv lint` output or the README"),
    Rule("lint-skipped", WARNING, "the file runs through psql, so lint cannot parse it",
         "move psql meta-commands out of migrations, or review this file by hand"),
    Rule("syntax-error", ERROR, "the file is not valid SQL", "fix the SQL"),
    Rule("file-unreadable", ERROR, "the file cannot be read as UTF-8 text (migrate refuses it)",
         "re-save it as UTF-8, or fix its permissions"),
    Rule("file-name", ERROR, "a .sql file in a track folder whose name is not <digits>_<description>.sql "
         "(migrate refuses the track)", "rename it to <digits>_<description>.sql such as "
         "004_add_user_preferences.sql, or end it in .down.sql to have it ignored"),
    Rule("plpgsql-syntax-error", ERROR, "a DO block or LANGUAGE plpgsql function body PostgreSQL would refuse "
         "(a PL/pgSQL syntax error)", "fix the PL/pgSQL"),
    Rule("psql-meta-command-refused", ERROR,
         "a psql meta-command that leaves the target database or runs a program (\\c, \\connect, \\!, a pipe)",
         "remove it: each database gets its migrations from its own environment; run programs outside migrations"),
)}

GUARD_CONDITION = re.compile(r"\bexists\b|\bfound\b|\bto_reg[a-z]*\s*\(|\bpg_[a-z_]+|\binformation_schema\b",
                             re.IGNORECASE)

DROP_KINDS = {
    "OBJECT_TABLE": "table", "OBJECT_FOREIGN_TABLE": "table", "OBJECT_INDEX": "index",
    "OBJECT_SEQUENCE": "sequence", "OBJECT_VIEW": "view", "OBJECT_MATVIEW": "materialized view",
    "OBJECT_SCHEMA": "schema", "OBJECT_EXTENSION": "extension", "OBJECT_FUNCTION": "function",
    "OBJECT_PROCEDURE": "function", "OBJECT_ROUTINE": "function", "OBJECT_AGGREGATE": "aggregate",
    "OBJECT_TRIGGER": "trigger", "OBJECT_POLICY": "policy", "OBJECT_RULE": "rule", "OBJECT_TYPE": "type",
    "OBJECT_DOMAIN": "type",
}
ON_TABLE_KINDS = {"trigger", "policy", "rule"}
# Functions the platform (Supabase) ships in its schemas: replacing one is a change to the platform,
# an error, where creating a new function there is a warning.
PLATFORM_FUNCTIONS: dict[str, frozenset[str]] = {
    "auth": frozenset({"uid", "role", "email", "jwt"}),
    "storage": frozenset({"foldername", "filename", "extension", "search", "get_size_by_bucket", "can_insert_object",
                          "list_objects_with_delimiter", "list_multipart_uploads_with_delimiter", "operation",
                          "update_updated_at_column"}),
    "realtime": frozenset({"send", "topic", "broadcast_changes", "apply_rls", "subscription_check_filters",
                           "list_changes", "quote_wal2json", "cast", "to_regrole", "build_prepared_statement_sql",
                           "check_equality_op", "is_visible_through_filters"}),
}

# The SQLSTATE a second run of each kind of statement raises (a CREATE or ADD: the object is already
# there), or a run of a DROP without IF EXISTS once the object is gone. Measured on PostgreSQL 15
# and 18 (tests/test_lint.py::test_the_rerun_sqlstates_are_the_servers). An EXCEPTION handler
# guards a statement only if it catches this code.
RERUN_SQLSTATE: dict[str, str] = {
    "table": "42P07", "index": "42P07", "view": "42P07", "materialized view": "42P07", "sequence": "42P07",
    "schema": "42P06", "extension": "42710", "function": "42723", "trigger": "42710", "policy": "42710",
    "type": "42710", "column": "42701", "constraint": "42710", "constraint UNIQUE": "42P07",
    "constraint EXCLUDE": "42P07", "constraint PRIMARY KEY": "42P16",
    "drop table": "42P01", "drop view": "42P01", "drop materialized view": "42P01", "drop sequence": "42P01",
    "drop index": "42704", "drop function": "42883", "drop schema": "3F000", "drop type": "42704",
    "drop trigger": "42704", "drop policy": "42704", "drop rule": "42704", "drop extension": "42704",
    "drop aggregate": "42883", "drop column": "42703", "drop constraint": "42704", "drop role": "42704",
    "drop database": "3D000", "drop tablespace": "42704", "drop subscription": "42704",
}
# PL/pgSQL condition names of those codes (a name ending in 000 names a whole class).
CONDITIONS: dict[str, str] = {
    "duplicate_table": "42P07", "duplicate_object": "42710", "duplicate_schema": "42P06",
    "duplicate_function": "42723", "duplicate_column": "42701", "invalid_table_definition": "42P16",
    "undefined_table": "42P01", "undefined_object": "42704", "undefined_function": "42883",
    "undefined_column": "42703", "invalid_schema_name": "3F000", "invalid_catalog_name": "3D000",
    "syntax_error_or_access_rule_violation": "42000",
}
CONDITION_NAMES = {code: name for name, code in CONDITIONS.items()}
SQLSTATE_CODE = re.compile(r"^[0-9A-Z]{5}$", re.IGNORECASE)


@dataclass(frozen=True)
class Guard:
    """What keeps a statement inside a DO block from failing when the block runs again.

    A CREATE or ADD fails on a second run because the object is there; a DROP without IF EXISTS
    because it is gone. An IF whose condition checks the catalog guards a create only when it
    runs it while the object is absent (IF NOT EXISTS, NOT FOUND, ... IS NULL, count = 0, or the
    ELSE of the opposite), and a drop only while it is present: `if_absent` / `if_present`. A
    condition whose sense the lint cannot read sets both, as a guard for either. An EXCEPTION
    handler guards only against the conditions it names (`caught`: names or SQLSTATEs, or OTHERS).
    """

    if_absent: bool = False
    if_present: bool = False
    caught: tuple[str, ...] = ()

    def __or__(self, other: Guard) -> Guard:
        return Guard(self.if_absent or other.if_absent, self.if_present or other.if_present,
                     self.caught + tuple(c for c in other.caught if c not in self.caught))

    def catches(self, sqlstate: str) -> bool:
        for condition in self.caught:
            code = CONDITIONS.get(condition.lower(), condition.upper())
            if condition.lower() == "others" or code == sqlstate or (code.endswith("000") and code[:2] == sqlstate[:2]):
                return True
        return False

    def handler_text(self) -> list[str]:
        """The caught conditions as PL/pgSQL writes them: a name, or SQLSTATE 'XXXXX' for a code."""
        return [c.lower() if c.lower() in CONDITIONS or c.lower() == "others" or not SQLSTATE_CODE.match(c)
                else f"SQLSTATE '{c.upper()}'" for c in self.caught]

    def covers(self, sqlstate: str, drop: bool = False) -> bool:
        return (self.if_present if drop else self.if_absent) or self.catches(sqlstate)


NO_GUARD = Guard()


@dataclass(frozen=True)
class Finding:
    """One rule broken at one place of one file."""

    path: str
    line: int
    column: int
    rule: str
    message: str
    fix: str

    @property
    def severity(self) -> str:
        return RULES[self.rule].severity

    def format(self) -> str:
        return f"{self.path}:{self.line}:{self.column} {self.rule} {self.severity}: {self.message} ({self.fix})"

    def as_json(self) -> dict[str, Any]:
        return {"file": self.path, "line": self.line, "column": self.column, "rule": self.rule,
                "severity": self.severity, "message": self.message, "fix": self.fix}



# --- names in pglast ASTs ---------------------------------------------------------------------

def _enum(value: Any) -> str:
    return getattr(value, "name", str(value))


def _strings(node: Any) -> list[str]:
    """The dotted name a node spells: RangeVar, String, a tuple of String, TypeName, ObjectWithArgs."""
    if node is None:
        return []
    if isinstance(node, str):
        return [node]
    kind = type(node).__name__
    if kind == "RangeVar":
        return [part for part in (node.schemaname, node.relname) if part]
    if kind == "String":
        return [node.sval]
    if kind == "TypeName":
        return _strings(node.names)
    if kind == "ObjectWithArgs":
        return _strings(node.objname)
    if isinstance(node, (tuple, list)):
        return [s for item in node for s in _strings(item)]
    return []


def _qualified(node: Any) -> tuple[str | None, str]:
    names = _strings(node)
    if not names:
        return None, ""
    return (names[-2] if len(names) > 1 else None), names[-1]


def _label(schema: str | None, name: str) -> str:
    if not name:  # a schema itself
        return schema or ""
    return f"{schema}.{name}" if schema else name


TypeKey = tuple[str | None, str, int]  # (schema or None, name, array dimensions) of an argument type


def _same_schema(one: str | None, other: str | None) -> bool:
    """Unqualified names match any schema: the lint does not resolve them."""
    return one is None or other is None or one == other


def _type_key(type_name: Any) -> TypeKey:
    """An argument type as PostgreSQL identifies it: `integer`, `int` and `pg_catalog.int4` are one type."""
    schema, name = _qualified(type_name)
    return (None if schema == "pg_catalog" else schema), name, len(type_name.arrayBounds or ())


def _same_signature(one: tuple[TypeKey, ...], other: tuple[TypeKey, ...]) -> bool:
    return len(one) == len(other) and all(
        a[1:] == b[1:] and _same_schema(a[0], b[0]) for a, b in zip(one, other, strict=True))


INPUT_MODES = {"FUNC_PARAM_IN", "FUNC_PARAM_INOUT", "FUNC_PARAM_VARIADIC", "FUNC_PARAM_DEFAULT"}


def _signature(parameters: Any) -> tuple[TypeKey, ...]:
    """The input argument types of CREATE FUNCTION's parameters (OUT and TABLE ones are not part of it)."""
    return tuple(_type_key(p.argType) for p in parameters or () if _enum(p.mode) in INPUT_MODES)


@dataclass(frozen=True)
class _Key:
    """An object a DROP ... IF EXISTS removed, to recognise a guarded CREATE of the same object.

    `signature`: a function's input argument types; None when the DROP named none (`DROP FUNCTION f`
    drops the one function of that name, whatever its arguments).
    """

    kind: str
    schema: str | None
    name: str
    table: str = ""
    signature: tuple[TypeKey, ...] | None = None

    def matches(self, other: _Key) -> bool:
        same = (self.kind == other.kind and self.name == other.name and self.table == other.table
                and _same_schema(self.schema, other.schema))
        if same and self.signature is not None and other.signature is not None:
            return _same_signature(self.signature, other.signature)
        return same


# --- checking one file ------------------------------------------------------------------------

Where = Callable[[int | None], tuple[int, int]]


class FileLinter:
    """Walks one file's statements in order, remembering what earlier statements guarantee."""

    def __init__(self, options: LintOptions, app_schema: str, path: str, text: str, allowed: set[str]) -> None:
        """`allowed`: the protected schemas the file allows itself to change (`-- migrate:allow-schema`)."""
        self.options = options
        self.app_schema = app_schema
        self.path = path
        self.text = text
        self.protected = set(options.protected_schemas) - allowed
        self.allow = set(options.allow)  # `policy:storage.objects`, `rows:auth.*`: see settings.DEFAULT_LINT_ALLOW
        self.findings: list[tuple[int, Finding]] = []  # (statement index, finding)
        self.dropped: list[_Key] = []
        self.created_tables: set[tuple[str | None, str]] = set()
        self.temp_tables: set[str] = set()
        self.current_schema: str | None = None
        self.sets_search_path = False
        self.statement_index = 0
        self._lines: list[str] | None = None  # self.text split into lines, on first need

    # findings
    def add(self, rule: str, where: tuple[int, int], message: str, fix: str | None = None) -> None:
        line, column = where
        self.findings.append((self.statement_index,
                              Finding(self.path, line, column, rule, message, fix or RULES[rule].fix)))

    def was_dropped(self, key: _Key) -> bool:
        return any(dropped.matches(key) for dropped in self.dropped)

    def table_is_new(self, relation: Any) -> bool:
        schema, name = _qualified(relation)
        return any(n == name and (s is None or schema is None or s == schema) for s, n in self.created_tables)

    def touch(self, schema: str | None, what: str, where: tuple[int, int], entry: str | None = None) -> None:
        """Report a change to an object in a protected schema (unqualified: the search_path's first).

        `entry`: the MIGRATE_LINT_ALLOW entry that would allow it, named in the fix.
        """
        resolved = schema or self.current_schema
        if resolved and resolved in self.protected:
            setting = f" allow it for the project with MIGRATE_LINT_ALLOW={entry}," if entry else ""
            self.add("schema-protected", where,
                     f"{what} changes the protected schema {resolved}",
                     f"keep to the app schema {self.app_schema},{setting} or add `-- migrate:allow-schema {resolved}` "
                     "to this file if the change is intended")

    def allows(self, kind: str, schema: str | None, table: str) -> bool:
        """Whether the allowlist lets the app attach `kind` (policy, trigger, rows) to this platform table."""
        resolved = schema or self.current_schema
        return resolved is not None and bool({f"{kind}:{resolved}.{table}", f"{kind}:{resolved}.*"} & self.allow)

    def attach(self, kind: str, schema: str | None, table: str, what: str, where: tuple[int, int]) -> None:
        """The app's own policy or trigger on a table: fine on the allowlist's platform tables, else touch()."""
        if not self.allows(kind, schema, table):
            self.touch(schema, what, where, f"{kind}:{schema or self.current_schema}.{table}")

    def write_rows(self, verb: str, relation: Any, where: Where) -> None:
        """INSERT/UPDATE/DELETE/MERGE/TRUNCATE of a platform table's rows: a warning unless the allowlist names it."""
        schema, table = _qualified(relation)
        resolved = schema or self.current_schema
        if resolved in self.protected and not self.allows("rows", schema, table):
            label = f"{resolved}.{table}"
            self.add("schema-protected-rows", where(getattr(relation, "location", None)),
                     f"{verb} {label} writes rows of the platform's table {label}",
                     f"leave the platform's rows to the platform, or allow it for the project with "
                     f"MIGRATE_LINT_ALLOW=rows:{label}")

    def rerun(self, rule: str, at: tuple[int, int], message: str, guard: Guard, kind: str,
              fix: str | None = None, catalog: str = "the catalog") -> None:
        """Report `rule` unless `guard` keeps the statement from failing when it runs again.

        `kind` names the statement in RERUN_SQLSTATE (a `drop ...` kind fails once the object is
        gone, any other once it is there). When a guard is there but the wrong one, the message
        says why it does not hold and the fix says what would.
        """
        drop = kind.startswith("drop ")
        sqlstate = RERUN_SQLSTATE[kind]
        if guard.covers(sqlstate, drop):
            return
        needed = CONDITION_NAMES.get(sqlstate, f"SQLSTATE '{sqlstate}'")
        if guard.caught:
            caught = guard.handler_text()
            message += (f": its EXCEPTION handler catches {' or '.join(caught)}, but a "
                        f"{'run without the object' if drop else 'second run'} raises {needed} ({sqlstate})")
            fix = f"write EXCEPTION WHEN {' OR '.join([*caught, needed])}, or check {catalog} first"
        elif guard.if_present or guard.if_absent:
            verb, turned = ("does not exist", "IF EXISTS (...)") if drop else ("exists", "IF NOT EXISTS (...) or "
                                                                                "IF NOT FOUND")
            message += f": the IF around it runs it when what it checks {verb}"
            fix = f"turn the condition around: {turned} THEN"
        self.add(rule, at, message, fix)

    def is_temp(self, relation: Any) -> bool:
        """A temporary table this file created: gone before any second run (each file has a fresh session)."""
        schema, name = _qualified(relation)
        return schema in (None, "pg_temp") and name in self.temp_tables

    # statements
    def check(self, node: Any, where: Where, guard: Guard = NO_GUARD) -> None:
        kind = type(node).__name__
        handler = getattr(self, f"_check_{kind}", None)
        if handler is not None:
            handler(node, where, guard)

    def _check_CreateStmt(self, node: Any, where: Where, guard: Guard) -> None:
        schema, name = _qualified(node.relation)
        at = where(node.relation.location)
        self.created_tables.add((schema, name))
        if node.relation.relpersistence == "t":  # lives in pg_temp, and only until the session ends
            self.temp_tables.add(name)
            return
        if not node.if_not_exists and not self.was_dropped(_Key("table", schema, name)):
            self.rerun("idempotent-create-table", at, f"CREATE TABLE {_label(schema, name)} has no IF NOT EXISTS",
                       guard, "table")
        self.touch(schema, f"CREATE TABLE {_label(schema, name)}", at)

    def _check_CreateTableAsStmt(self, node: Any, where: Where, guard: Guard) -> None:
        relation = node.into.rel
        schema, name = _qualified(relation)
        matview = _enum(node.objtype) == "OBJECT_MATVIEW"
        kind = "MATERIALIZED VIEW" if matview else "TABLE"
        what = f"CREATE {kind} {_label(schema, name)}"
        at = where(relation.location)
        if not matview:
            self.created_tables.add((schema, name))
        if relation.relpersistence == "t":
            self.temp_tables.add(name)
            return
        key = _Key(kind.lower(), schema, name)
        if not node.if_not_exists and not self.was_dropped(key):
            self.rerun("idempotent-create-table", at, f"{what} has no IF NOT EXISTS", guard, kind.lower(),
                       f"write CREATE {kind} IF NOT EXISTS")
        self.touch(schema, what, at)

    def _check_IndexStmt(self, node: Any, where: Where, guard: Guard) -> None:
        schema, table = _qualified(node.relation)
        at = where(None)
        name = node.idxname
        if self.is_temp(node.relation):  # an index of a temp table is temporary too
            return
        if not node.if_not_exists and not (name and self.was_dropped(_Key("index", schema, name))):
            if name:
                self.rerun("idempotent-create-index", at, f"CREATE INDEX {name} has no IF NOT EXISTS", guard, "index")
            else:  # no guard helps: the name is new every time
                self.add("idempotent-create-index", at,
                         f"CREATE INDEX on {_label(schema, table)} has no name, so every run adds another index")
        if not node.concurrent and not self.table_is_new(node.relation):
            self.add("safety-create-index-concurrently", at,
                     f"CREATE INDEX {name or '(unnamed)'} on {_label(schema, table)} without CONCURRENTLY "
                     "blocks writes to the table while the index builds")
        self.touch(schema, f"CREATE INDEX on {_label(schema, table)}", at)

    def _check_CreateSchemaStmt(self, node: Any, where: Where, guard: Guard) -> None:
        at = where(None)
        name = node.schemaname or ""
        if name and not node.if_not_exists and not self.was_dropped(_Key("schema", None, name)):
            self.rerun("idempotent-create-schema", at, f"CREATE SCHEMA {name} has no IF NOT EXISTS", guard, "schema",
                       catalog="pg_namespace")
        if name:
            self.touch(name, f"CREATE SCHEMA {name}", at)

    def _check_CreateExtensionStmt(self, node: Any, where: Where, guard: Guard) -> None:
        at = where(None)
        name = node.extname
        if not node.if_not_exists and not self.was_dropped(_Key("extension", None, name)):
            self.rerun("idempotent-create-extension", at, f"CREATE EXTENSION {name} has no IF NOT EXISTS", guard,
                       "extension", catalog="pg_extension")
        for option in node.options or ():
            if option.defname == "schema":
                self.touch(_strings(option.arg)[0], f"CREATE EXTENSION {name}", at)

    def _check_CreateSeqStmt(self, node: Any, where: Where, guard: Guard) -> None:
        schema, name = _qualified(node.sequence)
        at = where(node.sequence.location)
        if node.sequence.relpersistence == "t":
            return
        if not node.if_not_exists and not self.was_dropped(_Key("sequence", schema, name)):
            self.rerun("idempotent-create-sequence", at, f"CREATE SEQUENCE {_label(schema, name)} has no IF NOT EXISTS",
                       guard, "sequence")
        self.touch(schema, f"CREATE SEQUENCE {_label(schema, name)}", at)

    def _check_AlterTableStmt(self, node: Any, where: Where, guard: Guard) -> None:
        schema, table = _qualified(node.relation)
        label = _label(schema, table)
        if self.is_temp(node.relation):
            return
        new_table = self.table_is_new(node.relation)
        for command in node.cmds or ():
            subtype = _enum(command.subtype)
            definition = command.def_
            at = where(getattr(definition, "location", None))
            if subtype == "AT_AddColumn":
                column = definition.colname
                if not command.missing_ok:
                    self.rerun("idempotent-add-column", at, f"ALTER TABLE {label} ADD COLUMN {column} has no IF NOT "
                               "EXISTS", guard, "column", catalog="information_schema.columns")
                constraints = {_enum(c.contype) for c in definition.constraints or ()}
                not_null = bool(constraints & {"CONSTR_NOTNULL", "CONSTR_PRIMARY"}) or definition.is_not_null
                filled = constraints & {"CONSTR_DEFAULT", "CONSTR_IDENTITY", "CONSTR_GENERATED"}
                if not_null and not filled and not new_table:
                    self.add("safety-add-column-not-null", at,
                             f"ADD COLUMN {column} NOT NULL without a DEFAULT fails if {label} has rows")
            elif subtype == "AT_AddConstraint":
                name = getattr(definition, "conname", None)
                key = _Key("constraint", schema, name or "", table)
                kind = {"CONSTR_UNIQUE": "constraint UNIQUE", "CONSTR_EXCLUSION": "constraint EXCLUDE",
                        "CONSTR_PRIMARY": "constraint PRIMARY KEY"}.get(_enum(definition.contype), "constraint")
                if not (name and self.was_dropped(key)):
                    self.rerun("idempotent-add-constraint", at,
                               f"ALTER TABLE {label} ADD CONSTRAINT {name or '(unnamed)'} fails when it already exists",
                               guard, kind, catalog="pg_constraint")
            elif subtype == "AT_AlterColumnType":
                self.add("safety-alter-column-type", at,
                         f"ALTER TABLE {label} ALTER COLUMN {command.name} TYPE may rewrite the table under an "
                         "exclusive lock")
            elif subtype == "AT_DropColumn":
                if not command.missing_ok:
                    self.rerun("idempotent-drop", at, f"ALTER TABLE {label} DROP COLUMN {command.name} has no IF "
                               "EXISTS", guard, "drop column", "write DROP COLUMN IF EXISTS")
                self.add("safety-drop-column", at, f"ALTER TABLE {label} DROP COLUMN {command.name} loses its data")
            elif subtype == "AT_DropConstraint":
                if command.missing_ok:
                    self.dropped.append(_Key("constraint", schema, command.name, table))
                else:
                    self.rerun("idempotent-drop", at, f"ALTER TABLE {label} DROP CONSTRAINT {command.name} has no IF "
                               "EXISTS", guard, "drop constraint", "write DROP CONSTRAINT IF EXISTS")
        self.touch(schema, f"ALTER TABLE {label}", where(node.relation.location))

    def _check_CreateFunctionStmt(self, node: Any, where: Where, guard: Guard) -> None:
        schema, name = _qualified(node.funcname)
        what = f"CREATE {'PROCEDURE' if node.is_procedure else 'FUNCTION'} {_label(schema, name)}"
        at = where(None)
        key = _Key("function", schema, name, signature=_signature(node.parameters))
        if not node.replace and not self.was_dropped(key):
            self.rerun("idempotent-create-function", at, f"{what} has no OR REPLACE", guard, "function",
                       catalog="pg_proc")
        resolved = schema or self.current_schema
        if resolved not in self.protected:
            return
        if name in PLATFORM_FUNCTIONS.get(resolved, ()):
            self.add("schema-protected", at, f"{what} replaces the platform's function {resolved}.{name}()",
                     f"leave {resolved}.{name}() to the platform; give the app's function a name in the app schema "
                     f"{self.app_schema}")
        else:
            self.add("schema-protected-function", at, f"{what} creates a function in the protected schema {resolved}",
                     f"create it in the app schema {self.app_schema} (policies can call {self.app_schema}.{name}()), "
                     f"or add `-- migrate:allow-schema {resolved}` to this file")

    def _check_ViewStmt(self, node: Any, where: Where, guard: Guard) -> None:
        schema, name = _qualified(node.view)
        at = where(node.view.location)
        if node.view.relpersistence == "t":
            return
        if not node.replace and not self.was_dropped(_Key("view", schema, name)):
            self.rerun("idempotent-create-view", at, f"CREATE VIEW {_label(schema, name)} has no OR REPLACE", guard,
                       "view")
        self.touch(schema, f"CREATE VIEW {_label(schema, name)}", at)

    def _check_CreateTrigStmt(self, node: Any, where: Where, guard: Guard) -> None:
        schema, table = _qualified(node.relation)
        at = where(None)
        key = _Key("trigger", schema, node.trigname, table)
        if not node.replace and not self.was_dropped(key):
            self.rerun("idempotent-create-trigger", at,
                       f"CREATE TRIGGER {node.trigname} ON {_label(schema, table)} fails when it already exists",
                       guard, "trigger",
                       f"put DROP TRIGGER IF EXISTS {node.trigname} ON {_label(schema, table)}; before it",
                       catalog="pg_trigger")
        what = f"CREATE TRIGGER {node.trigname} ON {_label(schema, table)}"
        if not self.allows("trigger", schema, table):
            self.attach("trigger", schema, table, what, at)
            return
        function_schema, function = _qualified(node.funcname)
        resolved = function_schema or self.current_schema
        if resolved in self.protected:  # the allowlist lets the app's functions run there, not the platform's
            self.add("schema-protected", at,
                     f"{what} calls {resolved}.{function}(), a function of the protected schema {resolved}",
                     f"call a function of the app schema {self.app_schema}")

    def _check_CreatePolicyStmt(self, node: Any, where: Where, guard: Guard) -> None:
        schema, table = _qualified(node.table)
        at = where(None)
        key = _Key("policy", schema, node.policy_name, table)
        if not self.was_dropped(key):
            self.rerun("idempotent-create-policy", at,
                       f"CREATE POLICY {node.policy_name} ON {_label(schema, table)} fails when it already exists",
                       guard, "policy",
                       f"put DROP POLICY IF EXISTS {node.policy_name} ON {_label(schema, table)}; before it",
                       catalog="pg_policies")
        self.attach("policy", schema, table, f"CREATE POLICY {node.policy_name} ON {_label(schema, table)}", at)

    def _create_type(self, names: Any, where: Where, guard: Guard, what: str = "TYPE") -> None:
        schema, name = _qualified(names)
        at = where(None)
        if not self.was_dropped(_Key("type", schema, name)):
            self.rerun("idempotent-create-type", at, f"CREATE {what} {_label(schema, name)} fails when it already "
                       "exists", guard, "type", f"wrap it in a DO block that checks pg_type first, or put DROP {what} "
                       f"IF EXISTS {_label(schema, name)} before it", catalog="pg_type")
        self.touch(schema, f"CREATE {what} {_label(schema, name)}", at)

    def _check_CompositeTypeStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._create_type(node.typevar, where, guard)

    def _check_CreateEnumStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._create_type(node.typeName, where, guard)

    def _check_CreateRangeStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._create_type(node.typeName, where, guard)

    def _check_CreateDomainStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._create_type(node.domainname, where, guard, "DOMAIN")

    def _check_DefineStmt(self, node: Any, where: Where, guard: Guard) -> None:
        if _enum(node.kind) == "OBJECT_TYPE":
            self._create_type(node.defnames, where, guard)
        else:
            schema, name = _qualified(node.defnames)
            self.touch(schema, f"CREATE {_enum(node.kind)[7:]} {_label(schema, name)}", where(None))

    def _check_DropStmt(self, node: Any, where: Where, guard: Guard) -> None:
        at = where(None)
        remove = _enum(node.removeType)
        kind = DROP_KINDS.get(remove, remove[7:].lower().replace("_", " "))
        for target in node.objects or ():
            if kind in ON_TABLE_KINDS:
                names = _strings(target)
                table_schema, table = _qualified(names[:-1])
                key = _Key(kind, table_schema, names[-1], table)
                label = f"{names[-1]} ON {_label(table_schema, table)}"
            elif kind in ("schema", "extension"):
                name = _strings(target)[0]
                key = _Key(kind, name if kind == "schema" else None, name)
                label = name
            else:
                schema, name = _qualified(target)
                signature = None
                if kind == "function" and not getattr(target, "args_unspecified", True):
                    signature = tuple(_type_key(t) for t in target.objargs or ())
                key = _Key(kind, schema, name, signature=signature)
                label = _label(schema, name)
            if kind == "table" and key.schema in (None, "pg_temp") and key.name in self.temp_tables:
                continue  # this file's own temporary table
            if node.missing_ok:
                self.dropped.append(key)
            elif f"drop {kind}" in RERUN_SQLSTATE:
                self.rerun("idempotent-drop", at, f"DROP {kind.upper()} {label} has no IF EXISTS", guard,
                           f"drop {kind}", f"write DROP {kind.upper()} IF EXISTS")
            elif guard == NO_GUARD:
                self.add("idempotent-drop", at, f"DROP {kind.upper()} {label} has no IF EXISTS",
                         f"write DROP {kind.upper()} IF EXISTS")
            if kind == "table":
                self.add("safety-drop-table", at, f"DROP TABLE {label} loses its data")
            if kind in ("policy", "trigger"):
                self.attach(kind, key.schema, key.table, f"DROP {kind.upper()} {label}", at)
            elif kind != "extension":
                self.touch(key.schema, f"DROP {kind.upper()} {label}", at)

    def _check_generic_drop(self, node: Any, where: Where, guard: Guard, what: str, kind: str) -> None:
        if not getattr(node, "missing_ok", True):
            self.rerun("idempotent-drop", where(None), f"{what} has no IF EXISTS", guard, kind,
                       "write DROP ... IF EXISTS")

    def _check_DropRoleStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._check_generic_drop(node, where, guard, "DROP ROLE", "drop role")

    def _check_DropdbStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._check_generic_drop(node, where, guard, f"DROP DATABASE {node.dbname}", "drop database")

    def _check_DropTableSpaceStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._check_generic_drop(node, where, guard, f"DROP TABLESPACE {node.tablespacename}", "drop tablespace")

    def _check_DropSubscriptionStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._check_generic_drop(node, where, guard, f"DROP SUBSCRIPTION {node.subname}", "drop subscription")

    # statements that only alter: schema isolation
    def _touch_node(self, target: Any, what: str, where: Where) -> None:
        schema, name = _qualified(target)
        self.touch(schema, f"{what} {_label(schema, name)}", where(getattr(target, "location", None)))

    def _check_AlterSeqStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._touch_node(node.sequence, "ALTER SEQUENCE", where)

    def _check_AlterPolicyStmt(self, node: Any, where: Where, guard: Guard) -> None:
        schema, table = _qualified(node.table)
        self.attach("policy", schema, table, f"ALTER POLICY {node.policy_name} ON {_label(schema, table)}",
                    where(node.table.location))

    def _check_RuleStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._touch_node(node.relation, f"CREATE RULE {node.rulename} ON", where)

    def _check_AlterFunctionStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._touch_node(node.func, "ALTER FUNCTION", where)

    def _check_AlterEnumStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._touch_node(node.typeName, "ALTER TYPE", where)

    def _check_AlterDomainStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._touch_node(node.typeName, "ALTER DOMAIN", where)

    def _object_schema(self, object_type: str, target: Any) -> tuple[str | None, str]:
        if object_type == "OBJECT_SCHEMA":
            return (_strings(target) or [None])[0], ""
        return _qualified(target)

    def _check_RenameStmt(self, node: Any, where: Where, guard: Guard) -> None:
        object_type = _enum(node.renameType)
        if object_type == "OBJECT_SCHEMA":
            self.touch(node.subname, f"ALTER SCHEMA {node.subname} RENAME", where(None))
            return
        schema, name = self._object_schema(object_type, node.relation or node.object)
        if object_type in ("OBJECT_TRIGGER", "OBJECT_POLICY", "OBJECT_RULE") and node.relation is None:
            schema, name = _qualified(_strings(node.object)[:-1])
        if object_type in ("OBJECT_TRIGGER", "OBJECT_POLICY"):  # the app's own trigger or policy, by its table
            self.attach(object_type[7:].lower(), schema, name, f"RENAME {_label(schema, name)}", where(None))
            return
        self.touch(schema, f"RENAME {_label(schema, name)}", where(None))

    def _check_AlterObjectSchemaStmt(self, node: Any, where: Where, guard: Guard) -> None:
        object_type = _enum(node.objectType)
        schema, name = self._object_schema(object_type, node.relation or node.object)
        self.touch(schema, f"ALTER ... SET SCHEMA of {_label(schema, name)}", where(None))
        self.touch(node.newschema, f"ALTER {_label(schema, name)} SET SCHEMA {node.newschema}", where(None))

    def _check_AlterOwnerStmt(self, node: Any, where: Where, guard: Guard) -> None:
        schema, name = self._object_schema(_enum(node.objectType), node.relation or node.object)
        self.touch(schema, f"ALTER ... OWNER of {_label(schema, name)}", where(None))

    def _check_CommentStmt(self, node: Any, where: Where, guard: Guard) -> None:
        object_type = _enum(node.objtype)
        target = node.object
        if object_type in ("OBJECT_TRIGGER", "OBJECT_POLICY", "OBJECT_RULE", "OBJECT_TABCONSTRAINT"):
            target = _strings(target)[:-1]
        elif object_type == "OBJECT_COLUMN":
            target = _strings(target)[:-1]
        schema, name = self._object_schema(object_type, target)
        if object_type in ("OBJECT_TRIGGER", "OBJECT_POLICY"):
            self.attach(object_type[7:].lower(), schema, name, f"COMMENT ON {_label(schema, name)}", where(None))
            return
        self.touch(schema, f"COMMENT ON {_label(schema, name)}", where(None))

    def _check_GrantStmt(self, node: Any, where: Where, guard: Guard) -> None:
        verb = "GRANT" if node.is_grant else "REVOKE"
        target_type = _enum(node.targtype)
        object_type = _enum(node.objtype)
        for target in node.objects or ():
            if target_type == "ACL_TARGET_ALL_IN_SCHEMA" or object_type == "OBJECT_SCHEMA":
                name = _strings(target)[0]
                self.touch(name, f"{verb} ON SCHEMA {name}", where(None))
            else:
                schema, name = _qualified(target)
                self.touch(schema, f"{verb} ON {_label(schema, name)}", where(None))

    def _check_AlterDefaultPrivilegesStmt(self, node: Any, where: Where, guard: Guard) -> None:
        for option in node.options or ():
            if option.defname == "schemas":
                for name in _strings(option.arg):
                    self.touch(name, f"ALTER DEFAULT PRIVILEGES IN SCHEMA {name}", where(None))

    # rows of the platform's tables
    def _with(self, node: Any, where: Where, guard: Guard) -> None:
        """The data-modifying statements of a WITH clause (`WITH gone AS (DELETE FROM ...) SELECT ...`)."""
        clause = getattr(node, "withClause", None)
        for cte in (clause.ctes or ()) if clause is not None else ():
            self.check(cte.ctequery, where, guard)

    def _check_InsertStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._with(node, where, guard)
        self.write_rows("INSERT INTO", node.relation, where)

    def _check_UpdateStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._with(node, where, guard)
        self.write_rows("UPDATE", node.relation, where)

    def _check_DeleteStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._with(node, where, guard)
        self.write_rows("DELETE FROM", node.relation, where)

    def _check_MergeStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._with(node, where, guard)
        self.write_rows("MERGE INTO", node.relation, where)

    def _check_SelectStmt(self, node: Any, where: Where, guard: Guard) -> None:
        self._with(node, where, guard)

    def _check_TruncateStmt(self, node: Any, where: Where, guard: Guard) -> None:
        for relation in node.relations or ():
            self.write_rows("TRUNCATE", relation, where)

    def _check_VariableSetStmt(self, node: Any, where: Where, guard: Guard) -> None:
        if (node.name or "").lower() != "search_path":
            return
        self.sets_search_path = True
        first = None
        for argument in node.args or ():
            value = getattr(argument, "val", None)
            names = _strings(value)
            if names:
                first = names[0]
                break
        self.current_schema = first if _enum(node.kind) == "VAR_SET_VALUE" else None

    def _check_DoStmt(self, node: Any, where: Where, guard: Guard) -> None:
        language, body, body_at = "plpgsql", None, None
        for option in node.args or ():
            if option.defname == "language":
                language = _strings(option.arg)[0].lower()
            elif option.defname == "as":
                body = _strings(option.arg)[0]
                body_at = getattr(option, "arg_location", None)
        if language != "plpgsql" or body is None:
            return
        body_line, _ = where(body_at)
        for lineno, query, inner_guard in _do_body_statements(body):
            self._check_inner(query, body_line + max(lineno, 1) - 1, guard | inner_guard)

    def _check_inner(self, query: str, line: int, guard: Guard) -> None:
        from pglast import parser

        from migrate.files.tree import raw_statements

        try:
            raws = raw_statements(query)
        except parser.ParseError:
            return  # PostgreSQL reports it when the block runs; the lint cannot place it better
        if self._lines is None:  # split once per file: it was split again for every statement of every DO body
            self._lines = self.text.split("\n")
        source_line = self._lines[line - 1] if 0 < line <= len(self._lines) else ""
        words = query.split()
        column = source_line.find(words[0]) + 1 if words and words[0] in source_line else 1
        for raw in raws:
            self.check(raw.stmt, lambda _offset: (line, column), guard)


def _do_body_statements(body: str) -> list[tuple[int, str, Guard]]:
    """(line in the body, SQL, its Guard) of each plain SQL statement of a PL/pgSQL DO body.

    A statement is guarded by the IFs around it whose condition checks the catalog (EXISTS, FOUND,
    to_regclass, pg_*, information_schema), in the sense that condition reads (see Guard), and by
    the EXCEPTION handlers of the blocks around it, for the conditions they name.
    """
    from pglast import parser

    tag = "migrate_lint"
    while f"${tag}$" in body:
        tag += "_"
    source = f"CREATE FUNCTION pg_temp.migrate_lint() RETURNS void LANGUAGE plpgsql AS ${tag}${body}${tag}$"
    try:
        tree = json.loads(parser.parse_plpgsql_json(source))
    except Exception:  # noqa: BLE001 - any PL/pgSQL parse failure: leave it to PostgreSQL
        return []
    found: list[tuple[int, str, Guard]] = []

    def expression(node: dict[str, Any]) -> str:
        return node.get("PLpgSQL_expr", {}).get("query", "")

    def walk(value: Any, guard: Guard) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item, guard)
            return
        if not isinstance(value, dict):
            return
        for key, inner in value.items():
            if key == "PLpgSQL_stmt_execsql":
                found.append((int(inner.get("lineno", 1)), expression(inner.get("sqlstmt", {})), guard))
            elif key == "PLpgSQL_stmt_if":
                then_guard, else_guard = _condition_guards(expression(inner.get("cond", {})))
                walk(inner.get("then_body", []), guard | then_guard)
                for branch in inner.get("elsif_list", []):
                    elsif = branch.get("PLpgSQL_if_elsif", {})
                    branch_then, branch_else = _condition_guards(expression(elsif.get("cond", {})))
                    walk(elsif.get("stmts", []), guard | branch_then)
                    else_guard = else_guard | branch_else
                walk(inner.get("else_body", []), guard | else_guard)
            elif key == "PLpgSQL_stmt_block":
                handlers = inner.get("exceptions", {}).get("PLpgSQL_exception_block", {}).get("exc_list", [])
                caught = tuple(condition.get("PLpgSQL_condition", {}).get("condname", "")
                               for handler in handlers
                               for condition in handler.get("PLpgSQL_exception", {}).get("conditions", []))
                walk(inner.get("body", []), guard | Guard(caught=caught))
                walk(inner.get("exceptions", {}), guard)
            else:
                walk(inner, guard)

    walk(tree, NO_GUARD)
    return found


def _condition_guards(condition: str) -> tuple[Guard, Guard]:
    """The Guard an IF condition gives its THEN branch, and the one it gives its ELSE branch."""
    if not GUARD_CONDITION.search(condition):
        return NO_GUARD, NO_GUARD
    from pglast import parser

    try:
        sense = _sense(parser.parse_sql(f"SELECT ({condition})")[0].stmt.targetList[0].val)
    except Exception:  # noqa: BLE001 - a condition pglast cannot read: a guard either way, as before
        sense = None
    if sense == ABSENT:
        return Guard(if_absent=True), Guard(if_present=True)
    if sense == PRESENT:
        return Guard(if_present=True), Guard(if_absent=True)
    either = Guard(if_absent=True, if_present=True)  # checks the catalog, in a sense the lint cannot read
    return either, either


ABSENT, PRESENT, MIXED = "absent", "present", "mixed"
FLIPPED = {ABSENT: PRESENT, PRESENT: ABSENT, MIXED: MIXED, None: None}


def _sense(node: Any) -> str | None:
    """When a condition holds: ABSENT (only while the checked object is missing: NOT EXISTS, NOT FOUND,
    IS NULL, count = 0), PRESENT (EXISTS, FOUND, IS NOT NULL, count > 0), MIXED, or None (says nothing)."""
    kind = type(node).__name__
    if kind == "BoolExpr":
        operator = _enum(node.boolop)
        parts = [_sense(arg) for arg in node.args]
        if operator == "NOT_EXPR":
            return FLIPPED[parts[0]]
        senses = set(parts) - ({None} if operator == "AND_EXPR" else set())  # OR: a plain part may run it anyway
        return senses.pop() if len(senses) == 1 else (MIXED if senses else None)
    if kind == "SubLink" and _enum(node.subLinkType) == "EXISTS_SUBLINK":
        return PRESENT
    if kind == "ColumnRef" and [s.lower() for s in _strings(node.fields)] == ["found"]:
        return PRESENT
    if kind == "NullTest":
        return ABSENT if _enum(node.nulltesttype) == "IS_NULL" else PRESENT
    if kind == "BooleanTest":
        test = _enum(node.booltesttype)
        return _sense(node.arg) if test in ("IS_TRUE", "IS_NOT_FALSE") else FLIPPED[_sense(node.arg)]
    if kind == "A_Expr" and _enum(node.kind) == "AEXPR_OP":
        return _count_sense(_strings(node.name)[-1], node.lexpr, node.rexpr)
    return None


def _count_sense(operator: str, left: Any, right: Any) -> str | None:
    """`(SELECT count(*) ...) = 0` holds while the object is absent, `> 0` (`<> 0`, `>= 1`) while present."""
    def constant(node: Any) -> int | None:
        value = getattr(node, "val", None) if type(node).__name__ == "A_Const" else None
        return getattr(value, "ival", None) if type(value).__name__ == "Integer" else None

    mirror = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
    number = constant(right)
    if number is None:
        number, operator = constant(left), mirror.get(operator, operator)
    if number == 0:
        return {"=": ABSENT, "<=": ABSENT, ">": PRESENT, "<>": PRESENT, "!=": PRESENT}.get(operator)
    if number == 1:
        return {"<": ABSENT, ">=": PRESENT, "=": PRESENT}.get(operator)
    return None
