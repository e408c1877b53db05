"""The platform's API roles (Supabase's `anon` and `authenticated`) on a test server.

Roles are cluster-wide: they are created idempotently (NOLOGIN, like the platform's) and never
dropped, because other tests and other runs share the machine's server.
"""

from __future__ import annotations

from typing import Any

API_ROLES = ("anon", "authenticated")


def ensure_api_roles(connection: Any) -> None:
    """Create `anon` and `authenticated` as NOLOGIN roles unless they exist (autocommit connection)."""
    with connection.cursor() as cursor:
        for role in API_ROLES:
            cursor.execute(
                f"""
                DO $$
                BEGIN
                    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                        CREATE ROLE {role} NOLOGIN;
                    END IF;
                EXCEPTION WHEN duplicate_object OR unique_violation THEN
                    NULL;  -- created by a concurrent run meanwhile
                END
                $$
                """
            )


def expose_schema_to_api_roles(connection: Any, schema: str = "langconnect") -> None:
    """Supabase's common shape: the app schema exposed through the Data API, every new table granted."""
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        cursor.execute(f"GRANT USAGE ON SCHEMA {schema} TO anon, authenticated")
        cursor.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT ALL ON TABLES TO anon, authenticated")
        cursor.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT ALL ON SEQUENCES TO anon, authenticated")
