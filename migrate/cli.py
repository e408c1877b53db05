"""The edge: the one command table, argparse for `python -m migrate`, and the one error edge.

`python -m migrate` (containers, with the earlier script's flags: `--status`, `--dry-run`,
`--host` ...) and the Invoke tasks (tasks.py) both end in `run_command`, which resolves the
environment, applies command-line overrides, calls the command in `commands`, and turns
every failure into one stderr line (plus, with --json, one JSON error document on stdout)
and the documented exit code (errors.py). Nothing else in the package prints an error.

Every command that reaches a database says first, on stderr, where it is going: the
environment, the masked target and the source that named it (an env file, the shell, flags).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence

from migrate.errors import EXIT_CONFIG, EXIT_MIGRATION_FAILED, EXIT_UNREACHABLE, ConfigError, MigrateError
from migrate.settings import Settings, load_settings, require_target

# what `python -m migrate` accepts (the Invoke tasks add dev-start, start and stop)
COMMANDS = ("migrate", "status", "dry-run", "wait", "db-stop", "verify", "drift", "reset", "repair", "baseline",
            "history")
COMMANDS += ("new", "lint")  # authoring: take positional words (new: description; lint: files)
COMMANDS += ("schema",)  # `schema dump`: a two-word command, its action the one positional word
WORD_COMMANDS = ("new", "lint", "schema")
SCHEMA_ACTIONS = ("dump",)
# the commands that reach a database: they print the target line and need a named server
# (dev-start says it itself when it migrates from this machine: with docker compose the stack picks its server)
TARGET_COMMANDS = ("migrate", "status", "dry-run", "wait", "verify", "drift", "reset", "repair", "baseline",
                   "history", "schema")
log = logging.getLogger("migrate")


class Flags(NamedTuple):
    """Every option a command can take, from argparse or from an Invoke task."""

    env: str = "local"
    json: bool = False
    yes: bool = False
    timeout: float | None = None
    limit: int = 20
    verbose: bool = False
    up_to: str | None = None  # baseline --up-to V
    track: str | None = None
    words: tuple[str, ...] = ()
    dry_run: bool = False
    host: str | None = None
    port: str | None = None
    database: str | None = None
    user: str | None = None
    password: str | None = None
    run_added: bool = False
    ignore_owner: bool = False  # drift --ignore-owner
    drift: bool = False  # status --drift
    check: bool = False  # schema dump --check
    out: str | None = None  # schema dump --out FILE
    owners: bool = False  # schema dump --owners


def _table() -> dict[str, Callable[[Settings, Flags], Any]]:
    """The command table: how each command is called with resolved Settings and its flags."""
    from migrate import commands

    return {
        "migrate": lambda s, f: commands.migrate(s, as_json=f.json, yes=f.yes, run_added=f.run_added),
        "status": lambda s, f: commands.status(s, as_json=f.json, drift=f.drift),
        "dry-run": lambda s, f: commands.dry_run(s, as_json=f.json, run_added=f.run_added),
        "wait": lambda s, f: commands.wait(s, f.timeout),
        "db-stop": lambda s, f: commands.db_stop(s),
        "verify": lambda s, f: commands.verify(s, as_json=f.json),
        "drift": lambda s, f: commands.drift(s, as_json=f.json, ignore_owner=f.ignore_owner),
        "reset": lambda s, f: commands.reset(s, yes=f.yes),
        "repair": lambda s, f: commands.repair(s, dry_run=f.dry_run, yes=f.yes),
        "baseline": lambda s, f: commands.baseline(s, f.up_to, f.track, yes=f.yes),
        "history": lambda s, f: commands.history(s, limit=f.limit, as_json=f.json),
        "new": lambda s, f: commands.new(s, " ".join(f.words), f.track or "lanconnect"),
        "lint": lambda s, f: commands.lint(s, list(f.words), as_json=f.json),
        "schema": lambda s, f: commands.schema_dump(s, check=f.check, out=f.out, owners=f.owners),
        "dev-start": lambda s, f: commands.dev_start(s),
        "stop": lambda s, f: commands.stop(s),
    }


def configure_logging(verbose: bool = False) -> None:
    """Logs go to stderr, one line each, so stdout stays tables and JSON."""
    import warnings

    warnings.filterwarnings("ignore", module="platformdirs")  # XDG_RUNTIME_DIR noise in containers
    logging.basicConfig(stream=sys.stderr, format="migrate: %(message)s", level=logging.WARNING, force=True)
    logging.getLogger("migrate").setLevel(logging.DEBUG if verbose else logging.INFO)


def connection_flags(flags: Flags) -> dict[str, str]:
    """The earlier script's --host/--port/--database/--user/--password as libpq keywords (they win over
    every other source; load_settings applies them and the target line names them)."""
    given = {"host": flags.host, "port": flags.port, "dbname": flags.database, "user": flags.user,
             "password": flags.password}
    return {key: value for key, value in given.items() if value}


def resolve(command: str, flags: Flags, root: Path, environ: Mapping[str, str] | None) -> Settings:
    """The environment's Settings with the command line applied; for a command that connects, the
    target is required and its line printed before anything else happens."""
    settings = load_settings(flags.env, root, environ, connection_flags(flags))
    if command in TARGET_COMMANDS:
        require_target(settings)
        log.info("%s", settings.target_line())
    return settings


def run_command(command: str, flags: Flags, *, root: Path | None = None,
                environ: Mapping[str, str] | None = None) -> int:
    """Run one command with its flags; the exit code. The one place an error becomes output.

    root: the project folder (default: the current directory); environ: the process environment
    the settings are read from (default: os.environ).
    """
    configure_logging(flags.verbose)
    root = root or Path.cwd()
    try:
        if command == "status" and _names_many(flags.env):
            from migrate import commands

            commands.status_environments(flags.env, root, as_json=flags.json, timeout=flags.timeout, environ=environ,
                                         drift=flags.drift)
        elif command == "drift" and _names_many(flags.env):
            from migrate import commands

            commands.drift_environments(flags.env, root, as_json=flags.json, ignore_owner=flags.ignore_owner,
                                        environ=environ)
        elif command == "start":
            import os

            from migrate import commands

            commands.start(root, flags.env, docker=(os.environ if environ is None else environ).get("MIGRATE_DOCKER"))
        else:
            if command == "schema":
                require_schema_action(flags.words)
            _table()[command](resolve(command, flags, root, environ), flags)
        return 0
    except MigrateError as error:
        if flags.json and not error.reported_as_json:
            from migrate.report import documents

            documents.print_json(documents.error_json(error))  # --json promises one document on stdout
        for line in error.earlier:
            print(f"migrate: error: {line}", file=sys.stderr)
        print(f"migrate: error: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("migrate: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        found = database_error_message(error)
        if found is None:
            raise
        line, code = found
        if flags.json:
            from migrate.report import documents

            documents.print_json({"error": {"exit_code": code, "message": line[len("migrate: error: "):]}})
        print(line, file=sys.stderr)
        return code


def require_schema_action(words: tuple[str, ...]) -> None:
    """`schema` takes exactly one action word: `schema dump`."""
    if len(words) != 1 or words[0] not in SCHEMA_ACTIONS:
        given = " ".join(words) if words else "no action"
        raise ConfigError(f"schema takes one action, {' or '.join(SCHEMA_ACTIONS)} (got {given!r}): "
                          "`schema dump [--check] [--out FILE] [--owners]`")


def _names_many(env: str) -> bool:
    """Does --env name several environments (`all` or a comma list)? Asked of every status: importing overview
    (its thread pool and dataclasses) for this cost a status of one environment ~10 ms (issue 16)."""
    return env == "all" or "," in env


class _PrintVersion(argparse.Action):
    """`--version`: the version is looked up only when asked for (a no-op run imports no more)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=kwargs.get("help"))

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(tool_version())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m migrate",
        description="Apply and inspect two-track PostgreSQL migrations.",
        epilog="exit codes: 0 ok, 1 migration failed, 2 usage/config, 3 unreachable, "
               "4 validation, 5 lock timeout, 6 refused, 7 drift (drift; schema dump --check: the file differs), "
               "8 deploy in progress",
    )
    parser.add_argument("command", nargs="?", choices=COMMANDS, default=None,
                        help="what to do (default: migrate)")
    parser.add_argument("words", nargs="*", metavar="ARG",
                        help='new: the description ("add user preferences"); lint: files or folders; '
                        'schema: the action (dump)')
    parser.add_argument("--env", default="local", help="environment: envs/<env>.env (default: local); "
                        "status and drift also take `all` or a comma list")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--yes", action="store_true",
                        help="do not ask: confirm-guarded environments (migrate, repair, baseline) and reset")
    parser.add_argument("--timeout", type=float, default=None,
                        help="wait: seconds (default MAX_WAIT_TIME); status --env all: "
                        "connect timeout per environment (default 5)")
    parser.add_argument("--limit", type=int, default=20, help="history: how many attempts to show (default 20)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logs on stderr")
    parser.add_argument("--version", action=_PrintVersion,
                        help="print the tool's version (as history rows record it) and exit")
    parser.add_argument("--up-to", dest="up_to", default=None, metavar="V",
                        help="baseline: mark every version up to V as applied")
    parser.add_argument("--track", default=None,
                        help="new, baseline: lanconnect (default) or client_specific")
    parser.add_argument("--run-added", dest="run_added", action="store_true",
                        help="migrate, dry-run: also run the files added under already-applied versions (only "
                        "those), then record each such version with all its files")
    parser.add_argument("--ignore-owner", dest="ignore_owner", action="store_true",
                        help="drift: do not compare owners")
    parser.add_argument("--drift", action="store_true",
                        help="status: also measure drift (a drift row per environment with --env all)")
    parser.add_argument("--check", action="store_true",
                        help="schema dump: write nothing; exit 7 with a diff when the file differs from what the "
                        "migrations produce")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="schema dump: the schema file (default schema.sql at the project root)")
    parser.add_argument("--owners", action="store_true", help="schema dump: keep the objects' owners")
    legacy = parser.add_argument_group("earlier script's flags")
    legacy.add_argument("--status", action="store_true", help="same as the status command")
    legacy.add_argument("--dry-run", dest="dry_run", action="store_true", help="same as the dry-run command")
    for flag in ("host", "port", "database", "user", "password"):
        legacy.add_argument(f"--{flag}", default=None)
    return parser


