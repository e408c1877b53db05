"""`lint`: check migration files for what the seed asks of authors, before a database sees them.

Three families of rules, each with a stable id (README lists them all):
- `idempotent-*` (errors): a file must be safe to run twice, because a run that dies
  between a statement and its history row, or a hand re-run, runs it again;
- `schema-protected` (error): a migration keeps to the app schema and never changes the
  platform's schemas (auth, storage, ...) unless the file says `-- migrate:allow-schema X`;
- `safety-*` (warnings): statements that lock or rewrite a table, or lose data.

Files are split by statements.parse_file (the same pglast split `migrate` runs), then each
statement's pglast AST is checked. PL/pgSQL DO bodies are parsed too, so a DO block that
checks for existence first counts as a guard, and an unguarded statement inside one does not.
`-- migrate:lint-ignore RULE[, RULE]` in the comment lines right above a statement silences
those rules for it; before the first statement it silences them for the whole file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migrate.errors import ConfigError, ValidationError
from migrate.files.sqlfiles import (
    NAME_RE,
    MigrationFile,
    checksum_of,
    decode_text,
    find_migration_versions,
    is_ignored,
)
from migrate.files.statements import (
    FileRefused,
    Script,
    Statement,
    allowed_schemas,
    blank_restrict_lines,
    locate,
    parse_file,
)
from migrate.paths import display_path
from migrate.settings import Settings
from migrate.tracks import build_tracks

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
         "write CREATE OR REPLACE FUNCTION, or DROP FUNCTION IF EXISTS it earlier in the file"),
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
    Rule("plpgsql-syntax-error", ERROR, "a DO block or LANGUAGE plpgsql function body PostgreSQL would refuse "
         "(a PL/pgSQL syntax error)", "fix the PL/pgSQL"),
    Rule("psql-meta-command-refused", ERROR,
         "a psql meta-command that leaves the target database or runs a program (\\c, \\connect, \\!, a pipe)",
         "remove it: each database gets its migrations from its own environment; run programs outside migrations"),
)}

IGNORE_MARKER = re.compile(r"^\s*--\s*migrate:lint-ignore\b(.*)$", re.IGNORECASE)
COMMENT_LINE = re.compile(r"^\s*--")
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


@dataclass
class LintResult:
    """Every finding of every linted file, in file order."""

    files: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]


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


@dataclass(frozen=True)
class _Key:
    """An object a DROP ... IF EXISTS removed, to recognise a guarded CREATE of the same object."""

    kind: str
    schema: str | None
    name: str
    table: str = ""

    def matches(self, other: _Key) -> bool:
        same_schema = self.schema is None or other.schema is None or self.schema == other.schema
        return self.kind == other.kind and self.name == other.name and self.table == other.table and same_schema


# --- checking one file ------------------------------------------------------------------------

Where = Callable[[int | None], tuple[int, int]]


class _FileLinter:
    """Walks one file's statements in order, remembering what earlier statements guarantee."""

    def __init__(self, settings: Settings, path: str, text: str) -> None:
        self.settings = settings
        self.path = path
        self.text = text
        self.protected = set(settings.lint.protected_schemas) - allowed_schemas(text)
        self.findings: list[tuple[int, Finding]] = []  # (statement index, finding)
        self.dropped: list[_Key] = []
        self.created_tables: set[tuple[str | None, str]] = set()
        self.current_schema: str | None = None
        self.sets_search_path = False
        self.statement_index = 0

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

    def touch(self, schema: str | None, what: str, where: tuple[int, int]) -> None:
        """Report a change to an object in a protected schema (unqualified: the search_path's first)."""
        resolved = schema or self.current_schema
        if resolved and resolved in self.protected:
            self.add("schema-protected", where,
                     f"{what} changes the protected schema {resolved}",
                     f"keep to the app schema {self.settings.schema}, or add `-- migrate:allow-schema {resolved}` "
                     "to this file if the change is intended")

    # statements
    def check(self, node: Any, where: Where, guarded: bool = False) -> None:
        kind = type(node).__name__
        handler = getattr(self, f"_check_{kind}", None)
        if handler is not None:
            handler(node, where, guarded)

    def _check_CreateStmt(self, node: Any, where: Where, guarded: bool) -> None:
        schema, name = _qualified(node.relation)
        at = where(node.relation.location)
        if not node.if_not_exists and not guarded and not self.was_dropped(_Key("table", schema, name)):
            self.add("idempotent-create-table", at, f"CREATE TABLE {_label(schema, name)} has no IF NOT EXISTS")
        self.created_tables.add((schema, name))
        self.touch(schema, f"CREATE TABLE {_label(schema, name)}", at)

    def _check_CreateTableAsStmt(self, node: Any, where: Where, guarded: bool) -> None:
        relation = node.into.rel
        schema, name = _qualified(relation)
        matview = _enum(node.objtype) == "OBJECT_MATVIEW"
        kind = "MATERIALIZED VIEW" if matview else "TABLE"
        what = f"CREATE {kind} {_label(schema, name)}"
        at = where(relation.location)
        key = _Key("materialized view" if matview else "table", schema, name)
        if not node.if_not_exists and not guarded and not self.was_dropped(key):
            self.add("idempotent-create-table", at, f"{what} has no IF NOT EXISTS",
                     f"write CREATE {kind} IF NOT EXISTS")
        if not matview:
            self.created_tables.add((schema, name))
        self.touch(schema, what, at)

    def _check_IndexStmt(self, node: Any, where: Where, guarded: bool) -> None:
        schema, table = _qualified(node.relation)
        at = where(None)
        name = node.idxname
        if not guarded and not node.if_not_exists and not (name and self.was_dropped(_Key("index", schema, name))):
            if name:
                self.add("idempotent-create-index", at, f"CREATE INDEX {name} has no IF NOT EXISTS")
            else:
                self.add("idempotent-create-index", at,
                         f"CREATE INDEX on {_label(schema, table)} has no name, so every run adds another index")
        if not node.concurrent and not self.table_is_new(node.relation):
            self.add("safety-create-index-concurrently", at,
                     f"CREATE INDEX {name or '(unnamed)'} on {_label(schema, table)} without CONCURRENTLY "
                     "blocks writes to the table while the index builds")
        self.touch(schema, f"CREATE INDEX on {_label(schema, table)}", at)

    def _check_CreateSchemaStmt(self, node: Any, where: Where, guarded: bool) -> None:
        at = where(None)
        name = node.schemaname or ""
        if name and not node.if_not_exists and not guarded and not self.was_dropped(_Key("schema", None, name)):
            self.add("idempotent-create-schema", at, f"CREATE SCHEMA {name} has no IF NOT EXISTS")
        if name:
            self.touch(name, f"CREATE SCHEMA {name}", at)

    def _check_CreateExtensionStmt(self, node: Any, where: Where, guarded: bool) -> None:
        at = where(None)
        name = node.extname
        if not node.if_not_exists and not guarded and not self.was_dropped(_Key("extension", None, name)):
            self.add("idempotent-create-extension", at, f"CREATE EXTENSION {name} has no IF NOT EXISTS")
        for option in node.options or ():
            if option.defname == "schema":
                self.touch(_strings(option.arg)[0], f"CREATE EXTENSION {name}", at)

    def _check_CreateSeqStmt(self, node: Any, where: Where, guarded: bool) -> None:
        schema, name = _qualified(node.sequence)
        at = where(node.sequence.location)
        if not node.if_not_exists and not guarded and not self.was_dropped(_Key("sequence", schema, name)):
            self.add("idempotent-create-sequence", at, f"CREATE SEQUENCE {_label(schema, name)} has no IF NOT EXISTS")
        self.touch(schema, f"CREATE SEQUENCE {_label(schema, name)}", at)

    def _check_AlterTableStmt(self, node: Any, where: Where, guarded: bool) -> None:
        schema, table = _qualified(node.relation)
        label = _label(schema, table)
        new_table = self.table_is_new(node.relation)
        for command in node.cmds or ():
            subtype = _enum(command.subtype)
            definition = command.def_
            at = where(getattr(definition, "location", None))
            if subtype == "AT_AddColumn":
                column = definition.colname
                if not command.missing_ok and not guarded:
                    self.add("idempotent-add-column", at,
                             f"ALTER TABLE {label} ADD COLUMN {column} has no IF NOT EXISTS")
                constraints = {_enum(c.contype) for c in definition.constraints or ()}
                not_null = bool(constraints & {"CONSTR_NOTNULL", "CONSTR_PRIMARY"}) or definition.is_not_null
                filled = constraints & {"CONSTR_DEFAULT", "CONSTR_IDENTITY", "CONSTR_GENERATED"}
                if not_null and not filled and not new_table:
                    self.add("safety-add-column-not-null", at,
                             f"ADD COLUMN {column} NOT NULL without a DEFAULT fails if {label} has rows")
            elif subtype == "AT_AddConstraint":
                name = getattr(definition, "conname", None)
                key = _Key("constraint", schema, name or "", table)
                if not guarded and not (name and self.was_dropped(key)):
                    self.add("idempotent-add-constraint", at,
                             f"ALTER TABLE {label} ADD CONSTRAINT {name or '(unnamed)'} fails when it already exists")
            elif subtype == "AT_AlterColumnType":
                self.add("safety-alter-column-type", at,
                         f"ALTER TABLE {label} ALTER COLUMN {command.name} TYPE may rewrite the table under an "
                         "exclusive lock")
            elif subtype == "AT_DropColumn":
                if not command.missing_ok and not guarded:
                    self.add("idempotent-drop", at, f"ALTER TABLE {label} DROP COLUMN {command.name} has no IF EXISTS",
                             "write DROP COLUMN IF EXISTS")
                self.add("safety-drop-column", at, f"ALTER TABLE {label} DROP COLUMN {command.name} loses its data")
            elif subtype == "AT_DropConstraint":
                if command.missing_ok:
                    self.dropped.append(_Key("constraint", schema, command.name, table))
                elif not guarded:
                    self.add("idempotent-drop", at,
                             f"ALTER TABLE {label} DROP CONSTRAINT {command.name} has no IF EXISTS",
                             "write DROP CONSTRAINT IF EXISTS")
        self.touch(schema, f"ALTER TABLE {label}", where(node.relation.location))

    def _check_CreateFunctionStmt(self, node: Any, where: Where, guarded: bool) -> None:
        schema, name = _qualified(node.funcname)
        what = f"CREATE {'PROCEDURE' if node.is_procedure else 'FUNCTION'} {_label(schema, name)}"
        at = where(None)
        if not node.replace and not guarded and not self.was_dropped(_Key("function", schema, name)):
            self.add("idempotent-create-function", at, f"{what} has no OR REPLACE")
        self.touch(schema, what, at)

    def _check_ViewStmt(self, node: Any, where: Where, guarded: bool) -> None:
        schema, name = _qualified(node.view)
        at = where(node.view.location)
        if not node.replace and not guarded and not self.was_dropped(_Key("view", schema, name)):
            self.add("idempotent-create-view", at, f"CREATE VIEW {_label(schema, name)} has no OR REPLACE")
        self.touch(schema, f"CREATE VIEW {_label(schema, name)}", at)

    def _check_CreateTrigStmt(self, node: Any, where: Where, guarded: bool) -> None:
        schema, table = _qualified(node.relation)
        at = where(None)
        key = _Key("trigger", schema, node.trigname, table)
        if not node.replace and not guarded and not self.was_dropped(key):
            self.add("idempotent-create-trigger", at,
                     f"CREATE TRIGGER {node.trigname} ON {_label(schema, table)} fails when it already exists",
                     f"put DROP TRIGGER IF EXISTS {node.trigname} ON {_label(schema, table)}; before it")
        self.touch(schema, f"CREATE TRIGGER {node.trigname} ON {_label(schema, table)}", at)

    def _check_CreatePolicyStmt(self, node: Any, where: Where, guarded: bool) -> None:
        schema, table = _qualified(node.table)
        at = where(None)
        key = _Key("policy", schema, node.policy_name, table)
        if not guarded and not self.was_dropped(key):
            self.add("idempotent-create-policy", at,
                     f"CREATE POLICY {node.policy_name} ON {_label(schema, table)} fails when it already exists",
                     f"put DROP POLICY IF EXISTS {node.policy_name} ON {_label(schema, table)}; before it")
        self.touch(schema, f"CREATE POLICY {node.policy_name} ON {_label(schema, table)}", at)

    def _create_type(self, names: Any, where: Where, guarded: bool, what: str = "TYPE") -> None:
        schema, name = _qualified(names)
        at = where(None)
        if not guarded and not self.was_dropped(_Key("type", schema, name)):
            self.add("idempotent-create-type", at, f"CREATE {what} {_label(schema, name)} fails when it already exists",
                     f"wrap it in a DO block that checks pg_type first, or put DROP {what} IF EXISTS "
                     f"{_label(schema, name)} before it")
        self.touch(schema, f"CREATE {what} {_label(schema, name)}", at)

    def _check_CompositeTypeStmt(self, node: Any, where: Where, guarded: bool) -> None:
        self._create_type(node.typevar, where, guarded)

    def _check_CreateEnumStmt(self, node: Any, where: Where, guarded: bool) -> None:
        self._create_type(node.typeName, where, guarded)

    def _check_CreateRangeStmt(self, node: Any, where: Where, guarded: bool) -> None:
        self._create_type(node.typeName, where, guarded)

    def _check_CreateDomainStmt(self, node: Any, where: Where, guarded: bool) -> None:
        self._create_type(node.domainname, where, guarded, "DOMAIN")

    def _check_DefineStmt(self, node: Any, where: Where, guarded: bool) -> None:
        if _enum(node.kind) == "OBJECT_TYPE":
            self._create_type(node.defnames, where, guarded)
        else:
            schema, name = _qualified(node.defnames)
            self.touch(schema, f"CREATE {_enum(node.kind)[7:]} {_label(schema, name)}", where(None))

    def _check_DropStmt(self, node: Any, where: Where, guarded: bool) -> None:
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
                key = _Key(kind, schema, name)
                label = _label(schema, name)
            if node.missing_ok:
                self.dropped.append(key)
            elif not guarded:
                self.add("idempotent-drop", at, f"DROP {kind.upper()} {label} has no IF EXISTS",
                         f"write DROP {kind.upper()} IF EXISTS")
            if kind == "table":
                self.add("safety-drop-table", at, f"DROP TABLE {label} loses its data")
            if kind != "extension":
                self.touch(key.schema, f"DROP {kind.upper()} {label}", at)

    def _check_generic_drop(self, node: Any, where: Where, guarded: bool, what: str) -> None:
        if not getattr(node, "missing_ok", True) and not guarded:
            self.add("idempotent-drop", where(None), f"{what} has no IF EXISTS", "write DROP ... IF EXISTS")

    def _check_DropRoleStmt(self, node: Any, where: Where, guarded: bool) -> None:
        self._check_generic_drop(node, where, guarded, "DROP ROLE")

    def _check_DropdbStmt(self, node: Any, where: Where, guarded: bool) -> None:
        self._check_generic_drop(node, where, guarded, f"DROP DATABASE {node.dbname}")

    def _check_DropTableSpaceStmt(self, node: Any, where: Where, guarded: bool) -> None:
        self._check_generic_drop(node, where, guarded, f"DROP TABLESPACE {node.tablespacename}")

    def _check_DropSubscriptionStmt(self, node: Any, where: Where, guarded: bool) -> None:
        self._check_generic_drop(node, where, guarded, f"DROP SUBSCRIPTION {node.subname}")

    # statements that only alter: schema isolation
    def _touch_node(self, target: Any, what: str, where: Where) -> None:
        schema, name = _qualified(target)
        self.touch(schema, f"{what} {_label(schema, name)}", where(getattr(target, "location", None)))

    def _check_AlterSeqStmt(self, node: Any, where: Where, guarded: bool) -> None:
        self._touch_node(node.sequence, "ALTER SEQUENCE", where)

    def _check_AlterPolicyStmt(self, node: Any, where: Where, guarded: bool) -> None:
        self._touch_node(node.table, f"ALTER POLICY {node.policy_name} ON", where)

    def _check_RuleStmt(self, node: Any, where: Where, guarded: bool) -> None:
        self._touch_node(node.relation, f"CREATE RULE {node.rulename} ON", where)

    def _check_AlterFunctionStmt(self, node: Any, where: Where, guarded: bool) -> None:
        self._touch_node(node.func, "ALTER FUNCTION", where)

    def _check_AlterEnumStmt(self, node: Any, where: Where, guarded: bool) -> None:
        self._touch_node(node.typeName, "ALTER TYPE", where)

    def _check_AlterDomainStmt(self, node: Any, where: Where, guarded: bool) -> None:
        self._touch_node(node.typeName, "ALTER DOMAIN", where)

    def _object_schema(self, object_type: str, target: Any) -> tuple[str | None, str]:
        if object_type == "OBJECT_SCHEMA":
            return (_strings(target) or [None])[0], ""
        return _qualified(target)

    def _check_RenameStmt(self, node: Any, where: Where, guarded: bool) -> None:
        object_type = _enum(node.renameType)
        if object_type == "OBJECT_SCHEMA":
            self.touch(node.subname, f"ALTER SCHEMA {node.subname} RENAME", where(None))
            return
        schema, name = self._object_schema(object_type, node.relation or node.object)
        if object_type in ("OBJECT_TRIGGER", "OBJECT_POLICY", "OBJECT_RULE") and node.relation is None:
            schema, name = _qualified(_strings(node.object)[:-1])
        self.touch(schema, f"RENAME {_label(schema, name)}", where(None))

    def _check_AlterObjectSchemaStmt(self, node: Any, where: Where, guarded: bool) -> None:
        object_type = _enum(node.objectType)
        schema, name = self._object_schema(object_type, node.relation or node.object)
        self.touch(schema, f"ALTER ... SET SCHEMA of {_label(schema, name)}", where(None))
        self.touch(node.newschema, f"ALTER {_label(schema, name)} SET SCHEMA {node.newschema}", where(None))

    def _check_AlterOwnerStmt(self, node: Any, where: Where, guarded: bool) -> None:
        schema, name = self._object_schema(_enum(node.objectType), node.relation or node.object)
        self.touch(schema, f"ALTER ... OWNER of {_label(schema, name)}", where(None))

    def _check_CommentStmt(self, node: Any, where: Where, guarded: bool) -> None:
        object_type = _enum(node.objtype)
        target = node.object
        if object_type in ("OBJECT_TRIGGER", "OBJECT_POLICY", "OBJECT_RULE", "OBJECT_TABCONSTRAINT"):
            target = _strings(target)[:-1]
        elif object_type == "OBJECT_COLUMN":
            target = _strings(target)[:-1]
        schema, name = self._object_schema(object_type, target)
        self.touch(schema, f"COMMENT ON {_label(schema, name)}", where(None))

    def _check_GrantStmt(self, node: Any, where: Where, guarded: bool) -> None:
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

    def _check_AlterDefaultPrivilegesStmt(self, node: Any, where: Where, guarded: bool) -> None:
        for option in node.options or ():
            if option.defname == "schemas":
                for name in _strings(option.arg):
                    self.touch(name, f"ALTER DEFAULT PRIVILEGES IN SCHEMA {name}", where(None))

    def _check_VariableSetStmt(self, node: Any, where: Where, guarded: bool) -> None:
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

    def _check_DoStmt(self, node: Any, where: Where, guarded: bool) -> None:
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
        for lineno, query, inner_guarded in _do_body_statements(body):
            self._check_inner(query, body_line + max(lineno, 1) - 1, guarded or inner_guarded)

    def _check_inner(self, query: str, line: int, guarded: bool) -> None:
        from pglast import parser

        try:
            raws = parser.parse_sql(query)
        except parser.ParseError:
            return  # PostgreSQL reports it when the block runs; the lint cannot place it better
        source_line = self.text.split("\n")[line - 1] if 0 < line <= self.text.count("\n") + 1 else ""
        words = query.split()
        column = source_line.find(words[0]) + 1 if words and words[0] in source_line else 1
        for raw in raws:
            self.check(raw.stmt, lambda _offset: (line, column), guarded)


