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
import json
import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import accumulate
from pathlib import Path
from typing import Any, NamedTuple

from migrate.errors import ValidationError
from migrate.files.plpgsql import DO_BLOCK, Body, bounded, error_place, find_body, near_text, parse_body
from migrate.files.psqlscan import SENDING, MetaCommand, PsqlText, scan_psql
from migrate.files.sqlfiles import MigrationFile
from migrate.paths import display_path

# (the word each marker cannot match without, its pattern): the word is looked for first, because
# a MULTILINE pattern is tried at every line of the file (4 of them cost 2 ms for a 60 KB file)
NO_TRANSACTION_MARKERS = (
    ("migrate:no-transaction", re.compile(r"^\s*--\s*migrate:no-transaction\b", re.IGNORECASE | re.MULTILINE)),
    ("transaction:", re.compile(r"^\s*--.*\btransaction:\s*false\b", re.IGNORECASE | re.MULTILINE)),  # dbmate
    ("transactional:", re.compile(r"^\s*--\s*transactional:\s*false\b", re.IGNORECASE | re.MULTILINE)),  # yoyo
    ("disable-transaction", re.compile(r"^\s*--\s*postgres-migrations\s+disable-transaction\b",
                                       re.IGNORECASE | re.MULTILINE)),
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
    # PL/pgSQL errors of its DO blocks and function bodies (parse_file raises the first unless lenient)
    plpgsql_errors: tuple[FileRefused, ...] = field(default=(), compare=False, repr=False)
    # its SQL was parsed whole (not a file psql must run): `raws` can be had
    parsed: bool = field(default=False, compare=False, repr=False)
    # pglast's JSON of that parse, kept for `raws` until without_tree (lint would parse the file again)
    document: str | None = field(default=None, compare=False, repr=False)

    @cached_property
    def raws(self) -> tuple[Any, ...] | None:
        """pglast's raw statements (its AST), one per statement; None for a file psql must run. Built on first
        use, and then node by node as lint reads them (files/tree.py): pglast's own objects of every node cost
        4x the rest of the parse (5 s against 0.7 s for the realistic set; issue 16)."""
        if not self.parsed:
            return None
        from migrate.files.tree import raw_statements

        return raw_statements(blank_restrict_lines(self.file.text), self.document)

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
        # each line's start from the lengths of the lines before it: ~15x faster than a loop over the
        # characters (a 60 KB file: 0.1 ms instead of 1.6 ms; bench/RESULTS.md)
        self.starts = [0, *accumulate(len(line) + 1 for line in text.split("\n")[:-1])]

    def locate(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1


_last_lines: tuple[str, _Lines] | None = None


def lines_of(text: str) -> _Lines:
    """The line index of `text`, built once for the same text object: lint asks for the place of
    hundreds of nodes in one file, and building the index on every call was most of a realistic
    project's apply time (issue 16). Keyed by identity (`is`), holding the text, so it cannot be
    mistaken for another text; one entry, since callers go through a file at a time."""
    global _last_lines
    last = _last_lines
    if last is not None and last[0] is text:
        return last[1]
    lines = _Lines(text)
    _last_lines = (text, lines)
    return lines


def locate(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, column) of a character offset of `text`."""
    return lines_of(text).locate(offset)


def blank_restrict_lines(text: str) -> str:
    """pg_dump 17.6+ writes `\\restrict KEY` / `\\unrestrict KEY`; blank them, keeping line numbers.

    A file without the word is returned as it is (the same object), without trying the pattern at
    every line."""
    if "restrict" not in text:
        return text
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
        document = parser.parse_sql_json(text)
        raw_statements = _raw_statements(text, document)
    except parser.ParseError as error:
        message, offset = error.args[0], error.args[1] if len(error.args) > 1 else 0
        line, column = locate(text, max(int(offset or 0), 0))
        raise FileRefused(where, line, column, bounded(str(message)), "fix the SQL", "syntax-error") from None
    if not raw_statements:
        raise FileRefused(where, 1, 1, "the migration file holds no SQL statement, only comments",
                          "write its SQL or delete it", "syntax-error")
    statements, problems = _build_statements(migration_file, text, raw_statements, where)
    return Script(migration_file, tuple(statements), no_transaction=_file_reason(text, statements),
                  needs_psql="MIGRATE_EXECUTOR=psql" if executor == "psql" else None, parsed=True,
                  plpgsql_errors=tuple(problems), document=document)


class _RawStatement(NamedTuple):
    """One statement as pglast's JSON gives it: where it is (in characters) and its node, as plain data."""

    start: int
    end: int | None  # None: to the end of the text
    kind: str  # the node's type, e.g. IndexStmt
    node: dict[str, Any]


# The statement types whose fields classify them (see _no_transaction_reason, _plpgsql_body,
# _concurrent_index); every other statement is known by its type alone.
_NEEDS_FIELDS = frozenset({"IndexStmt", "DropStmt", "ReindexStmt", "VacuumStmt", "ClusterStmt", "AlterDatabaseStmt",
                           "AlterTableStmt", "DiscardStmt", "CreateSubscriptionStmt", "DoStmt", "CreateFunctionStmt"})
_STATEMENT_START = '{"stmt":{"'  # how libpg_query writes each RawStmt; no other node has a `stmt` field
_JSON = json.JSONDecoder()


def _raw_statements(text: str, document: str | None = None) -> list[_RawStatement]:
    """pglast's parse as JSON: libpg_query (PostgreSQL's own parser), with no Python object per node.

    Only the few statement types that need their fields to be classified are decoded: decoding
    every statement's tree cost as much as parsing it (the realistic set: 0.6 s against 0.4 s).
    The rest are read off the JSON text: each statement is `{"stmt":{"<type>":...}` and ends with its
    optional `"stmt_location"` and `"stmt_len"` (inside a JSON string every quote is escaped, so the
    text cannot fake either). A document not written that way is decoded whole instead.
    Offsets in the JSON are UTF-8 byte offsets; they are turned into character offsets here
    (pglast's parse_sql does the same for its objects)."""
    from pglast import parser

    document = parser.parse_sql_json(text) if document is None else document
    chars = _CharOffsets(text)
    found = []
    for kind, node, start, length in _json_statements(document):
        found.append(_RawStatement(chars.at(start), chars.at(start + length) if length else None, kind, node))
    return found


def _statement_tail(tail: str) -> tuple[int, int] | None:
    """(stmt_location, stmt_len) from the end of a statement's JSON (`...,"stmt_location":5,"stmt_len":9}`),
    each 0 when left out; None when it does not end that way."""
    if not tail.endswith("}"):
        return None
    rest = tail[:-1]
    numbers = []
    for key in (',"stmt_len":', ',"stmt_location":'):
        head, found, value = rest.rpartition(key)
        if found and value.isdigit():
            numbers.append(int(value))
            rest = head
        else:
            numbers.append(0)
    return numbers[1], numbers[0]


def _json_statements(document: str) -> list[tuple[str, dict[str, Any], int, int]]:
    """(type, fields or {}, byte offset, byte length or 0) of each statement of pglast's JSON document."""
    starts = []
    at = document.find(_STATEMENT_START)
    while at >= 0:
        starts.append(at)
        at = document.find(_STATEMENT_START, at + len(_STATEMENT_START))
    statements = []
    for number, at in enumerate(starts):
        end = starts[number + 1] - 1 if number + 1 < len(starts) else document.rfind("]")
        tail = _statement_tail(document[max(at, end - 64):end])
        begin = at + len(_STATEMENT_START)
        kind = document[begin:document.find('"', begin)]
        if tail is None or not kind.isidentifier():
            break
        node: dict[str, Any] = {}
        if kind in _NEEDS_FIELDS:
            node = _JSON.raw_decode(document, at + len('{"stmt":'))[0][kind]
        statements.append((kind, node, *tail))
    else:
        if starts or '"stmts"' not in document:
            return statements
    return [(kind, node if kind in _NEEDS_FIELDS else {}, raw.get("stmt_location", 0), raw.get("stmt_len", 0))
            for raw in json.loads(document).get("stmts", ()) for kind, node in raw["stmt"].items()]


class _CharOffsets:
    """Character offsets of a text's UTF-8 byte offsets (pglast's JSON counts bytes), line by line."""

    def __init__(self, text: str) -> None:
        self.ascii = text.isascii()
        if not self.ascii:
            lines = text.split("\n")
            self.encoded = [line.encode() for line in lines]
            self.char_starts = [0, *accumulate(len(line) + 1 for line in lines[:-1])]
            self.byte_starts = [0, *accumulate(len(line) + 1 for line in self.encoded[:-1])]

    def at(self, offset: int) -> int:
        if self.ascii or offset < 0:
            return offset
        line = bisect.bisect_right(self.byte_starts, offset) - 1
        within = self.encoded[line][:offset - self.byte_starts[line]]
        return self.char_starts[line] + len(within.decode("utf-8", "ignore"))


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
        raw_statements: list[_RawStatement] | None = _raw_statements(sql_only)
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


def _build_statements(migration_file: MigrationFile, text: str, raw_statements: list[_RawStatement],
                      where: str) -> tuple[list[Statement], list[FileRefused]]:
    """Statements with their text, position and what they need, from pglast's raw statements; and
    the PL/pgSQL errors of their DO blocks and function bodies, placed in the file."""
    lines = lines_of(text)
    chars = _CharOffsets(text)
    statements: list[Statement] = []
    problems: list[FileRefused] = []
    for index, raw in enumerate(raw_statements, start=1):
        start = raw.start
        body = text[start:raw.end] if raw.end is not None else text[start:]
        # stmt_location may point at leading whitespace/comments the parser skipped
        stripped = body.lstrip()
        start += len(body) - len(stripped)
        line, column = lines.locate(start)
        kind, node = raw.kind, raw.node
        plpgsql = _plpgsql_body(kind, node, text, start, start + len(stripped), chars, lines)
        tree, error = parse_body(plpgsql) if plpgsql is not None else (None, None)  # tree: pglast's JSON text
        if plpgsql is not None and error is not None:
            problems.append(_plpgsql_problem(plpgsql, error, text, lines, where))
        statements.append(Statement(
            file=migration_file,
            index=index,
            text=stripped.rstrip(),
            offset=start,
            line=line,
            column=column,
            no_transaction=_do_block_reason(tree) if kind == "DoStmt" else _no_transaction_reason(kind, node),
            transaction_control=kind == "TransactionStmt",
            concurrent_index=_concurrent_index(kind, node),
            body_line=plpgsql.line if plpgsql is not None else None,
            body_of=plpgsql.name if plpgsql is not None else None,
        ))
    return statements, problems


def _node(value: Any) -> tuple[str, dict[str, Any]]:
    """(type, fields) of a node in pglast's JSON (`{"String": {"sval": "x"}}`); ("", {}) for anything else."""
    if isinstance(value, dict) and len(value) == 1:
        ((kind, fields),) = value.items()
        if isinstance(fields, dict):
            return kind, fields
    return "", {}


def _options(items: Any) -> dict[str, dict[str, Any]]:
    """A statement's DefElem list (`options`, `args`, `params`) by option name."""
    found: dict[str, dict[str, Any]] = {}
    for item in items or ():
        kind, fields = _node(item)
        if kind == "DefElem" and "defname" in fields:
            found[fields["defname"]] = fields  # a repeated option: the last one, as the server reads it
    return found


def _string(value: Any) -> str | None:
    kind, fields = _node(value)
    return fields.get("sval", "") if kind == "String" else None


def _plpgsql_body(kind: str, node: dict[str, Any], text: str, start: int, end: int, chars: _CharOffsets,
                  lines: _Lines) -> Body | None:
    """The PL/pgSQL body of a DO or CREATE FUNCTION/PROCEDURE statement (plpgsql.find_body), from its JSON."""
    if kind == "DoStmt":
        options = _options(node.get("args"))
        language = _string(options.get("language", {}).get("arg")) or "plpgsql"
        body = options.get("as", {})
        value = _string(body.get("arg"))
        name = DO_BLOCK
    elif kind == "CreateFunctionStmt":
        options = _options(node.get("options"))
        language = _string(options.get("language", {}).get("arg")) or ""
        body = options.get("as", {})
        kind_of, fields = _node(body.get("arg"))
        items = fields.get("items", ()) if kind_of == "List" else ()
        value = _string(items[0]) if len(items) == 1 else None
        names = node.get("funcname") or [None]
        name = _string(names[-1]) or "?"
    else:
        return None
    location = body.get("location")
    if value is None or location is None:
        return None
    return find_body(kind == "DoStmt", language, chars.at(location), name, value, text, start, end,
                     lambda offset: lines.locate(offset)[0])


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


def _concurrent_index(kind: str, node: dict[str, Any]) -> tuple[str, str] | None:
    if kind != "IndexStmt" or not node.get("concurrent") or not node.get("idxname"):
        return None
    relation = node.get("relation", {})
    schema = relation.get("schemaname")
    table = '"' + relation.get("relname", "").replace('"', '""') + '"'
    return ((f'"{schema}".' if schema else "") + table, node["idxname"])


def without_tree(script: Script) -> Script:
    """The script without pglast's statements, once lint has walked them: they are most of a parsed
    file's memory (see commands.parse_pending). A copy parses them again if asked."""
    return replace(script, document=None) if "raws" in script.__dict__ or script.document is not None else script


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
    if not _may_hold(text, "migrate:allow-schema"):
        return allowed
    for match in ALLOW_SCHEMA_MARKER.finditer(text):
        allowed.update(name for name in re.split(r"[\s,]+", match.group(1).strip()) if name)
    return allowed


def _may_hold(text: str, word: str) -> bool:
    """Could a case-insensitive pattern that needs `word` (ASCII, lower case) match in `text`? False only
    when it cannot: an ASCII text without the word. (Unicode case folding could match a non-ASCII text
    in ways lower() does not, so such a text is always tried.)"""
    return not text.isascii() or word in text.lower()


def _marker_reason(text: str) -> str | None:
    for word, marker in NO_TRANSACTION_MARKERS:
        if not _may_hold(text, word):
            continue
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


def _no_transaction_reason(kind: str, node: dict[str, Any]) -> str | None:
    """Why PostgreSQL would refuse this statement (pglast's JSON: its type and fields) inside a transaction
    block, if it would."""
    if kind == "IndexStmt" and node.get("concurrent"):
        return "CREATE INDEX CONCURRENTLY"
    if kind == "DropStmt" and node.get("concurrent"):
        return "DROP INDEX CONCURRENTLY"
    if kind == "ReindexStmt":
        if "concurrently" in _options(node.get("params")):
            return "REINDEX CONCURRENTLY"
        object_kind = str(node.get("kind", ""))
        if object_kind.endswith(("DATABASE", "SYSTEM", "SCHEMA")):
            return f"REINDEX {object_kind.rsplit('_', 1)[-1]}"
    if kind == "VacuumStmt" and node.get("is_vacuumcmd"):
        return "VACUUM"
    if kind == "ClusterStmt" and node.get("relation") is None:
        return "CLUSTER without a table"
    if kind == "AlterDatabaseStmt" and "tablespace" in _options(node.get("options")):
        return "ALTER DATABASE SET TABLESPACE"
    if kind == "AlterTableStmt":
        for command in node.get("cmds") or ():
            _, fields = _node(command)
            if _node(fields.get("def"))[1].get("concurrent"):
                return "ALTER TABLE ... DETACH PARTITION CONCURRENTLY"
    if kind == "DiscardStmt" and node.get("target") == "DISCARD_ALL":
        return "DISCARD ALL"
    if kind == "CreateSubscriptionStmt":
        options = {name: _option_text(option) for name, option in _options(node.get("options")).items()}
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


def _option_text(option: dict[str, Any]) -> str:
    """A DefElem's value as the option means it (`connect = false`); no value means true. The JSON leaves
    out false and 0 (`{"Boolean": {}}`)."""
    kind, fields = _node(option.get("arg"))
    if kind == "String":
        return str(fields.get("sval", "")).lower()
    if kind == "Boolean":
        return str(bool(fields.get("boolval", False))).lower()
    if kind == "Integer":
        return str(fields.get("ival", 0))
    return "true"


def _do_block_reason(tree: str | None) -> str | None:
    """A PL/pgSQL DO block that COMMITs or ROLLBACKs cannot run inside a transaction block.

    `tree`: its body as pglast's PL/pgSQL parser wrote it, JSON text (None: another language, or a
    body pglast cannot judge; the server will). It is decoded only when it names such a statement:
    decoding every body's tree cost more than parsing it (issue 16)."""
    if tree is None or ("PLpgSQL_stmt_commit" not in tree and "PLpgSQL_stmt_rollback" not in tree):
        return None
    found = _find_keys(json.loads(tree), {"PLpgSQL_stmt_commit", "PLpgSQL_stmt_rollback"})
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
