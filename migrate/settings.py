"""Settings for one environment, resolved once before anything connects.

Layers, later wins: `envs/<env>.env` (committed, no secrets), `envs/<env>.local.env`
(git-ignored, a developer's secrets), then the process environment. `${VAR}` in an env
file expands from the process environment, so committed files can name secrets without
holding them. Bad configuration fails here, naming the file and the key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, NamedTuple
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

# (libpq keyword, earlier script's variable, libpq's variable, earlier script's default)
CONNECTION_KEYS: tuple[tuple[str, str, str, str | None], ...] = (
    ("host", "POSTGRES_HOST", "PGHOST", "localhost"),
    ("port", "POSTGRES_PORT", "PGPORT", "5432"),
    ("dbname", "POSTGRES_DB", "PGDATABASE", "postgres"),
    ("user", "POSTGRES_USER", "PGUSER", "postgres"),
    ("password", "POSTGRES_PASSWORD", "PGPASSWORD", None),
)


class Target(NamedTuple):
    """Where and how to connect: all `database/` is given (it never sees Settings).

    `connection` holds libpq keywords; `embedded_pgdata` names the embedded server's folder
    when the environment uses it (its host and port are known only once it runs).
    """

    connection: Mapping[str, str] = MappingProxyType({})
    embedded_pgdata: Path | None = None
    application_name: str = "migrate"
    max_wait: float = 180.0
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
        password = self.connection.get("password")
        return [password] if password else []

    def label(self) -> str:
        """The database as commands name it: the embedded server's folder, or the masked URL."""
        if self.embedded_pgdata is not None:
            return f"embedded PostgreSQL in {self.embedded_pgdata}"
        return self.masked_dsn()


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
    shadow: ShadowOptions = ShadowOptions()


