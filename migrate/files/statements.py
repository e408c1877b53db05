"""Understanding a migration file with pglast, PostgreSQL's own parser.

Splits a file into statements with their line and column, refuses before anything runs what
PostgreSQL or psql would refuse (SQL and PL/pgSQL syntax errors, psql meta-commands that leave
the target: FileRefused, exit 4), and decides whether the file can run inside one transaction:
PostgreSQL refuses some statements in a transaction block, a file may manage its own
transactions, and a file may opt out with a marker comment (ours or another tool's). Whether a
file needs psql is psqlscan's call (psql's own lexing rules); PL/pgSQL bodies are plpgsql's.
context_location maps PostgreSQL's CONTEXT back to a line of the file.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from migrate.errors import ValidationError
from migrate.files.plpgsql import Body, bounded, error_place, find_body, near_text, parse_body
from migrate.files.psqlscan import SENDING, MetaCommand, PsqlText, scan_psql
from migrate.files.sqlfiles import MigrationFile
from migrate.paths import display_path

NO_TRANSACTION_MARKERS = (
    re.compile(r"^\s*--\s*migrate:no-transaction\b", re.IGNORECASE | re.MULTILINE),
    re.compile(r"^\s*--.*\btransaction:\s*false\b", re.IGNORECASE | re.MULTILINE),  # dbmate
    re.compile(r"^\s*--\s*transactional:\s*false\b", re.IGNORECASE | re.MULTILINE),  # yoyo
    re.compile(r"^\s*--\s*postgres-migrations\s+disable-transaction\b", re.IGNORECASE | re.MULTILINE),
)
PG_DUMP_RESTRICT_LINE = re.compile(r"^[ \t]*\\(un)?restrict\b.*$", re.MULTILINE)
NOT_NEWLINE = re.compile(r"[^\n]")
TRANSACTION_CONTROL_LINE = re.compile(
    r"^[ \t]*(BEGIN|START\s+TRANSACTION|COMMIT|ROLLBACK)\b\s*(WORK|TRANSACTION|AND\s+\w+)?\s*;",
    re.IGNORECASE | re.MULTILINE,
)


class FileRefused(ValidationError):
    """A file refused before anything runs, at a place in it; lint reports it as a finding of `rule`."""

    def __init__(self, where: str, line: int, column: int, problem: str, remedy: str, rule: str) -> None:
        super().__init__(f"{where}:{line}:{column}: {problem}; {remedy} (nothing was applied)")
        self.line, self.column, self.problem, self.remedy, self.rule = line, column, problem, remedy, rule


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a file, where it starts, and what it needs."""

    file: MigrationFile
    index: int
    text: str
    offset: int
    line: int
    column: int
    no_transaction: str | None = None
    transaction_control: bool = False
    # CREATE INDEX CONCURRENTLY with a name: (its table as written, the index name), so the engine can
    # rebuild an INVALID index an interrupted build left and refuse one that is INVALID after its build
    concurrent_index: tuple[str, str] | None = None
    # a DO block or LANGUAGE plpgsql function: the file line holding its body's opening quote
    # (PostgreSQL's line 1 of the body), and whose body it is as CONTEXT names it
    # ("inline_code_block" for a DO block, else the function's name); see context_location
    body_line: int | None = None
    body_of: str | None = None


@dataclass(frozen=True)
class Script:
    """A parsed migration file: its statements and how it must be run."""

    file: MigrationFile
    statements: tuple[Statement, ...]
    no_transaction: str | None = None
    needs_psql: str | None = None
    # pglast's raw statements, kept so lint walks the same parse instead of parsing again;
    # None for a file psql must run (its SQL is not parsed whole)
    raws: tuple[Any, ...] | None = field(default=None, compare=False, repr=False)
    # PL/pgSQL errors of its DO blocks and function bodies (parse_file raises the first unless lenient)
    plpgsql_errors: tuple[FileRefused, ...] = field(default=(), compare=False, repr=False)

    @property
    def transactional(self) -> bool:
        return self.no_transaction is None and self.needs_psql is None

    @property
    def mode(self) -> str:
        """How the file runs, in the words status and dry-run print."""
        if self.needs_psql:
            wrapped = "one transaction" if self.no_transaction is None else f"no transaction: {self.no_transaction}"
            return f"psql, {wrapped} ({self.needs_psql})"
        if self.no_transaction:
            return f"no transaction: {self.no_transaction}"
        return "transaction"


