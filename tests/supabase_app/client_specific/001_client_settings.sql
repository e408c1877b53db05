-- This client's settings, its team plan, a view of ready documents and realtime broadcasts.
CREATE TABLE IF NOT EXISTS langconnect.client_settings (
  key text PRIMARY KEY,
  value jsonb NOT NULL
);
INSERT INTO langconnect.client_settings (key, value)
VALUES ('theme', '"light"'), ('max_upload_mb', '50')
ON CONFLICT (key) DO NOTHING;
GRANT SELECT ON langconnect.client_settings TO anon, authenticated;

INSERT INTO langconnect.plans (name, max_documents) VALUES ('team', 5000) ON CONFLICT (name) DO NOTHING;

CREATE OR REPLACE VIEW langconnect.ready_documents WITH (security_invoker = true) AS
  SELECT id, owner_id, title FROM langconnect.documents WHERE status = 'ready';
GRANT SELECT ON langconnect.ready_documents TO authenticated;

DROP POLICY IF EXISTS "Authenticated users receive broadcasts" ON realtime.messages;
CREATE POLICY "Authenticated users receive broadcasts" ON realtime.messages
  FOR SELECT TO authenticated USING (extension = 'broadcast');
COMMENT ON VIEW langconnect.ready_documents IS 'Documents whose processing is done, as their owner sees them';

-- The service updates settings values only; clients follow them live (realtime's publication).
GRANT UPDATE (value) ON langconnect.client_settings TO service_role;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_publication_tables WHERE pubname = 'supabase_realtime'
                 AND schemaname = 'langconnect' AND tablename = 'client_settings') THEN
    ALTER PUBLICATION supabase_realtime ADD TABLE langconnect.client_settings;
  END IF;
END
$$;
