"""Safety guards for destructive work: only disposable environments may lose their app schema.

`reset` (and the earlier script's MIGRATION_RESET_SCHEMA=true on migrate) drops the app
schema with everything in it, history included. An environment must say it is disposable
(MIGRATE_DISPOSABLE=true, as envs/local.env does) before either runs; staging and production
never say so, so a mistyped --env cannot wipe them.
"""

from __future__ import annotations

import logging
from typing import Any

from migrate.errors import Refused
from migrate.paths import display_path
from migrate.settings import Settings

log = logging.getLogger("migrate")


def require_disposable(settings: Settings, what: str) -> None:
    """Raise Refused (exit 6) unless this environment is marked MIGRATE_DISPOSABLE=true."""
    if settings.disposable:
        return
    raise Refused(
        f"{what} drops schema {settings.schema!r} and is refused for environment {settings.env_name!r}: "
        f"it is not marked disposable (set MIGRATE_DISPOSABLE=true in "
        f"{display_path(settings.env_file, settings.root)} only if its data may be thrown away); "
        "nothing was changed"
    )


def drop_and_recreate_schema(connection: Any, schema: str) -> None:
    """DROP SCHEMA ... CASCADE and CREATE SCHEMA in one transaction: never half-reset."""
    from psycopg2 import sql

    query = sql.SQL("BEGIN; DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}; COMMIT").format(
        sql.Identifier(schema))
    with connection.cursor() as cursor:
        cursor.execute(query)
    log.info("schema %s dropped and recreated", schema)