class _Lines:
    """Maps a character offset of a text to its 1-based line and column."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def locate(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1


def locate(text: str, offset: int) -> tuple[int, int]:
    return _Lines(text).locate(offset)


def blank_restrict_lines(text: str) -> str:
    """pg_dump 17.6+ writes `\\restrict KEY` / `\\unrestrict KEY`; blank them, keeping line numbers."""
    return PG_DUMP_RESTRICT_LINE.sub(lambda m: " " * len(m.group(0)), text)


def parse_file(migration_file: MigrationFile, root: Path, executor: str = "builtin", lenient: bool = False) -> Script:
    """Split and classify one file; what PostgreSQL would refuse raises FileRefused with file:line:col.

    A file that needs psql (meta-commands, COPY FROM stdin) or any file when the executor
    is psql is handed to psql whole; it is still classified (on a copy with the psql-only
    lines blanked) so psql can wrap it in one transaction when that is possible.
    PL/pgSQL errors in DO blocks and function bodies are refused too; `lenient` (lint) keeps
    them in Script.plpgsql_errors instead, so the rest of the file is still checked.
    """
    text = migration_file.text
    where = display_path(migration_file.path, root)
    psql = scan_psql(text)
    if psql.needs_psql:
        refuse_leaving_meta_commands(psql, text, where)
        no_transaction, problems = _psql_file_reason(text, psql, where)
        script = Script(migration_file, (), no_transaction=no_transaction, needs_psql=_psql_reason(text, psql),
                        plpgsql_errors=problems)
    else:
        script = _parse_sql(migration_file, blank_restrict_lines(text), where, executor)
    if script.plpgsql_errors and not lenient:
        raise script.plpgsql_errors[0]
    return script


def _parse_sql(migration_file: MigrationFile, text: str, where: str, executor: str) -> Script:
    from pglast import parser

    try:
        raw_statements = parser.parse_sql(text)
    except parser.ParseError as error:
        message, offset = error.args[0], error.args[1] if len(error.args) > 1 else 0
        line, column = locate(text, max(int(offset or 0), 0))
        raise FileRefused(where, line, column, bounded(str(message)), "fix the SQL", "syntax-error") from None
    if not raw_statements:
        raise FileRefused(where, 1, 1, "the migration file holds no SQL statement, only comments",
                          "write its SQL or delete it", "syntax-error")
    statements, problems = _build_statements(migration_file, text, raw_statements, where)
    return Script(migration_file, tuple(statements), no_transaction=_file_reason(text, statements),
                  needs_psql="MIGRATE_EXECUTOR=psql" if executor == "psql" else None, raws=tuple(raw_statements),
                  plpgsql_errors=tuple(problems))


def _psql_file_reason(text: str, psql: PsqlText, where: str) -> tuple[str | None, tuple[FileRefused, ...]]:
    """Best effort: does a psql file need to run outside one transaction? And its PL/pgSQL errors.

    Meta-commands and COPY data are blanked, psql variables stood in for, and the rest parsed
    with pglast. When that SQL cannot be parsed, only the markers and a line-level look for
    BEGIN/COMMIT are used: if the file then fails inside psql's single transaction, nothing
    was committed and the marker is the remedy.
    """
    sql_only = sql_for_pglast(text, psql)
    from pglast import parser

    try:
        raw_statements = parser.parse_sql(sql_only)
    except parser.ParseError:
        raw_statements = None
    if raw_statements is None:
        marker = _marker_reason(text)
        if marker:
            return marker, ()
        control = TRANSACTION_CONTROL_LINE.search(sql_only)
        if control:
            line, _ = locate(text, control.start())
            return f"manages its own transactions (line {line})", ()
        return None, ()
    # classification only, never run: the statements carry no file
    statements, problems = _build_statements(None, sql_only, raw_statements, where)  # type: ignore[arg-type]
    return _file_reason(text, statements), tuple(problems)


def _build_statements(migration_file: MigrationFile, text: str, raw_statements: Any,
                      where: str) -> tuple[list[Statement], list[FileRefused]]:
    """Statements with their text, position and what they need, from pglast's raw statements; and
    the PL/pgSQL errors of their DO blocks and function bodies, placed in the file."""
    lines = _Lines(text)
    statements: list[Statement] = []
    problems: list[FileRefused] = []
    for index, raw in enumerate(raw_statements, start=1):
        start = raw.stmt_location or 0
        length = raw.stmt_len or (len(text) - start)
        body = text[start:start + length]
        # stmt_location may point at leading whitespace/comments the parser skipped
        stripped = body.lstrip()
        start += len(body) - len(stripped)
        line, column = lines.locate(start)
        node = raw.stmt
        plpgsql = find_body(node, text, start, start + len(stripped), lambda offset: lines.locate(offset)[0])
        tree, error = parse_body(plpgsql) if plpgsql is not None else (None, None)
        if plpgsql is not None and error is not None:
            problems.append(_plpgsql_problem(plpgsql, error, text, lines, where))
        statements.append(Statement(
            file=migration_file,
            index=index,
            text=stripped.rstrip(),
            offset=start,
            line=line,
            column=column,
            no_transaction=_do_block_reason(tree) if type(node).__name__ == "DoStmt" else _no_transaction_reason(node),
            transaction_control=type(node).__name__ == "TransactionStmt",
            concurrent_index=_concurrent_index(node),
            body_line=plpgsql.line if plpgsql is not None else None,
            body_of=plpgsql.name if plpgsql is not None else None,
        ))
    return statements, problems


def _plpgsql_problem(body: Body, message: str, text: str, lines: _Lines, where: str) -> FileRefused:
    """A PL/pgSQL error at its line and column in the file (the excerpt it quotes, or the line's first word)."""
    body_line = error_place(body, message)
    line = body.line + body_line - 1
    line_start = lines.starts[line - 1] if line - 1 < len(lines.starts) else 0
    from_column = body.start - line_start if body_line == 1 else 0
    line_text = text[line_start:].split("\n", 1)[0]
    near = near_text(message)
    found = line_text.find(near, from_column) if near else -1
    if found < 0:
        written = line_text[from_column:]
        found = from_column + len(written) - len(written.lstrip()) if written.strip() else from_column
    return FileRefused(where, line, found + 1,
                       f"PL/pgSQL error in {body.describe()} that starts on line {body.line}: {bounded(message)}",
                       "fix the PL/pgSQL", "plpgsql-syntax-error")


# A frame of PostgreSQL's CONTEXT that numbers a PL/pgSQL body's lines, at run time or at compile time
CONTEXT_FRAME = re.compile(r"PL/pgSQL function (?P<name>.+?) line (?P<line>\d+)(?: at |$)"
                           r"|compilation of PL/pgSQL function \"(?P<compiled>[^\"]+)\" near line (?P<near>\d+)",
                           re.MULTILINE)


def context_location(statement: Statement, context: str | None) -> tuple[int, int] | None:
    """The file line (and the column of its first word) that PostgreSQL's CONTEXT names inside this
    statement's DO block or function body; None when it names none.

    PostgreSQL reports an error inside PL/pgSQL at the body's line (`PL/pgSQL function
    inline_code_block line 5 at RAISE`, `PL/pgSQL function langconnect.f(integer) line 3 at SQL
    statement`, `compilation of PL/pgSQL function "f" near line 3`), counting the line that holds
    the body's opening quote as line 1. CONTEXT lists the innermost frame first: the outermost
    frame of this statement's own body (a DO block may call functions) is the line in this file.
    """
    if not context or statement.body_line is None or statement.file is None:
        return None
    number = None
    for frame in CONTEXT_FRAME.finditer(context):
        name = frame.group("compiled") or _routine_name(frame.group("name"))
        if name == statement.body_of:
            number = int(frame.group("line") or frame.group("near"))
    if number is None:
        return None
    line = statement.body_line + number - 1
    lines = statement.file.text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    written = lines[line - 1]
    return line, (len(written) - len(written.lstrip()) + 1) if written.strip() else 1


def _routine_name(shown: str) -> str:
    """`langconnect.f(integer)` -> `f`: how CONTEXT shows a function, reduced to the name CREATE gave it."""
    name = shown.split("(", 1)[0].rsplit(".", 1)[-1]
    return name[1:-1].replace('""', '"') if name.startswith('"') and name.endswith('"') else name


def _concurrent_index(node: Any) -> tuple[str, str] | None:
    if type(node).__name__ != "IndexStmt" or not getattr(node, "concurrent", False) or not node.idxname:
        return None
    relation = node.relation
    schema = getattr(relation, "schemaname", None)
    table = '"' + relation.relname.replace('"', '""') + '"'
    return ((f'"{schema}".' if schema else "") + table, node.idxname)


def without_tree(script: Script) -> Script:
    """The script without pglast's statements, once lint has walked them: they are most of a parsed
    file's memory (see commands.parse_pending)."""
    return replace(script, raws=None) if script.raws is not None else script


def sql_for_pglast(text: str, psql: PsqlText) -> str:
    """A psql file's SQL as pglast can read it, each line where it was: meta-commands blanked (those
    that send the query become `;`), COPY ... FROM stdin and its data blanked, psql variables stood
    in for by a literal (`:'v'` -> `'v'`, `:"v"` -> `"v"`, `:v` -> NULL)."""
    blanks = [(meta.offset, meta.end, ";" if meta.name in SENDING else "") for meta in psql.meta_commands]
    blanks += [(copy.offset, copy.data_end, "") for copy in psql.copies]
    edits = [(start, end, stand_in + NOT_NEWLINE.sub(" ", text[start + len(stand_in):end]))
             for start, end, stand_in in blanks]
    out: list[str] = []
    position = 0
    for start, end, replacement in sorted(edits + list(psql.variables), key=lambda edit: (edit[0], -edit[1])):
        if start >= position:  # else a variable inside a blanked COPY
            out += [text[position:start], replacement]
            position = end
    out.append(text[position:])
    return "".join(out)


def _psql_reason(text: str, psql: PsqlText) -> str:
    """Why the file needs psql, in the words dry-run prints: its first meta-command, else its first COPY."""
    only = psql.psql_only
    if only:
        line, _ = locate(text, only[0].offset)
        return f"psql meta-command \\{only[0].name} on line {line}"
    line, _ = locate(text, psql.copies[0].offset)
    return f"COPY ... FROM stdin on line {line}"


def _leaves_the_target(meta: MetaCommand) -> tuple[str, str] | None:
    """(what it does, what to do) for a meta-command that changes psql's connection or runs a program
    on the machine running migrate: its effect would escape the target database, the migration's
    transaction and its history row (issue 12, case 19)."""
    name, argument = meta.name, meta.argument
    if name in ("c", "connect"):
        return ("connects to another database (or as another user), so what follows would run and commit "
                "there, outside this migration's transaction and history",
                "remove it: each database gets its migrations from its own environment (--env)")
    if name.startswith("!"):
        return "runs a shell command on the machine running migrate", "remove it: run programs outside migrations"
    if name in ("e", "edit", "ef", "ev"):
        return "starts an editor", "remove it"
    if name in ("o", "out", "g", "gx", "w", "write") and argument.startswith("|"):
        return ("pipes output to a program on the machine running migrate",
                "remove the pipe: run programs outside migrations")
    if name == "copy" and re.search(r"\bprogram\b", argument, re.IGNORECASE):
        return ("runs a program on the machine running migrate",
                "use COPY ... FROM stdin with the data in the file, or load the data outside migrations")
    return None


def refuse_leaving_meta_commands(psql: PsqlText, text: str, where: str) -> None:
    """Refuse, before anything runs, a psql file whose meta-commands would leave the target database."""
    for meta in psql.meta_commands:
        refused = _leaves_the_target(meta)
        if refused is not None:
            line, column = locate(text, meta.offset)
            what, remedy = refused
            raise FileRefused(where, line, column, f"psql meta-command \\{meta.name} {what}", remedy,
                              "psql-meta-command-refused")


ALLOW_SCHEMA_MARKER = re.compile(r"^\s*--\s*migrate:allow-schema\b(.*)$", re.IGNORECASE | re.MULTILINE)


def allowed_schemas(text: str) -> set[str]:
    """Protected schemas a file allows itself to change: `-- migrate:allow-schema storage[, auth]` (lint, verify)."""
    allowed: set[str] = set()
    for match in ALLOW_SCHEMA_MARKER.finditer(text):
        allowed.update(name for name in re.split(r"[\s,]+", match.group(1).strip()) if name)
    return allowed


def _marker_reason(text: str) -> str | None:
    for marker in NO_TRANSACTION_MARKERS:
        found = marker.search(text)
        if found:
            return f"marker {found.group(0).strip()!r}"
    return None


def _file_reason(text: str, statements: list[Statement]) -> str | None:
    marker = _marker_reason(text)
    if marker:
        return marker
    for statement in statements:
        if statement.transaction_control:
            return f"manages its own transactions (statement {statement.index}, line {statement.line})"
    for statement in statements:
        if statement.no_transaction:
            return f"{statement.no_transaction} (statement {statement.index}, line {statement.line})"
    return None


def _no_transaction_reason(node: Any) -> str | None:
    """Why PostgreSQL would refuse this statement inside a transaction block, if it would."""
    kind = type(node).__name__
    if kind == "IndexStmt" and getattr(node, "concurrent", False):
        return "CREATE INDEX CONCURRENTLY"
    if kind == "DropStmt" and getattr(node, "concurrent", False):
        return "DROP INDEX CONCURRENTLY"
    if kind == "ReindexStmt":
        options = {getattr(p, "defname", "") for p in (getattr(node, "params", None) or ())}
        if "concurrently" in options:
            return "REINDEX CONCURRENTLY"
        object_kind = getattr(getattr(node, "kind", None), "name", "")
        if object_kind.endswith(("DATABASE", "SYSTEM", "SCHEMA")):
            return f"REINDEX {object_kind.rsplit('_', 1)[-1]}"
    if kind == "VacuumStmt" and getattr(node, "is_vacuumcmd", False):
        return "VACUUM"
    if kind == "ClusterStmt" and getattr(node, "relation", None) is None:
        return "CLUSTER without a table"
    if kind == "AlterDatabaseStmt":
        options = {getattr(o, "defname", "") for o in (getattr(node, "options", None) or ())}
        if "tablespace" in options:
            return "ALTER DATABASE SET TABLESPACE"
    if kind == "AlterTableStmt":
        for command in getattr(node, "cmds", None) or ():
            definition = getattr(command, "def_", None)
            if getattr(definition, "concurrent", False):
                return "ALTER TABLE ... DETACH PARTITION CONCURRENTLY"
    if kind == "DiscardStmt" and getattr(getattr(node, "target", None), "name", "") == "DISCARD_ALL":
        return "DISCARD ALL"
    if kind == "CreateSubscriptionStmt":
        options = {getattr(o, "defname", ""): _option_text(o) for o in (getattr(node, "options", None) or ())}
        if options.get("connect") in _FALSE or options.get("create_slot") in _FALSE:
            return None  # no replication slot is created: PostgreSQL allows it in a transaction
        return "CREATE SUBSCRIPTION (creates a replication slot)"
    simple = {
        "CreatedbStmt": "CREATE DATABASE",
        "DropdbStmt": "DROP DATABASE",
        "AlterSystemStmt": "ALTER SYSTEM",
        "CreateTableSpaceStmt": "CREATE TABLESPACE",
        "DropTableSpaceStmt": "DROP TABLESPACE",
        "AlterSubscriptionStmt": "ALTER SUBSCRIPTION",
        "DropSubscriptionStmt": "DROP SUBSCRIPTION",
    }
    return simple.get(kind)


_FALSE = {"false", "off", "no", "0", "f"}


def _option_text(option: Any) -> str:
    value = getattr(option, "arg", None)
    text = getattr(value, "sval", None) or getattr(value, "boolval", None)
    if text is None and value is not None:
        text = getattr(value, "ival", None)
    return str(text).lower() if text is not None else "true"


def _do_block_reason(tree: Any) -> str | None:
    """A PL/pgSQL DO block that COMMITs or ROLLBACKs cannot run inside a transaction block.

    `tree`: its body as pglast's PL/pgSQL parser read it (None: another language, or a body pglast
    cannot judge; the server will)."""
    found = _find_keys(tree, {"PLpgSQL_stmt_commit", "PLpgSQL_stmt_rollback"}) if tree is not None else None
    if found:
        verb = "COMMIT" if found == "PLpgSQL_stmt_commit" else "ROLLBACK"
        return f"DO block with {verb}"
    return None


def _find_keys(tree: Any, keys: set[str]) -> str | None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if key in keys:
                return key
            found = _find_keys(value, keys)
            if found:
                return found
    elif isinstance(tree, list):
        for value in tree:
            found = _find_keys(value, keys)
            if found:
                return found
    return None
