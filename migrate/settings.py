"""Settings for one environment, resolved once before anything connects.

Sources: `envs/<env>.env` (committed, no secrets), `envs/<env>.local.env` (git-ignored, a
developer's own), the process environment (a shell, CI, docker compose) and the command
line's connection flags. Which one wins depends on the setting, because a named environment
must never silently reach another database and a guard must never be weakened by a stray
variable (README "Environments" holds the same rule as a table):

- The connection (DATABASE_URL, POSTGRES_*, PG*) comes from one place, whole: the
  environment's files when they name a server; else the process environment (docker compose
  passes its server that way); else, for an environment whose file says MIGRATE_EMBEDDED=true,
  the embedded server. Command-line flags (--host ...) change it last, and say so.
- Guards (MIGRATE_REQUIRE_TLS, MIGRATE_CONFIRM, MIGRATE_SQL_LOCK_TIMEOUT, MIGRATE_LOCK_TIMEOUT)
  take the stricter of the files and the process environment. MIGRATE_DISPOSABLE is read from
  the files only: a database is disposable because its environment file says so.
- Everything else: the process environment over `<env>.local.env` over `<env>.env`.
- An empty value never overrides anything: CI systems pass defined-but-empty variables.

`${VAR}` in an env file expands from the process environment, so committed files can name
secrets without holding them. Bad configuration fails here, naming the file and the key;
a DATABASE_URL that does not parse cleanly is refused without echoing any part of it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Mapping, NamedTuple
from urllib.parse import quote

from migrate.errors import ConfigError
from migrate.paths import display_path

ENV_NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
REFERENCE_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
TLS_MODES = {"require", "verify-ca", "verify-full"}
PROCESS_ENVIRONMENT = "the process environment"
# The platform's schemas a migration must not change unless the file allows it (inv lint).
DEFAULT_PROTECTED_SCHEMAS = ("auth", "storage", "realtime", "extensions", "graphql", "supabase_functions",
                             "pgbouncer", "vault")
LINT_MODES = ("warn", "strict", "off")
# What lint lets the app attach to the platform's tables (MIGRATE_LINT_ALLOW extends or narrows it):
# KIND:SCHEMA.TABLE, KIND policy (CREATE/ALTER/DROP POLICY ON it), trigger (CREATE/DROP TRIGGER ON it,
# calling an app function) or rows (INSERT/UPDATE/DELETE of its rows).
DEFAULT_LINT_ALLOW = ("policy:storage.objects", "policy:storage.buckets", "policy:realtime.messages",
                      "trigger:auth.users", "rows:storage.buckets")

# (libpq keyword, earlier script's variable, libpq's variable, earlier script's default). The host has
# no default: a target is named, never filled from defaults (libpq's would reach the machine's own server).
CONNECTION_KEYS: tuple[tuple[str, str, str, str | None], ...] = (
    ("host", "POSTGRES_HOST", "PGHOST", None),
    ("port", "POSTGRES_PORT", "PGPORT", "5432"),
    ("dbname", "POSTGRES_DB", "PGDATABASE", "postgres"),
    ("user", "POSTGRES_USER", "PGUSER", "postgres"),
    ("password", "POSTGRES_PASSWORD", "PGPASSWORD", None),
)
# Every variable that says where to connect: they come from one source together (see the module doc).
CONNECTION_VARIABLES = ("DATABASE_URL",) + tuple(name for _, old, libpq, _ in CONNECTION_KEYS
                                                 for name in (old, libpq)) + ("PGSSLMODE",)
SERVER_VARIABLES = ("DATABASE_URL", "POSTGRES_HOST", "PGHOST")  # any of these, non-empty, names a server
# Guards the process environment may make stricter, never weaker; and the one it cannot set at all.
STRICTER_ONLY = ("MIGRATE_REQUIRE_TLS", "MIGRATE_CONFIRM", "MIGRATE_SQL_LOCK_TIMEOUT", "MIGRATE_LOCK_TIMEOUT")
FILES_ONLY = ("MIGRATE_DISPOSABLE",)
# libpq reads these from the process environment by itself and would send a connection elsewhere than
# the host the environment's files name (hostaddr wins over host; a service may set hostaddr).
LIBPQ_REDIRECTS = ("PGHOSTADDR", "PGSERVICE")
FLAG_NAMES = {"host": "--host", "port": "--port", "dbname": "--database", "user": "--user", "password": "--password"}
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}

# Origin kinds: where an environment's target came from.
FROM_FILE, FROM_SHELL, FROM_FLAGS, FROM_EMBEDDED, FROM_NOWHERE = "file", "shell", "flag", "embedded", "none"


class Target(NamedTuple):
    """Where and how to connect: all `database/` is given (it never sees Settings).

    `connection` holds libpq keywords; `embedded_pgdata` names the embedded server's folder
    when the environment uses it (its host and port are known only once it runs).
    """

    connection: Mapping[str, str] = MappingProxyType({})
    embedded_pgdata: Path | None = None
    application_name: str = "migrate"
    max_wait: float = 180.0
    # MIGRATE_READ_TIMEOUT: how long read-only commands (status, dry-run, history) wait for the server.
    # A person is waiting for an answer; MAX_WAIT_TIME is for a container that starts beside its server.
    read_wait: float = 10.0
    wait_max_interval: float = 1.0
    # migration sessions (see README "Timeouts"): PostgreSQL lock_timeout / statement_timeout
    lock_timeout: str | None = None
    statement_timeout: str | None = None

    @property
    def uses_embedded(self) -> bool:
        return self.embedded_pgdata is not None

    def masked_dsn(self, connection: Mapping[str, str] | None = None) -> str:
        """A postgresql:// URL for humans: the password, if any, is always `***`."""
        return masked_dsn(connection if connection is not None else self.connection)

    def secrets(self) -> list[str]:
        """Strings that must never be printed (scrubbed from every error message)."""
        return [value for key in ("password", "sslpassword") if (value := self.connection.get(key))]

    def label(self) -> str:
        """The database as commands name it: the embedded server's folder, or the masked URL."""
        if self.embedded_pgdata is not None:
            return f"embedded PostgreSQL in {self.embedded_pgdata}"
        return self.masked_dsn()

    @property
    def is_local(self) -> bool:
        """The embedded server, or a server on this machine (loopback address or Unix socket).

        What destructive commands may reach without an environment file naming the server:
        a shell variable pointing at a remote server must not make it disposable.
        """
        if self.embedded_pgdata is not None:
            return True
        hosts = (self.connection.get("hostaddr") or self.connection.get("host") or "").split(",")
        return all(is_loopback(host.strip()) for host in hosts)


