-- Plans (seeded with fixed ids), documents with their status, an audit log, and a better profile name.
CREATE TABLE IF NOT EXISTS langconnect.plans (
  id serial PRIMARY KEY,
  name text NOT NULL UNIQUE,
  max_documents integer NOT NULL
);
INSERT INTO langconnect.plans (id, name, max_documents)
VALUES (1, 'free', 10), (2, 'pro', 1000)
ON CONFLICT (id) DO NOTHING;
SELECT setval('langconnect.plans_id_seq', (SELECT max(id) FROM langconnect.plans));

CREATE TABLE IF NOT EXISTS langconnect.documents (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
  title text NOT NULL,
  status langconnect.document_status NOT NULL DEFAULT 'draft',
  storage_path text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS documents_owner_idx ON langconnect.documents (owner_id);
ALTER TABLE langconnect.documents ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "Owners manage their documents" ON langconnect.documents;
CREATE POLICY "Owners manage their documents" ON langconnect.documents
  FOR ALL TO authenticated USING (owner_id = auth.uid()) WITH CHECK (owner_id = auth.uid());
DROP TRIGGER IF EXISTS documents_touch ON langconnect.documents;
CREATE TRIGGER documents_touch BEFORE UPDATE ON langconnect.documents
  FOR EACH ROW EXECUTE FUNCTION langconnect.touch_updated_at();
GRANT SELECT, INSERT, UPDATE, DELETE ON langconnect.documents TO authenticated;

CREATE TABLE IF NOT EXISTS langconnect.audit_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO langconnect.audit_log (event)
SELECT 'documents installed'
 WHERE NOT EXISTS (SELECT 1 FROM langconnect.audit_log WHERE event = 'documents installed');

-- A profile without a full name shows the email: this replaces 003's function.
CREATE OR REPLACE FUNCTION langconnect.handle_new_user() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = '' AS $$
BEGIN
  INSERT INTO langconnect.profiles (id, display_name)
  VALUES (NEW.id, coalesce(NEW.raw_user_meta_data ->> 'full_name', NEW.email))
  ON CONFLICT (id) DO NOTHING;
  RETURN NEW;
END;
$$;
