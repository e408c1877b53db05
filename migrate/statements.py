"""Understanding a migration file with pglast, PostgreSQL's own parser.

Splits a file into statements with their line and column, refuses syntax errors before
anything runs, and decides whether the file can run inside one transaction: PostgreSQL
refuses some statements in a transaction block, a file may manage its own transactions,
and a file may opt out with a marker comment (ours or another tool's).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migrate.errors import ValidationError
from migrate.paths import display_path
from migrate.sqlfiles import MigrationFile

NO_TRANSACTION_MARKERS = (
    re.compile(r"^\s*--\s*migrate:no-transaction\b", re.IGNORECASE | re.MULTILINE),
    re.compile(r"^\s*--.*\btransaction:\s*false\b", re.IGNORECASE | re.MULTILINE),  # dbmate
    re.compile(r"^\s*--\s*transactional:\s*false\b", re.IGNORECASE | re.MULTILINE),  # yoyo
    re.compile(r"^\s*--\s*postgres-migrations\s+disable-transaction\b", re.IGNORECASE | re.MULTILINE),
)
PSQL_META_LINE = re.compile(r"^[ \t]*\\(?!restrict\b|unrestrict\b)[a-zA-Z!?]", re.MULTILINE)
PG_DUMP_RESTRICT_LINE = re.compile(r"^[ \t]*\\(un)?restrict\b.*$", re.MULTILINE)
COPY_FROM_STDIN = re.compile(r"^\s*COPY\b[^;]*\bFROM\s+STDIN\b", re.IGNORECASE | re.MULTILINE)


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


@dataclass(frozen=True)
class Script:
    """A parsed migration file: its statements and how it must be run."""

    file: MigrationFile
    statements: tuple[Statement, ...]
    no_transaction: str | None = None
    needs_psql: str | None = None

    @property
    def transactional(self) -> bool:
        return self.no_transaction is None and self.needs_psql is None


class _Lines:
    """Maps a character offset of a text to its 1-based line and column."""

    def __init__(self, text: str) -> None:
        self.starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def locate(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1


def locate(text: str, offset: int) -> tuple[int, int]:
    return _Lines(text).locate(offset)


def parse_file(migration_file: MigrationFile, root: Path) -> Script:
    """Split and classify one file; a syntax error raises ValidationError with file:line:col."""
    text = migration_file.text
    where = display_path(migration_file.path, root)
    psql_reason = _psql_reason(text)
    if psql_reason:
        return Script(migration_file, (), needs_psql=psql_reason)
    text = PG_DUMP_RESTRICT_LINE.sub(lambda m: " " * len(m.group(0)), text)

    from pglast import parser

    try:
        raw_statements = parser.parse_sql(text)
    except parser.ParseError as error:
        message, offset = error.args[0], error.args[1] if len(error.args) > 1 else 0
        line, column = locate(text, max(int(offset), 0))
        raise ValidationError(f"{where}:{line}:{column}: {message}; fix the SQL (nothing was applied)") from None
    if not raw_statements:
        raise ValidationError(
            f"{where}:1:1: the migration file holds no SQL statement, only comments; write its SQL or delete it"
        )
    lines = _Lines(text)
    statements = []
    for index, raw in enumerate(raw_statements, start=1):
        start = raw.stmt_location or 0
        length = raw.stmt_len or (len(text) - start)
        body = text[start:start + length]
        # stmt_location may point at leading whitespace/comments the parser skipped
        stripped = body.lstrip()
        start += len(body) - len(stripped)
        line, column = lines.locate(start)
        node = raw.stmt
        statements.append(Statement(
            file=migration_file,
            index=index,
            text=stripped.rstrip(),
            offset=start,
            line=line,
            column=column,
            no_transaction=_no_transaction_reason(node),
            transaction_control=type(node).__name__ == "TransactionStmt",
        ))
    return Script(migration_file, tuple(statements), no_transaction=_file_reason(text, statements))


def _psql_reason(text: str) -> str | None:
    meta = PSQL_META_LINE.search(text)
    if meta:
        command = text[meta.start():].strip().split()[0]
        line, _ = locate(text, meta.start())
        return f"psql meta-command {command} on line {line}"
    copy = COPY_FROM_STDIN.search(text)
    if copy:
        line, _ = locate(text, copy.start())
        return f"COPY ... FROM stdin on line {line}"
    return None


def _file_reason(text: str, statements: list[Statement]) -> str | None:
    for marker in NO_TRANSACTION_MARKERS:
        found = marker.search(text)
        if found:
            return f"marker {found.group(0).strip()!r}"
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
        if getattr(getattr(node, "kind", None), "name", "").endswith(("DATABASE", "SYSTEM")):
            return "REINDEX DATABASE/SYSTEM"
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
    simple = {
        "CreatedbStmt": "CREATE DATABASE",
        "DropdbStmt": "DROP DATABASE",
        "AlterSystemStmt": "ALTER SYSTEM",
        "CreateTableSpaceStmt": "CREATE TABLESPACE",
        "DropTableSpaceStmt": "DROP TABLESPACE",
        "CreateSubscriptionStmt": "CREATE SUBSCRIPTION",
        "AlterSubscriptionStmt": "ALTER SUBSCRIPTION",
        "DropSubscriptionStmt": "DROP SUBSCRIPTION",
    }
    return simple.get(kind)
