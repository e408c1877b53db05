-- not-idempotent-data: the UPDATE appends its suffix again on every run.
INSERT INTO storage.buckets (id, name, public)
VALUES ('avatars', 'avatars', true), ('documents', 'documents', false)
ON CONFLICT (id) DO NOTHING;
UPDATE storage.buckets SET name = name || '-private' WHERE id = 'documents';

DROP POLICY IF EXISTS "Avatar images are publicly accessible" ON storage.objects;
CREATE POLICY "Avatar images are publicly accessible" ON storage.objects
  FOR SELECT USING (bucket_id = 'avatars');
