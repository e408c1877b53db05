"""Every error the tool raises on purpose, and the exit code each one means.

Errors are raised deep and printed once, at the edge (tasks.py, cli.py), so every
subclass carries the exit code the process must end with.

| code | meaning                                                        |
|------|----------------------------------------------------------------|
| 0    | success, including nothing to do                               |
| 1    | a migration failed (recorded as `failed`), or the database     |
|      | refused the tool's own SQL (read-only database, privileges)    |
| 2    | usage or configuration error                                   |
| 3    | database unreachable (timeout, bad password, unknown database) |
| 4    | validation failed (bad file names, syntax, changed files)      |
| 5    | run lock not acquired in time, or lost during the run          |
| 6    | refused (confirmation needed, destructive command)             |
| 7    | drift: the database (or a committed schema file) differs from  |
|      | what its migrations produce                                    |
| 8    | a deploy is in progress (a migration run holds the run lock):  |
|      | drift is not measured on half a deploy                         |
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_MIGRATION_FAILED = 1
EXIT_CONFIG = 2
EXIT_UNREACHABLE = 3
EXIT_VALIDATION = 4
EXIT_LOCK = 5
EXIT_REFUSED = 6
EXIT_DRIFT = 7
EXIT_DEPLOY_IN_PROGRESS = 8


class MigrateError(Exception):
    """Base of every expected failure; `exit_code` is what the process exits with."""

    exit_code = EXIT_MIGRATION_FAILED
    # set when the command already printed its --json document with this error in it
    reported_as_json = False
    # problems of the same kind found with this one (every file refused, say): the edge prints one
    # error line for each of these before the message's own
    earlier: tuple[str, ...] = ()

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(MigrateError):
    """Bad command line or environment file: nothing was touched."""

    exit_code = EXIT_CONFIG


class UnreachableError(MigrateError):
    """The database could not be reached or refused our credentials."""

    exit_code = EXIT_UNREACHABLE


class ValidationError(MigrateError):
    """The migration files or the history disagree with the rules; nothing was applied."""

    exit_code = EXIT_VALIDATION


class MigrationFailed(MigrateError):
    """A migration raised an error; it was rolled back and recorded as failed."""

    exit_code = EXIT_MIGRATION_FAILED


class LockTimeout(MigrateError):
    """Another runner held the run lock for longer than the lock timeout."""

    exit_code = EXIT_LOCK


class Refused(MigrateError):
    """The command needs a confirmation or is not allowed on this environment."""

    exit_code = EXIT_REFUSED


class DriftFound(MigrateError):
    """The live database, or a committed schema file, differs from what the migrations produce."""

    exit_code = EXIT_DRIFT


class DeployInProgress(MigrateError):
    """A migration run holds the run lock: comparing now would report half a deploy."""

    exit_code = EXIT_DEPLOY_IN_PROGRESS