def _do_body_statements(body: str) -> list[tuple[int, str, bool]]:
    """(line in the body, SQL, guarded?) of each plain SQL statement of a PL/pgSQL DO body.

    Guarded means inside an IF whose condition checks the catalog (EXISTS, FOUND, to_regclass,
    pg_*, information_schema) or inside a block with an EXCEPTION handler: the statement cannot fail
    on a second run the way a bare one does.
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
    found: list[tuple[int, str, bool]] = []

    def walk(value: Any, guarded: bool) -> None:
        if isinstance(value, list):
            for item in value:
                walk(item, guarded)
            return
        if not isinstance(value, dict):
            return
        for key, inner in value.items():
            if key == "PLpgSQL_stmt_execsql":
                query = inner.get("sqlstmt", {}).get("PLpgSQL_expr", {}).get("query", "")
                found.append((int(inner.get("lineno", 1)), query, guarded))
            elif key == "PLpgSQL_stmt_if":
                condition = inner.get("cond", {}).get("PLpgSQL_expr", {}).get("query", "")
                checks = bool(GUARD_CONDITION.search(condition))
                walk(inner.get("then_body", []), guarded or checks)
                for branch in inner.get("elsif_list", []):
                    elsif = branch.get("PLpgSQL_if_elsif", {})
                    cond = elsif.get("cond", {}).get("PLpgSQL_expr", {}).get("query", "")
                    walk(elsif.get("stmts", []), guarded or bool(GUARD_CONDITION.search(cond)))
                walk(inner.get("else_body", []), guarded or checks)
            elif key == "PLpgSQL_stmt_block":
                walk(inner.get("body", []), guarded or "exceptions" in inner)
                walk(inner.get("exceptions", {}), guarded)
            else:
                walk(inner, guarded)

    walk(tree, False)
    return found


def _ignore_markers(text: str) -> list[tuple[int, int, list[str]]]:
    """(line, column, rule ids) of every `-- migrate:lint-ignore` comment line."""
    markers = []
    for number, line in enumerate(text.split("\n"), start=1):
        match = IGNORE_MARKER.match(line)
        if match:
            rules = [r for r in re.split(r"[\s,]+", match.group(1).strip()) if r]
            markers.append((number, line.index("--") + 1, rules))
    return markers


def _comment_block_above(lines: list[str], line: int) -> set[int]:
    """The 1-based numbers of the `--` comment lines directly above `line`."""
    block = set()
    number = line - 1
    while number >= 1 and COMMENT_LINE.match(lines[number - 1]):
        block.add(number)
        number -= 1
    return block


def lint_file(settings: Settings, migration_file: MigrationFile, script: Script | None = None) -> list[Finding]:
    """Every finding of one file, ignore markers applied, in line order.

    `script`: the file as migrate already parsed it (its pglast statements are reused, not parsed again).
    """
    path = display_path(migration_file.path, settings.root)
    if script is None:
        try:
            script = parse_file(migration_file, settings.root, lenient=True)
        except ValidationError as error:
            return [_refused(path, error)]
    refused = [_refused(path, error) for error in script.plpgsql_errors]
    if script.raws is None:
        return refused + [Finding(path, 1, 1, "lint-skipped", f"the file needs psql ({script.needs_psql}); "
                                  "it was not linted", RULES["lint-skipped"].fix)]
    text = blank_restrict_lines(migration_file.text)
    raws = script.raws
    linter = _FileLinter(settings, path, text)
    statements: list[Statement] = list(script.statements)
    for index, (statement, raw) in enumerate(zip(statements, raws, strict=True)):
        linter.statement_index = index

        def where(offset: int | None, statement: Statement = statement) -> tuple[int, int]:
            return locate(text, offset) if offset is not None and offset >= 0 else (statement.line, statement.column)

        linter.check(raw.stmt, where)
    findings = list(linter.findings)
    if not linter.sets_search_path:
        findings.append((-1, Finding(path, 1, 1, "safety-search-path",
                                     "the file never sets search_path, so unqualified names depend on the session",
                                     f"start the file with SET search_path = {settings.schema}, public;")))
    return sorted(_apply_ignores(findings, text, statements, path) + refused, key=lambda f: (f.line, f.column))


def _refused(path: str, error: ValidationError) -> Finding:
    """The finding for what parse_file refuses: FileRefused names its rule, place, problem and remedy."""
    if isinstance(error, FileRefused):
        return Finding(path, error.line, error.column, error.rule, error.problem, error.remedy)
    where, _, message = error.message.partition(": ")
    parts = where.rsplit(":", 2)
    line, column = (int(parts[1]), int(parts[2])) if len(parts) == 3 and parts[2].isdigit() else (1, 1)
    text, _, remedy = message.partition("; ")
    return Finding(path, line, column, "syntax-error", text,
                   remedy.replace(" (nothing was applied)", "") or RULES["syntax-error"].fix)


def _apply_ignores(findings: list[tuple[int, Finding]], text: str, statements: list[Statement],
                   path: str) -> list[Finding]:
    lines = text.split("\n")
    first_line = statements[0].line if statements else len(lines) + 1
    file_wide: set[str] = set()
    by_line: dict[int, set[str]] = {}
    unknown: list[Finding] = []
    for line, column, rules in _ignore_markers(text):
        for rule in rules:
            if rule not in RULES:
                unknown.append(Finding(path, line, column, "lint-unknown-rule",
                                       f"migrate:lint-ignore names an unknown rule {rule!r}",
                                       RULES["lint-unknown-rule"].fix))
        (file_wide.update(rules) if line < first_line else by_line.setdefault(line, set()).update(rules))
    kept: list[Finding] = []
    for index, finding in findings:
        if finding.rule in file_wide:
            continue
        if index >= 0:
            silenced = set().union(*(by_line.get(n, set()) for n in _comment_block_above(lines,
                                                                                          statements[index].line)))
            if finding.rule in silenced:
                continue
        kept.append(finding)
    kept.extend(f for f in unknown if "lint-unknown-rule" not in file_wide)
    return sorted(kept, key=lambda f: (f.line, f.column))


# --- which files ------------------------------------------------------------------------------

def read_any_file(path: Path, root: Path) -> MigrationFile:
    """A .sql file given on the command line, in a track folder or not."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{display_path(path, root)}: cannot read the file ({error.strerror})") from None
    text = decode_text(data, display_path(path, root))
    match = NAME_RE.match(path.name)
    version = match.group(1) if match else ""
    return MigrationFile(
        track=path.parent.name, version=version, number=int(version) if version else 0,
        description=match.group(2) if match else path.stem, directory=path.parent, name=path.name,
        text=text, checksum=checksum_of(data),
    )


