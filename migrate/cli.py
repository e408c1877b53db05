"""`python -m migrate`: the argparse door for containers, with the earlier script's flags.

Same commands and exit codes as the Invoke tasks. `--status`, `--dry-run` and plain
`python -m migrate` keep working as they did with database/migrate.py.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from migrate.errors import EXIT_CONFIG, EXIT_UNREACHABLE, MigrateError
from migrate.settings import Settings, load_settings

COMMANDS = ("migrate", "status", "dry-run", "wait", "db-stop", "verify", "reset", "repair", "baseline", "history")
COMMANDS += ("new", "lint")  # authoring: take positional words (new: description; lint: files)
WORD_COMMANDS = ("new", "lint")


def configure_logging(verbose: bool = False) -> None:
    """Logs go to stderr, one line each, so stdout stays tables and JSON."""
    import warnings

    warnings.filterwarnings("ignore", module="platformdirs")  # XDG_RUNTIME_DIR noise in containers
    logging.basicConfig(stream=sys.stderr, format="migrate: %(message)s", level=logging.WARNING, force=True)
    logging.getLogger("migrate").setLevel(logging.DEBUG if verbose else logging.INFO)


def apply_overrides(settings: Settings, host: str | None = None, port: str | None = None,
                    database: str | None = None, user: str | None = None,
                    password: str | None = None) -> Settings:
    """The earlier script's --host/--port/--database/--user/--password win over every layer."""
    given = {"host": host, "port": port, "dbname": database, "user": user, "password": password}
    given = {key: value for key, value in given.items() if value is not None}
    if not given:
        return settings
    connection = dict(settings.connection)
    connection.update(given)
    embedded = settings.embedded_pgdata if set(given) <= {"dbname"} else None
    return settings._replace(connection=connection, embedded_pgdata=embedded)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m migrate",
        description="Apply and inspect two-track PostgreSQL migrations.",
        epilog="exit codes: 0 ok, 1 migration failed, 2 usage/config, 3 unreachable, "
               "4 validation, 5 lock timeout, 6 refused",
    )
    parser.add_argument("command", nargs="?", choices=COMMANDS, default=None,
                        help="what to do (default: migrate)")
    parser.add_argument("words", nargs="*", metavar="ARG",
                        help='new: the description ("add user preferences"); lint: files or folders')
    parser.add_argument("--env", default="local", help="environment: envs/<env>.env (default: local); "
                        "status also takes `all` or a comma list")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--yes", action="store_true",
                        help="do not ask on confirm-guarded environments (migrate, reset, repair, baseline)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="wait: seconds (default MAX_WAIT_TIME); status --env all: "
                        "connect timeout per environment (default 5)")
    parser.add_argument("--batch", action=argparse.BooleanOptionalAction, default=None,
                        help="migrate: pending transactional migrations in one transaction, a savepoint each "
                        "(default: MIGRATE_BATCH, off)")
    parser.add_argument("--limit", type=int, default=20, help="history: how many attempts to show (default 20)")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logs on stderr")
    parser.add_argument("--version", dest="baseline_version", default=None,
                        help="baseline: mark every version up to this one as applied")
    parser.add_argument("--track", default=None,
                        help="new, baseline: lanconnect (default) or client_specific")
    legacy = parser.add_argument_group("earlier script's flags")
    legacy.add_argument("--status", action="store_true", help="same as the status command")
    legacy.add_argument("--dry-run", dest="dry_run", action="store_true", help="same as the dry-run command")
    for flag in ("host", "port", "database", "user", "password"):
        legacy.add_argument(f"--{flag}", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_intermixed_args(argv)
    except SystemExit as stop:  # argparse already printed the usage error
        return EXIT_CONFIG if stop.code else 0
    configure_logging(args.verbose)
    command = args.command or ("status" if args.status else "dry-run" if args.dry_run else "migrate")
    if args.words and command not in WORD_COMMANDS:
        print(f"migrate: error: unexpected argument(s) {' '.join(args.words)!r} for the {command} command",
              file=sys.stderr)
        return EXIT_CONFIG
    if args.command and (args.status or (args.dry_run and args.command != "repair")):
        print(f"migrate: error: --status/--dry-run cannot be combined with the {args.command} command",
              file=sys.stderr)
        return EXIT_CONFIG
    try:
        if command == "status" and _names_many(args.env):
            from migrate import commands

            commands.status_environments(args.env, Path.cwd(), as_json=args.json, timeout=args.timeout)
            return 0
        settings = load_settings(args.env, Path.cwd())
        settings = apply_overrides(settings, args.host, args.port, args.database, args.user, args.password)
        if args.batch is not None:
            settings = settings._replace(batch=args.batch)
        return run(command, settings, args)
    except MigrateError as error:
        if args.json and not error.reported_as_json:
            from migrate import report

            report.print_json(report.error_json(error))  # --json promises one document on stdout
        print(f"migrate: error: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("migrate: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        line = lost_connection_message(error)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return EXIT_UNREACHABLE


def _names_many(env: str) -> bool:
    from migrate.overview import is_many

    return is_many(env)


def run(command: str, settings: Settings, args: argparse.Namespace) -> int:
    from migrate import commands

    if command == "status":
        commands.status(settings, as_json=args.json)
    elif command == "dry-run":
        commands.dry_run(settings, as_json=args.json)
    elif command == "migrate":
        commands.migrate(settings, as_json=args.json, yes=args.yes)
    elif command == "wait":
        commands.wait(settings, args.timeout)
    elif command == "db-stop":
        commands.db_stop(settings)
    elif command == "new":
        commands.new(settings, " ".join(args.words), args.track or "lanconnect")
    elif command == "lint":
        commands.lint(settings, list(args.words), as_json=args.json)
    elif command == "verify":
        commands.verify(settings, as_json=args.json)
    elif command == "reset":
        commands.reset(settings, yes=args.yes)
    elif command in ("repair", "baseline"):
        return run_maintenance(command, settings, args)
    elif command == "history":
        commands.history(settings, limit=args.limit, as_json=args.json)
    return 0


def run_maintenance(command: str, settings: Settings, args: argparse.Namespace) -> int:
    """repair [--dry-run] and baseline --version V [--track T]."""
    from migrate import maintenance
    from migrate.errors import ConfigError

    if command == "repair":
        maintenance.repair(settings, dry_run=args.dry_run, yes=args.yes)
        return 0
    if args.baseline_version is None:
        raise ConfigError("baseline needs --version V (every version up to V is marked applied)")
    maintenance.baseline(settings, args.baseline_version, args.track, yes=args.yes)
    return 0


def lost_connection_message(error: Exception) -> str | None:
    """One line for a database error outside any migration (the server restarted between two).

    Migrations turn their own errors into MigrateError; this catches the rest (reading or
    writing history while the server goes away), so the user sees one line, not a traceback.
    """
    if not type(error).__module__.startswith("psycopg2"):
        return None
    from migrate.database import first_line

    return (f"migrate: error: lost the connection to the database ({first_line(str(error))}); "
            "whatever ran before was committed or rolled back as a whole; run the command again")
