"""Where psql sees what in a migration file: quotes, comments, meta-commands, COPY data.

psql reads a file with a lexer of its own (psqlscan.l): a backslash outside every quote and
comment starts a meta-command, anywhere on a line (`SELECT 1 \\gset`), and runs to the end of
that line; a `;` outside quotes, comments and parentheses ends a statement; after a
`COPY ... FROM stdin` statement (or `\\copy ... from stdin`) the lines up to `\\.` are data,
not SQL. A backslash inside a string literal, a quoted identifier, a dollar quote or a
comment is text. This scanner follows those rules (standard strings with '' doubling, E''
strings with backslash escapes, "identifiers", $tag$ dollar quotes, `--` and nested `/* */`
comments), so that only what psql would run as a meta-command makes a file a psql file.

Pure and regex-driven (the scan jumps from one token to the next in C): no pglast, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Every token that changes what follows it; the text between two tokens is plain SQL code.
_TOKEN = re.compile(r"""
    (?P<comment>--)
  | (?P<block>/\*)
  | (?P<variable>(?<!:):(?:'\w+'|"\w+"|[^\W\d]\w*))  # psql's :name, :'name', :"name" (never ::type)
  | (?P<estring>[eE]')
  | (?P<string>')
  | (?P<ident>")
  | (?P<dollar>\$(?:[^\W\d]\w*)?\$)
  | (?P<meta>\\)
  | (?P<semicolon>;)
  | (?P<open>\()
  | (?P<close>\))
""", re.VERBOSE)
_STRING_END = re.compile(r"[^']*(?:''[^']*)*'")
_ESCAPE_STRING_END = re.compile(r"[^'\\]*(?:(?:\\.|'')[^'\\]*)*'", re.DOTALL)
_IDENT_END = re.compile(r'[^"]*(?:""[^"]*)*"')
_BLOCK_EDGE = re.compile(r"/\*|\*/")
_META_NAME = re.compile(r"\\|[^\s\\]*")
_COPY_FROM_STDIN = re.compile(r"^\s*COPY\b.*\bFROM\s+STDIN\b", re.IGNORECASE | re.DOTALL)
_META_COPY_FROM_STDIN = re.compile(r"\bfrom\s+stdin\b", re.IGNORECASE)
_END_OF_COPY_DATA = re.compile(r"^\\\.\r?$", re.MULTILINE)
_MAY_NEED_PSQL = re.compile(r"\\|stdin", re.IGNORECASE)
_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")

# Meta-commands that send the query buffer (they end a statement, as `;` does).
SENDING = frozenset({"g", "gx", "gset", "gexec", "gdesc", "crosstabview", "watch", "bind"})
# pg_dump 17.6+ writes these; they need no psql (statements.blank_restrict_lines blanks them).
RESTRICT = frozenset({"restrict", "unrestrict"})
IDENTIFIER_CHAR = re.compile(r"[\w$]")


@dataclass(frozen=True)
class MetaCommand:
    """One backslash meta-command as psql would read it: `\\name argument` up to the end of its line."""

    offset: int  # the backslash
    end: int  # the end of its line (before `\r\n` / `\n`)
    name: str
    argument: str


@dataclass(frozen=True)
class CopyData:
    """A COPY ... FROM stdin (or \\copy ... from stdin) and the data lines psql sends after it."""

    offset: int  # where the COPY statement (or the \\copy) starts
    statement_end: int  # just after its `;` (or the end of the \\copy line)
    data_end: int  # just after the `\\.` line (or the end of the file)


@dataclass(frozen=True)
class PsqlText:
    """What psql would see in a file besides SQL: meta-commands, COPY data, psql variables."""

    meta_commands: tuple[MetaCommand, ...] = ()
    copies: tuple[CopyData, ...] = ()
    variables: tuple[tuple[int, int, str], ...] = ()  # (offset, end, what pglast sees instead)

    @property
    def psql_only(self) -> tuple[MetaCommand, ...]:
        """The meta-commands only psql can run (pg_dump's \\restrict lines are not among them)."""
        return tuple(meta for meta in self.meta_commands if meta.name not in RESTRICT)

    @property
    def needs_psql(self) -> bool:
        return bool(self.psql_only or self.copies)


NO_PSQL = PsqlText()


def literal_end(text: str, start: int) -> tuple[int, int] | None:
    """For the string literal (`$tag$...$tag$`, `'...'`, `E'...'`) at `start`: where its content
    starts and where the literal ends; None when there is none, or it is not closed."""
    tag = _DOLLAR_TAG.match(text, start)
    if tag is not None:
        close = text.find(tag.group(), tag.end())
        return (tag.end(), close + len(tag.group())) if close >= 0 else None
    if text.startswith(("E'", "e'"), start):
        pattern, content = _ESCAPE_STRING_END, start + 2
    elif text.startswith("'", start):
        pattern, content = _STRING_END, start + 1
    else:
        return None
    end = pattern.match(text, content)
    return (content, end.end()) if end is not None else None


def scan_psql(text: str) -> PsqlText:
    """The meta-commands, COPY data and variables psql would find in `text` (see the module doc)."""
    # most files: no backslash and no COPY ... FROM stdin, nothing to scan; the plain look comes first (the
    # case-insensitive pattern costs ~1 ms on a 60 KB file), the pattern only for non-ASCII text (Unicode
    # case folding can match there what lower() does not)
    if "\\" not in text and (text.isascii() and "stdin" not in text.lower() or not _MAY_NEED_PSQL.search(text)):
        return NO_PSQL
    return _Scanner(text).run()


class _Scanner:
    """One pass over a file, token to token; `code` collects the current statement's SQL (literals
    and comments stood in for) so a COPY ... FROM stdin can be recognised when its `;` comes."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.metas: list[MetaCommand] = []
        self.copies: list[CopyData] = []
        self.variables: list[tuple[int, int, str]] = []
        self.code: list[str] = []
        self.first_code: int | None = None  # where the current statement's first SQL word is
        self.depth = 0

    def run(self) -> PsqlText:
        text, position = self.text, 0
        while (match := _TOKEN.search(text, position)) is not None:
            start, kind = match.start(), match.lastgroup
            segment = text[position:start]
            if self.first_code is None and segment.strip():
                self.first_code = position + len(segment) - len(segment.lstrip())
            self.code.append(segment)
            if kind in ("estring", "dollar") and start > 0 and IDENTIFIER_CHAR.match(text[start - 1]):
                # `name$tag$` and `nameE'` continue an identifier: one character of code, go on
                self.code.append(text[start])
                position = start + 1
                continue
            position = getattr(self, f"_{kind}")(match)
        return PsqlText(tuple(self.metas), tuple(self.copies), tuple(self.variables))

    def _comment(self, match: re.Match[str]) -> int:
        end = self.text.find("\n", match.end())
        self.code.append(" ")
        return len(self.text) if end < 0 else end

    def _block(self, match: re.Match[str]) -> int:
        depth, position = 1, match.end()
        while depth and (edge := _BLOCK_EDGE.search(self.text, position)) is not None:
            depth += 1 if edge.group() == "/*" else -1
            position = edge.end()
        self.code.append(" ")
        return position if depth == 0 else len(self.text)

    def _quoted(self, match: re.Match[str], end_pattern: re.Pattern[str], stand_in: str) -> int:
        end = end_pattern.match(self.text, match.end())
        self.code.append(stand_in)
        return end.end() if end is not None else len(self.text)

    def _string(self, match: re.Match[str]) -> int:
        return self._quoted(match, _STRING_END, "''")

    def _estring(self, match: re.Match[str]) -> int:
        return self._quoted(match, _ESCAPE_STRING_END, "''")

    def _ident(self, match: re.Match[str]) -> int:
        return self._quoted(match, _IDENT_END, '"x"')

    def _dollar(self, match: re.Match[str]) -> int:
        tag = match.group()
        end = self.text.find(tag, match.end())
        self.code.append("''")
        return len(self.text) if end < 0 else end + len(tag)

    def _variable(self, match: re.Match[str]) -> int:
        token = match.group()
        name = token[1:]
        stand_in = name if name[0] in "'\"" else "NULL"  # :'v' -> 'v', :"v" -> "v", :v -> NULL
        self.variables.append((match.start(), match.end(), stand_in))
        self.code.append(stand_in)
        return match.end()

    def _meta(self, match: re.Match[str]) -> int:
        text = self.text
        name = _META_NAME.match(text, match.end())
        assert name is not None  # the pattern matches the empty string too
        line_end = text.find("\n", match.start())
        line_end = len(text) if line_end < 0 else line_end
        end = line_end - 1 if line_end > match.start() and text[line_end - 1] == "\r" else line_end
        meta = MetaCommand(match.start(), end, name.group(), text[name.end():end].strip())
        self.metas.append(meta)
        if meta.name == "copy" and _META_COPY_FROM_STDIN.search(meta.argument):
            return self._copy_data(meta.offset, line_end)
        if meta.name in SENDING:
            self._end_statement()
        return line_end

    def _semicolon(self, match: re.Match[str]) -> int:
        if self.depth:
            self.code.append(";")
            return match.end()
        statement, offset = "".join(self.code), self.first_code
        self._end_statement()
        if offset is not None and _COPY_FROM_STDIN.match(statement):
            return self._copy_data(offset, match.end())
        return match.end()

    def _open(self, match: re.Match[str]) -> int:
        self.depth += 1
        self.code.append("(")
        return match.end()

    def _close(self, match: re.Match[str]) -> int:
        self.depth = max(self.depth - 1, 0)
        self.code.append(")")
        return match.end()

    def _end_statement(self) -> None:
        self.code = []
        self.depth = 0
        self.first_code = None

    def _copy_data(self, offset: int, statement_end: int) -> int:
        """psql sends the lines after the COPY's line, up to a line `\\.`, as its data."""
        text = self.text
        line_end = text.find("\n", statement_end)
        data_start = len(text) if line_end < 0 else line_end + 1
        stop = _END_OF_COPY_DATA.search(text, data_start)
        if stop is None:
            data_end = len(text)
        else:
            after = text.find("\n", stop.end())
            data_end = len(text) if after < 0 else after + 1
        self.copies.append(CopyData(offset, statement_end, data_end))
        self._end_statement()
        return data_end
