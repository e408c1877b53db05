"""Invoke tasks: `inv migrate --env staging`, `inv status`, `inv dry-run`, `inv wait`, `inv schema dump`, ...

No logic here: each task is one line into migrate.cli.run_command, the same edge
`python -m migrate` uses (settings, overrides, errors, exit codes). The project root is the
current directory.
"""

from __future__ import annotations

from pathlib import Path

from invoke import Exit, task


def _run(command: str, **flags: object) -> None:
    from migrate.cli import Flags, run_command

    code = run_command(command, Flags(**flags))  # type: ignore[arg-type]
    if code:
        raise Exit(code=code)


@task(help={"env": "environment: envs/<env>.env (default local)", "json": "one JSON document on stdout",
            "yes": "apply without asking on confirm-guarded environments", "verbose": "debug logs",
            "run_added": "also run the files added under already-applied versions (only those)"})
def migrate(c, env="local", json=False, yes=False, verbose=False, run_added=False):
    """Apply pending migrations: lanconnect first, then client_specific."""
    _run("migrate", env=env, json=json, yes=yes, verbose=verbose, run_added=run_added)


@task(help={"env": "environment (default local), `all`, or a comma list such as local,staging",
            "json": "one JSON document on stdout",
            "timeout": "with several environments: connect timeout per environment (default 5 s)",
            "drift": "also measure drift (builds a shadow database per environment)"})
def status(c, env="local", json=False, verbose=False, timeout=None, drift=False):
    """Show every migration of every track and its state (read-only)."""
    _run("status", env=env, json=json, verbose=verbose, timeout=float(timeout) if timeout is not None else None,
         drift=drift)


@task(help={"env": "environment (default local), `all`, or a comma list such as staging,production",
            "json": "one JSON document on stdout", "ignore_owner": "do not compare owners",
            "verbose": "debug logs"})
def drift(c, env="local", json=False, ignore_owner=False, verbose=False):
    """Compare the database with its applied migrations (built on a shadow): exit 7 on drift, 8 mid-deploy."""
    _run("drift", env=env, json=json, ignore_owner=ignore_owner, verbose=verbose)


@task(name="dry-run", help={"env": "environment (default local)", "json": "one JSON document on stdout",
                            "run_added": "as migrate --run-added would"})
def dry_run(c, env="local", json=False, verbose=False, run_added=False):
    """List exactly what migrate would apply, in order (read-only)."""
    _run("dry-run", env=env, json=json, verbose=verbose, run_added=run_added)


@task(help={"env": "environment (default local)", "timeout": "seconds (default MAX_WAIT_TIME)"})
def wait(c, env="local", timeout=None, verbose=False):
    """Return once the database accepts an authenticated SELECT 1."""
    _run("wait", env=env, verbose=verbose, timeout=float(timeout) if timeout is not None else None)


@task(name="db-stop", help={"env": "environment (default local)"})
def db_stop(c, env="local", verbose=False):
    """Stop the embedded local PostgreSQL."""
    _run("db-stop", env=env, verbose=verbose)


@task(help={"description": 'what the migration does, e.g. "add user preferences"',
            "track": "lanconnect (default) or client_specific", "env": "environment whose MIGRATE_SCHEMA "
            "the template uses (default local)"})
def new(c, description, track="lanconnect", env="local", verbose=False):
    """Create the next-numbered migration file from a template and print its path."""
    _run("new", env=env, verbose=verbose, words=(description,), track=track)


@task(iterable=["file"], help={"file": "a file or folder to lint (repeatable; or list them after --)",
                               "env": "environment (protected schemas, MIGRATE_SCHEMA; default local)",
                               "json": "one JSON document on stdout"})
def lint(c, file=None, env="local", json=False, verbose=False):
    """Check migration files for idempotency, schema isolation and safety (exit 4 on errors)."""
    import shlex

    files = list(file or []) + shlex.split(getattr(c, "remainder", "") or "")
    _run("lint", env=env, json=json, verbose=verbose, words=tuple(files))


@task(help={"env": "environment to verify for (default local): its platform, its shadow server",
            "json": "one JSON document on stdout", "verbose": "debug logs"})
def verify(c, env="local", json=False, verbose=False):
    """Run every migration, then again, on a shadow database: catch non-idempotent files (exit 4)."""
    _run("verify", env=env, json=json, verbose=verbose)


@task(help={"action": "dump: write the schema file (the only action)",
            "check": "write nothing; exit 7 with a unified diff when the file differs from what the migrations produce",
            "out": "the schema file (default schema.sql at the project root)",
            "owners": "keep the objects' owners (off by default: they differ between machines)",
            "env": "environment whose shadow server and platform to use (default local)", "verbose": "debug logs"})
def schema(c, action, check=False, out=None, owners=False, env="local", verbose=False):
    """`inv schema dump [--check] [--out FILE]`: the schema file the migrations produce, built on a shadow database."""
    _run("schema", env=env, verbose=verbose, words=(action,), check=check, out=out, owners=owners)


@task(help={"env": "environment (default local); refused unless its file says MIGRATE_DISPOSABLE=true",
            "yes": "do not ask (needed without a terminal)", "verbose": "debug logs"})
def reset(c, env="local", yes=False, verbose=False):
    """Drop and recreate the app schema (disposable environments, on the server their file names or this machine)."""
    _run("reset", env=env, yes=yes, verbose=verbose)


@task(help={"env": "environment (default local)", "limit": "how many attempts (default 20)",
            "json": "one JSON document on stdout"})
def history(c, env="local", limit=20, json=False, verbose=False):
    """Show the latest migration attempts (applied, retried, failed), newest first (read-only)."""
    _run("history", env=env, limit=int(limit), json=json, verbose=verbose)


@task
def test(c):
    """Run the test suite (the same command README.md and CI use)."""
    c.run("python -m pytest -q", pty=False)


@task(name="dev-start", help={"env": "environment (default local)"})
def dev_start(c, env="local", verbose=False):
    """The local stack: docker compose when Docker works here, else the embedded database and migrate."""
    _run("dev-start", env=env, verbose=verbose)


@task(help={"env": "environment for migration-init and app (default production)"})
def start(c, env="production", verbose=False):
    """The stack with docker compose: db, then migration-init, then app (needs Docker)."""
    _run("start", env=env, verbose=verbose)


@task(help={"env": "environment (default local)"})
def stop(c, env="local", verbose=False):
    """Stop the compose stack (when Docker works here) and the embedded local PostgreSQL."""
    _run("stop", env=env, verbose=verbose)


@task(name="repair", help={"env": "environment (default local)",
                           "dry_run": "list what would change, write nothing",
                           "yes": "do not ask on confirm-guarded environments", "verbose": "debug logs"})
def repair(c, env="local", dry_run=False, yes=False, verbose=False):
    """Re-align stored checksums with the files (after a reviewed edit) and clear failed rows."""
    _run("repair", env=env, dry_run=dry_run, yes=yes, verbose=verbose)


@task(help={"up_to": "mark every version up to this one as applied (required)",
            "track": "track (default lanconnect)", "env": "environment (default local)",
            "yes": "do not ask on confirm-guarded environments", "verbose": "debug logs"})
def baseline(c, up_to=None, track=None, env="local", yes=False, verbose=False):
    """Mark every version up to --up-to as applied without running it (adopt an existing database)."""
    _run("baseline", env=env, yes=yes, verbose=verbose, up_to=None if up_to is None else str(up_to), track=track)


@task
def version(c):
    """Print the tool's version: the same string history rows record as tool_version."""
    from migrate.cli import tool_version

    print(tool_version())


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
