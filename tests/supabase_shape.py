"""A Supabase-shaped platform and an app's two-track migration set written in the shape of a real one.

The platform stands in for what `supabase start` gives a project, structure only: the roles anon,
authenticated and service_role; the schemas auth, storage, realtime and extensions; `auth.users`,
`auth.uid()`, `storage.buckets`, `storage.objects`, `storage.foldername()`, `realtime.messages` and
`realtime.topic()`. It is installed into a test's own database; the roles are cluster-wide, so they
are created only when missing (several test runs may share a server).

The app set uses what the platform documents: an enum type, tables with RLS policies calling
`auth.uid()`, a trigger on `auth.users` calling an app function, buckets inserted with
`ON CONFLICT DO NOTHING`, policies on `storage.objects`, `storage.buckets` and `realtime.messages` using
helper functions of the app schema, and functions with `$$` bodies. Every file is idempotent.
"""

from __future__ import annotations

import textwrap
from typing import Any

# the platform itself: one fixture for lint and verify (tests/supabase_fixture.py)

# (track, file name) -> text, in the order migrate applies them
APP_MIGRATIONS: dict[tuple[str, str], str] = {
    ("lanconnect", "001_profiles.sql"): """
        -- 001: one profile per user, an enum for member roles, RLS for their owner.
        SET search_path = langconnect, public;

        CREATE SCHEMA IF NOT EXISTS langconnect;
        GRANT USAGE ON SCHEMA langconnect TO authenticated;

        DO $$
        BEGIN
            CREATE TYPE langconnect.member_role AS ENUM ('owner', 'editor', 'viewer');
        EXCEPTION WHEN duplicate_object THEN
            NULL;
        END
        $$;

        CREATE TABLE IF NOT EXISTS langconnect.profiles (
            id            uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
            display_name  text,
            role          langconnect.member_role NOT NULL DEFAULT 'viewer',
            created_at    timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE langconnect.profiles ENABLE ROW LEVEL SECURITY;

        DROP POLICY IF EXISTS "profiles: owner reads" ON langconnect.profiles;
        CREATE POLICY "profiles: owner reads" ON langconnect.profiles
            FOR SELECT TO authenticated USING (id = auth.uid());

        DROP POLICY IF EXISTS "profiles: owner updates" ON langconnect.profiles;
        CREATE POLICY "profiles: owner updates" ON langconnect.profiles
            FOR UPDATE TO authenticated USING (id = auth.uid()) WITH CHECK (id = auth.uid());

        GRANT SELECT, UPDATE ON langconnect.profiles TO authenticated;
        """,
    ("lanconnect", "002_new_user_trigger.sql"): """
        -- 002: every new user gets a profile, made by a trigger on auth.users.
        SET search_path = langconnect, public;

        CREATE OR REPLACE FUNCTION langconnect.handle_new_user() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
        BEGIN
            INSERT INTO langconnect.profiles (id, display_name)
            VALUES (NEW.id, coalesce(NEW.raw_user_meta_data ->> 'name', NEW.email))
            ON CONFLICT (id) DO NOTHING;
            RETURN NEW;
        END;
        $$;

        DROP TRIGGER IF EXISTS on_auth_user_created ON auth.users;
        CREATE TRIGGER on_auth_user_created
            AFTER INSERT ON auth.users
            FOR EACH ROW EXECUTE FUNCTION langconnect.handle_new_user();
        """,
    ("lanconnect", "003_avatars_bucket.sql"): """
        -- 003: the avatars bucket; each user owns the folder named after their id.
        SET search_path = langconnect, public;

        INSERT INTO storage.buckets (id, name, public)
        VALUES ('avatars', 'avatars', false)
        ON CONFLICT (id) DO NOTHING;

        CREATE OR REPLACE FUNCTION langconnect.owns_object(object_name text) RETURNS boolean
        LANGUAGE sql STABLE AS $$
            SELECT (storage.foldername(object_name))[1] = auth.uid()::text
        $$;

        DROP POLICY IF EXISTS "avatars: owner reads" ON storage.objects;
        CREATE POLICY "avatars: owner reads" ON storage.objects
            FOR SELECT TO authenticated
            USING (bucket_id = 'avatars' AND langconnect.owns_object(name));

        DROP POLICY IF EXISTS "avatars: owner uploads" ON storage.objects;
        CREATE POLICY "avatars: owner uploads" ON storage.objects
            FOR INSERT TO authenticated
            WITH CHECK (bucket_id = 'avatars' AND langconnect.owns_object(name));

        DROP POLICY IF EXISTS "avatars: owner deletes" ON storage.objects;
        CREATE POLICY "avatars: owner deletes" ON storage.objects
            FOR DELETE TO authenticated
            USING (bucket_id = 'avatars' AND owner = auth.uid());
        """,
    ("lanconnect", "004_rooms.sql"): """
        -- 004: chat rooms; their members listen on the room's realtime topic.
        SET search_path = langconnect, public;

        CREATE TABLE IF NOT EXISTS langconnect.rooms (
            id          bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            slug        text NOT NULL,
            created_by  uuid NOT NULL DEFAULT auth.uid() REFERENCES auth.users (id)
        );
        CREATE UNIQUE INDEX IF NOT EXISTS rooms_slug_key ON langconnect.rooms (slug);

        DO $$
        BEGIN
            ALTER TABLE langconnect.rooms ADD CONSTRAINT rooms_slug_format CHECK (slug ~ '^[a-z0-9-]+$');
        EXCEPTION WHEN duplicate_object THEN
            NULL;
        END
        $$;

        CREATE TABLE IF NOT EXISTS langconnect.room_members (
            room_id  bigint NOT NULL REFERENCES langconnect.rooms (id) ON DELETE CASCADE,
            user_id  uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
            role     langconnect.member_role NOT NULL DEFAULT 'viewer',
            PRIMARY KEY (room_id, user_id)
        );
        ALTER TABLE langconnect.rooms ENABLE ROW LEVEL SECURITY;
        ALTER TABLE langconnect.room_members ENABLE ROW LEVEL SECURITY;

        CREATE OR REPLACE FUNCTION langconnect.is_room_member(room_slug text) RETURNS boolean
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
            SELECT EXISTS (
                SELECT 1 FROM langconnect.room_members m JOIN langconnect.rooms r ON r.id = m.room_id
                 WHERE r.slug = room_slug AND m.user_id = auth.uid())
        $$;

        DROP POLICY IF EXISTS "rooms: members read" ON langconnect.rooms;
        CREATE POLICY "rooms: members read" ON langconnect.rooms
            FOR SELECT TO authenticated USING (langconnect.is_room_member(slug));

        DROP POLICY IF EXISTS "room topics: members listen" ON realtime.messages;
        CREATE POLICY "room topics: members listen" ON realtime.messages
            FOR SELECT TO authenticated
            USING (langconnect.is_room_member(realtime.topic()));
        """,
    ("client_specific", "001_team_notes.sql"): """
        -- client 001: notes each author manages, behind RLS.
        SET search_path = langconnect, public;

        CREATE TABLE IF NOT EXISTS langconnect.team_notes (
            id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            author_id   uuid NOT NULL DEFAULT auth.uid() REFERENCES auth.users (id) ON DELETE CASCADE,
            body        text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        ALTER TABLE langconnect.team_notes ENABLE ROW LEVEL SECURITY;

        DROP POLICY IF EXISTS "team notes: authors manage" ON langconnect.team_notes;
        CREATE POLICY "team notes: authors manage" ON langconnect.team_notes
            FOR ALL TO authenticated
            USING (author_id = auth.uid()) WITH CHECK (author_id = auth.uid());

        GRANT SELECT, INSERT, UPDATE, DELETE ON langconnect.team_notes TO authenticated;
        """,
    ("client_specific", "002_note_attachments.sql"): """
        -- client 002: a private bucket for note attachments, readable by their uploader.
        SET search_path = langconnect, public;

        INSERT INTO storage.buckets (id, name, public)
        VALUES ('note-attachments', 'note-attachments', false)
        ON CONFLICT (id) DO NOTHING;

        DROP POLICY IF EXISTS "note attachments: uploader reads" ON storage.objects;
        CREATE POLICY "note attachments: uploader reads" ON storage.objects
            FOR SELECT TO authenticated
            USING (bucket_id = 'note-attachments' AND langconnect.owns_object(name));

        DROP POLICY IF EXISTS "buckets: signed-in users list" ON storage.buckets;
        CREATE POLICY "buckets: signed-in users list" ON storage.buckets
            FOR SELECT TO authenticated USING (true);
        """,
}


def install_platform(database: Any) -> None:
    """The Supabase-shaped platform in `database` (a conftest.Database), as `supabase start` would have it."""
    from supabase_fixture import install_platform as install

    connection = database.connect()
    try:
        install(connection)
    finally:
        connection.close()


def write_app_migrations(project: Any) -> list[str]:
    """Write the app's set into `project` (a conftest.Project); the files as shown, in apply order."""
    shown = []
    for (track, name), text in APP_MIGRATIONS.items():
        project.write(track, name, textwrap.dedent(text))
        shown.append(f"migrations/{track}/{name}")
    return shown