def is_loopback(host: str) -> bool:
    """A Unix socket folder, `localhost`, or a loopback IP address (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.startswith(("/", "@")):  # a Unix socket (or Linux's abstract namespace): this machine
        return True
    if host.lower() in LOOPBACK_NAMES:
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Origin(NamedTuple):
    """Where an environment's target came from: what its target line says, and what the reset guard weighs.

    kind: FROM_FILE (the environment's files name the server), FROM_SHELL (the process environment
    does), FROM_FLAGS (--host ... changed it), FROM_EMBEDDED, or FROM_NOWHERE (nothing names one).
    where: the same for a person, e.g. `envs/staging.env` or `the shell environment: DATABASE_URL`.
    """

    kind: str = FROM_NOWHERE
    where: str = "nowhere"


class RunOptions(NamedTuple):
    """How a run applies its migrations: all `apply/` is given besides the session and the plan."""

    run_lock_timeout: float = 60.0  # MIGRATE_LOCK_TIMEOUT: seconds to wait for the run lock
    heartbeat_interval: float = 10.0
    lock_retries: int = 3
    lock_retry_delay: float = 1.0
    executor: str = "builtin"
    psql_path: str | None = None


class LintOptions(NamedTuple):
    """What lint checks against: `MIGRATE_LINT` (warn, strict, off) and the protected schemas."""

    mode: str = "warn"
    protected_schemas: tuple[str, ...] = DEFAULT_PROTECTED_SCHEMAS
    allow: tuple[str, ...] = DEFAULT_LINT_ALLOW  # MIGRATE_LINT_ALLOW: platform tables the app may attach to


class Safety(NamedTuple):
    """The guards: TLS, confirmation before writing, whether the app schema may be dropped."""

    require_tls: bool = False
    confirm: bool = False
    disposable: bool = False
    reset_schema: bool = False


class ShadowOptions(NamedTuple):
    """Where verify builds its shadow database and what from (checks/shadow.py): MIGRATE_SHADOW_URL (libpq
    keywords of a server for shadow databases), MIGRATE_SHADOW_DISPOSABLE (nothing else uses that server),
    MIGRATE_SHADOW_SETUP (a project SQL file that builds the platform instead of a pg_dump of the target)."""

    connection: Mapping[str, str] | None = None
    url_source: str = ""
    disposable: bool = False
    setup_file: Path | None = None
    setup_source: str = ""


class Settings(NamedTuple):
    """Everything a command needs to know about one environment: who it is, and four narrow records.

    A NamedTuple, like the other records on the start-up path: it is built without the
    dataclasses machinery, which cost a no-op run ~15 ms (bench/RESULTS.md). `_replace` copies.
    Layers below commands get the record they need (`target`, `run`, `lint`), never Settings.
    """

    env_name: str
    root: Path
    env_file: Path
    schema: str = "langconnect"
    migrations_dir: Path = Path("migrations")
    target: Target = Target()
    run: RunOptions = RunOptions()
    lint: LintOptions = LintOptions()
    safety: Safety = Safety()
    docker: str | None = None  # MIGRATE_DOCKER: the docker binary for dev-start/stop, or off
    origin: Origin = Origin()
    shadow: ShadowOptions = ShadowOptions()  # verify and drift: where and how the shadow is built

    def target_line(self) -> str:
        """The one line every connecting command prints first: environment, masked target, source."""
        return f"environment {self.env_name}: {self.target.label()} (from {self.origin.where})"


def require_target(settings: Settings) -> None:
    """Raise ConfigError (exit 2) when nothing names this environment's server.

    Not raised while loading: `new` and `lint` never connect and need no server.
    """
    if settings.origin.kind != FROM_NOWHERE:
        return
    if settings.origin.where != Origin().where:  # a partial target: the earlier script's variables without a host
        raise ConfigError(
            f"environment {settings.env_name!r}: {settings.origin.where}; name the server (POSTGRES_HOST, e.g. "
            "localhost for this machine, or DATABASE_URL) or unset them"
        )
    files = " or ".join(display_path(settings.env_file.with_name(name), settings.root)
                        for name in (settings.env_file.name, settings.env_file.name[:-4] + ".local.env"))
    raise ConfigError(
        f"environment {settings.env_name!r} names no database server: set DATABASE_URL (or POSTGRES_HOST) in "
        f"{files}, or in the process environment, or give --host"
    )


# keywords the tool sets itself (or that are in the URL's other parts): not repeated as ?key=value
HIDDEN_KEYWORDS = {"user", "password", "host", "port", "dbname", "application_name", "connect_timeout",
                   "client_encoding", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count"}


def masked_dsn(connection: Mapping[str, str]) -> str:
    """A postgresql:// URL with the password as `***`; a Unix-socket host goes in the query, as libpq writes it."""
    user = connection.get("user", "")
    auth = quote(user, safe="") if user else ""
    if connection.get("password"):
        auth += ":***"
    host = connection.get("host", "")
    port = connection.get("port", "")
    socket = host.startswith("/")
    netloc = (auth + "@" if auth else "") + ("" if socket else _hosts_part(host, port))
    url = f"postgresql://{netloc}/{quote(connection.get('dbname', ''), safe='')}"
    extras = [f"host={host}", f"port={port}"] if socket else []
    extras += [f"{key}={value}" for key, value in sorted(connection.items())
               if key not in HIDDEN_KEYWORDS and key != "sslpassword"]
    return url + ("?" + "&".join(extras) if extras else "")


