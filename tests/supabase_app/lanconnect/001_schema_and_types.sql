-- The app's schema, its enum type and the trigger helper the tables below share.
CREATE SCHEMA IF NOT EXISTS langconnect;
GRANT USAGE ON SCHEMA langconnect TO anon, authenticated, service_role;

DO $$
BEGIN
  CREATE TYPE langconnect.document_status AS ENUM ('draft', 'processing', 'ready', 'failed');
EXCEPTION
  WHEN duplicate_object THEN NULL;
END
$$;

CREATE OR REPLACE FUNCTION langconnect.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END;
$$;
