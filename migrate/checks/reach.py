"""What SQL reaches beyond its own database and schema, read from the text itself with pglast.

The shadow database (shadow.py) and verify ask three questions before anything runs:

- Which statements change what every database on the server shares (`cluster_statements`):
  roles (CREATE/ALTER/DROP ROLE, USER, GROUP; role memberships; role settings), databases,
  tablespaces, ALTER SYSTEM, and subscriptions (they reach another server). Such a statement
  cannot be undone by dropping the shadow database, so it may run only on a disposable server.
- Which roles the SQL names (GRANT ... TO, CREATE POLICY ... TO, OWNER TO, SET ROLE, ...) and
  which it creates itself: the shadow creates the ones the files expect to find, never the ones
  the files create (their first run would fail).
- Which objects the SQL defines outside the app schema (functions, tables, policies and triggers
  attached to the platform's tables, extensions, publications, ...): a copy of the target's
  platform leaves them out, so the files create them in the shadow exactly as they once did on
  the target.

Statements inside DO blocks are read too (their PL/pgSQL parsed by pglast); an EXECUTE of a
string built at run time is searched for the words that start a cluster-wide statement, since
its text is unknown until it runs. Unqualified names are resolved the way PostgreSQL would:
against the first schema of the latest `SET search_path` before them (`public` by default).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

# Words that start a cluster-wide statement, for text pglast cannot read (a dynamic EXECUTE, a file
# that does not parse). USER MAPPING is per database: not cluster-wide.
CLUSTER_WORDS = re.compile(
    r"\b(?:(?:CREATE|ALTER|DROP)\s+(?:ROLE|USER(?!\s+MAPPING)|GROUP|DATABASE|TABLESPACE|SUBSCRIPTION)|ALTER\s+SYSTEM)\b",
    re.IGNORECASE)
SHARED_OBJECTS = {"OBJECT_ROLE": "ROLE", "OBJECT_DATABASE": "DATABASE", "OBJECT_TABLESPACE": "TABLESPACE"}
RELATION_STATEMENTS = {"CreateStmt": "relation", "ViewStmt": "view", "CreateSeqStmt": "sequence",
                       "CompositeTypeStmt": "typevar"}
TYPE_STATEMENTS = {"CreateEnumStmt": "typeName", "CreateRangeStmt": "typeName", "CreateDomainStmt": "domainname"}
# objects of the database that belong to no schema, created without IF NOT EXISTS: (pg_dump's name for
# their kind, the node's name field)
DATABASE_OBJECTS = {"CreateExtensionStmt": ("EXTENSION", "extname"),
                    "CreatePublicationStmt": ("PUBLICATION", "pubname"),
                    "CreateEventTrigStmt": ("EVENT TRIGGER", "trigname")}
DEFAULT_SCHEMA = "public"


@dataclass(frozen=True)
class ClusterStatement:
    """A statement that changes what every database on the server shares, and where it is."""

    line: int
    what: str  # e.g. "CREATE ROLE report_reader"

    def __str__(self) -> str:
        return f"{self.what} (line {self.line})"


@dataclass
class Reach:
    """What one SQL text (or several, merged) reaches: see the module doc."""

    cluster: list[ClusterStatement] = field(default_factory=list)
    roles_used: set[str] = field(default_factory=set)
    roles_created: set[str] = field(default_factory=set)
    schemas_created: set[str] = field(default_factory=set)
    relations: set[tuple[str, str]] = field(default_factory=set)  # (schema, name): tables, views, types, indexes
    routines: set[tuple[str, str]] = field(default_factory=set)  # (schema, name) of functions and procedures
    attachments: set[tuple[str, str, str]] = field(default_factory=set)  # (schema, table, policy or trigger name)
    database_objects: set[tuple[str, str]] = field(default_factory=set)  # ("EXTENSION", name), no IF NOT EXISTS
    readable: bool = True  # False: pglast could not read the text; only CLUSTER_WORDS were looked for

    def merge(self, other: Reach) -> Reach:
        """Both texts' reach (the cluster statements of `self` first)."""
        return Reach(self.cluster + other.cluster, self.roles_used | other.roles_used,
                     self.roles_created | other.roles_created, self.schemas_created | other.schemas_created,
                     self.relations | other.relations, self.routines | other.routines,
                     self.attachments | other.attachments, self.database_objects | other.database_objects,
                     self.readable and other.readable)

    @property
    def roles_expected(self) -> set[str]:
        """Roles the SQL names without creating them: they must exist before it runs."""
        return self.roles_used - self.roles_created


