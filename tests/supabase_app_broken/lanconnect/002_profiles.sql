-- not-idempotent-schema: an unnamed index is created again, under a new name, by every run.
CREATE TABLE IF NOT EXISTS langconnect.profiles (
  id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
  display_name text,
  avatar_path text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE langconnect.profiles ENABLE ROW LEVEL SECURITY;
CREATE INDEX ON langconnect.profiles (display_name);

DROP POLICY IF EXISTS "Profiles are readable by their owner" ON langconnect.profiles;
CREATE POLICY "Profiles are readable by their owner" ON langconnect.profiles
  FOR SELECT TO authenticated USING (id = auth.uid());
GRANT SELECT, UPDATE ON langconnect.profiles TO authenticated;
