-- The brand, from a psql variable as the client's deploy script sets it (a psql file).
\set brand '"Acme"'
INSERT INTO langconnect.client_settings (key, value) VALUES ('brand', :'brand'::jsonb)
ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