def find_files_to_lint(settings: Settings, paths: Iterable[str] = ()) -> list[MigrationFile]:
    """The named files (folders: their .sql files), or every migration file of every track."""
    given = list(paths)
    if not given:
        return [f for track in build_tracks(settings.migrations_dir)
                for version in find_migration_versions(track, settings.root) for f in version.files]
    files: list[MigrationFile] = []
    for name in given:
        path = Path(name)
        path = path if path.is_absolute() else settings.root / path
        if path.is_dir():
            files.extend(read_any_file(p, settings.root) for p in sorted(path.iterdir())
                         if p.is_file() and not is_ignored(p))
        elif path.is_file():
            files.append(read_any_file(path, settings.root))
        else:
            raise ConfigError(f"{name}: no such file or folder; name migration files (or folders) to lint")
    return files


def lint_files(settings: Settings, files: Iterable[MigrationFile],
               scripts: Mapping[Path, Script] | None = None) -> LintResult:
    """Lint `files`; `scripts` (by file path) are files migrate already parsed, reused as they are."""
    result = LintResult()
    parsed = scripts or {}
    for migration_file in files:
        result.files.append(display_path(migration_file.path, settings.root))
        result.findings.extend(lint_file(settings, migration_file, parsed.get(migration_file.path)))
    return result