def _hosts_part(host: str, port: str) -> str:
    """`host:port[,host:port...]` as a URL writes it (IPv6 addresses in brackets)."""
    hosts, ports = host.split(","), port.split(",")
    ports += [ports[-1]] * (len(hosts) - len(ports))  # libpq: one port for every host
    parts = []
    for name, number in zip(hosts, ports, strict=False):  # more ports than hosts: libpq refuses it
        name = f"[{name}]" if ":" in name else quote(name, safe="")
        parts.append(name + (f":{number}" if number else ""))
    return ",".join(parts)


def scrub(text: str, secrets: list[str]) -> str:
    """Replace every secret in `text` with `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text




# --- DATABASE_URL: parsed here, strictly, without psycopg2 --------------------------------------------
#
# libpq and psycopg2 accept URLs that mean something other than what their author meant (a password
# holding `/` or `@` turns into a host, a port or a database name) and then echo those pieces in
# their errors. A URL is taken only when every part sits where RFC 3986 puts it; anything else is
# refused with advice, and no part of it is ever repeated.

URL_SCHEMES = ("postgresql://", "postgres://")
_PCT = r"%[0-9A-Fa-f]{2}"
_USERINFO_RE = re.compile(rf"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|{_PCT})*$")
_HOST_RE = re.compile(rf"^(?:[A-Za-z0-9\-._~!$&'()*+;=]|{_PCT})*$")
_DBNAME_RE = re.compile(rf"^(?:[A-Za-z0-9\-._~!$&'()*+,;=:]|{_PCT})*$")
_QUERY_ITEM_RE = re.compile(rf"^([A-Za-z_]+)=((?:[A-Za-z0-9\-._~!$'()*+,;:/?]|{_PCT})*)$")
_CONNINFO_ITEM_RE = re.compile(r"\s*([A-Za-z_]+)\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']*)")
URL_ADVICE = ("percent-encode special characters in the user name and password (for example a slash as %2F, "
              "an at sign as %40, a colon as %3A, a hash as %23, a question mark as %3F, a percent sign as %25, "
              "a space as %20), or give the password as POSTGRES_PASSWORD instead; the URL is not shown, "
              "as it may hold a password")


class UrlProblem(ValueError):
    """A fixed description of what is wrong with a URL: it never holds any part of the URL."""


def parse_database_url(url: str) -> dict[str, str]:
    """libpq keywords of a `postgresql://` URL (or a `key=value` conninfo string); UrlProblem if unclean.

    Clean means: user and password percent-encoded, at most one `@`, hosts and ports where they
    belong, a database name, query items `key=value`. A host and a database are required: an empty
    or partial URL must not be completed from libpq's defaults.
    """
    from urllib.parse import unquote

    def decode(text: str) -> str:
        try:
            return unquote(text, errors="strict")
        except UnicodeDecodeError:
            raise UrlProblem("it holds a percent-encoded byte sequence that is not UTF-8") from None

    text = url.strip()
    lowered = text.lower()
    scheme = next((s for s in URL_SCHEMES if lowered.startswith(s)), None)
    if scheme is None:
        if "://" not in text and "=" in text:
            return _parse_conninfo(text)
        raise UrlProblem("it does not start with postgresql://")
    rest = text[len(scheme):]
    if any(character.isspace() for character in rest) or "#" in rest:
        raise UrlProblem("it holds a space or a # where a URL allows neither")
    end = min((rest.find(c) for c in "/?" if c in rest), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in tail:
        raise UrlProblem("it holds an @ after the host part, as an unencoded password with / or ? would")
    connection: dict[str, str] = {}
    if authority.count("@") > 1:
        raise UrlProblem("it holds more than one @ before the host")
    if "@" in authority:
        userinfo, authority = authority.split("@")
        if not _USERINFO_RE.match(userinfo):
            raise UrlProblem("the user name or password holds a character that must be percent-encoded")
        user, _, password = userinfo.partition(":")
        if user:
            connection["user"] = decode(user)
        if password:
            connection["password"] = decode(password)
    hosts, ports = _parse_hosts(authority, decode)
    if any(hosts):
        connection["host"] = ",".join(hosts)
    if any(ports):
        connection["port"] = ",".join(ports)
    path, _, query = tail.partition("?")
    if path:
        name = path[1:]
        if not _DBNAME_RE.match(name):
            raise UrlProblem("the database name holds a character that must be percent-encoded")
        if name:
            connection["dbname"] = decode(name)
    for item in query.split("&") if query else ():
        match = _QUERY_ITEM_RE.match(item)
        if not match:
            raise UrlProblem("a query item is not key=value with its value percent-encoded")
        value = decode(match.group(2))
        if value:
            connection[match.group(1)] = value
    return _complete(connection)


def _parse_hosts(authority: str, decode: Callable[[str], str]) -> tuple[list[str], list[str]]:
    """The hosts and ports of `host[:port][,host[:port]...]` (IPv6 in brackets)."""
    hosts: list[str] = []
    ports: list[str] = []
    for part in authority.split(",") if authority else ():
        if part.startswith("["):
            host, bracket, after = part[1:].partition("]")
            if not bracket or (after and not after.startswith(":")) or not re.match(r"^[0-9A-Fa-f:.]+$", host):
                raise UrlProblem("an IPv6 host is not written as [address]:port")
            port = after[1:]
        else:
            host, _, port = part.partition(":")
            if ":" in port or not _HOST_RE.match(host):
                raise UrlProblem("the host part is not host:port (an unencoded : or @ in a password looks like this)")
            host = decode(host)
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise UrlProblem("a port is not a number from 1 to 65535 (an unencoded : in a password looks like this)")
        hosts.append(host)
        ports.append(port)
    return hosts, ports


def _parse_conninfo(text: str) -> dict[str, str]:
    """libpq's `key=value key='quoted value'` form."""
    connection: dict[str, str] = {}
    position = 0
    while position < len(text.rstrip()):
        match = _CONNINFO_ITEM_RE.match(text, position)
        if not match or match.end() == position:
            raise UrlProblem("it is neither a postgresql:// URL nor key=value pairs")
        value = match.group(2)
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        if value:
            connection[match.group(1)] = value
        position = match.end()
    return _complete(connection)


