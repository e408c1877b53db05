-- 002: documents belong to a collection.
SET search_path = langconnect, public;

CREATE TABLE IF NOT EXISTS langconnect.documents (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    collection_id  uuid NOT NULL REFERENCES langconnect.collections (id) ON DELETE CASCADE,
    content        text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- ADD COLUMN has IF NOT EXISTS; a constraint does not, so guard it with a DO block.
ALTER TABLE langconnect.documents ADD COLUMN IF NOT EXISTS title text;

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint
         WHERE conname = 'documents_content_not_blank'
           AND conrelid = 'langconnect.documents'::regclass
    ) THEN
        ALTER TABLE langconnect.documents
            ADD CONSTRAINT documents_content_not_blank CHECK (length(btrim(content)) > 0);
    END IF;
END
$$;

CREATE INDEX IF NOT EXISTS documents_collection_id_idx ON langconnect.documents (collection_id);