def merge_all(reaches: Iterable[Reach]) -> Reach:
    total = Reach()
    for reach in reaches:
        total = total.merge(reach)
    return total


def read_reach(text: str, schema: str = DEFAULT_SCHEMA) -> Reach:
    """The reach of one SQL text (plain SQL as pglast reads it; psql's lines already blanked);
    `schema`: where unqualified names go until the text sets its own search_path."""
    from pglast import parser

    try:
        parsed = json.loads(parser.parse_sql_json(text))
    except parser.ParseError:
        return _by_words(text)
    encoded = text.encode("utf-8")
    walker = _Walker(Reach(), schema)
    for raw in parsed.get("stmts", []):
        # pglast's JSON counts bytes; lines are counted in characters
        offset = len(encoded[:raw.get("stmt_location") or 0].decode("utf-8", errors="ignore"))
        walker.statement(raw["stmt"], _first_line(text, offset))
    return walker.reach


def reach_of_file(text: str) -> Reach:
    """The reach of a migration file's text, a psql file's included (its meta-commands blanked)."""
    from migrate.files.psqlscan import scan_psql
    from migrate.files.statements import blank_restrict_lines, sql_for_pglast

    psql = scan_psql(text)
    return read_reach(sql_for_pglast(text, psql) if psql.needs_psql else blank_restrict_lines(text))


def _first_line(text: str, offset: int) -> int:
    """The line of a statement's first word (pglast's location may point at the blanks before it)."""
    rest = text[offset:]
    return text.count("\n", 0, offset) + 1 + rest[:len(rest) - len(rest.lstrip())].count("\n")


def _by_words(text: str) -> Reach:
    """Text pglast cannot read: its cluster-wide statements by their first words only."""
    reach = Reach(readable=False)
    for match in CLUSTER_WORDS.finditer(text):
        reach.cluster.append(ClusterStatement(text.count("\n", 0, match.start()) + 1,
                                              " ".join(match.group(0).upper().split())))
    return reach


class _Walker:
    """Reads one statement after the other, keeping the search_path the statements set."""

    def __init__(self, reach: Reach, schema: str) -> None:
        self.reach = reach
        self.schema = schema

    def statement(self, stmt: dict[str, Any], line: int) -> None:
        kind, node = next(iter(stmt.items()))
        what = _cluster_what(kind, node)
        if what is not None:
            self.reach.cluster.append(ClusterStatement(line, what))
        self.reach.roles_used.update(_roles_named(stmt))
        if kind == "CreateRoleStmt":
            self.reach.roles_created.add(node["role"])
        elif kind == "VariableSetStmt" and node.get("name") == "search_path":
            self.schema = _first_schema(node) or DEFAULT_SCHEMA
        elif kind == "CreateSchemaStmt" and node.get("schemaname"):
            self.reach.schemas_created.add(node["schemaname"])
        elif kind == "DoStmt":
            self._do_block(node, line)
        self._defined(kind, node)

    def _defined(self, kind: str, node: dict[str, Any]) -> None:
        reach = self.reach
        if kind in RELATION_STATEMENTS:
            reach.relations.add(self._relation(node.get(RELATION_STATEMENTS[kind]) or {}))
        elif kind == "CreateTableAsStmt":
            reach.relations.add(self._relation((node.get("into") or {}).get("rel") or {}))
        elif kind == "IndexStmt" and node.get("idxname"):
            reach.relations.add((self._relation(node.get("relation") or {})[0], node["idxname"]))
        elif kind in TYPE_STATEMENTS:
            reach.relations.add(self._qualified(node.get(TYPE_STATEMENTS[kind]) or []))
        elif kind == "CreateFunctionStmt":
            reach.routines.add(self._qualified(node.get("funcname") or []))
        elif kind == "DefineStmt" and node.get("kind") == "OBJECT_AGGREGATE":
            reach.routines.add(self._qualified(node.get("defnames") or []))
        elif kind == "CreatePolicyStmt":
            schema, table = self._relation(node.get("table") or {})
            reach.attachments.add((schema, table, node.get("policy_name", "")))
        elif kind == "CreateTrigStmt":
            schema, table = self._relation(node.get("relation") or {})
            reach.attachments.add((schema, table, node.get("trigname", "")))
        elif kind in DATABASE_OBJECTS and not node.get("if_not_exists"):
            # CREATE EXTENSION IF NOT EXISTS finds the platform's own copy and does nothing: the platform keeps it
            # (its tables may use it); a plain CREATE must find none, as it once did on the target
            reach.database_objects.add((DATABASE_OBJECTS[kind][0], node.get(DATABASE_OBJECTS[kind][1], "")))

    def _relation(self, range_var: dict[str, Any]) -> tuple[str, str]:
        return range_var.get("schemaname") or self.schema, range_var.get("relname", "")

    def _qualified(self, names: list[Any]) -> tuple[str, str]:
        parts = [part.get("String", {}).get("sval", "") for part in names]
        if len(parts) >= 2:
            return parts[-2], parts[-1]
        return self.schema, parts[-1] if parts else ""

    def _do_block(self, node: dict[str, Any], line: int) -> None:
        """The statements of a PL/pgSQL DO block (static ones parsed, dynamic ones searched for words)."""
        options = {arg["DefElem"]["defname"]: arg["DefElem"].get("arg") for arg in node.get("args", [])
                   if "DefElem" in arg}
        language = ((options.get("language") or {}).get("String") or {}).get("sval", "plpgsql")
        body = ((options.get("as") or {}).get("String") or {}).get("sval")
        if body is None or language.lower() != "plpgsql":
            return
        for kind, text in _plpgsql_statements(body):
            if kind == "dynamic":
                for match in CLUSTER_WORDS.finditer(text):
                    self.reach.cluster.append(ClusterStatement(
                        line, f"EXECUTE of {' '.join(match.group(0).upper().split())} ... in a DO block"))
                continue
            inner = read_reach(text, self.schema)  # the block runs with the file's search_path
            for found in inner.cluster:
                self.reach.cluster.append(ClusterStatement(line, f"{found.what} in a DO block"))
            inner.cluster = []
            self.reach = self.reach.merge(inner)