def _complete(connection: dict[str, str]) -> dict[str, str]:
    if not connection.get("host") and not connection.get("hostaddr"):
        raise UrlProblem("it names no host")
    if not connection.get("dbname"):
        raise UrlProblem("it names no database")
    return connection


# --- the sources, kept apart ----------------------------------------------------------------------------


class _Layers:
    """An environment's files (`<env>.local.env` over `<env>.env`) and the process environment, kept apart.

    Which of them a setting takes is the setting's own rule (see the module doc); empty values
    are dropped on the way in, so an empty value never overrides anything.
    """

    def __init__(self, process: Mapping[str, str]) -> None:
        self.files: dict[str, str] = {}
        self.file_source: dict[str, str] = {}
        self.process = {key: value for key, value in process.items() if key in _KNOWN_KEYS and value != ""}
        self.redirecting: list[str] = []  # LIBPQ_REDIRECTS set in the process environment

    def add_file(self, values: Mapping[str, str | None], source: str) -> None:
        for key, value in values.items():
            if value:
                self.files[key] = value
                self.file_source[key] = source

    def get(self, key: str) -> str | None:
        """An ordinary setting: the process environment over the files."""
        return self.process.get(key) or self.files.get(key)

    def where(self, key: str) -> str:
        if key in self.process:
            return PROCESS_ENVIRONMENT
        return self.file_source.get(key, "defaults")

    def file_where(self, key: str) -> str:
        return self.file_source.get(key, "defaults")


