-- One profile per auth user, readable and editable by its owner only.
CREATE TABLE IF NOT EXISTS langconnect.profiles (
  id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
  display_name text,
  avatar_path text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE langconnect.profiles ENABLE ROW LEVEL SECURITY;

DROP POLICY IF EXISTS "Profiles are readable by their owner" ON langconnect.profiles;
CREATE POLICY "Profiles are readable by their owner" ON langconnect.profiles
  FOR SELECT TO authenticated USING (id = auth.uid());
DROP POLICY IF EXISTS "Profiles are editable by their owner" ON langconnect.profiles;
CREATE POLICY "Profiles are editable by their owner" ON langconnect.profiles
  FOR UPDATE TO authenticated USING (id = auth.uid()) WITH CHECK (id = auth.uid());

DROP TRIGGER IF EXISTS profiles_touch ON langconnect.profiles;
CREATE TRIGGER profiles_touch BEFORE UPDATE ON langconnect.profiles
  FOR EACH ROW EXECUTE FUNCTION langconnect.touch_updated_at();

GRANT SELECT, UPDATE ON langconnect.profiles TO authenticated;
GRANT ALL ON langconnect.profiles TO service_role;