# keywords the tool sets itself (or that are in the URL's other parts): not repeated as ?key=value
HIDDEN_KEYWORDS = {"user", "password", "host", "port", "dbname", "application_name", "connect_timeout",
                   "client_encoding", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count"}


def masked_dsn(connection: Mapping[str, str]) -> str:
    user = connection.get("user", "")
    auth = quote(user, safe="") if user else ""
    if connection.get("password"):
        auth += ":***"
    host = connection.get("host", "")
    port = connection.get("port", "")
    netloc = (auth + "@" if auth else "") + quote(host, safe="") + (f":{port}" if port else "")
    url = f"postgresql://{netloc}/{quote(connection.get('dbname', ''), safe='')}"
    extras = [f"{key}={value}" for key, value in sorted(connection.items())
              if key not in HIDDEN_KEYWORDS]
    return url + ("?" + "&".join(extras) if extras else "")


def scrub(text: str, secrets: list[str]) -> str:
    """Replace every secret in `text` with `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class _Layers:
    """Merged key/value pairs plus where each came from, for error messages."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.source: dict[str, str] = {}

    def add(self, values: Mapping[str, str | None], source: str) -> None:
        for key, value in values.items():
            self.values[key] = "" if value is None else value
            self.source[key] = source

    def get(self, key: str) -> str | None:
        value = self.values.get(key)
        return value if value not in (None, "") else None

    def where(self, key: str) -> str:
        return self.source.get(key, "defaults")


def load_settings(
    env: str = "local",
    root: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve the Settings of environment `env` from `root/envs/` and the environment."""
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

    layers = _Layers()
    local_file = envs_dir / f"{env}.local.env"
    for path in (env_file, local_file):
        if path.is_file():
            layers.add(_read_env_file(path, root, environ), display_path(path, root))
    layers.add({k: v for k, v in environ.items() if k in _KNOWN_KEYS}, PROCESS_ENVIRONMENT)
    return _build_settings(env, root, env_file, layers)


def _read_env_file(path: Path, root: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """Values of one dotenv file, `${VAR}` expanded; an unset reference is an error."""
    from dotenv import dotenv_values

    raw = dotenv_values(path, interpolate=False)
    defined: dict[str, str] = {}
    for key, value in raw.items():
        text = value or ""

        def expand(match: re.Match[str], key: str = key) -> str:
            name, default = match.group(1), match.group(2)
            if environ.get(name):
                return environ[name]
            if defined.get(name):
                return defined[name]
            if default is not None:
                return default[2:]
            if key in environ:  # the process environment overrides this key anyway
                return ""
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
    "PGCONNECT_TIMEOUT", "PGAPPNAME",
    "MIGRATE_PROTECTED_SCHEMAS", "MIGRATION_RESET_SCHEMA", "MIGRATE_HEARTBEAT_INTERVAL",
} | {
    "MIGRATE_SQL_LOCK_TIMEOUT", "MIGRATE_STATEMENT_TIMEOUT", "MIGRATE_LOCK_RETRIES", "MIGRATE_LOCK_RETRY_DELAY",
    "MIGRATE_EXECUTOR", "MIGRATE_PSQL", "MIGRATE_DOCKER",
} | {name for _, old, _, _ in CONNECTION_KEYS for name in (old,)} | {
    libpq for _, _, libpq, _ in CONNECTION_KEYS
}
_KNOWN_KEYS |= {"MIGRATE_LINT"}
_KNOWN_KEYS |= {"MIGRATE_SHADOW_URL", "MIGRATE_SHADOW_DISPOSABLE", "MIGRATE_SHADOW_SETUP"}


def _build_settings(env: str, root: Path, env_file: Path, layers: _Layers) -> Settings:
    connection = _connection(layers)
    explicit = bool(layers.get("DATABASE_URL") or layers.get("POSTGRES_HOST") or layers.get("PGHOST"))
    embedded = _flag(layers, "MIGRATE_EMBEDDED", False) and not explicit
    pgdata = None
    if embedded:
        pgdata = Path(layers.get("MIGRATE_PGDATA") or ".pgdata")
        pgdata = pgdata if pgdata.is_absolute() else root / pgdata
    require_tls = _flag(layers, "MIGRATE_REQUIRE_TLS", False)
    if require_tls and not embedded:
        mode = connection.get("sslmode")
        if mode is None:
            connection["sslmode"] = "require"
        elif mode not in TLS_MODES:
            raise ConfigError(
                f"{layers.where('DATABASE_URL')}: sslmode={mode} but environment {env!r} requires TLS "
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
            wait_max_interval=min(retry, 1.0) if retry > 0 else 1.0,
            lock_timeout=_pg_duration(layers, "MIGRATE_SQL_LOCK_TIMEOUT"),
            statement_timeout=_pg_duration(layers, "MIGRATE_STATEMENT_TIMEOUT"),
        ),
        run=RunOptions(
            run_lock_timeout=_number(layers, "MIGRATE_LOCK_TIMEOUT", 60.0),
            heartbeat_interval=_number(layers, "MIGRATE_HEARTBEAT_INTERVAL", 10.0),
            lock_retries=_count(layers, "MIGRATE_LOCK_RETRIES", 3),
            lock_retry_delay=_number(layers, "MIGRATE_LOCK_RETRY_DELAY", 1.0),
            executor=_executor(layers),
            psql_path=layers.get("MIGRATE_PSQL"),
        ),
        lint=LintOptions(
            mode=_choice(layers, "MIGRATE_LINT", LINT_MODES),
            protected_schemas=_schema_list(layers, "MIGRATE_PROTECTED_SCHEMAS", DEFAULT_PROTECTED_SCHEMAS),
        ),
        safety=Safety(
            require_tls=require_tls,
            confirm=_flag(layers, "MIGRATE_CONFIRM", False),
            disposable=_flag(layers, "MIGRATE_DISPOSABLE", False),
            reset_schema=_flag(layers, "MIGRATION_RESET_SCHEMA", False),
        ),
        docker=layers.get("MIGRATE_DOCKER"),
        shadow=_shadow_options(layers, root),
    )


def _schema_list(layers: _Layers, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A comma- or space-separated list of schema names; unset means the default, empty or `none` means none."""
    if key not in layers.values:
        return default
    names = tuple(name for name in re.split(r"[\s,]+", layers.values[key].strip()) if name)
    if names == ("none",):
        return ()
    for name in names:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_$]*$", name):
            raise ConfigError(f"{layers.where(key)}: {key} holds {name!r}, which is not a schema name; "
                              "list names separated by commas, e.g. auth,storage")
    return names


PG_DURATION_RE = re.compile(r"^\d+(\.\d+)?\s*(us|ms|s|min|h|d)?$")
EXECUTORS = {"builtin": "builtin", "psycopg2": "builtin", "psql": "psql"}


def _pg_duration(layers: _Layers, key: str) -> str | None:
    """A PostgreSQL duration such as 5s, 500ms, 15min or 0 (off); a bare number is milliseconds."""
    value = layers.get(key)
    if value is None:
        return None
    text = value.strip()
    if not PG_DURATION_RE.match(text):
        raise ConfigError(
            f"{layers.where(key)}: {key}={value!r} is not a PostgreSQL duration; write it like 5s, 500ms, "
            "2min or 0 (no limit)"
        )
    return text.replace(" ", "")


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


def _connection(layers: _Layers) -> dict[str, str]:
    """libpq keywords from DATABASE_URL, else the POSTGRES_* variables, else PG*."""
    connection: dict[str, str] = {}
    url = layers.get("DATABASE_URL")
    if url:
        from psycopg2 import ProgrammingError
        from psycopg2.extensions import parse_dsn

        try:
            connection = dict(parse_dsn(url))
        except ProgrammingError:
            raise ConfigError(
                f"{layers.where('DATABASE_URL')}: DATABASE_URL is not a valid connection URL "
                "(expected postgresql://user:password@host:port/database)"
            ) from None
    for keyword, old, libpq, default in CONNECTION_KEYS:
        if keyword in connection:
            continue
        value = layers.get(old) or layers.get(libpq)
        if value is None and not url:
            value = default
        if value is not None:
            connection[keyword] = value
    if "port" in connection and not connection["port"].isdigit():
        raise ConfigError(f"{layers.where('POSTGRES_PORT')}: port {connection['port']!r} is not a number")
    if "sslmode" not in connection and layers.get("PGSSLMODE"):
        connection["sslmode"] = layers.get("PGSSLMODE") or ""
    if layers.get("PGCONNECT_TIMEOUT") and "connect_timeout" not in connection:
        connection["connect_timeout"] = layers.get("PGCONNECT_TIMEOUT") or ""
    return connection


def _flag(layers: _Layers, key: str, default: bool) -> bool:
    value = layers.get(key)
    if value is None:
        return default
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{layers.where(key)}: {key}={value!r} is not a boolean (use true or false)")


def _number(layers: _Layers, key: str, default: float) -> float:
    value = layers.get(key)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{layers.where(key)}: {key}={value!r} is not a number of seconds") from None
    if number < 0:
        raise ConfigError(f"{layers.where(key)}: {key}={value!r} must not be negative")
    return number


def _choice(layers: _Layers, key: str, choices: tuple[str, ...]) -> str:
    """One of `choices` (case-insensitive); the first is the default."""
    value = (layers.get(key) or choices[0]).strip().lower()
    if value not in choices:
        raise ConfigError(f"{layers.where(key)}: {key}={layers.get(key)!r} is not one of {', '.join(choices)}")
    return value


def _shadow_options(layers: _Layers, root: Path) -> ShadowOptions:
    """MIGRATE_SHADOW_URL / _DISPOSABLE / _SETUP (checks/shadow.py); the URL is never echoed: it may hold a password."""
    url = layers.get("MIGRATE_SHADOW_URL")
    connection = None
    if url:
        from psycopg2 import ProgrammingError
        from psycopg2.extensions import parse_dsn

        try:
            connection = dict(parse_dsn(url))
        except ProgrammingError:
            raise ConfigError(f"{layers.where('MIGRATE_SHADOW_URL')}: MIGRATE_SHADOW_URL is not a valid connection "
                              "URL (expected postgresql://user:password@host:port/database)") from None
    setup = layers.get("MIGRATE_SHADOW_SETUP")
    setup_file = None if setup is None else (Path(setup) if Path(setup).is_absolute() else root / setup)
    return ShadowOptions(connection=connection, url_source=layers.where("MIGRATE_SHADOW_URL"),
                         disposable=_flag(layers, "MIGRATE_SHADOW_DISPOSABLE", False), setup_file=setup_file,
                         setup_source=layers.where("MIGRATE_SHADOW_SETUP"))
