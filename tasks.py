"""Invoke tasks: `inv migrate --env staging`, `inv status`, `inv dry-run`, `inv wait`, `inv db-stop`.

No logic here: resolve the environment, call migrate.commands, and turn a MigrateError
into invoke.Exit with its documented exit code. The project root is the current directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from invoke import Exit, task

from migrate.cli import configure_logging
from migrate.errors import MigrateError
from migrate.settings import load_settings


def _run(env: str, verbose: bool, action: Callable[[Any], Any], json: bool = False) -> None:
    configure_logging(verbose)
    try:
        action(load_settings(env, Path.cwd()))
    except MigrateError as error:
        if json and not error.reported_as_json:
            from migrate import report

            report.print_json(report.error_json(error))  # --json promises one document on stdout
        raise Exit(f"migrate: error: {error.message}", code=error.exit_code) from None
    except Exception as error:
        from migrate.cli import lost_connection_message
        from migrate.errors import EXIT_UNREACHABLE

        line = lost_connection_message(error)
        if line is None:
            raise
        raise Exit(line, code=EXIT_UNREACHABLE) from None


@task(help={"env": "environment: envs/<env>.env (default local)", "json": "one JSON document on stdout",
            "yes": "apply without asking on confirm-guarded environments", "verbose": "debug logs",
            "batch": "pending transactional migrations in one transaction, a savepoint each (MIGRATE_BATCH)",
            "no_batch": "one transaction per migration even when MIGRATE_BATCH=true"})
def migrate(c, env="local", json=False, yes=False, verbose=False, batch=False, no_batch=False):
    """Apply pending migrations: lanconnect first, then client_specific."""
    from migrate import commands

    def action(settings):
        if batch or no_batch:
            settings = settings._replace(batch=batch and not no_batch)
        return commands.migrate(settings, as_json=json, yes=yes)

    _run(env, verbose, action, json=json)


@task(help={"env": "environment (default local), `all`, or a comma list such as local,staging",
            "json": "one JSON document on stdout",
            "timeout": "with several environments: connect timeout per environment (default 5 s)"})
def status(c, env="local", json=False, verbose=False, timeout=None):
    """Show every migration of every track and its state (read-only)."""
    from migrate import commands
    from migrate.overview import is_many

    if is_many(env):
        configure_logging(verbose)
        try:
            commands.status_environments(env, Path.cwd(), as_json=json,
                                         timeout=float(timeout) if timeout is not None else None)
        except MigrateError as error:
            raise Exit(f"migrate: error: {error.message}", code=error.exit_code) from None
        return
    _run(env, verbose, lambda s: commands.status(s, as_json=json), json=json)


@task(name="dry-run", help={"env": "environment (default local)", "json": "one JSON document on stdout"})
def dry_run(c, env="local", json=False, verbose=False):
    """List exactly what migrate would apply, in order (read-only)."""
    from migrate import commands

    _run(env, verbose, lambda s: commands.dry_run(s, as_json=json), json=json)


@task(help={"env": "environment (default local)", "timeout": "seconds (default MAX_WAIT_TIME)"})
def wait(c, env="local", timeout=None, verbose=False):
    """Return once the database accepts an authenticated SELECT 1."""
    from migrate import commands

    _run(env, verbose, lambda s: commands.wait(s, float(timeout) if timeout is not None else None))


@task(name="db-stop", help={"env": "environment (default local)"})
def db_stop(c, env="local", verbose=False):
    """Stop the embedded local PostgreSQL."""
    from migrate import commands

    _run(env, verbose, commands.db_stop)


@task(help={"description": 'what the migration does, e.g. "add user preferences"',
            "track": "lanconnect (default) or client_specific", "env": "environment whose MIGRATE_SCHEMA "
            "the template uses (default local)"})
def new(c, description, track="lanconnect", env="local", verbose=False):
    """Create the next-numbered migration file from a template and print its path."""
    from migrate import commands

    _run(env, verbose, lambda s: commands.new(s, description, track))


@task(iterable=["file"], help={"file": "a file or folder to lint (repeatable; or list them after --)",
                               "env": "environment (protected schemas, MIGRATE_SCHEMA; default local)",
                               "json": "one JSON document on stdout"})
def lint(c, file=None, env="local", json=False, verbose=False):
    """Check migration files for idempotency, schema isolation and safety (exit 4 on errors)."""
    import shlex

    from migrate import commands

    files = list(file or []) + shlex.split(getattr(c, "remainder", "") or "")
    _run(env, verbose, lambda s: commands.lint(s, files, as_json=json))


@task(help={"env": "environment whose server hosts the scratch database (default local)",
            "json": "one JSON document on stdout", "verbose": "debug logs"})
def verify(c, env="local", json=False, verbose=False):
    """Apply every migration twice on a scratch database: catch non-idempotent files (exit 4)."""
    from migrate import commands

    _run(env, verbose, lambda s: commands.verify(s, as_json=json), json=json)


@task(help={"env": "environment (default local); refused unless MIGRATE_DISPOSABLE=true",
            "yes": "do not ask on confirm-guarded environments", "verbose": "debug logs"})
def reset(c, env="local", yes=False, verbose=False):
    """Drop and recreate the app schema (disposable environments only)."""
    from migrate import commands

    _run(env, verbose, lambda s: commands.reset(s, yes=yes))


@task(help={"env": "environment (default local)", "limit": "how many attempts (default 20)",
            "json": "one JSON document on stdout"})
def history(c, env="local", limit=20, json=False, verbose=False):
    """Show the latest migration attempts (applied, retried, failed), newest first (read-only)."""
    from migrate import commands

    _run(env, verbose, lambda s: commands.history(s, limit=int(limit), as_json=json))


@task
def test(c):
    """Run the test suite (the same command README.md and CI use)."""
    c.run("python -m pytest -q", pty=False)


@task(name="dev-start", help={"env": "environment (default local)"})
def dev_start(c, env="local", verbose=False):
    """The local stack: docker compose when Docker works here, else the embedded database and migrate."""
    from migrate import commands

    _run(env, verbose, commands.dev_start)


@task(help={"env": "environment for migration-init and app (default production)"})
def start(c, env="production", verbose=False):
    """The stack with docker compose: db, then migration-init, then app (needs Docker)."""
    from migrate import commands

    configure_logging(verbose)
    try:
        commands.start(Path.cwd(), env)
    except MigrateError as error:
        raise Exit(f"migrate: error: {error.message}", code=error.exit_code) from None


@task(help={"env": "environment (default local)"})
def stop(c, env="local", verbose=False):
    """Stop the compose stack (when Docker works here) and the embedded local PostgreSQL."""
    from migrate import commands

    _run(env, verbose, commands.stop)


@task(name="repair", help={"env": "environment (default local)",
                           "dry_run": "list what would change, write nothing",
                           "yes": "do not ask on confirm-guarded environments", "verbose": "debug logs"})
def repair(c, env="local", dry_run=False, yes=False, verbose=False):
    """Re-align stored checksums with the files (after a reviewed edit) and clear failed rows."""
    from migrate import maintenance

    _run(env, verbose, lambda s: maintenance.repair(s, dry_run=dry_run, yes=yes))


@task(help={"version": "mark every version up to this one as applied (required)",
            "track": "track (default lanconnect)", "env": "environment (default local)",
            "yes": "do not ask on confirm-guarded environments", "verbose": "debug logs"})
def baseline(c, version=None, track=None, env="local", yes=False, verbose=False):
    """Mark every version up to --version as applied without running it (adopt an existing database)."""
    from migrate import maintenance
    from migrate.errors import ConfigError

    def action(settings):
        if version is None:
            raise ConfigError("baseline needs --version V (every version up to V is marked applied)")
        return maintenance.baseline(settings, str(version), track, yes=yes)

    _run(env, verbose, action)


@task(help={"quick": "smoke run: N=5, 3 rounds, no extras (a few seconds)",
            "rounds": "rounds per cell (default 5); the table shows medians",
            "dsn": "admin DSN of the server (default 127.0.0.1:5432 when it answers, else embedded)",
            "output": "also write the markdown report to this file (e.g. bench/RESULTS.md)"})
def bench(c, quick=False, rounds=None, dsn=None, output=None):
    """Benchmark against the earlier design, the floor, Python's start-up and dbmate (bench/run.py)."""
    import shlex
    import sys

    command = [sys.executable, str(Path(__file__).resolve().parent / "bench" / "run.py")]
    command += ["--quick"] if quick else []
    command += ["--rounds", str(rounds)] if rounds else []
    command += ["--dsn", dsn] if dsn else []
    command += ["--output", output] if output else []
    c.run(shlex.join(command), pty=False)
