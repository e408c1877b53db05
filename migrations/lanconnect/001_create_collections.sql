-- 001: the core tables of the platform.
-- Conventions: set the schema context, and make every statement safe to re-run.
SET search_path = langconnect, public;

CREATE SCHEMA IF NOT EXISTS langconnect;

CREATE TABLE IF NOT EXISTS langconnect.collections (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX IF NOT EXISTS collections_name_key ON langconnect.collections (name);
