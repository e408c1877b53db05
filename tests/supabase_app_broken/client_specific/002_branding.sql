-- not-idempotent-data (a psql file): the INSERT without ON CONFLICT adds the row again on every run.
\set brand 'Acme'
INSERT INTO langconnect.client_settings (key, value) VALUES ('brand', to_jsonb(:'brand'::text))
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
INSERT INTO langconnect.audit_log (event) VALUES ('branded ' || :'brand');