def _plpgsql_statements(body: str) -> Iterator[tuple[str, str]]:
    """("static", SQL) for each SQL statement of a PL/pgSQL body, ("dynamic", expression) for each EXECUTE."""
    from pglast import parser

    tag = "$migrate_do$"
    while tag in body:
        tag = tag[:-1] + "x$"
    try:
        tree = json.loads(parser.parse_plpgsql_json(
            f"CREATE FUNCTION pg_temp.migrate_do() RETURNS void LANGUAGE plpgsql AS {tag}{body}{tag}"))
    except Exception:  # noqa: BLE001 - a body pglast cannot read: only its words are looked at
        for match in CLUSTER_WORDS.finditer(body):
            yield "dynamic", match.group(0)
        return
    yield from _walk_plpgsql(tree)


def _walk_plpgsql(tree: Any) -> Iterator[tuple[str, str]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key == "PLpgSQL_stmt_execsql":
                query = ((value.get("sqlstmt") or {}).get("PLpgSQL_expr") or {}).get("query")
                if query:
                    yield "static", query
            elif key == "PLpgSQL_stmt_dynexecute":
                query = ((value.get("query") or {}).get("PLpgSQL_expr") or {}).get("query")
                if query:
                    yield "dynamic", query
            yield from _walk_plpgsql(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _walk_plpgsql(value)


def _cluster_what(kind: str, node: dict[str, Any]) -> str | None:
    """How a cluster-wide statement is named in findings (`CREATE ROLE report_reader`); None for others."""
    if kind == "CreateRoleStmt":
        verb = {"ROLESTMT_USER": "CREATE USER", "ROLESTMT_GROUP": "CREATE GROUP"}.get(node.get("stmt_type", ""),
                                                                                      "CREATE ROLE")
        return f"{verb} {node.get('role', '')}"
    if kind in ("AlterRoleStmt", "AlterRoleSetStmt"):
        name = _role_name(node.get("role")) or "ALL"
        return f"ALTER ROLE {name}" + (" SET" if kind == "AlterRoleSetStmt" else "")
    if kind == "DropRoleStmt":
        return "DROP ROLE " + ", ".join(filter(None, (_role_name(role) for role in node.get("roles", []))))
    if kind == "GrantRoleStmt":
        granted = ", ".join(item.get("AccessPriv", {}).get("priv_name", "") for item in node.get("granted_roles", []))
        grantees = ", ".join(filter(None, (_role_name(role) for role in node.get("grantee_roles", []))))
        return f"GRANT {granted} TO {grantees}" if node.get("is_grant") else f"REVOKE {granted} FROM {grantees}"
    if kind == "RenameStmt" and node.get("renameType") in SHARED_OBJECTS:
        return f"ALTER {SHARED_OBJECTS[node['renameType']]} {node.get('subname', '')} RENAME TO {node.get('newname')}"
    if kind in ("CommentStmt", "SecLabelStmt") and node.get("objtype") in SHARED_OBJECTS:
        verb = "COMMENT ON" if kind == "CommentStmt" else "SECURITY LABEL ON"
        return f"{verb} {SHARED_OBJECTS[node['objtype']]} {_string(node.get('object'))}"
    if kind == "AlterOwnerStmt" and node.get("objectType") in SHARED_OBJECTS:
        return f"ALTER {SHARED_OBJECTS[node['objectType']]} {_string(node.get('object'))} OWNER TO " \
               f"{_role_name(node.get('newowner'))}"
    simple = {
        "AlterSystemStmt": lambda: f"ALTER SYSTEM SET {(node.get('setstmt') or {}).get('name', '')}",
        "CreateTableSpaceStmt": lambda: f"CREATE TABLESPACE {node.get('tablespacename', '')}",
        "DropTableSpaceStmt": lambda: f"DROP TABLESPACE {node.get('tablespacename', '')}",
        "AlterTableSpaceOptionsStmt": lambda: f"ALTER TABLESPACE {node.get('tablespacename', '')}",
        "AlterTableMoveAllStmt": lambda: "ALTER ... ALL IN TABLESPACE",
        "CreatedbStmt": lambda: f"CREATE DATABASE {node.get('dbname', '')}",
        "DropdbStmt": lambda: f"DROP DATABASE {node.get('dbname', '')}",
        "AlterDatabaseStmt": lambda: f"ALTER DATABASE {node.get('dbname', '')}",
        "AlterDatabaseSetStmt": lambda: f"ALTER DATABASE {node.get('dbname', '')} SET",
        "AlterDatabaseRefreshCollStmt": lambda: f"ALTER DATABASE {node.get('dbname', '')} REFRESH COLLATION VERSION",
        "CreateSubscriptionStmt": lambda: f"CREATE SUBSCRIPTION {node.get('subname', '')}",
        "AlterSubscriptionStmt": lambda: f"ALTER SUBSCRIPTION {node.get('subname', '')}",
        "DropSubscriptionStmt": lambda: f"DROP SUBSCRIPTION {node.get('subname', '')}",
    }
    return simple[kind]() if kind in simple else None


def _role_name(spec: Any) -> str | None:
    if not isinstance(spec, dict):
        return None
    spec = spec.get("RoleSpec", spec)
    return spec.get("rolename") if spec.get("roletype") == "ROLESPEC_CSTRING" else None


def _string(value: Any) -> str:
    return ((value or {}).get("String") or {}).get("sval", "") if isinstance(value, dict) else ""


def _roles_named(tree: Any) -> Iterator[str]:
    """Every role a statement names: role specs, granted roles, SET ROLE / SET SESSION AUTHORIZATION."""
    if isinstance(tree, dict):
        if tree.get("roletype") == "ROLESPEC_CSTRING" and tree.get("rolename"):
            yield tree["rolename"]
        granted = tree.get("GrantRoleStmt")
        if isinstance(granted, dict):
            for item in granted.get("granted_roles", []):
                name = item.get("AccessPriv", {}).get("priv_name")
                if name:
                    yield name
        setting = tree.get("VariableSetStmt")
        if isinstance(setting, dict) and setting.get("name") in ("role", "session_authorization"):
            for arg in setting.get("args", []):
                name = ((arg.get("A_Const") or {}).get("sval") or {}).get("sval")
                if name and name.lower() != "none":
                    yield name
        for value in tree.values():
            yield from _roles_named(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _roles_named(value)


def _first_schema(node: dict[str, Any]) -> str | None:
    """The first schema of `SET search_path = a, b` that is not `$user`; None for DEFAULT or RESET."""
    if node.get("kind") != "VAR_SET_VALUE":
        return None
    for arg in node.get("args", []):
        name = ((arg.get("A_Const") or {}).get("sval") or {}).get("sval")
        if name and name != "$user":
            return name
    return None