def load_settings(
    env: str = "local",
    root: Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve the Settings of environment `env` from `root/envs/`, the environment and connection flags.

    flags: libpq keywords given on the command line (--host, --port, --database, --user,
    --password), keyed host, port, dbname, user, password; they win over every other source.
    """
    root = (root or Path.cwd()).resolve()
    environ = os.environ if environ is None else environ
    if not ENV_NAME_RE.match(env):
        raise ConfigError(f"invalid environment name {env!r}: use letters, digits, '-' or '_'")
    envs_dir = root / "envs"
    env_file = envs_dir / f"{env}.env"
    if not env_file.is_file():
        known = sorted(p.name[: -len(".env")] for p in envs_dir.glob("*.env")
                       if not p.name.endswith(".local.env")) if envs_dir.is_dir() else []
        hint = f"known environments: {', '.join(known)}" if known else f"create {display_path(env_file, root)}"
        raise ConfigError(f"unknown environment {env!r}: {display_path(env_file, root)} does not exist ({hint})")

    layers = _Layers(environ)
    layers.redirecting = [name for name in LIBPQ_REDIRECTS if environ.get(name)]
    local_file = envs_dir / f"{env}.local.env"
    local_values = _read_env_file(local_file, root, environ, {}) if local_file.is_file() else {}
    layers.add_file(_read_env_file(env_file, root, environ, local_values), display_path(env_file, root))
    layers.add_file(local_values, display_path(local_file, root))
    return _build_settings(env, root, env_file, layers, {k: v for k, v in (flags or {}).items() if v is not None})


# a line python-dotenv reads as KEY=VALUE with the value exactly as written: no quote, comment, escape or space
_PLAIN_ENV_LINE = re.compile(r"[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)=([^\s'\"#\\]*)[ \t]*")


def read_dotenv(path: Path) -> dict[str, str | None]:
    """What `dotenv.dotenv_values(path, interpolate=False)` returns. A file of plain lines only (KEY=VALUE,
    comments, blank lines) is read here; any other goes to python-dotenv, whose import cost every run ~5 ms
    (issue 16). tests/test_speed_paths.py compares the two on plain and tricky files."""
    text = path.read_text(encoding="utf-8")
    values: dict[str, str | None] = {}
    if "\r" not in text:
        for line in text.split("\n"):
            match = _PLAIN_ENV_LINE.fullmatch(line)
            if match:
                values[match.group(1)] = match.group(2)
            elif line.strip() and not line.lstrip().startswith("#"):
                break
        else:
            return values
    from dotenv import dotenv_values

    return dotenv_values(path, interpolate=False)


def _read_env_file(path: Path, root: Path, environ: Mapping[str, str],
                   overriding: Mapping[str, str]) -> dict[str, str]:
    """Values of one dotenv file, `${VAR}` expanded; an unset reference is an error.

    overriding: the values of the file read over this one (`<env>.local.env`): a reference may be
    set there, and a key set there needs no reference resolved here.
    """
    raw = read_dotenv(path)
    defined: dict[str, str] = {}
    for key, value in raw.items():
        text = value or ""

        def expand(match: re.Match[str], key: str = key) -> str:
            name, default = match.group(1), match.group(2)
            if environ.get(name):
                return environ[name]
            if defined.get(name):
                return defined[name]
            if overriding.get(name):
                return overriding[name]
            if default is not None:
                return default[2:]
            if overriding.get(key):  # the local file sets this key: this value is never used
                return ""
            if environ.get(key) and key not in CONNECTION_VARIABLES and key not in STRICTER_ONLY + FILES_ONLY:
                return ""  # the process environment's value wins for this key anyway
            raise ConfigError(
                f"{display_path(path, root)}: {key} needs ${{{name}}}, which is not set; "
                f"export {name} or set it in {display_path(path.with_name(path.name[:-4] + '.local.env'), root)}"
            )

        defined[key] = REFERENCE_RE.sub(expand, text)
    return defined


_KNOWN_KEYS = {
    "DATABASE_URL", "MIGRATE_SCHEMA", "MIGRATIONS_DIR", "MIGRATE_EMBEDDED", "MIGRATE_PGDATA",
    "MAX_WAIT_TIME", "WAIT_RETRY_INTERVAL", "MIGRATE_LOCK_TIMEOUT", "MIGRATE_REQUIRE_TLS",
    "MIGRATE_CONFIRM", "MIGRATE_DISPOSABLE", "MIGRATE_APPLICATION_NAME", "PGSSLMODE",
    "PGCONNECT_TIMEOUT", "PGAPPNAME", "MIGRATE_READ_TIMEOUT",
    "MIGRATE_PROTECTED_SCHEMAS", "MIGRATION_RESET_SCHEMA", "MIGRATE_HEARTBEAT_INTERVAL",
} | {
    "MIGRATE_SQL_LOCK_TIMEOUT", "MIGRATE_STATEMENT_TIMEOUT", "MIGRATE_LOCK_RETRIES", "MIGRATE_LOCK_RETRY_DELAY",
    "MIGRATE_EXECUTOR", "MIGRATE_PSQL", "MIGRATE_DOCKER", "MIGRATE_LINT", "MIGRATE_LINT_ALLOW",
    "MIGRATE_SHADOW_URL", "MIGRATE_SHADOW_DISPOSABLE", "MIGRATE_SHADOW_SETUP",
} | set(CONNECTION_VARIABLES)


def _build_settings(env: str, root: Path, env_file: Path, layers: _Layers, flags: Mapping[str, str]) -> Settings:
    embedded_wanted = _flag(layers.get("MIGRATE_EMBEDDED"), layers.where("MIGRATE_EMBEDDED"), "MIGRATE_EMBEDDED",
                            False)
    connection, origin, embedded = _resolve_connection(layers, flags, embedded_wanted)
    pgdata = None
    if embedded:
        pgdata = Path(layers.get("MIGRATE_PGDATA") or ".pgdata")
        pgdata = pgdata if pgdata.is_absolute() else root / pgdata
    require_tls = _stricter_flag(layers, "MIGRATE_REQUIRE_TLS")
    if require_tls and not embedded and origin.kind != FROM_NOWHERE:
        mode = connection.get("sslmode")
        if mode is None:
            connection["sslmode"] = "require"
        elif mode not in TLS_MODES:
            raise ConfigError(
                f"{origin.where}: sslmode={mode} but environment {env!r} requires TLS "
                f"(MIGRATE_REQUIRE_TLS); use sslmode=require, verify-ca or verify-full"
            )
    migrations_dir = Path(layers.get("MIGRATIONS_DIR") or "migrations")
    schema = layers.get("MIGRATE_SCHEMA") or "langconnect"
    retry = _number(layers, "WAIT_RETRY_INTERVAL", 1.0)
    return Settings(
        env_name=env,
        root=root,
        env_file=env_file,
        schema=schema,
        migrations_dir=migrations_dir if migrations_dir.is_absolute() else root / migrations_dir,
        target=Target(
            connection=connection,
            embedded_pgdata=pgdata,
            application_name=layers.get("MIGRATE_APPLICATION_NAME") or layers.get("PGAPPNAME") or "migrate",
            max_wait=_number(layers, "MAX_WAIT_TIME", 180.0),
            read_wait=_number(layers, "MIGRATE_READ_TIMEOUT", 10.0),
            wait_max_interval=min(retry, 1.0) if retry > 0 else 1.0,
            lock_timeout=_stricter_duration(layers, "MIGRATE_SQL_LOCK_TIMEOUT"),
            statement_timeout=_pg_duration(layers.get("MIGRATE_STATEMENT_TIMEOUT"),
                                           layers.where("MIGRATE_STATEMENT_TIMEOUT"), "MIGRATE_STATEMENT_TIMEOUT"),
        ),
        run=RunOptions(
            run_lock_timeout=_stricter_seconds(layers, "MIGRATE_LOCK_TIMEOUT", 60.0),
            heartbeat_interval=_number(layers, "MIGRATE_HEARTBEAT_INTERVAL", 10.0),
            lock_retries=_count(layers, "MIGRATE_LOCK_RETRIES", 3),
            lock_retry_delay=_number(layers, "MIGRATE_LOCK_RETRY_DELAY", 1.0),
            executor=_executor(layers),
            psql_path=layers.get("MIGRATE_PSQL"),
        ),
        lint=LintOptions(
            mode=_choice(layers, "MIGRATE_LINT", LINT_MODES),
            protected_schemas=_schema_list(layers, "MIGRATE_PROTECTED_SCHEMAS", DEFAULT_PROTECTED_SCHEMAS),
            allow=_lint_allow(layers, "MIGRATE_LINT_ALLOW"),
        ),
        safety=Safety(
            require_tls=require_tls,
            confirm=_stricter_flag(layers, "MIGRATE_CONFIRM"),
            disposable=_flag(layers.files.get("MIGRATE_DISPOSABLE"), layers.file_where("MIGRATE_DISPOSABLE"),
                             "MIGRATE_DISPOSABLE", False),
            reset_schema=_flag(layers.get("MIGRATION_RESET_SCHEMA"), layers.where("MIGRATION_RESET_SCHEMA"),
                               "MIGRATION_RESET_SCHEMA", False),
        ),
        docker=layers.get("MIGRATE_DOCKER"),
        origin=origin,
        shadow=_shadow_options(layers, root),
    )


def _names_server(values: Mapping[str, str]) -> bool:
    return any(values.get(name) for name in SERVER_VARIABLES)


def _resolve_connection(layers: _Layers, flags: Mapping[str, str], embedded_wanted: bool
                        ) -> tuple[dict[str, str], Origin, bool]:
    """The connection, where it came from, and whether it is the embedded server (the module doc's rule)."""
    connection: dict[str, str] = {}
    embedded = False
    if _names_server(layers.files):
        connection = _connection_from(layers.files, layers.file_where)
        used = dict.fromkeys(layers.file_where(k) for k in CONNECTION_VARIABLES if k in layers.files)
        origin = Origin(FROM_FILE, ", ".join(used))
    elif _names_server(layers.process):
        connection = _connection_from(layers.process, lambda key: PROCESS_ENVIRONMENT)
        used_keys = [key for key in CONNECTION_VARIABLES if key in layers.process]
        origin = Origin(FROM_SHELL, f"the shell environment: {', '.join(used_keys)}")
    elif partial := [key for key, _ in _PARTIAL_WITHOUT_HOST if layers.process.get(key)]:
        # the earlier script defaulted POSTGRES_HOST to localhost; now a target is named, never defaulted
        origin = Origin(FROM_NOWHERE, f"the process environment sets {', '.join(partial)} but no POSTGRES_HOST")
    elif embedded_wanted:
        embedded = True
        connection = {"dbname": layers.files.get("POSTGRES_DB") or layers.files.get("PGDATABASE") or "postgres"}
        origin = Origin(FROM_EMBEDDED, f"{layers.where('MIGRATE_EMBEDDED')}: MIGRATE_EMBEDDED=true, no server named")
    else:
        origin = Origin()
    if flags:
        names = " ".join(FLAG_NAMES[key] for key in FLAG_NAMES if key in flags)
        over = f" over {origin.where}" if origin.kind != FROM_NOWHERE else ""
        if embedded and set(flags) <= {"dbname"}:
            origin = Origin(FROM_EMBEDDED, f"flag {names}{over}")
        else:
            embedded = False
            origin = Origin(FROM_FLAGS, f"flags {names}{over}")
            if "host" not in flags and not connection.get("host"):
                raise ConfigError(f"the command line gives {names} but no server: add --host")
        connection.update(flags)
        for keyword, _, _, default in CONNECTION_KEYS:
            if default is not None:
                connection.setdefault(keyword, default)
    if layers.redirecting and origin.kind not in (FROM_SHELL, FROM_NOWHERE):
        raise ConfigError(
            f"the process environment sets {', '.join(layers.redirecting)}, which libpq would use to reach another "
            f"server than {origin.where} names; unset it (or name the server in the process environment instead)"
        )
    if "port" in connection and not all(port.isdigit() for port in connection["port"].split(",")):
        source = "flag --port" if "port" in flags else origin.where
        raise ConfigError(f"{source}: port {connection['port']!r} is not a number")
    return connection, origin, embedded


_PARTIAL_WITHOUT_HOST = tuple((old, keyword) for keyword, old, _, _ in CONNECTION_KEYS if keyword != "host")


def _connection_from(values: Mapping[str, str], where: Callable[[str], str]) -> dict[str, str]:
    """libpq keywords from one source: DATABASE_URL, else the POSTGRES_* variables, else PG*.

    What a DATABASE_URL leaves out (a password, say) may come from the same source's variables;
    then the earlier script's defaults (port 5432, database and user postgres), never libpq's.
    """
    connection: dict[str, str] = {}
    url = values.get("DATABASE_URL")
    if url:
        try:
            connection = parse_database_url(url)
        except UrlProblem as problem:
            raise ConfigError(
                f"{where('DATABASE_URL')}: DATABASE_URL is not a clean postgresql://user:password@host:port/database "
                f"URL ({problem}); {URL_ADVICE}"
            ) from None
    for keyword, old, libpq, default in CONNECTION_KEYS:
        if keyword in connection or (keyword == "host" and connection.get("hostaddr")):
            continue
        value = values.get(old) or values.get(libpq) or default
        if value is not None:
            connection[keyword] = value
    if "sslmode" not in connection and values.get("PGSSLMODE"):
        connection["sslmode"] = values["PGSSLMODE"]
    return connection


def _schema_list(layers: _Layers, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma- or space-separated list of schema names; unset (or empty) means the default, `none` means none."""
    value = layers.get(key)
    if value is None:
        return default
    names = tuple(name for name in re.split(r"[\s,]+", value.strip()) if name)
    if names == ("none",):
        return ()
    for name in names:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_$]*$", name):
            raise ConfigError(f"{layers.where(key)}: {key} holds {name!r}, which is not a schema name; "
                              "list names separated by commas, e.g. auth,storage")
    return names or default


# --- guards: the stricter of the files and the process environment ---------------------------------------


def _stricter_flag(layers: _Layers, key: str) -> bool:
    """True when the files or the process environment say true: `false` in the shell cannot undo a file's true."""
    in_files = _flag(layers.files.get(key), layers.file_where(key), key, False)
    in_process = _flag(layers.process.get(key), PROCESS_ENVIRONMENT, key, False)
    return in_files or in_process


def _stricter_seconds(layers: _Layers, key: str, default: float) -> float:
    """The shorter of the files' and the process environment's values (either one alone, else the default)."""
    values = [number for number in (_seconds(layers.files.get(key), layers.file_where(key), key),
                                    _seconds(layers.process.get(key), PROCESS_ENVIRONMENT, key)) if number is not None]
    return min(values) if values else default


def _stricter_duration(layers: _Layers, key: str) -> str | None:
    """The shorter PostgreSQL duration of the files and the process environment; 0 means no limit, so it never
    replaces a limit the other one sets."""
    candidates = [value for value in (_pg_duration(layers.files.get(key), layers.file_where(key), key),
                                      _pg_duration(layers.process.get(key), PROCESS_ENVIRONMENT, key))
                  if value is not None]
    limits = [value for value in candidates if _duration_ms(value) > 0]
    if limits:
        return min(limits, key=_duration_ms)
    return candidates[0] if candidates else None


# --- values -------------------------------------------------------------------------------------------------

PG_DURATION_RE = re.compile(r"^\d+(\.\d+)?\s*(us|ms|s|min|h|d)?$")
DURATION_MS = {"us": 0.001, "ms": 1.0, "": 1.0, "s": 1000.0, "min": 60_000.0, "h": 3_600_000.0, "d": 86_400_000.0}
EXECUTORS = {"builtin": "builtin", "psycopg2": "builtin", "psql": "psql"}


def _pg_duration(value: str | None, where: str, key: str) -> str | None:
    """A PostgreSQL duration such as 5s, 500ms, 15min or 0 (off); a bare number is milliseconds."""
    if value is None:
        return None
    text = value.strip()
    if not PG_DURATION_RE.match(text):
        raise ConfigError(
            f"{where}: {key}={value!r} is not a PostgreSQL duration; write it like 5s, 500ms, 2min or 0 (no limit)"
        )
    return text.replace(" ", "")


def _duration_ms(text: str) -> float:
    """Milliseconds of a duration _pg_duration accepted (0: no limit)."""
    match = PG_DURATION_RE.match(text)
    assert match is not None
    number = float(text[: match.start(2)] if match.group(2) else text)
    return number * DURATION_MS[match.group(2) or ""]


def _count(layers: _Layers, key: str, default: int) -> int:
    value = layers.get(key)
    if value is None:
        return default
    if not value.strip().isdigit():
        raise ConfigError(f"{layers.where(key)}: {key}={value!r} is not a whole number (use 0 for no retries)")
    return int(value.strip())


def _executor(layers: _Layers) -> str:
    value = (layers.get("MIGRATE_EXECUTOR") or "builtin").strip().lower()
    if value not in EXECUTORS:
        raise ConfigError(
            f"{layers.where('MIGRATE_EXECUTOR')}: MIGRATE_EXECUTOR={value!r} is not known; use builtin "
            "(psycopg2, the default) or psql"
        )
    return EXECUTORS[value]


def _flag(value: str | None, where: str, key: str, default: bool) -> bool:
    if value is None:
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{where}: {key}={value!r} is not a boolean (use true or false)")


def _seconds(value: str | None, where: str, key: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{where}: {key}={value!r} is not a number of seconds") from None
    if number < 0 or number != number:
        raise ConfigError(f"{where}: {key}={value!r} must not be negative")
    return number


def _number(layers: _Layers, key: str, default: float) -> float:
    number = _seconds(layers.get(key), layers.where(key), key)
    return default if number is None else number


def _choice(layers: _Layers, key: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (case-insensitive); the first is the default."""
    value = (layers.get(key) or choices[0]).strip().lower()
    if value not in choices:
        raise ConfigError(f"{layers.where(key)}: {key}={layers.get(key)!r} is not one of {', '.join(choices)}")
    return value


LINT_ALLOW_ENTRY = re.compile(r"^-?(policy|trigger|rows):[A-Za-z_][A-Za-z0-9_$]*\.([A-Za-z_][A-Za-z0-9_$]*|\*)$")


def _lint_allow(layers: _Layers, key: str) -> tuple[str, ...]:
    """The lint allowlist: the defaults, plus each `KIND:SCHEMA.TABLE`, minus each `-KIND:SCHEMA.TABLE`;
    `none` drops the defaults. A project sets it once instead of a marker in every file."""
    value = layers.get(key)
    if value is None:
        return DEFAULT_LINT_ALLOW
    entries = [entry for entry in re.split(r"[\s,]+", value.strip()) if entry]
    allow = [] if "none" in entries else list(DEFAULT_LINT_ALLOW)
    for entry in entries:
        if entry == "none":
            continue
        if not LINT_ALLOW_ENTRY.match(entry):
            raise ConfigError(f"{layers.where(key)}: {key} holds {entry!r}, which is not an allowlist entry; write "
                              "KIND:SCHEMA.TABLE with KIND policy, trigger or rows (e.g. policy:storage.objects, "
                              "rows:auth.*), -KIND:SCHEMA.TABLE to remove a default, or none")
        if entry.startswith("-"):
            allow = [kept for kept in allow if kept != entry[1:]]
        elif entry not in allow:
            allow.append(entry)
    return tuple(allow)


def _shadow_options(layers: _Layers, root: Path) -> ShadowOptions:
    """MIGRATE_SHADOW_URL / _DISPOSABLE / _SETUP (checks/shadow.py); the URL is never echoed: it may hold a password."""
    url = layers.get("MIGRATE_SHADOW_URL")
    connection = None
    if url:
        try:
            connection = parse_database_url(url)
        except UrlProblem as problem:
            raise ConfigError(f"{layers.where('MIGRATE_SHADOW_URL')}: MIGRATE_SHADOW_URL is not a clean "
                              f"postgresql://user:password@host:port/database URL ({problem}); {URL_ADVICE}") from None
    setup = layers.get("MIGRATE_SHADOW_SETUP")
    setup_file = None if setup is None else (Path(setup) if Path(setup).is_absolute() else root / setup)
    return ShadowOptions(connection=connection, url_source=layers.where("MIGRATE_SHADOW_URL"),
                         disposable=_flag(layers.files.get("MIGRATE_SHADOW_DISPOSABLE"),
                                          layers.file_where("MIGRATE_SHADOW_DISPOSABLE"), "MIGRATE_SHADOW_DISPOSABLE",
                                          False), setup_file=setup_file,
                         setup_source=layers.where("MIGRATE_SHADOW_SETUP"))
