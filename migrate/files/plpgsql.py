"""PL/pgSQL bodies of DO blocks and functions: where each starts in its file, and its syntax checked
with pglast's PL/pgSQL parser before anything runs.

PostgreSQL compiles a DO block when it runs it, and a `LANGUAGE plpgsql` function when it creates
it: a syntax error in either used to reach the database after the versions before it were applied
(issue 12, case 10). pglast's PL/pgSQL parser (libpg_query, PostgreSQL's own grammar) finds them
first. It knows no catalog, so it also reports errors PostgreSQL would not (a field of a `%ROWTYPE`
variable "is not a known variable", a schema-qualified type is "Not implemented"): only the errors
that no catalog can change are refused (REFUSED); the server judges the rest when the file runs.

libpg_query reports no position for a PL/pgSQL error, so the line is found the way a person would:
the shortest prefix of the body (whole lines) that still fails with the same message, ended by a
token the scanner rejects at once (SENTINEL), holds the error on its last line.

PostgreSQL numbers a body's lines from the line holding its opening quote (line 1), as CONTEXT
lines show them (`PL/pgSQL function inline_code_block line 5 at RAISE`); `Body.line` is that line
in the file, so statements.context_location maps CONTEXT back to the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from migrate.files.psqlscan import literal_end

# pglast's PL/pgSQL errors that hold whatever the catalog says (checked against PostgreSQL 15 and 18)
REFUSED = re.compile(
    r"syntax error|missing expression|unterminated |unrecognized exception condition"
    r"|end label |there is no label |EXIT cannot be used|CONTINUE cannot be used"
    r"|too (few|many) parameters specified for RAISE|variable \"[^\"]*\" is declared CONSTANT"
    r"|RETURN cannot have a parameter in function returning void"
)
SENTINEL = '""'  # "zero-length delimited identifier": the scanner stops at it, whatever the grammar expects
DO_BLOCK = "inline_code_block"  # what PostgreSQL's CONTEXT calls a DO block
_AFTER_AS = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)*", re.DOTALL)  # blanks and comments between AS and the body
_NEAR = re.compile(r'^(?P<head>.*? at or near )"(?P<near>.*)"$', re.DOTALL)


@dataclass(frozen=True)
class Body:
    """The PL/pgSQL body of one DO block or function, as PostgreSQL compiles it."""

    name: str  # DO_BLOCK, or the function's name as CONTEXT shows it (unqualified)
    text: str  # the body, its quotes removed
    literal: int  # offset of its opening quote in the parsed text
    start: int  # offset of its first character
    end: int  # offset just past its closing quote
    line: int  # the file line holding its opening quote: PostgreSQL's line 1 of the body
    source: Callable[[str], str]  # the SQL pglast compiles with a given body text in place of this one

    @property
    def is_do_block(self) -> bool:
        return self.name == DO_BLOCK

    def describe(self) -> str:
        return "the DO block" if self.is_do_block else f"the body of function {self.name}"


def find_body(is_do_block: bool, language: str, location: int, name: str, body: str, text: str,
              statement_start: int, statement_end: int, line_of: Callable[[int], int]) -> Body | None:
    """The PL/pgSQL body of a DO (is_do_block) or CREATE FUNCTION/PROCEDURE statement, or None for
    another language. `location`: where the parser put the body's option (a DO block's literal, a
    function's AS keyword), as a character offset of `text`, what pglast parsed; `body`: the literal's
    value; `line_of` maps an offset of `text` to the file line."""
    if language.lower() != "plpgsql" or location < 0:
        return None
    literal = location if is_do_block else _AFTER_AS.match(text, location + 2).end()  # type: ignore[union-attr]
    span = literal_end(text, literal)
    if span is None:
        return None
    start, end = span
    if is_do_block:
        def source(variant: str) -> str:
            tag = _tag(variant)
            return f"CREATE FUNCTION pg_temp.migrate_do() RETURNS void LANGUAGE plpgsql AS {tag}{variant}{tag}"
    else:
        prefix, suffix = text[statement_start:literal], text[end:statement_end]

        def source(variant: str) -> str:
            tag = _tag(variant)
            return f"{prefix}{tag}{variant}{tag}{suffix}"
    return Body(DO_BLOCK if is_do_block else name, body, literal, start, end, line_of(literal), source)


def parse_body(body: Body) -> tuple[str | None, str | None]:
    """(pglast's PL/pgSQL tree as JSON text, None), or (None, the error PostgreSQL would report too) or
    (None, None) when pglast cannot judge the body (catalog lookups it does not implement).

    The tree stays text: only a DO block's is ever read (statements._do_block_reason), and decoding
    every function's tree took longer than parsing it (a 60 KB file of functions: ~6 ms; issue 16)."""
    from pglast import parser

    try:
        return parser.parse_plpgsql_json(body.source(body.text)), None
    except parser.ParseError as error:
        message = str(error.args[0]) if error.args else ""
        return None, message if REFUSED.match(message) else None
    except Exception:  # noqa: BLE001 - anything else pglast cannot judge: the server will
        return None, None


def error_place(body: Body, message: str) -> int:
    """The line of the body (1 = the line of its opening quote) where `message` arises."""
    lines = body.text.split("\n")
    for count in range(1, len(lines) + 1):
        if _same_error(_error_of(body.source("\n".join(lines[:count]) + "\n" + SENTINEL)), message):
            return count
    # an error at the end of the body ("syntax error at end of input"): its last written line
    written = [number for number, line in enumerate(lines, start=1) if line.strip()]
    return written[-1] if written else 1


def near_text(message: str) -> str | None:
    """The excerpt a parser error quotes (`... at or near "X"`), first line only."""
    match = _NEAR.match(message)
    return match.group("near").split("\n")[0].rstrip("\r") if match else None


def bounded(message: str, limit: int = 60) -> str:
    """A parser error on one line: its quoted excerpt (which may hold the rest of the file, for an
    unterminated quote or comment) cut at its first line and at `limit` characters, then `...`."""
    match = _NEAR.match(message)
    if match is None:
        first = message.split("\n")[0].rstrip("\r")
        return first if len(first) <= 2 * limit else first[:2 * limit] + "..."
    near = match.group("near")
    shown = near.split("\n")[0].rstrip("\r")[:limit]
    return f'{match.group("head")}"{shown}{"..." if shown != near else ""}"'


def _error_of(sql: str) -> str | None:
    from pglast import parser

    try:
        parser.parse_plpgsql_json(sql)
    except parser.ParseError as error:
        return str(error.args[0]) if error.args else ""
    except Exception:  # noqa: BLE001 - not the error looked for
        return None
    return None


def _same_error(found: str | None, message: str) -> bool:
    if found is None:
        return False
    if found == message:
        return True
    # an unterminated quote or comment quotes the rest of the text, which the cut changed
    return message.startswith("unterminated ") and found.split(" at or near ")[0] == message.split(" at or near ")[0]


def _tag(body: str) -> str:
    tag = "$migrate_body$"
    while tag in body:
        tag = tag[:-1] + "x$"
    return tag
