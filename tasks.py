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


def _run(env: str, verbose: bool, action: Callable[[Any], Any]) -> None:
    configure_logging(verbose)
    try:
        action(load_settings(env, Path.cwd()))
    except MigrateError as error:
        raise Exit(f"migrate: error: {error.message}", code=error.exit_code) from None


@task(help={"env": "environment: envs/<env>.env (default local)", "json": "one JSON document on stdout",
            "yes": "apply without asking on confirm-guarded environments", "verbose": "debug logs"})
def migrate(c, env="local", json=False, yes=False, verbose=False):
    """Apply pending migrations: lanconnect first, then client_specific."""
    from migrate import commands

    _run(env, verbose, lambda s: commands.migrate(s, as_json=json, yes=yes))


@task(help={"env": "environment (default local)", "json": "one JSON document on stdout"})
def status(c, env="local", json=False, verbose=False):
    """Show every migration of every track and its state (read-only)."""
    from migrate import commands

    _run(env, verbose, lambda s: commands.status(s, as_json=json))


@task(name="dry-run", help={"env": "environment (default local)", "json": "one JSON document on stdout"})
def dry_run(c, env="local", json=False, verbose=False):
    """List exactly what migrate would apply, in order (read-only)."""
    from migrate import commands

    _run(env, verbose, lambda s: commands.dry_run(s, as_json=json))


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


@task
def test(c):
    """Run the test suite (the same command README.md and CI use)."""
    c.run("python -m pytest -q", pty=False)


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