def main(argv: Sequence[str] | None = None, *, root: Path | None = None,
         environ: Mapping[str, str] | None = None) -> int:
    """`python -m migrate ARGS`: the exit code (root and environ as for run_command)."""
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if "--version" in words and len(words) > 1:  # baseline's option was --version: never a silent exit 0
        print("migrate: error: --version prints the tool's version and takes nothing else; "
              "baseline's option is --up-to V", file=sys.stderr)
        return EXIT_CONFIG
    try:
        args = parser.parse_intermixed_args(words)
    except SystemExit as stop:  # argparse already printed the usage error
        return EXIT_CONFIG if stop.code else 0
    command = args.command or ("status" if args.status else "dry-run" if args.dry_run else "migrate")
    if args.words and command not in WORD_COMMANDS:
        print(f"migrate: error: unexpected argument(s) {' '.join(args.words)!r} for the {command} command",
              file=sys.stderr)
        return EXIT_CONFIG
    if args.command and (args.status or (args.dry_run and args.command != "repair")):
        print(f"migrate: error: --status/--dry-run cannot be combined with the {args.command} command",
              file=sys.stderr)
        return EXIT_CONFIG
    if command != "schema" and (args.check or args.out or args.owners):
        print(f"migrate: error: --check, --out and --owners are options of `schema dump`, not of the {command} "
              "command", file=sys.stderr)
        return EXIT_CONFIG
    if command == "schema" and args.json:
        # the schema file and its diff are the output; a JSON document around them would be a second format
        print("migrate: error: `schema dump` has no --json output: it writes the schema file, and --check prints a "
              "unified diff", file=sys.stderr)
        return EXIT_CONFIG
    flags = Flags(env=args.env, json=args.json, yes=args.yes, timeout=args.timeout,
                  limit=args.limit, verbose=args.verbose, up_to=args.up_to,
                  track=args.track, words=tuple(args.words), dry_run=args.dry_run, host=args.host, port=args.port,
                  database=args.database, user=args.user, password=args.password, run_added=args.run_added,
                  ignore_owner=args.ignore_owner, drift=args.drift, check=args.check, out=args.out,
                  owners=args.owners)
    return run_command(command, flags, root=root, environ=environ)


def tool_version() -> str:
    """The tool's version as every history and attempt row records it (`tool_version`)."""
    from migrate.history.recorder import TOOL_VERSION

    return TOOL_VERSION


def database_error_message(error: Exception) -> tuple[str, int] | None:
    """One line and the exit code for a database error outside any migration; None if it is not one.

    Migrations turn their own errors into MigrateError; this catches the rest (reading or writing
    history). A lost connection (the server restarted between two migrations) exits 3; any other
    error (a read-only database, a missing privilege, a history table the tool cannot use) is named
    with its SQLSTATE and exits 1.
    """
    if not type(error).__module__.startswith("psycopg2"):
        return None
    from migrate.database.connection import first_line, server_error

    facts = server_error(error)
    if facts.sqlstate and not facts.sqlstate.startswith(("08", "57P")):
        return (f"migrate: error: the database refused the tool's own SQL ({facts.sqlstate}: {facts.message}); "
                "nothing more was done: fix the database or the user's rights and run the command again",
                EXIT_MIGRATION_FAILED)
    return (f"migrate: error: lost the connection to the database ({first_line(str(error))}); "
            "whatever ran before was committed or rolled back as a whole; run the command again", EXIT_UNREACHABLE)
