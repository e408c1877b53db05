"""Safety guards for destructive work: only disposable environments may lose their app schema.

Confirmation: on an environment with MIGRATE_CONFIRM=true every command that writes (migrate,
reset, repair, baseline) asks before it writes, and refuses (exit 6) without a terminal to ask
unless --yes was given.

`reset` (and the earlier script's MIGRATION_RESET_SCHEMA=true on migrate) drops the app
schema with everything in it, history included. An environment file must say it is disposable
(MIGRATE_DISPOSABLE=true, as envs/local.env does; the process environment cannot), and that
covers the server the file names, or one on this machine (the embedded server, a loopback
address, a Unix socket): "disposable" belongs to what the file names, so a DATABASE_URL in the
shell (or --host) pointing elsewhere is refused. Staging and production never say so, so a
mistyped --env cannot wipe them. Either command names its target and asks on a terminal;
without one it needs --yes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from migrate.errors import Refused
from migrate.paths import display_path
from migrate.settings import FROM_FILE, Settings

log = logging.getLogger("migrate")


def require_disposable(settings: Settings, what: str, *, yes: bool = False,
                       ask: Callable[[str], str] | None = None) -> None:
    """Raise Refused (exit 6) unless `what` may drop this environment's app schema, before anything connects.

    The environment file must say MIGRATE_DISPOSABLE=true; the target must be the server that file
    names, or one on this machine; and without --yes there must be a terminal to ask on.
    """
    env_file = display_path(settings.env_file, settings.root)
    if not settings.safety.disposable:
        raise Refused(
            f"{what} drops schema {settings.schema!r} and is refused for environment {settings.env_name!r}: "
            f"it is not marked disposable (set MIGRATE_DISPOSABLE=true in {env_file} only if its data may be "
            "thrown away); nothing was changed"
        )
    if settings.origin.kind != FROM_FILE and not settings.target.is_local:
        raise Refused(
            f"{what} drops schema {settings.schema!r} and is refused on {settings.target.label()}: that server "
            f"comes from {settings.origin.where}, not from {env_file}, and is neither the embedded server nor one "
            f"on this machine; {env_file} marks its own database disposable, not any server the shell or the "
            "command line names (name it in an environment file that says MIGRATE_DISPOSABLE=true); "
            "nothing was changed"
        )
    if not yes and ask is None and not sys.stdin.isatty():
        raise Refused(
            f"{what} drops schema {settings.schema!r} with everything in it on {settings.target.label()} "
            f"(environment {settings.env_name!r}) and there is no terminal to ask; pass --yes; nothing was changed"
        )


def confirm(settings: Settings, question: str, nothing: str, *, remedy: str = "pass --yes", yes: bool = False,
            ask: Callable[[str], str] | None = None, show: Callable[[], None] | None = None,
            required: bool | None = None) -> None:
    """On a MIGRATE_CONFIRM environment, ask `question` (after `show()` printed what would change).

    required: ask whatever MIGRATE_CONFIRM says (destructive commands always ask).
    Raise Refused (exit 6) when there is no terminal to ask and no --yes (the message ends with
    `remedy`), or when the answer is not `yes` (`nothing` says what was left untouched).
    """
    if not (settings.safety.confirm if required is None else required) or yes:
        return
    if ask is None and not sys.stdin.isatty():
        raise Refused(f"environment {settings.env_name!r} requires confirmation (MIGRATE_CONFIRM) and there is no "
                      f"terminal to ask; {remedy}")
    if show is not None:
        show()
    from migrate.report import text

    answer = (ask or text.ask)(f"{question} Type yes: ")
    if answer.strip().lower() != "yes":
        raise Refused(f"not confirmed: {nothing}")


def drop_and_recreate_schema(connection: Any, schema: str) -> None:
    """DROP SCHEMA ... CASCADE and CREATE SCHEMA in one transaction: never half-reset."""
    from psycopg2 import sql

    from migrate.database.sql import transaction

    with transaction(connection) as cursor:
        cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}").format(sql.Identifier(schema)))
    log.info("schema %s dropped and recreated", schema)
